/**
 * `amesh sandbox daemon` (internal, hidden): the sandbox's long-running process, started by
 * `sandbox up` inside the fabric namespace. A command family of its own so the daemon does not
 * load the user-facing sandbox commands and their Kubernetes client (tens of MB of memory).
 */
import type { Command } from 'commander';
import { exitOnSignals } from './graceful-exit.js';
import { runDaemon } from '../sandbox/daemon.js';
import { createLogger } from '../telemetry/logger.js';

export function registerSandboxDaemon(program: Command): void {
  program
    .command('sandbox', { hidden: true })
    .command('daemon', { hidden: true })
    .description('internal: the sandbox daemon (started by `sandbox up` inside the fabric namespace)')
    .requiredOption('--dir <dir>', 'sandbox state directory')
    .action(async (o: { dir: string }) => {
      const log = createLogger(process.env.AMESH_LOG_LEVEL ?? 'info', 'amesh-sandbox');
      const daemon = await runDaemon({ dir: o.dir, log, loopbackFd: 3 });
      log.info('sandbox daemon running');
      exitOnSignals({ logger: log, graceMs: 40_000, close: () => daemon.stop() });
      await new Promise(() => undefined);
    });
}
