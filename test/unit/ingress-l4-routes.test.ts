/**
 * Gateway API TLS (Passthrough) and TCP listeners with TLSRoutes / TCPRoutes in computeIngress:
 * the listener's l4Routes (SNI patterns from the hostname intersection, weighted backends, the
 * same clusters HTTPRoutes get), attachment (parentRefs sectionName/port, allowedRoutes kinds and
 * namespaces), attachedRoutes, route parent status, invalid routes and their last valid spec, and
 * the route status writer writing TLSRoute / TCPRoute ingress parents at the version read.
 */
import { describe, expect, it } from 'vitest';
import type { KubeObjectLike } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { ListenerStatusSpec } from '../../src/controller/translate/ingress-model.js';
import { ingressParentsByRoute, RouteStatusWriter, statusResource } from '../../src/controller/status/route-status.js';
import type { ConditionSpec } from '../../src/controller/status/policy-status.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { assertValid, compute, condition, configOf, DEMO, FRONTEND, gatewaySample, loadYaml, tlsSecret, viewOf } from '../helpers/ingress-fixtures.js';

const BACKEND = 'outbound|80||backend.demo.svc.cluster.local';
const GROUP = 'gateway.networking.k8s.io';

function gateway(listeners: unknown[], name = 'edge'): KubeObjectLike {
  return { apiVersion: `${GROUP}/v1`, kind: 'Gateway', metadata: { name, namespace: 'demo' }, spec: { gatewayClassName: 'amesh', listeners } };
}

let created = 0;
function l4(kind: 'TLSRoute' | 'TCPRoute', name: string, spec: Record<string, unknown>, opts: { namespace?: string; version?: string; uid?: string; generation?: number } = {}): KubeObjectLike {
  created += 1;
  return {
    apiVersion: `${GROUP}/${opts.version ?? (kind === 'TLSRoute' ? 'v1' : 'v1alpha2')}`,
    kind,
    metadata: { name, namespace: opts.namespace ?? 'demo', uid: opts.uid ?? `uid-${name}`, generation: opts.generation ?? 1, creationTimestamp: `2026-01-01T00:00:${String(created).padStart(2, '0')}Z` },
    spec,
  };
}

const to = (service: string, extra: Record<string, unknown> = {}, parent: Record<string, unknown> = {}) => ({ parentRefs: [{ name: 'edge', ...parent }], rules: [{ backendRefs: [{ name: service, port: 80 }] }], ...extra });
const TLS = (extra: Record<string, unknown> = {}) => ({ name: 'tls', port: 443, protocol: 'TLS', tls: { mode: 'Passthrough' }, ...extra });
const TCP = (extra: Record<string, unknown> = {}) => ({ name: 'tcp', port: 9000, protocol: 'TCP', ...extra });

function run(objects: KubeObjectLike[], extra: Parameters<typeof viewOf>[1] = {}, lastValid?: NonNullable<Parameters<typeof compute>[1]>['lastValid']) {
  const tlsRoutes = objects.filter((o) => o.kind === 'TLSRoute');
  const tcpRoutes = objects.filter((o) => o.kind === 'TCPRoute');
  const rest = objects.filter((o) => o.kind !== 'TLSRoute' && o.kind !== 'TCPRoute');
  const view = viewOf([...loadYaml(DEMO), ...rest], { ...extra, extra: { ...extra.extra, tlsRoutes, tcpRoutes } });
  return compute(view, lastValid ? { lastValid } : {});
}

const listenerOf = (result: ReturnType<typeof run>, name: string): ListenerStatusSpec | undefined => result.gateways.get('demo/edge')?.listeners.find((l) => l.name === name);
const summary = (conditions: readonly ConditionSpec[] | undefined): string[] => (conditions ?? []).map((c) => `${c.type}=${c.status}/${c.reason}`);
const l4RoutesOf = (result: ReturnType<typeof run>, port: number) => configOf(result, 'demo/edge-amesh').listeners?.find((l) => l.port === port)?.l4Routes;

describe('TLS passthrough listeners and TLSRoutes', () => {
  it('a TLSRoute on a Passthrough listener with a hostname → an l4Route for that SNI to the service cluster', () => {
    const result = run([gateway([TLS({ hostname: 'secure.example.com' })]), l4('TLSRoute', 'secure', to('backend'))]);
    const config = configOf(result, 'demo/edge-amesh');
    assertValid(config);
    expect(config.listeners).toEqual([{ name: 'Gateway/demo/edge/tls', port: 443, protocol: 'TLS', l4Routes: [{ name: 'TLSRoute/demo/secure#0@secure.example.com', hostnames: ['secure.example.com'], backends: [{ cluster: BACKEND, weight: 1 }] }] }]);
    expect(config.services).toEqual([]);
    expect(config.clusters.map((c) => c.name)).toEqual([BACKEND]);
    expect(config.clusters[0]?.endpoints.length).toBeGreaterThan(0);
    expect(result.deployments.get('demo/edge-amesh')?.ports).toEqual([{ name: 'tls-443', port: 443 }]);
    const l = listenerOf(result, 'tls');
    expect(summary(l?.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=True/Programmed', 'ResolvedRefs=True/ResolvedRefs', 'Conflicted=False/NoConflicts']);
    expect(l?.supportedKinds).toEqual([{ group: GROUP, kind: 'TLSRoute' }]);
    expect(l?.attachedRoutes).toBe(1);
    const parent = result.status.get('TLSRoute/demo/secure@demo/edge');
    expect(summary(parent)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
    expect(result.valid.get('TLSRoute/demo/secure')?.uid).toBe('uid-secure');
  });

  it('hostnames intersect the listener hostname; exact SNI before wildcards, then the oldest route; no overlap → NoMatchingListenerHostname', () => {
    const result = run([
      gateway([TLS({ hostname: '*.example.com' })]),
      l4('TLSRoute', 'wild', to('frontend', { hostnames: ['*.example.com'] })),
      l4('TLSRoute', 'exact', to('backend', { hostnames: ['a.example.com', 'B.Example.com.'] })),
      l4('TLSRoute', 'any', to('frontend')),
      l4('TLSRoute', 'other', to('backend', { hostnames: ['other.org'] })),
    ]);
    const routes = l4RoutesOf(result, 443) ?? [];
    expect(routes.map((r) => [r.name, r.hostnames])).toEqual([
      ['TLSRoute/demo/exact#0@a.example.com', ['a.example.com']],
      ['TLSRoute/demo/exact#0@b.example.com', ['b.example.com']],
      ['TLSRoute/demo/wild#0@*.example.com', ['*.example.com']],
      ['TLSRoute/demo/any#0@*.example.com', ['*.example.com']],
    ]);
    expect(listenerOf(result, 'tls')?.attachedRoutes).toBe(3);
    expect(condition(result.status.get('TLSRoute/demo/other@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NoMatchingListenerHostname' });
    assertValid(configOf(result, 'demo/edge-amesh'));
  });

  it('a listener without hostname and a route without hostnames → an l4Route without hostnames (any SNI)', () => {
    const result = run([gateway([TLS()]), l4('TLSRoute', 'all', to('backend'), { version: 'v1alpha2' })]);
    expect(l4RoutesOf(result, 443)).toEqual([{ name: 'TLSRoute/demo/all#0', backends: [{ cluster: BACKEND, weight: 1 }] }]);
  });

  it.each([
    [{ tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert' }] } }, 'terminate TLS only on HTTPS'],
    [{ tls: undefined }, '(unset: Terminate)'],
  ])('TLS listener %j → Accepted=False/UnsupportedProtocol, the other listeners served', (extra, text) => {
    const result = run([gateway([TLS(extra), { name: 'http', port: 80, protocol: 'HTTP' }]), l4('TLSRoute', 'secure', to('backend'))]);
    const status = condition(listenerOf(result, 'tls')?.conditions, 'Accepted');
    expect(status).toMatchObject({ status: 'False', reason: 'UnsupportedProtocol' });
    expect(status?.message).toContain(text);
    expect(configOf(result, 'demo/edge-amesh').listeners?.map((l) => l.port)).toEqual([80]);
    expect(condition(result.status.get('TLSRoute/demo/secure@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
  });

  it('a Passthrough listener warns about certificateRefs; an HTTPS listener and a TLS listener on one port conflict', async () => {
    const secret = await tlsSecret('demo', 'cert');
    const result = run(
      [gateway([TLS({ tls: { mode: 'Passthrough', certificateRefs: [{ name: 'cert' }] } }), { name: 'https', port: 443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'cert' }] } }, TLS({ name: 'tls2', port: 8443 })])],
      { extra: { secrets: [secret] } },
    );
    expect(condition(listenerOf(result, 'tls')?.conditions, 'Conflicted')).toMatchObject({ status: 'True', reason: 'ProtocolConflict' });
    expect(condition(listenerOf(result, 'https')?.conditions, 'Conflicted')).toMatchObject({ status: 'True', reason: 'ProtocolConflict' });
    expect(condition(result.gateways.get('demo/edge')?.conditions, 'Warning')?.message).toContain('spec.listeners[0].tls.certificateRefs: unused with mode Passthrough');
    expect(configOf(result, 'demo/edge-amesh').listeners).toEqual([{ name: 'Gateway/demo/edge/tls2', port: 8443, protocol: 'TLS', l4Routes: [] }]);
  });
});

describe('samples/gateway/tls-passthrough.yaml', () => {
  it('one TLS listener for secure.example.com relaying to secure-backend:443 (pod port 8443), the TLSRoute Accepted', () => {
    const result = run(loadYaml(gatewaySample('tls-passthrough.yaml')));
    const config = configOf(result, 'demo/tls-passthrough-amesh');
    assertValid(config);
    const cluster = 'outbound|443||secure-backend.demo.svc.cluster.local';
    expect(config.listeners).toEqual([{ name: 'Gateway/demo/tls-passthrough/tls', port: 443, protocol: 'TLS', l4Routes: [{ name: 'TLSRoute/demo/secure#0@secure.example.com', hostnames: ['secure.example.com'], backends: [{ cluster, weight: 1 }] }] }]);
    expect(config.clusters.map((c) => [c.name, c.endpoints.map((e) => `${e.port}/${e.hbone ? 'hbone' : 'tcp'}`)])).toEqual([[cluster, ['8443/hbone']]]);
    expect(summary(result.status.get('TLSRoute/demo/secure@demo/tls-passthrough'))).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
    expect(result.gateways.get('demo/tls-passthrough')?.listeners[0]?.attachedRoutes).toBe(1);
  });
});

describe('TCP listeners and TCPRoutes', () => {
  it('weighted backendRefs → weighted clusters; a listener hostname is ignored with a warning', () => {
    const result = run([
      gateway([TCP({ hostname: 'ignored.example.com' })]),
      l4('TCPRoute', 'split', { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'frontend', port: 80, weight: 3 }, { name: 'backend', port: 80, weight: 1 }] }] }),
    ]);
    const config = configOf(result, 'demo/edge-amesh');
    assertValid(config);
    expect(config.listeners).toEqual([{ name: 'Gateway/demo/edge/tcp', port: 9000, protocol: 'TCP', l4Routes: [{ name: 'TCPRoute/demo/split#0', backends: [{ cluster: FRONTEND, weight: 3 }, { cluster: BACKEND, weight: 1 }] }] }]);
    expect(config.clusters.map((c) => c.name).sort()).toEqual([BACKEND, FRONTEND].sort());
    expect(result.deployments.get('demo/edge-amesh')?.ports).toEqual([{ name: 'tcp-9000', port: 9000 }]);
    expect(listenerOf(result, 'tcp')?.supportedKinds).toEqual([{ group: GROUP, kind: 'TCPRoute' }]);
    expect(condition(result.gateways.get('demo/edge')?.conditions, 'Warning')?.message).toContain('spec.listeners[0].hostname: ignored on a TCP listener');
    expect(summary(result.status.get('TCPRoute/demo/split@demo/edge'))).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
  });

  it('two TCPRoutes on one TCP listener: the oldest first, the other Accepted with a warning; extra rules warned', () => {
    const result = run([
      gateway([TCP()]),
      l4('TCPRoute', 'first', { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'frontend', port: 80 }] }, { backendRefs: [{ name: 'backend', port: 80 }] }] }),
      l4('TCPRoute', 'second', to('backend')),
    ]);
    expect(l4RoutesOf(result, 9000)?.map((r) => r.name)).toEqual(['TCPRoute/demo/first#0', 'TCPRoute/demo/first#1', 'TCPRoute/demo/second#0']);
    expect(listenerOf(result, 'tcp')?.attachedRoutes).toBe(2);
    expect(condition(result.status.get('TCPRoute/demo/first@demo/edge'), 'Warning')?.message).toContain('spec.rules[1..1]: a TCP listener sends every connection to its first rule');
    const second = result.status.get('TCPRoute/demo/second@demo/edge');
    expect(condition(second, 'Accepted')).toMatchObject({ status: 'True' });
    expect(condition(second, 'Warning')?.message).toContain('already sends its connections to TCPRoute/demo/first');
  });
});

describe('attachment', () => {
  it('sectionName / port select the listener; kinds decide what attaches where', () => {
    const result = run([
      gateway([TLS({ hostname: 'secure.example.com' }), TCP(), { name: 'http', port: 80, protocol: 'HTTP' }]),
      l4('TCPRoute', 'by-port', to('frontend', {}, { port: 9000 })),
      l4('TCPRoute', 'on-tls', to('frontend', {}, { sectionName: 'tls' })),
      l4('TLSRoute', 'by-section', to('backend', {}, { sectionName: 'tls' })),
      l4('TLSRoute', 'no-such', to('backend', {}, { sectionName: 'nope' })),
      { apiVersion: `${GROUP}/v1`, kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'demo' }, spec: to('frontend', {}, { sectionName: 'tls' }) },
    ]);
    expect(condition(result.status.get('TCPRoute/demo/by-port@demo/edge'), 'Accepted')).toMatchObject({ status: 'True' });
    expect(condition(result.status.get('TCPRoute/demo/on-tls@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
    expect(condition(result.status.get('TCPRoute/demo/on-tls@demo/edge'), 'Accepted')?.message).toContain('does not allow TCPRoutes');
    expect(condition(result.status.get('HTTPRoute/demo/web@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NotAllowedByListeners' });
    expect(condition(result.status.get('TLSRoute/demo/no-such@demo/edge'), 'Accepted')).toMatchObject({ status: 'False', reason: 'NoMatchingParent' });
    expect(listenerOf(result, 'tls')?.attachedRoutes).toBe(1);
    expect(listenerOf(result, 'tcp')?.attachedRoutes).toBe(1);
    expect(listenerOf(result, 'http')?.attachedRoutes).toBe(0);
    assertValid(configOf(result, 'demo/edge-amesh'));
  });

  it('allowedRoutes.kinds HTTPRoute on a TLS listener → InvalidRouteKinds, TLSRoute still supported', () => {
    const result = run([gateway([TLS({ allowedRoutes: { kinds: [{ kind: 'HTTPRoute' }, { kind: 'TLSRoute' }] } })]), l4('TLSRoute', 'secure', to('backend'))]);
    const tls = listenerOf(result, 'tls');
    expect(condition(tls?.conditions, 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'InvalidRouteKinds' });
    expect(condition(tls?.conditions, 'ResolvedRefs')?.message).toContain(`${GROUP}/HTTPRoute not supported on TLS (TLSRoute)`);
    expect(tls?.supportedKinds).toEqual([{ group: GROUP, kind: 'TLSRoute' }]);
    expect(tls?.attachedRoutes).toBe(1);
  });

  it('a route in another namespace attaches only where allowedRoutes admits it', () => {
    const other = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } };
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'other', uid: 'svc-echo' }, spec: { clusterIP: '10.96.9.9', ports: [{ name: 'tcp', port: 80 }], selector: { app: 'echo' } } };
    const result = run([other, svc, gateway([TCP(), TCP({ name: 'tcp-all', port: 9001, allowedRoutes: { namespaces: { from: 'All' } } })]), l4('TCPRoute', 'far', { parentRefs: [{ name: 'edge', namespace: 'demo' }], rules: [{ backendRefs: [{ name: 'echo', port: 80 }] }] }, { namespace: 'other' })]);
    const parent = result.status.get('TCPRoute/other/far@demo/edge');
    expect(condition(parent, 'Accepted')).toMatchObject({ status: 'True' });
    expect(condition(parent, 'Accepted')?.message).toContain('listener tcp-all');
    expect(condition(parent, 'Accepted')?.message).toContain('listener tcp allows routes from its own namespace only');
    expect(listenerOf(result, 'tcp')?.attachedRoutes).toBe(0);
    expect(listenerOf(result, 'tcp-all')?.attachedRoutes).toBe(1);
    expect(l4RoutesOf(result, 9001)?.[0]?.backends).toEqual([{ cluster: 'outbound|80||echo.other.svc.cluster.local', weight: 1 }]);
    expect(l4RoutesOf(result, 9000)).toEqual([]);
  });
});

describe('invalid routes', () => {
  it.each([
    [{ parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'missing', port: 80 }] }] }, 'InvalidDestination', 'service missing.demo.svc.cluster.local not found', 'BackendNotFound'],
    [{ parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'backend' }] }] }, 'InvalidDestination', 'port: required', 'BackendNotFound'],
    [{ parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [] }] }, 'InvalidDestination', 'at least one backendRef', 'BackendNotFound'],
    [{ parentRefs: [{ name: 'edge' }], rules: [] }, 'InvalidSpec', 'at least one rule', 'ResolvedRefs'],
    [{ parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'backend', port: 80, weight: 0 }] }] }, 'InvalidWeights', 'total 0', 'ResolvedRefs'],
    [{ parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'backend', port: 80, filters: [{ type: 'RequestHeaderModifier' }] }] }] }, 'UnsupportedValue', 'has no filters', 'ResolvedRefs'],
  ])('%j → Accepted=False/%s, nothing served', (spec, reason, text, resolved) => {
    const result = run([gateway([TCP()]), l4('TCPRoute', 'bad', spec)]);
    const parent = result.status.get('TCPRoute/demo/bad@demo/edge');
    expect(condition(parent, 'Accepted')).toMatchObject({ status: 'False', reason });
    expect(condition(parent, 'Accepted')?.message).toContain(text);
    expect(condition(parent, 'ResolvedRefs')?.reason).toBe(resolved);
    expect(l4RoutesOf(result, 9000)).toEqual([]);
    expect(configOf(result, 'demo/edge-amesh').clusters).toEqual([]);
    expect(result.valid.has('TCPRoute/demo/bad')).toBe(false);
  });

  it('a TLSRoute turned invalid keeps being served from its last valid spec (same uid), saying so', () => {
    const good = l4('TLSRoute', 'secure', to('backend'), { generation: 1 });
    const first = run([gateway([TLS()]), good]);
    const broken = { ...good, metadata: { ...good.metadata, generation: 2 }, spec: to('missing') };
    const second = run([gateway([TLS()]), broken], {}, first.valid);
    expect(l4RoutesOf(second, 443)).toEqual([{ name: 'TLSRoute/demo/secure#0', backends: [{ cluster: BACKEND, weight: 1 }] }]);
    const accepted = condition(second.status.get('TLSRoute/demo/secure@demo/edge'), 'Accepted');
    expect(accepted).toMatchObject({ status: 'False', reason: 'InvalidDestination' });
    expect(accepted?.message).toContain('keeps serving the last valid version of this TLSRoute (generation 1)');
    // Another object (new uid) under the same name gets no fallback.
    const renewed = { ...broken, metadata: { ...broken.metadata, uid: 'uid-new' } };
    expect(l4RoutesOf(run([gateway([TLS()]), renewed], {}, first.valid), 443)).toEqual([]);
  });
});

describe('route status writer', () => {
  it('TLSRoute / TCPRoute ingress parents are grouped per route and written at the version each route was read with', async () => {
    const ok: ConditionSpec[] = [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'attached' }];
    const ingress = new Map<string, ConditionSpec[]>([
      ['TLSRoute/demo/secure@demo/edge', ok],
      ['TCPRoute/demo/raw@demo/edge', ok],
    ]);
    expect([...ingressParentsByRoute(ingress).keys()].sort()).toEqual(['TCPRoute/demo/raw', 'TLSRoute/demo/secure']);
    const secure = l4('TLSRoute', 'secure', to('backend', {}, { sectionName: 'tls' }), { version: 'v1' });
    const raw = l4('TCPRoute', 'raw', to('frontend'));
    const old = l4('TLSRoute', 'old', to('backend'), { version: 'v1alpha2' });
    expect(statusResource('TLSRoute', old)).toEqual({ group: GROUP, version: 'v1alpha2', plural: 'tlsroutes' });
    expect(statusResource('TLSRoute', { metadata: {} })).toEqual({ group: GROUP, version: 'v1alpha2', plural: 'tlsroutes' });
    const patches: Array<[string, string, Record<string, unknown>]> = [];
    const now = new Date('2026-01-01T00:00:00Z');
    const writer = new RouteStatusWriter({ log: silentLogger, now: () => now, patch: async (resource, _namespace, name, status) => void patches.push([`${resource.plural}.${resource.version}`, name, status]) });
    const view = { ...viewOf(loadYaml(DEMO)), tlsRoutes: [secure, old], tcpRoutes: [raw] };
    writer.reconcile(view, new Map(), ingress);
    await writer.idle();
    expect(patches.map(([r, n]) => `${r}/${n}`).sort()).toEqual(['tcproutes.v1alpha2/raw', 'tlsroutes.v1/secure']);
    const parents = (patches.find(([, n]) => n === 'secure')?.[2].parents ?? []) as Array<{ parentRef: unknown; controllerName: string; conditions: Array<{ type: string; status: string }> }>;
    expect(parents).toHaveLength(1);
    expect(parents[0]).toMatchObject({ parentRef: { name: 'edge', sectionName: 'tls' }, controllerName: 'amesh.io/gateway-controller', conditions: [{ type: 'Accepted', status: 'True' }] });
    writer.stop();
  });
});
