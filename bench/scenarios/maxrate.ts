/**
 * Scenario 3, one run: maximum request rate. wrk in the client pod drives `maxRateConnections`
 * keep-alive connections in a closed loop (each sends its next request as soon as the last
 * response arrives) to the 1 KB HTTP backend for `maxRateSeconds`, so the path runs at
 * saturation; the proxies' CPU time is measured around it.
 *
 * wrk runs one thread: on a 2-core machine the generator, the backend and the proxies share the
 * cores, and one wrk thread already outruns the Node backend on the direct path. So req/s is
 * what the whole machine reaches with that path in it; the proxies' efficiency — independent of
 * how the cores were shared — is req/s per proxy core (= requests / proxy CPU-seconds).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseWrkOutput, WRK_REPORT_SCRIPT, wrkArgv, wrkErrors, type WrkReport } from '../load/wrk.js';
import type { CpuMeter } from '../proc-stat.js';
import type { PathName } from '../results.js';
import type { Testbed } from '../testbed.js';

/** The wrk thread count of scenarios 3 and 4 (see the file comment). */
export const WRK_THREADS = 1;

export interface MaxRateSettings {
  maxRateSeconds: number;
  /** Closed-loop keep-alive connections (BENCHMARKS.md: wrk -c16). */
  maxRateConnections: number;
}

/** What the scenario modules need of a run: its path and 1-based run index. */
export interface PathRun {
  path: PathName;
  run: number;
}

/** The parts of the Testbed the scenario modules use. */
export type ScenarioBed = Pick<Testbed, 'endpoints' | 'proxyPids' | 'topology' | 'dir'>;

/** One wrk run. Value fields are absent when the run failed (`error` says why). */
export interface MaxRateSample {
  path: PathName;
  run: number;
  connections: number;
  /** Good (2xx/3xx) responses per second. */
  requestsPerSecond?: number;
  requests?: number;
  seconds?: number;
  /** Closed-loop service times (wrk's). */
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  /** Connect, read, write errors, timeouts and non-2xx/3xx responses. */
  errors?: number;
  /** utime + stime of the path's proxy process trees during the run (absent for direct). */
  proxyCpuSeconds?: number;
  /** Proxy CPU-seconds per 1000 requests = proxy cores per 1000 req/s (as in scenario 2). */
  proxyCoresPer1000Rps?: number;
  /** Requests per proxy CPU-second: the rate one fully busy proxy core sustains. */
  requestsPerProxyCoreSecond?: number;
  error?: string;
}

/** Writes wrk's report script into the run's directory (idempotent) and returns its path. */
export async function wrkScript(bed: Pick<Testbed, 'dir'>): Promise<string> {
  const path = join(bed.dir, 'wrk-report.lua');
  await writeFile(path, WRK_REPORT_SCRIPT);
  return path;
}

/** Proxy CPU figures of a wrk run; `requests` counts every good response. */
export function proxyEfficiency(cpuSeconds: number, requests: number): { proxyCoresPer1000Rps?: number; requestsPerProxyCoreSecond?: number } {
  return {
    ...(requests > 0 ? { proxyCoresPer1000Rps: (cpuSeconds / requests) * 1000 } : {}),
    ...(cpuSeconds > 0 ? { requestsPerProxyCoreSecond: requests / cpuSeconds } : {}),
  };
}

/** Runs wrk in the path's client pod under the CPU meter; throws with wrk's stderr on failure. */
export async function runWrk(
  task: PathRun,
  bed: ScenarioBed,
  meter: CpuMeter,
  run: { connections: number; seconds: number; headers?: readonly string[] },
): Promise<{ report: WrkReport; cpuSeconds: number }> {
  const ends = bed.endpoints(task.path);
  const argv = wrkArgv({ url: `http://${ends.host}:${ends.httpPort}/`, connections: run.connections, threads: WRK_THREADS, seconds: run.seconds, script: await wrkScript(bed), ...(run.headers ? { headers: run.headers } : {}) });
  const timeoutMs = (run.seconds + 30) * 1000;
  const { result, cpuSeconds } = await meter.measure(bed.proxyPids(task.path), () => bed.topology.exec(ends.clientPod, argv, { timeoutMs, allowFailure: true }));
  if (result.timedOut) throw new Error(`wrk did not finish within ${timeoutMs / 1000} s`);
  try {
    return { report: parseWrkOutput(result.stdout), cpuSeconds };
  } catch (err) {
    const stderr = result.stderr.trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${err instanceof Error ? err.message : String(err)}${stderr ? ` (wrk stderr: ${stderr})` : ''}`, { cause: err });
  }
}

export async function runMaxRate(task: PathRun, bed: ScenarioBed, s: MaxRateSettings, meter: CpuMeter): Promise<MaxRateSample> {
  const sample: MaxRateSample = { path: task.path, run: task.run, connections: s.maxRateConnections };
  try {
    const { report, cpuSeconds } = await runWrk(task, bed, meter, { connections: s.maxRateConnections, seconds: s.maxRateSeconds });
    const good = Math.max(0, report.requests - report.statusErrors);
    Object.assign(sample, {
      requestsPerSecond: report.requestsPerSecond,
      requests: good,
      seconds: report.seconds,
      latencyP50Ms: report.latencyMs.p50,
      latencyP99Ms: report.latencyMs.p99,
      errors: wrkErrors(report),
    });
    if (bed.proxyPids(task.path).length > 0) Object.assign(sample, { proxyCpuSeconds: cpuSeconds }, proxyEfficiency(cpuSeconds, good));
    if (good === 0) throw new Error(`no request succeeded (${wrkErrors(report)} errors: connect ${report.connectErrors}, read ${report.readErrors}, write ${report.writeErrors}, timeout ${report.timeouts}, status ${report.statusErrors})`);
  } catch (err) {
    sample.error = err instanceof Error ? err.message : String(err);
  }
  return sample;
}

/** The sample's numbers by name (for a results table of named metrics). */
export function maxRateValues(s: MaxRateSample): Record<string, number> {
  return numericFields(s, ['run', 'connections']);
}

/** Every finite number field of `sample` except `skip`. */
export function numericFields(sample: object, skip: readonly string[] = []): Record<string, number> {
  return Object.fromEntries(Object.entries(sample).filter(([k, v]) => !skip.includes(k) && typeof v === 'number' && Number.isFinite(v))) as Record<string, number>;
}
