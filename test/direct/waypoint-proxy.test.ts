// The waypoint proxy in-process on 127.0.0.1 (every port 0), with a test CA: HBONE clients (the
// node agent's side of the hand-off) → waypoint → backends behind an in-process HBONE server
// (standing in for the destination's node agent) or reached over plain TCP.
//   - readiness false before the first config, true after;
//   - 90/10 weights over 1 000 requests within ±3 points; header-match routing; rewrite +
//     header set seen by the backend; redirect; direct 404 for an unmatched route;
//   - a 20 MiB upload streamed with back-pressure (a paused backend stalls the client);
//   - upstream keep-alive (few HBONE streams for many requests);
//   - WebSocket upgrade echo; h2c gRPC-style request with trailers; gRPC error trailers-only;
//   - opaque TCP passthrough and a server-first protocol after the sniff timeout; opaque TCP
//     whose upstream is unreachable resets the CONNECT stream (no clean end);
//   - 504 on the route timeout, 503 + UF when the endpoint is down, 503 for an unknown VIP;
//   - 90/10 → 50/50 applied while requests are in flight, none fails;
//   - the same config over the ADS server (explicit-name subscription), an invalid one NACKed.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAdsService, AdsServer, type AdsNack } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { HboneServer, type HboneConnectRequest } from '../../src/hbone/server.js';
import type { Cluster, Endpoint, HttpRoute, WaypointConfig } from '../../src/l7/config.js';
import { WAYPOINT_CONFIG_TYPE_URL } from '../../src/l7/config.js';
import type { HttpProxyStats } from '../../src/l7/http-proxy.js';
import { socketLike } from '../../src/l7/upstream.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { WaypointProxy } from '../../src/waypoint/app.js';
import { readWaypointSettings } from '../../src/waypoint/settings.js';
import { encodeWaypointConfig } from '../../src/xds/waypoint-codec.js';
import { xdsProto } from '../../src/xds/proto.js';
import { eventually } from '../helpers/eventually.js';
import { connectUpstream, listen } from '../helpers/hbone.js';
import { createTestCa, workload, type TestCa } from '../helpers/pki.js';
import { seededRandom as seeded } from '../helpers/seeded-random.js';

const WAYPOINT_URI = 'spiffe://cluster.local/ns/demo/sa/waypoint';
const BACKEND_URI = 'spiffe://cluster.local/ns/demo/sa/backend';
const CLIENT = workload('demo', 'client');
const CLIENT_URI = 'spiffe://cluster.local/ns/demo/sa/client';
const VIP = '10.96.0.10';
const GRPC_VIP = '10.96.0.11';
const TCP_VIP = '10.96.0.12';
const HOST = 'backend.demo.svc.cluster.local';
const MiB = 1024 * 1024;


interface Seen {
  version: string;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** A backend: answers JSON describing the request; special paths for the scenarios. */
function backend(version: string, control: { uploadPaused: boolean; resumeUpload?: () => void; held: http.ServerResponse[]; connections: number }): http.Server {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/upload')) {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        if (control.uploadPaused && bytes >= MiB) {
          req.pause();
          control.resumeUpload = () => req.resume();
        }
      });
      req.on('end', () => res.end(JSON.stringify({ version, bytes, sha256: hash.digest('hex') })));
      return;
    }
    if (req.url?.startsWith('/hold')) {
      setTimeout(() => res.end(JSON.stringify({ version, url: req.url })), 150);
      req.resume();
      return;
    }
    if (req.url?.startsWith('/slow')) {
      control.held.push(res);
      req.resume();
      return;
    }
    // Answer once the request body is in (as most applications do).
    req.resume();
    req.once('end', () => {
      const body = JSON.stringify({ version, method: req.method ?? '', url: req.url ?? '', headers: req.headers } satisfies Seen);
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': version, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => control.connections++);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${String(req.headers.upgrade)}\r\nx-backend: ${version}\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  return server;
}

/** A gRPC-style h2c backend: echoes the request body, then trailers grpc-status 0. */
function grpcBackend(): http2.Http2Server {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-path': String(headers[':path']), 'x-request-header': String(headers['x-added'] ?? '') }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
      stream.end(Buffer.concat(chunks));
    });
  });
  return server;
}

interface Fixture {
  ca: TestCa;
  waypoint: WaypointProxy;
  ports: { hbone: number; readiness: number; admin: number; metrics: number };
  config: (weights: [number, number]) => WaypointConfig;
  v1: ReturnType<typeof control>;
  v2: ReturnType<typeof control>;
  backendHbone: HboneServer;
  backendHboneRequests: HboneConnectRequest[];
  mirrored: Array<{ url: string; host: string; bytes: number }>;
  pool: HbonePool;
  logs: Array<Record<string, unknown>>;
  cleanups: Array<() => unknown>;
}

function control(): { uploadPaused: boolean; resumeUpload?: () => void; held: http.ServerResponse[]; connections: number } {
  return { uploadPaused: false, held: [], connections: 0 };
}

async function closeServer(server: net.Server | http2.Http2Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

const ep = (port: number, over: Partial<Endpoint> = {}): Endpoint => ({ address: '127.0.0.1', port, identity: BACKEND_URI, hbone: true, ...over });

async function setup(): Promise<Fixture> {
  const cleanups: Array<() => unknown> = [];
  const ca = await createTestCa();
  const v1 = control();
  const v2 = control();
  const s1 = backend('v1', v1);
  const s2 = backend('v2', v2);
  const g = grpcBackend();
  const tcpEcho = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  // The test never ends its side of the greeter tunnel: the client pool's close() at teardown
  // cuts it, and the agent rightly resets the greeter's connection (issue #12).
  const greeter = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end('hello from a server-first protocol\n');
  });
  const mirrored: Array<{ url: string; host: string; bytes: number }> = [];
  const shadow = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      mirrored.push({ url: req.url ?? '', host: req.headers.host ?? '', bytes });
      res.end('shadow answer, dropped');
    });
  });
  const dead = net.createServer();
  const [p1, p2, pg, pEcho, pGreet, pDead, pShadow] = await Promise.all([listen(s1), listen(s2), listen(g as unknown as net.Server), listen(tcpEcho), listen(greeter), listen(dead), listen(shadow)]);
  await closeServer(dead); // nothing listens on pDead any more
  cleanups.push(() => closeServer(s1), () => closeServer(s2), () => closeServer(g), () => closeServer(tcpEcho), () => closeServer(greeter), () => closeServer(shadow));

  // The destination node agent: HBONE in, TCP to the pod port named by :authority.
  const backendContext = await ca.context(BACKEND_URI);
  const backendHboneRequests: HboneConnectRequest[] = [];
  const backendHbone = new HboneServer({
    trustDomains: () => ['cluster.local'],
    secureContextFor: async () => backendContext,
    onConnect: (req) => {
      backendHboneRequests.push(req);
      return connectUpstream(req);
    },
    logger: silentLogger,
  });
  const backendListener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => backendHbone.handleConnection(s));
  const backendHbonePort = await listen(backendListener);
  cleanups.push(() => backendHbone.close(), () => closeServer(backendListener));

  const cluster = (name: string, endpoints: Endpoint[], lb: Cluster['lb'] = 'ROUND_ROBIN'): Cluster => ({ name, service: `demo/${HOST}`, port: 80, lb, endpoints });
  const C_ALL = `outbound|80||${HOST}`;
  const C_V1 = `outbound|80|v1|${HOST}`;
  const C_V2 = `outbound|80|v2|${HOST}`;
  const C_DOWN = 'outbound|80||down.demo.svc.cluster.local';
  const C_GRPC = 'outbound|81||grpc.demo.svc.cluster.local';
  const C_TCP = 'outbound|9000||tcp.demo.svc.cluster.local';
  const C_GREET = 'outbound|9001||tcp.demo.svc.cluster.local';
  const C_SHADOW = 'outbound|80||shadow.demo.svc.cluster.local';
  const config = ([w1, w2]: [number, number]): WaypointConfig => {
    const routes: HttpRoute[] = [
      { name: 'VirtualService/demo/backend#0', matches: [{ headers: [{ name: 'user-group', match: { kind: 'exact', value: 'beta-tester' } }] }], action: { kind: 'forward', backends: [{ cluster: C_V2, weight: 100 }] } },
      {
        name: 'HTTPRoute/demo/backend#1',
        matches: [{ path: { kind: 'prefix', value: '/rewrite/' } }],
        rewrite: { hostname: 'rewritten.example', path: { kind: 'prefix', value: '/v1/' } },
        requestHeaders: { set: { 'x-added': 'yes' }, remove: ['x-secret'] },
        responseHeaders: { add: { 'x-route': 'rewrite' } },
        action: { kind: 'forward', backends: [{ cluster: C_V1, weight: 1 }] },
      },
      { name: 'VirtualService/demo/backend#2', matches: [{ path: { kind: 'prefix', value: '/slow' } }], timeoutMs: 200, action: { kind: 'forward', backends: [{ cluster: C_V1, weight: 1 }] } },
      { name: 'VirtualService/demo/backend#3', matches: [{ path: { kind: 'prefix', value: '/down' } }], action: { kind: 'forward', backends: [{ cluster: C_DOWN, weight: 1 }] } },
      { name: 'HTTPRoute/demo/backend#4', matches: [{ path: { kind: 'exact', value: '/old' } }], action: { kind: 'redirect', redirect: { path: { kind: 'full', value: '/new' }, statusCode: 302 } } },
      { name: 'HTTPRoute/demo/backend#5', matches: [{ path: { kind: 'prefix', value: '/private' } }, { method: 'DELETE' }], action: { kind: 'direct-response', status: 403, body: 'nope' } },
      { name: 'VirtualService/demo/backend#7', matches: [{ path: { kind: 'prefix', value: '/mirror' } }], mirrors: [{ cluster: C_SHADOW }, { cluster: C_DOWN }], action: { kind: 'forward', backends: [{ cluster: C_V1, weight: 1 }] } },
      { name: 'VirtualService/demo/backend#6', matches: [{ path: { kind: 'regex', value: '/(hold|upload|ws|keepalive|split)(/.*)?' } }], action: { kind: 'forward', backends: [{ cluster: C_V1, weight: w1 }, { cluster: C_V2, weight: w2 }] } },
    ];
    return {
      namespace: 'demo',
      name: 'waypoint',
      identity: WAYPOINT_URI,
      services: [
        { key: `demo/${HOST}`, namespace: 'demo', hostname: HOST, addresses: [VIP], ports: [{ port: 80, protocol: 'AUTO', routes, defaultCluster: C_ALL }] },
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
                { name: 'GRPCRoute/demo/echo#0', matches: [{ path: { kind: 'prefix', value: '/echo.Echo/' } }], requestHeaders: { set: { 'x-added': 'grpc' } }, action: { kind: 'forward', backends: [{ cluster: C_GRPC, weight: 1 }] } },
                { name: 'GRPCRoute/demo/echo#1', matches: [{ path: { kind: 'prefix', value: '/down.Down/' } }], action: { kind: 'forward', backends: [{ cluster: C_DOWN, weight: 1 }] } },
              ],
            },
          ],
        },
        {
          key: 'demo/tcp.demo.svc.cluster.local',
          namespace: 'demo',
          hostname: 'tcp.demo.svc.cluster.local',
          addresses: [TCP_VIP],
          ports: [
            { port: 9000, protocol: 'AUTO', routes: [], defaultCluster: C_TCP },
            { port: 9001, protocol: 'AUTO', routes: [], defaultCluster: C_GREET },
          ],
        },
      ],
      clusters: [
        cluster(C_ALL, [ep(p1), ep(p2)]),
        cluster(C_V1, [ep(p1)]),
        cluster(C_V2, [ep(p2)]),
        cluster(C_DOWN, [ep(pDead, { hbone: false })]),
        cluster(C_GRPC, [ep(pg)]),
        cluster(C_TCP, [ep(pEcho, { hbone: false })]),
        cluster(C_GREET, [ep(pGreet)]),
        cluster(C_SHADOW, [ep(pShadow)]),
      ],
    };
  };

  const settings = readWaypointSettings(
    {
      AMESH_WAYPOINT_NAME: 'waypoint',
      POD_NAMESPACE: 'demo',
      AMESH_LISTEN_ADDRESS4: '127.0.0.1',
      AMESH_LISTEN_ADDRESS6: 'none',
      AMESH_HBONE_PORT: '0',
      AMESH_READINESS_PORT: '0',
      AMESH_ADMIN_PORT: '0',
      AMESH_METRICS_PORT: '0',
      AMESH_UPSTREAM_HBONE_PORT: String(backendHbonePort),
      AMESH_DRAIN_TIMEOUT_MS: '200',
    },
    { requireControlPlane: false },
  );
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const waypoint = await WaypointProxy.build({ settings, logger: pino({ level: 'info' }, sink), certificateProvider: ca.provider, xds: false, random: seeded(7) });
  cleanups.push(() => waypoint.close());
  const ports = await waypoint.run();
  const clientContext = await ca.context(CLIENT);
  const pool = new HbonePool({ certificates: { secureContext: async () => clientContext }, logger: silentLogger });
  cleanups.push(() => pool.close());
  return { ca, waypoint, ports, config, v1, v2, backendHbone, backendHboneRequests, mirrored, pool, logs, cleanups };
}

/** What the client's node agent does: a CONNECT to the waypoint with the original VIP:port. */
function tunnel(f: Fixture, authority: string): Promise<Duplex> {
  return f.pool.connect({ sourceIdentity: CLIENT, expectedIdentities: [WAYPOINT_URI], nextHop: { host: '127.0.0.1', port: f.ports.hbone }, authority, headers: { forwarded: 'for="10.244.0.7:43210"' } });
}

/** A keep-alive HTTP/1.1 client whose connections are HBONE tunnels to `authority` via the waypoint. */
class TunnelAgent extends http.Agent {
  constructor(
    private readonly f: Fixture,
    private readonly authority: string,
  ) {
    super({ keepAlive: true, maxSockets: 16 });
  }
  override createConnection(_o: http.ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): Duplex | undefined {
    tunnel(this.f, this.authority).then(
      (s) => cb?.(null, socketLike(s)),
      (err: Error) => cb?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(agent: http.Agent, path: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Readable } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: VIP, port: 80, path, method: opts.method ?? 'GET', headers: { host: `${HOST}:80`, ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body) opts.body.pipe(req);
    else req.end();
  });
}

async function readiness(f: Fixture): Promise<number> {
  return (await fetch(`http://127.0.0.1:${f.ports.readiness}/healthz/ready`)).status;
}

describe('waypoint proxy', () => {
  let f: Fixture;
  const http1Lean = (fx: Fixture): HttpProxyStats['http1Lean'] => (fx.waypoint.configDump() as { listeners: { http: HttpProxyStats } }).listeners.http.http1Lean;
  let agent: TunnelAgent;
  beforeAll(async () => {
    f = await setup();
    agent = new TunnelAgent(f, `${VIP}:80`);
  });
  afterAll(async () => {
    agent?.destroy();
    for (const c of (f?.cleanups ?? []).reverse()) await c();
  });

  it('is not ready before the first config, and refuses CONNECTs meanwhile', async () => {
    expect(await readiness(f)).toBe(503);
    await expect(tunnel(f, `${VIP}:80`)).rejects.toMatchObject({ code: 'AMESH_HBONE_REFUSED', status: 503 });
    f.waypoint.applyConfig(f.config([90, 10]));
    expect(await readiness(f)).toBe(200);
  });

  it('splits 90/10 over 1 000 requests within ±3 points', async () => {
    const before = http1Lean(f);
    const counts = { v1: 0, v2: 0 };
    for (let batch = 0; batch < 50; batch++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => request(agent, '/split')));
      for (const a of answers) {
        expect(a.status).toBe(200);
        counts[(JSON.parse(a.body) as Seen).version as 'v1' | 'v2']++;
      }
    }
    expect(counts.v1 + counts.v2).toBe(1000);
    expect(Math.abs(counts.v1 / 10 - 90)).toBeLessThanOrEqual(3);
    // Bodiless keep-alive requests are the lean HTTP/1.1 server's (src/l7/http1-server/).
    expect(http1Lean(f).requests - before.requests).toBe(1000);
    expect(http1Lean(f).handedOver).toBe(before.handedOver);
  });

  it('routes by header, rewrites path and host, sets headers the backend sees, adds forwarding headers', async () => {
    for (let i = 0; i < 10; i++) {
      const beta = await request(agent, '/split', { headers: { 'user-group': 'beta-tester' } });
      expect((JSON.parse(beta.body) as Seen).version).toBe('v2');
    }
    const r = await request(agent, '/rewrite/items?id=7', { headers: { 'x-secret': 's3cr3t', connection: 'keep-alive, x-hop', 'x-hop': 'drop me' } });
    expect(r.status).toBe(200);
    expect(r.headers['x-route']).toBe('rewrite');
    const seen = JSON.parse(r.body) as Seen;
    expect(seen).toMatchObject({ version: 'v1', url: '/v1/items?id=7' });
    expect(seen.headers).toMatchObject({ host: 'rewritten.example', 'x-added': 'yes', 'x-forwarded-for': '10.244.0.7', 'x-forwarded-proto': 'http' });
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.headers.forwarded).toBe('for=10.244.0.7;proto=http');
    expect(seen.headers['x-secret']).toBeUndefined();
    expect(seen.headers['x-hop']).toBeUndefined();
    // The backend's node agent sees the waypoint's identity, and :authority = the endpoint.
    expect(f.backendHboneRequests.at(-1)).toMatchObject({ peerIdentity: WAYPOINT_URI, authority: { host: '127.0.0.1' } });
    // One access-log line per request, naming the client's identity.
    await eventually(
      () =>
        expect(f.logs.filter((l) => l.component === 'access' && l.path === '/rewrite/items?id=7')).toEqual([
          expect.objectContaining({ protocol: 'HTTP/1.1', method: 'GET', status: 200, route: 'HTTPRoute/demo/backend#1', cluster: `outbound|80|v1|${HOST}`, upstreamHost: expect.stringMatching(/^127\.0\.0\.1:\d+$/), responseFlags: '-', sourceIdentity: CLIENT_URI, clientAddress: '10.244.0.7', destination: `${VIP}:80`, requestId: seen.headers['x-request-id'] }),
        ]),
      { timeoutMs: 2000, description: 'access log line' },
    );
  });

  it('answers redirects and direct responses locally; unmatched requests go to the default cluster', async () => {
    const redirect = await request(agent, '/old?q=1');
    expect(redirect).toMatchObject({ status: 302, headers: { location: `http://${HOST}/new?q=1` } });
    const denied = await request(agent, '/split', { method: 'DELETE' });
    expect(denied).toMatchObject({ status: 403, body: 'nope' });
    const unmatched = await request(agent, '/nothing-here');
    expect(unmatched.status).toBe(200);
    expect(JSON.parse(unmatched.body)).toMatchObject({ url: '/nothing-here' });
    await eventually(() => expect(f.logs.find((l) => l.component === 'access' && l.path === '/nothing-here')).toMatchObject({ route: 'default', cluster: `outbound|80||${HOST}` }), { timeoutMs: 2000, description: 'access log of the unmatched request' });
  });

  it('mirrors requests fire-and-forget: the copy (with its body) reaches the shadow, a dead mirror changes nothing', async () => {
    const body = Readable.from([Buffer.alloc(100_000, 1)]);
    const r = await request(agent, '/mirror/x?y=1', { method: 'PUT', headers: { 'content-length': 100_000 }, body });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ version: 'v1', method: 'PUT', url: '/mirror/x?y=1' });
    await eventually(() => expect(f.mirrored).toEqual([{ url: '/mirror/x?y=1', host: `${HOST}-shadow:80`, bytes: 100_000 }]), { timeoutMs: 5000, description: 'the mirrored copy' });
  });

  it('streams a 20 MiB upload with back-pressure: a paused backend stalls the client', async () => {
    f.v1.uploadPaused = true;
    f.v2.uploadPaused = true;
    const total = 20 * MiB;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let produced = 0;
    const hash = createHash('sha256');
    const body = new Readable({
      read() {
        if (produced >= total) return void this.push(null);
        produced += chunk.length;
        hash.update(chunk);
        this.push(chunk);
      },
    });
    const leanRequests = http1Lean(f).requests;
    const answer = request(agent, '/upload', { method: 'POST', headers: { 'content-length': total }, body });
    // The client stops producing while the backend does not read: nothing buffers the whole body.
    let last = -1;
    await eventually(
      () => {
        const now = produced;
        const stalled = (f.v1.resumeUpload ?? f.v2.resumeUpload) !== undefined && now === last;
        last = now;
        expect(stalled).toBe(true);
      },
      { timeoutMs: 15_000, intervalMs: 300, description: 'upload stalled behind the paused backend' },
    );
    // If the waypoint buffered bodies the client would have produced all 20 MiB. What is in
    // flight is bounded by the flow-control windows on the way instead (HBONE 4 MiB per stream on
    // both hops, loopback socket buffers): ~12 MiB measured.
    expect(produced).toBeLessThan(total);
    f.v1.uploadPaused = false;
    f.v2.uploadPaused = false;
    f.v1.resumeUpload?.();
    f.v2.resumeUpload?.();
    const r = await answer;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ bytes: total, sha256: hash.digest('hex') });
    // A request with a body goes to Node's HTTP server (on a connection handed over for it now or before).
    expect(http1Lean(f).requests).toBe(leanRequests);
    expect(http1Lean(f).handedOver).toBeGreaterThanOrEqual(1);
  });

  it('keeps upstream connections alive: many requests, few tunnels', async () => {
    const before = f.backendHboneRequests.length;
    for (let i = 0; i < 50; i++) expect((await request(agent, '/keepalive')).status).toBe(200);
    // Sequential requests reuse one idle connection per endpoint.
    expect(f.backendHboneRequests.length - before).toBeLessThanOrEqual(2);
    const dump = (await (await fetch(`http://127.0.0.1:${f.ports.admin}/config_dump`)).json()) as { pools: { upstream: Array<{ endpoint: string; http1Connects: number; http1Idle: number }> }; clusters: Array<{ name: string }> };
    expect(dump.pools.upstream.length).toBeGreaterThan(0);
    expect(dump.clusters.map((c) => c.name)).toContain(`outbound|80|v1|${HOST}`);
  });

  it('passes a WebSocket upgrade through and relays bytes both ways', async () => {
    const socket = await new Promise<Duplex>((resolve, reject) => {
      const req = http.request({ agent: new TunnelAgent(f, `${VIP}:80`), host: VIP, port: 80, path: '/ws', headers: { host: HOST, connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('upgrade', (res: http.IncomingMessage, s: Duplex) => {
        expect(res.statusCode).toBe(101);
        expect(res.headers.upgrade).toBe('websocket');
        resolve(s);
      });
      req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.on('error', reject);
      req.end();
    });
    const echoed = once(socket, 'data');
    socket.write('ping over the upgraded connection');
    expect(String((await echoed)[0])).toBe('ping over the upgraded connection');
    socket.destroy();
  });

  it('routes h2c / gRPC-style requests, with trailers, and answers gRPC errors trailers-only', async () => {
    const stream = await tunnel(f, `${GRPC_VIP}:81`);
    const session = http2.connect(`http://${GRPC_VIP}:81`, { createConnection: () => stream as net.Socket });
    session.on('error', () => undefined);
    try {
      const call = (path: string): Promise<{ headers: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders; body: Buffer }> =>
        new Promise((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
          const chunks: Buffer[] = [];
          let headers: http2.IncomingHttpHeaders = {};
          let trailers: http2.IncomingHttpHeaders | undefined;
          req.on('response', (h) => (headers = h));
          req.on('trailers', (t) => (trailers = t));
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => resolve({ headers, ...(trailers ? { trailers } : {}), body: Buffer.concat(chunks) }));
          req.on('error', reject);
          req.end(Buffer.from([0, 0, 0, 0, 5, 104, 101, 108, 108, 111]));
        });
      const ok = await call('/echo.Echo/Say');
      expect(ok.headers).toMatchObject({ ':status': 200, 'x-path': '/echo.Echo/Say', 'x-request-header': 'grpc' });
      expect(ok.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'ok' });
      expect(ok.body.subarray(5).toString()).toBe('hello');
      const down = await call('/down.Down/Call');
      expect(down.headers).toMatchObject({ ':status': 200, 'grpc-status': '14', 'x-amesh-response-flags': 'UF' });
    } finally {
      session.destroy();
    }
  });

  it('passes opaque TCP through, and a server-first protocol after the sniff timeout', async () => {
    const echo = await tunnel(f, `${TCP_VIP}:9000`);
    const got = once(echo, 'data');
    echo.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0xff]));
    expect([...((await got)[0] as Buffer)]).toEqual([0x16, 0x03, 0x01, 0x00, 0x10, 0xff]);
    echo.end();

    const greeter = await tunnel(f, `${TCP_VIP}:9001`);
    const chunks: Buffer[] = [];
    greeter.on('data', (c: Buffer) => chunks.push(c));
    await once(greeter, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('hello from a server-first protocol\n');
  });

  it('resets the CONNECT stream (RST_STREAM CONNECT_ERROR, never a clean end) when sniffed opaque TCP cannot reach its upstream', async () => {
    const broken = f.config([90, 10]);
    const down = broken.clusters.find((c) => c.name.includes('down.demo'))!.name;
    const tcpService = broken.services.find((svc) => svc.addresses.includes(TCP_VIP))!;
    tcpService.ports[0]!.defaultCluster = down;
    f.waypoint.applyConfig(broken);
    try {
      const stream = (await tunnel(f, `${TCP_VIP}:9000`)) as http2.ClientHttp2Stream;
      let ended = false;
      stream.on('end', () => (ended = !stream.closed));
      const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
      stream.on('error', () => undefined); // the reset's ERR_HTTP2_STREAM_ERROR
      stream.resume();
      stream.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0xff]));
      await closed;
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_CONNECT_ERROR);
      expect(ended, 'END_STREAM before the reset').toBe(false);
    } finally {
      f.waypoint.applyConfig(f.config([90, 10]));
    }
  });

  it('answers 504 on the route timeout and 503 UF when the endpoint is down; refuses unknown VIPs', async () => {
    const slow = await request(agent, '/slow');
    expect(slow).toMatchObject({ status: 504, headers: { 'x-amesh-response-flags': 'UT' } });
    for (const res of f.v1.held.splice(0)) res.destroy();
    const down = await request(agent, '/down');
    expect(down).toMatchObject({ status: 503, headers: { 'x-amesh-response-flags': 'UF' } });
    await expect(tunnel(f, '10.96.0.99:80')).rejects.toMatchObject({ status: 503 });
  });

  it('applies 90/10 → 50/50 while requests are in flight without failing any', async () => {
    const inFlight = Array.from({ length: 20 }, (_, i) => request(agent, `/hold/${i}`));
    f.waypoint.applyConfig(f.config([50, 50]));
    const held = await Promise.all(inFlight);
    expect(held.map((a) => a.status)).toEqual(Array(20).fill(200));
    const counts = { v1: 0, v2: 0 };
    for (let batch = 0; batch < 50; batch++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => request(agent, '/split')));
      for (const a of answers) counts[(JSON.parse(a.body) as Seen).version as 'v1' | 'v2']++;
    }
    // 1 000 draws at p = 0.5: σ ≈ 1.6 points, so ±5 is the same ~3.2σ bound as ±3 is for 90/10
    // (σ ≈ 0.95). The draws are seeded, but how many the balancer's least-request choices consume
    // depends on timing, so the sequence is effectively random: ±3 (1.9σ) failed ~6 % of runs.
    expect(Math.abs(counts.v1 / 10 - 50)).toBeLessThanOrEqual(5);
  });

  it('keeps the last good config when given one it cannot execute', () => {
    const bad = f.config([50, 50]);
    (bad.services[0]!.ports[0]!.routes[0]!.matches[0]!.headers![0]!.match as { kind: string; value: string }) = { kind: 'regex', value: '(' };
    expect(() => f.waypoint.applyConfig(bad)).toThrow(/routes\[0\]\.matches\[0\]\.headers\[0\]: invalid regex/);
    expect(f.waypoint.isReady()).toBe(true);
  });
});

describe('waypoint proxy over xDS', () => {
  it('subscribes to its own config by name, applies it, and NACKs an invalid one keeping the last good', async () => {
    const cleanups: Array<() => unknown> = [];
    try {
      const ca = await createTestCa();
      const store = new ResourceStore();
      const ads = new AdsServer({ store, log: silentLogger, debounceMs: 5, maxDelayMs: 20, typeUrls: [WAYPOINT_CONFIG_TYPE_URL], authenticate: async () => ({ ok: true, caller: 'demo/waypoint' }) });
      const nacks: AdsNack[] = [];
      ads.on('nack', (_node: string, _type: string, nack: AdsNack) => nacks.push(nack));
      const grpcServer = new grpc.Server();
      addAdsService(grpcServer, ads);
      const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
      cleanups.push(() => {
        ads.close();
        grpcServer.forceShutdown();
      });
      const upstream = http.createServer((_req, res) => res.end('from the backend'));
      const upstreamPort = await listen(upstream);
      cleanups.push(() => closeServer(upstream));
      const good: WaypointConfig = {
        namespace: 'demo',
        name: 'waypoint',
        identity: WAYPOINT_URI,
        services: [{ key: `demo/${HOST}`, namespace: 'demo', hostname: HOST, addresses: [VIP], ports: [{ port: 80, protocol: 'HTTP', routes: [], defaultCluster: 'c' }] }],
        clusters: [{ name: 'c', service: `demo/${HOST}`, port: 80, lb: 'ROUND_ROBIN', endpoints: [ep(upstreamPort, { hbone: false })] }],
      };
      // Another waypoint's config is in the store too: it must not be sent to this one.
      store.replaceAll(WAYPOINT_CONFIG_TYPE_URL, new Map([['demo/waypoint', encodeWaypointConfig(good)], ['other/waypoint', encodeWaypointConfig({ ...good, namespace: 'other' })]]));
      const settings = readWaypointSettings(
        {
          AMESH_WAYPOINT_NAME: 'waypoint',
          POD_NAMESPACE: 'demo',
          POD_NAME: 'waypoint-abc',
          INSTANCE_IP: '10.244.0.50',
          AMESH_XDS_ADDRESS: `127.0.0.1:${grpcPort}`,
          AMESH_LISTEN_ADDRESS4: '127.0.0.1',
          AMESH_LISTEN_ADDRESS6: 'none',
          AMESH_HBONE_PORT: '0',
          AMESH_READINESS_PORT: '0',
          AMESH_ADMIN_PORT: '0',
          AMESH_METRICS_PORT: '0',
          AMESH_DRAIN_TIMEOUT_MS: '200',
        },
        { requireControlPlane: false },
      );
      const waypoint = await WaypointProxy.build({ settings, logger: silentLogger, certificateProvider: ca.provider, xdsCredentials: { kind: 'insecure' } });
      cleanups.push(() => waypoint.close());
      const ports = await waypoint.run();
      await eventually(async () => expect((await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`)).status).toBe(200), { timeoutMs: 10_000, description: 'waypoint ready after its config arrived' });
      const conn = ads.connections()[0];
      expect(conn?.node).toBe('router~10.244.0.50~waypoint-abc.demo~demo.svc.cluster.local');
      expect(conn?.typeUrls[WAYPOINT_CONFIG_TYPE_URL]?.resources).toBe(1);

      // A request through it.
      const clientContext = await ca.context(CLIENT);
      const pool = new HbonePool({ certificates: { secureContext: async () => clientContext }, logger: silentLogger });
      cleanups.push(() => pool.close());
      const stream = await pool.connect({ sourceIdentity: CLIENT, expectedIdentities: [WAYPOINT_URI], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority: `${VIP}:80`, headers: {} });
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.end(`GET / HTTP/1.1\r\nhost: ${HOST}\r\nconnection: close\r\n\r\n`);
      await once(stream, 'end');
      expect(Buffer.concat(chunks).toString()).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*from the backend$/);

      // An invalid config (the codec refuses it) is NACKed with the reason; the old one stays.
      const type = xdsProto().waypointConfig;
      const invalid = type.encode(type.create({ json: JSON.stringify({ ...good, clusters: 'nope' }) })).finish();
      store.replaceAll(WAYPOINT_CONFIG_TYPE_URL, new Map([['demo/waypoint', invalid]]));
      await eventually(() => expect(nacks.length).toBeGreaterThan(0), { timeoutMs: 10_000, description: 'NACK of the invalid config' });
      expect(nacks[0]?.message).toMatch(/^demo\/waypoint: .*clusters/);
      expect(waypoint.isReady()).toBe(true);
      const dump = waypoint.configDump() as { config: WaypointConfig; xds: { lastNack?: { reason: string } } };
      expect(dump.config.clusters[0]?.name).toBe('c');
      expect(dump.xds.lastNack?.reason).toMatch(/clusters/);
    } finally {
      for (const c of cleanups.reverse()) await c();
    }
  });
});
