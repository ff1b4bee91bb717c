import { describe, expect, it } from 'vitest';
import type { KubeObjectLike } from '../../src/controller/mesh/compute-mesh-resources.js';
import { computeMeshResources, MESH_ROOT_NAMESPACE, type MeshView } from '../../src/controller/mesh/mesh-index.js';
import type { AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import type { PeerAuthenticationObject } from '../../src/controller/translate/peer-authentication.js';
import type { ServiceObject } from '../../src/controller/translate/service.js';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const OPTIONS = { trustDomain: 'cluster.local' };
const STRICT_POLICY = 'istio_converted_peer_authentication_strict';

const ns = (name: string, labels: Record<string, string> = AMBIENT): NamespaceObject => ({ metadata: { name, labels } });

function pod(name: string, o: { ns?: string; ip?: string; labels?: Record<string, string>; hostNetwork?: boolean; phase?: string; ready?: boolean } = {}): PodObject {
  return {
    metadata: { name, namespace: o.ns ?? 'demo', uid: `uid-${o.ns ?? 'demo'}-${name}`, labels: o.labels ?? {} },
    spec: { nodeName: 'n1', serviceAccountName: `sa-${name}`, hostNetwork: o.hostNetwork ?? false, containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: o.phase ?? 'Running', podIP: o.ip ?? `10.244.0.${name.length}`, conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  };
}

const service = (name: string, selector: Record<string, string>, o: { ns?: string; clusterIP?: string; targetPort?: number | string } = {}): ServiceObject => ({
  metadata: { name, namespace: o.ns ?? 'demo' },
  spec: { clusterIP: o.clusterIP ?? '10.96.0.20', selector, ports: [{ port: 80, targetPort: o.targetPort ?? 8080 }] },
});

const pa = (name: string, namespace: string, spec: PeerAuthenticationObject['spec'], created = '2026-01-01T00:00:00Z'): PeerAuthenticationObject => ({ metadata: { name, namespace, creationTimestamp: created }, spec });
const ap = (name: string, namespace: string, spec: AuthorizationPolicyObject['spec']): AuthorizationPolicyObject => ({ metadata: { name, namespace }, spec });

function compute(view: Partial<MeshView>, options: Parameters<typeof computeMeshResources>[1] = OPTIONS) {
  return computeMeshResources({ namespaces: [ns('demo')], pods: [], services: [], ...view }, options);
}

const byName = (r: ReturnType<typeof compute>, name: string) => [...r.workloads.values()].find((w) => w.name === name);

describe('computeMeshResources: workloads', () => {
  it.each([
    ['enrolled by the namespace label', pod('a'), [ns('demo')], 'HBONE'],
    ['enrolled by the pod label', pod('a', { labels: AMBIENT }), [ns('demo', {})], 'HBONE'],
    ['opted out with none', pod('a', { labels: { 'istio.io/dataplane-mode': 'none' } }), [ns('demo')], 'NONE'],
    ['not enrolled', pod('a'), [ns('demo', {})], 'NONE'],
  ])('%s', (_what, p, namespaces, protocol) => {
    const r = compute({ namespaces, pods: [p] });
    expect(byName(r, 'a')?.tunnelProtocol).toBe(protocol);
  });

  it.each([
    ['host network', pod('a', { hostNetwork: true })],
    ['not Running', pod('a', { phase: 'Pending' })],
  ])('does not list a pod: %s', (_what, p) => {
    expect(compute({ pods: [p] }).workloads.size).toBe(0);
  });

  it('lists an unready pod as UNHEALTHY, keyed by uid', () => {
    const r = compute({ pods: [pod('a', { ready: false })] });
    expect([...r.workloads.keys()]).toEqual(['uid-demo-a']);
    expect(r.workloads.get('uid-demo-a')?.status).toBe('UNHEALTHY');
  });

  it('keeps the first pod (by namespace/name) on a reused IP', () => {
    const r = compute({ pods: [pod('b', { ip: '10.244.9.9' }), pod('a', { ip: '10.244.9.9' })] });
    expect([...r.workloads.values()].map((w) => w.name)).toEqual(['a']);
  });
});

describe('computeMeshResources: services', () => {
  it('publishes ClusterIP services keyed namespace/hostname, skips headless ones, and resolves named target ports per pod', () => {
    const r = compute({
      pods: [pod('web', { labels: { app: 'web' } })],
      services: [service('web', { app: 'web' }, { targetPort: 'http' }), service('web-headless', { app: 'web' }, { clusterIP: 'None' })],
    });
    expect([...r.services.keys()]).toEqual(['demo/web.demo.svc.cluster.local']);
    expect(r.services.get('demo/web.demo.svc.cluster.local')?.ports).toEqual([{ servicePort: 80, targetPort: 0 }]);
    expect(byName(r, 'web')?.services).toEqual({ 'demo/web.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } });
  });

  it('only matches services of the pod namespace', () => {
    const r = compute({ namespaces: [ns('demo'), ns('other')], pods: [pod('web', { labels: { app: 'web' } })], services: [service('web', { app: 'web' }, { ns: 'other' })] });
    expect(byName(r, 'web')?.services).toEqual({});
    expect(r.services.has('other/web.other.svc.cluster.local')).toBe(true);
  });
});

describe('computeMeshResources: PeerAuthentication', () => {
  const pods = [pod('backend', { labels: { app: 'backend' } }), pod('client', { labels: { app: 'client' } })];

  it('a namespace STRICT policy applies to every workload of the namespace', () => {
    const r = compute({ pods, peerAuthentications: [pa('strict', 'demo', { mtls: { mode: 'STRICT' } })] });
    expect([...r.authorizations.keys()]).toEqual([`demo/${STRICT_POLICY}`]);
    expect(r.authorizations.get(`demo/${STRICT_POLICY}`)).toMatchObject({ scope: 'WORKLOAD_SELECTOR', action: 'DENY' });
    expect(byName(r, 'backend')?.authorizationPolicies).toEqual([`demo/${STRICT_POLICY}`]);
    expect(byName(r, 'client')?.authorizationPolicies).toEqual([`demo/${STRICT_POLICY}`]);
  });

  it('a workload PERMISSIVE policy overrides the namespace STRICT one', () => {
    const r = compute({ pods, peerAuthentications: [pa('strict', 'demo', { mtls: { mode: 'STRICT' } }), pa('open', 'demo', { selector: { matchLabels: { app: 'client' } }, mtls: { mode: 'PERMISSIVE' } })] });
    expect(byName(r, 'backend')?.authorizationPolicies).toEqual([`demo/${STRICT_POLICY}`]);
    expect(byName(r, 'client')?.authorizationPolicies).toBeUndefined();
  });

  it('port-level modes become one policy per effective mode', () => {
    const r = compute({
      pods,
      peerAuthentications: [pa('strict', 'demo', { mtls: { mode: 'STRICT' } }), pa('ports', 'demo', { selector: { matchLabels: { app: 'backend' } }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } })],
    });
    const except = `demo/${STRICT_POLICY}_except_8080`;
    expect(byName(r, 'backend')?.authorizationPolicies).toEqual([except]);
    expect(byName(r, 'client')?.authorizationPolicies).toEqual([`demo/${STRICT_POLICY}`]);
    expect(r.authorizations.get(except)?.rules).toEqual([{ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }], notDestinationPorts: [8080] }] }] }]);
  });

  it(`a mesh-wide policy lives in the root namespace (${MESH_ROOT_NAMESPACE} by default, configurable)`, () => {
    const mesh = [pa('mesh', MESH_ROOT_NAMESPACE, { mtls: { mode: 'STRICT' } })];
    expect(byName(compute({ pods, peerAuthentications: mesh }), 'client')?.authorizationPolicies).toEqual([`demo/${STRICT_POLICY}`]);
    // The same object in istio-system is an ordinary namespace policy there, unless configured.
    const istio = [pa('mesh', 'istio-system', { mtls: { mode: 'STRICT' } })];
    expect(byName(compute({ pods, peerAuthentications: istio }), 'client')?.authorizationPolicies).toBeUndefined();
    expect(byName(compute({ pods, peerAuthentications: istio }, { ...OPTIONS, rootNamespace: 'istio-system' }), 'client')?.authorizationPolicies).toEqual([`demo/${STRICT_POLICY}`]);
  });
});

describe('computeMeshResources: AuthorizationPolicy', () => {
  const pods = [pod('backend', { labels: { app: 'backend' } }), pod('client', { labels: { app: 'client' } })];

  it('lists selector policies on the workloads they select, and publishes namespace ones without listing', () => {
    const r = compute({
      pods,
      authorizationPolicies: [
        ap('allow-client', 'demo', { selector: { matchLabels: { app: 'backend' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/sa-client'] } }] }] }),
        ap('deny-ns', 'demo', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['evil'] } }] }] }),
        ap('other-ns', 'other', { selector: { matchLabels: { app: 'backend' } } }),
        ap('waypoint', 'demo', { targetRefs: [{ kind: 'Service', name: 'backend' }] }),
      ],
    });
    expect([...r.authorizations.keys()].sort()).toEqual(['demo/allow-client', 'demo/deny-ns', 'other/other-ns']);
    expect(r.authorizations.get('demo/deny-ns')?.scope).toBe('NAMESPACE');
    expect(byName(r, 'backend')?.authorizationPolicies).toEqual(['demo/allow-client']);
    expect(byName(r, 'client')?.authorizationPolicies).toBeUndefined();
  });

  it('a policy without selector in the root namespace is GLOBAL', () => {
    const r = compute({ pods, authorizationPolicies: [ap('deny-all', MESH_ROOT_NAMESPACE, { action: 'DENY', rules: [{}] }), ap('ns', 'istio-system', { action: 'DENY', rules: [{}] })] });
    expect(r.authorizations.get(`${MESH_ROOT_NAMESPACE}/deny-all`)?.scope).toBe('GLOBAL');
    expect(r.authorizations.get('istio-system/ns')?.scope).toBe('NAMESPACE');
  });

  it('lists both a selector policy and the PeerAuthentication policy, sorted', () => {
    const r = compute({
      pods,
      authorizationPolicies: [ap('z-allow', 'demo', { selector: { matchLabels: { app: 'backend' } }, rules: [{}] })],
      peerAuthentications: [pa('strict', 'demo', { mtls: { mode: 'STRICT' } })],
    });
    expect(byName(r, 'backend')?.authorizationPolicies).toEqual([`demo/${STRICT_POLICY}`, 'demo/z-allow']);
  });
});

describe('computeMeshResources: waypoints', () => {
  const waypointGateway = (name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}) => ({
    metadata: { name, namespace: 'demo', uid: `uid-${name}`, labels, annotations },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  });

  it('binds by the namespace label and records why for every service and listed pod', () => {
    const r = compute({
      namespaces: [ns('demo', { ...AMBIENT, 'istio.io/use-waypoint': 'waypoint' })],
      pods: [pod('web', { labels: { app: 'web' } })],
      services: [service('web', { app: 'web' }), service('waypoint', { 'gateway.networking.k8s.io/gateway-name': 'waypoint' }, { clusterIP: '10.96.0.99' })],
      gateways: [waypointGateway('waypoint', { 'istio.io/waypoint-for': 'all' })],
    });
    expect(r.services.get('demo/web.demo.svc.cluster.local')?.waypoint).toEqual({ address: { address: '10.96.0.99' }, hboneMtlsPort: 15008 });
    expect(byName(r, 'web')?.waypoint).toEqual({ address: { address: '10.96.0.99' }, hboneMtlsPort: 15008 });
    expect([...r.waypointBindings.keys()].sort()).toEqual(['Pod/demo/web', 'Service/demo/waypoint', 'Service/demo/web']);
  });

  it('gateways of other classes are not waypoints', () => {
    const ingress = { ...waypointGateway('waypoint'), spec: { gatewayClassName: 'istio', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } };
    const r = compute({ namespaces: [ns('demo', { ...AMBIENT, 'istio.io/use-waypoint': 'waypoint' })], services: [service('web', { app: 'web' })], gateways: [ingress] });
    expect(r.services.get('demo/web.demo.svc.cluster.local')?.waypoint).toBeUndefined();
    expect(r.waypointBindings.get('Service/demo/web')?.reason).toBe('WaypointNotFound');
  });
});

describe('computeMeshResources: scale', () => {
  it('recomputes 2 000 pods and 500 services well within bounds', () => {
    const namespaces: NamespaceObject[] = [];
    const pods: PodObject[] = [];
    const services: ServiceObject[] = [];
    const policies: AuthorizationPolicyObject[] = [];
    const peers: PeerAuthenticationObject[] = [pa('mesh', MESH_ROOT_NAMESPACE, { mtls: { mode: 'STRICT' } })];
    for (let n = 0; n < 50; n++) {
      const name = `ns-${n}`;
      namespaces.push(ns(name, n % 2 ? AMBIENT : {}));
      for (let s = 0; s < 10; s++) services.push(service(`svc-${s}`, { app: `app-${s}` }, { ns: name, clusterIP: `10.96.${n}.${s + 1}`, targetPort: 'http' }));
      for (let p = 0; p < 40; p++) pods.push(pod(`pod-${p}`, { ns: name, ip: `10.244.${n}.${p + 1}`, labels: { app: `app-${p % 10}` } }));
      policies.push(ap(`allow-${n}`, name, { selector: { matchLabels: { app: 'app-1' } }, rules: [{ from: [{ source: { namespaces: [name] } }] }] }));
      if (n % 5 === 0) peers.push(pa(`open-${n}`, name, { selector: { matchLabels: { app: 'app-2' } }, mtls: { mode: 'PERMISSIVE' } }));
    }
    // Waypoints in a tenth of the namespaces, one of them per service account.
    const gateways = namespaces
      .filter((_n, i) => i % 10 === 0)
      .map((n, i): KubeObjectLike => {
        const annotations: Record<string, string> = i === 0 ? { 'amesh.io/for-service-account': 'sa-pod-1' } : {};
        return { metadata: { name: 'waypoint', namespace: n.metadata.name ?? '', uid: `gw-${i}`, labels: { 'istio.io/waypoint-for': 'all' }, annotations }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ port: 15008, protocol: 'HBONE' }] } };
      });
    for (const n of namespaces.filter((_n, i) => i % 10 === 5)) n.metadata.labels = { ...n.metadata.labels, 'istio.io/use-waypoint': 'waypoint' };
    const view: MeshView = { namespaces, pods, services, authorizationPolicies: policies, peerAuthentications: peers, gateways };
    computeMeshResources(view, OPTIONS); // warm up the JIT
    const started = performance.now();
    const r = computeMeshResources(view, OPTIONS);
    const elapsedMs = performance.now() - started;
    expect(r.workloads.size).toBe(2000);
    expect(r.services.size).toBe(500);
    const sample = [...r.workloads.values()].find((w) => w.namespace === 'ns-3' && w.name === 'pod-1');
    expect(sample?.services).toEqual({ 'ns-3/svc-1.ns-3.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } });
    expect(sample?.authorizationPolicies).toEqual(['ns-3/allow-3', `ns-3/${STRICT_POLICY}`]);
    // The goal is well under 100 ms; the bound is generous so a slow CI machine does not flake.
    expect(elapsedMs).toBeLessThan(500);
  });
});
