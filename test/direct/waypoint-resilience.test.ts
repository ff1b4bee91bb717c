// The waypoint's request path (HttpProxy + WaypointInbound) in-process on 127.0.0.1, every port 0:
// a front listener hands each accepted socket to the proxy (HTTP/1.1 or h2c, no HBONE), upstream
// endpoints are plain TCP backends that fail, hang or count on demand. Randomness is seeded.
//   - retries (otherHost) turn a half-failing endpoint into 100 % success; without, failures show;
//   - a request body is replayed to the retry; the access log counts the attempts;
//   - a per-try timeout is retried, then the retry succeeds;
//   - the route timeout answers 504 UT after ~timeout, also while retries are pending;
//   - retry budget (maxRetries 0) → the 503 stands, flagged URX;
//   - gRPC trailers-only `unavailable` retried on HTTP/2;
//   - fault abort / delay rates over 400 requests within ±5 points; gRPC abort trailers-only;
//   - maxConnections 1 + maxPendingRequests 1 with 5 concurrent slow requests → 503 UO;
//   - AuthorizationPolicy DENY → 403 `RBAC: access denied` (HTTP/1.1 and gRPC), logged with the
//     policy; an opaque TCP CONNECT to a denied service is refused.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HboneConnectRequest } from '../../src/hbone/server.js';
import type { Cluster, Endpoint, HttpRoute, WaypointConfig } from '../../src/l7/config.js';
import { HttpProxy } from '../../src/l7/http-proxy.js';
import { WaypointInbound } from '../../src/l7/inbound.js';
import { UpstreamPools, type UpstreamDialer } from '../../src/l7/upstream.js';
import { buildWaypointState, type WaypointState } from '../../src/l7/waypoint-state.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { listen } from '../helpers/hbone.js';
import { seededRandom as seeded } from '../helpers/seeded-random.js';

const VIP = '10.96.0.20';
const GRPC_VIP = '10.96.0.21';
const TCP_VIP = '10.96.0.22';
const HOST = 'backend.demo.svc.cluster.local';
const CLIENT_URI = 'spiffe://cluster.local/ns/demo/sa/client';


interface Counters {
  requests: number;
  bodies: string[];
  held: http.ServerResponse[];
}

/**
 * An HTTP/1.1 backend. Paths: `/flaky` 503 on every other request of the backend named `bad`,
 * `/fail-first/<n>` 503 for the first n requests of that path then 200 echoing the body,
 * `/hang-first` never answers its first request, `/slow` answers after 150 ms, `/hang` never,
 * `/503` always 503, anything else 200.
 */
function backend(name: string, c: Counters): http.Server {
  const perPath = new Map<string, number>();
  let flaky = 0;
  return http.createServer((req, res) => {
    c.requests++;
    const url = req.url ?? '/';
    const seen = (perPath.get(url) ?? 0) + 1;
    perPath.set(url, seen);
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      c.bodies.push(body);
      const answer = (status: number): void => {
        res.writeHead(status, { 'content-type': 'text/plain', 'x-backend': name });
        res.end(`${name} ${status} ${body}`);
      };
      if (url === '/flaky') return answer(name === 'bad' && flaky++ % 2 === 0 ? 503 : 200);
      const failFirst = /^\/fail-first\/(\d+)/.exec(url);
      if (failFirst) return answer(seen <= Number(failFirst[1]) ? 503 : 200);
      if (url.startsWith('/hang-first')) {
        if (seen === 1) return void c.held.push(res);
        return answer(200);
      }
      if (url === '/hang') return void c.held.push(res);
      if (url === '/slow') return void setTimeout(() => answer(200), 150);
      if (url === '/503') return answer(503);
      answer(200);
    });
  });
}

/** A gRPC-style backend: `/flaky.Svc/Call` answers trailers-only UNAVAILABLE to its first call, then OK. */
function grpcBackend(): http2.Http2Server {
  let calls = 0;
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.resume();
    stream.on('end', () => {
      if (calls++ === 0) return stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'try again' }, { endStream: true });
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 111, 107]));
    });
  });
  return server;
}

const plainDialer: UpstreamDialer = {
  connect: (e: Endpoint) =>
    new Promise<Duplex>((resolve, reject) => {
      const s = net.connect(e.port, e.address);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    }),
};

const ep = (port: number): Endpoint => ({ address: '127.0.0.1', port, identity: '', hbone: false });

interface Fixture {
  proxy: HttpProxy;
  inbound: WaypointInbound;
  apply: (c: WaypointConfig) => void;
  config: WaypointConfig;
  logs: Array<Record<string, unknown>>;
  h1Port: number;
  h2Port: number;
  good: Counters;
  bad: Counters;
  cleanups: Array<() => unknown>;
}

async function closeServer(server: net.Server | http2.Http2Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function setup(): Promise<Fixture> {
  const cleanups: Array<() => unknown> = [];
  const good: Counters = { requests: 0, bodies: [], held: [] };
  const bad: Counters = { requests: 0, bodies: [], held: [] };
  const sGood = backend('good', good);
  const sBad = backend('bad', bad);
  const g = grpcBackend();
  const tcp = net.createServer((s) => s.pipe(s));
  const [pGood, pBad, pGrpc, pTcp] = await Promise.all([listen(sGood), listen(sBad), listen(g as unknown as net.Server), listen(tcp)]);
  cleanups.push(
    () => {
      for (const r of [...good.held, ...bad.held]) r.destroy();
    },
    () => closeServer(sGood),
    () => closeServer(sBad),
    () => closeServer(g),
    () => closeServer(tcp),
  );

  const C_MIXED = `outbound|80|mixed|${HOST}`;
  const C_BAD = `outbound|80|bad|${HOST}`;
  const C_GOOD = `outbound|80|good|${HOST}`;
  const C_LIMITED = `outbound|80|limited|${HOST}`;
  const C_NO_RETRY_BUDGET = `outbound|80|budget|${HOST}`;
  const C_GRPC = 'outbound|81||grpc.demo.svc.cluster.local';
  const C_TCP = 'outbound|9000||tcp.demo.svc.cluster.local';
  const cluster = (name: string, endpoints: Endpoint[], over: Partial<Cluster> = {}): Cluster => ({ name, service: `demo/${HOST}`, port: 80, lb: 'ROUND_ROBIN', endpoints, ...over });
  const fwd = (c: string): HttpRoute['action'] => ({ kind: 'forward', backends: [{ cluster: c, weight: 1 }] });
  const prefix = (value: string): HttpRoute['matches'] => [{ path: { kind: 'prefix', value } }];
  const routes: HttpRoute[] = [
    { name: 'VirtualService/demo/retry#0', matches: prefix('/retry/'), rewrite: { path: { kind: 'prefix', value: '/' } }, retries: { attempts: 3, retryOn: ['5xx'], otherHost: true, backoffBaseMs: 1 }, action: fwd(C_MIXED) },
    { name: 'VirtualService/demo/noretry#0', matches: prefix('/noretry/'), rewrite: { path: { kind: 'prefix', value: '/' } }, action: fwd(C_MIXED) },
    { name: 'VirtualService/demo/replay#0', matches: prefix('/fail-first/'), retries: { attempts: 3, retryOn: ['gateway-error'], otherHost: false, backoffBaseMs: 1 }, action: fwd(C_BAD) },
    { name: 'VirtualService/demo/pertry#0', matches: prefix('/hang-first'), retries: { attempts: 2, retryOn: ['5xx'], perTryTimeoutMs: 100, otherHost: false, backoffBaseMs: 1 }, action: fwd(C_BAD) },
    { name: 'VirtualService/demo/timeout#0', matches: prefix('/hang'), timeoutMs: 300, retries: { attempts: 5, retryOn: ['5xx'], perTryTimeoutMs: 200, otherHost: false, backoffBaseMs: 1 }, action: fwd(C_BAD) },
    { name: 'VirtualService/demo/budget#0', matches: prefix('/503'), retries: { attempts: 3, retryOn: ['5xx'], otherHost: false }, action: fwd(C_NO_RETRY_BUDGET) },
    { name: 'VirtualService/demo/fault#0', matches: prefix('/fault'), fault: { delay: { percent: 10, delayMs: 20 }, abort: { percent: 20, httpStatus: 500 } }, action: fwd(C_GOOD) },
    { name: 'VirtualService/demo/delay#0', matches: prefix('/long-delay'), fault: { delay: { percent: 100, delayMs: 5000 } }, action: fwd(C_GOOD) },
    { name: 'VirtualService/demo/pool#0', matches: prefix('/slow'), action: fwd(C_LIMITED) },
  ];
  const config: WaypointConfig = {
    namespace: 'demo',
    name: 'waypoint',
    identity: 'spiffe://cluster.local/ns/demo/sa/waypoint',
    services: [
      { key: `demo/${HOST}`, namespace: 'demo', hostname: HOST, addresses: [VIP], ports: [{ port: 80, protocol: 'HTTP', routes, defaultCluster: C_GOOD }] },
      {
        key: 'demo/grpc.demo.svc.cluster.local',
        namespace: 'demo',
        hostname: 'grpc.demo.svc.cluster.local',
        addresses: [GRPC_VIP],
        ports: [
          {
            port: 81,
            protocol: 'GRPC',
            defaultCluster: C_GRPC,
            routes: [
              { name: 'GRPCRoute/demo/abort#0', matches: prefix('/abort.Svc/'), fault: { abort: { percent: 100, grpcStatus: 8 } }, action: fwd(C_GRPC) },
              { name: 'GRPCRoute/demo/flaky#0', matches: prefix('/flaky.Svc/'), retries: { attempts: 2, retryOn: ['unavailable'], otherHost: false, backoffBaseMs: 1 }, action: fwd(C_GRPC) },
            ],
          },
        ],
      },
      { key: 'demo/tcp.demo.svc.cluster.local', namespace: 'demo', hostname: 'tcp.demo.svc.cluster.local', addresses: [TCP_VIP], ports: [{ port: 9000, protocol: 'TCP', routes: [], defaultCluster: C_TCP }] },
    ],
    clusters: [
      cluster(C_MIXED, [ep(pGood), ep(pBad)]),
      cluster(C_BAD, [ep(pBad)]),
      cluster(C_GOOD, [ep(pGood)]),
      cluster(C_LIMITED, [ep(pGood)], { connectionPool: { maxConnections: 1, maxPendingRequests: 1 } }),
      cluster(C_NO_RETRY_BUDGET, [ep(pBad)], { connectionPool: { maxRetries: 0 } }),
      { name: C_GRPC, service: 'demo/grpc.demo.svc.cluster.local', port: 81, lb: 'ROUND_ROBIN', endpoints: [ep(pGrpc)] },
      { name: C_TCP, service: 'demo/tcp.demo.svc.cluster.local', port: 9000, lb: 'ROUND_ROBIN', endpoints: [ep(pTcp)] },
    ],
  };

  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const accessLog = pino({ level: 'info' }, sink);
  const random = seeded(11);
  let state: WaypointState | undefined;
  const apply = (c: WaypointConfig): void => {
    state = buildWaypointState(c, (state?.version ?? 0) + 1, state, { random });
  };
  apply(config);
  const pools = new UpstreamPools({ dialer: plainDialer, logger: silentLogger });
  cleanups.push(() => pools.close());
  const proxy = new HttpProxy({ state: () => state, pools, logger: silentLogger, accessLog, random });
  cleanups.push(() => proxy.close());
  const inbound = new WaypointInbound({ state: () => state, proxy, dialer: plainDialer, logger: silentLogger, accessLog });
  const conn = (port: number): { host: string; port: number; peerIdentity: string; clientAddress: string } => ({ host: port === 81 ? GRPC_VIP : VIP, port, peerIdentity: CLIENT_URI, clientAddress: '10.244.0.7' });
  const front1 = net.createServer((s) => proxy.serveHttp1(s, conn(80)));
  const front2 = net.createServer((s) => proxy.serveHttp2(s, conn(81)));
  const [h1Port, h2Port] = await Promise.all([listen(front1), listen(front2)]);
  cleanups.push(
    () => closeServer(front1),
    () => closeServer(front2),
  );
  return { proxy, inbound, apply, config, logs, h1Port, h2Port, good, bad, cleanups };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(f: Fixture, agent: http.Agent, path: string, opts: { method?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: '127.0.0.1', port: f.h1Port, path, method: opts.method ?? 'GET', headers: { host: HOST } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function grpcCall(session: http2.ClientHttp2Session, path: string): Promise<{ headers: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', () => undefined);
    req.on('end', () => resolve({ headers, ...(trailers ? { trailers } : {}) }));
    req.on('error', reject);
    req.end(Buffer.from([0, 0, 0, 0, 2, 104, 105]));
  });
}

const accessFor = (f: Fixture, path: string): Array<Record<string, unknown>> => f.logs.filter((l) => l.msg === 'access' && l.path === path);

describe('waypoint resilience (request path)', () => {
  let f: Fixture;
  let agent: http.Agent;
  beforeAll(async () => {
    f = await setup();
    agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  });
  afterAll(async () => {
    agent?.destroy();
    for (const c of (f?.cleanups ?? []).reverse()) await c();
  });

  it('retries (otherHost) turn a half-failing endpoint into success; without them failures show', async () => {
    const withRetries: number[] = [];
    const without: number[] = [];
    for (let batch = 0; batch < 10; batch++) {
      withRetries.push(...(await Promise.all(Array.from({ length: 20 }, () => request(f, agent, '/retry/flaky')))).map((a) => a.status));
      without.push(...(await Promise.all(Array.from({ length: 20 }, () => request(f, agent, '/noretry/flaky')))).map((a) => a.status));
    }
    expect(withRetries.filter((s) => s !== 200), JSON.stringify(accessFor(f, '/retry/flaky').filter((l) => l.status !== 200).slice(0, 3))).toEqual([]);
    // Round robin over good + flaky, the flaky one failing every other request: ~25 % fail.
    const failed = without.filter((s) => s === 503).length;
    expect(failed).toBeGreaterThan(20);
    expect(failed).toBeLessThan(80);
    await eventually(() => expect(f.logs.some((l) => l.msg === 'access' && l.path === '/retry/flaky' && l.attempts === 2)).toBe(true), { timeoutMs: 2000, description: 'an access log line with 2 attempts' });
  });

  it('replays the request body to each retry and logs the attempts', async () => {
    const before = f.bad.bodies.length;
    const r = await request(f, agent, '/fail-first/2', { method: 'POST', body: 'payload-123' });
    expect(r).toMatchObject({ status: 200, body: 'bad 200 payload-123' });
    expect(f.bad.bodies.slice(before)).toEqual(['payload-123', 'payload-123', 'payload-123']);
    await eventually(() => expect(accessFor(f, '/fail-first/2')).toEqual([expect.objectContaining({ status: 200, attempts: 3, responseFlags: '-' })]), { timeoutMs: 2000, description: 'access log' });
  });

  it('retries a try that exceeds its per-try timeout, and the retry succeeds', async () => {
    const started = performance.now();
    const r = await request(f, agent, '/hang-first');
    expect(r.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    await eventually(() => expect(accessFor(f, '/hang-first')).toEqual([expect.objectContaining({ status: 200, attempts: 2 })]), { timeoutMs: 2000, description: 'access log' });
  });

  it('answers 504 UT once the route timeout expires, retries included', async () => {
    const started = performance.now();
    const r = await request(f, agent, '/hang');
    const elapsed = performance.now() - started;
    expect(r).toMatchObject({ status: 504, body: 'upstream request timeout', headers: { 'x-amesh-response-flags': 'UT' } });
    // 300 ms route timeout, though 5 retries × 200 ms per try were allowed.
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1500);
    await eventually(() => expect(accessFor(f, '/hang')).toEqual([expect.objectContaining({ status: 504, responseFlags: 'UT', attempts: 2 })]), { timeoutMs: 2000, description: 'access log' });
  });

  it('stops retrying when the retry budget (maxRetries) is exhausted: the 503 stands, flagged URX', async () => {
    const r = await request(f, agent, '/503');
    expect(r.status).toBe(503);
    expect(r.body).toBe('bad 503 ');
    await eventually(() => expect(accessFor(f, '/503')).toEqual([expect.objectContaining({ status: 503, responseFlags: 'URX' })]), { timeoutMs: 2000, description: 'access log' });
    expect(accessFor(f, '/503')[0]?.attempts).toBeUndefined();
  });

  it('injects aborts and delays at the configured rates (±5 points over 400 requests)', async () => {
    const statuses: number[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => request(f, agent, `/fault/${batch}/${i}`)));
      for (const a of answers) {
        statuses.push(a.status);
        if (a.status === 500) expect(a).toMatchObject({ body: 'fault filter abort', headers: { 'x-amesh-response-flags': 'FI' } });
      }
    }
    const aborted = statuses.filter((s) => s === 500).length;
    expect(statuses.filter((s) => s === 200).length + aborted).toBe(400);
    expect(Math.abs(aborted / 4 - 20)).toBeLessThanOrEqual(5);
    await eventually(() => expect(f.logs.filter((l) => l.msg === 'access' && String(l.path).startsWith('/fault/'))).toHaveLength(400), { timeoutMs: 3000, description: '400 access log lines' });
    const delayed = f.logs.filter((l) => l.msg === 'access' && String(l.path).startsWith('/fault/') && String(l.responseFlags).split(',').includes('DI'));
    expect(Math.abs(delayed.length / 4 - 10)).toBeLessThanOrEqual(5);
    for (const l of delayed) expect(l.durationMs).toBeGreaterThanOrEqual(19);
  });

  it('a client that leaves during a fault delay cancels the request (DI, DC); nothing reaches the backend', async () => {
    const before = f.good.requests;
    const req = http.request({ host: '127.0.0.1', port: f.h1Port, path: '/long-delay', headers: { host: HOST } });
    req.on('error', () => undefined);
    req.end();
    await eventually(() => expect(f.proxy.stats().active).toBeGreaterThan(0), { timeoutMs: 2000, description: 'request in its delay' });
    req.destroy();
    await eventually(() => expect(accessFor(f, '/long-delay')).toEqual([expect.objectContaining({ responseFlags: 'DI,DC' })]), { timeoutMs: 2000, description: 'access log of the cancelled request' });
    expect(accessFor(f, '/long-delay')[0]?.durationMs).toBeLessThan(4000);
    expect(f.good.requests).toBe(before);
  });

  it('answers 503 UO beyond maxConnections 1 + maxPendingRequests 1', async () => {
    const answers = await Promise.all(Array.from({ length: 5 }, () => request(f, agent, '/slow')));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([200, 200, 503, 503, 503]);
    for (const a of answers.filter((x) => x.status === 503)) expect(a).toMatchObject({ headers: { 'x-amesh-response-flags': 'UO' }, body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow' });
  });

  it('retries gRPC trailers-only UNAVAILABLE on HTTP/2, and aborts gRPC calls trailers-only', async () => {
    const socket = net.connect(f.h2Port, '127.0.0.1');
    const session = http2.connect(`http://${GRPC_VIP}:81`, { createConnection: () => socket });
    session.on('error', () => undefined);
    try {
      const ok = await grpcCall(session, '/flaky.Svc/Call');
      expect(ok.headers[':status']).toBe(200);
      expect(ok.trailers).toMatchObject({ 'grpc-status': '0' });
      const aborted = await grpcCall(session, '/abort.Svc/Call');
      expect(aborted.headers).toMatchObject({ ':status': 200, 'grpc-status': '8', 'x-amesh-response-flags': 'FI' });
      await eventually(() => expect(accessFor(f, '/flaky.Svc/Call')).toEqual([expect.objectContaining({ protocol: 'HTTP/2', status: 200, attempts: 2 })]), { timeoutMs: 2000, description: 'access log' });
    } finally {
      session.destroy();
    }
  });

  it('denies with 403 RBAC per AuthorizationPolicy (HTTP/1.1, gRPC, opaque TCP), naming the policy in the log', async () => {
    f.apply({
      ...f.config,
      policies: [
        // Scoped to the HTTP service: on TCP a DENY rule's HTTP-only fields are dropped (Istio), it would deny everything.
        { name: 'demo/deny-admin', action: 'DENY', services: [`demo/${HOST}`], rules: [{ to: [{ paths: ['/admin*'] }] }] },
        { name: 'demo/deny-tcp', action: 'DENY', services: ['demo/tcp.demo.svc.cluster.local', 'demo/grpc.demo.svc.cluster.local'], rules: [{ from: [{ namespaces: ['demo'] }] }] },
      ],
    });
    try {
      const denied = await request(f, agent, '/admin/users');
      expect(denied).toMatchObject({ status: 403, body: 'RBAC: access denied', headers: { 'x-amesh-response-flags': 'RBAC' } });
      const allowed = await request(f, agent, '/public');
      expect(allowed.status).toBe(200);
      await eventually(() => expect(accessFor(f, '/admin/users')).toEqual([expect.objectContaining({ status: 403, responseFlags: 'RBAC', authz: expect.stringMatching(/^demo\/deny-admin/) })]), { timeoutMs: 2000, description: 'access log naming the policy' });

      const socket = net.connect(f.h2Port, '127.0.0.1');
      const session = http2.connect(`http://${GRPC_VIP}:81`, { createConnection: () => socket });
      session.on('error', () => undefined);
      try {
        const call = await grpcCall(session, '/flaky.Svc/Call');
        expect(call.headers).toMatchObject({ ':status': 200, 'grpc-status': '7', 'x-amesh-response-flags': 'RBAC' });
      } finally {
        session.destroy();
      }

      const tcpRequest = { authority: { host: TCP_VIP, port: 9000 }, peerIdentity: CLIENT_URI, peerAddress: '10.244.0.7', peerPort: 40000, localAddress: '127.0.0.1', localPort: 15008, headers: {}, tls: {} } as unknown as HboneConnectRequest;
      const result = await f.inbound.onConnect(tcpRequest);
      expect(result).toMatchObject({ status: 401, reason: 'RBAC: access denied' });
      await eventually(() => expect(f.logs.find((l) => l.msg === 'access' && l.protocol === 'TCP' && l.responseFlags === 'RBAC')).toMatchObject({ authz: expect.stringMatching(/^demo\/deny-tcp/) }), { timeoutMs: 2000, description: 'TCP denial logged' });
    } finally {
      f.apply(f.config);
    }
  });
});
