/**
 * computeWaypointConfigs: the seed canary (DestinationRule v1/v2 + VirtualService 90/10 + the
 * beta-tester header rule) and its HTTPRoute equivalent become the waypoint's route table with
 * the right endpoints; every kind of bad input becomes a condition naming the field, and the last
 * valid translation keeps being served.
 */
import { describe, expect, it } from 'vitest';
import type { MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import { NO_ROUTE_NAME, computeWaypointConfigs, portProtocol, type LastValid } from '../../src/controller/translate/waypoint-config.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import { decodeWaypointConfig, encodeWaypointConfig } from '../../src/xds/waypoint-codec.js';
import { BACKEND, CANARY_DR_SPEC, CANARY_VS_SPEC, demoResources, demoView, destinationRule, httpRoute, namespace, pod, service, TRUST_DOMAIN, virtualService } from '../helpers/route-fixtures.js';

const NO_ROUTE = { name: NO_ROUTE_NAME, matches: [], action: { kind: 'direct-response', status: 404, body: 'no route matched\n' } };
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
      routes: [
        {
          name: 'VirtualService/demo/backend#0',
          matches: [{ headers: [{ name: 'user-group', match: { kind: 'exact', value: 'beta-tester' } }] }],
          action: { kind: 'forward', backends: [{ cluster: V2, weight: 100 }] },
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
        },
        NO_ROUTE,
      ],
    });
  });

  it('gives each subset cluster the pods with its label, the default cluster all of them', () => {
    const byName = new Map(c.clusters.map((cl) => [cl.name, cl]));
    const endpoint = (ip: string, name: string) => ({ address: ip, port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/backend', hbone: true, workload: `uid-${name}` });
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

  it('warns about retries and fault, naming the field, and still routes', () => {
    const r = compute(demoView({ destinationRules: [dr], virtualServices: [vsWith({ retries: { attempts: 3 }, fault: { abort: { httpStatus: 503 } }, route: [{ destination: { host: 'backend' } }] })] }));
    const conditions = r.status.get('VirtualService/demo/backend') ?? [];
    expect(conditions[0]?.status).toBe('True');
    expect(conditions[1]).toEqual({ type: 'Warning', status: 'True', reason: 'IgnoredFields', message: 'spec.http[0].retries: not supported yet (issue #7); spec.http[0].fault: not supported yet (issue #7)' });
    expect(backendPort(config(r))?.routes.map((x) => x.name)).toEqual(['VirtualService/demo/backend#0', NO_ROUTE_NAME]);
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
