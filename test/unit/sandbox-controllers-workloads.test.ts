import { describe, expect, it } from 'vitest';
import { reconcileDeployment, rollingNewReplicas, rollingOldReplicas, type DeploymentAction } from '../../src/sandbox/controllers/deployment-controller.js';
import type { Deployment, Pod, ReplicaSet } from '../../src/sandbox/controllers/kube-types.js';
import { MAX_FINISHED_PODS_KEPT, reconcileReplicaSet } from '../../src/sandbox/controllers/replicaset-controller.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');
const NOW_ISO = new Date(NOW).toISOString();

const rs: ReplicaSet = {
  apiVersion: 'apps/v1',
  kind: 'ReplicaSet',
  metadata: { name: 'web-abc', namespace: 'default', uid: 'uid-rs', generation: 2 },
  spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web', tier: 'front' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } } },
};

function pod(name: string, state: { owner?: 'rs' | 'other' | 'none'; nodeName?: string; phase?: 'Pending' | 'Running' | 'Failed' | 'Succeeded'; ready?: boolean; ageMs?: number; labels?: Record<string, string> } = {}): Pod {
  const owner = state.owner ?? 'rs';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'default',
      uid: `uid-${name}`,
      labels: state.labels ?? { app: 'web', tier: 'front' },
      creationTimestamp: new Date(NOW - (state.ageMs ?? 60_000)).toISOString(),
      ...(owner === 'none' ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: owner, uid: owner === 'rs' ? 'uid-rs' : 'uid-other', controller: true }] }),
    },
    spec: { containers: [], ...(state.nodeName === '' ? {} : { nodeName: state.nodeName ?? 'n1' }) },
    status: { phase: state.phase ?? 'Running', conditions: [{ type: 'Ready', status: state.ready === false ? 'False' : 'True' }] },
  };
}

describe('reconcileReplicaSet', () => {
  it('creates the missing pods and reports status', () => {
    const plan = reconcileReplicaSet(rs, [pod('a'), pod('b', { ready: false })], NOW);
    expect(plan.create).toBe(1);
    expect(plan.delete).toEqual([]);
    expect(plan.status).toEqual({ replicas: 2, fullyLabeledReplicas: 2, readyReplicas: 1, availableReplicas: 1, observedGeneration: 2 });
  });

  it('deletes surplus cheapest first: unscheduled, pending, not ready, then newest', () => {
    const pods = [
      pod('old-ready', { ageMs: 90_000 }),
      pod('new-ready', { ageMs: 10_000 }),
      pod('not-ready', { ready: false }),
      pod('pending', { phase: 'Pending', ready: false }),
      pod('unscheduled', { nodeName: '', phase: 'Pending', ready: false }),
      pod('newest-ready', { ageMs: 1_000 }),
    ];
    const order = ['unscheduled', 'pending', 'not-ready', 'newest-ready', 'new-ready'];
    for (let surplus = 1; surplus <= order.length; surplus++) {
      const plan = reconcileReplicaSet({ ...rs, spec: { ...rs.spec, replicas: pods.length - surplus } }, pods, NOW);
      expect(plan.delete.map((p) => p.metadata.name)).toEqual(order.slice(0, surplus));
    }
  });

  it('adopts matching orphans, ignores pods of other controllers, releases pods that no longer match', () => {
    const plan = reconcileReplicaSet(rs, [pod('orphan', { owner: 'none' }), pod('foreign', { owner: 'other' }), pod('relabelled', { labels: { app: 'debug' } }), pod('unrelated', { owner: 'none', labels: { app: 'db' } })], NOW);
    expect(plan.adopt.map((p) => p.metadata.name)).toEqual(['orphan']);
    expect(plan.release.map((p) => p.metadata.name)).toEqual(['relabelled']);
    expect(plan.create).toBe(2);
    expect(plan.status.replicas).toBe(1);
  });

  it('does not count finished pods, replaces them after a back-off and prunes old ones', () => {
    const failed = pod('failed', { phase: 'Failed', ready: false, ageMs: 500 });
    const early = reconcileReplicaSet(rs, [pod('a'), pod('b'), failed], NOW);
    expect(early.create).toBe(0);
    expect(early.requeueAfterMs).toBe(500);
    expect(early.status.replicas).toBe(2);
    const later = reconcileReplicaSet(rs, [pod('a'), pod('b'), failed], NOW + 500);
    expect(later.create).toBe(1);
    const many = Array.from({ length: MAX_FINISHED_PODS_KEPT + 2 }, (_, index) => pod(`done-${index}`, { phase: 'Succeeded', ready: false, ageMs: 600_000 + index * 1000 }));
    const pruned = reconcileReplicaSet(rs, many, NOW);
    expect(pruned.delete.map((p) => p.metadata.name)).toEqual(['done-5', 'done-6']);
  });

  it('counts availability only after minReadySeconds', () => {
    const ready = pod('a');
    ready.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date(NOW - 5_000).toISOString() }] };
    const plan = reconcileReplicaSet({ ...rs, spec: { ...rs.spec, replicas: 1, minReadySeconds: 10 } }, [ready], NOW);
    expect(plan.status).toMatchObject({ readyReplicas: 1, availableReplicas: 0 });
    expect(plan.requeueAfterMs).toBe(10_000);
  });
});

describe('rolling update arithmetic', () => {
  it.each([
    { replicas: 3, maxSurge: 1, newCurrent: 0, total: 3, want: 1 },
    { replicas: 3, maxSurge: 1, newCurrent: 1, total: 4, want: 1 },
    { replicas: 3, maxSurge: 1, newCurrent: 1, total: 3, want: 2 },
    { replicas: 10, maxSurge: 3, newCurrent: 0, total: 10, want: 3 },
    { replicas: 3, maxSurge: 1, newCurrent: 5, total: 5, want: 3 },
  ])('new replicas: $replicas replicas, surge $maxSurge, new $newCurrent of $total → $want', ({ replicas, maxSurge, newCurrent, total, want }) => {
    expect(rollingNewReplicas(replicas, maxSurge, newCurrent, total)).toBe(want);
  });

  const old = (name: string, spec: number, available: number, revision: number): ReplicaSet => ({
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name, annotations: { 'deployment.kubernetes.io/revision': String(revision) } },
    spec: { replicas: spec },
    status: { replicas: spec, availableReplicas: available },
  });

  it.each([
    { name: 'waits while the new pods are unavailable', newRS: { spec: 1, available: 0 }, olds: [old('v1', 3, 3, 1)], want: { v1: 3 } },
    { name: 'scales down by what became available', newRS: { spec: 1, available: 1 }, olds: [old('v1', 3, 3, 1)], want: { v1: 2 } },
    { name: 'sheds unhealthy old pods first, oldest revision first', newRS: { spec: 1, available: 1 }, olds: [old('v1', 2, 0, 1), old('v2', 2, 2, 2)], want: { v1: 0, v2: 2 } },
    { name: 'never counts availability above spec (stale status)', newRS: { spec: 1, available: 1 }, olds: [old('v1', 2, 3, 1)], want: { v1: 2 } },
  ])('old replicas: $name', ({ newRS, olds, want }) => {
    expect(Object.fromEntries(rollingOldReplicas(3, 0, newRS, olds))).toEqual(want);
  });
});

describe('reconcileDeployment', () => {
  function deployment(image: string, extra: Partial<NonNullable<Deployment['spec']>> = {}): Deployment {
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default', uid: 'uid-deploy', generation: 4 },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image }] } }, ...extra },
    };
  }

  /** Applies the plan's ReplicaSet writes; the ReplicaSet controller is simulated as instant (pods available at once unless told otherwise). */
  function apply(sets: ReplicaSet[], actions: DeploymentAction[], podsBecomeAvailable = true): ReplicaSet[] {
    let next = sets.map((s) => structuredClone(s));
    for (const action of actions) {
      if (action.type === 'createReplicaSet') next.push({ ...structuredClone(action.replicaSet), metadata: { ...action.replicaSet.metadata, uid: `uid-${action.replicaSet.metadata.name ?? ''}` } });
      if (action.type === 'scaleReplicaSet') {
        const target = next.find((s) => s.metadata.name === action.name) as ReplicaSet;
        target.spec = { ...target.spec, replicas: action.replicas };
        if (action.revision) target.metadata.annotations = { ...target.metadata.annotations, 'deployment.kubernetes.io/revision': action.revision };
      }
      if (action.type === 'deleteReplicaSet') next = next.filter((s) => s.metadata.name !== action.name);
    }
    for (const set of next) {
      const wanted = set.spec?.replicas ?? 0;
      const previouslyAvailable = set.status?.availableReplicas ?? 0;
      const available = podsBecomeAvailable ? wanted : Math.min(previouslyAvailable, wanted);
      set.status = { replicas: wanted, readyReplicas: available, availableReplicas: available };
    }
    return next;
  }

  function converge(d: Deployment, start: ReplicaSet[], maxSteps = 20): { sets: ReplicaSet[]; history: string[] } {
    let sets = start;
    const history: string[] = [];
    for (let step = 0; step < maxSteps; step++) {
      const plan = reconcileDeployment(d, sets, NOW_ISO);
      const scaling = plan.actions.filter((a) => a.type !== 'annotateRevision');
      if (scaling.length === 0) return { sets, history };
      sets = apply(sets, scaling);
      history.push(sets.map((s) => `${s.spec?.template?.spec?.containers?.[0]?.image ?? '?'}=${s.spec?.replicas ?? 0}`).join(','));
    }
    throw new Error(`did not converge: ${history.join(' | ')}`);
  }

  it('creates the first ReplicaSet with hash name, labels, selector, owner and revision 1', () => {
    const plan = reconcileDeployment(deployment('v1'), [], NOW_ISO);
    const create = plan.actions.find((a) => a.type === 'createReplicaSet');
    if (create?.type !== 'createReplicaSet') throw new Error('expected a ReplicaSet to be created');
    const hash = create.replicaSet.metadata.labels?.['pod-template-hash'] ?? '';
    expect(create.replicaSet.metadata.name).toBe(`web-${hash}`);
    expect(create.replicaSet.spec?.selector?.matchLabels).toEqual({ app: 'web', 'pod-template-hash': hash });
    expect(create.replicaSet.spec?.template?.metadata?.labels).toEqual({ app: 'web', 'pod-template-hash': hash });
    expect(create.replicaSet.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('1');
    expect(create.replicaSet.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', uid: 'uid-deploy', controller: true, blockOwnerDeletion: true });
    expect(create.replicaSet.spec?.replicas).toBe(3);
    expect(plan.status.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('NewReplicaSetCreated');
    // The same template always hashes the same way.
    const again = reconcileDeployment(deployment('v1'), [], NOW_ISO).actions.find((a) => a.type === 'createReplicaSet');
    expect(again?.type === 'createReplicaSet' && again.replicaSet.metadata.name).toBe(create.replicaSet.metadata.name);
  });

  it('rolls 3 replicas with the 25 % defaults one surge pod at a time, then reports completion', () => {
    const { sets: initial } = converge(deployment('v1'), []);
    const { sets, history } = converge(deployment('v2'), initial);
    expect(history).toEqual(['v1=3,v2=1', 'v1=2,v2=1', 'v1=2,v2=2', 'v1=1,v2=2', 'v1=1,v2=3', 'v1=0,v2=3']);
    const final = reconcileDeployment(deployment('v2'), sets, NOW_ISO);
    expect(final.status).toMatchObject({ observedGeneration: 4, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3, unavailableReplicas: 0 });
    expect(final.status.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Available', 'True', 'MinimumReplicasAvailable'],
      ['Progressing', 'True', 'NewReplicaSetAvailable'],
    ]);
    const newSet = sets.find((s) => s.spec?.template?.spec?.containers?.[0]?.image === 'v2');
    expect(newSet?.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
  });

  it('does not scale old pods down while the new ones never become available', () => {
    const { sets: initial } = converge(deployment('v1'), []);
    let sets = initial;
    for (let step = 0; step < 5; step++) sets = apply(sets, reconcileDeployment(deployment('v2'), sets, NOW_ISO).actions, false);
    expect(sets.map((s) => s.spec?.replicas).sort()).toEqual([1, 3]);
    const plan = reconcileDeployment(deployment('v2'), sets, NOW_ISO);
    expect(plan.status.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'True', reason: 'ReplicaSetUpdated' });
  });

  it('Recreate scales old to zero before creating the new ReplicaSet', () => {
    const recreate = { strategy: { type: 'Recreate' as const } };
    const { sets: initial } = converge(deployment('v1', recreate), []);
    const { history } = converge(deployment('v2', recreate), initial);
    expect(history).toEqual(['v1=0', 'v1=0,v2=3']);
  });

  it('scales the current ReplicaSet, paused or not, without starting a rollout while paused', () => {
    const { sets: initial } = converge(deployment('v1'), []);
    expect(converge(deployment('v1', { replicas: 1 }), initial).history).toEqual(['v1=1']);
    const paused = converge(deployment('v2', { paused: true, replicas: 5 }), initial);
    expect(paused.history).toEqual(['v1=5']);
    const status = reconcileDeployment(deployment('v2', { paused: true, replicas: 5 }), paused.sets, NOW_ISO).status;
    expect(status.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'Unknown', reason: 'DeploymentPaused' });
  });

  it('deletes drained ReplicaSets beyond revisionHistoryLimit and re-revisions a rollback', () => {
    let sets: ReplicaSet[] = [];
    for (const image of ['v1', 'v2', 'v3', 'v4']) sets = converge(deployment(image, { revisionHistoryLimit: 1 }), sets).sets;
    expect(sets.map((s) => s.spec?.template?.spec?.containers?.[0]?.image).sort()).toEqual(['v3', 'v4']);
    const rollback = reconcileDeployment(deployment('v3', { revisionHistoryLimit: 1 }), sets, NOW_ISO);
    expect(rollback.actions[0]).toMatchObject({ type: 'scaleReplicaSet', revision: '5' });
    expect(rollback.actions.find((a) => a.type === 'annotateRevision')).toEqual({ type: 'annotateRevision', revision: '5' });
  });

  it('adopts an orphan ReplicaSet matching the selector', () => {
    const orphan: ReplicaSet = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'stray', namespace: 'default', labels: { app: 'web' } }, spec: { replicas: 1 } };
    expect(reconcileDeployment(deployment('v1'), [orphan], NOW_ISO).actions[0]).toEqual({ type: 'adoptReplicaSet', name: 'stray' });
  });
});
