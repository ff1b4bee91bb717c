/**
 * The soak's verdict, a pure function of its samples (tested by tables in
 * test/unit/soak-verdict.test.ts):
 *
 * - memory stable: over the second half of the load (the first half is warm-up), the least-squares
 *   slope of each measured process's RSS is below `rssSlopePercentPerMinute` % of its mean RSS
 *   per minute. When every sample of the window carries V8's young-generation size, that size is
 *   taken out of RSS first: V8 grows the young generation (up to 2 × --max-semi-space-size,
 *   32 MiB by default) when allocation picks up and shrinks it when the process idles, so its
 *   size steps with the load, and it cannot hold a leak (every scavenge empties it; the samples
 *   are read after a full GC). In local runs with the CI's settings the waypoint's young
 *   generation went 1 → 32 MiB committed, RSS +25 MiB, in the seconds after the load started;
 *   growth of that kind inside the 30 s window is the likely cause of a CI failure that read as
 *   a leak (that run kept no V8 figures);
 * - descriptors flat: every sample of that window within ± `fdTolerancePercent` % of the window's
 *   median, at least ± `fdToleranceFloor` (so a process holding 60 descriptors may open a pooled
 *   connection without failing) and at least ± `loadConnections`: a pool on the request path
 *   opens one connection per request in flight and closes it after its idle timeout — the
 *   waypoint's upstream HTTP/1.1 pool, each of whose connections is a socket in the server-side
 *   agent, went 63 → 34 → 63 in a 60 s run at 500 req/s over 64 request connections;
 * - errors: failed requests ≤ `maxErrorRatio` of those sent, held connections closed while held
 *   ≤ `maxErrorRatio` of those held (no caps are configured in the soak, so nothing is excluded
 *   as a counted refusal);
 * - rate: the achieved request rate ≥ `minRateFraction` of the target — a machine that cannot
 *   carry the target fails the run and says so, rather than passing a lighter one.
 */

export interface ProcessSample {
  rssKib: number;
  fds: number;
  /** utime + stime so far (/proc/<pid>/stat), seconds; not judged, shows which process is saturated. */
  cpuSeconds?: number;
  /**
   * V8's own figures after the forced GC (POST /debug/gc), KiB; not judged. When RSS grows they
   * say where: the heap in use (a JavaScript leak), the heap V8 has committed (its spaces sized
   * up), or external memory (Buffers, TLS and HTTP/2 sessions). RSS growth that none of them
   * shows is the allocator's or compiled code.
   */
  v8?: { heapUsedKib: number; heapTotalKib: number; externalKib?: number; newSpaceKib?: number };
}

export interface Sample {
  /** Seconds since the load started (negative: while the held connections came up). */
  t: number;
  processes: Record<string, ProcessSample>;
}

export interface VerdictLimits {
  rssSlopePercentPerMinute: number;
  fdTolerancePercent: number;
  fdToleranceFloor: number;
  maxErrorRatio: number;
  minRateFraction: number;
}

export const DEFAULT_LIMITS: VerdictLimits = { rssSlopePercentPerMinute: 1, fdTolerancePercent: 1, fdToleranceFloor: 10, maxErrorRatio: 0.001, minRateFraction: 0.95 };

export interface VerdictInput {
  samples: Sample[];
  durationSeconds: number;
  targetRate: number;
  achievedRate: number;
  requestsSent: number;
  requestErrors: number;
  connections: number;
  closedWhileHeld: number;
  /** Keep-alive connections carrying the requests: the most a pool on their path may open and close. */
  loadConnections?: number;
}

export interface ProcessStability {
  name: string;
  samples: number;
  meanRssMib: number;
  /** Slope of RSS over the window (less the young generation when `youngGenerationExcluded`), % of the mean per minute. */
  rssSlopePercentPerMinute: number;
  youngGenerationExcluded: boolean;
  fdMedian: number;
  fdMin: number;
  fdMax: number;
  /** Slopes over the window of the V8 figures (MiB per minute), when every point has them. */
  v8SlopesMibPerMinute?: { heapUsed: number; heapTotal: number; external?: number };
}

export interface Verdict {
  ok: boolean;
  /** Why it failed; empty when ok. */
  failures: string[];
  windowStartSeconds: number;
  processes: ProcessStability[];
}

/** Least-squares slope of y over x; 0 with fewer than two distinct x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const MIN_WINDOW_SAMPLES = 4;

const signedMib = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;

/** Slopes (MiB per minute) of the V8 figures over the points, when every point carries them. */
function v8SlopesOf(points: ReadonlyArray<{ t: number } & ProcessSample>): ProcessStability['v8SlopesMibPerMinute'] {
  if (points.length < 2 || !points.every((p) => p.v8)) return undefined;
  const of = (pick: (v8: NonNullable<ProcessSample['v8']>) => number): number => slope(points.map((p) => [p.t / 60, pick(p.v8!) / 1024] as const));
  const external = points.every((p) => p.v8!.externalKib !== undefined) ? of((v8) => v8.externalKib!) : undefined;
  return { heapUsed: of((v8) => v8.heapUsedKib), heapTotal: of((v8) => v8.heapTotalKib), ...(external === undefined ? {} : { external }) };
}

export function judgeSoak(input: VerdictInput, limits: VerdictLimits = DEFAULT_LIMITS): Verdict {
  const failures: string[] = [];
  const windowStart = input.durationSeconds / 2;
  const window = input.samples.filter((s) => s.t >= windowStart && s.t <= input.durationSeconds + 5);
  const names = [...new Set(input.samples.flatMap((s) => Object.keys(s.processes)))];
  const processes: ProcessStability[] = [];
  if (window.length < MIN_WINDOW_SAMPLES) failures.push(`only ${window.length} samples in the second half of the run (need ${MIN_WINDOW_SAMPLES}): sample more often or run longer`);
  for (const name of names) {
    const points = window.flatMap((s) => (s.processes[name] ? [s.processes[name]] : []).map((p) => ({ t: s.t, ...p })));
    if (points.length < Math.min(MIN_WINDOW_SAMPLES, window.length) || points.length === 0) {
      failures.push(`${name}: no samples in the second half (did it exit?)`);
      continue;
    }
    const youngGenerationExcluded = points.every((p) => p.v8?.newSpaceKib !== undefined);
    const judged = (p: ProcessSample): number => p.rssKib - (youngGenerationExcluded ? p.v8!.newSpaceKib! : 0);
    const meanRss = points.reduce((s, p) => s + judged(p), 0) / points.length;
    const perMinute = slope(points.map((p) => [p.t / 60, judged(p)] as const));
    const slopePercent = (perMinute / meanRss) * 100;
    const fds = points.map((p) => p.fds);
    const fdMedian = median(fds);
    const fdMin = Math.min(...fds);
    const fdMax = Math.max(...fds);
    const v8Slopes = v8SlopesOf(points);
    processes.push({ name, samples: points.length, meanRssMib: meanRss / 1024, rssSlopePercentPerMinute: slopePercent, youngGenerationExcluded, fdMedian, fdMin, fdMax, ...(v8Slopes ? { v8SlopesMibPerMinute: v8Slopes } : {}) });
    if (slopePercent >= limits.rssSlopePercentPerMinute) {
      const where = v8Slopes
        ? `; after GC the V8 heap in use ${signedMib(v8Slopes.heapUsed)}, committed ${signedMib(v8Slopes.heapTotal)}${v8Slopes.external === undefined ? '' : `, external ${signedMib(v8Slopes.external)}`} MiB/min`
        : '';
      const what = youngGenerationExcluded ? 'RSS outside V8’s young generation' : 'RSS';
      failures.push(`${name}: ${what} grew ${(perMinute / 1024).toFixed(2)} MiB/min after warm-up (${slopePercent.toFixed(2)} % of its ${(meanRss / 1024).toFixed(0)} MiB per minute; limit ${limits.rssSlopePercentPerMinute} %)${where}`);
    }
    const tolerance = Math.max(fdMedian * (limits.fdTolerancePercent / 100), limits.fdToleranceFloor, input.loadConnections ?? 0);
    if (fdMax - fdMedian > tolerance || fdMedian - fdMin > tolerance) {
      failures.push(`${name}: open descriptors ${fdMin}–${fdMax} after warm-up, beyond ± ${tolerance.toFixed(0)} of the median ${fdMedian}`);
    }
  }
  const errorRatio = input.requestsSent > 0 ? input.requestErrors / input.requestsSent : 0;
  if (input.requestsSent === 0) failures.push('no request was sent');
  else if (errorRatio > limits.maxErrorRatio) failures.push(`${input.requestErrors} of ${input.requestsSent} requests failed (${(errorRatio * 100).toFixed(3)} %; limit ${(limits.maxErrorRatio * 100).toFixed(3)} %)`);
  if (input.closedWhileHeld > limits.maxErrorRatio * input.connections) failures.push(`${input.closedWhileHeld} of ${input.connections} held connections closed while held (limit ${(limits.maxErrorRatio * 100).toFixed(3)} %)`);
  if (input.achievedRate < limits.minRateFraction * input.targetRate) {
    failures.push(`achieved ${input.achievedRate.toFixed(0)} req/s of the ${input.targetRate} targeted (below ${(limits.minRateFraction * 100).toFixed(0)} %): this machine could not carry the target load`);
  }
  return { ok: failures.length === 0, failures, windowStartSeconds: windowStart, processes };
}
