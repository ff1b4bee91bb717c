/**
 * DaemonSet RollingUpdate with maxSurge (issue #10): the new pod starts beside the old one on the
 * same node, the old one goes once the new one is available, and at most maxSurge nodes surge at
 * a time — Kubernetes' `rollingUpdate` surge path and `podsShouldBeOnNode` with surge.
 */
import { describe, expect, it } from 'vitest';
import { daemonPod, daemonSetMaxSurge, reconcileDaemonSet, type DaemonSetPlan } from '../../src/sandbox/controllers/daemonset-controller.js';
import type { DaemonSet, IntOrPercent, Node, Pod } from '../../src/sandbox/controllers/kube-types.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');

function node(name: string): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: {} }, spec: {}, status: { conditions: [{ type: 'Ready', status: 'True' }] } };
}

function daemonSet(image: string, rollingUpdate: { maxSurge?: IntOrPercent; maxUnavailable?: IntOrPercent }, minReadySeconds = 0): DaemonSet {
  // The rollingUpdate object is built apart so the apps/v1 field maxSurge passes the sandbox's narrower type.
  const strategy: { type: 'RollingUpdate'; rollingUpdate: { maxUnavailable?: IntOrPercent } } = { type: 'RollingUpdate', rollingUpdate };
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', namespace: 'amesh-system', uid: 'uid-ds', generation: 2 },
    spec: {
      selector: { matchLabels: { app: 'agent' } },
      template: { metadata: { labels: { app: 'agent' } }, spec: { hostNetwork: true, containers: [{ name: 'a', image }] } },
      updateStrategy: strategy,
      ...(minReadySeconds ? { minReadySeconds } : {}),
    },
  };
}

let sequence = 0;
/** A daemon pod of `owner`'s template on `nodeName`; `readySince` is the Ready transition (ms before NOW). */
function daemon(owner: DaemonSet, nodeName: string, state: { ready?: boolean; createdAgoMs?: number; readyAgoMs?: number } = {}): Pod {
  const created = daemonPod(owner, nodeName);
  created.metadata.name = `agent-${sequence++}`;
  created.metadata.creationTimestamp = new Date(NOW - (state.createdAgoMs ?? 60_000)).toISOString();
  created.status = {
    phase: 'Running',
    conditions: [{ type: 'Ready', status: state.ready === false ? 'False' : 'True', lastTransitionTime: new Date(NOW - (state.readyAgoMs ?? 50_000)).toISOString() }],
  };
  return created;
}

const names = (pods: Pod[]): string[] => pods.map((p) => p.metadata.name ?? '').sort();
const nodesOf = (plan: DaemonSetPlan): string[] => plan.create.map((c) => c.nodeName);

describe('reconcileDaemonSet with maxSurge', () => {
  const v1 = daemonSet('v1', { maxSurge: 1, maxUnavailable: 0 });
  const v2 = daemonSet('v2', { maxSurge: 1, maxUnavailable: 0 });
  const three = [node('n1'), node('n2'), node('n3')];

  it('resolves maxSurge as an int or a percent of the eligible nodes rounded up; 0 by default and for OnDelete', () => {
    expect(daemonSetMaxSurge(v2, 3)).toBe(1);
    expect(daemonSetMaxSurge(daemonSet('v2', { maxSurge: '50%', maxUnavailable: 0 }), 3)).toBe(2);
    expect(daemonSetMaxSurge(daemonSet('v2', { maxSurge: '10%', maxUnavailable: 0 }), 3)).toBe(1);
    expect(daemonSetMaxSurge(daemonSet('v2', { maxSurge: '0%', maxUnavailable: 1 }), 3)).toBe(0);
    expect(daemonSetMaxSurge(daemonSet('v2', {}), 3)).toBe(0);
    expect(daemonSetMaxSurge({ ...v2, spec: { ...v2.spec, updateStrategy: { type: 'OnDelete' } } }, 3)).toBe(0);
  });

  it('creates the new pod beside the available old one without deleting it, one node at a time', () => {
    const old = three.map((n) => daemon(v1, n.metadata.name ?? ''));
    const plan = reconcileDaemonSet(v2, three, old, NOW);
    expect(plan.delete).toEqual([]);
    expect(nodesOf(plan)).toEqual(['n1']);
    expect(plan.status).toMatchObject({ desiredNumberScheduled: 3, numberAvailable: 3, updatedNumberScheduled: 0 });
  });

  it('keeps both pods while the new one is not ready, and moves on to no other node', () => {
    const old = three.map((n) => daemon(v1, n.metadata.name ?? ''));
    const surge = daemon(v2, 'n1', { ready: false, createdAgoMs: 1_000 });
    const plan = reconcileDaemonSet(v2, three, [...old, surge], NOW);
    expect(plan.delete).toEqual([]);
    expect(plan.create).toEqual([]);
    // the node still counts with its old (available) pod: nothing is unavailable during a surge
    expect(plan.status).toMatchObject({ currentNumberScheduled: 3, numberAvailable: 3, numberUnavailable: 0, updatedNumberScheduled: 0 });
  });

  it('deletes the old pod once the new one is available and surges onto the next node in the same pass', () => {
    const old = three.map((n) => daemon(v1, n.metadata.name ?? ''));
    const surge = daemon(v2, 'n1', { createdAgoMs: 5_000, readyAgoMs: 1_000 });
    const plan = reconcileDaemonSet(v2, three, [...old, surge], NOW);
    expect(names(plan.delete)).toEqual(names([old[0] as Pod]));
    expect(nodesOf(plan)).toEqual(['n2']);
    expect(plan.status).toMatchObject({ updatedNumberScheduled: 1, numberAvailable: 3 });
  });

  it('waits minReadySeconds before the old pod goes, and asks to be called again when they are up', () => {
    const slow1 = daemonSet('v1', { maxSurge: 1, maxUnavailable: 0 }, 10);
    const slow2 = daemonSet('v2', { maxSurge: 1, maxUnavailable: 0 }, 10);
    const old = [daemon(slow1, 'n1', { readyAgoMs: 60_000 })];
    const early = reconcileDaemonSet(slow2, [node('n1')], [...old, daemon(slow2, 'n1', { createdAgoMs: 5_000, readyAgoMs: 4_000 })], NOW);
    expect(early.delete).toEqual([]);
    expect(early.requeueAfterMs).toBe(6_000);
    const late = reconcileDaemonSet(slow2, [node('n1')], [...old, daemon(slow2, 'n1', { createdAgoMs: 15_000, readyAgoMs: 11_000 })], NOW);
    expect(names(late.delete)).toEqual(names(old));
  });

  it('asks to be called again when a Ready pod becomes available, so numberAvailable does not go stale', () => {
    const slow = daemonSet('v2', { maxSurge: 1, maxUnavailable: 0 }, 10);
    const plan = reconcileDaemonSet(slow, [node('n1'), node('n2')], [daemon(slow, 'n1', { readyAgoMs: 60_000 }), daemon(slow, 'n2', { readyAgoMs: 3_000 })], NOW);
    expect(plan.status).toMatchObject({ numberReady: 2, numberAvailable: 1 });
    expect(plan.requeueAfterMs).toBe(7_000);
    const settled = reconcileDaemonSet(slow, [node('n1'), node('n2')], [daemon(slow, 'n1', { readyAgoMs: 60_000 }), daemon(slow, 'n2', { readyAgoMs: 60_000 })], NOW);
    expect(settled.requeueAfterMs).toBeUndefined();
  });

  it('surges onto up to maxSurge nodes at once (percent)', () => {
    const wide = daemonSet('v2', { maxSurge: '50%', maxUnavailable: 0 });
    const four = [...three, node('n4')];
    const old = four.map((n) => daemon(v1, n.metadata.name ?? ''));
    expect(nodesOf(reconcileDaemonSet(wide, four, old, NOW))).toEqual(['n1', 'n2']);
    // one surge still in progress leaves room for one more
    const inProgress = daemon(wide, 'n1', { ready: false });
    expect(nodesOf(reconcileDaemonSet(wide, four, [...old, inProgress], NOW))).toEqual(['n2']);
  });

  it('replaces an old pod that is not available at once, outside the surge budget, and drops it when not Ready', () => {
    const old = [daemon(v1, 'n1'), daemon(v1, 'n2', { ready: false }), daemon(v1, 'n3')];
    const plan = reconcileDaemonSet(v2, three, [...old, daemon(v2, 'n1', { ready: false })], NOW);
    // n1 uses the one surge slot; n2's old pod is not available, so its new pod comes anyway
    expect(nodesOf(plan)).toEqual(['n2']);
    expect(plan.delete).toEqual([]);
    // once the new pod exists, the not-Ready old pod beside it is deleted
    const next = reconcileDaemonSet(v2, three, [...old, daemon(v2, 'n1', { ready: false }), daemon(v2, 'n2', { ready: false })], NOW);
    expect(names(next.delete)).toEqual(names([old[1] as Pod]));
  });

  it('keeps at most the oldest new and the oldest old pod on a node', () => {
    const oldest = daemon(v1, 'n1', { createdAgoMs: 90_000 });
    const olderDuplicate = daemon(v1, 'n1', { createdAgoMs: 80_000 });
    const first = daemon(v2, 'n1', { createdAgoMs: 3_000, ready: false });
    const second = daemon(v2, 'n1', { createdAgoMs: 2_000, ready: false });
    const plan = reconcileDaemonSet(v2, [node('n1')], [oldest, olderDuplicate, first, second], NOW);
    expect(names(plan.delete)).toEqual(names([olderDuplicate, second]));
    expect(plan.create).toEqual([]);
  });

  it('completes: every node has only its new pod, status reports the rollout done', () => {
    const pods = three.map((n) => daemon(v2, n.metadata.name ?? ''));
    const plan = reconcileDaemonSet(v2, three, pods, NOW);
    expect(plan.create).toEqual([]);
    expect(plan.delete).toEqual([]);
    expect(plan.status).toMatchObject({ desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3, numberUnavailable: 0, observedGeneration: 2 });
  });

  it('walks a whole 3-node rollout, never leaving a node without an available pod', () => {
    let pods = three.map((n) => daemon(v1, n.metadata.name ?? ''));
    let steps = 0;
    for (; steps < 20; steps++) {
      const plan = reconcileDaemonSet(v2, three, pods, NOW);
      for (const n of three) {
        const left = pods.filter((p) => p.spec?.nodeName === n.metadata.name && !plan.delete.includes(p));
        expect(left.some((p) => p.status?.conditions?.[0]?.status === 'True'), `node ${n.metadata.name} keeps an available pod at step ${steps}`).toBe(true);
      }
      if (plan.create.length === 0 && plan.delete.length === 0) break;
      // apply the plan; created pods come up Ready by the next pass
      pods = [...pods.filter((p) => !plan.delete.includes(p)), ...plan.create.map(({ nodeName }) => daemon(v2, nodeName, { createdAgoMs: 1_000, readyAgoMs: 500 }))];
      expect(pods.length).toBeLessThanOrEqual(4);
    }
    expect(pods.every((p) => p.metadata.labels?.['controller-revision-hash'] === daemonPod(v2, 'x').metadata.labels?.['controller-revision-hash'])).toBe(true);
    expect(pods).toHaveLength(3);
    expect(steps).toBe(4);
  });
});
