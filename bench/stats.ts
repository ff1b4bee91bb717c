/**
 * Run-to-run statistics for the report: every measurement is repeated and reported as the median
 * with its spread (min–max), never as a mean — one disturbed run on a shared 2-core machine must
 * not move the headline number (BENCHMARKS.md, "median of ≥ 3").
 */

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** How many runs produced a value. */
  n: number;
  values: number[];
}

/** Median of the values (mean of the middle two for an even count); undefined when empty. */
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median and spread of the finite values; undefined when no run produced one. */
export function summarize(values: readonly (number | undefined)[]): Summary | undefined {
  const finite = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const mid = median(finite);
  if (mid === undefined) return undefined;
  return { median: mid, min: Math.min(...finite), max: Math.max(...finite), n: finite.length, values: finite };
}

/**
 * `path − baseline` run by run (runs are interleaved, so run k of both saw the same machine
 * state); runs where either side has no value are left out.
 */
export function pairedDifferences(path: ReadonlyMap<number, number>, baseline: ReadonlyMap<number, number>): number[] {
  const out: number[] = [];
  for (const [run, value] of [...path].sort((a, b) => a[0] - b[0])) {
    const base = baseline.get(run);
    if (base !== undefined && Number.isFinite(value) && Number.isFinite(base)) out.push(value - base);
  }
  return out;
}

/** `a ÷ b` on medians; undefined when either is missing or b is 0. */
export function ratio(a: Summary | undefined, b: Summary | undefined): number | undefined {
  if (!a || !b || b.median === 0) return undefined;
  return a.median / b.median;
}
