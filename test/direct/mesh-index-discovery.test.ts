/**
 * MeshIndex against the sandbox API server: Nodes give pods their locality (and a Node's label
 * change re-translates only its pods), EndpointSlices give selector-less Services their members
 * (a pod's address → that pod, any other → a plain endpoint Workload), and changes that cannot
 * matter — a Node heartbeat, a selector Service's EndpointSlice — do not even count as changes.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshIndex } from '../../src/controller/mesh/mesh-index.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const DB = 'demo/db.demo.svc.cluster.local';
const EXTERNAL = 'discovery.k8s.io/EndpointSlice/demo/192.168.50.7';

describe('MeshIndex: Nodes and EndpointSlices', () => {
  let h: Harness;
  let mesh: MeshIndex;
  let changes = 0;

  const runningPod = (name: string, node: string, ip: string, labels: Record<string, string> = {}): void => {
    const created = h.store.create<KubeObject>({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'demo', labels }, spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] } });
    h.store.update({ ...created, status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
  };
  const workload = (name: string) => [...mesh.resources().workloads.values()].find((w) => w.name === name);

  beforeAll(async () => {
    h = await startHarness();
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient' } } });
    h.store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { 'topology.kubernetes.io/region': 'eu', 'topology.kubernetes.io/zone': 'eu-1a' } } });
    h.store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n2', labels: { 'topology.kubernetes.io/region': 'eu', 'topology.kubernetes.io/zone': 'eu-1b' } } });
    runningPod('db-0', 'n1', '10.244.1.5', { 'topology.istio.io/locality': 'us.us-2a.rack1' });
    runningPod('db-1', 'n1', '10.244.1.6');
    runningPod('web', 'n2', '10.244.2.5', { app: 'web' });
    h.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'demo' }, spec: { ports: [{ name: 'sql', port: 5432 }] } });
    h.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'demo' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } });
    h.store.create({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'db-manual', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'db' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.1.6'] }, { addresses: ['192.168.50.7'], conditions: { ready: true } }],
      ports: [{ name: 'sql', port: 6432, protocol: 'TCP' }],
    });
    h.store.create({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-abc', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.2.5'], conditions: { ready: true } }],
      ports: [{ port: 8080, protocol: 'TCP' }],
    });
    const kc = new KubeConfig();
    kc.loadFromFile(h.kubeconfig);
    mesh = new MeshIndex({ kubeConfig: kc, log: pino({ level: 'silent' }), trustDomain: 'cluster.local', informer: { backoffInitialMs: 20, backoffMaxMs: 200 } });
    mesh.onChange(() => changes++);
    await mesh.start();
    await mesh.whenSynced();
  });

  afterAll(async () => {
    await mesh?.stop();
    await h?.close();
  });

  it('locality: the pod label wins, else the node labels', () => {
    expect(workload('db-0')?.locality).toEqual({ region: 'us', zone: 'us-2a', subzone: 'rack1' });
    expect(workload('db-1')?.locality).toEqual({ region: 'eu', zone: 'eu-1a' });
    expect(workload('web')?.locality).toEqual({ region: 'eu', zone: 'eu-1b' });
  });

  it('a selector-less Service takes its members from its EndpointSlices; a selector Service from its selector', () => {
    expect(workload('db-1')?.services).toEqual({ [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } });
    expect(workload('db-0')?.services).toEqual({});
    expect(mesh.resources().workloads.get(EXTERNAL)).toMatchObject({ tunnelProtocol: 'NONE', addresses: ['192.168.50.7'], status: 'HEALTHY', services: { [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } } });
    expect(workload('web')?.services).toEqual({ 'demo/web.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } });
  });

  it("a Node's zone label change re-translates its pods only; a heartbeat is no change", async () => {
    const before = mesh.resources();
    const db0 = workload('db-0');
    const node = h.store.get<KubeObject>('v1', 'Node', undefined, 'n2') as KubeObject;
    const counted = changes;
    h.store.update({ ...node, status: { conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: new Date().toISOString() }] } }, { subresource: 'status' });
    await delay(300);
    expect(changes).toBe(counted);
    expect(mesh.resources()).toBe(before);
    const fresh = h.store.get<KubeObject>('v1', 'Node', undefined, 'n2') as KubeObject;
    h.store.update({ ...fresh, metadata: { ...fresh.metadata, labels: { ...fresh.metadata.labels, 'topology.kubernetes.io/zone': 'eu-1c' } } });
    await eventually(() => expect(workload('web')?.locality).toEqual({ region: 'eu', zone: 'eu-1c' }), { timeoutMs: 5000, description: "n2's pod to move to eu-1c" });
    expect(workload('db-1')?.locality).toEqual({ region: 'eu', zone: 'eu-1a' });
    expect(workload('db-0')).toBe(db0); // on n1: not re-translated
  });

  it("a selector Service's EndpointSlice is no change; a selector-less Service's is", async () => {
    const counted = changes;
    const webSlice = h.store.get<KubeObject>('discovery.k8s.io/v1', 'EndpointSlice', 'demo', 'web-abc') as KubeObject;
    h.store.update({ ...webSlice, endpoints: [{ addresses: ['10.244.2.5'], conditions: { ready: false } }] } as KubeObject);
    await delay(300);
    expect(changes).toBe(counted);
    const dbSlice = h.store.get<KubeObject>('discovery.k8s.io/v1', 'EndpointSlice', 'demo', 'db-manual') as KubeObject;
    h.store.update({ ...dbSlice, endpoints: [{ addresses: ['10.244.1.5'] }] } as KubeObject);
    await eventually(() => expect(mesh.resources().workloads.has(EXTERNAL)).toBe(false), { timeoutMs: 5000, description: 'the external endpoint to go' });
    expect(workload('db-0')?.services).toEqual({ [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } });
    expect(workload('db-1')?.services).toEqual({});
  });
});
