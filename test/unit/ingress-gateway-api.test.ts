/**
 * Gateway API ingress Gateways in computeIngress: listener validation and conflicts, TLS
 * certificate references, allowedRoutes, parentRef sectionName/port, hostname intersection and
 * precedence, attachedRoutes, infrastructure labels, warnings for ignored fields, and the last
 * valid HTTPRoute kept when it turns invalid.
 */
import { describe, expect, it } from 'vitest';
import type { KubeObjectLike } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { ListenerStatusSpec } from '../../src/controller/translate/ingress-model.js';
import { assertValid, compute, condition, configOf, DEMO, FRONTEND, loadYaml, routeOf, tlsSecret, viewOf } from '../helpers/ingress-fixtures.js';

const BACKEND = 'outbound|80||backend.demo.svc.cluster.local';

function gateway(listeners: unknown[], extra: { name?: string; namespace?: string; className?: string; spec?: Record<string, unknown> } = {}): KubeObjectLike {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: extra.name ?? 'edge', namespace: extra.namespace ?? 'demo' },
    spec: { gatewayClassName: extra.className ?? 'amesh', listeners, ...extra.spec },
  };
}

function route(name: string, spec: Record<string, unknown>, namespace = 'demo'): KubeObjectLike {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace }, spec };
}

const toFrontend = (extra: Record<string, unknown> = {}, parent: Record<string, unknown> = {}) => ({ parentRefs: [{ name: 'edge', ...parent }], rules: [{ backendRefs: [{ name: 'frontend', port: 80 }] }], ...extra });
const toBackend = (extra: Record<string, unknown> = {}, parent: Record<string, unknown> = {}) => ({ parentRefs: [{ name: 'edge', ...parent }], rules: [{ backendRefs: [{ name: 'backend', port: 80 }] }], ...extra });

function run(objects: KubeObjectLike[], extra: Parameters<typeof viewOf>[1] = {}) {
  return compute(viewOf([...loadYaml(DEMO), ...objects], extra));
}

const listenerOf = (result: ReturnType<typeof run>, name: string, gw = 'demo/edge'): ListenerStatusSpec | undefined => result.gateways.get(gw)?.listeners.find((l) => l.name === name);
const summary = (l: ListenerStatusSpec | undefined): string[] => (l?.conditions ?? []).map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('listeners', () => {
  it('names the deployment <gateway>-<class>, ports sorted and named by protocol, infrastructure labels and annotations', async () => {
    const secret = await tlsSecret('demo', 'cert');
    const result = run(
      [
        gateway(
          [
            { name: 'https', port: 443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'cert' }] } },
            { name: 'alt', port: 8080, protocol: 'HTTP' },
            { name: 'http', port: 80, protocol: 'HTTP' },
          ],
          { className: 'istio', spec: { infrastructure: { labels: { team: 'edge' }, annotations: { 'example.com/lb': 'internal' } } } },
        ),
      ],
      { extra: { secrets: [secret] } },
    );
    const deployment = result.deployments.get('demo/edge-istio');
    expect(deployment?.ports).toEqual([
      { name: 'http-80', port: 80 },
      { name: 'https-443', port: 443 },
      { name: 'http-8080', port: 8080 },
    ]);
    expect(deployment?.labels).toEqual({ team: 'edge' });
    expect(deployment?.annotations).toEqual({ 'example.com/lb': 'internal' });
    assertValid(configOf(result, 'demo/edge-istio'));
  });

  it('a Gateway of another class is not an ingress gateway', () => {
    const result = run([gateway([{ name: 'http', port: 80, protocol: 'HTTP' }], { className: 'nginx' })]);
    expect(result.deployments.size).toBe(0);
    expect(result.gateways.size).toBe(0);
  });

  it('same port, different protocols: both Conflicted/ProtocolConflict and not served; the rest is', async () => {
    const secret = await tlsSecret('demo', 'cert');
    const result = run(
      [
        gateway([
          { name: 'plain', port: 8443, protocol: 'HTTP' },
          { name: 'secure', port: 8443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'cert' }] } },
          { name: 'http', port: 80, protocol: 'HTTP' },
        ]),
        route('r', toFrontend()),
      ],
      { extra: { secrets: [secret] } },
    );
    for (const name of ['plain', 'secure']) {
      expect(summary(listenerOf(result, name))).toEqual(['Accepted=True/Accepted', 'Programmed=False/Invalid', 'ResolvedRefs=True/ResolvedRefs', 'Conflicted=True/ProtocolConflict']);
      expect(listenerOf(result, name)?.attachedRoutes).toBe(0);
    }
    expect(condition(listenerOf(result, 'plain')?.conditions, 'Conflicted')?.message).toContain('HTTP and HTTPS');
    const config = configOf(result, 'demo/edge-amesh');
    expect(config.listeners?.map((l) => l.port)).toEqual([80]);
    expect(listenerOf(result, 'http')?.attachedRoutes).toBe(1);
    expect(condition(result.gateways.get('demo/edge')?.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'ListenersNotValid' });
  });

  it('same port, protocol and hostname: HostnameConflict; different hostnames share the port', () => {
    const result = run([
      gateway([
        { name: 'a', port: 80, protocol: 'HTTP', hostname: 'a.example.com' },
        { name: 'a2', port: 80, protocol: 'HTTP', hostname: 'A.example.com' },
        { name: 'b', port: 80, protocol: 'HTTP', hostname: 'b.example.com' },
      ]),
    ]);
    expect(condition(listenerOf(result, 'a')?.conditions, 'Conflicted')).toMatchObject({ status: 'True', reason: 'HostnameConflict' });
    expect(condition(listenerOf(result, 'a2')?.conditions, 'Conflicted')).toMatchObject({ status: 'True', reason: 'HostnameConflict' });
    expect(condition(listenerOf(result, 'b')?.conditions, 'Conflicted')).toMatchObject({ status: 'False', reason: 'NoConflicts' });
    expect(configOf(result, 'demo/edge-amesh').listeners).toEqual([{ name: 'Gateway/demo/edge/b', port: 80, protocol: 'HTTP' }]);
  });

  it.each([
    [{ name: 'udp', port: 53, protocol: 'UDP' }, 'UnsupportedProtocol', 'UDP'],
    [{ name: 'tls', port: 9443, protocol: 'TLS', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert' }] } }, 'UnsupportedProtocol', 'terminate TLS only on HTTPS'],
    [{ name: 'tls-default', port: 9443, protocol: 'TLS' }, 'UnsupportedProtocol', '(unset: Terminate)'],
    [{ name: 'pass', port: 443, protocol: 'HTTPS', tls: { mode: 'Passthrough' } }, 'UnsupportedProtocol', 'Terminate'],
    [{ name: 'admin', port: 15021, protocol: 'HTTP' }, 'PortUnavailable', '15021'],
    [{ name: 'zero', port: 0, protocol: 'HTTP' }, 'PortUnavailable', 'not a port'],
  ])('%j → Accepted=False/%s', (listener, reason, text) => {
    const result = run([gateway([listener, { name: 'http', port: 80, protocol: 'HTTP' }])]);
    const status = listenerOf(result, listener.name);
    expect(condition(status?.conditions, 'Accepted')).toMatchObject({ status: 'False', reason });
    expect(condition(status?.conditions, 'Accepted')?.message).toContain(text);
    expect(condition(status?.conditions, 'Programmed')).toMatchObject({ status: 'False', reason: 'Invalid' });
    expect(status?.supportedKinds).toEqual([]);
    expect(configOf(result, 'demo/edge-amesh').listeners?.map((l) => l.port)).toEqual([80]);
  });

  it('no valid listener: Accepted=False/ListenersNotValid, an empty config', () => {
    const result = run([gateway([{ name: 'udp', port: 53, protocol: 'UDP' }])]);
    expect(condition(result.gateways.get('demo/edge')?.conditions, 'Accepted')).toMatchObject({ status: 'False', reason: 'ListenersNotValid' });
    const config = configOf(result, 'demo/edge-amesh');
    expect(config.listeners).toEqual([]);
    expect(result.deployments.get('demo/edge-amesh')?.ports).toEqual([]);
    assertValid(config);
  });

  it('certificateRefs: other namespace → RefNotPermitted, not a Secret or broken Secret → InvalidCertificateRef, a usable one still serves', async () => {
    const good = await tlsSecret('demo', 'good');
    const broken = { ...(await tlsSecret('demo', 'broken')), data: { 'tls.crt': Buffer.from('not a pem').toString('base64'), 'tls.key': (await tlsSecret('demo', 'x')).data['tls.key'] ?? '' } };
    const mismatched = { ...(await tlsSecret('demo', 'mismatched')), data: { 'tls.crt': good.data['tls.crt'] ?? '', 'tls.key': (await tlsSecret('demo', 'y')).data['tls.key'] ?? '' } };
    const empty = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'empty', namespace: 'demo' }, type: 'kubernetes.io/tls', data: {} };
    const result = run(
      [
        gateway([
          { name: 'cross', port: 8443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'good', namespace: 'other' }] } },
          { name: 'configmap', port: 8444, protocol: 'HTTPS', tls: { certificateRefs: [{ kind: 'ConfigMap', name: 'good' }] } },
          { name: 'broken', port: 8445, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'broken' }] } },
          { name: 'empty', port: 8446, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'empty' }] } },
          { name: 'mismatched', port: 8447, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'mismatched' }] } },
          { name: 'none', port: 8448, protocol: 'HTTPS' },
          { name: 'partly', port: 8449, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'missing' }, { name: 'good' }] } },
        ]),
      ],
      { extra: { secrets: [good, broken, empty, mismatched] } },
    );
    const refs = (name: string) => condition(listenerOf(result, name)?.conditions, 'ResolvedRefs');
    expect(refs('cross')).toMatchObject({ status: 'False', reason: 'RefNotPermitted' });
    expect(refs('configmap')).toMatchObject({ status: 'False', reason: 'InvalidCertificateRef' });
    expect(refs('broken')?.message).toContain('tls.crt is not a PEM certificate');
    expect(refs('empty')?.message).toContain('has no tls.crt and tls.key');
    expect(refs('mismatched')?.message).toContain('is not the private key of the certificate');
    expect(refs('none')?.message).toContain('needs a certificate Secret');
    expect(refs('partly')).toMatchObject({ status: 'False', reason: 'InvalidCertificateRef' });
    const config = configOf(result, 'demo/edge-amesh');
    assertValid(config);
    expect(config.listeners?.map((l) => `${l.protocol}/${l.port}`)).toEqual(['HTTPS/8449']);
    expect(config.listeners?.[0]?.certificates?.map((c) => c.name)).toEqual(['demo/good']);
    // No key material in any condition.
    expect(JSON.stringify([...result.gateways.values()])).not.toContain('PRIVATE KEY');
  });

  it('warns about every field it ignores', () => {
    const result = run([gateway([{ name: 'http', port: 80, protocol: 'HTTP', tls: { mode: 'Terminate' }, extra: 1 }], { spec: { addresses: [{ value: '1.2.3.4' }], infrastructure: { parametersRef: { name: 'x' } }, backendTLS: {} } })]);
    const warning = condition(result.gateways.get('demo/edge')?.conditions, 'Warning');
    expect(warning).toMatchObject({ status: 'True', reason: 'IgnoredFields' });
    for (const field of ['spec.addresses', 'spec.infrastructure.parametersRef', 'spec.backendTLS', 'spec.listeners[0].extra', 'spec.listeners[0].tls']) expect(warning?.message).toContain(field);
  });
});

describe('route attachment', () => {
  it('sectionName and port pick listeners; attachedRoutes counts per listener', () => {
    const result = run([
      gateway([
        { name: 'a', port: 80, protocol: 'HTTP' },
        { name: 'b', port: 8080, protocol: 'HTTP' },
      ]),
      route('to-a', toFrontend({}, { sectionName: 'a' })),
      route('to-8080', toBackend({}, { port: 8080 })),
      route('to-both', toFrontend({ rules: [{ matches: [{ path: { type: 'Exact', value: '/both' } }], backendRefs: [{ name: 'frontend', port: 80 }] }] })),
      route('to-nothing', toFrontend({}, { sectionName: 'c' })),
    ]);
    expect(listenerOf(result, 'a')?.attachedRoutes).toBe(2);
    expect(listenerOf(result, 'b')?.attachedRoutes).toBe(2);
    const config = configOf(result, 'demo/edge-amesh');
    expect(routeOf(config, 80, 'x')).toBe(FRONTEND);
    expect(routeOf(config, 8080, 'x')).toBe(BACKEND);
    expect(routeOf(config, 8080, 'x', '/both')).toBe(FRONTEND);
    const nothing = result.status.get('HTTPRoute/demo/to-nothing@demo/edge');
    expect(condition(nothing, 'Accepted')).toMatchObject({ status: 'False', reason: 'NoMatchingParent' });
    expect(condition(nothing, 'Accepted')?.message).toContain('no listener named c');
  });

  it('allowedRoutes: Same (default) refuses other namespaces, All admits them, Selector by namespace labels', () => {
    const other = (name: string, ns: string) => route(name, { parentRefs: [{ name: 'edge', namespace: 'demo' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] }, ns);
    const services = ['team-a', 'team-b'].map((ns) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80 }] } }));
    const listeners = [
      { name: 'same', port: 80, protocol: 'HTTP' },
      { name: 'all', port: 81, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } },
      { name: 'selected', port: 82, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { edge: 'yes' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['front'] }] } } } },
    ];
    const result = run([gateway(listeners), ...services, other('a', 'team-a'), other('b', 'team-b')], {
      extra: {
        namespaces: [
          { metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient' } } },
          { metadata: { name: 'team-a', labels: { edge: 'yes', tier: 'front' } } },
          { metadata: { name: 'team-b', labels: { edge: 'yes', tier: 'back' } } },
        ],
      },
    });
    expect(listenerOf(result, 'same')?.attachedRoutes).toBe(0);
    expect(listenerOf(result, 'all')?.attachedRoutes).toBe(2);
    expect(listenerOf(result, 'selected')?.attachedRoutes).toBe(1);
    const config = configOf(result, 'demo/edge-amesh');
    expect(routeOf(config, 80, 'x')).toBe('404');
    expect(routeOf(config, 82, 'x')).toBe('outbound|80||web.team-a.svc.cluster.local');
    expect(condition(result.status.get('HTTPRoute/team-b/b@demo/edge'), 'Accepted')).toMatchObject({ status: 'True' });
    expect(condition(result.status.get('HTTPRoute/team-b/b@demo/edge'), 'Accepted')?.message).toContain('listener selected allows routes from namespaces matching its selector only');
  });

  it('a route from another namespace on a Same listener only: NotAllowedByListeners', () => {
    const result = run([gateway([{ name: 'http', port: 80, protocol: 'HTTP' }]), route('r', { parentRefs: [{ name: 'edge', namespace: 'demo' }], rules: [{}] }, 'elsewhere')]);
    expect(condition(result.status.get('HTTPRoute/elsewhere/r@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
  });

  it('allowedRoutes.kinds: unsupported kinds → InvalidRouteKinds; a kind left out does not attach', () => {
    const result = run([gateway([{ name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { kinds: [{ kind: 'GRPCRoute' }, { kind: 'TCPRoute' }] } }]), route('r', toFrontend())]);
    const l = listenerOf(result, 'http');
    expect(condition(l?.conditions, 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'InvalidRouteKinds' });
    expect(condition(l?.conditions, 'ResolvedRefs')?.message).toContain('gateway.networking.k8s.io/TCPRoute');
    expect(l?.supportedKinds).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'GRPCRoute' }]);
    expect(l?.attachedRoutes).toBe(0);
    expect(condition(result.status.get('HTTPRoute/demo/r@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
  });

  it('GRPCRoutes attach like HTTPRoutes and come first on a host', () => {
    const grpc: KubeObjectLike = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GRPCRoute',
      metadata: { name: 'g', namespace: 'demo' },
      spec: { parentRefs: [{ name: 'edge' }], hostnames: ['api.example.com'], rules: [{ matches: [{ method: { service: 'demo.Echo' } }], backendRefs: [{ name: 'backend', port: 80 }] }] },
    };
    const result = run([gateway([{ name: 'http', port: 80, protocol: 'HTTP' }]), route('r', toFrontend()), grpc]);
    const config = configOf(result, 'demo/edge-amesh');
    assertValid(config);
    expect(routeOf(config, 80, 'api.example.com', '/demo.Echo/Say')).toBe(BACKEND);
    expect(routeOf(config, 80, 'www.example.com', '/demo.Echo/Say')).toBe(FRONTEND);
    expect(listenerOf(result, 'http')?.attachedRoutes).toBe(2);
    expect(condition(result.status.get('GRPCRoute/demo/g@demo/edge'), 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
  });

  it('hostnames: intersected with the listener’s, exact before wildcard, no fall-through across listeners', () => {
    const result = run([
      gateway([
        { name: 'wild', port: 80, protocol: 'HTTP', hostname: '*.example.com' },
        { name: 'exact', port: 80, protocol: 'HTTP', hostname: 'api.example.com' },
        { name: 'any', port: 80, protocol: 'HTTP' },
      ]),
      route('wild-frontend', toFrontend({ hostnames: ['*.example.com'] }, { sectionName: 'wild' })),
      route('shop', toBackend({ hostnames: ['shop.example.com', 'shop.other.com'] }, { sectionName: 'wild' })),
      route('api', toBackend({ rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/v1' } }], backendRefs: [{ name: 'backend', port: 80 }] }] }, { sectionName: 'exact' })),
      route('fallback', toFrontend({}, { sectionName: 'any' })),
      route('nomatch', toFrontend({ hostnames: ['other.org'] }, { sectionName: 'wild' })),
    ]);
    const config = configOf(result, 'demo/edge-amesh');
    assertValid(config);
    expect(routeOf(config, 80, 'shop.example.com')).toBe(BACKEND);
    expect(routeOf(config, 80, 'www.example.com')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'api.example.com', '/v1/x')).toBe(BACKEND);
    // api.example.com belongs to listener `exact`: its unmatched paths are 404, not the wildcard's routes.
    expect(routeOf(config, 80, 'api.example.com', '/other')).toBe('404');
    expect(routeOf(config, 80, 'shop.other.com')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'example.org')).toBe(FRONTEND);
    expect(condition(result.status.get('HTTPRoute/demo/nomatch@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NoMatchingListenerHostname' });
    expect(listenerOf(result, 'wild')?.attachedRoutes).toBe(2);
  });

  it('a matching hostname ranks above a longer path (Gateway API precedence), and falls through within a listener', () => {
    const result = run([
      gateway([{ name: 'http', port: 80, protocol: 'HTTP' }]),
      route('host', toFrontend({ hostnames: ['a.example.com'], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'frontend', port: 80 }] }] })),
      route('path', toBackend({ rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/very/long/path' } }], backendRefs: [{ name: 'backend', port: 80 }] }] })),
      route('header', toBackend({ hostnames: ['b.example.com'], rules: [{ matches: [{ headers: [{ name: 'x-canary', value: '1' }] }], backendRefs: [{ name: 'backend', port: 80 }] }] })),
    ]);
    const config = configOf(result, 'demo/edge-amesh');
    expect(routeOf(config, 80, 'a.example.com', '/very/long/path')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'z.example.com', '/very/long/path')).toBe(BACKEND);
    // b.example.com has a route that does not match: the request falls through to the routes for any host.
    expect(routeOf(config, 80, 'b.example.com', '/very/long/path/x')).toBe(BACKEND);
    expect(routeOf(config, 80, 'b.example.com', '/')).toBe('404');
  });

  it('invalid hostnames match nothing (never widened to any host), with a warning naming them', () => {
    const result = run([gateway([{ name: 'http', port: 80, protocol: 'HTTP' }]), route('bad', toFrontend({ hostnames: ['not a host', '10.0.0.1:80'] }))]);
    const conditions = result.status.get('HTTPRoute/demo/bad@demo/edge');
    expect(condition(conditions, 'Accepted')).toMatchObject({ status: 'False', reason: 'NoMatchingListenerHostname' });
    expect(condition(conditions, 'Warning')?.message).toContain('"not a host" is not a hostname');
    expect(routeOf(configOf(result, 'demo/edge-amesh'), 80, 'x')).toBe('404');
  });

  it('an invalid route: Accepted=False with ResolvedRefs=False/BackendNotFound; its last valid spec keeps serving', () => {
    const gw = gateway([{ name: 'http', port: 80, protocol: 'HTTP' }]);
    const good = { ...route('r', toFrontend()), metadata: { name: 'r', namespace: 'demo', uid: 'uid-r', generation: 1 } };
    const first = run([gw, good]);
    expect(first.valid.get('HTTPRoute/demo/r')).toMatchObject({ uid: 'uid-r', generation: 1 });
    const bad = { ...route('r', { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'missing', port: 80 }] }] }), metadata: { name: 'r', namespace: 'demo', uid: 'uid-r', generation: 2 } };
    const without = run([gw, bad]);
    const conditions = without.status.get('HTTPRoute/demo/r@demo/edge');
    expect(condition(conditions, 'Accepted')).toMatchObject({ status: 'False', reason: 'InvalidDestination' });
    expect(condition(conditions, 'Accepted')?.message).toContain('no earlier valid version');
    expect(condition(conditions, 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'BackendNotFound' });
    expect(routeOf(configOf(without, 'demo/edge-amesh'), 80, 'x')).toBe('404');
    const kept = compute(viewOf([...loadYaml(DEMO), gw, bad]), { lastValid: first.valid });
    expect(routeOf(configOf(kept, 'demo/edge-amesh'), 80, 'x')).toBe(FRONTEND);
    expect(condition(kept.status.get('HTTPRoute/demo/r@demo/edge'), 'Accepted')?.message).toContain('keeps serving the last valid version of this HTTPRoute (generation 1)');
    expect(kept.valid.get('HTTPRoute/demo/r')).toMatchObject({ generation: 1 });
  });

  it('route filters and precedence come from http-route.ts: Exact before PathPrefix, redirects, default retries', () => {
    const result = run([
      gateway([{ name: 'http', port: 80, protocol: 'HTTP' }]),
      route('prefix', toFrontend({ rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/app' } }], backendRefs: [{ name: 'frontend', port: 80 }] }] })),
      route('exact', toBackend({ rules: [{ matches: [{ path: { type: 'Exact', value: '/app/health' } }], backendRefs: [{ name: 'backend', port: 80 }] }] })),
      route('old', toFrontend({ rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/old' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 301 } }] }] })),
    ]);
    const config = configOf(result, 'demo/edge-amesh');
    expect(routeOf(config, 80, 'x', '/app/health')).toBe(BACKEND);
    expect(routeOf(config, 80, 'x', '/app/other')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'x', '/old/y')).toBe('301 https');
    const forward = config.services[0]?.ports[0]?.routes.find((r) => r.action.kind === 'forward');
    expect(forward?.retries).toMatchObject({ attempts: 2 });
  });
});
