/**
 * The results document written to bench/results/<time>.json: raw samples of every run (so any
 * table can be recomputed), the environment they were measured in, and the summary tables.
 */

/** In table order: the baseline, the comparators, then amesh with each capture mode. */
export type PathName = 'direct' | 'stunnel' | 'haproxy' | 'nginx' | 'amesh' | 'amesh-nft';
export const PATH_NAMES: readonly PathName[] = ['direct', 'stunnel', 'haproxy', 'nginx', 'amesh', 'amesh-nft'];
export const PATH_LABELS: Readonly<Record<PathName, string>> = {
  direct: 'direct',
  stunnel: 'stunnel pair',
  haproxy: 'haproxy pair',
  nginx: 'nginx stream pair',
  amesh: 'amesh',
  'amesh-nft': 'amesh (nftables)',
};
/** The TLS proxy pairs amesh is compared with ("best comparator" is the best of these). */
export const COMPARATORS: readonly PathName[] = ['stunnel', 'haproxy', 'nginx'];

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
  /**
   * Share of the machine's CPU time (all cores, /proc/stat) the hypervisor gave to others while
   * this VM wanted it, over the run: a latency tail with steal in it is the host's, not the path's.
   */
  stealPercent?: number;
  error?: string;
}

/**
 * One run of a scenario whose numbers are a flat set of named metrics (maxrate, connrate,
 * handshakes, memory — bench/scenarios/*). `values` is absent when the run failed (`error` says why).
 */
export interface MetricSample {
  path: PathName;
  run: number;
  values?: Record<string, number>;
  error?: string;
}

/** Scenarios whose samples are MetricSamples, keyed as in BenchResults. */
export type MetricScenario = 'maxrate' | 'connrate' | 'handshakes' | 'memory';
export const METRIC_SCENARIOS: readonly MetricScenario[] = ['maxrate', 'connrate', 'handshakes', 'memory'];

export interface BenchEnvironment {
  node: string;
  /** The amesh agents' node when it is not the bench's own (`BENCH_AGENT_NODE`). */
  agentNode?: string;
  openssl: string;
  kernel: string;
  iperf3: string;
  stunnel: string;
  haproxy: string;
  nginx: string;
  wrk: string;
  amesh: string;
  cpus: string;
  clockTicksPerSecond: number;
  /** As reported by the readiness endpoint of the amesh path's agents. */
  captureMode: string;
  /** Same, for the amesh-nft path's agents (started with AMESH_CAPTURE_MODE=nftables). */
  captureModeNft: string;
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
  /** Scenario 3: closed-loop seconds and connections (wrk). */
  maxRateSeconds: number;
  maxRateConnections: number;
  /** Scenario 4: seconds per connection-rate run and concurrent connects. */
  connRateSeconds: number;
  /** Connections in flight, one measurement each. */
  connRateConcurrency: number[];
  /** Scenario 5: held-connection counts (RSS is also read idle, before any). */
  memoryConnections: number[];
  /** Scenario 6: seconds per L7 measurement (the waypoint bench's max-rate and latency runs). */
  l7Seconds: number;
}

export interface BenchResults {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  settings: BenchSettings;
  environment: BenchEnvironment;
  throughput: ThroughputSample[];
  latency: LatencySample[];
  maxrate: MetricSample[];
  connrate: MetricSample[];
  /** Scenario 4's second half: a full mutual-TLS handshake per connection (absent in results from before 2026-12-06 evening). */
  handshakes?: MetricSample[];
  memory: MetricSample[];
  /** Scenario 6: the waypoint bench's own result document (bench/waypoint-harness.ts), when it ran. */
  l7?: L7Result;
  notes: string[];
}

/** What `npm run bench` keeps of the waypoint bench's run (scenario 6). */
export interface L7Result {
  /** The waypoint bench's JSON document as it wrote it. */
  document?: unknown;
  /** Its Markdown report. */
  markdown?: string;
  error?: string;
}
