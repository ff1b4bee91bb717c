/**
 * The `amesh` command line. One file per command family under src/cli/; errors are printed
 * with their cause chain and hint, and exit with status 1 (2 for usage errors).
 */
import { Command, CommanderError } from 'commander';
import { describeError } from '../errors/amesh-error.js';
import { registerCa } from './ca.js';
import { registerDemo } from './demo.js';
import { registerImage } from './image.js';
import { registerNodeAgent } from './node-agent.js';
import { registerSandbox } from './sandbox.js';

const program = new Command();
program.name('amesh').description('amesh: an ambient service mesh with eBPF capture and HBONE mutual TLS').version('0.1.0').exitOverride();
registerNodeAgent(program);
registerCa(program);
registerImage(program);
registerDemo(program);
registerSandbox(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  console.error(`amesh: ${describeError(err)}`);
  process.exit(1);
}
