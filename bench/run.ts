/**
 * `npm run bench` (= node dist/bench/run.js): BENCHMARKS.md scenarios 1 (bulk throughput) and 2
 * (latency at a fixed rate) between two simulated nodes, for three paths — direct, a stunnel pair
 * and amesh — measured side by side, interleaved run by run. Writes bench/results/<time>.json
 * (raw samples + tables) and .md, prints the Markdown on stdout and progress on stderr.
 *
 * Needs root (network namespaces, eBPF). Network safety: traffic only flows between namespaces
 * created here; nothing is added to the caller's namespace. Every namespace, process and pinned
 * map is removed at the end, on errors, and on SIGINT / SIGTERM.
 *
 * Exit status: 0 all measurements produced values, 1 some failed (results are still written) or
 * the testbed could not be built, 2 usage (bad flag, not root, missing tool or build).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command, CommanderError } from 'commander';
import { describeError } from '../src/errors/amesh-error.js';
import { CleanupStack } from './cleanup.js';
import { ameshVersion, cpuDescription, h2Settings, kernelRelease, toolVersions } from './environment.js';
import { BenchUsageError, CAPTURE_MODES, resolveSettings, type RawOptions, type RunSettings } from './options.js';
import { buildPlan, describeTask } from './plan.js';
import { clockTicksPerSecond, CpuMeter } from './proc-stat.js';
import { Progress } from './progress.js';
import { buildTables, formatNumber, harnessHealthy, renderMarkdown } from './report.js';
import type { BenchEnvironment, BenchResults, LatencySample, ThroughputSample } from './results.js';
import { runLatency } from './scenarios/latency.js';
import { runThroughput } from './scenarios/throughput.js';
import { AMESH_CLI, REPO_DIR, Testbed } from './testbed.js';

const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function parseArgs(argv: string[]): RawOptions {
  const program = new Command()
    .name('npm run bench --')
    .description('amesh benchmarks: bulk throughput (iperf3) and latency at a fixed rate, direct vs stunnel pair vs amesh (needs root)')
    .option('--quick', 'CI smoke run: 2 s durations, 1 run, -P1 (both directions) and 4 connections; checks the harness, not the speed')
    .option('--runs <n>', 'repetitions of every measurement (median and min–max are reported) [3]')
    .option('--paths <list>', 'paths to measure [direct,stunnel,amesh]')
    .option('--scenarios <list>', 'scenarios to run [throughput,latency]')
    .option('--duration <s>', 'iperf3 seconds per run [10]')
    .option('--streams <list>', 'iperf3 parallel streams (-P) [1,4]')
    .option('--latency-duration <s>', 'measured seconds per latency run [30]')
    .option('--warmup <s>', 'unrecorded seconds at the target rate before each latency run [2]')
    .option('--rate <n>', 'requests per second of the latency scenario [1000]')
    .option('--connections <list>', 'keep-alive connections of the latency scenario [4,16]')
    .option('--capture-mode <mode>', `AMESH_CAPTURE_MODE for the agents (${CAPTURE_MODES.join(', ')}) [the agent's default]`)
    .option('--out <dir>', 'results directory [bench/results]')
    .option('--keep-temp', 'keep the temporary directory (configs, certificates, logs)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  program.parse(argv);
  return program.opts<RawOptions>();
}

async function missingTools(settings: RunSettings): Promise<string[]> {
  const tools = ['nsenter', 'ip', 'ss', 'curl', 'getconf', 'env'];
  if (settings.scenarios.includes('throughput')) tools.push('iperf3');
  if (settings.paths.includes('stunnel')) tools.push('stunnel');
  const missing: string[] = [];
  for (const tool of tools) {
    try {
      await promisify(execFile)('sh', ['-c', 'command -v "$1"', 'sh', tool]);
    } catch {
      missing.push(tool);
    }
  }
  return missing;
}

function notes(settings: RunSettings, env: BenchEnvironment): string[] {
  const out = [
    'Two nodes and four pods are network namespaces on one machine; the load generators, backends and proxies share its cores.',
    'The amesh agents run throughout; the direct and stunnel pods are unenrolled (tunnelProtocol NONE), so their traffic crosses the nodes uncaptured.',
    'Throughput is iperf3’s receiver-side rate; GB = 10^9 bytes received. Proxy CPU = utime + stime of both proxy process trees (/proc/<pid>/stat) over the client’s run.',
    'Latency is measured from each request’s intended send time (open loop, no coordinated omission), so it includes the load generator’s own scheduling lag (last table) on every path alike.',
    'Proxy cores per 1000 req/s = proxy CPU-seconds per 1000 requests, over all requests of the run (connection set-up and warm-up included).',
    'stunnel: one process per side, a thread per connection; amesh: one Node process per node.',
  ];
  const busy = Math.max(...env.loadAverageStart.slice(0, 1));
  if (busy > 0.5) out.push(`The machine was busy when the run started (1-min load average ${busy.toFixed(2)}): compare ratios, not absolute numbers.`);
  if (settings.paths.includes('amesh') && env.captureMode !== 'ebpf') out.push(`Capture mode was ${env.captureMode}, not ebpf.`);
  return out;
}

function summarizeThroughput(s: ThroughputSample): string {
  if (s.error) return `failed: ${s.error}`;
  const cpu = s.cpuSecondsPerGB === undefined ? '' : `, proxies ${formatNumber(s.cpuSecondsPerGB)} CPU-s/GB`;
  return `${formatNumber(s.gbps ?? 0)} Gbit/s${cpu}`;
}

function summarizeLatency(s: LatencySample): string {
  if (s.error) return `failed: ${s.error}`;
  const cores = s.coresPer1000Rps === undefined ? '' : `, proxies ${formatNumber(s.coresPer1000Rps)} cores/1000 rps`;
  return `p50 ${formatNumber(s.p50Ms ?? 0)} ms, p99 ${formatNumber(s.p99Ms ?? 0)} ms, ${formatNumber(s.achievedRate ?? 0)} req/s, ${s.errors ?? 0} errors${cores}`;
}

function fileStamp(iso: string): string {
  return iso.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

async function main(): Promise<number> {
  let settings: Readonly<RunSettings>;
  try {
    settings = resolveSettings(parseArgs(process.argv));
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof BenchUsageError) {
      say(`bench: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (process.getuid?.() !== 0) {
    say('bench: must run as root — it creates network namespaces and loads eBPF programs (sudo npm run bench)');
    return 2;
  }
  const missing = await missingTools(settings);
  if (missing.length > 0) {
    say(`bench: missing tools: ${missing.join(', ')} (scripts/setup.sh installs them)`);
    return 2;
  }
  if ((settings.paths.includes('amesh') || settings.paths.includes('stunnel')) && !existsSync(join(REPO_DIR, 'dist', 'src', 'cli', 'main.js'))) {
    say(`bench: the amesh CLI is not built (${AMESH_CLI} needs dist/src/cli/main.js); run npm run build`);
    return 2;
  }

  const cleanup = new CleanupStack(say);
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      say(`bench: ${signal} again; still cleaning up (each step is bounded)`);
      return;
    }
    interrupted = true;
    say(`\nbench: ${signal}; cleaning up`);
    void cleanup.run().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('unhandledRejection', (reason) => {
    say(`bench: unexpected error: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
    void cleanup.run().then(() => process.exit(1));
  });

  const plan = buildPlan(settings);
  const progress = new Progress(Testbed.setupSteps(settings) + plan.length + 1);
  const startedAt = new Date().toISOString();
  const loadAverageStart = loadavg();
  const meter = new CpuMeter(await clockTicksPerSecond());
  try {
    const bed = await Testbed.start(settings, progress, cleanup);
    const throughput: ThroughputSample[] = [];
    const latency: LatencySample[] = [];
    for (const task of plan) {
      if (interrupted) return 130;
      progress.step(`${describeTask(task, settings.runs)} …`);
      if (task.scenario === 'throughput') {
        const sample = await runThroughput(task, bed, settings.throughputSeconds, meter);
        if (interrupted) return 130;
        throughput.push(sample);
        progress.info(summarizeThroughput(sample));
      } else {
        const sample = await runLatency(task, bed, settings, meter);
        if (interrupted) return 130;
        latency.push(sample);
        progress.info(summarizeLatency(sample));
      }
    }
    if (interrupted) return 130;

    progress.step('writing results');
    const environment: BenchEnvironment = {
      node: process.version,
      openssl: process.versions.openssl ?? 'unknown',
      kernel: kernelRelease(),
      ...(await toolVersions()),
      amesh: await ameshVersion(),
      cpus: cpuDescription(),
      clockTicksPerSecond: meter.hz,
      captureMode: bed.captureMode,
      h2Settings: await h2Settings(),
      stunnelTls: bed.stunnelTls,
      loadAverageStart,
      loadAverageEnd: loadavg(),
    };
    const { scenarios: _s, captureMode: _c, outDir: _o, keepTemp: _k, ...benchSettings } = settings;
    const results: BenchResults = {
      schema: 1,
      startedAt,
      finishedAt: new Date().toISOString(),
      settings: benchSettings,
      environment,
      throughput,
      latency,
      notes: notes(settings, environment),
    };
    const tables = buildTables(results);
    const markdown = renderMarkdown(results, tables);
    const outDir = settings.outDir ?? join(REPO_DIR, 'bench', 'results');
    await mkdir(outDir, { recursive: true });
    const base = join(outDir, fileStamp(startedAt));
    await writeFile(`${base}.json`, `${JSON.stringify({ ...results, tables }, null, 2)}\n`);
    await writeFile(`${base}.md`, markdown);
    process.stdout.write(markdown);
    progress.info(`wrote ${base}.json and ${base}.md`);
    if (!harnessHealthy(results)) {
      say('bench: some measurements failed (see "Failures" in the report)');
      return 1;
    }
    return 0;
  } catch (err) {
    say(`bench: ${describeError(err)}`);
    return 1;
  } finally {
    say('cleaning up: stopping processes, removing capture, pinned maps and namespaces');
    await cleanup.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`bench: ${describeError(err)}`);
    process.exit(1);
  },
);
