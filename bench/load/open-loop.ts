/**
 * The open-loop schedule and the report the load generator prints, shared by the generator
 * (load/open-loop-client.ts, run inside the client pod) and the latency scenario that parses it.
 *
 * Open loop (no coordinated omission): request i is due at t0 + i/rate whatever happened to
 * earlier requests, and its latency is measured from that due time, so a stalled connection
 * shows up as latency for every request that should have been sent meanwhile — as in wrk2.
 * Requests are spread round-robin over the connections; each connection carries one request at
 * a time (HTTP/1.1 without pipelining) and queues the rest in order.
 */

/** Due time of request `index`, in ms after the start of the schedule. */
export function dueOffsetMs(index: number, rate: number): number {
  return (index * 1000) / rate;
}

/** Connection that carries request `index`. */
export function connectionFor(index: number, connections: number): number {
  return index % connections;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface OpenLoopReport {
  ok: true;
  targetRate: number;
  connections: number;
  durationSeconds: number;
  warmupRequests: number;
  /** Requests in the measured window. */
  scheduled: number;
  completed: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Completed measured requests per second of the measured window (longer if it overran). */
  achievedRate: number;
  latencyMs: Percentiles;
  /** Dispatch time − due time: the generator's own scheduling lag (not connection queueing). */
  sendLagMs: Percentiles;
  connectionsOpened: number;
}

export class OpenLoopReportError extends Error {
  readonly code = 'BENCH_OPEN_LOOP_OUTPUT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OpenLoopReportError';
  }
}

/** Parses the generator's stdout: the last line is its JSON report. */
export function parseOpenLoopReport(stdout: string): OpenLoopReport {
  const line = stdout.trim().split('\n').pop() ?? '';
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch (err) {
    throw new OpenLoopReportError(`the load generator did not print a JSON report: ${line.slice(0, 200) || '(empty output)'}`, { cause: err });
  }
  const report = doc as Partial<OpenLoopReport> & { ok?: boolean; error?: string };
  if (report.ok !== true) throw new OpenLoopReportError(`the load generator failed: ${report.error ?? line.slice(0, 200)}`);
  if (typeof report.completed !== 'number' || typeof report.latencyMs?.p99 !== 'number') {
    throw new OpenLoopReportError('the load generator report lacks completed / latencyMs');
  }
  return report as OpenLoopReport;
}
