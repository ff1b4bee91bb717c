/**
 * Waypoint binding rules (src/controller/translate/waypoint-binding.ts) as tables, and how the
 * mesh computation applies them (Service.waypoint / Workload.waypoint, the reasons written as
 * status): the object's label beats the namespace's, `none` opts out, a missing waypoint or one
 * for the other kind of traffic is no binding and says why, per-service-account waypoints bind
 * only that account, a rejected waypoint binds nothing, and a waypoint never binds itself.
 */
import { describe, expect, it } from 'vitest';
import { computeMeshResources, waypointBindingKey, type KubeObjectLike } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import type { ServiceObject } from '../../src/controller/translate/service.js';
import { listWaypoints, serviceWaypoint, workloadWaypoint, type GatewayObject } from '../../src/controller/translate/waypoint-binding.js';

const TD = { trustDomain: 'cluster.local' };

function gw(name: string, o: { ns?: string; for?: string; sa?: string; className?: string } = {}): GatewayObject & KubeObjectLike {
  return {
    metadata: { name, namespace: o.ns ?? 'demo', uid: `uid-gw-${name}`, ...(o.for ? { labels: { 'istio.io/waypoint-for': o.for } } : {}), ...(o.sa ? { annotations: { 'amesh.io/for-service-account': o.sa } } : {}) },
    spec: { gatewayClassName: o.className ?? 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  };
}
const ns = (labels: Record<string, string> = {}, name = 'demo'): NamespaceObject => ({ metadata: { name, labels: { 'istio.io/dataplane-mode': 'ambient', ...labels } } });
const svc = (name: string, labels: Record<string, string> = {}, o: { ns?: string; clusterIP?: string; selector?: Record<string, string> } = {}): ServiceObject => ({
  metadata: { name, namespace: o.ns ?? 'demo', labels },
  spec: { clusterIP: o.clusterIP ?? `10.96.0.${name.length + 10}`, selector: o.selector ?? { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
});
function pod(name: string, o: { labels?: Record<string, string>; sa?: string; ip?: string } = {}): PodObject {
  return {
    metadata: { name, namespace: 'demo', uid: `uid-${name}`, labels: o.labels ?? { app: name } },
    spec: { nodeName: 'n1', serviceAccountName: o.sa ?? 'default', containers: [] },
    status: { phase: 'Running', podIP: o.ip ?? `10.244.0.${name.length + 10}`, conditions: [{ type: 'Ready', status: 'True' }] },
  };
}
const waypointSvc = (name: string, ip: string): ServiceObject => svc(name, { 'gateway.networking.k8s.io/gateway-name': name }, { clusterIP: ip, selector: { 'gateway.networking.k8s.io/gateway-name': name } });

describe('binding rules (pure)', () => {
  const waypoints = listWaypoints([gw('waypoint'), gw('wl', { for: 'workload' }), gw('off', { for: 'none' }), gw('sa-wp', { sa: 'backend-sa', for: 'all' }), gw('ingress', { className: 'istio' })], [waypointSvc('waypoint', '10.96.0.9')], TD);

  it('lists waypoint Gateways only, with their VIP when their Service has one', () => {
    expect(waypoints.map((w) => [w.ref.name, w.for, w.address ?? null, w.forServiceAccount ?? null])).toEqual([
      ['off', 'none', null, null],
      ['sa-wp', 'all', null, 'backend-sa'],
      ['waypoint', 'service', '10.96.0.9', null],
      ['wl', 'workload', null, null],
    ]);
    expect(waypoints.find((w) => w.ref.name === 'waypoint')).toMatchObject({ hostname: 'waypoint.demo.svc.cluster.local', identity: 'spiffe://cluster.local/ns/demo/sa/waypoint' });
  });

  it.each<[string, ServiceObject, NamespaceObject, string[], string | undefined, string | undefined, string | undefined]>([
    ['namespace label', svc('a'), ns({ 'istio.io/use-waypoint': 'waypoint' }), [], 'waypoint', 'namespace', undefined],
    ['object label beats the namespace', svc('a', { 'istio.io/use-waypoint': 'waypoint' }), ns({ 'istio.io/use-waypoint': 'wl' }), [], 'waypoint', 'object', undefined],
    ['object none beats the namespace', svc('a', { 'istio.io/use-waypoint': 'none' }), ns({ 'istio.io/use-waypoint': 'waypoint' }), [], undefined, 'object', 'the object opts out (istio.io/use-waypoint=none)'],
    ['namespace none', svc('a'), ns({ 'istio.io/use-waypoint': 'none' }), [], undefined, 'namespace', 'namespace demo opts out (istio.io/use-waypoint=none)'],
    ['missing waypoint', svc('a'), ns({ 'istio.io/use-waypoint': 'gone' }), [], undefined, 'namespace', 'waypoint demo/gone (istio.io/use-waypoint on the namespace) does not exist'],
    ['waypoint for workloads only', svc('a', { 'istio.io/use-waypoint': 'wl' }), ns(), [], undefined, 'object', 'waypoint demo/wl handles workloads only (istio.io/waypoint-for=workload); service traffic is not sent to it'],
    ['waypoint-for none', svc('a', { 'istio.io/use-waypoint': 'off' }), ns(), [], undefined, 'object', 'waypoint demo/off is istio.io/waypoint-for=none'],
    ['another namespace', svc('a', { 'istio.io/use-waypoint': 'waypoint', 'istio.io/use-waypoint-namespace': 'other' }), ns(), [], undefined, 'object', 'waypoint other/waypoint (istio.io/use-waypoint on the object) does not exist'],
    ['per service account: every endpoint runs as it', svc('a'), ns(), ['backend-sa'], 'sa-wp', 'service-account', undefined],
    ['per service account: mixed endpoints do not bind', svc('a'), ns(), ['backend-sa', 'other'], undefined, undefined, 'no istio.io/use-waypoint label on the object or its namespace'],
    ['no label at all', svc('a'), ns(), [], undefined, undefined, 'no istio.io/use-waypoint label on the object or its namespace'],
  ])('service: %s', (_what, service, namespace, accounts, waypoint, via, reason) => {
    const b = serviceWaypoint(service, namespace, waypoints, accounts);
    expect(b.waypoint?.ref.name).toBe(waypoint);
    expect(b.via).toBe(via);
    expect('reason' in b ? b.reason : undefined).toBe(reason);
  });

  it.each<[string, PodObject, NamespaceObject, string | undefined, string | undefined]>([
    ['a service waypoint on the namespace does not take workload traffic', pod('a'), ns({ 'istio.io/use-waypoint': 'waypoint' }), undefined, 'waypoint demo/waypoint handles services only (istio.io/waypoint-for=service); workload traffic is not sent to it'],
    ['a workload waypoint on the pod', pod('a', { labels: { 'istio.io/use-waypoint': 'wl' } }), ns(), 'wl', undefined],
    ['per service account', pod('a', { sa: 'backend-sa' }), ns({ 'istio.io/use-waypoint': 'wl' }), 'sa-wp', undefined],
    ['the object label beats the per-service-account waypoint', pod('a', { sa: 'backend-sa', labels: { 'istio.io/use-waypoint': 'wl' } }), ns(), 'wl', undefined],
    ['another account is not captured', pod('a', { sa: 'frontend' }), ns(), undefined, 'no istio.io/use-waypoint label on the object or its namespace'],
  ])('workload: %s', (_what, p, namespace, waypoint, reason) => {
    const b = workloadWaypoint(p, namespace, waypoints);
    expect(b.waypoint?.ref.name).toBe(waypoint);
    expect('reason' in b ? b.reason : undefined).toBe(reason);
  });
});

describe('computeMeshResources applies the binding', () => {
  const run = (view: { namespaces?: NamespaceObject[]; pods?: PodObject[]; services?: ServiceObject[]; gateways?: KubeObjectLike[] }) =>
    computeMeshResources({ namespaces: view.namespaces ?? [ns()], pods: view.pods ?? [], services: view.services ?? [], gateways: view.gateways ?? [] }, TD);

  it('sets Service.waypoint in the address form once the waypoint Service has a VIP, else the hostname form', () => {
    const withVip = run({ namespaces: [ns({ 'istio.io/use-waypoint': 'waypoint' })], services: [svc('backend'), waypointSvc('waypoint', '10.96.0.9')], gateways: [gw('waypoint')] });
    expect(withVip.services.get('demo/backend.demo.svc.cluster.local')?.waypoint).toEqual({ address: { address: '10.96.0.9' }, hboneMtlsPort: 15008 });
    const noVip = run({ namespaces: [ns({ 'istio.io/use-waypoint': 'waypoint' })], services: [svc('backend')], gateways: [gw('waypoint')] });
    expect(noVip.services.get('demo/backend.demo.svc.cluster.local')?.waypoint).toEqual({ hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008 });
  });

  it("never binds the waypoint's own Service or pods", () => {
    const wpPod = pod('waypoint-abc', { labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'istio.io/dataplane-mode': 'none' }, sa: 'waypoint' });
    const r = run({ namespaces: [ns({ 'istio.io/use-waypoint': 'waypoint' })], services: [waypointSvc('waypoint', '10.96.0.9')], gateways: [gw('waypoint', { for: 'all' })], pods: [wpPod] });
    expect(r.services.get('demo/waypoint.demo.svc.cluster.local')?.waypoint).toBeUndefined();
    expect(r.workloads.get('uid-waypoint-abc')?.waypoint).toBeUndefined();
    expect(r.waypointBindings.get(waypointBindingKey('Service', 'demo', 'waypoint'))).toMatchObject({ relevant: false, reason: 'NotBound' });
    expect(r.waypointBindings.get(waypointBindingKey('Pod', 'demo', 'waypoint-abc'))).toMatchObject({ relevant: false });
  });

  it('sets Workload.waypoint for workload/all waypoints only, with the reason otherwise', () => {
    const all = run({ namespaces: [ns({ 'istio.io/use-waypoint': 'waypoint' })], pods: [pod('backend')], gateways: [gw('waypoint', { for: 'all' })] });
    expect(all.workloads.get('uid-backend')?.waypoint).toEqual({ hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008 });
    const services = run({ namespaces: [ns({ 'istio.io/use-waypoint': 'waypoint' })], pods: [pod('backend')], gateways: [gw('waypoint')] });
    expect(services.workloads.get('uid-backend')?.waypoint).toBeUndefined();
    expect(services.waypointBindings.get(waypointBindingKey('Pod', 'demo', 'backend'))).toMatchObject({ reason: 'WaypointWrongKind', relevant: true, detail: 'waypoint demo/waypoint handles services only (istio.io/waypoint-for=service); workload traffic is not sent to it' });
  });

  it.each<[string, Record<string, string>, KubeObjectLike[], string, string]>([
    ['bound via the namespace', { 'istio.io/use-waypoint': 'waypoint' }, [gw('waypoint')], 'Bound', 'istio.io/use-waypoint on the namespace'],
    ['waypoint missing', { 'istio.io/use-waypoint': 'gone' }, [], 'WaypointNotFound', 'waypoint demo/gone (istio.io/use-waypoint on the namespace) does not exist'],
    ['waypoint for workloads', { 'istio.io/use-waypoint': 'wl' }, [gw('wl', { for: 'workload' })], 'WaypointWrongKind', 'waypoint demo/wl handles workloads only (istio.io/waypoint-for=workload); service traffic is not sent to it'],
    ['opted out', { 'istio.io/use-waypoint': 'none' }, [gw('waypoint')], 'NotBound', 'namespace demo opts out (istio.io/use-waypoint=none)'],
    [
      'waypoint not accepted (bad waypoint-for)',
      { 'istio.io/use-waypoint': 'bad' },
      [gw('bad', { for: 'services' })],
      'WaypointNotAccepted',
      'waypoint demo/bad (istio.io/use-waypoint on the namespace) is not accepted: label istio.io/waypoint-for="services" is not one of service, workload, all, none; the waypoint is not deployed',
    ],
  ])('service status reason: %s', (_what, nsLabels, gateways, reason, detail) => {
    const r = run({ namespaces: [ns(nsLabels)], services: [svc('backend')], gateways });
    const record = r.waypointBindings.get(waypointBindingKey('Service', 'demo', 'backend'));
    expect(record).toMatchObject({ reason, detail, relevant: true });
    expect(r.services.get('demo/backend.demo.svc.cluster.local')?.waypoint !== undefined).toBe(reason === 'Bound');
  });

  it('a per-service-account waypoint binds that account’s pods and the services only they back; the rest is untouched', () => {
    const r = run({
      pods: [pod('backend', { sa: 'backend-sa' }), pod('frontend', { sa: 'frontend-sa' }), pod('mixed-a', { sa: 'backend-sa', labels: { app: 'mixed' } }), pod('mixed-b', { sa: 'frontend-sa', labels: { app: 'mixed' } })],
      services: [svc('backend'), svc('frontend'), svc('mixed')],
      gateways: [gw('backend-sa-waypoint', { sa: 'backend-sa', for: 'all' })],
    });
    expect(r.workloads.get('uid-backend')?.waypoint?.hostname?.hostname).toBe('backend-sa-waypoint.demo.svc.cluster.local');
    expect(r.workloads.get('uid-frontend')?.waypoint).toBeUndefined();
    expect(r.services.get('demo/backend.demo.svc.cluster.local')?.waypoint).toBeDefined();
    expect(r.services.get('demo/mixed.demo.svc.cluster.local')?.waypoint).toBeUndefined();
    expect(r.waypointBindings.get(waypointBindingKey('Pod', 'demo', 'backend'))).toMatchObject({ reason: 'Bound', relevant: true, detail: 'per-service-account waypoint for backend-sa, amesh.io/for-service-account' });
    expect(r.waypointBindings.get(waypointBindingKey('Pod', 'demo', 'frontend'))?.relevant).toBe(false);
    expect(r.waypointBindings.get(waypointBindingKey('Service', 'demo', 'mixed'))).toMatchObject({ reason: 'NotBound', relevant: true });
    expect(r.waypointBindings.get(waypointBindingKey('Service', 'demo', 'frontend'))?.relevant).toBe(false);
  });

  it('without waypoints or labels nothing is relevant and nothing gets a waypoint', () => {
    const r = run({ pods: [pod('backend')], services: [svc('backend')] });
    expect([...r.waypointBindings.values()].some((b) => b.relevant)).toBe(false);
    expect(r.services.get('demo/backend.demo.svc.cluster.local')?.waypoint).toBeUndefined();
  });
});
