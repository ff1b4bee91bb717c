/**
 * One soak run (`npm run soak`, bench/soak.ts; the short CI version test/privileged/soak-short.test.ts):
 * build the soak topology (bench/soak-topology.ts), bring up the held connections gradually
 * (load/hold-client.ts), then, while they are held, drive the open-loop request load through
 * the agents and the waypoint (load/soak-load-client.ts) for the duration. Every interval it
 * samples RSS (/proc/<pid>/status VmRSS) and open descriptors (/proc/<pid>/fd) of both agents and
 * the waypoint (after a forced full GC in each, unless `gcBeforeSample` is off) and prints a progress line; at the end bench/soak-verdict.ts judges the samples.
 *
 * Bounded: every wait has a deadline (ramp, load duration + 60 s); the load client and the holder
 * bound themselves too. Everything it starts is registered with the caller's CleanupStack.
 */
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import type { SpawnedProcess } from '../src/sandbox/network/topology.js';
import type { CleanupStack } from './cleanup.js';
import type { SoakDoneEvent, SoakIntervalEvent, SoakLoadEvent } from './load/soak-load-client.js';
import { runSlowReader, type SlowReaderResult } from './soak-slow-reader.js';
import { HOLD_CLIENT, SERVER_POD, SERVICE, SOAK_LOAD_CLIENT, SoakTopology } from './soak-topology.js';
import { judgeSoak, type ProcessSample, type Sample, type Verdict, type VerdictLimits } from './soak-verdict.js';
import { HOLD_PORT } from './testbed.js';
import { machineCpuShares, readMachineCpu, readProcessTable, treeCpuTicks, type MachineCpu } from './proc-stat.js';
import { sampleProcess } from './soak-sample.js';

export interface SoakOptions {
  durationSeconds: number;
  connections: number;
  rate: number;
  /** Keep-alive connections of the request load (not counted in `connections`). */
  loadConnections: number;
  intervalSeconds: number;
  /** Force a full GC in each measured process before reading its RSS (POST /debug/gc). */
  gcBeforeSample: boolean;
  /** Held connections in set-up at a time (they come up gradually). */
  holdConcurrency: number;
  limits: VerdictLimits;
  /** Run the slow-reader back-pressure check before the soak. */
  slowReader?: { bytes: number; pauseSeconds: number; maxGrowthMib: number };
  leakKibPerSecond?: number;
  leakFdsPerMinute?: number;
  keepTemp?: boolean;
  log: (line: string) => void;
}

export interface SoakResult {
  startedAt: string;
  options: Omit<SoakOptions, 'log'>;
  loadAverageStart: number[];
  loadAverageEnd: number[];
  hold: { connections: number; upMs: number; closedWhileHeld: number };
  load: SoakDoneEvent;
  intervals: SoakIntervalEvent[];
  samples: Sample[];
  /** Cores used over the load window (CPU seconds / wall seconds) by the load generator, the HTTP backend, the agents and the waypoint. */
  loadCpu?: { seconds: number; cores: Record<string, number> };
  /** The whole machine over the load (/proc/stat): how busy it was, and what the hypervisor took (steal). */
  machineCpu?: { busyPercent: number; idlePercent: number; stealPercent: number };
  verdict: Verdict;
  slowReader?: SlowReaderResult;
}

export class SoakError extends Error {
  readonly code = 'BENCH_SOAK';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SoakError';
  }
}

const gcFailed = new Set<string>();

async function sampleAll(bed: SoakTopology, gc: boolean, log: (line: string) => void): Promise<Record<string, ProcessSample>> {
  const out: Record<string, ProcessSample> = {};
  for (const m of bed.measured) {
    if (m.process.exitStatus()) continue;
    const v8 = gc ? await bed.collectGarbage(m) : undefined;
    if (gc && !v8 && !gcFailed.has(m.name)) {
      gcFailed.add(m.name);
      log(`warning: POST /debug/gc failed in ${m.name}; its RSS is read with garbage in it`);
    }
    try {
      out[m.name] = { ...(await sampleProcess(m.process.pid)), ...(v8 ? { v8 } : {}) };
    } catch {
      // exited between the check and the read: absent from this sample, which the verdict notices
    }
  }
  return out;
}

/** Calls `onLine` with each JSON object the process prints on stdout. */
function jsonLines<T>(proc: SpawnedProcess, onLine: (event: T) => void): void {
  if (!proc.stdout) throw new SoakError(`pid ${proc.pid} has no stdout pipe`);
  createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      onLine(JSON.parse(line) as T);
    } catch {
      // not a JSON event line
    }
  });
}

/** Resolves with the first event `pick` accepts; rejects on timeout or when the process exits first. */
function waitFor<T, R>(proc: SpawnedProcess, events: T[], pick: (e: T) => R | undefined, timeoutMs: number, what: string): Promise<R> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      for (const e of events) {
        const r = pick(e);
        if (r !== undefined) {
          clearInterval(poll);
          clearTimeout(timer);
          resolve(r);
          return true;
        }
      }
      return false;
    };
    const poll = setInterval(() => {
      if (check()) return;
      const status = proc.exitStatus();
      if (status) {
        // Give the last stdout line a moment to be parsed.
        setTimeout(() => {
          if (check()) return;
          clearInterval(poll);
          clearTimeout(timer);
          reject(new SoakError(`${what}: the process exited (${status.signal ?? `code ${status.code}`}) first`));
        }, 200);
        clearInterval(poll);
      }
    }, 100);
    const timer = setTimeout(() => {
      clearInterval(poll);
      reject(new SoakError(`${what}: not within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
  });
}

const mib = (kib: number): string => (kib / 1024).toFixed(0);

function progressLine(t: number, rate: number, last: SoakIntervalEvent | undefined, held: number | undefined, processes: Record<string, ProcessSample>, previous: Sample | undefined, seconds: number): string {
  const load = last ? `${last.rate.toFixed(0)} req/s (target ${rate}), errors ${last.errors}${last.backlogDropped ? `, not sent ${last.backlogDropped}` : ''}, p50 ${last.p50.toFixed(1)} ms p99 ${last.p99.toFixed(1)} ms` : 'load starting';
  const cpu = (name: string, p: ProcessSample): string => {
    const before = previous?.processes[name]?.cpuSeconds;
    return before === undefined || p.cpuSeconds === undefined ? '' : ` ${Math.round(((p.cpuSeconds - before) / seconds) * 100)} % CPU`;
  };
  const procs = Object.entries(processes).map(([name, p]) => `${name} ${mib(p.rssKib)} MiB${p.v8 ? ` (heap ${mib(p.v8.heapUsedKib)})` : ''} ${p.fds} fds${cpu(name, p)}`);
  return `[${t >= 0 ? `t=${t.toFixed(0)}s` : 'ramp'}] ${load} | held ${held ?? '?'} | ${procs.join(' | ')}`;
}

export async function runSoak(o: SoakOptions, cleanup: CleanupStack): Promise<SoakResult> {
  const startedAt = new Date().toISOString();
  const loadAverageStart = loadavg();
  const bed = await SoakTopology.start({ leakKibPerSecond: o.leakKibPerSecond ?? 0, leakFdsPerMinute: o.leakFdsPerMinute ?? 0, keepTemp: o.keepTemp ?? false, log: o.log }, cleanup);
  let slowReader: SlowReaderResult | undefined;
  if (o.slowReader) {
    o.log(`slow-reader check: ${o.slowReader.bytes / 2 ** 20} MiB to a server that reads nothing for ${o.slowReader.pauseSeconds} s`);
    slowReader = await runSlowReader(bed, { ...o.slowReader, log: o.log });
  }

  const samples: Sample[] = [];
  /** When the request load started (undefined while the held connections come up). */
  const clock: { loadStart?: number } = {};
  let held: number | undefined;
  const intervals: SoakIntervalEvent[] = [];
  /** CPU ticks of every process tree of interest at the first and the latest sample under load. */
  const cpuMarks: Array<{ at: number; ticks: Record<string, number>; machine: MachineCpu | undefined }> = [];
  /** The machine's CPU at the previous sample, for each progress line's busy/steal shares. */
  let machineBefore: MachineCpu | undefined;
  const cpuRoots = (): Record<string, number[]> => ({
    ...(generator.pid ? { generator: [generator.pid] } : {}),
    ...(bed.httpBackend ? { backend: [bed.httpBackend.pid] } : {}),
    ...Object.fromEntries(bed.measured.map((m) => [m.name, [m.process.pid]])),
  });
  const generator: { pid?: number } = {};
  const markCpu = async (): Promise<void> => {
    const table = await readProcessTable();
    // After the generator exited its CPU reads 0: keep the previous mark.
    if (!table.some((p) => p.pid === generator.pid)) return;
    const ticks = Object.fromEntries(Object.entries(cpuRoots()).map(([name, roots]) => [name, treeCpuTicks(table, roots)]));
    const mark = { at: Date.now(), ticks, machine: await readMachineCpu() };
    if (cpuMarks.length < 2) cpuMarks.push(mark);
    else cpuMarks[1] = mark;
  };
  const sampler = setInterval(() => {
    if (clock.loadStart !== undefined && generator.pid) void markCpu().catch(() => undefined);
    void Promise.all([sampleAll(bed, o.gcBeforeSample, o.log), readMachineCpu()]).then(([processes, machine]) => {
      const t = clock.loadStart === undefined ? -1 : (Date.now() - clock.loadStart) / 1000;
      const previous = samples.at(-1);
      samples.push({ t, processes });
      const shares = machineBefore && machine ? machineCpuShares(machineBefore, machine) : undefined;
      machineBefore = machine;
      const machineText = shares ? ` | machine busy ${shares.busyPercent.toFixed(0)} % steal ${shares.stealPercent.toFixed(0)} %` : '';
      o.log(progressLine(t, o.rate, clock.loadStart === undefined ? undefined : intervals.at(-1), held, processes, previous, o.intervalSeconds) + machineText);
    });
  }, o.intervalSeconds * 1000);
  cleanup.push('stop sampling', async () => clearInterval(sampler));

  const node = process.execPath;
  const rampMs = (o.connections / 20 + 120) * 1000;
  o.log(`holding ${o.connections} connections to ${SERVER_POD.ip}:${HOLD_PORT} (at most ${o.holdConcurrency} in set-up at a time)`);
  const holdEvents: Array<{ event: string; connections?: number; ms?: number; open?: number; closed?: number; error?: string; closedWhileHeld?: number }> = [];
  const holder = bed.spawnClient(
    [
      ...[node, HOLD_CLIENT, '--host', SERVER_POD.ip, '--port', String(HOLD_PORT), '--connections', String(o.connections), '--concurrency', String(o.holdConcurrency)],
      ...['--timeout-ms', String(rampMs), '--stall-ms', '30000', '--interval', String(o.intervalSeconds), '--hold-seconds', String(Math.ceil(rampMs / 1000 + o.durationSeconds + 120))],
    ],
    'hold-client',
  );
  cleanup.push('stop the hold client', () => holder.stop(5_000));
  jsonLines<(typeof holdEvents)[number]>(holder, (e) => {
    holdEvents.push(e);
    if (e.event === 'held') held = e.open;
  });
  const up = await waitFor(holder, holdEvents, (e) => (e.event === 'up' ? e : e.event === 'failed' ? e : undefined), rampMs + 10_000, `${o.connections} held connections coming up`);
  if (up.event === 'failed') throw new SoakError(`the held connections did not come up: ${up.error}`);
  held = o.connections;
  o.log(`${o.connections} connections up in ${((up.ms ?? 0) / 1000).toFixed(1)} s; starting ${o.rate} req/s over ${o.loadConnections} connections to http://${SERVICE.vip}:${SERVICE.port}/ for ${o.durationSeconds} s`);

  const loadEvents: SoakLoadEvent[] = [];
  const loader = bed.spawnClient(
    [node, SOAK_LOAD_CLIENT, '--host', SERVICE.vip, '--port', String(SERVICE.port), '--rate', String(o.rate), '--connections', String(o.loadConnections), '--duration', String(o.durationSeconds), '--interval', String(o.intervalSeconds)],
    'load-client',
  );
  cleanup.push('stop the load client', () => loader.stop(5_000));
  generator.pid = loader.pid;
  jsonLines<SoakLoadEvent>(loader, (e) => {
    loadEvents.push(e);
    if (e.event === 'interval') intervals.push(e);
  });
  const loadStart = Date.now();
  clock.loadStart = loadStart;
  const done = await waitFor(loader, loadEvents, (e) => (e.event === 'done' || e.event === 'failed' ? e : undefined), (o.durationSeconds + 60) * 1000, 'the request load to finish');
  if (done.event === 'failed') throw new SoakError(`the load client failed: ${done.error}`);
  if (done.event !== 'done') throw new SoakError('unreachable');
  // No sample after this: the load client has closed its connections, which would read as descriptor churn.
  clearInterval(sampler);

  const lastHeld = holdEvents.filter((e) => e.event === 'held').at(-1);
  holder.kill('SIGTERM');
  const released = await waitFor(holder, holdEvents, (e) => (e.event === 'released' ? e : undefined), 10_000, 'the held connections to be released').catch(() => undefined);
  const closedWhileHeld = released?.closedWhileHeld ?? lastHeld?.closed ?? 0;

  const verdict = judgeSoak(
    {
      samples,
      durationSeconds: o.durationSeconds,
      targetRate: o.rate,
      achievedRate: done.achievedRate,
      requestsSent: done.sent,
      requestErrors: done.errors,
      connections: o.connections,
      closedWhileHeld,
      loadConnections: o.loadConnections,
    },
    o.limits,
  );
  const [first, last] = cpuMarks;
  const loadCpu =
    first && last && last.at > first.at
      ? { seconds: (last.at - first.at) / 1000, cores: Object.fromEntries(Object.keys(last.ticks).map((name) => [name, Math.max(0, last.ticks[name]! - (first.ticks[name] ?? 0)) / 100 / ((last.at - first.at) / 1000)])) }
      : undefined;
  const machineCpu = first?.machine && last?.machine && last.at > first.at ? machineCpuShares(first.machine, last.machine) : undefined;
  const { log: _log, ...options } = o;
  void _log;
  return {
    startedAt,
    options,
    loadAverageStart,
    loadAverageEnd: loadavg(),
    hold: { connections: o.connections, upMs: up.ms ?? 0, closedWhileHeld },
    load: done,
    intervals,
    samples,
    ...(loadCpu ? { loadCpu } : {}),
    ...(machineCpu ? { machineCpu } : {}),
    verdict,
    ...(slowReader ? { slowReader } : {}),
  };
}
