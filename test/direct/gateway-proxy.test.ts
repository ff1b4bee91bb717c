// The ingress gateway proxy in-process on 127.0.0.1 (every listener on an ephemeral port via
// `listenPort: () => 0`), with a test mesh CA: outside clients → gateway → a plain backend (TCP)
// or a backend behind an in-process HBONE server (standing in for the destination's node agent).
//   - readiness false before the first config, true after;
//   - HTTP routing by Host to a plain and to an HBONE backend (the HBONE peer is the gateway's
//     identity); x-forwarded-for / x-forwarded-proto set at the edge; 404 NR for unmatched
//     hosts; an https redirect route; h2c prior knowledge (gRPC stays HTTP/2 upstream, the rest
//     goes as HTTP/1.1);
//   - Endpoint.waypoint: HBONE to the waypoint with :authority = the service VIP:port;
//   - HTTPS: two certificates chosen by SNI (exact and wildcard), no SNI → the first, TLS ≥ 1.2,
//     ALPN h2 to an HTTP/1.1-only backend;
//     rotation: a new certificate in a new config is served to new handshakes while an
//     established connection keeps working, on the same listening port;
//   - TLS passthrough by SNI to two different TLS backends, unknown SNI closed and logged NR;
//     TCP listener relays to an echo server;
//   - listener ports added and removed by config (existing connections finish), a bind failure
//     visible in the config dump without affecting the other ports;
//   - configs of another kind or another gateway are refused.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayProxy } from '../../src/gateway/app.js';
import { readGatewaySettings } from '../../src/gateway/settings.js';
import { HboneServer, type HboneConnectRequest } from '../../src/hbone/server.js';
import { GATEWAY_LISTENER_ADDRESS, type Cluster, type Endpoint, type GatewayCertificate, type GatewayListener, type HttpRoute, type WaypointConfig } from '../../src/l7/config.js';
import { createServingCertificates, type ServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { connectUpstream, listen } from '../helpers/hbone.js';
import { createTestCa } from '../helpers/pki.js';
import { seededRandom } from '../helpers/seeded-random.js';

const GATEWAY_URI = 'spiffe://cluster.local/ns/istio-ingress/sa/frontend-gateway-istio';
const BACKEND_URI = 'spiffe://cluster.local/ns/demo/sa/backend';
const WAYPOINT_URI = 'spiffe://cluster.local/ns/demo/sa/waypoint';
const SERVICE_VIP = '10.96.0.50';

interface Seen {
  backend: string;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

function backend(name: string): http.Server {
  const server = http.createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      const body = JSON.stringify({ backend: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers } satisfies Seen);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  return server;
}

/** A TLS server (the passthrough destination) that greets with its name once the handshake is done. */
function tlsBackend(name: string, cert: ServingCertificates): tls.Server {
  return tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => {
    s.on('error', () => undefined);
    s.end(`hello from ${name}\n`);
  });
}

async function closeServer(server: net.Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface Fixture {
  gateway: GatewayProxy;
  ports: { readiness: number; admin: number };
  certs: { a: ServingCertificates; b: ServingCertificates; a2: ServingCertificates; one: ServingCertificates; two: ServingCertificates };
  config: (over?: { a?: ServingCertificates; extraListeners?: GatewayListener[] }) => WaypointConfig;
  hboneRequests: HboneConnectRequest[];
  occupied: number;
  logs: Array<Record<string, unknown>>;
  cleanups: Array<() => unknown>;
}

const cert = (name: string, c: ServingCertificates, hostnames: string[]): GatewayCertificate => ({ name, hostnames, certChain: c.certPem, privateKey: c.keyPem });

async function setup(): Promise<Fixture> {
  const cleanups: Array<() => unknown> = [];
  const ca = await createTestCa();
  const [a, b, a2, one, two] = await Promise.all([
    createServingCertificates({ dnsNames: ['a.example.com'], ipAddresses: [] }),
    createServingCertificates({ dnsNames: ['*.b.example.com'], ipAddresses: [] }),
    createServingCertificates({ dnsNames: ['a.example.com'], ipAddresses: [] }),
    createServingCertificates({ dnsNames: ['one.pass.example'], ipAddresses: [] }),
    createServingCertificates({ dnsNames: ['two.pass.example'], ipAddresses: [] }),
  ]);
  const plain = backend('plain');
  const meshApp = backend('mesh');
  const viaWaypoint = backend('via-waypoint');
  const passOne = tlsBackend('one', one);
  const passTwo = tlsBackend('two', two);
  const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  const blocker = net.createServer();
  // An HTTP/2-only (h2c) application, as gRPC servers are.
  const h2app = http2.createServer();
  h2app.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ backend: 'h2app', url: headers[':path'], headers: { 'x-forwarded-proto': headers['x-forwarded-proto'] } }));
  });
  const [pPlain, pMesh, pVia, pOne, pTwo, pEcho, occupied, pH2] = await Promise.all([listen(plain), listen(meshApp), listen(viaWaypoint), listen(passOne), listen(passTwo), listen(echo), listen(blocker), listen(h2app as unknown as net.Server)]);
  cleanups.push(...[plain, meshApp, viaWaypoint, passOne, passTwo, echo, blocker, h2app as unknown as net.Server].map((s) => () => closeServer(s)));

  // The destination's node agent (127.0.0.1) and the destination's waypoint (127.0.0.2, same
  // HBONE port): HBONE in; the node agent connects to the port the CONNECT names, the waypoint
  // sends a CONNECT to the service VIP on to the via-waypoint backend.
  const hboneContext = await ca.context(BACKEND_URI);
  const waypointContext = await ca.context(WAYPOINT_URI);
  const hboneRequests: HboneConnectRequest[] = [];
  const hbone = new HboneServer({
    trustDomains: () => ['cluster.local'],
    secureContextFor: async () => hboneContext,
    onConnect: (req) => {
      hboneRequests.push(req);
      return connectUpstream(req);
    },
    logger: silentLogger,
  });
  const waypointHbone = new HboneServer({
    trustDomains: () => ['cluster.local'],
    secureContextFor: async () => waypointContext,
    onConnect: (req) => {
      hboneRequests.push(req);
      return connectUpstream({ ...req, authority: { host: '127.0.0.1', port: pVia } });
    },
    logger: silentLogger,
  });
  const hboneListener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => hbone.handleConnection(s));
  const hbonePort = await listen(hboneListener);
  const waypointListener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => waypointHbone.handleConnection(s));
  waypointListener.listen(hbonePort, '127.0.0.2');
  await once(waypointListener, 'listening');
  cleanups.push(
    () => hbone.close(),
    () => waypointHbone.close(),
    () => closeServer(hboneListener),
    () => closeServer(waypointListener),
  );

  const ep = (port: number, over: Partial<Endpoint> = {}): Endpoint => ({ address: '127.0.0.1', port, identity: '', hbone: false, ...over });
  const cluster = (name: string, endpoints: Endpoint[]): Cluster => ({ name, service: `demo/${name}`, port: 80, lb: 'ROUND_ROBIN', endpoints });
  const forward = (name: string, host: StringMatchValue, clusterName: string): HttpRoute => ({ name, matches: [{ authority: host }], action: { kind: 'forward', backends: [{ cluster: clusterName, weight: 1 }] } });
  const config = (over: { a?: ServingCertificates; extraListeners?: GatewayListener[] } = {}): WaypointConfig => ({
    namespace: 'istio-ingress',
    name: 'frontend-gateway-istio',
    identity: GATEWAY_URI,
    kind: 'gateway',
    listeners: [
      { name: 'Gateway/istio-ingress/frontend-gateway/http', port: 80, protocol: 'HTTP' },
      { name: 'Gateway/istio-ingress/frontend-gateway/https', port: 443, protocol: 'HTTPS', certificates: [cert('istio-ingress/a-cert', over.a ?? a, ['a.example.com']), cert('istio-ingress/b-cert', b, ['*.b.example.com'])] },
      {
        name: 'Gateway/istio-ingress/frontend-gateway/tls',
        port: 8443,
        protocol: 'TLS',
        l4Routes: [
          { name: 'VirtualService/demo/pass#0', hostnames: ['one.pass.example'], backends: [{ cluster: 'pass-one', weight: 1 }] },
          { name: 'VirtualService/demo/pass#1', hostnames: ['*.pass.example'], backends: [{ cluster: 'pass-two', weight: 1 }] },
        ],
      },
      { name: 'Gateway/istio-ingress/frontend-gateway/tcp', port: 9000, protocol: 'TCP', l4Routes: [{ name: 'VirtualService/demo/tcp#0', backends: [{ cluster: 'echo', weight: 1 }] }] },
      ...(over.extraListeners ?? []),
    ],
    services: [
      {
        key: 'istio-ingress/frontend-gateway',
        namespace: 'istio-ingress',
        hostname: 'frontend-gateway-istio.istio-ingress.svc.cluster.local',
        addresses: [GATEWAY_LISTENER_ADDRESS],
        ports: [
          {
            port: 80,
            protocol: 'HTTP',
            defaultCluster: '',
            routes: [
              { name: 'VirtualService/demo/secure#0', matches: [{ authority: { kind: 'exact', value: 'secure.example.com' } }], action: { kind: 'redirect', redirect: { scheme: 'https', statusCode: 301 } } },
              forward('VirtualService/demo/myapp#0', { kind: 'exact', value: 'myapp.example.com' }, 'plain'),
              forward('VirtualService/demo/mesh#0', { kind: 'exact', value: 'mesh.example.com' }, 'mesh'),
              forward('VirtualService/demo/waypoint#0', { kind: 'exact', value: 'waypoint.example.com' }, 'via-waypoint'),
              forward('VirtualService/demo/h2#0', { kind: 'exact', value: 'h2.example.com' }, 'h2app'),
            ],
          },
          {
            port: 443,
            protocol: 'HTTP',
            defaultCluster: '',
            routes: [forward('HTTPRoute/demo/a#0', { kind: 'exact', value: 'a.example.com' }, 'plain'), forward('HTTPRoute/demo/b#0', { kind: 'regex', value: '.*\\.b\\.example\\.com' }, 'mesh')],
          },
          { port: 8080, protocol: 'HTTP', defaultCluster: '', routes: [forward('HTTPRoute/demo/extra#0', { kind: 'prefix', value: '' }, 'plain')] },
          { port: 7777, protocol: 'HTTP', defaultCluster: '', routes: [forward('HTTPRoute/demo/blocked#0', { kind: 'prefix', value: '' }, 'plain')] },
        ],
      },
    ],
    clusters: [
      cluster('plain', [ep(pPlain)]),
      cluster('mesh', [ep(pMesh, { hbone: true, identity: BACKEND_URI })]),
      cluster('via-waypoint', [ep(80, { address: SERVICE_VIP, hbone: true, identity: WAYPOINT_URI, waypoint: '127.0.0.2' })]),
      cluster('pass-one', [ep(pOne)]),
      cluster('pass-two', [ep(pTwo)]),
      cluster('echo', [ep(pEcho)]),
      cluster('h2app', [ep(pH2)]),
    ],
  });

  const settings = readGatewaySettings(
    {
      AMESH_GATEWAY_NAME: 'frontend-gateway-istio',
      POD_NAMESPACE: 'istio-ingress',
      AMESH_LISTEN_ADDRESS4: '127.0.0.1',
      AMESH_LISTEN_ADDRESS6: 'none',
      AMESH_READINESS_PORT: '0',
      AMESH_ADMIN_PORT: '0',
      AMESH_METRICS_PORT: '0',
      AMESH_UPSTREAM_HBONE_PORT: String(hbonePort),
      AMESH_DRAIN_TIMEOUT_MS: '200',
      AMESH_HANDSHAKE_TIMEOUT_MS: '2000',
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
  const gateway = await GatewayProxy.build({
    settings,
    logger: pino({ level: 'info' }, sink),
    certificateProvider: ca.provider,
    xds: false,
    // Port 7777 is "taken": it maps onto a port another server holds.
    listenPort: (port) => (port === 7777 ? occupied : 0),
    random: seededRandom(3),
  });
  cleanups.push(() => gateway.close());
  const ports = await gateway.run();
  return { gateway, ports, certs: { a, b, a2, one, two }, config, hboneRequests, occupied, logs, cleanups };
}

type StringMatchValue = NonNullable<HttpRoute['matches'][number]['authority']>;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function collect(res: http.IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    res.on('error', reject);
  });
}

function get(port: number, host: string, path = '/', opts: { agent?: http.Agent; headers?: http.OutgoingHttpHeaders } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host, ...opts.headers }, ...(opts.agent ? { agent: opts.agent } : { agent: false }) }, (res) => void collect(res).then(resolve, reject));
    req.on('error', reject);
  });
}

/** An HTTPS request; resolves with the answer and the certificate the gateway presented. */
function getTls(port: number, servername: string | undefined, host: string, agent?: https.Agent): Promise<Answer & { peer: tls.PeerCertificate; socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/tls', headers: { host }, rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}), ...(agent ? { agent } : { agent: false }) }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      const peer = socket.getPeerCertificate();
      void collect(res).then((a) => resolve({ ...a, peer, socket }), reject);
    });
    req.on('error', reject);
  });
}

function fingerprint(c: ServingCertificates): string {
  return new X509Certificate(c.certPem).fingerprint256;
}

/** Connects with TLS through the passthrough listener and reads what the backend says. */
function passthrough(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
}

async function h2Get(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; body: string }> {
  const stream = session.request(headers, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  const [head] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  await once(stream, 'end');
  return { status: Number(head[':status']), body: text };
}

async function readiness(f: Fixture): Promise<number> {
  return (await fetch(`http://127.0.0.1:${f.ports.readiness}/healthz/ready`)).status;
}

describe('gateway proxy', () => {
  let f: Fixture;
  let port: (configPort: number) => number;
  beforeAll(async () => {
    f = await setup();
    port = (p) => {
      const bound = f.gateway.listenerPort(p);
      if (bound === undefined) throw new Error(`config port ${p} is not listening`);
      return bound;
    };
  });
  afterAll(async () => {
    for (const c of (f?.cleanups ?? []).reverse()) await c();
  });

  it('is not ready before the first config; the first config opens its listeners', async () => {
    expect(await readiness(f)).toBe(503);
    expect(f.gateway.listenerPort(80)).toBeUndefined();
    f.gateway.applyConfig(f.config());
    await f.gateway.whenListening();
    expect(await readiness(f)).toBe(200);
    for (const p of [80, 443, 8443, 9000]) expect(f.gateway.listenerPort(p)).toBeGreaterThan(0);
  });

  it('routes HTTP by Host to a plain backend, with edge forwarding headers', async () => {
    const r = await get(port(80), 'myapp.example.com', '/hello?x=1', { headers: { 'x-forwarded-proto': 'https' } });
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body) as Seen;
    expect(seen).toMatchObject({ backend: 'plain', url: '/hello?x=1' });
    // The edge sets the scheme itself (a client cannot claim https) and appends the client.
    expect(seen.headers).toMatchObject({ host: 'myapp.example.com', 'x-forwarded-proto': 'http', 'x-forwarded-for': '127.0.0.1' });
    await eventually(
      () =>
        expect(f.logs.find((l) => l.component === 'access' && l.path === '/hello?x=1')).toMatchObject({ protocol: 'HTTP/1.1', status: 200, route: 'VirtualService/demo/myapp#0', cluster: 'plain', clientAddress: '127.0.0.1', destination: '0.0.0.0:80' }),
      { timeoutMs: 2000, description: 'access log line' },
    );
  });

  it('routes into the mesh over HBONE as the gateway’s identity', async () => {
    const before = f.hboneRequests.length;
    const r = await get(port(80), 'mesh.example.com:80', '/m');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ backend: 'mesh', url: '/m' });
    const req = f.hboneRequests.slice(before).at(-1);
    expect(req).toMatchObject({ peerIdentity: GATEWAY_URI, authority: { host: '127.0.0.1' } });
  });

  it('goes through the destination’s waypoint when the endpoint names one (:authority = the service VIP:port)', async () => {
    const before = f.hboneRequests.length;
    const r = await get(port(80), 'waypoint.example.com', '/w');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ backend: 'via-waypoint', url: '/w' });
    expect(f.hboneRequests.slice(before).at(-1)).toMatchObject({ peerIdentity: GATEWAY_URI, authority: { host: SERVICE_VIP, port: 80 } });
  });

  it('answers 404 NR for a host no route names, and redirects to https', async () => {
    const nr = await get(port(80), 'unknown.example.com', '/x');
    expect(nr.status).toBe(404);
    expect(nr.headers['x-amesh-response-flags']).toBe('NR');
    const redirect = await get(port(80), 'secure.example.com', '/login?next=%2F');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('https://secure.example.com/login?next=%2F');
  });

  it('serves h2c prior knowledge: gRPC stays HTTP/2 upstream, other requests go upstream as HTTP/1.1', async () => {
    const session = http2.connect(`http://127.0.0.1:${port(80)}`);
    try {
      const grpc = await h2Get(session, { ':path': '/echo.Echo/Say', ':authority': 'h2.example.com', 'content-type': 'application/grpc' });
      expect(grpc.status).toBe(200);
      expect(JSON.parse(grpc.body)).toMatchObject({ backend: 'h2app', url: '/echo.Echo/Say', headers: { 'x-forwarded-proto': 'http' } });
      const page = await h2Get(session, { ':path': '/page', ':authority': 'myapp.example.com' });
      expect(page.status).toBe(200);
      expect(JSON.parse(page.body)).toMatchObject({ backend: 'plain', url: '/page', headers: { host: 'myapp.example.com', 'x-forwarded-proto': 'http' } });
    } finally {
      session.close();
    }
  });

  it('terminates TLS with the certificate the SNI selects (exact, wildcard, none → first)', async () => {
    const a = await getTls(port(443), 'a.example.com', 'a.example.com');
    expect(a.status).toBe(200);
    expect(a.peer.subjectaltname).toBe('DNS:a.example.com');
    expect(a.peer.fingerprint256).toBe(fingerprint(f.certs.a));
    const seen = JSON.parse(a.body) as Seen;
    expect(seen).toMatchObject({ backend: 'plain', url: '/tls' });
    expect(seen.headers['x-forwarded-proto']).toBe('https');

    const b = await getTls(port(443), 'x.b.example.com', 'x.b.example.com');
    expect(b.peer.subjectaltname).toBe('DNS:*.b.example.com');
    expect(JSON.parse(b.body)).toMatchObject({ backend: 'mesh' });

    const none = await getTls(port(443), undefined, 'a.example.com');
    expect(none.peer.fingerprint256).toBe(fingerprint(f.certs.a));
    const other = await getTls(port(443), 'c.example.org', 'a.example.com');
    expect(other.peer.fingerprint256).toBe(fingerprint(f.certs.a));
  });

  it('refuses TLS below 1.2; h2 by ALPN reaches an HTTP/1.1-only application', async () => {
    // SECLEVEL=0: OpenSSL 3 (Node 24) will not even offer TLS 1.1 otherwise, and the test would
    // only see the client refuse itself ("no protocols available").
    const old = tls.connect({ host: '127.0.0.1', port: port(443), servername: 'a.example.com', rejectUnauthorized: false, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' });
    const [err] = (await once(old, 'error')) as [Error];
    expect(err.message).toMatch(/protocol version|unsupported protocol/i);
    const session = http2.connect(`https://127.0.0.1:${port(443)}`, { servername: 'x.b.example.com', rejectUnauthorized: false });
    try {
      await once(session, 'connect');
      expect((session.socket as tls.TLSSocket).alpnProtocol).toBe('h2');
      const r = await h2Get(session, { ':path': '/h2?q=1', ':authority': 'x.b.example.com' });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ backend: 'mesh', method: 'GET', url: '/h2?q=1', headers: { host: 'x.b.example.com', 'x-forwarded-proto': 'https' } });
      const post = await h2Get(session, { ':method': 'POST', ':path': '/upload', ':authority': 'a.example.com' }, 'x'.repeat(100_000));
      expect(JSON.parse(post.body)).toMatchObject({ backend: 'plain', method: 'POST', url: '/upload' });
    } finally {
      session.close();
    }
    const http1 = tls.connect({ host: '127.0.0.1', port: port(443), servername: 'a.example.com', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    await once(http1, 'secureConnect');
    expect(http1.alpnProtocol).toBe('http/1.1');
    expect(http1.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    http1.destroy();
  });

  it('rotates a certificate without a restart: new handshakes get it, an established connection keeps working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const listening = port(443);
      const first = await getTls(listening, 'a.example.com', 'a.example.com', agent);
      expect(first.peer.fingerprint256).toBe(fingerprint(f.certs.a));
      f.gateway.applyConfig(f.config({ a: f.certs.a2 }));
      await f.gateway.whenListening();
      expect(f.gateway.listenerPort(443)).toBe(listening);
      const fresh = await getTls(listening, 'a.example.com', 'a.example.com');
      expect(fresh.peer.fingerprint256).toBe(fingerprint(f.certs.a2));
      // The kept-alive connection from before the rotation: same socket, old certificate, still served.
      const again = await getTls(listening, 'a.example.com', 'a.example.com', agent);
      expect(again.socket).toBe(first.socket);
      expect(again.status).toBe(200);
      expect(again.peer.fingerprint256).toBe(fingerprint(f.certs.a));
    } finally {
      agent.destroy();
      f.gateway.applyConfig(f.config());
    }
  });

  it('passes TLS through by SNI to two different backends; an unknown SNI is closed and logged NR', async () => {
    expect(await passthrough(port(8443), 'one.pass.example')).toBe('hello from one\n');
    expect(await passthrough(port(8443), 'two.pass.example')).toBe('hello from two\n');
    // Closed before any byte came back (whether the client reports a reset or an early EOF).
    expect(await passthrough(port(8443), 'nobody.example.org').catch(() => '')).toBe('');
    await eventually(
      () => expect(f.logs.find((l) => l.component === 'access' && l.authority === 'nobody.example.org')).toMatchObject({ protocol: 'TCP', responseFlags: 'NR', destination: '0.0.0.0:8443' }),
      { timeoutMs: 2000, description: 'NR access log line' },
    );
    expect(f.logs.find((l) => l.component === 'access' && l.authority === 'one.pass.example')).toMatchObject({ route: 'VirtualService/demo/pass#0', cluster: 'pass-one', responseFlags: '-' });
  });

  it('closes a passthrough connection that is not TLS at once, and a silent one after the handshake timeout', async () => {
    const garbage = net.connect({ host: '127.0.0.1', port: port(8443) });
    garbage.on('error', () => undefined);
    garbage.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await once(garbage, 'close');
    const silent = net.connect({ host: '127.0.0.1', port: port(8443) });
    silent.on('error', () => undefined);
    const started = Date.now();
    await once(silent, 'close');
    // AMESH_HANDSHAKE_TIMEOUT_MS is 2000 in this fixture.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    await eventually(
      () => {
        const refused = f.logs.filter((l) => l.component === 'access' && l.destination === '0.0.0.0:8443' && l.responseFlags === 'NR' && l.authority === undefined);
        expect(refused.map((l) => String(l.error))).toEqual(expect.arrayContaining([expect.stringMatching(/^not a TLS ClientHello: not a TLS handshake record/), expect.stringMatching(/nothing usable within 2000 ms/)]));
      },
      { timeoutMs: 2000, description: 'NR lines for both' },
    );
  });

  it('relays a TCP listener to its route’s backend', async () => {
    const s = net.connect({ host: '127.0.0.1', port: port(9000), allowHalfOpen: true });
    await once(s, 'connect');
    let echoed = '';
    s.on('data', (c: Buffer) => (echoed += c.toString()));
    s.end('ping over tcp');
    await once(s, 'end');
    expect(echoed).toBe('ping over tcp');
  });

  it('opens and closes listener ports as configs change; established connections finish; a bind failure is reported, not fatal', async () => {
    const extra: GatewayListener = { name: 'Gateway/istio-ingress/frontend-gateway/extra', port: 8080, protocol: 'HTTP' };
    const blocked: GatewayListener = { name: 'Gateway/istio-ingress/frontend-gateway/blocked', port: 7777, protocol: 'HTTP' };
    f.gateway.applyConfig(f.config({ extraListeners: [extra, blocked] }));
    await f.gateway.whenListening();
    const extraPort = port(8080);
    expect(f.gateway.listenerPort(7777)).toBeUndefined();
    const dump = f.gateway.configDump() as { listeners: Array<{ port: number; state: string; error?: string }> };
    expect(dump.listeners.find((l) => l.port === 7777)).toMatchObject({ state: 'failed', error: expect.stringMatching(/cannot listen/) });
    expect(dump.listeners.find((l) => l.port === 8080)).toMatchObject({ state: 'listening' });
    // The others are unaffected.
    expect((await get(port(80), 'myapp.example.com')).status).toBe(200);

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const r1 = await get(extraPort, 'anything', '/extra', { agent });
      expect(JSON.parse(r1.body)).toMatchObject({ backend: 'plain', url: '/extra' });
      f.gateway.applyConfig(f.config());
      await f.gateway.whenListening();
      expect(f.gateway.listenerPort(8080)).toBeUndefined();
      // The port no longer accepts...
      const refused = net.connect({ host: '127.0.0.1', port: extraPort });
      const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
      expect(err.code).toBe('ECONNREFUSED');
      // ...but the connection accepted before still gets its answers.
      const r2 = await get(extraPort, 'anything', '/extra-again', { agent });
      expect(JSON.parse(r2.body)).toMatchObject({ backend: 'plain', url: '/extra-again' });
    } finally {
      agent.destroy();
    }
  });

  it('refuses configs of another kind or for another gateway, keeping the current one', async () => {
    const current = f.config();
    expect(() => f.gateway.applyConfig({ ...current, kind: 'waypoint', listeners: undefined })).toThrow(/kind: the config is a waypoint's/);
    expect(() => f.gateway.applyConfig({ ...current, kind: undefined, listeners: undefined })).toThrow(/kind/);
    expect(() => f.gateway.applyConfig({ ...current, name: 'other-gateway' })).toThrow(/this gateway is istio-ingress\/frontend-gateway-istio/);
    expect((f.gateway.configDump() as { lastConfigError?: string }).lastConfigError).toMatch(/other-gateway/);
    expect((await get(port(80), 'myapp.example.com')).status).toBe(200);
    // The config dump never shows a private key.
    expect(JSON.stringify(f.gateway.configDump())).not.toContain('PRIVATE KEY');
  });

  it('drains: readiness goes off and the listeners stop accepting', async () => {
    const http80 = port(80);
    await f.gateway.drain();
    expect(await readiness(f)).toBe(503);
    expect(f.gateway.listenerPort(80)).toBeUndefined();
    const refused = net.connect({ host: '127.0.0.1', port: http80 });
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
  });
});
