/**
 * The node agent's L4 telemetry without sockets: the label set of a connection (pure), the
 * counters' semantics (refused = opened + closed with its flags, bytes while live at each scrape
 * and the remainder at close, never backwards, the series guard), the denial ring, and the
 * access-log gate per local workload from the Telemetry map.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DenialLog } from '../../src/node-agent/telemetry/denials.js';
import { L4LabelCache, l4Labels, RESPONSE_FLAGS } from '../../src/node-agent/telemetry/l4-labels.js';
import { L4Metrics } from '../../src/node-agent/telemetry/l4-metrics.js';
import { L4Telemetry } from '../../src/node-agent/telemetry/l4-telemetry.js';
import type { Service, Workload } from '../../src/node-agent/state/types.js';
import { TCP_LABELS } from '../../src/telemetry/istio-labels.js';
import type { NamespaceTelemetry } from '../../src/telemetry/telemetry-config.js';

const client: Workload = {
  uid: 'Kubernetes//Pod/demo/client-7d9f-abcde',
  name: 'client-7d9f-abcde',
  namespace: 'demo',
  addresses: ['10.244.1.5'],
  tunnelProtocol: 'HBONE',
  serviceAccount: 'client',
  node: 'node1',
  workloadName: 'client',
  canonicalName: 'client',
  canonicalRevision: 'v1',
  services: {},
};
const reviews: Workload = {
  ...client,
  uid: 'Kubernetes//Pod/shop/reviews-v2-xyz',
  name: 'reviews-v2-xyz',
  namespace: 'shop',
  addresses: ['10.244.2.7'],
  serviceAccount: 'reviews',
  node: 'node2',
  workloadName: 'reviews-v2',
  canonicalName: 'reviews',
  canonicalRevision: 'v2',
  clusterId: 'east',
  trustDomain: 'example.org',
};
const service: Service = { name: 'reviews', namespace: 'shop', hostname: 'reviews.shop.svc.cluster.local', addresses: ['10.96.0.9'], ports: [{ servicePort: 9080, targetPort: 9080 }] };
const defaults = { trustDomain: 'cluster.local', clusterId: 'Kubernetes' };

/** The value of one series in the registry's text output, or undefined. */
async function sample(registry: Registry, metric: string, match: Record<string, string>): Promise<number | undefined> {
  const json = await registry.getMetricsAsJSON();
  const m = json.find((x) => x.name === metric);
  const v = (m?.values as Array<{ labels: Record<string, string>; value: number }> | undefined)?.find((s) => Object.entries(match).every(([k, val]) => s.labels[k] === val));
  return v?.value;
}

describe('l4Labels', () => {
  it('outbound through a service: reporter source, workload labels from the state, principals as SPIFFE URIs', () => {
    const labels = l4Labels({ reporter: 'source', source: client, destination: reviews, service, mtls: true, responseFlags: RESPONSE_FLAGS.none }, defaults);
    expect(Object.keys(labels).sort()).toEqual([...TCP_LABELS].sort());
    expect(labels).toEqual({
      reporter: 'source',
      source_workload: 'client',
      source_workload_namespace: 'demo',
      source_principal: 'spiffe://cluster.local/ns/demo/sa/client',
      source_app: 'client',
      source_version: 'v1',
      source_canonical_service: 'client',
      source_canonical_revision: 'v1',
      source_cluster: 'Kubernetes',
      destination_service: 'reviews.shop.svc.cluster.local',
      destination_service_namespace: 'shop',
      destination_service_name: 'reviews',
      destination_workload: 'reviews-v2',
      destination_workload_namespace: 'shop',
      destination_principal: 'spiffe://example.org/ns/shop/sa/reviews',
      destination_app: 'reviews',
      destination_version: 'v2',
      destination_canonical_service: 'reviews',
      destination_canonical_revision: 'v2',
      destination_cluster: 'east',
      request_protocol: 'tcp',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    });
  });

  it('inbound: the peer certificate’s identity wins; an unknown source stays unknown; plaintext has no principal and policy none', () => {
    const viaCert = l4Labels({ reporter: 'destination', sourceIdentity: 'spiffe://cluster.local/ns/other/sa/x', destination: reviews, mtls: true, responseFlags: RESPONSE_FLAGS.denied }, defaults);
    expect(viaCert).toMatchObject({ reporter: 'destination', source_workload: 'unknown', source_principal: 'spiffe://cluster.local/ns/other/sa/x', destination_workload: 'reviews-v2', destination_service: 'unknown', response_flags: 'DENY' });
    const plaintext = l4Labels({ reporter: 'destination', source: client, sourceIdentity: null, destination: reviews, mtls: false, responseFlags: RESPONSE_FLAGS.none }, defaults);
    expect(plaintext).toMatchObject({ source_workload: 'client', source_principal: 'unknown', connection_security_policy: 'none' });
  });

  it('falls back to the pod name without workloadName and to Istio’s defaults without canonical labels', () => {
    const bare: Workload = { ...client, workloadName: undefined, canonicalName: undefined, canonicalRevision: undefined } as unknown as Workload;
    delete (bare as Partial<Workload>).workloadName;
    expect(l4Labels({ reporter: 'source', source: bare, mtls: false, responseFlags: RESPONSE_FLAGS.noRoute }, defaults)).toMatchObject({
      source_workload: 'client-7d9f-abcde',
      source_app: 'client-7d9f-abcde',
      source_canonical_service: 'client-7d9f-abcde',
      source_version: 'latest',
      source_canonical_revision: 'latest',
      destination_workload: 'unknown',
      destination_principal: 'unknown',
      response_flags: 'NR',
    });
  });
});

describe('L4LabelCache', () => {
  const outbound = { reporter: 'source', source: client, destination: reviews, service, mtls: true, responseFlags: RESPONSE_FLAGS.none } as const;

  it('hands out one frozen set per connection shape, equal to l4Labels', () => {
    const cache = new L4LabelCache(defaults);
    const first = cache.labels(outbound);
    expect(first).toEqual(l4Labels(outbound, defaults));
    expect(Object.isFrozen(first)).toBe(true);
    expect(cache.labels({ ...outbound })).toBe(first);
  });

  it('tells apart every fact the labels depend on', () => {
    const cache = new L4LabelCache(defaults);
    const variants = [
      outbound,
      { ...outbound, reporter: 'destination' as const },
      { ...outbound, sourceIdentity: 'spiffe://cluster.local/ns/demo/sa/other' },
      { ...outbound, sourceIdentity: null },
      { ...outbound, destinationIdentity: 'spiffe://cluster.local/ns/shop/sa/waypoint' },
      { ...outbound, mtls: false },
      { ...outbound, responseFlags: RESPONSE_FLAGS.denied },
      { ...outbound, service: undefined },
      { ...outbound, source: undefined },
      { ...outbound, destination: undefined },
    ];
    const sets = variants.map((f) => cache.labels(f));
    expect(new Set(sets).size).toBe(variants.length);
    variants.forEach((f, i) => expect(sets[i]).toEqual(l4Labels(f, defaults)));
    // undefined identity (the state's) and null (a plaintext peer: none) are different sets.
    expect(sets[3]!.source_principal).toBe('unknown');
    expect(sets[0]!.source_principal).toBe('spiffe://cluster.local/ns/demo/sa/client');
  });

  it('builds a new set for a new workload object (a config change), even with the same uid', () => {
    const cache = new L4LabelCache(defaults);
    const before = cache.labels(outbound);
    const relabelled: Workload = { ...reviews, canonicalRevision: 'v3' };
    const after = cache.labels({ ...outbound, destination: relabelled });
    expect(after).not.toBe(before);
    expect(after.destination_version).toBe('v3');
  });

  it(`keeps at most ${L4LabelCache.MAX_SHAPES} shapes per workload pair and service, dropping the oldest`, () => {
    const cache = new L4LabelCache(defaults);
    const identity = (i: number): string => `spiffe://cluster.local/ns/demo/sa/peer-${i}`;
    const first = cache.labels({ ...outbound, sourceIdentity: identity(0) });
    for (let i = 1; i <= L4LabelCache.MAX_SHAPES; i++) cache.labels({ ...outbound, sourceIdentity: identity(i) });
    const last = cache.labels({ ...outbound, sourceIdentity: identity(L4LabelCache.MAX_SHAPES) });
    expect(cache.labels({ ...outbound, sourceIdentity: identity(L4LabelCache.MAX_SHAPES) })).toBe(last);
    const again = cache.labels({ ...outbound, sourceIdentity: identity(0) });
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });
});

describe('L4Metrics', () => {
  const labels = l4Labels({ reporter: 'source', source: client, destination: reviews, service, mtls: true, responseFlags: RESPONSE_FLAGS.none }, defaults);

  it('counts a refused connection opened and closed on the same series', async () => {
    const registry = new Registry();
    const m = new L4Metrics(registry);
    m.refused({ ...labels, response_flags: 'DENY' });
    expect(await sample(registry, 'istio_tcp_connections_opened_total', { response_flags: 'DENY' })).toBe(1);
    expect(await sample(registry, 'istio_tcp_connections_closed_total', { response_flags: 'DENY' })).toBe(1);
    expect(await sample(registry, 'istio_tcp_connections_opened_total', { response_flags: '-' })).toBeUndefined();
  });

  it('counts bytes of a live connection at each scrape and the rest at close, never backwards', async () => {
    const registry = new Registry();
    const m = new L4Metrics(registry);
    let live = { received: 10, sent: 100 };
    const meter = m.open(labels, () => live);
    expect(await sample(registry, 'istio_tcp_connections_opened_total', { source_workload: 'client' })).toBe(1);
    expect(await sample(registry, 'istio_tcp_connections_closed_total', { source_workload: 'client' })).toBeUndefined();
    expect(await sample(registry, 'istio_tcp_received_bytes_total', { source_workload: 'client' })).toBe(10);
    expect(await sample(registry, 'istio_tcp_sent_bytes_total', { source_workload: 'client' })).toBe(100);
    live = { received: 15, sent: 300 };
    expect(await sample(registry, 'istio_tcp_sent_bytes_total', { source_workload: 'client' })).toBe(300);
    expect(m.liveCount).toBe(1);
    // The final totals are below what the socket counters said for `sent` (bytes still queued): no decrease.
    meter.close({ received: 20, sent: 290 });
    meter.close({ received: 999, sent: 999 });
    expect(m.liveCount).toBe(0);
    expect(await sample(registry, 'istio_tcp_received_bytes_total', { source_workload: 'client' })).toBe(20);
    expect(await sample(registry, 'istio_tcp_sent_bytes_total', { source_workload: 'client' })).toBe(300);
    expect(await sample(registry, 'istio_tcp_connections_closed_total', { source_workload: 'client' })).toBe(1);
  });

  it('counts equal label sets on one series, whether the same object or copies', async () => {
    const registry = new Registry();
    const m = new L4Metrics(registry);
    m.refused(labels);
    m.refused(labels);
    m.refused({ ...labels });
    m.open(labels, () => ({ received: 0, sent: 0 })).close({ received: 1, sent: 2 });
    expect(m.seriesCount).toBe(1);
    expect(await sample(registry, 'istio_tcp_connections_opened_total', { source_workload: 'client' })).toBe(4);
    expect(await sample(registry, 'istio_tcp_connections_closed_total', { source_workload: 'client' })).toBe(4);
  });

  it('folds label sets beyond maxSeries into overflow, keeping the reporter', async () => {
    const registry = new Registry();
    const m = new L4Metrics(registry, { maxSeries: 2 });
    for (const name of ['a', 'b', 'c', 'd']) m.refused({ ...labels, source_workload: name });
    expect(await sample(registry, 'istio_tcp_connections_opened_total', { source_workload: 'overflow', reporter: 'source' })).toBe(2);
    expect(m.guard.folded.get('istio_tcp')).toBe(2);
    // A folded set seen again (the same object, as L4LabelCache hands out) stays folded.
    const late = { ...labels, source_workload: 'e' };
    m.refused(late);
    m.refused(late);
    expect(await sample(registry, 'istio_tcp_connections_opened_total', { source_workload: 'overflow', reporter: 'source' })).toBe(4);
    expect(await sample(registry, 'istio_tcp_connections_opened_total', { source_workload: 'e' })).toBeUndefined();
  });
});

describe('DenialLog', () => {
  it('keeps the last N, newest first', () => {
    const log = new DenialLog(3);
    for (let i = 0; i < 5; i++) log.record({ direction: 'inbound', src: `10.0.0.${i}`, dst: '10.0.1.1:80', sourceIdentity: null, policy: 'demo/deny', rule: '0: any', reason: `r${i}` });
    expect(log.size).toBe(3);
    expect(log.total).toBe(5);
    expect(log.list().map((r) => r.reason)).toEqual(['r4', 'r3', 'r2']);
    expect(log.list()[0]?.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(() => new DenialLog(0)).toThrow(RangeError);
  });
});

describe('L4Telemetry access log', () => {
  function setup(telemetry: Map<string, NamespaceTelemetry>) {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _e, done) {
          for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
          done();
        },
      }),
    );
    const t = new L4Telemetry({ registry: new Registry(), clusterId: 'Kubernetes', telemetry: () => telemetry });
    const connect = (reporter: 'source' | 'destination', local: Workload) => {
      const c = t.connection(log, reporter, 'cluster.local', { direction: reporter === 'source' ? 'outbound' : 'inbound', 'src.addr': '10.244.1.5:40000', 'dst.addr': '10.244.2.7:9080', bytes_sent: 0, bytes_recv: 0, duration: '0ms' });
      if (reporter === 'source') c.setSource(local, undefined);
      else c.setDestination(local);
      c.mtls = true;
      return c;
    };
    return { lines, t, connect };
  }
  const settings = (enabled: boolean, filter?: string) => ({ accessLogging: { enabled, ...(filter ? { filter } : {}) }, sources: ['x/y'] });

  it('logs by default, with the local pod’s view of bytes; a denial carries policy and rule and lands in the ring', () => {
    const { lines, t, connect } = setup(new Map());
    const c = connect('destination', reviews);
    c.established(() => ({ received: 0, sent: 0 }));
    c.finished({ received: 5, sent: 50 });
    expect(lines[0]).toMatchObject({ msg: 'connection complete', direction: 'inbound', 'dst.workload': reviews.uid, 'dst.namespace': 'shop', bytes_sent: 50, bytes_recv: 5 });
    const d = connect('destination', reviews);
    d.refused({ flags: RESPONSE_FLAGS.denied, error: 'refused (401)', reason: 'denied by demo/deny', denial: { policy: 'shop/deny-all', rule: '0: any' }, msg: 'connection refused' });
    expect(lines[1]).toMatchObject({ msg: 'connection refused', response_flags: 'DENY', policy: 'shop/deny-all', rule: '0: any', error: 'refused (401)' });
    expect(t.denials.list()[0]).toMatchObject({ direction: 'inbound', policy: 'shop/deny-all', destinationWorkload: reviews.uid });
  });

  it('follows the local pod’s Telemetry: disabled for its namespace, a filter for errors only, the workload’s own entry', () => {
    const telemetry = new Map<string, NamespaceTelemetry>([['shop', { namespace: 'shop', settings: settings(false), workloads: { [client.uid]: settings(true) } }]]);
    const { lines, connect } = setup(telemetry);
    // The destination pod's namespace has logging off: nothing.
    connect('destination', reviews).finished({ received: 1, sent: 1 });
    expect(lines).toHaveLength(0);
    // Outbound from client (namespace demo has no entry; root neither): the default logs.
    connect('source', client).finished({ received: 1, sent: 1 });
    expect(lines).toHaveLength(1);
    // A filter on the namespace: only refused connections.
    telemetry.set('demo', { namespace: 'demo', settings: settings(true, 'response.flags != "-"') });
    connect('source', client).finished({ received: 1, sent: 1 });
    expect(lines).toHaveLength(1);
    connect('source', client).refused({ flags: RESPONSE_FLAGS.connectFailure, error: 'refused', reason: 'connect failed' });
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ response_flags: 'CONNECT' });
  });
});
