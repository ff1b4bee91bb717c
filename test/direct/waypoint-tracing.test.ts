// Tracing through the waypoint, in-process on 127.0.0.1: client (HBONE tunnel, sends a W3C
// traceparent or B3 headers) → waypoint (WaypointConfig.telemetry.tracing → the amesh/otlp-receiver
// program on port 0, 100 %) → plain HTTP backend that records the headers it got.
//   - the receiver gets the waypoint's SERVER span (parent = the client's span id, same trace id)
//     and a CLIENT span that is its child;
//   - the backend sees a traceparent whose parent-id is that CLIENT span, and B3 (single + multi)
//     with the same trace and span — stale incoming ids are not passed on;
//   - a B3-only client: the trace continues and the backend also gets W3C;
//   - 0 % and an unsampled caller: no spans, the backend is told "not sampled" with the trace id kept;
//   - tracing removed from the config: the caller's headers reach the backend untouched.
import http from 'node:http';
import { Writable, type Duplex } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HbonePool } from '../../src/hbone/pool.js';
import type { TelemetrySettings } from '../../src/telemetry/telemetry-config.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import { socketLike } from '../../src/l7/upstream.js';
import { runOtlpReceiver, type OtlpReceiver } from '../../src/sandbox/images/otlp-receiver.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import type { ReceivedSpan } from '../../src/telemetry/trace-otlp-decode.js';
import { ProxyTracing } from '../../src/telemetry/tracing.js';
import { WaypointProxy } from '../../src/waypoint/app.js';
import { readWaypointSettings } from '../../src/waypoint/settings.js';
import { eventually } from '../helpers/eventually.js';
import { listen } from '../helpers/hbone.js';
import { createTestCa, workload } from '../helpers/pki.js';
import { seededRandom } from '../helpers/seeded-random.js';

const WAYPOINT_URI = 'spiffe://cluster.local/ns/demo/sa/waypoint';
const CLIENT = workload('demo', 'client');
const VIP = '10.96.0.10';
const HOST = 'reviews.demo.svc.cluster.local';
const CLUSTER = `outbound|80||${HOST}`;
const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
}

let receiver: OtlpReceiver;
let waypoint: WaypointProxy;
let pool: HbonePool;
let backend: http.Server;
let backendPort: number;
const seen: Seen[] = [];
const cleanups: Array<() => unknown> = [];

function config(tracing: TelemetrySettings['tracing']): WaypointConfig {
  return {
    namespace: 'demo',
    name: 'waypoint',
    identity: WAYPOINT_URI,
    services: [
      {
        key: `demo/${HOST}`,
        namespace: 'demo',
        hostname: HOST,
        addresses: [VIP],
        ports: [{ port: 80, protocol: 'HTTP', routes: [{ name: 'HTTPRoute/demo/reviews#0', matches: [{ path: { kind: 'prefix', value: '/' } }], action: { kind: 'forward', backends: [{ cluster: CLUSTER, weight: 1 }] } }], defaultCluster: CLUSTER }],
      },
    ],
    clusters: [{ name: CLUSTER, service: `demo/${HOST}`, port: 80, lb: 'ROUND_ROBIN', endpoints: [{ address: '127.0.0.1', port: backendPort, identity: 'spiffe://cluster.local/ns/demo/sa/reviews', hbone: false }] }],
    telemetry: { accessLogging: { enabled: true }, ...(tracing ? { tracing } : {}), sources: ['amesh-system/mesh-default'] },
  };
}

function tracingAt(samplingPercentage: number): TelemetrySettings['tracing'] {
  return { provider: 'otel', endpoint: `http://127.0.0.1:${receiver.port}/v1/traces`, samplingPercentage };
}

class TunnelAgent extends http.Agent {
  constructor(private readonly hbonePort: number) {
    super({ keepAlive: true, maxSockets: 4 });
  }
  override createConnection(_o: http.ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): Duplex | undefined {
    pool.connect({ sourceIdentity: CLIENT, expectedIdentities: [WAYPOINT_URI], nextHop: { host: '127.0.0.1', port: this.hbonePort }, authority: `${VIP}:80`, headers: { forwarded: 'for="10.244.0.7:43210"' } }).then(
      (s) => cb?.(null, socketLike(s)),
      (err: Error) => cb?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}
let agent: TunnelAgent;

/** One request through the waypoint; returns what the backend saw for it. */
function send(path: string, headers: http.OutgoingHttpHeaders): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: VIP, port: 80, path, headers: { host: `${HOST}:80`, ...headers } }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        const s = seen.find((x) => x.url === path);
        if (!s) return reject(new Error(`backend did not see ${path}`));
        resolve(s);
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function spansOf(traceId: string, count: number): Promise<ReceivedSpan[]> {
  return eventually(
    () => {
      const mine = receiver.spans().filter((s) => s.traceId === traceId);
      expect(mine).toHaveLength(count);
      return mine;
    },
    { timeoutMs: 10_000, description: `${count} spans of trace ${traceId} at the receiver` },
  );
}

function traceparentOf(s: Seen): { traceId: string; parentId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(s.headers.traceparent ?? ''));
  if (!m) throw new Error(`backend saw no valid traceparent: ${String(s.headers.traceparent)}`);
  return { traceId: m[1] ?? '', parentId: m[2] ?? '', flags: m[3] ?? '' };
}

beforeAll(async () => {
  receiver = await runOtlpReceiver({ port: 0, host: '127.0.0.1', out: () => {}, log: () => {} });
  cleanups.push(() => {
    receiver.server.closeAllConnections();
    receiver.server.close();
  });
  backend = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  backendPort = await listen(backend);
  cleanups.push(() => {
    backend.closeAllConnections();
    backend.close();
  });
  const ca = await createTestCa();
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
      AMESH_DRAIN_TIMEOUT_MS: '200',
    },
    { requireControlPlane: false },
  );
  const sink = new Writable({ write: (_c, _e, done) => done() });
  // What src/cli/waypoint-proxy.ts gives the waypoint process (Istio's service.name for a waypoint: <name>.<namespace>).
  const tracing = new ProxyTracing({ serviceName: 'waypoint.demo', serviceNamespace: 'demo', logger: silentLogger });
  waypoint = await WaypointProxy.build({ settings, logger: pino({ level: 'info' }, sink), certificateProvider: ca.provider, xds: false, random: seededRandom(3), tracing });
  cleanups.push(() => waypoint.close());
  const ports = await waypoint.run();
  const clientContext = await ca.context(CLIENT);
  pool = new HbonePool({ certificates: { secureContext: async () => clientContext }, logger: silentLogger });
  cleanups.push(() => pool.close());
  agent = new TunnelAgent(ports.hbone);
  cleanups.push(() => agent.destroy());
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('waypoint tracing', () => {
  it('W3C caller: SERVER span child of the caller, CLIENT span child of it, backend gets both formats for the CLIENT span', async () => {
    waypoint.applyConfig(config(tracingAt(100)));
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    // Stale B3 ids of some earlier hop ride along: the waypoint must not pass them on.
    const got = await send('/reviews/1?u=2', { traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: 'congo=t61rcWkgMzE', 'x-b3-parentspanid': 'ffffffffffffffff' });

    const spans = await spansOf(traceId, 2);
    const server = spans.find((s) => s.kind === 'SERVER');
    const client = spans.find((s) => s.kind === 'CLIENT');
    expect(server).toMatchObject({ parentSpanId: callerSpan, name: `${HOST}:80/reviews/1` });
    expect(server?.attributes).toMatchObject({ 'http.method': 'GET', 'http.status_code': 200, 'source.principal': 'spiffe://cluster.local/ns/demo/sa/client', 'amesh.role': 'waypoint' });
    expect(client).toMatchObject({ parentSpanId: server?.spanId, name: `router ${CLUSTER} egress` });
    expect(client?.attributes).toMatchObject({ upstream_cluster: CLUSTER, upstream_address: `127.0.0.1:${backendPort}`, 'http.status_code': 200 });
    expect(server?.service).toBe('waypoint.demo');
    expect(client?.service).toBe('waypoint.demo');

    expect(traceparentOf(got)).toEqual({ traceId, parentId: client?.spanId, flags: '01' });
    expect(got.headers.tracestate).toBe('congo=t61rcWkgMzE');
    expect(got.headers['x-b3-traceid']).toBe(traceId);
    expect(got.headers['x-b3-spanid']).toBe(client?.spanId);
    expect(got.headers['x-b3-sampled']).toBe('1');
    expect(got.headers.b3).toBe(`${traceId}-${client?.spanId}-1`);
    expect(got.headers['x-b3-parentspanid']).toBeUndefined();
  });

  it('B3 caller (multi headers only): the trace continues and the backend also gets W3C', async () => {
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const callerSpan = '1111222233334444';
    const got = await send('/reviews/b3', { 'x-b3-traceid': traceId, 'x-b3-spanid': callerSpan, 'x-b3-sampled': '1' });
    const spans = await spansOf(traceId, 2);
    const server = spans.find((s) => s.kind === 'SERVER');
    const client = spans.find((s) => s.kind === 'CLIENT');
    expect(server?.parentSpanId).toBe(callerSpan);
    expect(client?.parentSpanId).toBe(server?.spanId);
    expect(traceparentOf(got)).toEqual({ traceId, parentId: client?.spanId, flags: '01' });
    expect(got.headers['x-b3-spanid']).toBe(client?.spanId);
  });

  it('no caller context at 100 %: the waypoint starts the trace (SERVER span is a root)', async () => {
    const got = await send('/reviews/root', {});
    const { traceId, parentId } = traceparentOf(got);
    const spans = await spansOf(traceId, 2);
    const server = spans.find((s) => s.kind === 'SERVER');
    expect(server?.parentSpanId).toBe('');
    expect(spans.find((s) => s.kind === 'CLIENT')?.spanId).toBe(parentId);
  });

  it('0 % without a caller, or an unsampled caller at 100 %: no spans, backend told "not sampled", trace id kept', async () => {
    waypoint.applyConfig(config(tracingAt(0)));
    const root = traceparentOf(await send('/reviews/zero', {}));
    expect(root.flags).toBe('00');
    waypoint.applyConfig(config(tracingAt(100)));
    const traceId = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    const got = await send('/reviews/unsampled', { traceparent: `00-${traceId}-2222333344445555-00` });
    expect(traceparentOf(got)).toMatchObject({ traceId, flags: '00' });
    expect(got.headers['x-b3-sampled']).toBe('0');
    // A sampled request after them, to know the exporter has had its chance to send the others.
    const marker = traceparentOf(await send('/reviews/marker', {}));
    await spansOf(marker.traceId, 2);
    expect(receiver.spans().filter((s) => s.traceId === traceId || s.traceId === root.traceId)).toEqual([]);
  });

  it('tracing removed from the config: the caller\'s trace headers reach the backend untouched', async () => {
    waypoint.applyConfig(config(undefined));
    const incoming = { traceparent: '00-cccccccccccccccccccccccccccccccc-3333444455556666-01', b3: 'cccccccccccccccccccccccccccccccc-3333444455556666-1', 'x-b3-parentspanid': '7777888899990000' };
    const got = await send('/reviews/off', incoming);
    const forwarded = Object.fromEntries(TRACE_HEADERS.filter((h) => got.headers[h] !== undefined).map((h) => [h, got.headers[h]]));
    expect(forwarded).toEqual(incoming);
  });
});
