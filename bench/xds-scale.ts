/**
 * `npm run bench:xds` (= node dist/bench/xds-scale.js [--pods 2000] [--services 500] [--nodes 10]
 * [--agents 4] [--changes 20]): issue #5's scale test of workload discovery — full push to an
 * agent < 2 s, an incremental pod change at every agent < 200 ms, controller memory < 300 MB.
 * The sandbox API server runs in this process, the controller as a child process, the agents on
 * worker threads; nothing needs root and everything listens on 127.0.0.1. How it measures:
 * xds-scale-harness.ts. Progress goes to stderr, the Markdown table to stdout, the JSON (every
 * sample) and the table to bench/results/xds-scale-<time>.{json,md}.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { REPO_ROOT } from '../src/sandbox/install.js';
import { Progress } from './progress.js';
import { runXdsScale, XDS_SCALE_STEPS } from './xds-scale-harness.js';
import { markdownReport } from './xds-scale-report.js';

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

interface CliOptions {
  pods: number;
  services: number;
  nodes: number;
  agents: number;
  changes: number;
  namespaces: number;
  gapMs: number;
  timeoutSeconds: number;
  outDir: string;
  controllerNodeArgs?: string;
  controllerOutput?: string;
}

async function main(): Promise<void> {
  const o = new Command('bench-xds-scale')
    .description('full push, incremental change latency and controller memory of workload discovery at scale')
    .option('--pods <n>', 'Running pods (no processes: API objects only)', wholeNumber(1, 60_000), 2000)
    .option('--services <n>', 'ClusterIP services selecting the pods', wholeNumber(1, 60_000), 500)
    .option('--nodes <n>', 'Node objects the pods are spread over', wholeNumber(1, 250), 10)
    .option('--agents <n>', 'node agents (one per node, worker threads)', wholeNumber(1, 250), 4)
    .option('--changes <n>', 'pod changes to time', wholeNumber(0, 10_000), 20)
    .option('--namespaces <n>', 'ambient namespaces', wholeNumber(1, 1000), 50)
    .option('--gap-ms <n>', 'pause between changes', wholeNumber(0, 60_000), 250)
    .option('--timeout-seconds <n>', 'bound of every wait', wholeNumber(1, 3600), 120)
    .option('--out-dir <dir>', 'where the JSON and Markdown results go', join(REPO_ROOT, 'bench', 'results'))
    .option('--controller-node-args <flags>', 'extra node flags for the controller, space-separated, for profiling (e.g. "--trace-gc --cpu-prof")')
    .option('--controller-output <file>', "append the controller's stdout and stderr to this file")
    .parse()
    .opts<CliOptions>();
  const result = await runXdsScale({
    ...o,
    timeoutMs: o.timeoutSeconds * 1000,
    progress: new Progress(XDS_SCALE_STEPS),
    controllerNodeArgs: o.controllerNodeArgs?.split(/\s+/).filter(Boolean) ?? [],
  });
  const markdown = markdownReport(result);
  await mkdir(o.outDir, { recursive: true });
  const stem = join(o.outDir, `xds-scale-${result.startedAt.replace(/[:.]/g, '-')}`);
  await writeFile(`${stem}.json`, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(`${stem}.md`, markdown);
  process.stdout.write(markdown);
  process.stderr.write(`results: ${stem}.json\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-xds-scale: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
