/**
 * The ordered list of measurements. Paths are interleaved run by run (direct, comparators, amesh,
 * then the next run) and the order rotates each run, so slow drift of a shared machine — other
 * jobs starting, thermal limits — spreads over all paths instead of biasing the one measured last.
 */
import type { RunSettings } from './options.js';
import { METRIC_SCENARIOS, type MetricScenario, type PathName } from './results.js';

export interface ThroughputTask {
  scenario: 'throughput';
  path: PathName;
  streams: number;
  reverse: boolean;
  run: number;
}

export interface LatencyTask {
  scenario: 'latency';
  path: PathName;
  connections: number;
  run: number;
}

/** One run of a scenario with no parameters of its own (B's scenario modules read the settings). */
export interface MetricTask {
  scenario: MetricScenario;
  path: PathName;
  run: number;
}

export type Task = ThroughputTask | LatencyTask | MetricTask;

/** `items` rotated left by `by`. */
export function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return [];
  const k = ((by % items.length) + items.length) % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export function buildPlan(s: Pick<RunSettings, 'scenarios' | 'paths' | 'runs' | 'streams' | 'directions' | 'connections'>): Task[] {
  const tasks: Task[] = [];
  if (s.scenarios.includes('throughput')) {
    for (const streams of s.streams) {
      for (const direction of s.directions) {
        for (let run = 1; run <= s.runs; run++) {
          for (const path of rotate(s.paths, run - 1)) tasks.push({ scenario: 'throughput', path, streams, reverse: direction === 'reverse', run });
        }
      }
    }
  }
  if (s.scenarios.includes('latency')) {
    for (const connections of s.connections) {
      for (let run = 1; run <= s.runs; run++) {
        for (const path of rotate(s.paths, run - 1)) tasks.push({ scenario: 'latency', path, connections, run });
      }
    }
  }
  for (const scenario of METRIC_SCENARIOS) {
    if (!s.scenarios.includes(scenario)) continue;
    const paths = pathsOf(scenario, s.paths);
    for (let run = 1; run <= s.runs; run++) {
      for (const path of rotate(paths, run - 1)) tasks.push({ scenario, path, run });
    }
  }
  return tasks;
}

/**
 * The paths a scenario measures: memory is the proxies' RSS, and the direct path has no proxy;
 * handshakes are TLS's, and amesh-nft's agents make theirs with the same code as amesh's (only
 * the capture differs, which the connection-rate scenario compares).
 */
export function pathsOf(scenario: string, paths: readonly PathName[]): PathName[] {
  if (scenario === 'memory') return paths.filter((p) => p !== 'direct');
  if (scenario === 'handshakes') return paths.filter((p) => p !== 'direct' && p !== 'amesh-nft');
  return [...paths];
}

const METRIC_TASK_NAMES: Readonly<Record<MetricScenario, string>> = {
  maxrate: 'maximum request rate (wrk, closed loop)',
  connrate: 'connection setup rate',
  handshakes: 'connection setup rate with a full mTLS handshake each',
  memory: 'memory with held connections',
};

export function describeTask(t: Task, runs: number): string {
  if (t.scenario === 'throughput') return `${t.path} iperf3 -P${t.streams}${t.reverse ? ' -R' : ''} run ${t.run}/${runs}`;
  if (t.scenario === 'latency') return `${t.path} latency ${t.connections} connections run ${t.run}/${runs}`;
  return `${t.path} ${METRIC_TASK_NAMES[t.scenario]} run ${t.run}/${runs}`;
}
