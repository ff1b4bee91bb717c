/**
 * Runs BENCHMARKS.md scenarios 3–5 (bench/scenarios/{maxrate,connrate,memory}.ts) once per path
 * on a fresh testbed and prints each sample as a JSON line — a check of the scenario modules
 * outside `npm run bench`. Needs root.
 *
 *   node dist/bench/scenario-smoke.js [--paths direct,stunnel,haproxy,nginx,amesh,amesh-nft] [--scenarios maxrate,connrate,memory]
 *        [--seconds 5] [--concurrency 4] [--held 1000,10000]
 */
import { parseArgs } from 'node:util';
import { CleanupStack } from './cleanup.js';
import { resolveSettings } from './options.js';
import { clockTicksPerSecond, CpuMeter } from './proc-stat.js';
import { Progress } from './progress.js';
import { runConnRate } from './scenarios/connrate.js';
import { runMaxRate } from './scenarios/maxrate.js';
import { runMemory } from './scenarios/memory.js';
import { Testbed } from './testbed.js';

const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const { values } = parseArgs({
  options: {
    paths: { type: 'string', default: 'direct,stunnel,amesh' },
    scenarios: { type: 'string', default: 'maxrate,connrate,memory' },
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '4' },
    held: { type: 'string', default: '1000,10000' },
  },
});
const scenarios = values.scenarios.split(',');
const seconds = Number(values.seconds);
const settings = resolveSettings({ quick: true, paths: values.paths, keepTemp: true });
const cleanup = new CleanupStack(say);
const stop = (): void => {
  void cleanup.run().then(() => process.exit(130));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const progress = new Progress(Testbed.setupSteps(settings) + 1);
const meter = new CpuMeter(await clockTicksPerSecond());
const print = (scenario: string, sample: object): void => {
  process.stdout.write(`${JSON.stringify({ scenario, ...sample })}\n`);
};
try {
  const bed = await Testbed.start(settings, progress, cleanup);
  for (const path of settings.paths) {
    if (scenarios.includes('maxrate')) print('maxrate', await runMaxRate({ path, run: 1 }, bed, { maxRateSeconds: seconds, maxRateConnections: 16 }, meter));
    if (scenarios.includes('connrate')) print('connrate', await runConnRate({ path, run: 1 }, bed, { connRateSeconds: seconds, connRateConcurrency: Number(values.concurrency) }, meter));
  }
  if (scenarios.includes('memory')) {
    const held = values.held.split(',').map(Number);
    for (const path of settings.paths.filter((p) => p !== 'direct')) print('memory', await runMemory({ path, run: 1 }, bed, { memoryConnections: held }, meter));
  }
} finally {
  say('cleaning up');
  await cleanup.run();
}
