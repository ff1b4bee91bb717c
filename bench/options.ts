/**
 * Command-line settings of `npm run bench`, resolved once into a frozen BenchSettings. `--quick`
 * changes the defaults (a CI smoke run that checks the harness works); explicit flags still win.
 */
import { PATH_NAMES, type BenchSettings, type PathName } from './results.js';

/**
 * BENCHMARKS.md scenarios 1–6 (7, capture overhead, is a table derived from latency and connrate).
 * Scenario 4 is two: `connrate` (new connections as each path makes them, so amesh's pooled HBONE
 * makes no handshake per connection) and `handshakes` (a full mutual-TLS handshake per connection
 * on every path: amesh with its pool off).
 */
export type ScenarioName = 'throughput' | 'latency' | 'maxrate' | 'connrate' | 'handshakes' | 'memory' | 'l7';
export const SCENARIO_NAMES: readonly ScenarioName[] = ['throughput', 'latency', 'maxrate', 'connrate', 'handshakes', 'memory', 'l7'];
export const CAPTURE_MODES = ['auto', 'ebpf', 'nftables'] as const;
export type CaptureModeOption = (typeof CAPTURE_MODES)[number];

/** Raw flag values as commander hands them over; undefined = not given. */
export interface RawOptions {
  quick?: boolean;
  runs?: string;
  paths?: string;
  scenarios?: string;
  duration?: string;
  streams?: string;
  latencyDuration?: string;
  warmup?: string;
  rate?: string;
  connections?: string;
  maxrateDuration?: string;
  connrateDuration?: string;
  connrateConcurrency?: string;
  memoryConnections?: string;
  l7Duration?: string;
  captureMode?: string;
  out?: string;
  keepTemp?: boolean;
  /** commander's --no-install: false when given. */
  install?: boolean;
}

export interface RunSettings extends BenchSettings {
  scenarios: ScenarioName[];
  captureMode: CaptureModeOption | undefined;
  outDir: string | undefined;
  keepTemp: boolean;
}

export class BenchUsageError extends Error {
  readonly code = 'BENCH_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'BenchUsageError';
  }
}

const FULL = {
  runs: 3, throughputSeconds: 10, streams: [1, 4], latencySeconds: 30, warmupSeconds: 2, connections: [4, 16],
  maxRateSeconds: 10, connRateSeconds: 10, connRateConcurrency: [4, 16], memoryConnections: [1000, 10_000], l7Seconds: 10,
};
// About a minute for every path and scenario: enough to prove each one produces numbers.
const QUICK = {
  runs: 1, throughputSeconds: 1, streams: [1], latencySeconds: 1, warmupSeconds: 0.2, connections: [4],
  maxRateSeconds: 1, connRateSeconds: 1, connRateConcurrency: [4], memoryConnections: [100], l7Seconds: 1,
};

function number(flag: string, raw: string, opts: { integer?: boolean; min: number; max: number }): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || n < opts.min || n > opts.max) {
    throw new BenchUsageError(`${flag} ${raw}: expected ${opts.integer ? 'a whole number' : 'a number'} from ${opts.min} to ${opts.max}`);
  }
  return n;
}

function list<T extends string>(flag: string, raw: string, allowed: readonly T[]): T[] {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.filter((i) => !(allowed as readonly string[]).includes(i));
  if (items.length === 0 || bad.length > 0) throw new BenchUsageError(`${flag} ${raw}: expected a comma-separated list of ${allowed.join(', ')}`);
  // Keep the canonical order so tables always read direct, comparators, amesh.
  return allowed.filter((a) => items.includes(a));
}

function numbers(flag: string, raw: string, max: number): number[] {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new BenchUsageError(`${flag} ${raw}: expected a comma-separated list of whole numbers`);
  return [...new Set(items.map((i) => number(flag, i, { integer: true, min: 1, max })))];
}

export function resolveSettings(raw: RawOptions): Readonly<RunSettings> {
  const quick = raw.quick === true;
  const d = quick ? QUICK : FULL;
  const captureMode = raw.captureMode === undefined ? undefined : list('--capture-mode', raw.captureMode, CAPTURE_MODES)[0];
  if (raw.captureMode !== undefined && raw.captureMode.includes(',')) throw new BenchUsageError('--capture-mode takes one mode');
  const settings: RunSettings = {
    quick,
    runs: raw.runs === undefined ? d.runs : number('--runs', raw.runs, { integer: true, min: 1, max: 50 }),
    paths: raw.paths === undefined ? [...PATH_NAMES] : list<PathName>('--paths', raw.paths, PATH_NAMES),
    scenarios: raw.scenarios === undefined ? [...SCENARIO_NAMES] : list('--scenarios', raw.scenarios, SCENARIO_NAMES),
    throughputSeconds: raw.duration === undefined ? d.throughputSeconds : number('--duration', raw.duration, { integer: true, min: 1, max: 600 }),
    streams: raw.streams === undefined ? d.streams : numbers('--streams', raw.streams, 128),
    directions: ['forward', 'reverse'],
    latencySeconds: raw.latencyDuration === undefined ? d.latencySeconds : number('--latency-duration', raw.latencyDuration, { min: 0.5, max: 3600 }),
    warmupSeconds: raw.warmup === undefined ? d.warmupSeconds : number('--warmup', raw.warmup, { min: 0, max: 60 }),
    rate: raw.rate === undefined ? 1000 : number('--rate', raw.rate, { integer: true, min: 1, max: 100_000 }),
    connections: raw.connections === undefined ? d.connections : numbers('--connections', raw.connections, 1024),
    responseBytes: 1024,
    maxRateSeconds: raw.maxrateDuration === undefined ? d.maxRateSeconds : number('--maxrate-duration', raw.maxrateDuration, { integer: true, min: 1, max: 600 }),
    maxRateConnections: 16,
    connRateSeconds: raw.connrateDuration === undefined ? d.connRateSeconds : number('--connrate-duration', raw.connrateDuration, { integer: true, min: 1, max: 600 }),
    connRateConcurrency: raw.connrateConcurrency === undefined ? d.connRateConcurrency : numbers('--connrate-concurrency', raw.connrateConcurrency, 256),
    memoryConnections: raw.memoryConnections === undefined ? d.memoryConnections : numbers('--memory-connections', raw.memoryConnections, 20_000),
    l7Seconds: raw.l7Duration === undefined ? d.l7Seconds : number('--l7-duration', raw.l7Duration, { integer: true, min: 1, max: 600 }),
    captureMode,
    outDir: raw.out,
    keepTemp: raw.keepTemp === true,
  };
  return Object.freeze(settings);
}
