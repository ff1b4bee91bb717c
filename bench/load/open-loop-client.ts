/**
 * Open-loop HTTP/1.1 load generator (see open-loop.ts for the model), run inside the client pod:
 *
 *   node dist/bench/load/open-loop-client.js --host H --port P [--path /] --rate 1000
 *        --connections 4 --duration 30 [--warmup 2] [--timeout-ms 5000]
 *        [--https --ca-file root.pem --servername edge.example.com] [--host-header edge.example.com]
 *
 * `--https`: HTTP/1.1 over TLS (keep-alive, so one handshake per connection, before the clock
 * starts), the server's certificate verified against `--ca-file` for `--servername` (also the SNI).
 *
 * Bounded by count (rate × (warmup + duration) requests) and by time (a hard deadline of
 * warmup + duration + 15 s, after which unfinished requests count as DEADLINE errors).
 * Prints one JSON line: an OpenLoopReport, or {"ok":false,"error":…} with exit status 1.
 *
 * The schedule is load/open-loop-driver.ts (shared with the soak's generator). node:http (one
 * keep-alive Agent with maxSockets 1 per connection) rather than a hand-written
 * client: at 1000 req/s its cost is small and identical for every path. Latencies are recorded in
 * an HdrHistogram (hdr-histogram-js) in microseconds.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { build, type Histogram } from 'hdr-histogram-js';
import { type OpenLoopReport, type Percentiles } from './open-loop.js';
import { OpenLoop, preflight, type OpenLoopTransport } from './open-loop-driver.js';

interface Options {
  host: string;
  port: number;
  path: string;
  rate: number;
  connections: number;
  duration: number;
  warmup: number;
  timeoutMs: number;
  https?: { ca?: Buffer; servername?: string };
  hostHeader?: string;
}

function fail(error: string): never {
  process.stdout.write(`${JSON.stringify({ ok: false, error })}\n`);
  process.exit(1);
}

const USAGE =
  'usage: open-loop-client --host H --port P [--path /] [--rate 1000] [--connections 4] [--duration 30] [--warmup 2] [--timeout-ms 5000] [--https [--ca-file F] [--servername S]] [--host-header H]';

/** The command line; a malformed one ends the process with the JSON error and the usage. */
function parseOptions() {
  try {
    return parseArgs({
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        path: { type: 'string', default: '/' },
        rate: { type: 'string', default: '1000' },
        connections: { type: 'string', default: '4' },
        duration: { type: 'string', default: '30' },
        warmup: { type: 'string', default: '2' },
        'timeout-ms': { type: 'string', default: '5000' },
        https: { type: 'boolean', default: false },
        'ca-file': { type: 'string' },
        servername: { type: 'string' },
        'host-header': { type: 'string' },
      },
    }).values;
  } catch (err) {
    return fail(`${err instanceof Error ? err.message : String(err)}; ${USAGE}`);
  }
}

function readOptions(): Options {
  const values = parseOptions();
  const positive = (name: string, raw: string | undefined, max: number): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || n > max) fail(`--${name} ${raw}: expected a number in (0, ${max}]`);
    return n;
  };
  if (!values.host) fail('--host is required');
  const warmup = Number(values.warmup);
  if (!Number.isFinite(warmup) || warmup < 0 || warmup > 60) fail(`--warmup ${values.warmup}: expected 0–60 seconds`);
  return {
    host: values.host,
    port: positive('port', values.port, 65535),
    path: values.path,
    rate: positive('rate', values.rate, 100_000),
    connections: Math.floor(positive('connections', values.connections, 1024)),
    duration: positive('duration', values.duration, 3600),
    warmup,
    timeoutMs: positive('timeout-ms', values['timeout-ms'], 60_000),
    ...(values.https ? { https: { ...(values['ca-file'] ? { ca: readFileSync(values['ca-file']) } : {}), ...(values.servername ? { servername: values.servername } : {}) } } : {}),
    ...(values['host-header'] ? { hostHeader: values['host-header'] } : {}),
  };
}

const histogram = (): Histogram => build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

function percentiles(h: Histogram): Percentiles {
  const ms = (us: number): number => us / 1000;
  return {
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

const recordMs = (h: Histogram, ms: number): void => h.recordValue(Math.max(1, Math.round(ms * 1000)));

const opts = readOptions();
const agentOptions = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1 };
const agents: Agent[] = Array.from({ length: opts.connections }, () =>
  opts.https ? new HttpsAgent({ ...agentOptions, ...opts.https, ...(opts.https.ca ? {} : { rejectUnauthorized: false }) }) : new Agent(agentOptions),
);
const sockets = new WeakSet<Socket>();
let connectionsOpened = 0;

/** One GET on connection `c`; `done` gets an error code, or undefined on a complete 200. */
function get(c: number, done: (code: string | undefined) => void): void {
  let settled = false;
  const settle = (code: string | undefined): void => {
    if (settled) return;
    settled = true;
    done(code);
  };
  const send = (opts.https ? httpsRequest : request) as (o: RequestOptions, cb: (res: IncomingMessage) => void) => ClientRequest;
  const req = send({ host: opts.host, port: opts.port, path: opts.path, agent: agents[c]!, ...(opts.hostHeader ? { headers: { host: opts.hostHeader } } : {}) }, (res) => {
    const expected = Number(res.headers['content-length']);
    let bytes = 0;
    res.on('data', (chunk: Buffer) => (bytes += chunk.length));
    res.on('end', () => settle(res.statusCode !== 200 ? `HTTP_${res.statusCode}` : bytes !== expected ? 'SHORT_BODY' : undefined));
    res.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'RESPONSE_ERROR'));
  });
  req.on('socket', (socket: Socket) => {
    if (!sockets.has(socket)) {
      sockets.add(socket);
      connectionsOpened++;
      socket.setNoDelay(true);
    }
  });
  req.setTimeout(opts.timeoutMs, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'TIMEOUT' })));
  req.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'REQUEST_ERROR'));
  req.end();
}
const transport: OpenLoopTransport = { connections: opts.connections, send: get };

// Open every connection (and, on the amesh path, the tunnel) before the clock starts.
const preflightError = await preflight(transport);
if (preflightError) fail(`the first request on a fresh connection to ${opts.host}:${opts.port} failed: ${preflightError}`);

const warmupRequests = Math.round(opts.warmup * opts.rate);
const scheduled = Math.round(opts.duration * opts.rate);
const total = warmupRequests + scheduled;
const latency = histogram();
const sendLag = histogram();
const errorKinds: Record<string, number> = {};
let completed = 0;
let errors = 0;
let lastCompletion = 0;

const loop = await OpenLoop.start(
  transport,
  { rate: opts.rate, total, maxBacklog: Infinity, deadlineMs: (opts.warmup + opts.duration + 15) * 1000 },
  {
    due(index, lagMs) {
      if (index >= warmupRequests) recordMs(sendLag, lagMs);
    },
    finished(index, code, latencyMs, now) {
      if (index < warmupRequests) return;
      if (code === undefined) {
        completed++;
        recordMs(latency, latencyMs);
        lastCompletion = now;
      } else {
        errors++;
        errorKinds[code] = (errorKinds[code] ?? 0) + 1;
      }
    },
    dropped() {
      // maxBacklog is unbounded: never called.
    },
    end(unsent, inFlight) {
      // Only measured requests count; warm-up ones are all due before any measured one.
      const measuredUnfinished = Math.min(unsent + inFlight, scheduled);
      errors += measuredUnfinished;
      if (measuredUnfinished > 0) errorKinds.DEADLINE = (errorKinds.DEADLINE ?? 0) + measuredUnfinished;
      report();
    },
  },
);
const measureStart = loop.due(warmupRequests);

function report(): void {
  const window = Math.max(opts.duration, (lastCompletion - measureStart) / 1000);
  const out: OpenLoopReport = {
    ok: true,
    targetRate: opts.rate,
    connections: opts.connections,
    durationSeconds: opts.duration,
    warmupRequests,
    scheduled,
    completed,
    errors,
    errorKinds,
    achievedRate: completed / window,
    latencyMs: percentiles(latency),
    sendLagMs: percentiles(sendLag),
    connectionsOpened,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  for (const a of agents) a.destroy();
  process.exit(0);
}
