/**
 * wrk (the closed-loop HTTP/1.1 load generator of BENCHMARKS.md scenarios 3 and 4): its command
 * line and its report. wrk's human-readable summary rounds ("14.20k") and changes shape with the
 * options, so a Lua `done` hook prints the exact counters as one JSON line after it; that line is
 * what we parse. Latencies are wrk's own (from each request's send, i.e. closed loop: they are
 * service times, not the open-loop latencies of scenario 2).
 */

/** Written next to the run's other files and passed with `-s`. */
export const WRK_REPORT_SCRIPT = `-- amesh bench: one JSON line with wrk's exact counters (bench/load/wrk.ts parses it)
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"wrk":1,"durationUs":%.0f,"requests":%.0f,"bytes":%.0f,"connectErrors":%.0f,"readErrors":%.0f,"writeErrors":%.0f,"statusErrors":%.0f,"timeouts":%.0f,"latencyUs":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f,"mean":%.1f}}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
`;

export interface WrkRun {
  url: string;
  connections: number;
  threads: number;
  seconds: number;
  /** Extra request headers, e.g. `Connection: close` for a new connection per request. */
  headers?: readonly string[];
  /** Path of WRK_REPORT_SCRIPT. */
  script: string;
  /** Per-request timeout (wrk's default is 2 s). */
  timeoutSeconds?: number;
}

export function wrkArgv(run: WrkRun): string[] {
  return [
    'wrk',
    '-t', String(run.threads),
    '-c', String(run.connections),
    '-d', `${run.seconds}s`,
    '--timeout', `${run.timeoutSeconds ?? 5}s`,
    ...(run.headers ?? []).flatMap((h) => ['-H', h]),
    '-s', run.script,
    run.url,
  ];
}

export interface WrkReport {
  seconds: number;
  /** Responses received (wrk counts non-2xx/3xx ones too; see statusErrors). */
  requests: number;
  bytes: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  /** Responses with a status outside 2xx/3xx. */
  statusErrors: number;
  timeouts: number;
  /** Good responses per second: (requests − statusErrors) / seconds. */
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
}

export class WrkOutputError extends Error {
  readonly code = 'BENCH_WRK_OUTPUT';
  constructor(message: string) {
    super(message);
    this.name = 'WrkOutputError';
  }
}

const COUNTERS = ['durationUs', 'requests', 'bytes', 'connectErrors', 'readErrors', 'writeErrors', 'statusErrors', 'timeouts'] as const;

/** Parses wrk's stdout (its summary, then our JSON line). */
export function parseWrkOutput(stdout: string): WrkReport {
  const line = stdout
    .split('\n')
    .map((l) => l.trim())
    .reverse()
    .find((l) => l.startsWith('{"wrk":'));
  if (!line) {
    const said = stdout.trim().split('\n').slice(-3).join(' | ');
    throw new WrkOutputError(`wrk printed no report line (was the -s report script loaded?): ${said.slice(0, 300) || '(empty output)'}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new WrkOutputError(`wrk's report line is not JSON: ${line.slice(0, 200)}`);
  }
  const n = (key: string, from: Record<string, unknown> = doc): number => {
    const v = from[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new WrkOutputError(`wrk's report lacks a valid "${key}": ${line.slice(0, 200)}`);
    return v;
  };
  for (const key of COUNTERS) n(key);
  const lat = doc.latencyUs;
  if (typeof lat !== 'object' || lat === null) throw new WrkOutputError(`wrk's report lacks "latencyUs": ${line.slice(0, 200)}`);
  const us = lat as Record<string, unknown>;
  const seconds = n('durationUs') / 1e6;
  if (seconds <= 0) throw new WrkOutputError('wrk reported a run of 0 s');
  const requests = n('requests');
  const statusErrors = n('statusErrors');
  return {
    seconds,
    requests,
    bytes: n('bytes'),
    connectErrors: n('connectErrors'),
    readErrors: n('readErrors'),
    writeErrors: n('writeErrors'),
    statusErrors,
    timeouts: n('timeouts'),
    requestsPerSecond: Math.max(0, requests - statusErrors) / seconds,
    latencyMs: { p50: n('p50', us) / 1000, p90: n('p90', us) / 1000, p99: n('p99', us) / 1000, max: n('max', us) / 1000, mean: n('mean', us) / 1000 },
  };
}

/** All failed requests and connection attempts wrk counted. */
export function wrkErrors(r: WrkReport): number {
  return r.connectErrors + r.readErrors + r.writeErrors + r.statusErrors + r.timeouts;
}
