/**
 * The soak's open-loop HTTP/1.1 load generator (`npm run soak`, bench/soak-run.ts), run inside the
 * client pod. The same model as open-loop-client.ts (load/open-loop-driver.ts: request i is due at
 * t0 + i/rate and its latency is measured from that due time — no coordinated omission — spread
 * round-robin over keep-alive connections, one request in flight per connection), but on raw
 * sockets with a pre-encoded request and a minimal response check (load/raw-http1-connection.ts,
 * load/http1-response-parser.ts: status 200, Content-Length, the whole body), because the soak
 * runs at thousands of requests per second on the same 2 cores as the proxies it measures and
 * node:http cost more than the node agents. It runs for minutes and prints one JSON line per
 * interval, so the soak can show progress and judge the run as it goes:
 *
 *   {"event":"interval","t":10.0,"sent":…,"completed":…,"errors":…,"errorKinds":{…},"backlogDropped":…,
 *    "rate":…,"p50":…,"p99":…}                         (per interval; latencies in ms)
 *   {"event":"done", …totals…, "p50":…,"p90":…,"p99":…,"p999":…,"max":…}   (exits 0)
 *   {"event":"failed","error":"…"}                     (exits 1)
 *
 *   node dist/bench/load/soak-load-client.js --host H --port P --rate 5000 --connections 32
 *        --duration 600 [--interval 10] [--timeout-ms 5000] [--max-backlog <per connection; default 2 s of load>]
 *
 * Bounded: rate × duration requests, a hard deadline of duration + 15 s, and at most
 * --max-backlog requests queued per connection — when the path (or this generator, on a loaded
 * machine) cannot keep up, later requests are not queued without bound but counted as
 * `backlogDropped` (never sent), so the achieved rate below the target shows honestly; so are
 * requests still queued at the deadline. `errors` are requests sent that failed or got no answer
 * (error kinds: HTTP_<status>, the parser's and the connection's kinds, socket error codes).
 * A connection that closes is reopened for its next request (`reconnections`).
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { build, type Histogram } from 'hdr-histogram-js';
import { OpenLoop, preflight } from './open-loop-driver.js';
import { encodeGet, RawHttp1Transport } from './raw-http1-connection.js';

export interface SoakIntervalEvent {
  event: 'interval';
  /** Seconds since the schedule started. */
  t: number;
  /** In this interval: requests sent, answered 200 with the whole body, failed, not sent (backlog full). */
  sent: number;
  completed: number;
  errors: number;
  errorKinds: Record<string, number>;
  backlogDropped: number;
  /** Completed per second over the interval. */
  rate: number;
  p50: number;
  p99: number;
}

export interface SoakDoneEvent {
  event: 'done';
  targetRate: number;
  durationSeconds: number;
  scheduled: number;
  sent: number;
  completed: number;
  errors: number;
  errorKinds: Record<string, number>;
  backlogDropped: number;
  achievedRate: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  connectionsOpened: number;
  /** Connections reopened after they closed or failed (connectionsOpened − connections). */
  reconnections: number;
}

export type SoakLoadEvent = SoakIntervalEvent | SoakDoneEvent | { event: 'failed'; error: string };

const say = (e: SoakLoadEvent): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};
function fail(error: string): never {
  say({ event: 'failed', error });
  process.exit(1);
}

function options(): { host: string; port: number; rate: number; connections: number; duration: number; interval: number; timeoutMs: number; maxBacklog: number | undefined } {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      rate: { type: 'string', default: '1000' },
      connections: { type: 'string', default: '32' },
      duration: { type: 'string', default: '60' },
      interval: { type: 'string', default: '10' },
      'timeout-ms': { type: 'string', default: '5000' },
      'max-backlog': { type: 'string' },
    },
  });
  const num = (name: string, raw: string | undefined, max: number): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || n > max) fail(`--${name} ${raw}: expected a number in (0, ${max}]`);
    return n;
  };
  if (!values.host) fail('--host is required');
  return {
    host: values.host,
    port: num('port', values.port, 65535),
    rate: num('rate', values.rate, 100_000),
    connections: Math.floor(num('connections', values.connections, 4096)),
    duration: num('duration', values.duration, 86_400),
    interval: num('interval', values.interval, 3600),
    timeoutMs: num('timeout-ms', values['timeout-ms'], 120_000),
    // Default: about two seconds of the target load queued over all connections.
    maxBacklog: values['max-backlog'] === undefined ? undefined : Math.floor(num('max-backlog', values['max-backlog'], 1_000_000)),
  };
}

const parsed = options();
const o = { ...parsed, maxBacklog: parsed.maxBacklog ?? Math.max(10, Math.ceil((2 * parsed.rate) / parsed.connections)) };
const histogram = (): Histogram => build({ lowestDiscernibleValue: 1, highestTrackableValue: 300_000_000, numberOfSignificantValueDigits: 3 });
const ms = (us: number): number => us / 1000;

/** As node:http writes it: the port only when not 80. */
const hostHeader = (host: string, port: number): string => {
  const name = host.includes(':') ? `[${host}]` : host;
  return port === 80 ? name : `${name}:${port}`;
};
const transport = new RawHttp1Transport({ host: o.host, port: o.port, request: encodeGet(hostHeader(o.host, o.port)), timeoutMs: o.timeoutMs }, o.connections);
const preflightError = await preflight(transport);
if (preflightError) fail(`the first request on a fresh connection to ${o.host}:${o.port} failed: ${preflightError}`);

type Counts = { sent: number; completed: number; errors: number; backlogDropped: number; errorKinds: Record<string, number> };
const zero = (): Counts => ({ sent: 0, completed: 0, errors: 0, backlogDropped: 0, errorKinds: {} });
const total = Math.round(o.duration * o.rate);
const whole = histogram();
let slice = histogram();
const totals = zero();
let current = zero();
let lastCompletion = 0;

function count(field: 'sent' | 'completed' | 'errors' | 'backlogDropped', code?: string, n = 1): void {
  totals[field] += n;
  current[field] += n;
  if (code) {
    totals.errorKinds[code] = (totals.errorKinds[code] ?? 0) + n;
    current.errorKinds[code] = (current.errorKinds[code] ?? 0) + n;
  }
}

const loop = await OpenLoop.start(
  transport,
  { rate: o.rate, total, maxBacklog: o.maxBacklog, deadlineMs: (o.duration + 15) * 1000 },
  {
    sent: () => count('sent'),
    finished(_index, code, latencyMs, now) {
      if (code === undefined) {
        count('completed');
        const latencyUs = Math.max(1, Math.round(latencyMs * 1000));
        whole.recordValue(latencyUs);
        slice.recordValue(latencyUs);
        lastCompletion = now;
      } else count('errors', code);
    },
    dropped: () => count('backlogDropped'),
    end(unsent, inFlight) {
      // Only requests sent and not answered by the deadline are errors; unsent ones were the generator's backlog.
      count('backlogDropped', undefined, unsent);
      if (inFlight > 0) count('errors', 'DEADLINE', inFlight);
      finish();
    },
  },
);
let sliceStart = loop.t0;

function emitInterval(): void {
  const now = performance.now();
  const seconds = Math.max(0.001, (now - sliceStart) / 1000);
  say({ event: 'interval', t: Math.round((now - loop.t0) / 100) / 10, ...current, rate: current.completed / seconds, p50: ms(slice.getValueAtPercentile(50)), p99: ms(slice.getValueAtPercentile(99)) });
  current = zero();
  slice.destroy();
  slice = histogram();
  sliceStart = now;
}
const ticker = setInterval(emitInterval, o.interval * 1000);

function finish(): void {
  loop.stop();
  clearInterval(ticker);
  emitInterval();
  const window = Math.max(o.duration, (lastCompletion - loop.t0) / 1000);
  const connectionsOpened = transport.opened;
  say({
    event: 'done',
    targetRate: o.rate,
    durationSeconds: o.duration,
    scheduled: total,
    ...totals,
    achievedRate: totals.completed / window,
    p50: ms(whole.getValueAtPercentile(50)),
    p90: ms(whole.getValueAtPercentile(90)),
    p99: ms(whole.getValueAtPercentile(99)),
    p999: ms(whole.getValueAtPercentile(99.9)),
    max: ms(whole.maxValue),
    connectionsOpened,
    reconnections: connectionsOpened - o.connections,
  });
  transport.close();
  process.exit(0);
}

process.on('SIGTERM', finish);
