/**
 * The soak's open-loop HTTP/1.1 load generator (`npm run soak`, bench/soak-run.ts), run inside the
 * client pod. The same model as open-loop-client.ts — request i is due at t0 + i/rate and its
 * latency is measured from that due time (no coordinated omission), spread round-robin over
 * keep-alive connections — but it runs for minutes and prints one JSON line per interval, so
 * the soak can show progress and judge the run as it goes:
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
 * requests still queued at the deadline. `errors` are requests sent that failed or got no answer.
 */
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { build, type Histogram } from 'hdr-histogram-js';
import { connectionFor, dueOffsetMs } from './open-loop.js';

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

interface Connection {
  agent: Agent;
  busy: boolean;
  queue: number[];
}
const connections: Connection[] = Array.from({ length: o.connections }, () => ({ agent: new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 }), busy: false, queue: [] }));
const seen = new WeakSet<Socket>();
let connectionsOpened = 0;

/** One GET; resolves with an error code, or undefined for a 200 with its whole body. */
function get(connection: Connection): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (code: string | undefined): void => {
      if (!settled) {
        settled = true;
        resolve(code);
      }
    };
    const req = request({ host: o.host, port: o.port, path: '/', agent: connection.agent }, (res) => {
      const expected = Number(res.headers['content-length']);
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => settle(res.statusCode !== 200 ? `HTTP_${res.statusCode}` : bytes !== expected ? 'SHORT_BODY' : undefined));
      res.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'RESPONSE_ERROR'));
    });
    req.on('socket', (socket: Socket) => {
      if (!seen.has(socket)) {
        seen.add(socket);
        connectionsOpened++;
        socket.setNoDelay(true);
      }
    });
    req.setTimeout(o.timeoutMs, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'REQUEST_ERROR'));
    req.end();
  });
}

const waker = new Worker(new URL('./wake-worker.js', import.meta.url));
waker.on('error', (err) => fail(`the wake-up worker failed: ${err.message}`));
await once(waker, 'online');

// Open every connection (and its tunnel) before the clock starts.
const preflight = await Promise.all(connections.map((c) => get(c)));
const preflightError = preflight.find((code) => code !== undefined);
if (preflightError) fail(`the first request on a fresh connection to ${o.host}:${o.port} failed: ${preflightError}`);

const total = Math.round(o.duration * o.rate);
const whole = histogram();
let slice = histogram();
const totals = { sent: 0, completed: 0, errors: 0, backlogDropped: 0, errorKinds: {} as Record<string, number> };
let current = { sent: 0, completed: 0, errors: 0, backlogDropped: 0, errorKinds: {} as Record<string, number> };
let finished = 0;
let next = 0;
let lastCompletion = 0;
const t0 = performance.now() + 5;
const due = (index: number): number => t0 + dueOffsetMs(index, o.rate);
let sliceStart = t0;

function count(field: 'sent' | 'completed' | 'errors' | 'backlogDropped', code?: string): void {
  totals[field]++;
  current[field]++;
  if (code) {
    totals.errorKinds[code] = (totals.errorKinds[code] ?? 0) + 1;
    current.errorKinds[code] = (current.errorKinds[code] ?? 0) + 1;
  }
}

function emitInterval(): void {
  const now = performance.now();
  const seconds = Math.max(0.001, (now - sliceStart) / 1000);
  say({ event: 'interval', t: Math.round((now - t0) / 100) / 10, ...current, rate: current.completed / seconds, p50: ms(slice.getValueAtPercentile(50)), p99: ms(slice.getValueAtPercentile(99)) });
  current = { sent: 0, completed: 0, errors: 0, backlogDropped: 0, errorKinds: {} };
  slice.destroy();
  slice = histogram();
  sliceStart = now;
}
const ticker = setInterval(emitInterval, o.interval * 1000);

function finish(): void {
  clearInterval(ticker);
  clearTimeout(deadline);
  emitInterval();
  void waker.terminate();
  const window = Math.max(o.duration, (lastCompletion - t0) / 1000);
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
  });
  for (const c of connections) c.agent.destroy();
  process.exit(0);
}

function send(index: number, connection: Connection): void {
  connection.busy = true;
  count('sent');
  void get(connection).then((code) => {
    const now = performance.now();
    if (code === undefined) {
      count('completed');
      const latencyUs = Math.max(1, Math.round((now - due(index)) * 1000));
      whole.recordValue(latencyUs);
      slice.recordValue(latencyUs);
      lastCompletion = now;
    } else count('errors', code);
    finished++;
    const queued = connection.queue.shift();
    if (queued !== undefined) send(queued, connection);
    else connection.busy = false;
    if (finished === total) finish();
  });
}

function tick(): void {
  const now = performance.now();
  while (next < total && due(next) <= now) {
    const connection = connections[connectionFor(next, connections.length)]!;
    if (!connection.busy) send(next, connection);
    else if (connection.queue.length < o.maxBacklog) connection.queue.push(next);
    else {
      count('backlogDropped');
      finished++;
    }
    next++;
  }
  if (finished === total) finish();
  else if (next < total) waker.postMessage(due(next) - performance.now());
}

const deadline = setTimeout(() => {
  // Requests still queued here (or never due) were not sent: the generator's backlog, not the path's
  // failures. Only those sent and not answered within the deadline are errors.
  const queued = connections.reduce((n, c) => n + c.queue.length, 0) + (total - next);
  const inFlight = total - finished - queued;
  totals.backlogDropped += queued;
  totals.errors += inFlight;
  if (inFlight > 0) totals.errorKinds.DEADLINE = (totals.errorKinds.DEADLINE ?? 0) + inFlight;
  finish();
}, (o.duration + 15) * 1000);

process.on('SIGTERM', finish);
waker.on('message', tick);
waker.postMessage(t0 - performance.now());
