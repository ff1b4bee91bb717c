import { describe, expect, it } from 'vitest';
import { accessLine, accessLogPolicy, admitted, type AccessRecord } from '../../src/l7/access-log.js';
import type { WaypointConfig } from '../../src/l7/config.js';

const record = (over: Partial<AccessRecord> = {}): AccessRecord => ({
  protocol: 'HTTP/1.1',
  method: 'GET',
  authority: 'reviews.shop.svc.cluster.local',
  path: '/admin',
  status: 403,
  route: 'HTTPRoute/shop/reviews#0',
  cluster: 'outbound|80||reviews.shop.svc.cluster.local',
  upstreamHost: '10.244.1.5:9080',
  durationMs: 1.6,
  responseFlags: 'RBAC',
  sourceIdentity: 'spiffe://cluster.local/ns/shop/sa/productpage',
  clientAddress: '10.244.0.7',
  destination: '10.96.0.20:80',
  requestId: 'r-1',
  authz: 'shop/deny-admin rule 0',
  bytesReceived: 0,
  bytesSent: 19,
  service: 'reviews.shop.svc.cluster.local',
  ...over,
});

const config = (accessLogging?: { enabled: boolean; filter?: string }): WaypointConfig => ({ namespace: 'shop', name: 'waypoint', identity: 'spiffe://cluster.local/ns/shop/sa/waypoint', services: [], clusters: [], ...(accessLogging ? { telemetry: { accessLogging, sources: [] } } : {}) });

describe('access line', () => {
  it('has Istio / Envoy field names beside the record’s own', () => {
    expect(accessLine(record())).toMatchObject({
      response_code: 403,
      response_flags: 'RBAC',
      route_name: 'HTTPRoute/shop/reviews#0',
      upstream_host: '10.244.1.5:9080',
      upstream_cluster: 'outbound|80||reviews.shop.svc.cluster.local',
      duration: 2,
      bytes_received: 0,
      bytes_sent: 19,
      request_id: 'r-1',
      'src.addr': '10.244.0.7',
      'src.identity': 'spiffe://cluster.local/ns/shop/sa/productpage',
      'dst.addr': '10.96.0.20:80',
      'dst.service': 'reviews.shop.svc.cluster.local',
      authz_policy: 'shop/deny-admin rule 0',
      status: 403,
      responseFlags: 'RBAC',
      durationMs: 1.6,
    });
  });
  it('names the policy only on denials; trace id when traced; no response → code 0', () => {
    const allowed = accessLine(record({ status: 200, responseFlags: '-', authz: 'shop/allow rule 1', traceId: 'ab'.repeat(16) }));
    expect(allowed.authz_policy).toBeUndefined();
    expect(allowed.trace_id).toBe('ab'.repeat(16));
    const { status: _status, ...gone } = record({ responseFlags: 'DC' });
    expect(accessLine(gone).response_code).toBe(0);
  });
});

describe('access log policy', () => {
  const never = (): never => {
    throw new Error('attributes built without a filter');
  };
  it('no Telemetry or no filter: every entry, without building attributes', () => {
    expect(admitted(accessLogPolicy(undefined, () => undefined), never)).toBe(true);
    expect(admitted(accessLogPolicy(config(), () => undefined), never)).toBe(true);
    expect(admitted(accessLogPolicy(config({ enabled: true }), () => undefined), never)).toBe(true);
  });
  it('disabled: nothing', () => {
    expect(admitted(accessLogPolicy(config({ enabled: false, filter: 'true' }), () => undefined), never)).toBe(false);
  });
  it('a filter decides, compiled once per config object', () => {
    const c = config({ enabled: true, filter: 'response.code >= 400' });
    const p = accessLogPolicy(c, () => undefined);
    expect(accessLogPolicy(c, () => undefined)).toBe(p);
    expect(admitted(p, () => ({ 'response.code': 200 }))).toBe(false);
    expect(admitted(p, () => ({ 'response.code': 503 }))).toBe(true);
    expect(admitted(p, () => ({}))).toBe(false);
  });
  it('an invalid filter logs everything and is reported once per config', () => {
    const reports: string[] = [];
    const c = config({ enabled: true, filter: 'response.code >' });
    for (let i = 0; i < 3; i++) expect(admitted(accessLogPolicy(c, (filter, message) => reports.push(`${filter}: ${message}`)), () => ({ 'response.code': 200 }))).toBe(true);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatch(/column 16: expected a literal/);
  });
});
