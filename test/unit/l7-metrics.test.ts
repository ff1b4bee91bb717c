import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { buildBaggage } from '../../src/hbone/headers.js';
import type { Endpoint } from '../../src/l7/config.js';
import { destinationOf, HISTOGRAM_BUCKETS, L7Metrics, peerFromBaggage, selfPeer, UNKNOWN_DESTINATION, UNKNOWN_PEER, type RequestOutcome } from '../../src/l7/l7-metrics.js';
import { HTTP_LABELS, TCP_LABELS } from '../../src/telemetry/istio-labels.js';

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/productpage';
const baggage = buildBaggage({ cluster: 'Kubernetes', namespace: 'shop', workloadType: 'Deployment', workloadName: 'productpage-v1', service: 'productpage', version: 'v1' });
const endpoint: Endpoint = {
  address: '10.244.1.5',
  port: 9080,
  identity: 'spiffe://cluster.local/ns/shop/sa/reviews',
  hbone: true,
  meta: { workloadName: 'reviews-v2', namespace: 'shop', canonicalName: 'reviews', canonicalRevision: 'v2' },
};

/** `name{labels} value` lines of a scrape, labels parsed. */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of m[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

describe('source labels', () => {
  it('come from the peer identity and the CONNECT baggage', () => {
    expect(peerFromBaggage(CLIENT, baggage)).toEqual({
      source_workload: 'productpage-v1',
      source_workload_namespace: 'shop',
      source_principal: CLIENT,
      source_app: 'productpage',
      source_version: 'v1',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      source_cluster: 'Kubernetes',
    });
  });
  it('without baggage: the principal and its namespace, the rest unknown', () => {
    expect(peerFromBaggage(CLIENT, undefined)).toMatchObject({ source_principal: CLIENT, source_workload_namespace: 'shop', source_workload: 'unknown', source_app: 'unknown', source_cluster: 'unknown' });
    expect(peerFromBaggage('', 'garbage')).toEqual(UNKNOWN_PEER);
  });
  it('a gateway is its own source', () => {
    expect(selfPeer({ principal: 'spiffe://cluster.local/ns/edge/sa/gw', workload: 'gw', namespace: 'edge', cluster: 'c1' })).toMatchObject({ source_workload: 'gw', source_workload_namespace: 'edge', source_canonical_service: 'gw', source_cluster: 'c1' });
  });
});

describe('destination labels', () => {
  it('from the cluster service and the endpoint meta', () => {
    expect(destinationOf('shop/reviews.shop.svc.cluster.local', endpoint, 'Kubernetes')).toEqual({
      destination_service: 'reviews.shop.svc.cluster.local',
      destination_service_namespace: 'shop',
      destination_service_name: 'reviews',
      destination_workload: 'reviews-v2',
      destination_workload_namespace: 'shop',
      destination_principal: 'spiffe://cluster.local/ns/shop/sa/reviews',
      destination_app: 'reviews',
      destination_version: 'v2',
      destination_canonical_service: 'reviews',
      destination_canonical_revision: 'v2',
      destination_cluster: 'Kubernetes',
    });
  });
  it('an endpoint without meta (or none chosen) is unknown where nothing says', () => {
    const { meta: _meta, ...bare } = endpoint;
    expect(destinationOf('shop/reviews.shop.svc.cluster.local', bare, 'K')).toMatchObject({ destination_service_name: 'reviews', destination_workload: 'unknown', destination_version: 'unknown', destination_principal: endpoint.identity });
    expect(destinationOf('shop/reviews.shop.svc.cluster.local', undefined, 'K')).toMatchObject({ destination_service: 'reviews.shop.svc.cluster.local', destination_principal: 'unknown', destination_cluster: 'unknown' });
    expect(destinationOf(undefined, undefined, undefined)).toEqual(UNKNOWN_DESTINATION);
  });
});

describe('L7Metrics', () => {
  const outcome = (over: Partial<RequestOutcome> = {}): RequestOutcome => ({
    peer: peerFromBaggage(CLIENT, baggage),
    destination: destinationOf('shop/reviews.shop.svc.cluster.local', endpoint, 'Kubernetes'),
    security: 'mutual_tls',
    protocol: 'http',
    status: 200,
    flags: '-',
    grpcStatus: undefined,
    durationMs: 3,
    requestBytes: 0,
    responseBytes: 120,
    ...over,
  });

  it('counts requests per label set with every HTTP label, and Envoy-default histogram buckets', async () => {
    const registry = new Registry();
    const m = new L7Metrics(registry, { reporter: 'waypoint' });
    const peer = peerFromBaggage(CLIENT, baggage);
    const destination = destinationOf('shop/reviews.shop.svc.cluster.local', endpoint, 'Kubernetes');
    for (const d of [0.2, 3, 7, 7000]) m.request(outcome({ peer, destination, durationMs: d }));
    m.request(outcome({ peer, destination, status: 403, flags: 'RBAC', responseBytes: 19 }));
    m.request(outcome({ status: 200 })); // other objects, same labels: the same series
    const text = await registry.metrics();
    const total = samples(text, 'istio_requests_total');
    expect(total).toHaveLength(2);
    const ok = total.find((s) => s.labels.response_code === '200')!;
    expect(ok.value).toBe(5);
    expect(Object.keys(ok.labels).sort()).toEqual([...HTTP_LABELS].sort());
    expect(ok.labels).toMatchObject({ reporter: 'waypoint', source_workload: 'productpage-v1', destination_version: 'v2', request_protocol: 'http', response_flags: '-', connection_security_policy: 'mutual_tls', grpc_response_status: 'unknown' });
    expect(total.find((s) => s.labels.response_code === '403')?.labels.response_flags).toBe('RBAC');

    const buckets = samples(text, 'istio_request_duration_milliseconds_bucket').filter((s) => s.labels.response_code === '200');
    expect(buckets.map((b) => b.labels.le)).toEqual([...HISTOGRAM_BUCKETS.map(String), '+Inf']);
    const le = (bound: string): number | undefined => buckets.find((b) => b.labels.le === bound)?.value;
    expect([le('0.5'), le('5'), le('10'), le('5000'), le('10000'), le('+Inf')]).toEqual([1, 3, 4, 4, 5, 5]);
    expect(samples(text, 'istio_request_duration_milliseconds_count').find((s) => s.labels.response_code === '200')?.value).toBe(5);
    expect(samples(text, 'istio_response_bytes_sum').find((s) => s.labels.response_code === '200')?.value).toBe(600);
    expect(samples(text, 'istio_request_bytes_count').find((s) => s.labels.response_code === '403')?.value).toBe(1);
    expect(text).toContain('# TYPE istio_request_bytes histogram');
    expect(text).toContain('# TYPE istio_requests_total counter');
  });

  it('gRPC: protocol grpc and the grpc status label; no response: code 0', async () => {
    const registry = new Registry();
    const m = new L7Metrics(registry, { reporter: 'source' });
    m.request(outcome({ protocol: 'grpc', grpcStatus: 14 }));
    m.request(outcome({ status: undefined, flags: 'DC' }));
    const total = samples(await registry.metrics(), 'istio_requests_total');
    expect(total.find((s) => s.labels.request_protocol === 'grpc')?.labels).toMatchObject({ reporter: 'source', grpc_response_status: '14', response_code: '200' });
    expect(total.find((s) => s.labels.response_flags === 'DC')?.labels.response_code).toBe('0');
  });

  it('folds label sets past the limit into overflow (reporter kept)', async () => {
    const registry = new Registry();
    const m = new L7Metrics(registry, { reporter: 'waypoint', maxSeries: 3 });
    for (let i = 0; i < 10; i++) m.request(outcome({ peer: peerFromBaggage(`spiffe://cluster.local/ns/n${i}/sa/s`, undefined) }));
    const total = samples(await registry.metrics(), 'istio_requests_total');
    expect(total).toHaveLength(4);
    expect(total.find((s) => s.labels.source_principal === 'overflow')).toMatchObject({ value: 7, labels: { reporter: 'waypoint', response_code: 'overflow' } });
    expect(m.folded.get('istio_requests_total')).toBe(7);
  });

  it('L4 streams: opened, closed and bytes with TCP labels', async () => {
    const registry = new Registry();
    const m = new L7Metrics(registry, { reporter: 'waypoint' });
    const tcp = { peer: peerFromBaggage(CLIENT, baggage), destination: destinationOf('shop/db.shop.svc.cluster.local', endpoint, 'K'), security: 'mutual_tls', flags: '-' };
    m.tcpOpened(tcp);
    m.tcpClosed(tcp, 5, 7);
    m.tcpOpened({ ...tcp, flags: 'RBAC' });
    m.tcpClosed({ ...tcp, flags: 'RBAC' }, 0, 0);
    const text = await registry.metrics();
    const opened = samples(text, 'istio_tcp_connections_opened_total');
    expect(opened).toHaveLength(2);
    expect(Object.keys(opened[0]!.labels).sort()).toEqual([...TCP_LABELS].sort());
    expect(opened.find((s) => s.labels.response_flags === '-')).toMatchObject({ value: 1, labels: { request_protocol: 'tcp', destination_service_name: 'db' } });
    expect(samples(text, 'istio_tcp_received_bytes_total').find((s) => s.labels.response_flags === '-')?.value).toBe(5);
    expect(samples(text, 'istio_tcp_sent_bytes_total').find((s) => s.labels.response_flags === '-')?.value).toBe(7);
    expect(samples(text, 'istio_tcp_connections_closed_total').find((s) => s.labels.response_flags === 'RBAC')?.value).toBe(1);
  });
});
