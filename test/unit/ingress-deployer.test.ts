/**
 * The controller side of ingress gateways, pure: rendering an IngressDeployment from
 * waypoint/gateway.yaml (placeholders, ports, labels, sysctl, owner), the Gateway status decision
 * (Accepted/Programmed/addresses/listeners), listener times, and the route-status merges
 * (VirtualService verdicts of two translators, HTTPRoute ingress parents, Istio Gateways).
 */
import { describe, expect, it } from 'vitest';
import { isDefaultIngressObject, renderIngress, reservedPortsIn } from '../../src/controller/gateway/ingress-render.js';
import { desiredIngressStatus, loadBalancerAddresses } from '../../src/controller/gateway/ingress-status.js';
import type { ConditionSpec } from '../../src/controller/status/policy-status.js';
import { ingressParentsByRoute, mergeConditionSpecs, nextRouteParents, RouteStatusWriter, WAYPOINT_CONTROLLER_NAME } from '../../src/controller/status/route-status.js';
import { DEFAULT_INGRESS_LABELS, INGRESS_CONTROLLER_NAME, type IngressDeployment, type IngressGatewayStatus } from '../../src/controller/translate/ingress-model.js';
import { nextListeners } from '../../src/controller/waypoint/gateway-status-writer.js';
import { RENDERED_HASH_ANNOTATION } from '../../src/controller/waypoint/render.js';
import { gatewayTemplate, parseWaypointTemplate } from '../../src/controller/waypoint/template.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { demoView, httpRoute, virtualService } from '../helpers/route-fixtures.js';

const now = new Date('2026-03-01T00:00:00.000Z');

const gatewayApi = (o: Partial<IngressDeployment> = {}): IngressDeployment => ({
  namespace: 'demo',
  name: 'demo-gateway-istio',
  source: { kind: 'Gateway', namespace: 'demo', name: 'demo-gateway', uid: 'uid-gw' },
  ports: [
    { name: 'http-80', port: 80 },
    { name: 'https-443', port: 443 },
  ],
  labels: {},
  annotations: {},
  ...o,
});

const defaultIngress = (): IngressDeployment => ({
  namespace: 'amesh-system',
  name: 'amesh-ingressgateway',
  source: { kind: 'default' },
  ports: [{ name: 'http-80', port: 80 }],
  labels: DEFAULT_INGRESS_LABELS,
  annotations: {},
});

type Deployment = {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName: string;
        automountServiceAccountToken: boolean;
        securityContext: { runAsUser: number; runAsNonRoot: boolean; sysctls: Array<{ name: string; value: string }> };
        containers: Array<{ name: string; image: string; args: string[]; env: Array<{ name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }>; ports: Array<{ containerPort: number; name?: string }>; readinessProbe: { httpGet: { port: number } } }>;
      };
    };
  };
};
type Service = { spec: { type: string; selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: number }> } };

describe('renderIngress', () => {
  it('renders the pod contract: names, labels, image, args, env, sysctl, uid 1337, ports, owner', () => {
    const r = renderIngress(gatewayApi(), { trustDomain: 'example.org' });
    expect(r.objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['ServiceAccount/demo/demo-gateway-istio', 'Service/demo/demo-gateway-istio', 'Deployment/demo/demo-gateway-istio']);
    for (const o of r.objects) {
      expect(o.metadata.ownerReferences).toEqual([{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'demo-gateway', uid: 'uid-gw', controller: true }]);
      expect(o.metadata.labels).toMatchObject({ 'gateway.networking.k8s.io/gateway-name': 'demo-gateway', 'app.kubernetes.io/managed-by': 'amesh', 'app.kubernetes.io/component': 'ingress-gateway' });
      expect(o.metadata.annotations[RENDERED_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    }
    const d = r.deployment as unknown as Deployment;
    expect(d.spec.replicas).toBeUndefined();
    expect(d.spec.selector.matchLabels).toEqual({ 'gateway.networking.k8s.io/gateway-name': 'demo-gateway' });
    expect(d.spec.template.metadata.labels).toMatchObject({ 'gateway.networking.k8s.io/gateway-name': 'demo-gateway', 'istio.io/dataplane-mode': 'none' });
    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).toBe('demo-gateway-istio');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext).toMatchObject({ runAsUser: 1337, runAsNonRoot: true, sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }] });
    const [c] = pod.containers;
    expect(c?.name).toBe('gateway');
    expect(c?.image).toBe('amesh/gateway:0.1.0');
    expect(c?.args).toEqual(['gateway-proxy']);
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? `fieldRef:${e.valueFrom?.fieldRef.fieldPath}`]));
    expect(env).toEqual({
      AMESH_GATEWAY_NAME: 'demo-gateway-istio',
      POD_NAME: 'fieldRef:metadata.name',
      POD_NAMESPACE: 'fieldRef:metadata.namespace',
      INSTANCE_IP: 'fieldRef:status.podIP',
      NODE_NAME: 'fieldRef:spec.nodeName',
      AMESH_CA_ADDRESS: 'amesh-controller.amesh-system.svc:15012',
      AMESH_XDS_ADDRESS: 'amesh-controller.amesh-system.svc:15012',
      AMESH_CA_ROOT_CERT_FILE: '/var/run/secrets/istio/root-cert.pem',
      AMESH_CA_TOKEN_FILE: '/var/run/secrets/tokens/istio-token',
      AMESH_TRUST_DOMAIN: 'example.org',
      AMESH_LOG_LEVEL: 'info',
      TMPDIR: '/var/run/amesh/tmp',
    });
    expect(c?.ports.map((p) => p.containerPort)).toEqual([15020, 15021]);
    expect(c?.readinessProbe.httpGet.port).toBe(15021);
    const s = r.service as unknown as Service;
    expect(s.spec.type).toBe('LoadBalancer');
    expect(s.spec.selector).toEqual({ 'gateway.networking.k8s.io/gateway-name': 'demo-gateway' });
    expect(s.spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      ['http-80', 80, 80],
      ['https-443', 443, 443],
      ['status-port', 15021, 15021],
    ]);
  });

  it('the default ingress gateway: no owner, the istio: ingressgateway labels on pods and Service, its own name as gateway-name', () => {
    const r = renderIngress(defaultIngress(), { trustDomain: 'cluster.local', caAddress: 'amesh-controller.mesh.svc:15012', image: 'reg/gw:2', logLevel: 'debug' });
    for (const o of r.objects) {
      expect(o.metadata.ownerReferences).toBeUndefined();
      expect(o.metadata.namespace).toBe('amesh-system');
      expect(o.metadata.labels).toMatchObject({ istio: 'ingressgateway', app: 'amesh-ingressgateway', 'gateway.networking.k8s.io/gateway-name': 'amesh-ingressgateway' });
      expect(isDefaultIngressObject(o)).toBe(true);
    }
    const d = r.deployment as unknown as Deployment;
    expect(d.spec.template.metadata.labels).toMatchObject({ istio: 'ingressgateway', app: 'amesh-ingressgateway' });
    const c = d.spec.template.spec.containers[0];
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
    expect([c?.image, env.AMESH_GATEWAY_NAME, env.AMESH_CA_ADDRESS, env.AMESH_LOG_LEVEL]).toEqual(['reg/gw:2', 'amesh-ingressgateway', 'amesh-controller.mesh.svc:15012', 'debug']);
    expect(isDefaultIngressObject(renderIngress(gatewayApi(), { trustDomain: 'cluster.local' }).deployment)).toBe(false);
    expect(isDefaultIngressObject({ metadata: { name: 'amesh-ingressgateway', labels: { 'app.kubernetes.io/managed-by': 'amesh' } } })).toBe(false);
  });

  it('listener ports the gateway uses itself are not rendered (the Service would be invalid)', () => {
    const d = gatewayApi({ ports: [{ name: 'http-80', port: 80 }, { name: 'tcp-15021', port: 15021 }] });
    expect(reservedPortsIn(d)).toEqual([15021]);
    const s = renderIngress(d, { trustDomain: 'cluster.local' }).service as unknown as Service;
    expect(s.spec.ports.map((p) => p.name)).toEqual(['http-80', 'status-port']);
  });

  it('adding or removing a listener changes the Service, never the Deployment (no rollout per listener)', () => {
    const render = (ports: IngressDeployment['ports']) => renderIngress(gatewayApi({ ports }), { trustDomain: 'cluster.local' });
    const one = render([{ name: 'http-80', port: 80 }]);
    const two = render([{ name: 'http-80', port: 80 }, { name: 'https-443', port: 443 }]);
    expect(two.deployment).toEqual(one.deployment);
    expect(two.service).not.toEqual(one.service);
  });

  it('the hash follows ports, labels and owner; a Gateway without uid and a template without the gateway container are refused', () => {
    const hash = (d: IngressDeployment): string | undefined => renderIngress(d, { trustDomain: 'cluster.local' }).service.metadata.annotations[RENDERED_HASH_ANNOTATION];
    expect(hash(gatewayApi())).toBe(hash(gatewayApi()));
    expect(hash(gatewayApi())).not.toBe(hash(gatewayApi({ ports: [{ name: 'http-80', port: 80 }] })));
    expect(hash(gatewayApi())).not.toBe(hash(gatewayApi({ labels: { team: 'a' } })));
    const refused = (fn: () => unknown, pattern: RegExp): void => {
      let caught: unknown;
      try {
        fn();
      } catch (err) {
        caught = err;
      }
      expect(isAmeshError(caught, 'AMESH_CONFIG_INVALID'), String(caught)).toBe(true);
      expect((caught as Error).message).toMatch(pattern);
    };
    refused(() => renderIngress(gatewayApi({ source: { kind: 'Gateway', namespace: 'demo', name: 'demo-gateway', uid: '' } }), { trustDomain: 'cluster.local' }), /has no uid/);
    const noContainer = parseWaypointTemplate('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${NAME}\nspec:\n  template:\n    spec:\n      containers: [{name: other}]\n');
    refused(() => renderIngress(gatewayApi(), { trustDomain: 'cluster.local' }, noContainer), /no container named gateway/);
  });

  it('the shipped template holds a ServiceAccount, a Deployment and a Service', () => {
    expect(gatewayTemplate().map((o) => o.kind)).toEqual(['ServiceAccount', 'Deployment', 'Service']);
  });
});

describe('desiredIngressStatus', () => {
  const accepted: IngressGatewayStatus = {
    conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' }],
    listeners: [{ name: 'http', supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], attachedRoutes: 1, conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed', message: 'ok' }] }],
  };
  const available = { metadata: { name: 'demo-gateway-istio' }, spec: { replicas: 1 }, status: { availableReplicas: 1 } };
  const withIp = { status: { loadBalancer: { ingress: [{ ip: '172.18.255.1' }] } } };
  const base = { deploymentRef: 'demo/demo-gateway-istio', translated: accepted };

  it.each<[string, Parameters<typeof desiredIngressStatus>[0], string, string, string]>([
    ['no Deployment yet', base, 'False', 'Pending', 'waiting for Deployment demo/demo-gateway-istio to be created'],
    ['replicas not available, a pod says why', { ...base, deployment: { metadata: {}, status: { availableReplicas: 0 } }, pods: [{ metadata: { name: 'p1' }, status: { containerStatuses: [{ state: { waiting: { reason: 'ErrImagePull' } } }] } }] }, 'False', 'Pending', 'waiting for Deployment demo/demo-gateway-istio: 0 of 1 replicas available; pod p1: ErrImagePull'],
    ['available, no load-balancer address', { ...base, deployment: available, service: { status: { loadBalancer: {} } } }, 'False', 'AddressNotAssigned', 'waiting for LoadBalancer Service demo/demo-gateway-istio to get an address (status.loadBalancer.ingress)'],
    ['available with an address', { ...base, deployment: available, service: withIp }, 'True', 'Programmed', '1 replica available at 172.18.255.1'],
    ['reserved listener ports named', { ...base, deployment: available, service: withIp, reservedPorts: [15021] }, 'True', 'Programmed', '1 replica available at 172.18.255.1; listener ports 15021 are not exposed (the gateway uses them itself)'],
    ['applying failed', { ...base, problem: 'Service demo/demo-gateway-istio already exists and is not owned by Gateway demo/demo-gateway' }, 'False', 'NoResources', 'Service demo/demo-gateway-istio already exists and is not owned by Gateway demo/demo-gateway'],
    ['not accepted', { translated: { conditions: [{ type: 'Accepted', status: 'False', reason: 'InvalidParameters', message: 'bad' }], listeners: [] } }, 'False', 'Invalid', 'not deployed: bad'],
    ['the translator’s Programmed=False wins', { ...base, deployment: available, service: withIp, translated: { ...accepted, conditions: [...accepted.conditions, { type: 'Programmed', status: 'False', reason: 'Invalid', message: 'no listener can be served' }] } }, 'False', 'Invalid', 'no listener can be served'],
  ])('%s → Programmed=%s/%s', (_what, input, status, reason, message) => {
    const d = desiredIngressStatus(input);
    expect(d.conditions.find((c) => c.type === 'Programmed')).toEqual({ type: 'Programmed', status, reason, message });
    expect(d.conditions[0]?.type).toBe('Accepted');
  });

  it('addresses from the load balancer (ip or hostname); listeners as the translator said', () => {
    expect(loadBalancerAddresses({ status: { loadBalancer: { ingress: [{ ip: '10.0.0.1' }, { hostname: 'lb.example.com' }] } } })).toEqual([
      { type: 'IPAddress', value: '10.0.0.1' },
      { type: 'Hostname', value: 'lb.example.com' },
    ]);
    const d = desiredIngressStatus({ ...base, deployment: available, service: withIp });
    expect(d.addresses).toEqual([{ type: 'IPAddress', value: '172.18.255.1' }]);
    expect(d.listeners).toEqual(accepted.listeners);
    expect(desiredIngressStatus({ translated: { conditions: [{ type: 'Accepted', status: 'False', reason: 'x', message: 'y' }], listeners: [] }, service: withIp }).addresses).toEqual([]);
  });

  it('listener conditions keep their time while unchanged, and get the generation', () => {
    const first = nextListeners(accepted.listeners, undefined, 3, now);
    expect(first[0]?.conditions[0]).toMatchObject({ type: 'Programmed', status: 'True', observedGeneration: 3, lastTransitionTime: now.toISOString() });
    const later = nextListeners(accepted.listeners, first, 4, new Date('2026-03-02T00:00:00Z'));
    expect(later[0]?.conditions[0]?.lastTransitionTime).toBe(now.toISOString());
    const flipped = nextListeners([{ ...accepted.listeners[0]!, conditions: [{ type: 'Programmed', status: 'False', reason: 'Invalid', message: 'x' }] }], first, 4, new Date('2026-03-02T00:00:00Z'));
    expect(flipped[0]?.conditions[0]?.lastTransitionTime).toBe('2026-03-02T00:00:00.000Z');
  });
});

describe('route status with ingress verdicts', () => {
  const ok = (message: string): ConditionSpec => ({ type: 'Accepted', status: 'True', reason: 'Accepted', message });

  it('mergeConditionSpecs: False wins, Warning True wins, equal statuses join messages, one side alone passes through', () => {
    const bad: ConditionSpec = { type: 'Accepted', status: 'False', reason: 'InvalidDestination', message: 'gateway: no such host' };
    expect(mergeConditionSpecs([ok('mesh ok')], [bad])).toEqual([bad]);
    expect(mergeConditionSpecs([ok('mesh ok')], [ok('gateway ok')])).toEqual([ok('mesh ok; gateway ok')]);
    expect(mergeConditionSpecs([ok('same')], [ok('same')])).toEqual([ok('same')]);
    const warning: ConditionSpec = { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: 'x' };
    expect(mergeConditionSpecs([ok('a')], [ok('a'), warning])).toEqual([ok('a'), warning]);
    expect(mergeConditionSpecs(undefined, [ok('g')])).toEqual([ok('g')]);
    expect(mergeConditionSpecs([ok('m')], undefined)).toEqual([ok('m')]);
    expect(mergeConditionSpecs(undefined, undefined)).toBeUndefined();
  });

  it('ingressParentsByRoute groups the HTTPRoute@Gateway keys', () => {
    const grouped = ingressParentsByRoute(new Map([
      ['HTTPRoute/demo/frontend@demo/demo-gateway', [ok('a')]],
      ['HTTPRoute/demo/frontend@gw/shared', [ok('b')]],
      ['GRPCRoute/demo/api@demo/demo-gateway', [ok('d')]],
      ['VirtualService/demo/frontend', [ok('c')]],
    ]));
    expect([...grouped.keys()]).toEqual(['HTTPRoute/demo/frontend', 'GRPCRoute/demo/api']);
    expect([...(grouped.get('HTTPRoute/demo/frontend')?.keys() ?? [])]).toEqual(['demo/demo-gateway', 'gw/shared']);
  });

  it('an HTTPRoute gets one ingress parent entry per parentRef to the Gateway, mesh entries kept, removed when no longer called for', () => {
    const route = httpRoute({ parentRefs: [{ group: '', kind: 'Service', name: 'backend' }, { name: 'demo-gateway', sectionName: 'http' }, { name: 'demo-gateway', sectionName: 'https' }, { name: 'other', namespace: 'x' }], rules: [] });
    const meshEntry = { parentRef: { group: '', kind: 'Service', name: 'backend' }, controllerName: WAYPOINT_CONTROLLER_NAME, conditions: [] };
    const foreign = { parentRef: { name: 'other', namespace: 'x' }, controllerName: 'example.com/ingress', conditions: [] };
    route.status = { parents: [foreign, meshEntry] };
    const next = nextRouteParents(route, undefined, new Set(), now, 'cluster.local', new Map([['demo/demo-gateway', [ok('attached to listener http')]]]));
    expect(next?.parents.map((p) => [p.controllerName, p.parentRef.name, p.parentRef.sectionName ?? '', p.conditions.map((c) => `${c.type}=${c.status}`).join(',')])).toEqual([
      ['example.com/ingress', 'other', '', ''],
      [WAYPOINT_CONTROLLER_NAME, 'backend', '', ''],
      [INGRESS_CONTROLLER_NAME, 'demo-gateway', 'http', 'Accepted=True'],
      [INGRESS_CONTROLLER_NAME, 'demo-gateway', 'https', 'Accepted=True'],
    ]);
    route.status = next;
    expect(nextRouteParents(route, undefined, new Set(), now, 'cluster.local', new Map([['demo/demo-gateway', [ok('attached to listener http')]]]))).toBeUndefined();
    // Without an ingress map the ingress entries are left alone; with an empty one they go.
    expect(nextRouteParents(route, undefined, new Set(), now)).toBeUndefined();
    expect(nextRouteParents(route, undefined, new Set(), now, 'cluster.local', new Map())?.parents.map((p) => p.controllerName)).toEqual(['example.com/ingress', WAYPOINT_CONTROLLER_NAME]);
  });

  it('RouteStatusWriter: Istio Gateways, merged VirtualServices and ingress-only HTTPRoutes are written once', async () => {
    const patches: Array<[string, string, string, unknown]> = [];
    const writer = new RouteStatusWriter({ log: silentLogger, now: () => now, patch: async (resource, namespace, name, status) => void patches.push([`${resource.group}/${resource.plural}`, namespace, name, status]) });
    const istioGateway = { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'frontend-gateway', namespace: 'demo', generation: 1 }, spec: {} };
    const vs = virtualService({});
    const hr = httpRoute({ parentRefs: [{ name: 'demo-gateway' }], rules: [] });
    const view = { ...demoView({ virtualServices: [vs], httpRoutes: [hr] }), istioGateways: [istioGateway] };
    const ingress = new Map<string, ConditionSpec[]>([
      ['IstioGateway/demo/frontend-gateway', [ok('served by amesh-system/amesh-ingressgateway')]],
      ['VirtualService/demo/backend', [ok('bound to gateway demo/frontend-gateway')]],
      ['HTTPRoute/demo/backend@demo/demo-gateway', [ok('attached')]],
    ]);
    writer.reconcile(view, new Map([['VirtualService/demo/backend', [ok('mesh')]]]), ingress);
    await writer.idle();
    expect(patches.map(([r, ns, name]) => `${r} ${ns}/${name}`)).toEqual(['networking.istio.io/gateways demo/frontend-gateway', 'networking.istio.io/virtualservices demo/backend', 'gateway.networking.k8s.io/httproutes demo/backend']);
    expect(patches[1]?.[3]).toMatchObject({ conditions: [{ type: 'Accepted', status: 'True', message: 'mesh; bound to gateway demo/frontend-gateway' }] });
    expect(patches[2]?.[3]).toMatchObject({ parents: [{ controllerName: INGRESS_CONTROLLER_NAME, parentRef: { name: 'demo-gateway' }, conditions: [{ type: 'Accepted', status: 'True' }] }] });
    istioGateway.spec = {};
    Object.assign(istioGateway, { status: patches[0]?.[3] });
    vs.status = patches[1]?.[3];
    hr.status = patches[2]?.[3];
    writer.reconcile(view, new Map([['VirtualService/demo/backend', [ok('mesh')]]]), ingress);
    await writer.idle();
    expect(patches).toHaveLength(3);
    // The Gateway parent goes away: its entry is removed.
    writer.reconcile(view, new Map([['VirtualService/demo/backend', [ok('mesh')]]]), new Map([...ingress].filter(([k]) => !k.startsWith('HTTPRoute/'))));
    await writer.idle();
    expect(patches).toHaveLength(4);
    expect(patches[3]?.[3]).toEqual({ parents: [] });
    writer.stop();
  });
});
