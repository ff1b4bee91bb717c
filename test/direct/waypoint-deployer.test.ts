/**
 * The waypoint deployer against the embedded API server (the same server `amesh sandbox` runs):
 * a waypoint Gateway becomes a ServiceAccount, Deployment and Service owned by it; Programmed
 * follows the Deployment's available replicas (set by hand here: no kubelet in direct tests) and
 * the Service's ClusterIP; a Gateway we cannot honour is not deployed and says why; an object we
 * did not create is never taken over; deleting the Gateway lets garbage collection remove the
 * rest. The MeshIndex feeds the deployer as the controller does.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyWaypoint, deleteWaypoints, listWaypointGateways, waypointRow, waypointStatus } from '../../src/cli/waypoint.js';
import { MeshIndex } from '../../src/controller/mesh/mesh-index.js';
import { WaypointStatusWriter } from '../../src/controller/status/waypoint-status.js';
import { WaypointDeployer } from '../../src/controller/waypoint/deployer.js';
import { RENDERED_HASH_ANNOTATION } from '../../src/controller/waypoint/render.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const WAIT = { timeoutMs: 10_000, intervalMs: 25 };
const GATEWAY_API = 'gateway.networking.k8s.io/v1';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}

function gateway(name: string, o: { for?: string; listeners?: unknown[]; className?: string; annotations?: Record<string, string> } = {}): KubeObject {
  return {
    apiVersion: GATEWAY_API,
    kind: 'Gateway',
    metadata: { name, namespace: 'demo', ...(o.for ? { labels: { 'istio.io/waypoint-for': o.for } } : {}), ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: { gatewayClassName: o.className ?? 'istio-waypoint', listeners: o.listeners ?? [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  };
}

describe('WaypointDeployer against the embedded API server', () => {
  let h: Harness;
  let mesh: MeshIndex;
  let deployer: WaypointDeployer;

  const get = (kind: string, name: string): KubeObject | undefined => h.store.get(kind === 'Deployment' ? 'apps/v1' : kind === 'Gateway' ? GATEWAY_API : 'v1', kind, 'demo', name);
  const conditions = (name: string): Condition[] => ((get('Gateway', name)?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []);
  const condition = (name: string, type: string): Condition | undefined => conditions(name).find((c) => c.type === type);

  beforeAll(async () => {
    h = await startHarness();
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(h.kubeconfig);
    mesh = new MeshIndex({ kubeConfig, log: silentLogger, trustDomain: 'cluster.local' });
    deployer = new WaypointDeployer({ kubeConfig, log: silentLogger, trustDomain: 'cluster.local' });
    await deployer.start();
    await mesh.start();
    await mesh.whenSynced();
    mesh.onChange(() => deployer.reconcile(mesh.view()));
    deployer.reconcile(mesh.view());
  });

  afterAll(async () => {
    await deployer?.stop();
    await mesh?.stop();
    await h?.close();
  });

  it('renders ServiceAccount, Deployment and Service owned by the Gateway; Programmed waits for replicas', async () => {
    const gw = h.store.create(gateway('waypoint'));
    const uid = gw.metadata.uid;
    await eventually(() => {
      for (const kind of ['ServiceAccount', 'Deployment', 'Service']) {
        const object = get(kind, 'waypoint');
        expect(object, kind).toBeDefined();
        expect(object?.metadata.ownerReferences).toEqual([{ apiVersion: GATEWAY_API, kind: 'Gateway', name: 'waypoint', uid, controller: true }]);
        expect(object?.metadata.labels).toMatchObject({ 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'app.kubernetes.io/managed-by': 'amesh' });
        expect(object?.metadata.managedFields?.some((f) => f.manager === 'amesh-controller' && f.operation === 'Apply')).toBe(true);
      }
    }, { ...WAIT, description: 'the waypoint objects' });
    const deployment = get('Deployment', 'waypoint') as KubeObject & { spec: { template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; containers: Array<{ image: string; args: string[]; env: Array<{ name: string; value?: string }> }> } } } };
    expect(deployment.spec.template.metadata.labels).toMatchObject({ 'istio.io/dataplane-mode': 'none', 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
    expect(deployment.spec.template.spec.serviceAccountName).toBe('waypoint');
    const [container] = deployment.spec.template.spec.containers;
    expect(container?.image).toBe('amesh/waypoint:0.1.0');
    expect(container?.args).toEqual(['waypoint-proxy']);
    expect(container?.env).toContainEqual({ name: 'AMESH_WAYPOINT_NAME', value: 'waypoint' });
    expect(container?.env).toContainEqual({ name: 'AMESH_TRUST_DOMAIN', value: 'cluster.local' });

    const pending = await eventually(() => {
      expect(condition('waypoint', 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: 1 });
      const p = condition('waypoint', 'Programmed');
      // First "to be created", then — once the Deployment informer has it — the replica count.
      expect(p).toMatchObject({ status: 'False', reason: 'Pending', message: 'waiting for Deployment demo/waypoint: 0 of 1 replicas available' });
      return p;
    }, { ...WAIT, description: 'Programmed=False/Pending, waiting for replicas' });
    expect(pending?.message).toBe('waiting for Deployment demo/waypoint: 0 of 1 replicas available');

    const clusterIP = (get('Service', 'waypoint')?.spec as { clusterIP?: string }).clusterIP;
    expect(clusterIP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const live = get('Deployment', 'waypoint') as KubeObject;
    h.store.update({ ...live, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } }, { subresource: 'status' });
    await eventually(() => {
      expect(condition('waypoint', 'Programmed')).toMatchObject({ status: 'True', reason: 'Programmed', message: `1 replica available at ${clusterIP}` });
      expect((get('Gateway', 'waypoint')?.status as { addresses?: unknown }).addresses).toEqual([
        { type: 'IPAddress', value: clusterIP },
        { type: 'Hostname', value: 'waypoint.demo.svc.cluster.local' },
      ]);
    }, { ...WAIT, description: 'Programmed=True with the address' });
  });

  it('applies only what changed: reconciling again writes nothing', async () => {
    const versions = (): Array<string | undefined> => ['ServiceAccount', 'Deployment', 'Service', 'Gateway'].map((k) => get(k, 'waypoint')?.metadata.resourceVersion);
    // Settled first: the informers behind mesh.view() have caught up with the last status write.
    await eventually(async () => {
      await deployer.idle();
      const seen = versions();
      await new Promise((r) => setTimeout(r, 200));
      deployer.reconcile(mesh.view());
      await deployer.idle();
      expect(versions()).toEqual(seen);
    }, { ...WAIT, description: 'the deployer settled' });
    const before = versions();
    for (let i = 0; i < 3; i++) deployer.reconcile(mesh.view());
    await deployer.idle();
    expect(['ServiceAccount', 'Deployment', 'Service', 'Gateway'].map((k) => get(k, 'waypoint')?.metadata.resourceVersion)).toEqual(before);
  });

  it('re-applies an object whose rendered form changed (someone edited our hash away)', async () => {
    const sa = get('ServiceAccount', 'waypoint') as KubeObject;
    h.store.update({ ...sa, metadata: { ...sa.metadata, annotations: { [RENDERED_HASH_ANNOTATION]: 'stale' } } });
    await eventually(() => expect(get('ServiceAccount', 'waypoint')?.metadata.annotations?.[RENDERED_HASH_ANNOTATION]).not.toBe('stale'), { ...WAIT, description: 'the ServiceAccount re-applied' });
  });

  it.each([
    ['a bad istio.io/waypoint-for', gateway('bad-for', { for: 'services' }), 'InvalidParameters', 'label istio.io/waypoint-for="services" is not one of service, workload, all, none; the waypoint is not deployed'],
    ['no HBONE listener', gateway('bad-listener', { listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] }), 'ListenersNotValid', 'a waypoint needs a listener {port: 15008, protocol: HBONE}; found http 80/HTTP; the waypoint is not deployed'],
  ])('%s: Accepted=False with the reason, nothing deployed', async (_what, object, reason, message) => {
    h.store.create(object);
    const name = object.metadata.name ?? '';
    await eventually(() => {
      expect(condition(name, 'Accepted')).toMatchObject({ status: 'False', reason, message });
      expect(condition(name, 'Programmed')).toMatchObject({ status: 'False', reason: 'Invalid' });
    }, { ...WAIT, description: `${name} not accepted` });
    await deployer.idle();
    expect(get('Deployment', name)).toBeUndefined();
    expect(get('ServiceAccount', name)).toBeUndefined();
  });

  it('never takes over an object of the same name that it did not create', async () => {
    h.store.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'mine', namespace: 'demo' } });
    h.store.create(gateway('mine'));
    await eventually(() => expect(condition('mine', 'Programmed')).toMatchObject({ status: 'False', reason: 'NoResources', message: expect.stringContaining('ServiceAccount demo/mine already exists and is not owned by this Gateway') }), {
      ...WAIT,
      description: 'NoResources',
    });
    expect(get('ServiceAccount', 'mine')?.metadata.ownerReferences).toBeUndefined();
    expect(get('Deployment', 'mine')).toBeUndefined();
  });

  it('ignores Gateways of other classes', async () => {
    h.store.create(gateway('ingress', { className: 'istio' }));
    deployer.reconcile(mesh.view());
    await deployer.idle();
    await eventually(() => expect(mesh.view().gateways?.some((g) => g.metadata.name === 'ingress')).toBe(true), WAIT);
    deployer.reconcile(mesh.view());
    await deployer.idle();
    expect(get('Deployment', 'ingress')).toBeUndefined();
    expect(get('Gateway', 'ingress')?.status).toBeUndefined();
  });

  it('deleting the Gateway removes its objects (owner-reference garbage collection)', async () => {
    h.store.delete(GATEWAY_API, 'Gateway', 'demo', 'waypoint');
    await eventually(() => {
      for (const kind of ['ServiceAccount', 'Deployment', 'Service']) expect(get(kind, 'waypoint'), kind).toBeUndefined();
    }, { ...WAIT, description: 'garbage collection' });
  });
});

describe('waypoint status on Services and Pods against the embedded API server', () => {
  let h: Harness;
  let mesh: MeshIndex;
  let writer: WaypointStatusWriter;

  beforeAll(async () => {
    h = await startHarness();
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } });
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'quiet' } });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(h.kubeconfig);
    mesh = new MeshIndex({ kubeConfig, log: silentLogger, trustDomain: 'cluster.local' });
    writer = new WaypointStatusWriter({ kubeConfig, log: silentLogger });
    await mesh.start();
    await mesh.whenSynced();
    mesh.onChange(() => writer.reconcile(mesh.view(), mesh.resources()));
  });

  afterAll(async () => {
    writer?.stop();
    await mesh?.stop();
    await h?.close();
  });

  const serviceCondition = (ns: string, name: string): Condition | undefined =>
    ((h.store.get('v1', 'Service', ns, name)?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === 'istio.io/WaypointBound');

  function runningPod(ns: string, name: string, ip: string): void {
    const created = h.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app: 'backend' } }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'nginx' }] } });
    h.store.update({ ...created, status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
  }

  it('the API server serves Service /status, and the condition explains a missing waypoint, then the binding', async () => {
    for (const ns of ['demo', 'quiet']) h.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'backend', namespace: ns }, spec: { selector: { app: 'backend' }, ports: [{ port: 80, targetPort: 8080 }] } });
    runningPod('demo', 'backend-1', '10.244.0.5');
    runningPod('quiet', 'backend-1', '10.244.0.6');
    await eventually(() => {
      expect(serviceCondition('demo', 'backend')).toMatchObject({ status: 'False', reason: 'WaypointNotFound', message: 'waypoint demo/waypoint (istio.io/use-waypoint on the namespace) does not exist' });
      expect(h.store.get('v1', 'Pod', 'demo', 'backend-1')?.metadata.annotations?.['amesh.io/waypoint']).toBe('none: waypoint demo/waypoint (istio.io/use-waypoint on the namespace) does not exist');
    }, { ...WAIT, description: 'WaypointNotFound' });
    h.store.create({ ...gateway('waypoint', { for: 'all' }) });
    await eventually(() => {
      expect(serviceCondition('demo', 'backend')).toMatchObject({ status: 'True', reason: 'Bound', message: 'bound to waypoint demo/waypoint (istio.io/use-waypoint on the namespace)' });
      expect(h.store.get('v1', 'Pod', 'demo', 'backend-1')?.metadata.annotations?.['amesh.io/waypoint']).toBe('demo/waypoint');
    }, { ...WAIT, description: 'Bound' });
    await writer.idle();
    // Objects no waypoint concerns are never patched.
    expect(serviceCondition('quiet', 'backend')).toBeUndefined();
    expect(h.store.get('v1', 'Pod', 'quiet', 'backend-1')?.metadata.annotations?.['amesh.io/waypoint']).toBeUndefined();
  });

  it('removes its condition and annotation when the namespace stops using a waypoint', async () => {
    const ns = h.store.get('v1', 'Namespace', undefined, 'demo') as KubeObject;
    h.store.update({ ...ns, metadata: { ...ns.metadata, labels: { 'istio.io/dataplane-mode': 'ambient' } } });
    await eventually(() => {
      expect(serviceCondition('demo', 'backend')).toBeUndefined();
      expect(h.store.get('v1', 'Pod', 'demo', 'backend-1')?.metadata.annotations?.['amesh.io/waypoint']).toBeUndefined();
    }, { ...WAIT, description: 'condition and annotation removed' });
  });
});

describe('amesh waypoint (CLI functions) against the embedded API server', () => {
  let h: Harness;
  let kubeConfig: KubeConfig;
  let mesh: MeshIndex;
  let deployer: WaypointDeployer;
  const lines: string[] = [];
  const print = (line: string): void => void lines.push(line);

  beforeAll(async () => {
    h = await startHarness();
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(h.kubeconfig);
    mesh = new MeshIndex({ kubeConfig, log: silentLogger, trustDomain: 'cluster.local' });
    deployer = new WaypointDeployer({ kubeConfig, log: silentLogger, trustDomain: 'cluster.local' });
    await deployer.start();
    await mesh.start();
    await mesh.whenSynced();
    mesh.onChange(() => deployer.reconcile(mesh.view()));
  });

  afterAll(async () => {
    await deployer?.stop();
    await mesh?.stop();
    await h?.close();
  });

  it('apply --enroll-namespace --wait: creates the Gateway, labels the namespace, waits until Programmed', async () => {
    // Stand in for the kubelet: make the Deployment available once it appears.
    const kubelet = eventually(() => {
      const d = h.store.get('apps/v1', 'Deployment', 'demo', 'waypoint');
      expect(d).toBeDefined();
      h.store.update({ ...(d as KubeObject), status: { replicas: 1, availableReplicas: 1 } }, { subresource: 'status' });
    }, { ...WAIT, description: 'the waypoint Deployment' });
    const gw = await applyWaypoint(kubeConfig, { namespace: 'demo', enrollNamespace: true, wait: true, timeoutMs: 10_000, pollMs: 20 }, print);
    await kubelet;
    expect(lines[0]).toBe('waypoint demo/waypoint applied');
    expect(lines[1]).toBe('namespace demo labeled with "istio.io/use-waypoint: waypoint"');
    expect(lines.at(-1)).toMatch(/^waypoint demo\/waypoint is programmed \(\d+\.\d+\.\d+\.\d+\)$/);
    expect(gw?.spec?.gatewayClassName).toBe('istio-waypoint');
    const stored = h.store.get(GATEWAY_API, 'Gateway', 'demo', 'waypoint');
    expect(stored?.metadata.labels).toEqual({ 'istio.io/waypoint-for': 'service' });
    expect(stored?.spec).toEqual({ gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] });
    expect(stored?.metadata.managedFields?.some((f) => f.manager === 'amesh-cli' && f.operation === 'Apply')).toBe(true);
    expect(h.store.get('v1', 'Namespace', undefined, 'demo')?.metadata.labels?.['istio.io/use-waypoint']).toBe('waypoint');
  });

  it('apply --service-account names the waypoint <sa>-waypoint; --enroll-namespace will not replace another without --overwrite', async () => {
    await applyWaypoint(kubeConfig, { namespace: 'demo', serviceAccount: 'backend-sa', for: 'workload' }, print);
    expect(h.store.get(GATEWAY_API, 'Gateway', 'demo', 'backend-sa-waypoint')?.metadata.annotations).toEqual({ 'amesh.io/for-service-account': 'backend-sa' });
    await expect(applyWaypoint(kubeConfig, { namespace: 'demo', name: 'other', enrollNamespace: true }, print)).rejects.toThrow('namespace demo already uses waypoint waypoint (istio.io/use-waypoint=waypoint)');
    expect(h.store.get(GATEWAY_API, 'Gateway', 'demo', 'other')).toBeUndefined();
  });

  it('clear errors: missing namespace, bad --for, unreachable API, a wait that times out with the condition', async () => {
    await expect(applyWaypoint(kubeConfig, { namespace: 'nope' }, print)).rejects.toThrow('namespace nope not found');
    await expect(applyWaypoint(kubeConfig, { namespace: 'demo', for: 'everything' }, print)).rejects.toThrow('--for everything: expected one of service, workload, all, none');
    const closed = await startHarness();
    const dead = new KubeConfig();
    dead.loadFromFile(closed.kubeconfig);
    await closed.close();
    await expect(listWaypointGateways(dead, { namespace: 'demo' })).rejects.toThrow(/cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+/);
    await expect(applyWaypoint(kubeConfig, { namespace: 'demo', name: 'slow', wait: true, timeoutMs: 300, pollMs: 20 }, print)).rejects.toThrow(/waypoint demo\/slow was not programmed within 0s: Pending: waiting for Deployment demo\/slow/);
  });

  it('list shows the waypoints of a namespace or of all', async () => {
    const rows = (await listWaypointGateways(kubeConfig, { namespace: 'demo' })).map(waypointRow);
    expect(rows.map((r) => [r.name, r.for, r.serviceAccount ?? '-', r.programmed])).toEqual([
      ['backend-sa-waypoint', 'workload', 'backend-sa', expect.any(String)],
      ['slow', 'service', '-', 'False'],
      ['waypoint', 'service', '-', 'True'],
    ]);
    expect(rows.find((r) => r.name === 'waypoint')?.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect((await listWaypointGateways(kubeConfig, {})).length).toBe(3);
  });

  it('status prints conditions and addresses', async () => {
    lines.length = 0;
    await waypointStatus(kubeConfig, { namespace: 'demo', name: 'waypoint' }, print);
    expect(lines[0]).toBe('waypoint demo/waypoint (for service)');
    expect(lines.some((l) => /Programmed\s+True\s+Programmed/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('  addresses: ') && l.includes('waypoint.demo.svc.cluster.local'))).toBe(true);
  });

  it('delete removes the waypoints and the namespace label that named one; its objects follow by GC', async () => {
    lines.length = 0;
    await expect(deleteWaypoints(kubeConfig, { namespace: 'demo', names: ['waypoint', 'ghost'] }, print)).rejects.toThrow('waypoint not found in namespace demo: ghost');
    expect(lines).toEqual(['waypoint demo/waypoint deleted', 'namespace demo unlabeled (istio.io/use-waypoint=waypoint removed)']);
    expect(h.store.get('v1', 'Namespace', undefined, 'demo')?.metadata.labels?.['istio.io/use-waypoint']).toBeUndefined();
    await eventually(() => expect(h.store.get('apps/v1', 'Deployment', 'demo', 'waypoint')).toBeUndefined(), WAIT);
    await deleteWaypoints(kubeConfig, { namespace: 'demo', names: [], all: true }, print);
    expect(await listWaypointGateways(kubeConfig, { namespace: 'demo' })).toEqual([]);
  });
});
