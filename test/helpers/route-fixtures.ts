/**
 * The seed demo as routing tests need it: namespace `demo` enrolled and bound to waypoint
 * `demo/waypoint`, Service `backend` (port 80 `http` → 8080) over pods backend-v1 / backend-v2
 * (label `version`), the Istio canary DestinationRule and VirtualService, and helpers to build a
 * MeshView and RouteContext from them.
 */
import { computeMeshResources, type KubeObjectLike, type MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { DestinationRuleObject } from '../../src/controller/translate/destination-rule.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import type { HttpRouteObject } from '../../src/controller/translate/http-route.js';
import type { HostRule, RouteContext, RouteService } from '../../src/controller/translate/route-model.js';
import type { ServiceObject, ServicePortSpec } from '../../src/controller/translate/service.js';
import type { VirtualServiceObject } from '../../src/controller/translate/virtual-service.js';

export const TRUST_DOMAIN = 'cluster.local';
export const BACKEND = 'backend.demo.svc.cluster.local';

export const namespace = (name: string, labels: Record<string, string> = {}): NamespaceObject => ({ metadata: { name, labels } });

export function pod(name: string, ip: string, labels: Record<string, string>, extra: { namespace?: string; sa?: string; ready?: boolean } = {}): PodObject {
  return {
    metadata: { name, namespace: extra.namespace ?? 'demo', uid: `uid-${name}`, labels },
    spec: { nodeName: 'node1', serviceAccountName: extra.sa ?? 'backend', containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: extra.ready === false ? 'False' : 'True' }] },
  };
}

export function service(name: string, ip: string, selector: Record<string, string>, ports: ServicePortSpec[], ns = 'demo', labels: Record<string, string> = {}): ServiceObject {
  return { metadata: { name, namespace: ns, labels }, spec: { clusterIP: ip, selector, ports } };
}

export const waypointGateway = (name = 'waypoint', ns = 'demo'): KubeObjectLike => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name, namespace: ns, uid: `uid-gw-${name}` },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
});

export const destinationRule = (spec: unknown, name = 'backend', extra: Partial<KubeObjectLike['metadata']> = {}): DestinationRuleObject => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name, namespace: 'demo', uid: `uid-dr-${name}`, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', ...extra },
  spec: spec as never,
});

export const virtualService = (spec: unknown, name = 'backend', extra: Partial<KubeObjectLike['metadata']> = {}): VirtualServiceObject => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name, namespace: 'demo', uid: `uid-vs-${name}`, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', ...extra },
  spec: spec as never,
});

export const httpRoute = (spec: unknown, name = 'backend', extra: Partial<KubeObjectLike['metadata']> = {}): HttpRouteObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: 'demo', uid: `uid-hr-${name}`, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', ...extra },
  spec: spec as never,
});

/** The seed's DestinationRule: subsets v1 / v2 by the `version` label. */
export const CANARY_DR_SPEC = { host: 'backend', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] };

/** The seed's VirtualService: `end-user`… the header rule to v2, else 90/10. */
export const CANARY_VS_SPEC = {
  hosts: ['backend'],
  http: [
    { match: [{ headers: { 'user-group': { exact: 'beta-tester' } } }], route: [{ destination: { host: 'backend', subset: 'v2' } }] },
    {
      route: [
        { destination: { host: 'backend', subset: 'v1' }, weight: 90 },
        { destination: { host: 'backend', subset: 'v2' }, weight: 10 },
      ],
    },
  ],
};

export function demoView(extra: Partial<MeshView> = {}): MeshView {
  return {
    namespaces: [namespace('demo', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' })],
    pods: [
      pod('backend-v1', '10.0.0.11', { app: 'backend', version: 'v1' }),
      pod('backend-v2', '10.0.0.12', { app: 'backend', version: 'v2' }),
      pod('frontend', '10.0.0.20', { app: 'frontend' }, { sa: 'frontend' }),
    ],
    services: [
      service('backend', '10.96.0.10', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
      service('frontend', '10.96.0.20', { app: 'frontend' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
      service('waypoint', '10.96.0.50', { 'gateway.networking.k8s.io/gateway-name': 'waypoint' }, [{ name: 'mesh', port: 15008 }]),
    ],
    gateways: [waypointGateway()],
    ...extra,
  };
}

export const demoResources = (view: MeshView) => computeMeshResources(view, { trustDomain: TRUST_DOMAIN });

/** A RouteContext over `services` (hostname → ports) and subsets of `backend`. */
export function routeContext(extra: { services?: RouteService[]; rules?: Record<string, HostRule> } = {}): RouteContext {
  const services: RouteService[] = extra.services ?? [
    { namespace: 'demo', name: 'backend', hostname: BACKEND, ports: [80] },
    { namespace: 'demo', name: 'frontend', hostname: 'frontend.demo.svc.cluster.local', ports: [80] },
    { namespace: 'demo', name: 'multi', hostname: 'multi.demo.svc.cluster.local', ports: [80, 8080] },
  ];
  const rules = extra.rules ?? {
    [BACKEND]: {
      rule: 'demo/backend',
      subsets: new Map([
        ['v1', { labels: { version: 'v1' } }],
        ['v2', { labels: { version: 'v2' } }],
      ]),
    },
  };
  return { clusterDomain: 'cluster.local', services: new Map(services.map((s) => [s.hostname, s])), destinationRules: new Map(Object.entries(rules)) };
}
