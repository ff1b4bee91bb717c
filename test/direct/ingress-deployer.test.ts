/**
 * Ingress gateways against the embedded API server (the one `amesh sandbox` runs), wired as the
 * controller wires them: MeshIndex → WaypointPublisher (waypoint + ingress translation, one
 * ResourceStore) → IngressDeployer and RouteStatusWriter. With the seed manifests of
 * samples/gateway applied unchanged:
 * - demo-gateway (Gateway API, class istio): `demo-gateway-istio` ServiceAccount, Deployment and
 *   LoadBalancer Service owned by the Gateway; Programmed waits for replicas (set by hand: no
 *   kubelet here), then for the load-balancer address (set by hand: no LB controller here), then
 *   turns True with the address in `status.addresses`; listeners and the HTTPRoute's ingress
 *   parent status are written; the gateway's config is in the store under its deployment's name;
 *   deleting the Gateway lets garbage collection remove the rest.
 * - frontend-gateway (Istio Gateway): the default `amesh-ingressgateway` in amesh-system, with
 *   `istio: ingressgateway` pods; the Istio Gateway and its VirtualService get conditions; once
 *   the Istio Gateway is deleted, the default gateway's objects are deleted too.
 * - GatewayClasses `amesh` and `istio`: created when absent, Accepted; an existing one is only
 *   given the condition.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { GatewayClasses } from '../../src/controller/gateway/gateway-classes.js';
import { IngressDeployer } from '../../src/controller/gateway/ingress-deployer.js';
import { MeshIndex } from '../../src/controller/mesh/mesh-index.js';
import { RouteStatusWriter } from '../../src/controller/status/route-status.js';
import { computeIngress } from '../../src/controller/translate/ingress-config.js';
import { INGRESS_CONTROLLER_NAME } from '../../src/controller/translate/ingress-model.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { WaypointPublisher } from '../../src/controller/xds/waypoint-publisher.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { decodeWaypointConfig, WAYPOINT_CONFIG_TYPE_URL } from '../../src/xds/waypoint-codec.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const WAIT = { timeoutMs: 10_000, intervalMs: 25 };
const GATEWAY_API = 'gateway.networking.k8s.io/v1';
const SAMPLES = join(import.meta.dirname, '..', '..', 'samples', 'gateway');

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

interface GatewayStatus {
  conditions?: Condition[];
  addresses?: Array<{ type: string; value: string }>;
  listeners?: Array<{ name: string; attachedRoutes: number; conditions: Condition[] }>;
}

const condition = (list: Condition[] | undefined, type: string): Condition | undefined => list?.find((c) => c.type === type);

function sample(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(join(SAMPLES, file), 'utf8'))
    .map((d) => d.toJSON() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
}

describe('IngressDeployer against the embedded API server', () => {
  let h: Harness;
  let mesh: MeshIndex;
  let deployer: IngressDeployer;
  let routeStatus: RouteStatusWriter;
  let publisher: WaypointPublisher;
  const store = new ResourceStore();

  const get = (apiVersion: string, kind: string, namespace: string, name: string): KubeObject | undefined => h.store.get(apiVersion, kind, namespace, name);
  const objects = (namespace: string, name: string): Array<KubeObject | undefined> => [get('v1', 'ServiceAccount', namespace, name), get('apps/v1', 'Deployment', namespace, name), get('v1', 'Service', namespace, name)];
  const gatewayStatus = (name: string): GatewayStatus => (get(GATEWAY_API, 'Gateway', 'demo', name)?.status ?? {}) as GatewayStatus;

  beforeAll(async () => {
    h = await startHarness();
    for (const name of ['demo', 'amesh-system']) h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    h.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'frontend', namespace: 'demo' }, spec: { selector: { app: 'frontend' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(h.kubeconfig);
    mesh = new MeshIndex({ kubeConfig, log: silentLogger, trustDomain: 'cluster.local' });
    deployer = new IngressDeployer({ kubeConfig, log: silentLogger, trustDomain: 'cluster.local' });
    routeStatus = new RouteStatusWriter({ kubeConfig, log: silentLogger });
    publisher = new WaypointPublisher({
      mesh,
      store,
      log: silentLogger,
      trustDomain: 'cluster.local',
      coalesceMs: 5,
      ingress: { translate: computeIngress, controllerNamespace: 'amesh-system' },
      onPublished: (_stats, status, ingress) => {
        const view = mesh.view();
        routeStatus.reconcile(view, status, ingress?.status);
        if (ingress) deployer.reconcile(view, ingress);
      },
    });
    await deployer.start();
    await mesh.start();
    await mesh.whenSynced();
    publisher.start();
  });

  afterAll(async () => {
    publisher?.stop();
    routeStatus?.stop();
    await deployer?.stop();
    await mesh?.stop();
    await h?.close();
  });

  it('demo-gateway: demo-gateway-istio deployed and owned by the Gateway; Programmed after replicas and the LB address', async () => {
    const [gatewayDoc, routeDoc] = sample('demo-gateway.yaml');
    const gw = h.store.create(gatewayDoc as KubeObject);
    h.store.create(routeDoc as KubeObject);
    await eventually(() => {
      for (const object of objects('demo', 'demo-gateway-istio')) {
        expect(object).toBeDefined();
        expect(object?.metadata.ownerReferences).toEqual([{ apiVersion: GATEWAY_API, kind: 'Gateway', name: 'demo-gateway', uid: gw.metadata.uid, controller: true }]);
        expect(object?.metadata.managedFields?.some((f) => f.manager === 'amesh-controller' && f.operation === 'Apply')).toBe(true);
      }
    }, { ...WAIT, description: 'the ingress objects' });
    const service = get('v1', 'Service', 'demo', 'demo-gateway-istio') as KubeObject & { spec: { type: string; selector: Record<string, string>; ports: Array<{ port: number; targetPort: number }> } };
    expect(service.spec.type).toBe('LoadBalancer');
    expect(service.spec.selector).toEqual({ 'gateway.networking.k8s.io/gateway-name': 'demo-gateway' });
    expect(service.spec.ports.map((p) => [p.port, p.targetPort])).toEqual([
      [80, 80],
      [15021, 15021],
    ]);
    const deployment = get('apps/v1', 'Deployment', 'demo', 'demo-gateway-istio') as KubeObject & { spec: { template: { metadata: { labels: Record<string, string> }; spec: { securityContext: { sysctls: unknown[] }; containers: Array<{ image: string; args: string[]; env: Array<{ name: string; value?: string }> }> } } } };
    expect(deployment.spec.template.metadata.labels).toMatchObject({ 'istio.io/dataplane-mode': 'none', 'gateway.networking.k8s.io/gateway-name': 'demo-gateway' });
    expect(deployment.spec.template.spec.securityContext.sysctls).toEqual([{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }]);
    expect(deployment.spec.template.spec.containers[0]?.args).toEqual(['gateway-proxy']);
    expect(deployment.spec.template.spec.containers[0]?.env).toContainEqual({ name: 'AMESH_GATEWAY_NAME', value: 'demo-gateway-istio' });

    // The gateway's config is published under its deployment's name.
    const published = store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/demo-gateway-istio');
    expect(published).toBeDefined();
    const config = decodeWaypointConfig(published?.bytes ?? new Uint8Array());
    expect([config.kind, config.namespace, config.name, config.identity]).toEqual(['gateway', 'demo', 'demo-gateway-istio', 'spiffe://cluster.local/ns/demo/sa/demo-gateway-istio']);
    expect(config.listeners?.map((l) => [l.port, l.protocol])).toEqual([[80, 'HTTP']]);

    await eventually(() => {
      const status = gatewayStatus('demo-gateway');
      expect(condition(status.conditions, 'Accepted')).toMatchObject({ status: 'True' });
      expect(condition(status.conditions, 'Programmed')).toMatchObject({ status: 'False', reason: 'Pending', message: 'waiting for Deployment demo/demo-gateway-istio: 0 of 1 replicas available' });
      expect(status.listeners?.map((l) => [l.name, l.attachedRoutes])).toEqual([['http', 1]]);
      const parents = ((get(GATEWAY_API, 'HTTPRoute', 'demo', 'frontend')?.status ?? {}) as { parents?: Array<{ controllerName: string; parentRef: { name: string }; conditions: Condition[] }> }).parents ?? [];
      expect(parents.map((p) => [p.controllerName, p.parentRef.name, condition(p.conditions, 'Accepted')?.status])).toEqual([[INGRESS_CONTROLLER_NAME, 'demo-gateway', 'True']]);
    }, { ...WAIT, description: 'Accepted, Programmed=False/Pending, listeners and the route parent' });

    h.store.update({ ...(get('apps/v1', 'Deployment', 'demo', 'demo-gateway-istio') as KubeObject), status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } }, { subresource: 'status' });
    await eventually(() => expect(condition(gatewayStatus('demo-gateway').conditions, 'Programmed')).toMatchObject({ status: 'False', reason: 'AddressNotAssigned' }), { ...WAIT, description: 'AddressNotAssigned' });
    expect(gatewayStatus('demo-gateway').addresses).toEqual([]);

    h.store.update({ ...(get('v1', 'Service', 'demo', 'demo-gateway-istio') as KubeObject), status: { loadBalancer: { ingress: [{ ip: '172.30.255.10' }] } } }, { subresource: 'status' });
    await eventually(() => {
      const status = gatewayStatus('demo-gateway');
      expect(condition(status.conditions, 'Programmed')).toMatchObject({ status: 'True', reason: 'Programmed', message: '1 replica available at 172.30.255.10' });
      expect(status.addresses).toEqual([{ type: 'IPAddress', value: '172.30.255.10' }]);
    }, { ...WAIT, description: 'Programmed=True with the LB address' });
  });

  it('applies only what changed: reconciling again writes nothing', async () => {
    const versions = (): Array<string | undefined> => [...objects('demo', 'demo-gateway-istio'), get(GATEWAY_API, 'Gateway', 'demo', 'demo-gateway'), get(GATEWAY_API, 'HTTPRoute', 'demo', 'frontend')].map((o) => o?.metadata.resourceVersion);
    await eventually(async () => {
      await deployer.idle();
      await routeStatus.idle();
      const seen = versions();
      await new Promise((r) => setTimeout(r, 200));
      publisher.publish();
      await deployer.idle();
      await routeStatus.idle();
      expect(versions()).toEqual(seen);
    }, { ...WAIT, description: 'settled' });
  });

  it('never takes over an object of the default gateway’s name that it did not create', async () => {
    h.store.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'amesh-ingressgateway', namespace: 'amesh-system' } });
    const [istioGateway] = sample('frontend-gateway.yaml');
    h.store.create(istioGateway as KubeObject);
    // The translator asks for the default gateway; the deployer's pass that follows must stop at the ServiceAccount.
    await eventually(() => expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'amesh-system/amesh-ingressgateway')).toBeDefined(), { ...WAIT, description: 'the default gateway config' });
    await deployer.idle();
    expect(get('apps/v1', 'Deployment', 'amesh-system', 'amesh-ingressgateway')).toBeUndefined();
    expect(get('v1', 'Service', 'amesh-system', 'amesh-ingressgateway')).toBeUndefined();
    expect(get('v1', 'ServiceAccount', 'amesh-system', 'amesh-ingressgateway')?.metadata.labels).toBeUndefined();
    h.store.delete('networking.istio.io/v1', 'Gateway', 'demo', 'frontend-gateway');
    await eventually(() => expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'amesh-system/amesh-ingressgateway')).toBeUndefined(), WAIT);
    await deployer.idle();
    // Not ours: not deleted with the default gateway either.
    expect(get('v1', 'ServiceAccount', 'amesh-system', 'amesh-ingressgateway')).toBeDefined();
    h.store.delete('v1', 'ServiceAccount', 'amesh-system', 'amesh-ingressgateway');
  });

  it('frontend-gateway: the default amesh-ingressgateway serves it; Istio Gateway and VirtualService get conditions; removed after the Istio Gateway', async () => {
    const [istioGateway, vs] = sample('frontend-gateway.yaml');
    h.store.create(istioGateway as KubeObject);
    h.store.create(vs as KubeObject);
    await eventually(() => {
      for (const object of objects('amesh-system', 'amesh-ingressgateway')) {
        expect(object).toBeDefined();
        expect(object?.metadata.ownerReferences ?? []).toEqual([]);
        expect(object?.metadata.labels).toMatchObject({ istio: 'ingressgateway', 'app.kubernetes.io/component': 'ingress-gateway' });
      }
    }, { ...WAIT, description: 'the default ingress gateway' });
    const deployment = get('apps/v1', 'Deployment', 'amesh-system', 'amesh-ingressgateway') as KubeObject & { spec: { template: { metadata: { labels: Record<string, string> } } } };
    expect(deployment.spec.template.metadata.labels).toMatchObject({ istio: 'ingressgateway', app: 'amesh-ingressgateway' });
    expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'amesh-system/amesh-ingressgateway')).toBeDefined();
    await eventually(() => {
      const gwConditions = ((get('networking.istio.io/v1', 'Gateway', 'demo', 'frontend-gateway')?.status ?? {}) as { conditions?: Condition[] }).conditions;
      expect(condition(gwConditions, 'Accepted')).toMatchObject({ status: 'True' });
      const vsConditions = ((get('networking.istio.io/v1', 'VirtualService', 'demo', 'frontend')?.status ?? {}) as { conditions?: Condition[] }).conditions;
      expect(condition(vsConditions, 'Accepted')).toMatchObject({ status: 'True' });
    }, { ...WAIT, description: 'Istio Gateway and VirtualService conditions' });

    h.store.delete('networking.istio.io/v1', 'Gateway', 'demo', 'frontend-gateway');
    await eventually(() => {
      for (const object of objects('amesh-system', 'amesh-ingressgateway')) expect(object).toBeUndefined();
      expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'amesh-system/amesh-ingressgateway')).toBeUndefined();
    }, { ...WAIT, description: 'the default ingress gateway deleted' });
  });

  it('deleting the Gateway API Gateway removes its objects (owner-reference garbage collection) and its config', async () => {
    h.store.delete(GATEWAY_API, 'Gateway', 'demo', 'demo-gateway');
    await eventually(() => {
      for (const object of objects('demo', 'demo-gateway-istio')) expect(object).toBeUndefined();
      expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/demo-gateway-istio')).toBeUndefined();
    }, { ...WAIT, description: 'garbage collection' });
  });
});

describe('GatewayClasses against the embedded API server', () => {
  let h: Harness;
  let classes: GatewayClasses;

  beforeAll(async () => {
    h = await startHarness();
    // An `istio` class made for Istio already exists: amesh only adds its condition.
    h.store.create({ apiVersion: GATEWAY_API, kind: 'GatewayClass', metadata: { name: 'istio' }, spec: { controllerName: 'istio.io/gateway-controller' } });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(h.kubeconfig);
    classes = new GatewayClasses({ kubeConfig, log: silentLogger });
    await classes.start();
  });

  afterAll(async () => {
    await classes?.stop();
    await h?.close();
  });

  it('creates amesh, accepts both, leaves the existing istio class’s spec alone', async () => {
    const cls = (name: string) => h.store.get(GATEWAY_API, 'GatewayClass', undefined, name) as (KubeObject & { spec: { controllerName: string }; status?: { conditions?: Condition[] } }) | undefined;
    await eventually(() => {
      expect(cls('amesh')?.spec.controllerName).toBe(INGRESS_CONTROLLER_NAME);
      expect(condition(cls('amesh')?.status?.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
      expect(condition(cls('istio')?.status?.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted', message: expect.stringContaining('controllerName istio.io/gateway-controller is not amesh') });
    }, { ...WAIT, description: 'GatewayClasses accepted' });
    expect(cls('istio')?.spec.controllerName).toBe('istio.io/gateway-controller');
    const versions = [cls('amesh')?.metadata.resourceVersion, cls('istio')?.metadata.resourceVersion];
    await classes.idle();
    await new Promise((r) => setTimeout(r, 200));
    await classes.idle();
    expect([cls('amesh')?.metadata.resourceVersion, cls('istio')?.metadata.resourceVersion]).toEqual(versions);
  });
});
