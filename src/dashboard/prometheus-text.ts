/**
 * A parser for the Prometheus text exposition format 0.0.4 (what prom-client and our proxies
 * serve on :15020 /metrics): https://prometheus.io/docs/instrumenting/exposition_formats/
 *
 * - `# HELP name text` (escapes `\\`, `\n`) and `# TYPE name counter|gauge|histogram|summary|untyped`;
 *   other comments (and OpenMetrics' `# EOF`) are ignored.
 * - Sample lines `name{label="value",...} value [timestamp-ms]`: label values unescape `\\`, `\"`
 *   and `\n`; a trailing comma in the label list is allowed; values take Go's float syntax incl.
 *   `NaN`, `+Inf`, `-Inf`.
 * - A histogram's `_bucket` / `_sum` / `_count` samples and a summary's `_sum` / `_count` belong to
 *   the family declared by TYPE; a sample with no TYPE is its own `untyped` family.
 * - Pure and total: a malformed line never throws; it is skipped and reported in `problems` with
 *   its line number, so one bad series cannot blank a scrape.
 *
 * Written by hand: no well-kept npm parser exists for the text format (prom-client only writes it;
 * `parse-prometheus-text-format` is unmaintained since 2019 and drops timestamps and problems).
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  /** The sample's own name (`x_bucket` for a histogram bucket of family `x`). */
  name: string;
  labels: Labels;
  value: number;
  timestampMs?: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

export interface ParseProblem {
  /** 1-based line number. */
  line: number;
  message: string;
}

export interface Exposition {
  families: Map<string, MetricFamily>;
  problems: ParseProblem[];
}

const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_START = /[a-zA-Z_]/;
const LABEL_CHAR = /[a-zA-Z0-9_]/;
const NUMBER = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)$/;

class LineError extends Error {}

/** Go's ParseFloat as the format uses it; NaN for a malformed number is reported by the caller. */
export function parseValue(text: string): number | undefined {
  switch (text) {
    case '+Inf':
    case 'Inf':
    case '+inf':
    case 'inf':
      return Infinity;
    case '-Inf':
    case '-inf':
      return -Infinity;
    case 'NaN':
    case 'nan':
      return NaN;
  }
  return NUMBER.test(text) ? Number(text) : undefined;
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

/** Parses `name{labels} value [ts]` starting at 0; throws LineError. */
function parseSampleLine(line: string): Sample {
  let i = 0;
  const n = line.length;
  const skipSpace = (): void => {
    while (i < n && (line[i] === ' ' || line[i] === '\t')) i++;
  };
  if (!NAME_START.test(line[i] ?? '')) throw new LineError('expected a metric name');
  const nameStart = i;
  while (i < n && NAME_CHAR.test(line[i]!)) i++;
  const name = line.slice(nameStart, i);
  const labels: Record<string, string> = {};
  skipSpace();
  if (line[i] === '{') {
    i++;
    for (;;) {
      skipSpace();
      if (line[i] === '}') {
        i++;
        break;
      }
      if (!LABEL_START.test(line[i] ?? '')) throw new LineError(`expected a label name at column ${i + 1}`);
      const labelStart = i;
      while (i < n && LABEL_CHAR.test(line[i]!)) i++;
      const label = line.slice(labelStart, i);
      skipSpace();
      if (line[i] !== '=') throw new LineError(`expected '=' after label ${label}`);
      i++;
      skipSpace();
      if (line[i] !== '"') throw new LineError(`expected '"' to open the value of label ${label}`);
      i++;
      let value = '';
      for (;;) {
        if (i >= n) throw new LineError(`unterminated value of label ${label}`);
        const c = line[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const next = line[i + 1];
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else throw new LineError(`invalid escape \\${next ?? ''} in the value of label ${label}`);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      if (Object.hasOwn(labels, label)) throw new LineError(`label ${label} appears twice`);
      labels[label] = value;
      skipSpace();
      if (line[i] === ',') {
        i++;
        continue;
      }
      if (line[i] === '}') {
        i++;
        break;
      }
      throw new LineError(`expected ',' or '}' after the value of label ${label}`);
    }
  }
  const rest = line.slice(i).trim().split(/[ \t]+/);
  if (rest.length === 0 || rest[0] === '') throw new LineError(`sample ${name} has no value`);
  if (rest.length > 2) throw new LineError(`unexpected text after the sample of ${name}`);
  const value = parseValue(rest[0]!);
  if (value === undefined) throw new LineError(`sample ${name}: ${JSON.stringify(rest[0])} is not a number`);
  const sample: Sample = { name, labels, value };
  if (rest[1] !== undefined) {
    if (!/^-?\d+$/.test(rest[1])) throw new LineError(`sample ${name}: timestamp ${JSON.stringify(rest[1])} is not an integer`);
    sample.timestampMs = Number(rest[1]);
  }
  return sample;
}

/** The family a sample belongs to: its own name, or the histogram/summary/counter it is a part of. */
function familyNameOf(sampleName: string, families: Map<string, MetricFamily>): string {
  if (families.has(sampleName)) return sampleName;
  for (const [suffix, types] of SUFFIXES) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = sampleName.slice(0, -suffix.length);
    const family = families.get(base);
    if (family && types.includes(family.type)) return base;
  }
  return sampleName;
}

const SUFFIXES: ReadonlyArray<readonly [string, readonly MetricType[]]> = [
  ['_bucket', ['histogram']],
  ['_sum', ['histogram', 'summary']],
  ['_count', ['histogram', 'summary']],
  ['_total', ['counter']],
  ['_created', ['counter', 'histogram', 'summary']],
];

export function parsePrometheusText(text: string): Exposition {
  const families = new Map<string, MetricFamily>();
  const problems: ParseProblem[] = [];
  const family = (name: string): MetricFamily => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', help: '', samples: [] }));
    return f;
  };
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (trimmed.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:[ \t]+(.*))?$/.exec(trimmed);
      if (!m) continue; // an ordinary comment
      const [, keyword, name, argument = ''] = m;
      if (keyword === 'HELP') family(name!).help = unescapeHelp(argument);
      else if (TYPES.has(argument.trim())) {
        const f = family(name!);
        if (f.samples.length > 0 && f.type !== argument.trim()) problems.push({ line: index + 1, message: `TYPE of ${name} after its samples` });
        else f.type = argument.trim() as MetricType;
      } else problems.push({ line: index + 1, message: `unknown metric type ${JSON.stringify(argument.trim())} for ${name}` });
      continue;
    }
    try {
      const sample = parseSampleLine(trimmed);
      family(familyNameOf(sample.name, families)).samples.push(sample);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      problems.push({ line: index + 1, message: err.message });
    }
  }
  return { families, problems };
}

/** A canonical string for a label set (sorted names), usable as a map key. */
export function labelKey(labels: Labels, omit?: string): string {
  return Object.keys(labels)
    .filter((k) => k !== omit)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');
}

export interface HistogramBucket {
  /** Upper bound; Infinity for `+Inf`. */
  le: number;
  /** Cumulative count of observations ≤ le. */
  count: number;
}

export interface HistogramSeries {
  /** The series' labels without `le`. */
  labels: Labels;
  /** Sorted by le. */
  buckets: HistogramBucket[];
  sum: number;
  count: number;
}

/** The histogram family's series, one per label set (without `le`). */
export function histogramSeries(family: MetricFamily): HistogramSeries[] {
  const byKey = new Map<string, HistogramSeries>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = labelKey(rest);
    let series = byKey.get(key);
    if (!series) byKey.set(key, (series = { labels: rest, buckets: [], sum: 0, count: 0 }));
    if (s.name === `${family.name}_bucket` && le !== undefined) {
      const bound = parseValue(le);
      if (bound !== undefined && !Number.isNaN(bound)) series.buckets.push({ le: bound, count: s.value });
    } else if (s.name === `${family.name}_sum`) series.sum = s.value;
    else if (s.name === `${family.name}_count`) series.count = s.value;
  }
  for (const series of byKey.values()) series.buckets.sort((a, b) => a.le - b.le);
  return [...byKey.values()];
}

/**
 * Prometheus' histogram_quantile over cumulative buckets (counts may be deltas over a window):
 * linear interpolation inside the bucket holding the rank; the lowest bucket starts at 0; a rank
 * in the +Inf bucket answers the highest finite bound. undefined when there are no observations.
 */
export function histogramQuantile(q: number, buckets: readonly HistogramBucket[]): number | undefined {
  if (buckets.length === 0) return undefined;
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const last = sorted[sorted.length - 1]!;
  if (last.le !== Infinity) return undefined; // a histogram always ends with +Inf
  const total = last.count;
  if (!(total > 0)) return undefined;
  if (q <= 0) return 0;
  if (q >= 1) return sorted.length > 1 ? sorted[sorted.length - 2]!.le : undefined;
  const rank = q * total;
  let index = sorted.findIndex((b) => b.count >= rank);
  if (index < 0) index = sorted.length - 1;
  const bucket = sorted[index]!;
  if (bucket.le === Infinity) return sorted.length > 1 ? sorted[sorted.length - 2]!.le : undefined;
  const lowerBound = index === 0 ? Math.min(0, bucket.le) : sorted[index - 1]!.le;
  const lowerCount = index === 0 ? 0 : sorted[index - 1]!.count;
  const inBucket = bucket.count - lowerCount;
  if (inBucket <= 0) return bucket.le;
  return lowerBound + (bucket.le - lowerBound) * ((rank - lowerCount) / inBucket);
}
