/**
 * `npm run bench` (= node dist/bench/run.js): BENCHMARKS.md scenarios 1–7 for every path —
 * direct, the stunnel, haproxy and nginx TLS pairs, amesh with eBPF capture and amesh with
 * nftables capture — measured side by side, interleaved run by run, on simulated nodes (network
 * namespaces, bench/testbed.ts); scenario 6 is the waypoint bench (bench/l7-step.ts) run after the
 * testbed is gone; scenario 7 is a table derived from 2 and 4. Installs missing Debian packages
 * (bench/packages.ts). Writes bench/results/<time>.json (raw samples + tables) and .md, prints the
 * Markdown on stdout and progress on stderr.
 *
 * Needs root (network namespaces, eBPF, apt-get). Network safety: traffic only flows between
 * namespaces created here (and loopback for scenario 6); nothing is added to the caller's
 * namespace. Every namespace, process and pinned map is removed at the end, on errors, and on
 * SIGINT / SIGTERM.
 *
 * Exit status: 0 every path × scenario produced values, 1 some failed or produced none (results
 * are still written) or the testbed could not be built, 2 usage (bad flag, not root, missing tool
 * or build).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { describeError } from '../src/errors/amesh-error.js';
import { CleanupStack } from './cleanup.js';
import { ameshVersion, cpuDescription, h2Settings, kernelRelease, toolVersions } from './environment.js';
import { startL7Step, WAYPOINT_BENCH, type L7Child } from './l7-step.js';
import { BenchUsageError, CAPTURE_MODES, resolveSettings, SCENARIO_NAMES, type RawOptions, type RunSettings } from './options.js';
import { installPackages, missingRequirements, packagesOf, requirements } from './packages.js';
import { agentRuntime } from './mesh-setup.js';
import { buildPlan, describeTask, type MetricTask } from './plan.js';
import { clockTicksPerSecond, CpuMeter } from './proc-stat.js';
import { Progress } from './progress.js';
import { buildTables, formatNumber, harnessHealthy, missingMeasurements, renderMarkdown } from './report.js';
import type { BenchEnvironment, BenchResults, L7Result, LatencySample, MetricSample, MetricScenario, ThroughputSample } from './results.js';
import { runConnRate, type ConnRateSample } from './scenarios/connrate.js';
import { runLatency } from './scenarios/latency.js';
import { maxRateValues, numericFields, runMaxRate, runWrk } from './scenarios/maxrate.js';
import { memoryValues, runMemory } from './scenarios/memory.js';
import { runThroughput } from './scenarios/throughput.js';
import { DEFAULT_SETTLE, describeSettle, waitForQuiet, type SettleResult } from './settle.js';
import { AMESH_CLI, REPO_DIR, Testbed } from './testbed.js';

const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function parseArgs(argv: string[]): RawOptions {
  const program = new Command()
    .name('npm run bench --')
    .description('amesh benchmarks (BENCHMARKS.md scenarios 1–7): direct vs stunnel, haproxy and nginx TLS pairs vs amesh with eBPF and with nftables capture (needs root)')
    .option('--quick', 'CI smoke run (about a minute): 1 s durations, 1 run, -P1 both directions, 4 connections, 100 held connections; checks the harness, not the speed')
    .option('--runs <n>', 'repetitions of every measurement (median and min–max are reported) [3]')
    .option('--paths <list>', 'paths to measure [direct,stunnel,haproxy,nginx,amesh,amesh-nft]')
    .option('--scenarios <list>', `scenarios to run [${SCENARIO_NAMES.join(',')}]`)
    .option('--duration <s>', 'iperf3 seconds per run [10]')
    .option('--streams <list>', 'iperf3 parallel streams (-P) [1,4]')
    .option('--latency-duration <s>', 'measured seconds per latency run [30]')
    .option('--warmup <s>', 'unrecorded seconds at the target rate before each latency run [2]')
    .option('--rate <n>', 'requests per second of the latency scenario (and of L7) [1000]')
    .option('--connections <list>', 'keep-alive connections of the latency scenario [4,16]')
    .option('--maxrate-duration <s>', 'closed-loop seconds per maximum-rate run [10]')
    .option('--connrate-duration <s>', 'seconds per connection-rate run [10]')
    .option('--connrate-concurrency <list>', 'connections in flight in the connection-rate scenario, one measurement each [4,16]')
    .option('--memory-connections <list>', 'held connections of the memory scenario [1000,10000]')
    .option('--l7-duration <s>', 'seconds per L7 (waypoint) maximum-rate measurement; its latency runs last --latency-duration [10]')
    .option('--capture-mode <mode>', `AMESH_CAPTURE_MODE for the amesh path's agents (${CAPTURE_MODES.join(', ')}) [the agent's default]; amesh-nft always uses nftables`)
    .option('--no-install', 'fail instead of installing missing Debian packages')
    .option('--out <dir>', 'results directory [bench/results]')
    .option('--keep-temp', 'keep the temporary directory (configs, certificates, logs)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  program.parse(argv);
  return program.opts<RawOptions>();
}

/** One run of scenario 3, 4 or 5 (bench/scenarios/{maxrate,connrate,memory}.ts). */
type MetricRunner = (task: MetricTask, bed: Testbed, settings: Readonly<RunSettings>, meter: CpuMeter) => Promise<MetricSample>;

/** A scenario module's sample as the generic MetricSample the report tables: its numbers by name. */
function asMetric(sample: { path: MetricSample['path']; run: number; error?: string }, values: Record<string, number>): MetricSample {
  return { path: sample.path, run: sample.run, ...(Object.keys(values).length > 0 ? { values } : {}), ...(sample.error ? { error: sample.error } : {}) };
}

/**
 * The node agent's pool settings that make every connection its own HBONE connection: one stream
 * per connection, closed as that stream ends (src/config/agent-config.ts).
 */
const HANDSHAKE_PER_CONNECTION_ENV: Readonly<Record<string, string>> = { AMESH_HBONE_POOL_MAX_STREAMS: '1', AMESH_HBONE_POOL_IDLE_TIMEOUT_MS: '0' };

/**
 * A mesh path's handshake run is only what it claims when the server side accepted about one TLS
 * connection per client connection; fewer means the agents still reused pooled connections.
 */
function stillPooled(sample: ConnRateSample): string | undefined {
  const perConnection = sample.tunnelConnectionsPerConnection;
  if (perConnection === undefined || perConnection >= 0.9) return undefined;
  return `the agents made ${perConnection.toFixed(3)} HBONE connections per client connection, not one each: the pool settings ${Object.entries(HANDSHAKE_PER_CONNECTION_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} did not take effect`;
}

/** What a scenario could not measure on this machine (e.g. held connections beyond a descriptor limit), for the notes. */
const notMeasured = new Set<string>();

const METRIC_RUNNERS: Readonly<Record<MetricScenario, MetricRunner>> = {
  maxrate: async (task, bed, s, meter) => {
    const sample = await runMaxRate(task, bed, s, meter);
    return asMetric(sample, maxRateValues(sample));
  },
  connrate: async (task, bed, s, meter) => {
    // One wrk run per concurrency; each value is named by it (connectionsPerSecond@c16).
    const values: Record<string, number> = {};
    const errors: string[] = [];
    for (const concurrency of s.connRateConcurrency) {
      const sample = await runConnRate(task, bed, { connRateSeconds: s.connRateSeconds, connRateConcurrency: concurrency }, meter);
      for (const [k, v] of Object.entries(numericFields(sample, ['run', 'concurrency']))) values[`${k}@c${concurrency}`] = v;
      if (sample.error) errors.push(`${concurrency} concurrent: ${sample.error}`);
    }
    return asMetric({ path: task.path, run: task.run, ...(errors.length > 0 ? { error: errors.join('; ') } : {}) }, values);
  },
  handshakes: async (task, bed, s, meter) => {
    const concurrency = s.connRateConcurrency[0] ?? 4;
    const mesh = task.path === 'amesh' || task.path === 'amesh-nft';
    let sample: ConnRateSample;
    try {
      if (mesh) {
        await bed.restartAgents(task.path, HANDSHAKE_PER_CONNECTION_ENV);
        // Fresh processes: their JIT warms up on connections that are not counted, as the pairs' did in earlier scenarios.
        await waitForQuiet();
        await runWrk(task, bed, meter, { connections: concurrency, seconds: Math.min(2, s.connRateSeconds), headers: ['Connection: close'] });
        await waitForQuiet();
      }
      sample = await runConnRate(task, bed, { connRateSeconds: s.connRateSeconds, connRateConcurrency: concurrency }, meter);
    } finally {
      if (mesh) await bed.restartAgents(task.path);
    }
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(numericFields(sample, ['run', 'concurrency']))) values[`${k}@c${concurrency}`] = v;
    const error = sample.error ?? (mesh ? stillPooled(sample) : undefined);
    return asMetric({ path: task.path, run: task.run, ...(error ? { error } : {}) }, values);
  },
  memory: async (task, bed, s, meter) => {
    // Fresh agents per run: memory is not returned after a release, so a reused agent would start from a raised baseline.
    await bed.restartAgents(task.path);
    const sample = await runMemory(task, bed, s, meter);
    for (const why of sample.notMeasured ?? []) notMeasured.add(why);
    return asMetric(sample, memoryValues(sample));
  },
};

async function runMetric(task: MetricTask, bed: Testbed, settings: Readonly<RunSettings>, meter: CpuMeter): Promise<MetricSample> {
  try {
    return await METRIC_RUNNERS[task.scenario](task, bed, settings, meter);
  } catch (err) {
    return { path: task.path, run: task.run, error: err instanceof Error ? err.message : String(err) };
  }
}

/** How the measurements started: on a quiet machine, and which of them had to wait for it. */
function settleNote(waits: ReadonlyArray<SettleResult & { task: string }>): string {
  const rule = `Every measurement starts once the whole machine is below ${DEFAULT_SETTLE.busyPercentBelow} % busy for ${DEFAULT_SETTLE.windowMs} ms (at most ${DEFAULT_SETTLE.maxMs / 1000} s of waiting), so work a path leaves behind does not land in the next path's run`;
  if (waits.length === 0) return `${rule}; none had to wait over a second.`;
  const listed = waits.map((w) => `${w.task}: ${describeSettle(w) ?? ''}`).join('; ');
  return `${rule}. Waited over a second: ${listed}.`;
}

function notes(settings: RunSettings, env: BenchEnvironment): string[] {
  const out = [
    'Nodes and pods are network namespaces on one machine; the load generators, backends and proxies share its cores.',
    'Each path\'s pods have two nodes of their own: amesh on node1/node2 (eBPF capture), amesh-nft on node3/node4 (nftables TPROXY), the direct and comparator pods on node5/node6, which run no agent (the pods are unenrolled, tunnelProtocol NONE). No capture program or node conntrack table sees another path\'s traffic.',
    'Throughput is iperf3’s receiver-side rate; GB = 10^9 bytes received. Proxy CPU = utime + stime of both proxy process trees (/proc/<pid>/stat) over the client’s run.',
    'Latency is measured from each request’s intended send time (open loop, no coordinated omission), so it includes the load generator’s own scheduling lag (last table) on every path alike.',
    'Proxy cores per 1000 req/s = proxy CPU-seconds per 1000 requests, over all requests of the run (connection set-up and warm-up included).',
    'Threads: amesh is one Node process per node; haproxy nbthread 1; nginx worker_processes 1; stunnel runs a thread per connection (not configurable).',
    'TLS: every pair does mutual TLS 1.3 with the ECDSA P-256 certificates amesh issues; haproxy and nginx have session reuse off (a full handshake per connection, like HBONE); nginx’s client side does not verify the server certificate (nginx always checks a host name, mesh certificates carry only a SPIFFE URI), its server side verifies the client.',
    'The client pods reuse their own TIME_WAIT ports (net.ipv4.tcp_tw_reuse=1), as load generators do; the comparators’ clients dial 127.0.0.1, where that is the default.',
    '“Best comparator” is, per row, the pair with the best median (highest or lowest, as the metric wants).',
  ];
  const busy = Math.max(...env.loadAverageStart.slice(0, 1));
  if (busy > 0.5) out.push(`The machine was busy when the run started (1-min load average ${busy.toFixed(2)}): compare ratios, not absolute numbers.`);
  if (settings.paths.includes('amesh') && env.captureMode !== 'ebpf') out.push(`The amesh path’s capture mode was ${env.captureMode}, not ebpf.`);
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

function summarizeMetric(s: MetricSample): string {
  if (s.error) return `failed: ${s.error}`;
  return Object.entries(s.values ?? {})
    .map(([k, v]) => `${k} ${formatNumber(v)}`)
    .join(', ');
}

function fileStamp(iso: string): string {
  return iso.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/** Checks the basics and installs missing Debian packages; a message when the run cannot start. */
async function prepare(settings: Readonly<RunSettings>, install: boolean, progress: (line: string) => void): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'must run as root — it creates network namespaces, loads eBPF programs and installs missing Debian packages (sudo npm run bench)';
  const reqs = requirements(settings);
  let missing = await missingRequirements(reqs);
  if (missing.length > 0) {
    const packages = packagesOf(missing);
    const listing = missing.map((r) => `${r.what} (${r.pkg})`).join(', ');
    if (!install) return `missing: ${listing}; install them with: apt-get install -y ${packages.join(' ')} (or run without --no-install)`;
    try {
      await installPackages(packages, progress);
    } catch (err) {
      return `installing ${packages.join(' ')} failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    missing = await missingRequirements(reqs);
    if (missing.length > 0) return `still missing after apt-get install: ${missing.map((r) => r.what).join(', ')}`;
  }
  if (settings.paths.some((p) => p !== 'direct') && !existsSync(join(REPO_DIR, 'dist', 'src', 'cli', 'main.js'))) {
    return `the amesh CLI is not built (${AMESH_CLI} needs dist/src/cli/main.js); run npm run build`;
  }
  if (settings.scenarios.includes('l7') && !existsSync(WAYPOINT_BENCH)) return `the waypoint bench is not built (${WAYPOINT_BENCH}); run npm run build:ts`;
  if (settings.paths.some((p) => p.startsWith('amesh'))) {
    // BENCH_AGENT_NODE is probed here, before the testbed, not when the first agent starts.
    try {
      agentRuntime();
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }
  return undefined;
}

async function main(): Promise<number> {
  let settings: Readonly<RunSettings>;
  let install = true;
  try {
    const raw = parseArgs(process.argv);
    install = raw.install !== false;
    settings = resolveSettings(raw);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof BenchUsageError) {
      say(`bench: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const problem = await prepare(settings, install, say);
  if (problem) {
    say(`bench: ${problem}`);
    return 2;
  }

  const cleanup = new CleanupStack(say);
  let l7Child: L7Child | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      say(`bench: ${signal} again; still cleaning up (each step is bounded)`);
      return;
    }
    interrupted = true;
    say(`\nbench: ${signal}; cleaning up`);
    l7Child?.stop();
    void cleanup.run().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('unhandledRejection', (reason) => {
    say(`bench: unexpected error: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
    l7Child?.stop();
    void cleanup.run().then(() => process.exit(1));
  });

  const plan = buildPlan(settings);
  const l7 = settings.scenarios.includes('l7');
  const progress = new Progress(Testbed.setupSteps(settings) + plan.length + 1 + (l7 ? 1 : 0) + 1);
  const startedAt = new Date().toISOString();
  // The code measured: read before the run, not after it (a commit during a long run would be named instead).
  const amesh = await ameshVersion();
  const loadAverageStart = loadavg();
  const meter = new CpuMeter(await clockTicksPerSecond());
  const throughput: ThroughputSample[] = [];
  const latency: LatencySample[] = [];
  const metrics: Record<MetricScenario, MetricSample[]> = { maxrate: [], connrate: [], handshakes: [], memory: [] };
  /** Measurements that waited over a second for the machine to settle (bench/settle.ts), for the notes. */
  const settleWaits: Array<SettleResult & { task: string }> = [];
  let captureMode = 'n/a';
  let captureModeNft = 'n/a';
  let stunnelTls = 'n/a';
  try {
    const bed = await Testbed.start(settings, progress, cleanup);
    captureMode = bed.captureMode;
    captureModeNft = bed.captureModes['amesh-nft'] ?? 'n/a';
    stunnelTls = bed.stunnelTls;
    for (const task of plan) {
      if (interrupted) return 130;
      progress.step(`${describeTask(task, settings.runs)} …`);
      const settle = await waitForQuiet();
      const settled = describeSettle(settle);
      if (settled) {
        progress.info(settled);
        settleWaits.push({ task: describeTask(task, settings.runs), ...settle });
      }
      if (task.scenario === 'throughput') {
        const sample = await runThroughput(task, bed, settings.throughputSeconds, meter);
        throughput.push(sample);
        progress.info(summarizeThroughput(sample));
      } else if (task.scenario === 'latency') {
        const sample = await runLatency(task, bed, settings, meter);
        latency.push(sample);
        progress.info(summarizeLatency(sample));
      } else {
        const sample = await runMetric(task, bed, settings, meter);
        metrics[task.scenario].push(sample);
        progress.info(summarizeMetric(sample));
      }
      if (interrupted) return 130;
    }
  } catch (err) {
    say(`bench: ${describeError(err)}`);
    return 1;
  } finally {
    progress.step('cleaning up: stopping processes, removing capture, pinned maps and namespaces');
    await cleanup.run();
  }
  if (interrupted) return 130;

  let l7Result: L7Result | undefined;
  if (l7) {
    // After the testbed is gone: the waypoint bench runs on loopback and should not share the cores with idle agents.
    progress.step(`scenario 6: the waypoint bench (node ${WAYPOINT_BENCH}, ${settings.l7Seconds} s at the maximum rate, ${settings.latencySeconds} s at ${settings.rate} req/s per path)`);
    // The testbed's teardown (the memory scenario's 10 000 connections, the namespaces) keeps the
    // kernel busy after cleanup returns; the full runs' L7 part started at load average 7-8.
    const settle = await waitForQuiet();
    const settled = describeSettle(settle);
    if (settled) {
      progress.info(settled);
      settleWaits.push({ task: 'scenario 6 (the waypoint bench)', ...settle });
    }
    l7Child = startL7Step({ seconds: settings.l7Seconds, latencySeconds: settings.latencySeconds, warmupSeconds: settings.quick ? 0 : settings.warmupSeconds, rate: settings.rate }, (line) => progress.info(line));
    l7Result = await l7Child.result;
    l7Child = undefined;
    if (interrupted) return 130;
    if (l7Result.error) progress.info(`failed: ${l7Result.error}`);
  }

  progress.step('writing results');
  const agents = agentRuntime();
  const environment: BenchEnvironment = {
    node: process.version,
    ...(agents.path !== process.execPath ? { agentNode: `v${agents.version}` } : {}),
    openssl: process.versions.openssl ?? 'unknown',
    kernel: kernelRelease(),
    ...(await toolVersions()),
    amesh,
    cpus: cpuDescription(),
    clockTicksPerSecond: meter.hz,
    captureMode,
    captureModeNft,
    h2Settings: await h2Settings(),
    stunnelTls,
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
    ...metrics,
    ...(l7Result ? { l7: l7Result } : {}),
    notes: [...notes(settings, environment), settleNote(settleWaits), ...notMeasured],
  };
  const tables = buildTables(results);
  const markdown = renderMarkdown(results, tables);
  const outDir = settings.outDir ?? join(REPO_DIR, 'bench', 'results');
  await mkdir(outDir, { recursive: true });
  const base = join(outDir, fileStamp(startedAt));
  await writeFile(`${base}.json`, `${JSON.stringify({ ...results, scenarios: settings.scenarios, tables }, null, 2)}\n`);
  await writeFile(`${base}.md`, markdown);
  process.stdout.write(markdown);
  progress.info(`wrote ${base}.json and ${base}.md`);
  if (!harnessHealthy(results, settings.scenarios)) {
    const missing = missingMeasurements(results, settings.scenarios);
    say(`bench: some measurements failed (see "Failures" in the report)${missing.length > 0 ? `; no value at all for: ${missing.join(', ')}` : ''}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`bench: ${describeError(err)}`);
    process.exit(1);
  },
);
