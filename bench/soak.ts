/**
 * `npm run soak` (= node dist/bench/soak.js [--duration 600] [--connections 10000] [--rate 5000]):
 * issue #12's load and soak test. On simulated nodes (network namespaces) with two node agents
 * (eBPF capture, HBONE) and a waypoint (bench/soak-topology.ts), it holds `--connections` idle
 * tunnelled connections and, meanwhile, drives `--rate` requests/s open loop through the agents
 * and the waypoint for `--duration` seconds, sampling the agents' and the waypoint's RSS and open
 * descriptors every `--interval` seconds (progress on stderr). Verdict (bench/soak-verdict.ts):
 * memory and descriptors stable after warm-up, errors within `--max-error-ratio`, the target rate
 * reached. `--slow-reader` first runs the back-pressure check (bench/soak-slow-reader.ts).
 * Writes bench/results/soak-<time>.json.
 *
 * Exit status: 0 passed, 1 failed (the reasons are printed) or could not run, 2 usage.
 * Needs root and `npm run build:ts`. Network safety: traffic only between namespaces created
 * here; everything is removed at the end, on errors and on SIGINT / SIGTERM.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { REPO_ROOT } from '../src/sandbox/install.js';
import { wholeNumber } from './cli.js';
import { CleanupStack } from './cleanup.js';
import { runSoak, type SoakResult } from './soak-run.js';
import { SOAK_WAYPOINT } from './soak-topology.js';
import { DEFAULT_LIMITS } from './soak-verdict.js';

interface CliOptions {
  duration: number;
  connections: number;
  rate: number;
  loadConnections: number;
  interval: number;
  holdConcurrency: number;
  maxErrorRatio: number;
  rssSlope: number;
  fdTolerance: number;
  minRateFraction: number;
  slowReader?: boolean;
  slowReaderMib: number;
  slowReaderPause: number;
  slowReaderMaxGrowth: number;
  injectLeakKib: number;
  injectLeakFds: number;
  keepTemp?: boolean;
  gc: boolean;
  outDir: string;
}

function fraction(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 to 1');
  return n;
}
function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

export function summary(r: SoakResult): string {
  const lines = [
    `soak ${r.verdict.ok ? 'PASSED' : 'FAILED'}: ${r.options.connections} held connections, ${r.load.achievedRate.toFixed(0)} req/s achieved of ${r.options.rate} targeted for ${r.options.durationSeconds} s`,
    `requests: ${r.load.sent} sent, ${r.load.completed} ok, ${r.load.errors} failed${Object.keys(r.load.errorKinds).length ? ` (${JSON.stringify(r.load.errorKinds)})` : ''}, ${r.load.backlogDropped} not sent (generator backlog full); latency p50 ${r.load.p50.toFixed(2)} ms p90 ${r.load.p90.toFixed(2)} ms p99 ${r.load.p99.toFixed(2)} ms max ${r.load.max.toFixed(0)} ms`,
    `held connections: up in ${(r.hold.upMs / 1000).toFixed(1)} s, ${r.hold.closedWhileHeld} closed while held`,
    ...r.verdict.processes.map((p) => `${p.name}: RSS${p.youngGenerationExcluded ? ' outside the young generation' : ''} ${p.meanRssMib.toFixed(0)} MiB, slope ${p.rssSlopePercentPerMinute.toFixed(2)} %/min; fds ${p.fdMin}–${p.fdMax} (median ${p.fdMedian}) over the last ${r.options.durationSeconds - r.verdict.windowStartSeconds} s`),
    ...(r.loadCpu ? [`CPU over ${r.loadCpu.seconds.toFixed(0)} s of load (cores): ${Object.entries(r.loadCpu.cores).map(([n, c]) => `${n} ${c.toFixed(2)}`).join(', ')}`] : []),
    ...(r.machineCpu ? [`machine over the load: busy ${r.machineCpu.busyPercent.toFixed(1)} %, idle ${r.machineCpu.idlePercent.toFixed(1)} %, steal ${r.machineCpu.stealPercent.toFixed(1)} % (the hypervisor's share)`] : []),
    `load average ${r.loadAverageStart.map((l) => l.toFixed(2)).join(' ')} at start, ${r.loadAverageEnd.map((l) => l.toFixed(2)).join(' ')} at end`,
  ];
  if (r.slowReader) lines.push(`slow reader: ${r.slowReader.ok ? 'ok' : 'FAILED'}, ${Object.entries(r.slowReader.agents).map(([n, a]) => `${n} +${a.growthMib.toFixed(1)} MiB`).join(', ')}`);
  for (const f of [...r.verdict.failures, ...(r.slowReader?.failures ?? [])]) lines.push(`  ✗ ${f}`);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const o = new Command('npm run soak --')
    .description("issue #12's soak: held connections + open-loop requests through two node agents and a waypoint, memory and descriptors must stay flat (needs root)")
    .option('--duration <s>', 'seconds of request load while the connections are held', wholeNumber(10, 86_400), 600)
    .option('--connections <n>', 'idle tunnelled connections held throughout', wholeNumber(1, 19_000), 10_000)
    .option('--rate <n>', 'requests per second, open loop, through the agents and the waypoint', wholeNumber(1, 100_000), 5000)
    .option('--load-connections <n>', 'keep-alive connections carrying the requests', wholeNumber(1, 1024), 64)
    .option('--interval <s>', 'seconds between samples and progress lines', wholeNumber(1, 600), 10)
    .option('--hold-concurrency <n>', 'held connections in set-up at a time (they come up gradually)', wholeNumber(1, 5000), 100)
    .option('--max-error-ratio <r>', 'failed requests / sent (and closed / held) allowed', fraction, DEFAULT_LIMITS.maxErrorRatio)
    .option('--rss-slope <pct>', 'largest RSS slope after warm-up (V8’s young generation taken out), % of RSS per minute', positive, DEFAULT_LIMITS.rssSlopePercentPerMinute)
    .option('--fd-tolerance <pct>', 'open descriptors after warm-up within ± this % of their median', positive, DEFAULT_LIMITS.fdTolerancePercent)
    .option('--min-rate-fraction <r>', 'achieved / target request rate required', fraction, DEFAULT_LIMITS.minRateFraction)
    .option('--no-gc', 'read RSS without forcing a full GC in each measured process first (POST /debug/gc)')
    .option('--slow-reader', 'first run the slow-reader back-pressure check')
    .option('--slow-reader-mib <n>', 'MiB the slow-reader client sends', wholeNumber(1, 4096), 512)
    .option('--slow-reader-pause <s>', 'seconds the slow reader reads nothing', wholeNumber(1, 300), 20)
    .option('--slow-reader-max-growth <mib>', 'largest agent RSS growth allowed during the slow-reader check', positive, 64)
    .option('--inject-leak-kib <n>', 'TEST ONLY: the waypoint keeps this many KiB per second (shows the verdict can fail)', wholeNumber(0, 1_000_000), 0)
    .option('--inject-leak-fds <n>', 'TEST ONLY: the waypoint opens this many descriptors per minute and keeps them', wholeNumber(0, 6000), 0)
    .option('--keep-temp', 'keep the temporary directory (configs, certificates, logs)')
    .option('--out-dir <dir>', 'where soak-<time>.json goes', join(REPO_ROOT, 'bench', 'results'))
    .parse()
    .opts<CliOptions>();
  if (process.getuid?.() !== 0) {
    say('npm run soak: must run as root — it creates network namespaces and loads eBPF programs (sudo npm run soak)');
    return 2;
  }
  if (!existsSync(SOAK_WAYPOINT)) {
    say(`npm run soak: ${SOAK_WAYPOINT} is missing — run npm run build:ts first`);
    return 2;
  }
  const cleanup = new CleanupStack(say);
  const stop = (): void => {
    say('interrupted: cleaning up');
    void cleanup.run().then(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const result = await runSoak(
      {
        durationSeconds: o.duration,
        connections: o.connections,
        rate: o.rate,
        loadConnections: o.loadConnections,
        intervalSeconds: o.interval,
        gcBeforeSample: o.gc,
        holdConcurrency: o.holdConcurrency,
        limits: { ...DEFAULT_LIMITS, maxErrorRatio: o.maxErrorRatio, rssSlopePercentPerMinute: o.rssSlope, fdTolerancePercent: o.fdTolerance, minRateFraction: o.minRateFraction },
        ...(o.slowReader ? { slowReader: { bytes: o.slowReaderMib * 2 ** 20, pauseSeconds: o.slowReaderPause, maxGrowthMib: o.slowReaderMaxGrowth } } : {}),
        leakKibPerSecond: o.injectLeakKib,
        leakFdsPerMinute: o.injectLeakFds,
        keepTemp: o.keepTemp === true,
        log: say,
      },
      cleanup,
    );
    await mkdir(o.outDir, { recursive: true });
    const file = join(o.outDir, `soak-${result.startedAt.replace(/[:.]/g, '-')}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(summary(result));
    say(`results: ${file}`);
    return result.verdict.ok && (result.slowReader?.ok ?? true) ? 0 : 1;
  } catch (err) {
    say(`soak could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await cleanup.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
