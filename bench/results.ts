/**
 * The results document written to bench/results/<time>.json: raw samples of every run (so any
 * table can be recomputed), the environment they were measured in, and the summary tables.
 */

export type PathName = 'direct' | 'stunnel' | 'amesh';
export const PATH_NAMES: readonly PathName[] = ['direct', 'stunnel', 'amesh'];
export const PATH_LABELS: Readonly<Record<PathName, string>> = { direct: 'direct', stunnel: 'stunnel pair', amesh: 'amesh' };

/** One iperf3 run. Value fields are absent when the run failed (`error` says why). */
export interface ThroughputSample {
  path: PathName;
  streams: number;
  reverse: boolean;
  /** 1-based run index; runs with the same index were measured back to back. */
  run: number;
  gbps?: number;
  bytes?: number;
  seconds?: number;
  retransmits?: number;
  /** utime + stime of both proxy processes during the run (absent for direct). */
  proxyCpuSeconds?: number;
  cpuSecondsPerGB?: number;
  error?: string;
}

/** One open-loop latency run. Latencies are measured from the intended send time. */
export interface LatencySample {
  path: PathName;
  connections: number;
  run: number;
  targetRate: number;
  p50Ms?: number;
  p90Ms?: number;
  p99Ms?: number;
  p999Ms?: number;
  maxMs?: number;
  achievedRate?: number;
  completed?: number;
  errors?: number;
  errorKinds?: Record<string, number>;
  /** How late the load generator itself sent (timer granularity); included in every latency. */
  sendLagP99Ms?: number;
  connectionsOpened?: number;
  proxyCpuSeconds?: number;
  /** Proxy CPU-seconds per 1000 requests = cores busy per 1000 req/s. */
  coresPer1000Rps?: number;
  error?: string;
}

export interface BenchEnvironment {
  node: string;
  openssl: string;
  kernel: string;
  iperf3: string;
  stunnel: string;
  amesh: string;
  cpus: string;
  clockTicksPerSecond: number;
  /** As reported by the agents' readiness endpoint. */
  captureMode: string;
  /** HBONE_H2_SETTINGS exported by src/hbone, or "unknown". */
  h2Settings: unknown;
  /** Negotiated by the stunnel pair, from its log. */
  stunnelTls: string;
  loadAverageStart: number[];
  loadAverageEnd: number[];
}

export interface BenchSettings {
  quick: boolean;
  runs: number;
  paths: PathName[];
  throughputSeconds: number;
  streams: number[];
  directions: ('forward' | 'reverse')[];
  latencySeconds: number;
  warmupSeconds: number;
  rate: number;
  connections: number[];
  responseBytes: number;
}

export interface BenchResults {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  settings: BenchSettings;
  environment: BenchEnvironment;
  throughput: ThroughputSample[];
  latency: LatencySample[];
  notes: string[];
}
