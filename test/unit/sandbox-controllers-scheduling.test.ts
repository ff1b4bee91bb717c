import { describe, expect, it } from 'vitest';
import { FAILED_POD_BACKOFF_MS, daemonPod, reconcileDaemonSet } from '../../src/sandbox/controllers/daemonset-controller.js';
import type { DaemonSet, Node, Pod, Taint, Toleration } from '../../src/sandbox/controllers/kube-types.js';
import { needsScheduling, schedulePod } from '../../src/sandbox/controllers/scheduler.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');

function node(name: string, options: { ready?: boolean; labels?: Record<string, string>; taints?: Taint[]; unschedulable?: boolean } = {}): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: options.labels ?? {} },
    spec: { ...(options.taints ? { taints: options.taints } : {}), ...(options.unschedulable ? { unschedulable: true } : {}) },
    status: { conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }] },
  };
}

function pod(name: string, options: { owner?: string; nodeName?: string; nodeSelector?: Record<string, string>; tolerations?: Toleration[] } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'default',
      uid: `uid-${name}`,
      ...(options.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: options.owner, uid: `uid-${options.owner}`, controller: true }] } : {}),
    },
    spec: {
      containers: [{ name: 'c', image: 'nginx' }],
      ...(options.nodeName ? { nodeName: options.nodeName } : {}),
      ...(options.nodeSelector ? { nodeSelector: options.nodeSelector } : {}),
      ...(options.tolerations ? { tolerations: options.tolerations } : {}),
    },
  };
}

describe('schedulePod', () => {
  const two = [node('sandbox-node1'), node('sandbox-node2')];

  it.each([
    { name: 'spreads a replica onto the node without siblings, even if busier overall', existing: [pod('a', { owner: 'rs', nodeName: 'sandbox-node1' }), pod('x', { nodeName: 'sandbox-node2' }), pod('y', { nodeName: 'sandbox-node2' })], want: 'sandbox-node2' },
    { name: 'then picks the least-loaded node', existing: [pod('x', { nodeName: 'sandbox-node1' })], want: 'sandbox-node2' },
    { name: 'breaks ties by node name', existing: [], want: 'sandbox-node1' },
    { name: 'ignores pods of other owners when spreading', existing: [pod('o', { owner: 'other', nodeName: 'sandbox-node1' }), pod('p', { owner: 'other', nodeName: 'sandbox-node2' }), pod('q', { owner: 'other', nodeName: 'sandbox-node2' })], want: 'sandbox-node1' },
  ])('$name', ({ existing, want }) => {
    expect(schedulePod(pod('new', { owner: 'rs' }), two, existing)).toEqual({ kind: 'bind', nodeName: want });
  });

  it.each([
    { name: 'node selector matches no node', target: pod('p', { nodeSelector: { disk: 'ssd' } }), nodes: two, message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector." },
    {
      name: 'mixed reasons are counted and sorted',
      target: pod('p'),
      nodes: [node('n1', { unschedulable: true }), node('n2', { ready: false }), node('n3', { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] })],
      message: '0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.',
    },
    { name: 'no nodes at all', target: pod('p'), nodes: [], message: 'no nodes available to schedule pods' },
  ])('unschedulable: $name', ({ target, nodes, message }) => {
    expect(schedulePod(target, nodes, [])).toEqual({ kind: 'unschedulable', message });
  });

  it('honours nodeSelector, tolerations and skips PreferNoSchedule', () => {
    const nodes = [node('plain'), node('ssd', { labels: { disk: 'ssd' } })];
    expect(schedulePod(pod('p', { nodeSelector: { disk: 'ssd' } }), nodes, [])).toEqual({ kind: 'bind', nodeName: 'ssd' });
    const tainted = [node('t', { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] })];
    expect(schedulePod(pod('p', { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }] }), tainted, [])).toEqual({ kind: 'bind', nodeName: 't' });
    expect(schedulePod(pod('p'), [node('c', { unschedulable: true })], []).kind).toBe('unschedulable');
    // A wildcard toleration tolerates everything, cordons included (as in Kubernetes).
    expect(schedulePod(pod('p', { tolerations: [{ operator: 'Exists' }] }), [node('c', { unschedulable: true })], []).kind).toBe('bind');
    expect(schedulePod(pod('p', { tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] }), [node('c', { unschedulable: true })], [])).toEqual({ kind: 'bind', nodeName: 'c' });
    expect(schedulePod(pod('p'), [node('soft', { taints: [{ key: 'x', effect: 'PreferNoSchedule' }] })], [])).toEqual({ kind: 'bind', nodeName: 'soft' });
  });

  it('only schedules pods without nodeName that use the default scheduler', () => {
    expect(needsScheduling(pod('p'))).toBe(true);
    expect(needsScheduling(pod('p', { nodeName: 'n1' }))).toBe(false);
    const other = pod('p');
    other.spec = { ...other.spec, schedulerName: 'my-scheduler' };
    expect(needsScheduling(other)).toBe(false);
    const done = pod('p');
    done.status = { phase: 'Succeeded' };
    expect(needsScheduling(done)).toBe(false);
  });
});

describe('reconcileDaemonSet', () => {
  const ds: DaemonSet = {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', namespace: 'kube-system', uid: 'uid-ds', generation: 3 },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'a', image: 'v1' }] } } },
  };
  const withImage = (image: string): DaemonSet => ({ ...ds, spec: { ...ds.spec, template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'a', image }] } } } });
  let sequence = 0;
  function daemon(owner: DaemonSet, nodeName: string, state: { ready?: boolean; phase?: 'Running' | 'Failed'; createdAt?: number } = {}): Pod {
    const created = daemonPod(owner, nodeName);
    created.metadata.name = `agent-${sequence++}`;
    created.metadata.creationTimestamp = new Date(state.createdAt ?? NOW - 60_000).toISOString();
    created.status = { phase: state.phase ?? 'Running', conditions: [{ type: 'Ready', status: state.ready === false ? 'False' : 'True' }] };
    return created;
  }

  it('creates one pod per eligible node, including NotReady and cordoned nodes, not on selector misses or untolerated taints', () => {
    const selective = { ...ds, spec: { ...ds.spec, template: { ...ds.spec?.template, spec: { ...ds.spec?.template?.spec, nodeSelector: { role: 'worker' } } } } } as DaemonSet;
    const nodes = [
      node('w1', { labels: { role: 'worker' } }),
      node('w2', { labels: { role: 'worker' }, ready: false }),
      node('w3', { labels: { role: 'worker' }, unschedulable: true }),
      node('w4', { labels: { role: 'worker' }, taints: [{ key: 'dedicated', effect: 'NoSchedule' }] }),
      node('cp', { labels: { role: 'control-plane' } }),
    ];
    const plan = reconcileDaemonSet(selective, nodes, [], NOW);
    expect(plan.create.map((c) => c.nodeName)).toEqual(['w1', 'w2', 'w3']);
    expect(plan.status).toMatchObject({ desiredNumberScheduled: 3, currentNumberScheduled: 0, numberReady: 0, numberMisscheduled: 0, observedGeneration: 3 });
  });

  it('daemon pods carry nodeName, owner, revision hash and the daemon tolerations', () => {
    const created = daemonPod(ds, 'n1');
    expect(created.spec?.nodeName).toBe('n1');
    expect(created.metadata.generateName).toBe('agent-');
    expect(created.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'DaemonSet', uid: 'uid-ds', controller: true, blockOwnerDeletion: true });
    expect(created.metadata.labels?.['controller-revision-hash']).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]+$/);
    expect(created.spec?.tolerations?.map((t) => `${t.key}:${t.effect}`)).toContain('node.kubernetes.io/not-ready:NoExecute');
  });

  it('deletes duplicates and misscheduled pods, reporting status', () => {
    const nodes = [node('n1'), node('n2', { taints: [{ key: 'dedicated', effect: 'NoExecute' }] })];
    const keep = daemon(ds, 'n1', { createdAt: NOW - 120_000 });
    const duplicate = daemon(ds, 'n1');
    const misplaced = daemon(ds, 'n2');
    const plan = reconcileDaemonSet(ds, nodes, [keep, duplicate, misplaced], NOW);
    expect(plan.delete.map((p) => p.metadata.name).sort()).toEqual([duplicate.metadata.name, misplaced.metadata.name].sort());
    expect(plan.create).toEqual([]);
    expect(plan.status).toMatchObject({ desiredNumberScheduled: 1, currentNumberScheduled: 1, numberMisscheduled: 1, numberReady: 1, numberAvailable: 1, updatedNumberScheduled: 1 });
  });

  it('rolls a template change one node at a time (maxUnavailable 1)', () => {
    const nodes = [node('n1'), node('n2'), node('n3')];
    const v2 = withImage('v2');
    let pods = nodes.map((n) => daemon(ds, n.metadata.name ?? ''));
    // Step 1: one available old pod goes and is replaced at once.
    let plan = reconcileDaemonSet(v2, nodes, pods, NOW);
    expect(plan.delete).toHaveLength(1);
    expect(plan.create).toEqual([{ nodeName: 'n1' }]);
    // Step 2: the replacement is not ready yet, nothing else moves.
    pods = [daemon(v2, 'n1', { ready: false }), ...pods.slice(1)];
    plan = reconcileDaemonSet(v2, nodes, pods, NOW);
    expect(plan.delete).toEqual([]);
    expect(plan.create).toEqual([]);
    expect(plan.status).toMatchObject({ updatedNumberScheduled: 1, numberAvailable: 2, numberUnavailable: 1 });
    // Step 3: replacement ready → the next node.
    pods = [daemon(v2, 'n1'), ...pods.slice(1)];
    plan = reconcileDaemonSet(v2, nodes, pods, NOW);
    expect(plan.delete.map((p) => p.spec?.nodeName)).toEqual(['n2']);
    expect(plan.create).toEqual([{ nodeName: 'n2' }]);
  });

  it('replaces old pods that are not available without waiting, and leaves them alone with OnDelete', () => {
    const nodes = [node('n1'), node('n2')];
    const v2 = withImage('v2');
    const pods = [daemon(ds, 'n1', { ready: false }), daemon(ds, 'n2', { ready: false })];
    expect(reconcileDaemonSet(v2, nodes, pods, NOW).delete).toHaveLength(2);
    const onDelete = { ...v2, spec: { ...v2.spec, updateStrategy: { type: 'OnDelete' as const } } };
    expect(reconcileDaemonSet(onDelete, nodes, pods, NOW).delete).toEqual([]);
  });

  it('replaces a Failed pod only after the back-off', () => {
    const nodes = [node('n1')];
    const fresh = daemon(ds, 'n1', { phase: 'Failed', createdAt: NOW - 1_000 });
    const early = reconcileDaemonSet(ds, nodes, [fresh], NOW);
    expect(early.create).toEqual([]);
    expect(early.delete).toEqual([]);
    expect(early.requeueAfterMs).toBe(FAILED_POD_BACKOFF_MS - 1_000);
    const late = reconcileDaemonSet(ds, nodes, [fresh], NOW + FAILED_POD_BACKOFF_MS);
    expect(late.delete).toEqual([fresh]);
    expect(late.create).toEqual([{ nodeName: 'n1' }]);
  });
});
