/**
 * Endpoints of ingress gateway clusters: HBONE to mesh pods with their identities, plain TCP to
 * pods outside the mesh, through the service's waypoint under istio.io/ingress-use-waypoint=true
 * (on the Service or its namespace), DestinationRule policies and subsets as waypoints have them.
 */
import { describe, expect, it } from 'vitest';
import type { KubeObjectLike, MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import { computeMeshResources } from '../../src/controller/mesh/compute-mesh-resources.js';
import { computeWaypointConfigs } from '../../src/controller/translate/waypoint-config.js';
import { assertValid, compute, configOf, DEMO, FRONTEND, gatewaySample, loadYaml, routeOf, viewOf } from '../helpers/ingress-fixtures.js';

const DEFAULT_KEY = 'amesh-system/amesh-ingressgateway';
const FRONTEND_META = { workloadName: 'frontend-0', namespace: 'demo', canonicalName: 'frontend', canonicalRevision: 'v1' };
const BACKEND = 'outbound|80||backend.demo.svc.cluster.local';

const waypoint: KubeObjectLike = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'demo' }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } };
const waypointService: KubeObjectLike = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'waypoint', namespace: 'demo' }, spec: { selector: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' }, ports: [{ name: 'mesh', port: 15008 }] } };

const both: KubeObjectLike = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'split', namespace: 'demo' },
  spec: { hosts: ['api.example.com'], gateways: ['frontend-gateway'], http: [{ route: [{ destination: { host: 'backend', subset: 'v2' } }] }] },
};
const rule: KubeObjectLike = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'backend', namespace: 'demo' }, spec: { host: 'backend', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } }, subsets: [{ name: 'v2', labels: { version: 'v2' } }] } };

function withLabels(objects: KubeObjectLike[], kind: string, name: string, labels: Record<string, string>): KubeObjectLike[] {
  return objects.map((o) => (o.kind === kind && o.metadata.name === name ? { ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...labels } } } : o));
}

function run(objects: KubeObjectLike[], namespaceLabels: Record<string, string> = {}) {
  const extra: Partial<MeshView> = { namespaces: [{ metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint', ...namespaceLabels } } }] };
  return compute(viewOf([...objects, waypoint, waypointService], { extra }));
}

const base = (): KubeObjectLike[] => [...loadYaml(DEMO), ...loadYaml(gatewaySample('frontend-gateway.yaml')), both, rule];

describe('ingress clusters', () => {
  it('without the label the gateway goes straight to the pods (HBONE), even though the service has a waypoint', () => {
    const config = configOf(run(base()), DEFAULT_KEY);
    const frontend = config.clusters.find((c) => c.name === FRONTEND);
    expect(frontend?.endpoints).toEqual([{ address: '10.0.0.1', port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/frontend-sa', hbone: true, workload: 'uid-pod-demo-frontend-0', meta: FRONTEND_META }]);
  });

  it('istio.io/ingress-use-waypoint=true on the Service: one endpoint, the VIP through the waypoint, with its identity', () => {
    const objects = withLabels(base(), 'Service', 'frontend', { 'istio.io/ingress-use-waypoint': 'true' });
    const result = run(objects);
    const config = configOf(result, DEFAULT_KEY);
    assertValid(config);
    const frontend = config.clusters.find((c) => c.name === FRONTEND);
    // Services get ClusterIPs in file order: frontend 10.96.0.1, backend 10.96.0.2, waypoint 10.96.0.3.
    expect(frontend?.endpoints).toEqual([{ address: '10.96.0.1', port: 80, identity: 'spiffe://cluster.local/ns/demo/sa/waypoint', hbone: true, waypoint: '10.96.0.3', meta: { workloadName: 'waypoint', namespace: 'demo', canonicalName: 'waypoint', canonicalRevision: 'latest' } }]);
    expect(config.clusters.find((c) => c.name === 'outbound|80|v2|backend.demo.svc.cluster.local')?.endpoints.map((e) => e.address)).toEqual(['10.0.0.3']);
  });

  it('the namespace label applies to every service of it; a Service’s own `false` opts out', () => {
    const objects = withLabels(base(), 'Service', 'backend', { 'istio.io/ingress-use-waypoint': 'false' });
    const config = configOf(run(objects, { 'istio.io/ingress-use-waypoint': 'true' }), DEFAULT_KEY);
    expect(config.clusters.find((c) => c.name === FRONTEND)?.endpoints[0]?.waypoint).toBe('10.96.0.3');
    expect(config.clusters.find((c) => c.name === 'outbound|80|v2|backend.demo.svc.cluster.local')?.endpoints[0]?.waypoint).toBeUndefined();
  });

  it('a waypoint without an address yet: the pods are used and the VirtualService routing there says why', () => {
    const objects = withLabels(base(), 'Service', 'frontend', { 'istio.io/ingress-use-waypoint': 'true' });
    const extra: Partial<MeshView> = { namespaces: [{ metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } }] };
    const headless = { ...waypointService, spec: { ...(waypointService.spec as object), clusterIP: 'None' } };
    const result = compute(viewOf([...objects, waypoint, headless], { extra }));
    expect(configOf(result, DEFAULT_KEY).clusters.find((c) => c.name === FRONTEND)?.endpoints[0]).toMatchObject({ address: '10.0.0.1', hbone: true });
    const warning = result.status.get('VirtualService/demo/frontend')?.find((c) => c.type === 'Warning');
    expect(warning?.message).toContain('istio.io/ingress-use-waypoint=true but the service');
    expect(result.status.get('VirtualService/demo/split')?.some((c) => c.type === 'Warning')).toBe(false);
  });

  it('the label without a waypoint bound changes nothing', () => {
    const objects = withLabels([...loadYaml(DEMO), ...loadYaml(gatewaySample('frontend-gateway.yaml'))], 'Service', 'frontend', { 'istio.io/ingress-use-waypoint': 'true' });
    const config = configOf(compute(viewOf(objects)), DEFAULT_KEY);
    expect(config.clusters[0]?.endpoints[0]).toMatchObject({ address: '10.0.0.1', hbone: true });
    expect(config.clusters[0]?.endpoints[0]?.waypoint).toBeUndefined();
  });

  it('a DestinationRule turned invalid keeps its last valid policy when the waypoint translator’s last valid set is given', () => {
    const objects = base();
    const first = viewOf([...objects, waypoint, waypointService]);
    const { valid } = computeWaypointConfigs(first, computeMeshResources(first, { trustDomain: 'cluster.local' }), { trustDomain: 'cluster.local' });
    const broken = objects.map((o) => (o.kind === 'DestinationRule' ? { ...o, spec: { ...(o.spec as object), trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: { tcp: { maxConnections: -1 } } } } } : o));
    const lb = (options: Parameters<typeof compute>[1]) => configOf(compute(viewOf([...broken, waypoint, waypointService]), options), DEFAULT_KEY).clusters.find((c) => c.subset === 'v2')?.lb;
    expect(lb({})).toBeUndefined(); // the subset is gone with the rule: the VirtualService naming it is rejected
    expect(lb({ waypointLastValid: valid })).toBe('ROUND_ROBIN');
  });

  it('DestinationRule policy and subsets apply as at waypoints; only clusters the routes use are listed', () => {
    const config = configOf(run(base()), DEFAULT_KEY);
    expect(config.clusters.map((c) => c.name).sort()).toEqual(['outbound|80|v2|backend.demo.svc.cluster.local', FRONTEND].sort());
    const v2 = config.clusters.find((c) => c.subset === 'v2');
    expect(v2).toMatchObject({ subset: 'v2', lb: 'ROUND_ROBIN', service: 'demo/backend.demo.svc.cluster.local', port: 80 });
    expect(v2?.endpoints.map((e) => e.workload)).toEqual(['uid-pod-demo-backend-v2-0']);
    expect(routeOf(config, 80, 'api.example.com')).toBe('outbound|80|v2|backend.demo.svc.cluster.local');
    expect(routeOf(config, 80, 'www.example.com')).toBe(FRONTEND);
    expect(config.clusters.some((c) => c.name === BACKEND)).toBe(false);
  });
});
