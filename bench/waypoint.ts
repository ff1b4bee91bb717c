/**
 * `npm run bench:waypoint` (= node dist/bench/waypoint.js [--duration 10] [--latency-duration 20]
 * [--quick] [--paths direct,amesh-hbone,…]): BENCHMARKS.md scenario 6, issue #6's performance
 * target — requests/s per proxy core through one waypoint hop with a weighted route and a header
 * match vs haproxy and nginx doing the same routing, and p99 added latency at 1000 req/s. How it
 * measures: bench/waypoint-harness.ts. Progress on stderr, the Markdown table on stdout, JSON and
 * Markdown in bench/results/waypoint-<time>.{json,md}. Needs `npm run build:ts`, wrk, haproxy and
 * nginx (scripts/setup.sh); a missing comparator is skipped and the report says so.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { REPO_ROOT } from '../src/sandbox/install.js';
import { runBenchCli, subsetOf, wholeNumber, writeBenchResults } from './cli.js';
import { Progress } from './progress.js';
import { runWaypointBench, waypointBenchSteps, WAYPOINT_PATHS, type WaypointPathId } from './waypoint-harness.js';
import { waypointMarkdown } from './waypoint-report.js';

interface CliOptions {
  duration: number;
  latencyDuration: number;
  warmup: number;
  rate: number;
  connections: number;
  bytes: number;
  probe: number;
  quick?: boolean;
  paths: WaypointPathId[];
  accessLog?: boolean;
  timeoutSeconds: number;
  outDir: string;
  waypointNodeArgs?: string;
}

async function main(): Promise<void> {
  const o = new Command('bench-waypoint')
    .description('scenario 6: the waypoint vs haproxy and nginx doing the same header + weighted routing')
    .option('--duration <s>', 'max-rate (closed loop) seconds per path', wholeNumber(1, 3600), 10)
    .option('--latency-duration <s>', 'open-loop latency seconds per path', wholeNumber(1, 3600), 20)
    .option('--warmup <s>', 'warm-up seconds before each measurement', wholeNumber(0, 600), 2)
    .option('--rate <n>', 'open-loop requests per second', wholeNumber(1, 100_000), 1000)
    .option('--connections <n>', 'connections (both scenarios)', wholeNumber(1, 1024), 16)
    .option('--bytes <n>', 'response body bytes', wholeNumber(0, 10_000_000), 1024)
    .option('--probe <n>', 'routing probe requests with and without the header', wholeNumber(20, 100_000), 200)
    .option('--quick', 'smoke run: 2 s per measurement, 1 s warm-up')
    .option('--paths <list>', `comma-separated subset of ${WAYPOINT_PATHS.join(',')}`, subsetOf(WAYPOINT_PATHS, 'path'), [...WAYPOINT_PATHS])
    .option('--access-log', "turn the waypoint's buffered access log on (off by default, as haproxy's and nginx's here)")
    .option('--timeout-seconds <n>', 'bound of every start-up wait', wholeNumber(1, 600), 30)
    .option('--waypoint-node-args <flags>', 'extra node flags for the waypoint process, space-separated, for profiling (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")')
    .option('--out-dir <dir>', 'where the JSON and Markdown results go', join(REPO_ROOT, 'bench', 'results'))
    .parse()
    .opts<CliOptions>();
  const result = await runWaypointBench({
    paths: o.paths,
    maxRateSeconds: o.quick ? 2 : o.duration,
    latencySeconds: o.quick ? 2 : o.latencyDuration,
    warmupSeconds: o.quick ? 1 : o.warmup,
    rate: o.rate,
    connections: o.connections,
    responseBytes: o.bytes,
    probeRequests: o.probe,
    waypointAccessLog: o.accessLog === true,
    timeoutMs: o.timeoutSeconds * 1000,
    waypointNodeArgs: o.waypointNodeArgs?.split(/\s+/).filter(Boolean) ?? [],
    progress: new Progress(waypointBenchSteps(o.paths)),
  });
  await writeBenchResults(o.outDir, 'waypoint', result, waypointMarkdown(result));
}

runBenchCli('bench-waypoint', main);
