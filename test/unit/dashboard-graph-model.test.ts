import { describe, expect, it } from 'vitest';
import { chooseReporters, edgeLabel, formatBytes, GraphModel, increase, inferRole, type GraphEdge, type ScrapeResult, type ScrapeTarget } from '../../src/dashboard/graph-model.js';
import { parsePrometheusText } from '../../src/dashboard/prometheus-text.js';

// ---- fixtures: the demo's shape (frontend → backend v1/v2 through a waypoint) ------------------

const MTLS = 'mutual_tls';

function labels(o: Record<string, string>): string {
  return `{${Object.entries(o)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;
}

function peer(src: string, dst: string, dstVersion: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    source_workload: src,
    source_workload_namespace: 'default',
    source_principal: `spiffe://cluster.local/ns/default/sa/${src}`,
    destination_service: 'backend.default.svc.cluster.local',
    destination_service_name: 'backend',
    destination_service_namespace: 'default',
    destination_workload: dst,
    destination_workload_namespace: 'default',
    destination_version: dstVersion,
    destination_app: 'backend',
    connection_security_policy: MTLS,
    ...extra,
  };
}

/** Waypoint exposition: requests per (version, code) and a latency histogram per version. */
function waypointText(counts: { v1: number; v2: number; v2errors: number }, latency: { v1: number[]; v2: number[] }): string {
  const lines = ['# TYPE istio_requests_total counter'];
  lines.push(`istio_requests_total${labels({ reporter: 'waypoint', ...peer('frontend', 'backend-v1', 'v1'), response_code: '200' })} ${counts.v1}`);
  lines.push(`istio_requests_total${labels({ reporter: 'waypoint', ...peer('frontend', 'backend-v2', 'v2'), response_code: '200' })} ${counts.v2 - counts.v2errors}`);
  if (counts.v2errors > 0) lines.push(`istio_requests_total${labels({ reporter: 'waypoint', ...peer('frontend', 'backend-v2', 'v2'), response_code: '503' })} ${counts.v2errors}`);
  lines.push('# TYPE istio_request_duration_milliseconds histogram');
  const bounds = [1, 5, 10, 50, Infinity];
  for (const [workload, version, values] of [
    ['backend-v1', 'v1', latency.v1],
    ['backend-v2', 'v2', latency.v2],
  ] as const) {
    const l = { reporter: 'waypoint', ...peer('frontend', workload, version), response_code: '200' };
    for (const le of bounds) {
      lines.push(`istio_request_duration_milliseconds_bucket${labels({ ...l, le: le === Infinity ? '+Inf' : String(le) })} ${values.filter((v) => v <= le).length}`);
    }
    lines.push(`istio_request_duration_milliseconds_sum${labels(l)} ${values.reduce((a, b) => a + b, 0)}`);
    lines.push(`istio_request_duration_milliseconds_count${labels(l)} ${values.length}`);
  }
  return lines.join('\n');
}

/** Node agent exposition: L4 hops frontend → waypoint (source) and waypoint → backends (destination), plus a direct TCP flow. */
function agentText(c: { toWaypoint: number; toV1: number; toV2: number; db: number; dbBytes: number; dbPlain?: number }): string {
  const wp = { destination_service: 'backend.default.svc.cluster.local', destination_service_name: 'backend', destination_service_namespace: 'default', destination_workload: 'waypoint', destination_workload_namespace: 'default', connection_security_policy: MTLS };
  const lines = ['# TYPE istio_tcp_connections_opened_total counter'];
  lines.push(`istio_tcp_connections_opened_total${labels({ reporter: 'source', source_workload: 'frontend', source_workload_namespace: 'default', ...wp, response_flags: '-' })} ${c.toWaypoint}`);
  lines.push(`istio_tcp_connections_opened_total${labels({ reporter: 'destination', ...peer('waypoint', 'backend-v1', 'v1'), response_flags: '-' })} ${c.toV1}`);
  lines.push(`istio_tcp_connections_opened_total${labels({ reporter: 'destination', ...peer('waypoint', 'backend-v2', 'v2'), response_flags: '-' })} ${c.toV2}`);
  const db = { source_workload: 'backend-v1', source_workload_namespace: 'default', destination_service: 'db.data.svc.cluster.local', destination_service_name: 'db', destination_service_namespace: 'data', destination_workload: 'db', destination_workload_namespace: 'data', response_flags: '-' };
  lines.push(`istio_tcp_connections_opened_total${labels({ reporter: 'source', ...db, connection_security_policy: MTLS })} ${c.db}`);
  lines.push(`istio_tcp_connections_opened_total${labels({ reporter: 'destination', ...db, connection_security_policy: MTLS })} ${c.db}`);
  if (c.dbPlain !== undefined) lines.push(`istio_tcp_connections_opened_total${labels({ reporter: 'destination', ...db, connection_security_policy: 'none' })} ${c.dbPlain}`);
  lines.push('# TYPE istio_tcp_received_bytes_total counter');
  lines.push(`istio_tcp_received_bytes_total${labels({ reporter: 'destination', ...db, connection_security_policy: MTLS })} ${c.dbBytes}`);
  return lines.join('\n');
}

const WAYPOINT: ScrapeTarget = { id: 'http://wp/metrics', role: 'unknown', workload: { namespace: 'default', name: 'waypoint' } };
const AGENT: ScrapeTarget = { id: 'http://agent/metrics', role: 'unknown' };

function scrape(target: ScrapeTarget, timeMs: number, text: string): ScrapeResult {
  const { families, problems } = parsePrometheusText(text);
  return { target, timeMs, families, problems: problems.length };
}

function edge(edges: readonly GraphEdge[], source: string, target: string, protocol = 'http'): GraphEdge {
  const found = edges.find((e) => e.source === source && e.target === target && e.protocol === protocol);
  if (!found) throw new Error(`no ${protocol} edge ${source} → ${target}; have ${edges.map((e) => `${e.protocol}:${e.source}->${e.target}`).join(' ')}`);
  return found;
}

describe('GraphModel', () => {
  it('turns two scrapes into the demo graph: rates, canary split, error %, p99, padlocks; waypoint L4 hops folded', () => {
    const model = new GraphModel();
    const first = model.ingest([scrape(WAYPOINT, 0, waypointText({ v1: 100, v2: 10, v2errors: 0 }, { v1: [], v2: [] })), scrape(AGENT, 0, agentText({ toWaypoint: 5, toV1: 5, toV2: 1, db: 0, dbBytes: 0 }))]);
    expect(first.edges).toEqual([]); // no window yet
    expect(first.targets.map((t) => [t.id, t.role, t.ok])).toEqual([
      ['http://agent/metrics', 'agent', true],
      ['http://wp/metrics', 'waypoint', true],
    ]);

    // 10 s later: +90 to v1, +10 to v2 (1 of them 503), latencies known.
    const v1Latency = [...Array(90).fill(2), ...Array(0).fill(0)] as number[];
    const v2Latency = [...Array(9).fill(4), 40];
    const g = model.ingest([
      scrape(WAYPOINT, 10_000, waypointText({ v1: 190, v2: 20, v2errors: 1 }, { v1: v1Latency, v2: v2Latency })),
      scrape(AGENT, 10_000, agentText({ toWaypoint: 7, toV1: 7, toV2: 2, db: 4, dbBytes: 40_000 })),
    ]);
    expect(g.windowSeconds).toBe(10);
    expect(g.nodes.map((n) => `${n.kind}:${n.id}`)).toEqual([
      'service:service:backend.default.svc.cluster.local',
      'service:service:db.data.svc.cluster.local',
      'workload:workload:data/db',
      'workload:workload:default/backend-v1',
      'workload:workload:default/backend-v2',
      'workload:workload:default/frontend',
    ]);
    const front = edge(g.edges, 'workload:default/frontend', 'service:backend.default.svc.cluster.local');
    expect(front.rate).toBeCloseTo(10);
    expect(front.errorRate).toBeCloseTo(0.01);
    expect(front.mtls).toBe('mutual_tls');
    expect(front.reporter).toBe('waypoint');
    expect(front.via).toBe('default/waypoint');
    const v1 = edge(g.edges, 'service:backend.default.svc.cluster.local', 'workload:default/backend-v1');
    const v2 = edge(g.edges, 'service:backend.default.svc.cluster.local', 'workload:default/backend-v2');
    expect(v1.rate).toBeCloseTo(9);
    expect(v2.rate).toBeCloseTo(1);
    expect(v1.errorRate).toBe(0);
    expect(v2.errorRate).toBeCloseTo(0.1);
    expect(v2.codes).toEqual({ '200': 0.9, '503': 0.1 });
    // v1: all 90 in (1, 5] → p99 = 1 + 4 × 0.99 ≈ 4.96; v2: 9 in (1,5], 1 in (10,50] → p99 in (10, 50].
    expect(v1.p99Ms).toBeCloseTo(4.96);
    expect(v2.p99Ms! > 10 && v2.p99Ms! <= 50).toBe(true);
    expect(v1.label).toBe('9.0 rps · 0% err · p99 5 ms 🔒');
    expect(v2.label).toMatch(/^1\.0 rps · 10% err · p99 \d+ ms 🔒$/);
    // The L4 flow that no HTTP edge covers stays, counted once (destination preferred over source).
    const db = edge(g.edges, 'service:db.data.svc.cluster.local', 'workload:data/db', 'tcp');
    expect(db.rate).toBeCloseTo(0.4);
    expect(db.reporter).toBe('destination');
    expect(db.bytesPerSecond).toBeCloseTo(4000);
    expect(db.label).toBe('0.4 conn/s · 4.0 kB/s 🔒');
    // No node or edge for the waypoint: its hops are the HTTP edges.
    expect(g.edges.some((e) => e.source.includes('waypoint') || e.target.includes('waypoint'))).toBe(false);

    const services = model.services();
    expect(services.map((s) => [s.name, s.protocol])).toEqual([
      ['backend.default.svc.cluster.local', 'http'],
      ['db.data.svc.cluster.local', 'tcp'],
    ]);
    const backend = services[0]!;
    expect(backend.latest.rps).toBeCloseTo(10);
    expect(backend.latest.errorPct).toBeCloseTo(1);
    expect(backend.latest.p50Ms! > 1 && backend.latest.p50Ms! < 5).toBe(true);
    expect(backend.latest.t).toBe(10);
    expect(backend.history).toHaveLength(1);
    expect(services[1]!.latest).toMatchObject({ rps: null, cps: expect.closeTo(0.4, 5), bytesInPerSecond: expect.closeTo(4000, 5) });
  });

  it('shows the waypoint and its L4 hops when the waypoint is not known as one', () => {
    const anonymous: ScrapeTarget = { id: 'http://wp/metrics', role: 'unknown' };
    const model = new GraphModel();
    model.ingest([scrape(anonymous, 0, waypointText({ v1: 0, v2: 0, v2errors: 0 }, { v1: [], v2: [] })), scrape(AGENT, 0, agentText({ toWaypoint: 0, toV1: 0, toV2: 0, db: 0, dbBytes: 0 }))]);
    const g = model.ingest([
      scrape(anonymous, 5_000, waypointText({ v1: 5, v2: 5, v2errors: 0 }, { v1: [1], v2: [1] })),
      scrape(AGENT, 5_000, agentText({ toWaypoint: 1, toV1: 1, toV2: 1, db: 0, dbBytes: 0 })),
    ]);
    expect(edge(g.edges, 'workload:default/frontend', 'service:backend.default.svc.cluster.local', 'tcp').rate).toBeCloseTo(0.2);
    expect(edge(g.edges, 'service:backend.default.svc.cluster.local', 'workload:default/waypoint', 'tcp')).toBeDefined();
    // Known through Kubernetes instead: a distinct node kind.
    model.setKnownWaypoints(['default/waypoint']);
    const g2 = model.ingest([scrape(anonymous, 10_000, waypointText({ v1: 5, v2: 5, v2errors: 0 }, { v1: [1], v2: [1] })), scrape(AGENT, 10_000, agentText({ toWaypoint: 1, toV1: 1, toV2: 1, db: 0, dbBytes: 0 }))]);
    expect(g2.nodes.find((n) => n.id === 'workload:default/waypoint')?.kind).toBe('waypoint');
  });

  it('keeps recently busy edges at 0 with their padlock, hides edges idle too long or never busy, handles counter resets and new series', () => {
    const model = new GraphModel({ windowMs: 10_000, idleMs: 25_000 });
    const t = (ms: number, c: Parameters<typeof agentText>[0]): ScrapeResult => scrape(AGENT, ms, agentText(c));
    const dbEdge = (g: { edges: GraphEdge[] }): GraphEdge => edge(g.edges, 'service:db.data.svc.cluster.local', 'workload:data/db', 'tcp');
    model.ingest([t(0, { toWaypoint: 0, toV1: 0, toV2: 0, db: 5, dbBytes: 0 })]);
    let g = model.ingest([t(10_000, { toWaypoint: 0, toV1: 0, toV2: 0, db: 10, dbBytes: 0 })]);
    expect(dbEdge(g).rate).toBeCloseTo(0.5);
    // Series that exist but never moved while watched (the waypoint hops here) draw nothing.
    expect(g.edges.filter((e) => e.protocol === 'tcp').map((e) => e.id)).toEqual(['tcp:service:db.data.svc.cluster.local->workload:data/db', 'tcp:workload:default/backend-v1->service:db.data.svc.cluster.local']);
    g = model.ingest([t(20_000, { toWaypoint: 0, toV1: 0, toV2: 0, db: 10, dbBytes: 0 })]);
    const idle = dbEdge(g);
    expect(idle.rate).toBe(0);
    expect(idle.mtls).toBe('mutual_tls');
    expect(idle.label).toBe('0.0 conn/s 🔒');
    // Agent restarted: the counter went down to 3 → 3 new connections in the 10 s window.
    g = model.ingest([t(30_000, { toWaypoint: 0, toV1: 0, toV2: 0, db: 3, dbBytes: 0 })]);
    expect(dbEdge(g).rate).toBeCloseTo(0.3);
    // A series that appears between scrapes counts from zero; the window's traffic was all plaintext.
    g = model.ingest([t(40_000, { toWaypoint: 0, toV1: 0, toV2: 0, db: 3, dbBytes: 0, dbPlain: 2 })]);
    expect(dbEdge(g).rate).toBeCloseTo(0.2);
    expect(dbEdge(g).mtls).toBe('none');
    expect(dbEdge(g).label.includes('🔒')).toBe(false);
    // Idle, its series mixed: partial.
    g = model.ingest([t(50_000, { toWaypoint: 0, toV1: 0, toV2: 0, db: 3, dbBytes: 0, dbPlain: 2 })]);
    expect(dbEdge(g).mtls).toBe('partial');
    // Idle for longer than idleMs: gone, with its nodes.
    g = model.ingest([t(70_000, { toWaypoint: 0, toV1: 0, toV2: 0, db: 3, dbBytes: 0, dbPlain: 2 })]);
    expect(g.edges).toEqual([]);
    expect(g.nodes).toEqual([]);
  });

  it('drops the L4 side of HTTP traffic between the same workloads even when L4 names no service (a gateway dials endpoints)', () => {
    const gateway: ScrapeTarget = { id: 'gw', role: 'gateway', workload: { namespace: 'demo', name: 'gw' } };
    const agent: ScrapeTarget = { id: 'agent', role: 'agent' };
    const l7 = (n: number): string =>
      `istio_requests_total{reporter="source",source_workload="gw",source_workload_namespace="demo",destination_service="frontend.demo.svc.cluster.local",destination_service_name="frontend",destination_service_namespace="demo",destination_workload="frontend",destination_workload_namespace="demo",response_code="200",connection_security_policy="mutual_tls"} ${n}`;
    const l4 = (n: number): string =>
      `istio_tcp_connections_opened_total{reporter="destination",source_workload="gw",source_workload_namespace="demo",destination_service="unknown",destination_workload="frontend",destination_workload_namespace="demo",response_flags="-",connection_security_policy="mutual_tls"} ${n}\nistio_tcp_connections_opened_total{reporter="destination",source_workload="gw",source_workload_namespace="demo",destination_service="unknown",destination_workload="db",destination_workload_namespace="demo",response_flags="-",connection_security_policy="mutual_tls"} ${n}`;
    const model = new GraphModel();
    model.ingest([scrape(gateway, 0, l7(0)), scrape(agent, 0, l4(0))]);
    const g = model.ingest([scrape(gateway, 10_000, l7(50)), scrape(agent, 10_000, l4(2))]);
    expect(g.edges.map((e) => `${e.protocol} ${e.source} -> ${e.target}`)).toEqual([
      'http service:frontend.demo.svc.cluster.local -> workload:demo/frontend',
      'http workload:demo/gw -> service:frontend.demo.svc.cluster.local',
      'tcp workload:demo/gw -> workload:demo/db',
    ]);
    expect(g.nodes.find((n) => n.id === 'workload:demo/gw')?.kind).toBe('gateway');
  });

  it('falls back to the source reporter when the destination agent failed to scrape', () => {
    const src: ScrapeTarget = { id: 'agent-a', role: 'agent' };
    const dst: ScrapeTarget = { id: 'agent-b', role: 'agent' };
    const srcText = (n: number): string => `istio_tcp_connections_opened_total{reporter="source",source_workload="a",source_workload_namespace="x",destination_service="unknown",destination_workload="b",destination_workload_namespace="y",connection_security_policy="mutual_tls",response_flags="-"} ${n}`;
    const dstText = (n: number): string => srcText(n).replace('reporter="source"', 'reporter="destination"');
    const model = new GraphModel();
    model.ingest([scrape(src, 0, srcText(0)), scrape(dst, 0, dstText(0))]);
    let g = model.ingest([scrape(src, 10_000, srcText(10)), scrape(dst, 10_000, dstText(10))]);
    expect(g.edges.map((e) => [e.source, e.target, e.reporter, e.rate])).toEqual([['workload:x/a', 'workload:y/b', 'destination', 1]]);
    g = model.ingest([scrape(src, 20_000, srcText(30)), { target: dst, timeMs: 20_000, error: 'connect ECONNREFUSED' }]);
    expect(g.edges.map((e) => [e.reporter, e.rate])).toEqual([['source', 1.5]]);
    expect(g.targets.find((s) => s.id === 'agent-b')).toMatchObject({ ok: false, error: 'connect ECONNREFUSED' });
  });
});

describe('pure helpers', () => {
  it('increase handles resets', () => {
    expect(increase(15, 10)).toBe(5);
    expect(increase(3, 10)).toBe(3);
    expect(increase(4, undefined)).toBe(4);
  });

  it('chooseReporters keeps the best reporter per flow', () => {
    const base = { protocol: 'http' as const, sourceNs: 'a', sourceName: 'gw', service: 's', destNs: 'b', destName: 'w' };
    expect(chooseReporters([{ ...base, reporter: 'source' }, { ...base, reporter: 'waypoint' }]).map((f) => f.reporter)).toEqual(['waypoint']);
    expect(chooseReporters([{ ...base, reporter: 'source' }, { ...base, destName: 'v', reporter: 'destination' }])).toHaveLength(2);
  });

  it('inferRole reads what a target reports', () => {
    expect(inferRole(parsePrometheusText('istio_requests_total{reporter="waypoint"} 1').families)).toBe('waypoint');
    expect(inferRole(parsePrometheusText('istio_requests_total{reporter="source"} 1').families)).toBe('gateway');
    expect(inferRole(parsePrometheusText('istio_tcp_connections_opened_total{reporter="source"} 1').families)).toBe('agent');
    expect(inferRole(parsePrometheusText('process_cpu_seconds_total 1').families)).toBe('unknown');
  });

  it('formats edge labels', () => {
    expect(edgeLabel({ protocol: 'http', rate: 12, errorRate: 0, p99Ms: 4.2, bytesPerSecond: 0, mtls: 'mutual_tls' })).toBe('12.0 rps · 0% err · p99 4 ms 🔒');
    expect(edgeLabel({ protocol: 'http', rate: 250, errorRate: 0.005, p99Ms: 1500, bytesPerSecond: 0, mtls: 'none' })).toBe('250 rps · 0.5% err · p99 1.5 s');
    expect(edgeLabel({ protocol: 'http', rate: 0.05, errorRate: undefined, p99Ms: undefined, bytesPerSecond: 0, mtls: 'unknown' })).toBe('0.05 rps');
    expect(formatBytes(999)).toBe('999 B/s');
    expect(formatBytes(1_250_000)).toBe('1.3 MB/s');
  });
});
