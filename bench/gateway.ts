/**
 * `npm run bench:gateway` (= node dist/bench/gateway.js [--runs 3] [--duration 10]
 * [--latency-duration 30] [--quick] [--paths direct,nginx,amesh]): issue #8's performance target —
 * edge requests/s per proxy core and p99 at 1000 req/s through the amesh ingress gateway into the
 * mesh (HTTPS in, HBONE out) vs nginx terminating TLS and proxying to the same backend. How it
 * measures: bench/gateway-harness.ts. Progress on stderr, the Markdown table on stdout, JSON and
 * Markdown in bench/results/gateway-<time>.{json,md}. Needs `npm run build:ts`, wrk and nginx
 * (scripts/setup.sh); a missing comparator is skipped and the report says so.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { REPO_ROOT } from '../src/sandbox/install.js';
import { runBenchCli, subsetOf, wholeNumber, writeBenchResults } from './cli.js';
import { gatewayBenchSteps, GATEWAY_PATHS, runGatewayBench, type GatewayPathId } from './gateway-harness.js';
import { gatewayMarkdown } from './gateway-report.js';
import { Progress } from './progress.js';

interface CliOptions {
  runs: number;
  duration: number;
  latencyDuration: number;
  warmup: number;
  rate: number;
  connections: number;
  bytes: number;
  probe: number;
  quick?: boolean;
  paths: GatewayPathId[];
  accessLog?: boolean;
  timeoutSeconds: number;
  outDir: string;
  gatewayNodeArgs?: string;
}

async function main(): Promise<void> {
  const o = new Command('bench-gateway')
    .description('issue #8: the amesh ingress gateway (HTTPS in, HBONE into the mesh) vs nginx terminating TLS, against the same backend')
    .option('--runs <n>', 'interleaved rounds; every figure is their median with min–max', wholeNumber(1, 50), 3)
    .option('--duration <s>', 'max-rate (closed loop) seconds per path and run', wholeNumber(1, 3600), 10)
    .option('--latency-duration <s>', 'open-loop latency seconds per path and run', wholeNumber(1, 3600), 30)
    .option('--warmup <s>', 'warm-up seconds before each measurement', wholeNumber(0, 600), 2)
    .option('--rate <n>', 'open-loop requests per second', wholeNumber(1, 100_000), 1000)
    .option('--connections <n>', 'connections (both scenarios)', wholeNumber(1, 1024), 16)
    .option('--bytes <n>', 'response body bytes', wholeNumber(0, 10_000_000), 1024)
    .option('--probe <n>', 'correctness probe requests per path', wholeNumber(1, 100_000), 50)
    .option('--quick', 'smoke run: 2 s per measurement, 1 s warm-up')
    .option('--paths <list>', `comma-separated subset of ${GATEWAY_PATHS.join(',')}`, subsetOf(GATEWAY_PATHS, 'path'), [...GATEWAY_PATHS])
    .option('--access-log', "turn the gateway's buffered access log on (off by default, as nginx's here)")
    .option('--timeout-seconds <n>', 'bound of every start-up wait', wholeNumber(1, 600), 30)
    .option('--gateway-node-args <flags>', 'extra node flags for the gateway process, space-separated, for profiling (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")')
    .option('--out-dir <dir>', 'where the JSON and Markdown results go', join(REPO_ROOT, 'bench', 'results'))
    .parse()
    .opts<CliOptions>();
  const result = await runGatewayBench({
    paths: o.paths,
    runs: o.runs,
    maxRateSeconds: o.quick ? 2 : o.duration,
    latencySeconds: o.quick ? 2 : o.latencyDuration,
    warmupSeconds: o.quick ? 1 : o.warmup,
    rate: o.rate,
    connections: o.connections,
    responseBytes: o.bytes,
    probeRequests: o.probe,
    gatewayAccessLog: o.accessLog === true,
    timeoutMs: o.timeoutSeconds * 1000,
    gatewayNodeArgs: o.gatewayNodeArgs?.split(/\s+/).filter(Boolean) ?? [],
    progress: new Progress(gatewayBenchSteps(o.paths, o.runs)),
  });
  await writeBenchResults(o.outDir, 'gateway', result, gatewayMarkdown(result));
}

runBenchCli('bench-gateway', main);
