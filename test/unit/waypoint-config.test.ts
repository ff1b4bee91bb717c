/**
 * computeWaypointConfigs: the seed canary (DestinationRule v1/v2 + VirtualService 90/10 + the
 * beta-tester header rule) and its HTTPRoute equivalent become the waypoint's route table with
 * the right endpoints; every kind of bad input becomes a condition naming the field, and the last
 * valid translation keeps being served.
 */
import { describe, expect, it } from 'vitest';
import type { MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import { NO_ROUTE_NAME, computeWaypointConfigs, endpointMeta, podLocality, portProtocol, type LastValid } from '../../src/controller/translate/waypoint-config.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import { decodeWaypointConfig, encodeWaypointConfig } from '../../src/xds/waypoint-codec.js';
import { BACKEND, CANARY_DR_SPEC, CANARY_VS_SPEC, demoResources, demoView, destinationRule, httpRoute, namespace, pod, service, TRUST_DOMAIN, virtualService } from '../helpers/route-fixtures.js';

const NO_ROUTE = { name: NO_ROUTE_NAME, matches: [], action: { kind: 'direct-response', status: 404, body: 'no route matched\n' } };
/** Istio's default retry policy, which every forwarding route without `retries` gets. */
const DEFAULT_RETRIES = { attempts: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], otherHost: true };
const V1 = `outbound|80|v1|${BACKEND}`;
const V2 = `outbound|80|v2|${BACKEND}`;
const ALL = `outbound|80||${BACKEND}`;

function compute(view: MeshView, lastValid?: ReadonlyMap<string, LastValid>) {
  return computeWaypointConfigs(view, demoResources(view), { trustDomain: TRUST_DOMAIN, ...(lastValid ? { lastValid } : {}) });
}

const config = (result: ReturnType<typeof compute>): WaypointConfig => {
  const c = result.configs.get('demo/waypoint');
  if (!c) throw new Error('no config for demo/waypoint');
  return c;
};

const backendPort = (c: WaypointConfig) => c.services.find((s) => s.hostname === BACKEND)?.ports.find((p) => p.port === 80);

describe('the Istio canary', () => {
  const view = demoView({ destinationRules: [destinationRule(CANARY_DR_SPEC)], virtualServices: [virtualService(CANARY_VS_SPEC)] });
  const result = compute(view);
  const c = config(result);

  it('binds the demo services (not the waypoint’s own) to the namespace’s waypoint', () => {
    expect(c).toMatchObject({ namespace: 'demo', name: 'waypoint', identity: 'spiffe://cluster.local/ns/demo/sa/waypoint' });
    expect(c.services.map((s) => s.key)).toEqual([`demo/${BACKEND}`, 'demo/frontend.demo.svc.cluster.local']);
    expect(c.services[0]).toMatchObject({ namespace: 'demo', hostname: BACKEND, addresses: ['10.96.0.10'] });
  });

  it('routes beta-testers to v2 and splits the rest 90/10, first match first', () => {
    expect(backendPort(c)).toEqual({
      port: 80,
      protocol: 'HTTP',
      defaultCluster: ALL,
      defaultRetries: DEFAULT_RETRIES,
      routes: [
        {
          name: 'VirtualService/demo/backend#0',
          matches: [{ headers: [{ name: 'user-group', match: { kind: 'exact', value: 'beta-tester' } }] }],
          action: { kind: 'forward', backends: [{ cluster: V2, weight: 100 }] },
          retries: DEFAULT_RETRIES,
        },
        {
          name: 'VirtualService/demo/backend#1',
          matches: [],
          action: {
            kind: 'forward',
            backends: [
              { cluster: V1, weight: 90 },
              { cluster: V2, weight: 10 },
            ],
          },
          retries: DEFAULT_RETRIES,
        },
        NO_ROUTE,
      ],
    });
  });

  it('gives each subset cluster the pods with its label, the default cluster all of them', () => {
    const byName = new Map(c.clusters.map((cl) => [cl.name, cl]));
    const endpoint = (ip: string, name: string) => ({ address: ip, port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/backend', hbone: true, workload: `uid-${name}`, meta: { workloadName: name, namespace: 'demo', canonicalName: 'backend', canonicalRevision: name.slice('backend-'.length) } });
    expect(byName.get(V1)).toEqual({ name: V1, service: `demo/${BACKEND}`, port: 80, subset: 'v1', lb: 'LEAST_REQUEST', endpoints: [endpoint('10.0.0.11', 'backend-v1')] });
    expect(byName.get(V2)?.endpoints).toEqual([endpoint('10.0.0.12', 'backend-v2')]);
    expect(byName.get(ALL)?.endpoints.map((e) => e.address)).toEqual(['10.0.0.11', '10.0.0.12']);
    expect(byName.has('outbound|80||frontend.demo.svc.cluster.local')).toBe(true);
  });

  it('round-trips through the codec (the waypoint would accept it)', () => {
    expect(decodeWaypointConfig(encodeWaypointConfig(c))).toEqual(c);
  });

  it('accepts both objects and says where they apply', () => {
    expect(result.status.get('VirtualService/demo/backend')).toEqual([
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: `VirtualService demo/backend applied by waypoint demo/waypoint for ${BACKEND}` },
    ]);
    expect(result.status.get('DestinationRule/demo/backend')?.[0]).toMatchObject({ status: 'True', message: expect.stringContaining('demo/waypoint') });
  });

  it('leaves unhealthy and not-yet-member pods out of every cluster', () => {
    const v = demoView({
      destinationRules: [destinationRule(CANARY_DR_SPEC)],
      virtualServices: [virtualService(CANARY_VS_SPEC)],
      pods: [pod('backend-v1', '10.0.0.11', { app: 'backend', version: 'v1' }, { ready: false }), pod('backend-v2', '10.0.0.12', { app: 'backend', version: 'v2' })],
    });
    const byName = new Map(config(compute(v)).clusters.map((cl) => [cl.name, cl]));
    expect(byName.get(V1)?.endpoints).toEqual([]);
    expect(byName.get(ALL)?.endpoints.map((e) => e.address)).toEqual(['10.0.0.12']);
  });
});

describe('the HTTPRoute equivalent', () => {
  const services = [
    ...demoView().services,
    service('backend-v1', '10.96.0.11', { app: 'backend', version: 'v1' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
    service('backend-v2', '10.96.0.12', { app: 'backend', version: 'v2' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
  ];
  const route = httpRoute({
    parentRefs: [{ group: '', kind: 'Service', name: 'backend', port: 80 }],
    rules: [
      { backendRefs: [{ name: 'backend-v1', port: 80, weight: 90 }, { name: 'backend-v2', port: 80, weight: 10 }] },
      { matches: [{ headers: [{ name: 'user-group', value: 'beta-tester' }] }], backendRefs: [{ name: 'backend-v2', port: 80 }] },
    ],
  });
  const view = demoView({ services, httpRoutes: [route] });
  const result = compute(view);
  const c = config(result);

  it('orders by precedence (the header match first, though written second) and splits by weight', () => {
    const routes = backendPort(c)?.routes ?? [];
    expect(routes.map((r) => r.name)).toEqual(['HTTPRoute/demo/backend#1', 'HTTPRoute/demo/backend#0', NO_ROUTE_NAME]);
    expect(routes[0]?.action).toEqual({ kind: 'forward', backends: [{ cluster: 'outbound|80||backend-v2.demo.svc.cluster.local', weight: 1 }] });
    expect(routes[1]?.action).toEqual({
      kind: 'forward',
      backends: [
        { cluster: 'outbound|80||backend-v1.demo.svc.cluster.local', weight: 90 },
        { cluster: 'outbound|80||backend-v2.demo.svc.cluster.local', weight: 10 },
      ],
    });
    const v2 = c.clusters.find((cl) => cl.name === 'outbound|80||backend-v2.demo.svc.cluster.local');
    expect(v2?.endpoints.map((e) => e.address)).toEqual(['10.0.0.12']);
    expect(decodeWaypointConfig(encodeWaypointConfig(c))).toEqual(c);
  });

  it('reports Accepted and ResolvedRefs', () => {
    expect(result.status.get('HTTPRoute/demo/backend')?.map((s) => [s.type, s.status, s.reason])).toEqual([
      ['Accepted', 'True', 'Accepted'],
      ['ResolvedRefs', 'True', 'ResolvedRefs'],
    ]);
  });

  it('wins over a VirtualService for the same host, and the VirtualService is told', () => {
    const both = compute(demoView({ services, httpRoutes: [route], destinationRules: [destinationRule(CANARY_DR_SPEC)], virtualServices: [virtualService(CANARY_VS_SPEC)] }));
    expect(backendPort(config(both))?.routes.map((r) => r.name)).toEqual(['HTTPRoute/demo/backend#1', 'HTTPRoute/demo/backend#0', NO_ROUTE_NAME]);
    expect(both.status.get('VirtualService/demo/backend')?.find((s) => s.type === 'Warning')?.message).toContain(`${BACKEND} has Gateway API routes (HTTPRoute/GRPCRoute), which take precedence`);
  });

  it('applies to every bound service when attached to the waypoint Gateway', () => {
    const r = compute(demoView({ services, httpRoutes: [httpRoute({ parentRefs: [{ name: 'waypoint' }], rules: [{ filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Via', value: 'wp' }] } }], backendRefs: [{ name: 'backend-v1', port: 80 }] }] })] }));
    const cfg = config(r);
    for (const s of cfg.services) expect(s.ports[0]?.routes.map((x) => x.requestHeaders)).toEqual([{ set: { 'x-via': 'wp' } }, undefined]);
    expect(cfg.services.length).toBeGreaterThan(1);
  });

  it('ignores routes attached only to non-waypoint Gateways (ingress: not ours)', () => {
    const r = compute(demoView({ httpRoutes: [httpRoute({ parentRefs: [{ name: 'ingress' }], rules: [{ backendRefs: [{ name: 'backend', port: 80 }] }] })] }));
    expect(r.status.has('HTTPRoute/demo/backend')).toBe(false);
    expect(backendPort(config(r))?.routes).toEqual([]);
  });
});

describe('bad input: a condition naming the problem; the rest keeps working', () => {
  const dr = destinationRule(CANARY_DR_SPEC);
  const vsWith = (rule: unknown, generation = 2) => virtualService({ hosts: ['backend'], http: [rule] }, 'backend', { generation });
  const cases: Array<[string, unknown, string, string]> = [
    ['a nonexistent subset', { route: [{ destination: { host: 'backend', subset: 'v3' } }] }, 'InvalidDestination', 'spec.http[0].route[0].destination.subset: subset "v3" not defined in DestinationRule demo/backend'],
    ['a nonexistent service', { route: [{ destination: { host: 'nope' } }] }, 'InvalidDestination', 'spec.http[0].route[0].destination.host: service nope.demo.svc.cluster.local not found'],
    ['a malformed regex', { match: [{ uri: { regex: '/api/(' } }], route: [{ destination: { host: 'backend' } }] }, 'InvalidRegex', 'spec.http[0].match[0].uri.regex: "/api/(" is not a valid regular expression'],
    [
      'a weight total of 0',
      {
        route: [
          { destination: { host: 'backend', subset: 'v1' }, weight: 0 },
          { destination: { host: 'backend', subset: 'v2' }, weight: 0 },
        ],
      },
      'InvalidWeights',
      'spec.http[0].route: the weights total 0: no destination can be chosen',
    ],
    ['an invalid redirect code', { redirect: { uri: '/new', redirectCode: 399 } }, 'InvalidRedirect', 'spec.http[0].redirect.redirectCode: 399 is not a redirect code (301, 302, 303, 307, 308)'],
    ['a malformed timeout', { timeout: 'soon', route: [{ destination: { host: 'backend' } }] }, 'InvalidDuration', 'spec.http[0].timeout: "soon" is not a duration (e.g. "1.5s")'],
  ];

  it.each(cases)('%s → Accepted=False and default routes when never valid', (_what, rule, reason, message) => {
    const r = compute(demoView({ destinationRules: [dr], virtualServices: [vsWith(rule)] }));
    expect(r.status.get('VirtualService/demo/backend')).toEqual([{ type: 'Accepted', status: 'False', reason, message: `${message}; nothing of it is applied (no earlier valid version)` }]);
    const port = backendPort(config(r));
    expect(port?.routes).toEqual([]);
    expect(port?.defaultCluster).toBe(ALL);
    expect(r.valid.has('VirtualService/demo/backend')).toBe(false);
  });

  it.each(cases)('%s after a valid version → that version keeps being served', (_what, rule, reason, message) => {
    const first = compute(demoView({ destinationRules: [dr], virtualServices: [virtualService(CANARY_VS_SPEC)] }));
    const good = backendPort(config(first))?.routes;
    const second = compute(demoView({ destinationRules: [dr], virtualServices: [vsWith(rule)] }), first.valid);
    expect(backendPort(config(second))?.routes).toEqual(good);
    expect(second.status.get('VirtualService/demo/backend')?.[0]).toEqual({
      type: 'Accepted',
      status: 'False',
      reason,
      message: `${message}; the waypoint keeps serving the last valid version of this VirtualService (generation 1)`,
    });
    expect(second.valid.get('VirtualService/demo/backend')).toBe(first.valid.get('VirtualService/demo/backend'));
    // The subset clusters still have their endpoints.
    expect(config(second).clusters.find((c) => c.name === V2)?.endpoints.map((e) => e.address)).toEqual(['10.0.0.12']);
  });

  it('does not fall back on the translation of a deleted-and-recreated object (another uid)', () => {
    const first = compute(demoView({ destinationRules: [dr], virtualServices: [virtualService(CANARY_VS_SPEC)] }));
    const recreated = virtualService({ hosts: ['backend'], http: [cases[0]?.[1]] }, 'backend', { uid: 'another' });
    const second = compute(demoView({ destinationRules: [dr], virtualServices: [recreated] }), first.valid);
    expect(backendPort(config(second))?.routes).toEqual([]);
  });

  it('an HTTPRoute with a missing backend: Accepted=False and ResolvedRefs=False/BackendNotFound', () => {
    const r = compute(demoView({ httpRoutes: [httpRoute({ parentRefs: [{ group: '', kind: 'Service', name: 'backend' }], rules: [{ backendRefs: [{ name: 'nope', port: 80 }] }] })] }));
    expect(r.status.get('HTTPRoute/demo/backend')).toEqual([
      { type: 'Accepted', status: 'False', reason: 'InvalidDestination', message: 'spec.rules[0].backendRefs[0].host: service nope.demo.svc.cluster.local not found; nothing of it is applied (no earlier valid version)' },
      { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: 'spec.rules[0].backendRefs[0].host: service nope.demo.svc.cluster.local not found' },
    ]);
    expect(backendPort(config(r))?.routes).toEqual([]);
  });

  it('a DestinationRule made invalid keeps its last valid subsets', () => {
    const first = compute(demoView({ destinationRules: [dr], virtualServices: [virtualService(CANARY_VS_SPEC)] }));
    const broken = destinationRule({ host: 'backend', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v1' }] });
    const second = compute(demoView({ destinationRules: [broken], virtualServices: [virtualService(CANARY_VS_SPEC)] }), first.valid);
    expect(second.status.get('DestinationRule/demo/backend')?.[0]).toMatchObject({ status: 'False', reason: 'InvalidSpec', message: expect.stringContaining('spec.subsets[1].name: duplicate subset "v1"; the waypoint keeps serving') });
    expect(second.status.get('VirtualService/demo/backend')?.[0]?.status).toBe('True');
    expect(config(second).clusters.find((c) => c.name === V2)?.endpoints).toHaveLength(1);
  });

  it('carries retries and fault (no warning), and still routes', () => {
    const r = compute(demoView({ destinationRules: [dr], virtualServices: [vsWith({ retries: { attempts: 3, retryOn: '5xx' }, fault: { abort: { httpStatus: 503, percentage: { value: 20 } } }, route: [{ destination: { host: 'backend' } }] })] }));
    expect(r.status.get('VirtualService/demo/backend')).toEqual([{ type: 'Accepted', status: 'True', reason: 'Accepted', message: `VirtualService demo/backend applied by waypoint demo/waypoint for ${BACKEND}` }]);
    const routes = backendPort(config(r))?.routes ?? [];
    expect(routes.map((x) => x.name)).toEqual(['VirtualService/demo/backend#0', NO_ROUTE_NAME]);
    expect(routes[0]).toMatchObject({ retries: { attempts: 3, retryOn: ['5xx'], otherHost: true }, fault: { abort: { percent: 20, httpStatus: 503 } } });
  });

  it('a VirtualService for a service without a waypoint is valid but not in effect', () => {
    const view = demoView({ namespaces: [namespace('demo', { 'istio.io/dataplane-mode': 'ambient' })], virtualServices: [virtualService({ hosts: ['backend'], http: [{ route: [{ destination: { host: 'backend' } }] }] })] });
    const r = compute(view);
    expect(r.status.get('VirtualService/demo/backend')?.[0]?.message).toContain('not in effect: no service it routes is bound to a waypoint');
    expect(config(r).services).toEqual([]);
  });

  it('the older of two VirtualServices for a host wins; the other is told', () => {
    const older = virtualService({ hosts: ['backend'], http: [{ route: [{ destination: { host: 'backend', subset: 'v1' } }] }] }, 'older', { creationTimestamp: '2025-01-01T00:00:00Z' });
    const newer = virtualService({ hosts: ['backend.demo.svc.cluster.local'], http: [{ route: [{ destination: { host: 'backend', subset: 'v2' } }] }] }, 'newer');
    const r = compute(demoView({ destinationRules: [dr], virtualServices: [newer, older] }));
    expect(backendPort(config(r))?.routes.map((x) => x.name)).toEqual(['VirtualService/demo/older#0', NO_ROUTE_NAME]);
    expect(r.status.get('VirtualService/demo/newer')?.[1]?.message).toContain('is routed by VirtualService demo/older, which takes precedence (older)');
  });
});

describe('resilience: Istio’s default retries, DestinationRule policies on clusters', () => {
  const ruleWith = (spec: Record<string, unknown>) => destinationRule({ ...CANARY_DR_SPEC, ...spec });
  const only = (http: unknown[]) => virtualService({ hosts: ['backend'], http });

  it('a route without retries and the fallback get Istio’s default; attempts 0 removes them; redirects get none', () => {
    const vs = only([
      { match: [{ uri: { prefix: '/off' } }], retries: { attempts: 0 }, route: [{ destination: { host: 'backend' } }] },
      { match: [{ uri: { prefix: '/moved' } }], redirect: { uri: '/new' } },
      { route: [{ destination: { host: 'backend' } }] },
    ]);
    const c = config(compute(demoView({ virtualServices: [vs] })));
    const port = backendPort(c);
    expect(port?.routes.map((r) => [r.name, r.retries])).toEqual([
      ['VirtualService/demo/backend#0', undefined],
      ['VirtualService/demo/backend#1', undefined],
      ['VirtualService/demo/backend#2', DEFAULT_RETRIES],
      [NO_ROUTE_NAME, undefined],
    ]);
    expect(port?.defaultRetries).toEqual(DEFAULT_RETRIES);
    // A service without any route still retries through the fallback.
    expect(c.services.find((s) => s.hostname === 'frontend.demo.svc.cluster.local')?.ports[0]).toMatchObject({ routes: [], defaultRetries: DEFAULT_RETRIES });
    expect(decodeWaypointConfig(encodeWaypointConfig(c))).toEqual(c);
  });

  it('HTTPRoute rules without retry get the default too', () => {
    const r = compute(demoView({ httpRoutes: [httpRoute({ parentRefs: [{ group: '', kind: 'Service', name: 'backend' }], rules: [{ backendRefs: [{ name: 'backend', port: 80 }] }] })] }));
    expect(backendPort(config(r))?.routes[0]?.retries).toEqual(DEFAULT_RETRIES);
  });

  it('under consistent hashing a default retry stays on the same endpoint', () => {
    const c = config(compute(demoView({ destinationRules: [ruleWith({ trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } })], virtualServices: [virtualService(CANARY_VS_SPEC)] })));
    const port = backendPort(c);
    expect(port?.routes.slice(0, 2).map((r) => r.retries?.otherHost)).toEqual([false, false]);
    expect(port?.defaultRetries?.otherHost).toBe(false);
  });

  it('fills hash, connectionPool and outlierDetection per (port, subset); the codec accepts them', () => {
    const rule = ruleWith({
      trafficPolicy: {
        connectionPool: { tcp: { maxConnections: 1, connectTimeout: '1s' }, http: { http1MaxPendingRequests: 1, maxRetries: 3 } },
        outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '5s', maxEjectionPercent: 100 },
      },
      subsets: [
        { name: 'v1', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'sticky', ttl: '60s' } } } } },
        { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, loadBalancer: { simple: 'ROUND_ROBIN' } }] } },
      ],
    });
    const r = compute(demoView({ destinationRules: [rule], virtualServices: [virtualService(CANARY_VS_SPEC)] }));
    const c = config(r);
    const byName = new Map(c.clusters.map((cl) => [cl.name, cl]));
    const pool = { maxConnections: 1, connectTimeoutMs: 1000, maxPendingRequests: 1, maxRetries: 3 };
    const outlier = { consecutive5xxErrors: 2, intervalMs: 1000, baseEjectionTimeMs: 5000, maxEjectionPercent: 100 };
    const { endpoints: _all, ...all } = byName.get(ALL) ?? { endpoints: [] };
    expect(all).toEqual({ name: ALL, service: `demo/${BACKEND}`, port: 80, lb: 'LEAST_REQUEST', connectionPool: pool, outlierDetection: outlier });
    const { endpoints: _v1, ...v1 } = byName.get(V1) ?? { endpoints: [] };
    expect(v1).toEqual({ name: V1, service: `demo/${BACKEND}`, port: 80, subset: 'v1', lb: 'LEAST_REQUEST', hash: { kind: 'cookie', name: 'sticky', ttlMs: 60_000 }, connectionPool: pool, outlierDetection: outlier });
    // v2's port-level entry replaces every field: round robin, no pool, no outlier detection.
    const { endpoints: _v2, ...v2 } = byName.get(V2) ?? { endpoints: [] };
    expect(v2).toEqual({ name: V2, service: `demo/${BACKEND}`, port: 80, subset: 'v2', lb: 'ROUND_ROBIN' });
    expect(r.status.get('DestinationRule/demo/backend')).toHaveLength(1);
    expect(decodeWaypointConfig(encodeWaypointConfig(c))).toEqual(c);
  });

  it('ignored DestinationRule fields become its Warning condition, by name', () => {
    const r = compute(demoView({ destinationRules: [ruleWith({ trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' }, connectionPool: { tcp: { tcpKeepalive: {} } } } })] }));
    expect(r.status.get('DestinationRule/demo/backend')?.[1]).toEqual({
      type: 'Warning',
      status: 'True',
      reason: 'IgnoredFields',
      message: 'spec.trafficPolicy.tls: mesh traffic to endpoints is always mutual TLS over HBONE; ignored; spec.trafficPolicy.connectionPool.tcp.tcpKeepalive: upstream keepalive probes are not configurable in amesh waypoints; ignored',
    });
  });

  describe('locality', () => {
    const zoned = (name: string, ip: string, labels: Record<string, string>, locality: string) => pod(name, ip, { ...labels, 'topology.istio.io/locality': locality });
    const waypointPod = (locality?: string) => ({
      ...pod('waypoint-0', '10.0.0.50', { 'gateway.networking.k8s.io/gateway-name': 'waypoint', ...(locality ? { 'istio-locality': locality } : {}) }, { sa: 'waypoint' }),
    });
    const pods = (wp?: string) => [zoned('backend-v1', '10.0.0.11', { app: 'backend', version: 'v1' }, 'us-east1.us-east1-b'), pod('backend-v2', '10.0.0.12', { app: 'backend', version: 'v2' }), waypointPod(wp)];
    const outlier = (lb: Record<string, unknown> = {}) => ruleWith({ trafficPolicy: { outlierDetection: {}, ...lb } });
    const cluster = (view: MeshView) => config(compute(view)).clusters.find((cl) => cl.name === ALL);

    it('endpoints carry their pod’s locality (`.` → `/`, three parts)', () => {
      expect(cluster(demoView({ pods: pods() }))?.endpoints.map((e) => [e.address, e.locality])).toEqual([
        ['10.0.0.11', 'us-east1/us-east1-b/'],
        ['10.0.0.12', undefined],
      ]);
    });

    it.each<[string, MeshView, unknown]>([
      ['outlier detection and a known waypoint locality: the mesh default prefers local', demoView({ pods: pods('us-east1.us-east1-b.rack1'), destinationRules: [outlier()] }), { local: 'us-east1/us-east1-b/rack1' }],
      ['unknown waypoint locality and no setting: nothing to prefer', demoView({ pods: pods(), destinationRules: [outlier()] }), undefined],
      [
        'an explicit setting with failover, waypoint locality unknown',
        demoView({ pods: pods(), destinationRules: [outlier({ loadBalancer: { localityLbSetting: { enabled: true, failover: [{ from: 'us-east1', to: 'us-west1' }] } } })] }),
        { local: '//', failover: [{ from: 'us-east1', to: 'us-west1' }] },
      ],
      ['enabled: false', demoView({ pods: pods('us-east1'), destinationRules: [outlier({ loadBalancer: { localityLbSetting: { enabled: false } } })] }), undefined],
      ['no outlier detection: off (Istio)', demoView({ pods: pods('us-east1'), destinationRules: [ruleWith({ trafficPolicy: { loadBalancer: { localityLbSetting: { enabled: true } } } })] }), undefined],
    ])('%s', (_what, view, want) => {
      const cl = cluster(view);
      expect(cl?.localityLb).toEqual(want);
      const c = config(compute(view));
      expect(decodeWaypointConfig(encodeWaypointConfig(c))).toEqual(c);
    });
  });
});

describe('podLocality', () => {
  it.each<[Record<string, string> | undefined, string | undefined]>([
    [undefined, undefined],
    [{}, undefined],
    [{ 'istio-locality': 'r1.z1.s1' }, 'r1/z1/s1'],
    [{ 'istio-locality': 'r1' }, 'r1//'],
    [{ 'topology.istio.io/locality': 'r2/z2', 'istio-locality': 'r1' }, 'r2/z2/'],
    [{ 'istio-locality': '' }, undefined],
  ])('%j → %s', (labels, want) => expect(podLocality(labels)).toBe(want));
});

describe('portProtocol', () => {
  it.each([
    [{ port: 80, name: 'http' }, 'HTTP'],
    [{ port: 80, name: 'http-web' }, 'HTTP'],
    [{ port: 80, name: 'http2' }, 'HTTP2'],
    [{ port: 80, name: 'grpc-api' }, 'GRPC'],
    [{ port: 80, name: 'tcp-db' }, 'TCP'],
    [{ port: 80, name: 'web' }, 'AUTO'],
    [{ port: 80 }, 'AUTO'],
    [{ port: 80, name: 'tcp', appProtocol: 'http' }, 'HTTP'],
    [{ port: 80, appProtocol: 'kubernetes.io/h2c' }, 'HTTP2'],
    [{ port: 80, appProtocol: 'grpc' }, 'GRPC'],
  ] as const)('%j → %s', (port, want) => expect(portProtocol(port)).toBe(want));
});

describe('endpointMeta (destination_* labels)', () => {
  it.each([
    ['labels and workload name', { name: 'web-1-x', namespace: 'demo', workloadName: 'web', canonicalName: 'web-svc', canonicalRevision: 'v2' }, { workloadName: 'web', namespace: 'demo', canonicalName: 'web-svc', canonicalRevision: 'v2' }],
    ['Istio defaults: workload name, latest', { name: 'web-1-x', namespace: 'demo', workloadName: 'web' }, { workloadName: 'web', namespace: 'demo', canonicalName: 'web', canonicalRevision: 'latest' }],
    ['no workload name: the pod name', { name: 'p', namespace: 'demo' }, { workloadName: 'p', namespace: 'demo', canonicalName: 'p', canonicalRevision: 'latest' }],
  ])('%s', (_what, w, expected) => {
    expect(endpointMeta(w)).toEqual(expected);
  });
});
