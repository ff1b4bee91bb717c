// The waypoint's telemetry, in-process on 127.0.0.1 (every port 0, a test CA): HBONE clients that
// send the node agent's CONNECT `baggage` → waypoint → plain backends whose endpoints carry
// Endpoint.meta. Checked over the metrics port (/metrics scraped on loopback) and the access log:
//   - istio_requests_total per endpoint meta (destination_version v1 / v2), source labels from the
//     baggage and the peer certificate, request / response bytes and durations;
//   - a request an AuthorizationPolicy denies: response_code 403, response_flags RBAC, and the
//     access-log line names the policy (authz_policy) with Istio's field names;
//   - gRPC: request_protocol grpc, grpc_response_status; opaque TCP: istio_tcp_* with byte counts;
//   - a Telemetry filter `response.code >= 400` logs only the errors; a new config without it
//     logs everything again;
//   - tracing hook points: a configured tracer gets a span per request and try, its headers replace
//     the caller's traceparent upstream, and the access log has the trace id.
// And the ingress gateway's side: reporter="source" with the gateway as the source, a plain
// upstream is connection_security_policy "none", 404 NR counted, a TCP route's istio_tcp_*.
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { pino } from 'pino';
import { GatewayProxy } from '../../src/gateway/app.js';
import { readGatewaySettings } from '../../src/gateway/settings.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBaggage } from '../../src/hbone/headers.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { GATEWAY_LISTENER_ADDRESS, type Cluster, type Endpoint, type EndpointMeta, type WaypointConfig } from '../../src/l7/config.js';
import type { ProxyTracer } from '../../src/l7/proxy-process.js';
import { countStreamBytes } from '../../src/l7/pipeline/stream-bytes.js';
import { TRACE_HEADERS, type TraceRequestInfo } from '../../src/l7/pipeline/trace-hook.js';
import { socketLike } from '../../src/l7/upstream.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import type { TelemetrySettings, TracingSettings } from '../../src/telemetry/telemetry-config.js';
import { TRACE_HEADER_NAMES } from '../../src/telemetry/tracing.js';
import { WaypointProxy } from '../../src/waypoint/app.js';
import { readWaypointSettings } from '../../src/waypoint/settings.js';
import { eventually } from '../helpers/eventually.js';
import { listen } from '../helpers/hbone.js';
import { createTestCa, workload, type TestCa } from '../helpers/pki.js';
import { seededRandom } from '../helpers/seeded-random.js';

const WAYPOINT_URI = 'spiffe://cluster.local/ns/shop/sa/waypoint';
const CLIENT = workload('shop', 'productpage');
const CLIENT_URI = 'spiffe://cluster.local/ns/shop/sa/productpage';
const VIP = '10.96.0.20';
const GRPC_VIP = '10.96.0.21';
const TCP_VIP = '10.96.0.22';
const HOST = 'reviews.shop.svc.cluster.local';
const GRPC_HOST = 'ratings.shop.svc.cluster.local';
const TCP_HOST = 'db.shop.svc.cluster.local';
const BAGGAGE = buildBaggage({ cluster: 'Kubernetes', namespace: 'shop', workloadType: 'deployment', workloadName: 'productpage-v1', service: 'productpage', version: 'v1' });

type Line = Record<string, unknown>;

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The `name{…} value` samples of a Prometheus text scrape. */
function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of m[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string>): number {
  return samples(text, name)
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

interface FakeTracer extends ProxyTracer {
  configured: Array<TracingSettings | undefined>;
  requests: Array<{ info: TraceRequestInfo; incoming: string | undefined; tries: Array<{ cluster: string; endpoint: string; ended?: { status?: number | undefined; error?: string | undefined } }>; ended?: { status?: number; responseFlags: string; route?: string } }>;
  closed: boolean;
}

/** A tracer standing in for ProxyTracing: records what the proxy asks of it, one trace id per request. */
function fakeTracer(): FakeTracer {
  const t: FakeTracer = {
    configured: [],
    requests: [],
    closed: false,
    configure(settings) {
      t.configured.push(settings);
    },
    startRequest(headers, info) {
      if (!t.configured.at(-1)) return undefined;
      const n = t.requests.length;
      const traceId = (n + 1).toString(16).padStart(32, 'a');
      const request: FakeTracer['requests'][number] = { info, incoming: headers.traceparent as string | undefined, tries: [] };
      t.requests.push(request);
      return {
        startTry(a) {
          const entry: (typeof request.tries)[number] = { ...a };
          request.tries.push(entry);
          const spanId = (request.tries.length).toString(16).padStart(16, 'b');
          return {
            headers: { traceparent: `00-${traceId}-${spanId}-01`, 'x-b3-traceid': traceId, 'x-b3-spanid': spanId, 'x-b3-sampled': '1' },
            end(status, error) {
              entry.ended ??= { status, error };
            },
          };
        },
        end(a) {
          request.ended ??= a;
        },
      };
    },
    close() {
      t.closed = true;
      return Promise.resolve();
    },
  };
  return t;
}

interface Seen {
  version: string;
  headers: http.IncomingHttpHeaders;
}

function backend(version: string, seen: Seen[]): http.Server {
  return http.createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      seen.push({ version, headers: req.headers });
      const body = `hello from ${version}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}

interface Fixture {
  ca: TestCa;
  waypoint: WaypointProxy;
  ports: { hbone: number; metrics: number };
  config: (telemetry?: TelemetrySettings) => WaypointConfig;
  pool: HbonePool;
  logs: Line[];
  seen: Seen[];
  tracer: FakeTracer;
  cleanups: Array<() => unknown>;
}

const meta = (workloadName: string, canonicalRevision: string): EndpointMeta => ({ workloadName, namespace: 'shop', canonicalName: 'reviews', canonicalRevision });

async function setup(): Promise<Fixture> {
  const cleanups: Array<() => unknown> = [];
  const ca = await createTestCa();
  const seen: Seen[] = [];
  const s1 = backend('v1', seen);
  const s2 = backend('v2', seen);
  const s3 = backend('v3', seen);
  const grpcServer = http2.createServer();
  grpcServer.on('stream', (stream) => {
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'not found' }));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    });
  });
  const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  const [p1, p2, p3, pg, pe] = await Promise.all([listen(s1), listen(s2), listen(s3), listen(grpcServer as unknown as net.Server), listen(echo)]);
  for (const server of [s1, s2, s3, grpcServer, echo]) cleanups.push(() => new Promise<void>((resolve) => (server as net.Server).close(() => resolve())));
  cleanups.push(() => s1.closeAllConnections(), () => s2.closeAllConnections(), () => s3.closeAllConnections());

  const ep = (port: number, over: Partial<Endpoint> = {}): Endpoint => ({ address: '127.0.0.1', port, identity: 'spiffe://cluster.local/ns/shop/sa/reviews', hbone: false, ...over });
  const cluster = (name: string, service: string, endpoints: Endpoint[]): Cluster => ({ name, service, port: 80, lb: 'ROUND_ROBIN', endpoints });
  const C_V1 = `outbound|80|v1|${HOST}`;
  const C_V2 = `outbound|80|v2|${HOST}`;
  const C_V3 = `outbound|80|v3|${HOST}`;
  const C_GRPC = `outbound|81||${GRPC_HOST}`;
  const C_TCP = `outbound|5432||${TCP_HOST}`;
  const config = (telemetry?: TelemetrySettings): WaypointConfig => ({
    namespace: 'shop',
    name: 'waypoint',
    identity: WAYPOINT_URI,
    services: [
      {
        key: `shop/${HOST}`,
        namespace: 'shop',
        hostname: HOST,
        addresses: [VIP],
        ports: [
          {
            port: 80,
            protocol: 'HTTP',
            defaultCluster: C_V1,
            routes: [
              { name: 'HTTPRoute/shop/reviews#0', matches: [{ headers: [{ name: 'x-version', match: { kind: 'exact', value: 'v2' } }] }], action: { kind: 'forward', backends: [{ cluster: C_V2, weight: 1 }] } },
              { name: 'HTTPRoute/shop/reviews#1', matches: [{ headers: [{ name: 'x-version', match: { kind: 'exact', value: 'v3' } }] }], action: { kind: 'forward', backends: [{ cluster: C_V3, weight: 1 }] } },
            ],
          },
        ],
      },
      { key: `shop/${GRPC_HOST}`, namespace: 'shop', hostname: GRPC_HOST, addresses: [GRPC_VIP], ports: [{ port: 81, protocol: 'GRPC', defaultCluster: C_GRPC, routes: [] }] },
      { key: `shop/${TCP_HOST}`, namespace: 'shop', hostname: TCP_HOST, addresses: [TCP_VIP], ports: [{ port: 5432, protocol: 'TCP', defaultCluster: C_TCP, routes: [] }] },
    ],
    clusters: [
      cluster(C_V1, `shop/${HOST}`, [ep(p1, { meta: meta('reviews-v1', 'v1') })]),
      cluster(C_V2, `shop/${HOST}`, [ep(p2, { meta: meta('reviews-v2', 'v2') })]),
      // No meta (a controller that did not fill it): destination workload labels are unknown.
      cluster(C_V3, `shop/${HOST}`, [ep(p3)]),
      cluster(C_GRPC, `shop/${GRPC_HOST}`, [ep(pg, { meta: { workloadName: 'ratings-v1', namespace: 'shop', canonicalName: 'ratings', canonicalRevision: 'v1' } })]),
      cluster(C_TCP, `shop/${TCP_HOST}`, [ep(pe, { meta: { workloadName: 'db', namespace: 'shop', canonicalName: 'db', canonicalRevision: 'latest' } })]),
    ],
    policies: [{ name: 'shop/deny-admin', action: 'DENY', services: [`shop/${HOST}`], rules: [{ to: [{ paths: ['/admin*'] }] }] }],
    ...(telemetry ? { telemetry } : {}),
  });

  const settings = readWaypointSettings(
    {
      AMESH_WAYPOINT_NAME: 'waypoint',
      POD_NAMESPACE: 'shop',
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
  const logs: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Line);
      done();
    },
  });
  const tracer = fakeTracer();
  const waypoint = await WaypointProxy.build({ settings, logger: pino({ level: 'info' }, sink), certificateProvider: ca.provider, xds: false, random: seededRandom(3), tracing: tracer });
  cleanups.push(() => waypoint.close());
  const ports = await waypoint.run();
  waypoint.applyConfig(config());
  const clientContext = await ca.context(CLIENT);
  const pool = new HbonePool({ certificates: { secureContext: async () => clientContext }, logger: silentLogger });
  cleanups.push(() => pool.close());
  return { ca, waypoint, ports, config, pool, logs, seen, tracer, cleanups };
}

/** What the client's node agent does: a CONNECT with the original VIP:port, `forwarded` and `baggage`. */
function tunnel(f: Fixture, authority: string): Promise<Duplex> {
  return f.pool.connect({
    sourceIdentity: CLIENT,
    expectedIdentities: [WAYPOINT_URI],
    nextHop: { host: '127.0.0.1', port: f.ports.hbone },
    authority,
    headers: { forwarded: 'for="10.244.0.7:43210"', baggage: BAGGAGE },
  });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request on its own tunnel. */
async function request(f: Fixture, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  const stream = socketLike(await tunnel(f, `${VIP}:80`));
  return new Promise((resolve, reject) => {
    const req = http.request({ createConnection: () => stream as unknown as net.Socket, host: VIP, port: 80, path, headers: { host: HOST, connection: 'close', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function scrape(f: Fixture): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${f.ports.metrics}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

const access = (f: Fixture, path: string): Line[] => f.logs.filter((l) => l.component === 'access' && l.path === path);

describe('waypoint telemetry', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await setup();
  });
  afterAll(async () => {
    for (const c of (f?.cleanups ?? []).reverse()) await c();
  });

  it('counts requests per endpoint meta with the source from the baggage and the peer identity', async () => {
    for (let i = 0; i < 3; i++) expect((await request(f, `/reviews/${i}`, { 'x-version': 'v2' })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await request(f, `/reviews/${i}`)).status).toBe(200);
    expect((await request(f, '/reviews/0', { 'x-version': 'v3' })).status).toBe(200);
    const source = { reporter: 'waypoint', source_workload: 'productpage-v1', source_workload_namespace: 'shop', source_principal: CLIENT_URI, source_app: 'productpage', source_version: 'v1', source_canonical_service: 'productpage', source_cluster: 'Kubernetes' };
    const destination = { destination_service: HOST, destination_service_name: 'reviews', destination_service_namespace: 'shop', destination_principal: 'spiffe://cluster.local/ns/shop/sa/reviews' };
    const common = { ...source, ...destination, response_code: '200', response_flags: '-', request_protocol: 'http', connection_security_policy: 'mutual_tls', grpc_response_status: 'unknown' };
    // A request is recorded when its response finished on the server side: poll (bounded).
    await eventually(async () => expect(total(await scrape(f), 'istio_requests_total', { destination_service: HOST, response_code: '200' })).toBe(6), { timeoutMs: 2000, description: 'six requests counted' });
    const text = await scrape(f);
    expect(total(text, 'istio_requests_total', { ...common, destination_version: 'v2', destination_workload: 'reviews-v2', destination_workload_namespace: 'shop', destination_canonical_service: 'reviews', destination_canonical_revision: 'v2' })).toBe(3);
    expect(total(text, 'istio_requests_total', { ...common, destination_version: 'v1', destination_workload: 'reviews-v1' })).toBe(2);
    expect(total(text, 'istio_requests_total', { ...common, destination_version: 'unknown', destination_workload: 'unknown', destination_canonical_service: 'unknown' })).toBe(1);
    expect(total(text, 'istio_request_duration_milliseconds_count', { destination_version: 'v2' })).toBe(3);
    expect(total(text, 'istio_request_duration_milliseconds_bucket', { destination_version: 'v2', le: '+Inf' })).toBe(3);
    expect(total(text, 'istio_response_bytes_sum', { destination_version: 'v2' })).toBe(3 * Buffer.byteLength('hello from v2\n'));
    expect(total(text, 'istio_request_bytes_count', { destination_version: 'v1' })).toBe(2);

    const line = access(f, '/reviews/1').find((l) => l.upstream_cluster === `outbound|80|v2|${HOST}`);
    expect(line).toMatchObject({
      response_code: 200,
      response_flags: '-',
      method: 'GET',
      protocol: 'HTTP/1.1',
      authority: HOST,
      route_name: 'HTTPRoute/shop/reviews#0',
      upstream_host: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      bytes_received: 0,
      bytes_sent: Buffer.byteLength('hello from v2\n'),
      'src.addr': '10.244.0.7',
      'src.identity': CLIENT_URI,
      'dst.addr': `${VIP}:80`,
      'dst.service': HOST,
      request_id: expect.any(String),
      // The fields this log had before stay.
      status: 200,
      responseFlags: '-',
      sourceIdentity: CLIENT_URI,
    });
    expect(typeof line?.duration).toBe('number');
  });

  it('a denied request: 403 with RBAC in the metrics, and the access-log line names the policy', async () => {
    const denied = await request(f, '/admin/users');
    expect(denied).toMatchObject({ status: 403, headers: { 'x-amesh-response-flags': 'RBAC' } });
    const text = await scrape(f);
    expect(total(text, 'istio_requests_total', { response_code: '403', response_flags: 'RBAC', source_workload: 'productpage-v1', destination_service: HOST })).toBe(1);
    await eventually(() => expect(access(f, '/admin/users')).toEqual([expect.objectContaining({ response_code: 403, response_flags: 'RBAC', authz_policy: expect.stringMatching(/^shop\/deny-admin/), 'dst.service': HOST })]), {
      timeoutMs: 2000,
      description: 'the denial logged with the policy',
    });
  });

  it('gRPC requests report request_protocol grpc and grpc_response_status; TCP streams istio_tcp_* with bytes', async () => {
    const stream = socketLike(await tunnel(f, `${GRPC_VIP}:81`));
    const session = http2.connect(`http://${GRPC_VIP}:81`, { createConnection: () => stream as unknown as net.Socket });
    session.on('error', () => undefined);
    try {
      const call = session.request({ ':method': 'POST', ':path': '/ratings.Ratings/Get', 'content-type': 'application/grpc', te: 'trailers' });
      call.end(Buffer.from([0, 0, 0, 0, 0]));
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => call.once('trailers', resolve));
      call.resume();
      await once(call, 'end');
      expect((await trailers)['grpc-status']).toBe('5');
    } finally {
      session.close();
    }
    await eventually(
      async () => expect(total(await scrape(f), 'istio_requests_total', { request_protocol: 'grpc', grpc_response_status: '5', response_code: '200', destination_workload: 'ratings-v1', source_workload: 'productpage-v1' })).toBe(1),
      { timeoutMs: 2000, description: 'the gRPC request counted' },
    );

    const db = await tunnel(f, `${TCP_VIP}:5432`);
    db.write('hello');
    db.end();
    const chunks: Buffer[] = [];
    db.on('data', (c: Buffer) => chunks.push(c));
    await once(db, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('hello');
    await eventually(
      async () => {
        const text = await scrape(f);
        const tcp = { reporter: 'waypoint', destination_service: TCP_HOST, destination_workload: 'db', source_workload: 'productpage-v1', request_protocol: 'tcp', response_flags: '-' };
        expect(total(text, 'istio_tcp_connections_opened_total', tcp)).toBe(1);
        expect(total(text, 'istio_tcp_connections_closed_total', tcp)).toBe(1);
        expect(total(text, 'istio_tcp_received_bytes_total', tcp)).toBe(5);
        expect(total(text, 'istio_tcp_sent_bytes_total', tcp)).toBe(5);
      },
      { timeoutMs: 3000, description: 'the TCP stream counted with its bytes' },
    );
    expect(f.logs.find((l) => l.component === 'access' && l.protocol === 'TCP' && l['dst.service'] === TCP_HOST)).toMatchObject({ bytes_received: 5, bytes_sent: 5, response_flags: '-' });
  });

  it('a Telemetry filter `response.code >= 400` logs only errors, until a config without it', async () => {
    f.waypoint.applyConfig(f.config({ accessLogging: { enabled: true, filter: 'response.code >= 400' }, sources: ['shop/errors-only'] }));
    try {
      expect((await request(f, '/filtered/ok')).status).toBe(200);
      expect((await request(f, '/admin/filtered')).status).toBe(403);
      await eventually(() => expect(access(f, '/admin/filtered')).toHaveLength(1), { timeoutMs: 2000, description: 'the error logged' });
      expect(access(f, '/filtered/ok')).toEqual([]);
      // Metrics are not filtered.
      expect(total(await scrape(f), 'istio_requests_total', { response_code: '200', destination_version: 'v1' })).toBeGreaterThanOrEqual(3);

      f.waypoint.applyConfig(f.config({ accessLogging: { enabled: false }, sources: ['shop/off'] }));
      expect((await request(f, '/admin/off')).status).toBe(403);
      expect(access(f, '/admin/off')).toEqual([]);
    } finally {
      f.waypoint.applyConfig(f.config());
    }
    expect((await request(f, '/filtered/again')).status).toBe(200);
    await eventually(() => expect(access(f, '/filtered/again')).toHaveLength(1), { timeoutMs: 2000, description: 'logged again without a filter' });
  });

  it('tracing: a span per request and try; the try headers replace the caller’s upstream; the log has the trace id', async () => {
    const tracing: TracingSettings = { provider: 'otel', endpoint: 'http://collector.observability:4318/v1/traces', samplingPercentage: 100 };
    f.waypoint.applyConfig(f.config({ accessLogging: { enabled: true }, tracing, sources: ['shop/traced'] }));
    try {
      expect(f.tracer.configured.at(-1)).toEqual(tracing);
      const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const before = f.seen.length;
      expect((await request(f, '/traced', { traceparent: incoming, b3: '0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1', 'x-version': 'v2' })).status).toBe(200);
      const upstream = f.seen.slice(before).at(-1)!;
      const traced = f.tracer.requests.at(-1)!;
      expect(traced.incoming).toBe(incoming);
      expect(traced.info).toMatchObject({ method: 'GET', authority: HOST, path: '/traced', protocol: 'HTTP/1.1', peerIdentity: CLIENT_URI, role: 'waypoint' });
      expect(traced.tries).toEqual([expect.objectContaining({ cluster: `outbound|80|v2|${HOST}`, endpoint: expect.stringMatching(/^127\.0\.0\.1:/), ended: { status: 200, error: undefined } })]);
      await eventually(() => expect(traced.ended).toMatchObject({ status: 200, responseFlags: '-', route: 'HTTPRoute/shop/reviews#0' }), { timeoutMs: 2000, description: 'the request span ended' });
      const traceId = (f.tracer.requests.length).toString(16).padStart(32, 'a');
      expect(upstream.headers.traceparent).toBe(`00-${traceId}-${'1'.padStart(16, 'b')}-01`);
      expect(upstream.headers.b3).toBeUndefined();
      expect(upstream.headers['x-b3-traceid']).toBe(traceId);
      await eventually(() => expect(access(f, '/traced')).toEqual([expect.objectContaining({ trace_id: traceId })]), { timeoutMs: 2000, description: 'trace id logged' });
    } finally {
      f.waypoint.applyConfig(f.config());
    }
    expect(f.tracer.configured.at(-1)).toBeUndefined();
    const incoming = '00-11111111111111111111111111111111-2222222222222222-01';
    const before = f.seen.length;
    expect((await request(f, '/untraced', { traceparent: incoming })).status).toBe(200);
    expect(f.seen.slice(before).at(-1)?.headers.traceparent).toBe(incoming);
    // The engine's list of replaced headers is the tracer's.
    expect([...TRACE_HEADERS].sort()).toEqual([...TRACE_HEADER_NAMES].sort());
  });
});

describe('gateway telemetry', () => {
  const GATEWAY_URI = 'spiffe://cluster.local/ns/istio-ingress/sa/edge-gateway-istio';
  let gateway: GatewayProxy;
  let metricsPort: number;
  const logs: Line[] = [];
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    const ca = await createTestCa();
    const app = backend('edge', []);
    const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    const [pApp, pEcho] = await Promise.all([listen(app), listen(echo)]);
    cleanups.push(
      () => app.closeAllConnections(),
      () => new Promise<void>((resolve) => app.close(() => resolve())),
      () => new Promise<void>((resolve) => echo.close(() => resolve())),
    );
    const ep = (port: number, workloadName: string): Endpoint => ({ address: '127.0.0.1', port, identity: '', hbone: false, meta: { workloadName, namespace: 'shop', canonicalName: workloadName, canonicalRevision: 'v1' } });
    const config: WaypointConfig = {
      namespace: 'istio-ingress',
      name: 'edge-gateway-istio',
      identity: GATEWAY_URI,
      kind: 'gateway',
      listeners: [
        { name: 'Gateway/istio-ingress/edge/http', port: 80, protocol: 'HTTP' },
        { name: 'Gateway/istio-ingress/edge/tcp', port: 9000, protocol: 'TCP', l4Routes: [{ name: 'TCPRoute/shop/echo#0', backends: [{ cluster: 'echo', weight: 1 }] }] },
      ],
      services: [
        {
          key: 'istio-ingress/edge',
          namespace: 'istio-ingress',
          hostname: 'edge-gateway-istio.istio-ingress.svc.cluster.local',
          addresses: [GATEWAY_LISTENER_ADDRESS],
          ports: [{ port: 80, protocol: 'HTTP', defaultCluster: '', routes: [{ name: 'HTTPRoute/shop/web#0', matches: [{ authority: { kind: 'exact', value: 'shop.example.com' } }], action: { kind: 'forward', backends: [{ cluster: 'web', weight: 1 }] } }] }],
        },
      ],
      clusters: [
        { name: 'web', service: 'shop/web.shop.svc.cluster.local', port: 80, lb: 'ROUND_ROBIN', endpoints: [ep(pApp, 'web-v1')] },
        { name: 'echo', service: 'shop/echo.shop.svc.cluster.local', port: 9000, lb: 'ROUND_ROBIN', endpoints: [ep(pEcho, 'echo')] },
      ],
    };
    const settings = readGatewaySettings(
      {
        AMESH_GATEWAY_NAME: 'edge-gateway-istio',
        POD_NAMESPACE: 'istio-ingress',
        AMESH_LISTEN_ADDRESS4: '127.0.0.1',
        AMESH_LISTEN_ADDRESS6: 'none',
        AMESH_READINESS_PORT: '0',
        AMESH_ADMIN_PORT: '0',
        AMESH_METRICS_PORT: '0',
        AMESH_DRAIN_TIMEOUT_MS: '200',
      },
      { requireControlPlane: false },
    );
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Line);
        done();
      },
    });
    gateway = await GatewayProxy.build({ settings, logger: pino({ level: 'info' }, sink), certificateProvider: ca.provider, xds: false, listenPort: () => 0, random: seededRandom(5) });
    cleanups.push(() => gateway.close());
    gateway.applyConfig(config);
    metricsPort = (await gateway.run()).metrics;
    await gateway.whenListening();
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  const get = (host: string, path: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: gateway.listenerPort(80), path, headers: { host, connection: 'close' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });

  it('reports as the source, itself the source workload; plain upstreams are not mTLS; L4 routes count istio_tcp_*', async () => {
    expect(await get('shop.example.com', '/cart')).toBe(200);
    expect(await get('shop.example.com', '/cart')).toBe(200);
    expect(await get('nowhere.example.com', '/')).toBe(404);
    const echo = net.connect(gateway.listenerPort(9000)!, '127.0.0.1');
    echo.end('ping');
    echo.resume();
    await once(echo, 'close');
    const source = { reporter: 'source', source_workload: 'edge-gateway-istio', source_workload_namespace: 'istio-ingress', source_principal: GATEWAY_URI, source_canonical_service: 'edge-gateway-istio' };
    await eventually(
      async () => {
        const text = (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
        expect(total(text, 'istio_requests_total', { ...source, response_code: '200', destination_service: 'web.shop.svc.cluster.local', destination_workload: 'web-v1', connection_security_policy: 'none', request_protocol: 'http' })).toBe(2);
        expect(total(text, 'istio_requests_total', { ...source, response_code: '404', response_flags: 'NR', destination_service: 'unknown' })).toBe(1);
        expect(total(text, 'istio_tcp_connections_closed_total', { ...source, destination_workload: 'echo', request_protocol: 'tcp' })).toBe(1);
        expect(total(text, 'istio_tcp_received_bytes_total', { ...source, destination_workload: 'echo' })).toBe(4);
      },
      { timeoutMs: 3000, description: 'the gateway metrics' },
    );
    expect(logs.find((l) => l.component === 'access' && l.path === '/cart')).toMatchObject({ response_code: 200, 'dst.service': 'web.shop.svc.cluster.local', upstream_cluster: 'web', 'src.addr': '127.0.0.1' });
  });
});

describe('byte counts of a stream relayed by someone else (pipeline/stream-bytes.ts)', () => {
  it('an HTTP/2 stream (as an HBONE CONNECT upstream): bytes written into it and bytes it delivered', async () => {
    const server = http2.createServer();
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.on('data', (c: Buffer) => stream.write(Buffer.concat([c, c])));
      stream.on('end', () => stream.end('!'));
    });
    const port = await listen(server as unknown as net.Server);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/' });
      const bytes = countStreamBytes(stream);
      stream.write('hello');
      stream.end(Buffer.from('abc'));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      await once(stream, 'end');
      expect(Buffer.concat(chunks).length).toBe(17); // each chunk echoed twice, then '!'
      expect({ received: bytes.received(), sent: bytes.sent() }).toEqual({ received: 8, sent: 17 });
    } finally {
      session.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
  it('a TCP socket: its own counters', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    const port = await listen(echo);
    const socket = net.connect(port, '127.0.0.1');
    const bytes = countStreamBytes(socket);
    socket.end('twelve bytes');
    socket.resume();
    await once(socket, 'close');
    expect({ received: bytes.received(), sent: bytes.sent() }).toEqual({ received: 12, sent: 12 });
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  });
});
