/**
 * The controllers against the real in-memory store, with a fake kubelet that marks every bound
 * pod Running + Ready (status subresource) the way the sandbox kubelet does. Walks a Deployment
 * through create → rolling update → scale → delete, plus Services, a DaemonSet, scheduling and
 * the per-namespace ServiceAccount / CA ConfigMap.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { startControllers, type Controllers } from '../../src/sandbox/controllers/index.js';
import type { DaemonSet, Deployment, EndpointSlice, Endpoints, Node, Pod, ReplicaSet } from '../../src/sandbox/controllers/kube-types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';

const NS = 'shop';
const WAIT = { timeoutMs: 10_000, intervalMs: 20 };

function readyNode(name: string, index: number): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    spec: { podCIDR: `10.244.${index}.0/24` },
    status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
  };
}

/** Marks bound pods Running and Ready with an IP from their node's CIDR, like the kubelet. */
function startFakeKubelet(store: MemoryStore): () => void {
  let next = 10;
  return store.watch<Pod>('v1', 'Pod', {}, (event) => {
    if (event.type === 'DELETED') return;
    const pod = event.object;
    const nodeName = pod.spec?.nodeName;
    if (!nodeName || pod.status?.phase === 'Running' || pod.metadata.deletionTimestamp) return;
    const node = store.get<Node>('v1', 'Node', undefined, nodeName);
    const prefix = String(node?.spec?.podCIDR ?? '10.244.9.0/24').replace(/\.0\/24$/, '');
    const fresh = store.get<Pod>('v1', 'Pod', pod.metadata.namespace, pod.metadata.name ?? '');
    if (!fresh || fresh.status?.phase === 'Running') return;
    const at = new Date().toISOString();
    fresh.status = {
      ...fresh.status,
      phase: 'Running',
      podIP: `${prefix}.${next++}`,
      conditions: [...(fresh.status?.conditions ?? []).filter((c) => c.type !== 'Ready'), { type: 'Ready', status: 'True', lastTransitionTime: at }],
    };
    store.update(fresh, { subresource: 'status' });
  });
}

/** Read-modify-write through `update` (what a client's PUT does). */
function mutate<T extends KubeObject>(store: MemoryStore, apiVersion: string, kind: string, namespace: string | undefined, name: string, change: (object: T) => void): void {
  const object = store.get<T>(apiVersion, kind, namespace, name);
  if (!object) throw new Error(`${kind} ${namespace ?? ''}/${name} not found`);
  change(object);
  store.update(object);
}

function deployment(image: string, replicas: number): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { containers: [{ name: 'web', image, ports: [{ name: 'http', containerPort: 8080 }] }] },
      },
    },
  };
}

describe('sandbox controllers on the memory store', () => {
  let store: MemoryStore;
  let controllers: Controllers;
  let stopKubelet: () => void;
  const pods = () => store.list<Pod>('v1', 'Pod', { namespace: NS }).items;
  const webPods = () => pods().filter((pod) => pod.metadata.labels?.app === 'web');
  const replicaSets = () => store.list<ReplicaSet>('apps/v1', 'ReplicaSet', { namespace: NS }).items;
  const getDeployment = () => store.get<Deployment>('apps/v1', 'Deployment', NS, 'web');

  beforeAll(() => {
    store = createMemoryStore({});
    controllers = startControllers({ store, log: silentLogger, clusterCaPem: '-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n' });
    stopKubelet = startFakeKubelet(store);
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    store.create(readyNode('sandbox-node1', 1));
    store.create(readyNode('sandbox-node2', 2));
  });

  afterAll(async () => {
    stopKubelet();
    await controllers.stop();
    store.close();
  });

  it('gives every namespace a default ServiceAccount and the cluster CA, and restores them', async () => {
    await eventually(() => {
      expect(store.get('v1', 'ServiceAccount', NS, 'default')).toBeDefined();
      expect(store.get<KubeObject & { data?: Record<string, string> }>('v1', 'ConfigMap', NS, 'kube-root-ca.crt')?.data?.['ca.crt']).toContain('BEGIN CERTIFICATE');
      expect(store.get('v1', 'ServiceAccount', 'kube-system', 'default')).toBeDefined();
    }, WAIT);
    store.delete('v1', 'ServiceAccount', NS, 'default');
    store.delete('v1', 'ConfigMap', NS, 'kube-root-ca.crt');
    await eventually(() => {
      expect(store.get('v1', 'ServiceAccount', NS, 'default')).toBeDefined();
      expect(store.get('v1', 'ConfigMap', NS, 'kube-root-ca.crt')).toBeDefined();
    }, WAIT);
  });

  it('rolls a Deployment out to a ReplicaSet and spread, ready pods with Endpoints and an EndpointSlice', async () => {
    store.create(deployment('hashicorp/http-echo:v1', 3));
    store.create({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: NS, labels: { tier: 'front' } },
      spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
    });
    await controllers.idle();
    await eventually(() => {
      const [rs, ...others] = replicaSets();
      expect(others).toHaveLength(0);
      expect(rs?.metadata.name).toMatch(/^web-[bcdfghjklmnpqrstvwxz2456789]+$/);
      expect(rs?.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', name: 'web', controller: true, blockOwnerDeletion: true });
      expect(rs?.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('1');
      expect(rs?.status).toMatchObject({ replicas: 3, readyReplicas: 3, availableReplicas: 3, fullyLabeledReplicas: 3 });
      const running = webPods();
      expect(running).toHaveLength(3);
      const perNode = new Map<string, number>();
      for (const pod of running) perNode.set(pod.spec?.nodeName ?? '', (perNode.get(pod.spec?.nodeName ?? '') ?? 0) + 1);
      expect([...perNode.keys()].sort()).toEqual(['sandbox-node1', 'sandbox-node2']);
      for (const pod of running) {
        expect(pod.metadata.name).toMatch(new RegExp(`^${rs?.metadata.name ?? ''}-`));
        expect(pod.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status).toBe('True');
      }
      const status = getDeployment()?.status;
      expect(status).toMatchObject({ observedGeneration: 1, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3, unavailableReplicas: 0 });
      expect(status?.conditions?.find((c) => c.type === 'Available')).toMatchObject({ status: 'True', reason: 'MinimumReplicasAvailable' });
      expect(status?.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'True', reason: 'NewReplicaSetAvailable' });

      const endpoints = store.get<Endpoints>('v1', 'Endpoints', NS, 'web');
      expect(endpoints?.subsets).toHaveLength(1);
      expect(endpoints?.subsets?.[0]?.addresses?.map((a) => a.ip).sort()).toEqual(running.map((p) => p.status?.podIP).sort());
      expect(endpoints?.subsets?.[0]?.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
      const slices = store.list<EndpointSlice>('discovery.k8s.io/v1', 'EndpointSlice', { namespace: NS, labelSelector: 'kubernetes.io/service-name=web' }).items;
      expect(slices).toHaveLength(1);
      const slice = slices[0] as EndpointSlice;
      expect(slice.metadata.name).toMatch(/^web-[a-z0-9]{5}$/);
      expect(slice.metadata.labels).toMatchObject({ tier: 'front', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' });
      expect(slice.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Service', name: 'web', controller: true });
      expect(slice.addressType).toBe('IPv4');
      expect(slice.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
      expect(slice.endpoints).toHaveLength(3);
      expect(slice.endpoints?.[0]).toMatchObject({ conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', namespace: NS } });
    }, WAIT);
  });

  it('rolls a new image out within maxSurge 1 / maxUnavailable 0 (25% of 3)', async () => {
    const ready = new Map<string, boolean>();
    let minimumReady = Infinity;
    let maximumPods = 0;
    const stopWatch = store.watch<Pod>('v1', 'Pod', { namespace: NS, labelSelector: 'app=web' }, (event) => {
      if (event.type === 'DELETED') ready.delete(event.object.metadata.name ?? '');
      else ready.set(event.object.metadata.name ?? '', event.object.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
      if (ready.size >= 3) minimumReady = Math.min(minimumReady, [...ready.values()].filter(Boolean).length);
      maximumPods = Math.max(maximumPods, ready.size);
    });
    try {
      const current = getDeployment() as Deployment;
      const oldHash = replicaSets()[0]?.metadata.labels?.['pod-template-hash'];
      (current.spec?.template?.spec?.containers?.[0] as { image: string }).image = 'hashicorp/http-echo:v2';
      store.update(current);
      await eventually(() => {
        const sets = replicaSets();
        expect(sets).toHaveLength(2);
        const newer = sets.find((rs) => rs.metadata.labels?.['pod-template-hash'] !== oldHash) as ReplicaSet;
        const older = sets.find((rs) => rs.metadata.labels?.['pod-template-hash'] === oldHash) as ReplicaSet;
        expect(newer.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
        expect(newer.spec?.replicas).toBe(3);
        expect(older.spec?.replicas).toBe(0);
        const current = webPods();
        expect(current).toHaveLength(3);
        for (const pod of current) {
          expect(pod.metadata.labels?.['pod-template-hash']).toBe(newer.metadata.labels?.['pod-template-hash']);
          expect(pod.spec?.containers?.[0]?.image).toBe('hashicorp/http-echo:v2');
        }
        const deploymentNow = getDeployment() as Deployment;
        expect(deploymentNow.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
        expect(deploymentNow.status).toMatchObject({ observedGeneration: deploymentNow.metadata.generation, replicas: 3, updatedReplicas: 3, availableReplicas: 3 });
        expect(deploymentNow.status?.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('NewReplicaSetAvailable');
        expect(store.get<Endpoints>('v1', 'Endpoints', NS, 'web')?.subsets?.[0]?.addresses?.map((a) => a.targetRef?.name).sort()).toEqual(current.map((p) => p.metadata.name).sort());
      }, WAIT);
      expect(minimumReady).toBeGreaterThanOrEqual(3);
      // maxSurge 25% of 3 rounds up to 1.
      expect(maximumPods).toBe(4);
    } finally {
      stopWatch();
    }
  });

  it('scales to 1', async () => {
    mutate<Deployment>(store, 'apps/v1', 'Deployment', NS, 'web', (d) => {
      (d.spec ?? {}).replicas = 1;
    });
    await eventually(() => {
      expect(webPods()).toHaveLength(1);
      expect(getDeployment()?.status).toMatchObject({ replicas: 1, availableReplicas: 1, updatedReplicas: 1 });
      expect(store.get<Endpoints>('v1', 'Endpoints', NS, 'web')?.subsets?.[0]?.addresses).toHaveLength(1);
      const slice = store.list<EndpointSlice>('discovery.k8s.io/v1', 'EndpointSlice', { namespace: NS, labelSelector: 'kubernetes.io/service-name=web' }).items;
      expect(slice).toHaveLength(1);
      expect(slice[0]?.endpoints).toHaveLength(1);
    }, WAIT);
  });

  it('leaves a Service without selector and its user-managed Endpoints alone', async () => {
    store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'external', namespace: NS }, spec: { ports: [{ port: 5432, protocol: 'TCP' }] } });
    const created = store.create<Endpoints>({
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'external', namespace: NS },
      subsets: [{ addresses: [{ ip: '192.0.2.10' }], ports: [{ port: 5432, protocol: 'TCP' }] }],
    });
    // Touch a selected pod so the controllers run while the user's Endpoints exist.
    mutate<Pod>(store, 'v1', 'Pod', NS, webPods()[0]?.metadata.name ?? '', (pod) => {
      pod.metadata.labels = { ...pod.metadata.labels, touched: 'yes' };
    });
    await controllers.idle();
    expect(store.get<Endpoints>('v1', 'Endpoints', NS, 'external')?.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
    expect(store.list('discovery.k8s.io/v1', 'EndpointSlice', { namespace: NS, labelSelector: 'kubernetes.io/service-name=external' }).items).toHaveLength(0);
  });

  it('reports Unschedulable and binds once a node matches', async () => {
    store.create<Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'picky', namespace: NS }, spec: { nodeSelector: { disk: 'ssd' }, containers: [{ name: 'c', image: 'nginx' }] } });
    await eventually(() => {
      const condition = store.get<Pod>('v1', 'Pod', NS, 'picky')?.status?.conditions?.find((c) => c.type === 'PodScheduled');
      expect(condition).toMatchObject({ status: 'False', reason: 'Unschedulable', message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector." });
    }, WAIT);
    mutate<Node>(store, 'v1', 'Node', undefined, 'sandbox-node2', (node) => {
      node.metadata.labels = { ...node.metadata.labels, disk: 'ssd' };
    });
    await eventually(() => {
      const pod = store.get<Pod>('v1', 'Pod', NS, 'picky');
      expect(pod?.spec?.nodeName).toBe('sandbox-node2');
      expect(pod?.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status).toBe('True');
    }, WAIT);
  });

  it('runs one DaemonSet pod per node and rolls a template change node by node', async () => {
    const ds: DaemonSet = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent', namespace: NS },
      spec: {
        selector: { matchLabels: { app: 'agent' } },
        template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'agent', image: 'amesh/node:v1' }] } },
      },
    };
    store.create(ds);
    const agentPods = () => pods().filter((pod) => pod.metadata.labels?.app === 'agent');
    await eventually(() => {
      expect(agentPods().map((pod) => pod.spec?.nodeName).sort()).toEqual(['sandbox-node1', 'sandbox-node2']);
      expect(store.get<DaemonSet>('apps/v1', 'DaemonSet', NS, 'agent')?.status).toMatchObject({ desiredNumberScheduled: 2, currentNumberScheduled: 2, numberReady: 2, numberAvailable: 2, updatedNumberScheduled: 2, numberMisscheduled: 0 });
    }, WAIT);
    const firstHash = agentPods()[0]?.metadata.labels?.['controller-revision-hash'];
    // maxUnavailable 1 of 2 nodes: at least one node keeps a ready agent throughout.
    const ready = new Map<string, boolean>();
    let minimumReady = Infinity;
    const stopWatch = store.watch<Pod>('v1', 'Pod', { namespace: NS, labelSelector: 'app=agent' }, (event) => {
      if (event.type === 'DELETED') ready.delete(event.object.metadata.name ?? '');
      else ready.set(event.object.metadata.name ?? '', event.object.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
      minimumReady = Math.min(minimumReady, [...ready.values()].filter(Boolean).length);
    });
    mutate<DaemonSet>(store, 'apps/v1', 'DaemonSet', NS, 'agent', (d) => {
      (d.spec?.template?.spec?.containers?.[0] as { image: string }).image = 'amesh/node:v2';
    });
    await eventually(() => {
      const current = agentPods();
      expect(current).toHaveLength(2);
      for (const pod of current) {
        expect(pod.metadata.labels?.['controller-revision-hash']).not.toBe(firstHash);
        expect(pod.spec?.containers?.[0]?.image).toBe('amesh/node:v2');
      }
      expect(store.get<DaemonSet>('apps/v1', 'DaemonSet', NS, 'agent')?.status).toMatchObject({ updatedNumberScheduled: 2, numberAvailable: 2 });
    }, WAIT).finally(stopWatch);
    expect(minimumReady).toBeGreaterThanOrEqual(1);
  });

  it('garbage-collects the ReplicaSets and pods of a deleted Deployment, and Endpoints of a deleted Service', async () => {
    store.delete('apps/v1', 'Deployment', NS, 'web');
    store.delete('v1', 'Service', NS, 'web');
    await eventually(() => {
      expect(replicaSets()).toHaveLength(0);
      expect(webPods()).toHaveLength(0);
      expect(store.get('v1', 'Endpoints', NS, 'web')).toBeUndefined();
      expect(store.list('discovery.k8s.io/v1', 'EndpointSlice', { namespace: NS, labelSelector: 'kubernetes.io/service-name=web' }).items).toHaveLength(0);
    }, WAIT);
  });
});
