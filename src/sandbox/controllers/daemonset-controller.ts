/**
 * The DaemonSet controller: one pod per eligible node.
 *
 * `reconcileDaemonSet` (pure), per node:
 * - eligible = `nodeSelector` matches and every NoSchedule/NoExecute taint is tolerated, with
 *   the tolerations Kubernetes adds to daemon pods (not-ready, unreachable, unschedulable, the
 *   pressure taints) — so a cordoned or NotReady node still runs its daemon pod;
 * - eligible and no pod → create one with `spec.nodeName` set (no scheduler involved) and the
 *   label `controller-revision-hash` (the template hash, standing in for ControllerRevisions);
 * - duplicates on a node and pods on ineligible nodes (misscheduled) are deleted;
 * - a Failed pod is replaced, but only once it is FAILED_POD_BACKOFF_MS old, so a pod that
 *   fails immediately does not make the controller spin;
 * - RollingUpdate without surge (maxSurge 0, the default; maxUnavailable, default 1):
 *   old-template pods that are not available go at once; available ones are deleted (and
 *   replaced in the same step) only while fewer than maxUnavailable eligible nodes lack an
 *   available pod — i.e. the next old pod goes once the previous replacement is ready.
 * - RollingUpdate with surge (maxSurge > 0, int or percent of the eligible nodes rounded up;
 *   maxUnavailable is then not used, as in Kubernetes' `rollingUpdate` surge path): a node with an
 *   available old pod gets a new pod BESIDE it — at most maxSurge such nodes at a time, counting
 *   nodes whose new pod is not available yet — and the old pod is deleted once the new one is
 *   available (Ready for minReadySeconds); an old pod that is not available gets its new pod at
 *   once, without using the surge budget, and is deleted when it is not Ready. A node keeps at
 *   most the oldest new and the oldest old pod; any other live pod is deleted.
 *   Status counts the oldest pod of each node, so `updatedNumberScheduled` only reaches
 *   `desiredNumberScheduled` once the old pods are gone (what `kubectl rollout status` waits for).
 * - OnDelete leaves old pods alone.
 */
import type { Logger } from 'pino';
import { ApiError, type ClusterStore } from '../apiserver/types.js';
import type { ControllerDefinition, ReconcileOutcome } from './controller-runner.js';
import type { EventRecorder } from './events.js';
import { resolveIntOrPercent } from './int-or-percent.js';
import { API, type DaemonSet, type DaemonSetStatus, type IntOrPercent, type Node, type Pod, type Toleration } from './kube-types.js';
import { controllerRef, isControlledBy, isDeleting, objectKey, splitKey } from './owner-references.js';
import { podFromTemplate } from './pod-template.js';
import { creationTime, isPodAvailable, isPodReady, podCondition } from './pod-state.js';
import { TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, effectiveTaints, untoleratedTaint } from './taints.js';
import { sameJson, templateHash } from './template-hash.js';

export const REVISION_HASH_LABEL = 'controller-revision-hash';
export const FAILED_POD_BACKOFF_MS = 5_000;

/** What the DaemonSet controller adds to every daemon pod (`util.AddOrUpdateDaemonPodTolerations`). */
export const DAEMON_POD_TOLERATIONS: Toleration[] = [
  { key: TAINT_NOT_READY, operator: 'Exists', effect: 'NoExecute' },
  { key: TAINT_NOT_READY, operator: 'Exists', effect: 'NoSchedule' },
  { key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: TAINT_UNSCHEDULABLE, operator: 'Exists', effect: 'NoSchedule' },
];

export interface DaemonSetPlan {
  create: Array<{ nodeName: string }>;
  delete: Pod[];
  status: DaemonSetStatus;
  requeueAfterMs?: number;
}

export function daemonPodTolerations(ds: DaemonSet): Toleration[] {
  const own = ds.spec?.template?.spec?.tolerations ?? [];
  const missing = DAEMON_POD_TOLERATIONS.filter((extra) => !own.some((t) => t.key === extra.key && t.effect === extra.effect));
  return [...own, ...missing];
}

export function nodeShouldRunDaemonPod(ds: DaemonSet, node: Node): boolean {
  const labels = node.metadata.labels ?? {};
  const selector = ds.spec?.template?.spec?.nodeSelector ?? {};
  if (Object.entries(selector).some(([key, value]) => labels[key] !== value)) return false;
  return untoleratedTaint(effectiveTaints(node), daemonPodTolerations(ds)) === undefined;
}

/** `spec.updateStrategy.rollingUpdate` with maxSurge (apps/v1 DaemonSetSpec). */
interface RollingUpdateDaemonSet {
  maxUnavailable?: IntOrPercent;
  maxSurge?: IntOrPercent;
}

/** maxSurge resolved against the eligible node count; 0 for OnDelete. */
export function daemonSetMaxSurge(ds: DaemonSet, desired: number): number {
  if (ds.spec?.updateStrategy?.type === 'OnDelete') return 0;
  const rollingUpdate: RollingUpdateDaemonSet | undefined = ds.spec?.updateStrategy?.rollingUpdate;
  return resolveIntOrPercent(rollingUpdate?.maxSurge, 0, desired, true);
}

/** Milliseconds until a Ready pod becomes available, or undefined when it is not Ready or already available. */
function untilAvailable(pod: Pod, minReadySeconds: number, now: number): number | undefined {
  const ready = podCondition(pod, 'Ready');
  if (ready?.status !== 'True' || minReadySeconds <= 0 || !ready.lastTransitionTime) return undefined;
  const due = Date.parse(ready.lastTransitionTime) + minReadySeconds * 1000;
  return Number.isFinite(due) && due > now ? due - now : undefined;
}

export function reconcileDaemonSet(ds: DaemonSet, nodes: Node[], namespacePods: Pod[], now: number): DaemonSetPlan {
  const hash = templateHash(ds.spec?.template ?? {});
  const minReadySeconds = ds.spec?.minReadySeconds ?? 0;
  const owned = namespacePods.filter((pod) => isControlledBy(pod, ds));
  const byNode = new Map<string, Pod[]>();
  for (const pod of owned) {
    const nodeName = pod.spec?.nodeName ?? '';
    byNode.set(nodeName, [...(byNode.get(nodeName) ?? []), pod]);
  }
  const isCurrent = (pod: Pod) => pod.metadata.labels?.[REVISION_HASH_LABEL] === hash;
  const available = (pod: Pod) => isPodAvailable(pod, minReadySeconds, now);
  const create: Array<{ nodeName: string }> = [];
  const remove: Pod[] = [];
  let requeueAfterMs: number | undefined;
  const requeue = (ms: number | undefined) => {
    if (ms !== undefined) requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, ms);
  };
  const sortedNodes = [...nodes].sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  const desired = sortedNodes.filter((node) => nodeShouldRunDaemonPod(ds, node)).length;
  const maxSurge = isDeleting(ds) ? 0 : daemonSetMaxSurge(ds, desired);
  /** Per eligible node, the pods kept after the per-node pass (surge: up to one old and one new). */
  const eligible = new Map<string, { current?: Pod; old?: Pod }>();
  let misscheduled = 0;

  for (const node of sortedNodes) {
    const nodeName = node.metadata.name ?? '';
    const pods = byNode.get(nodeName) ?? [];
    const live = pods.filter((pod) => !isDeleting(pod) && pod.status?.phase !== 'Failed' && pod.status?.phase !== 'Succeeded');
    if (!nodeShouldRunDaemonPod(ds, node)) {
      if (live.length > 0) misscheduled++;
      remove.push(...live);
      continue;
    }
    const failed = pods.filter((pod) => !isDeleting(pod) && (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded'));
    let waitingOnFailed = false;
    for (const pod of failed) {
      const due = creationTime(pod) + FAILED_POD_BACKOFF_MS;
      if (due <= now) remove.push(pod);
      else {
        waitingOnFailed = true;
        requeue(due - now);
      }
    }
    const byAge = [...live].sort((a, b) => creationTime(a) - creationTime(b));
    if (maxSurge > 0) {
      // Surge: keep the oldest new and the oldest old pod; the old one goes once it is not
      // Ready or the new one is available (Kubernetes' podsShouldBeOnNode with surge).
      const current = byAge.find(isCurrent);
      let old = byAge.find((pod) => !isCurrent(pod));
      remove.push(...live.filter((pod) => pod !== current && pod !== old));
      if (current && old) {
        if (!isPodReady(old) || available(current)) {
          remove.push(old);
          old = undefined;
        } else requeue(untilAvailable(current, minReadySeconds, now));
      }
      if (!current && !old && !waitingOnFailed && !isDeleting(ds)) create.push({ nodeName });
      eligible.set(nodeName, { ...(current ? { current } : {}), ...(old ? { old } : {}) });
      continue;
    }
    // Keep one pod per node: the current template's if any, else the oldest.
    const keep = [...byAge].sort((a, b) => Number(isCurrent(b)) - Number(isCurrent(a)))[0];
    remove.push(...live.filter((pod) => pod !== keep));
    if (!keep && !waitingOnFailed && !isDeleting(ds)) create.push({ nodeName });
    eligible.set(nodeName, keep ? (isCurrent(keep) ? { current: keep } : { old: keep }) : {});
  }

  if (ds.spec?.updateStrategy?.type !== 'OnDelete' && !isDeleting(ds)) {
    if (maxSurge > 0) {
      // Nodes still waiting for their new pod to become available use up the surge budget.
      let surging = 0;
      const candidates: string[] = [];
      for (const [nodeName, { current, old }] of eligible) {
        if (!old) continue;
        if (current) surging++;
        else if (!available(old)) create.push({ nodeName });
        else candidates.push(nodeName);
      }
      for (const nodeName of candidates.slice(0, Math.max(0, maxSurge - surging))) create.push({ nodeName });
    } else {
      const maxUnavailable = Math.max(1, resolveIntOrPercent(ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable, 1, desired, true));
      let unavailable = [...eligible.values()].filter(({ current, old }) => {
        const pod = current ?? old;
        return !pod || !available(pod);
      }).length;
      for (const [nodeName, { old }] of eligible) {
        if (!old) continue;
        if (available(old)) {
          if (unavailable >= maxUnavailable) continue;
          unavailable++;
        }
        remove.push(old);
        create.push({ nodeName });
      }
    }
  }

  // Each node counts with its oldest pod (the old one while a surge pod runs beside it).
  const scheduled = [...eligible.values()].map(({ current, old }) => old ?? current).filter((pod): pod is Pod => pod !== undefined);
  // A Ready pod becomes available minReadySeconds later with no event to say so: come back
  // then, or numberAvailable (and a rollout waiting on it) stays stale.
  for (const pod of scheduled) requeue(untilAvailable(pod, minReadySeconds, now));
  const status: DaemonSetStatus = {
    ...ds.status,
    desiredNumberScheduled: desired,
    currentNumberScheduled: scheduled.length,
    numberMisscheduled: misscheduled,
    numberReady: scheduled.filter(isPodReady).length,
    numberAvailable: scheduled.filter(available).length,
    numberUnavailable: desired - scheduled.filter(available).length,
    updatedNumberScheduled: scheduled.filter(isCurrent).length,
    observedGeneration: ds.metadata.generation ?? 1,
  };
  return { create, delete: remove, status, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

export function daemonPod(ds: DaemonSet, nodeName: string): Pod {
  const pod = podFromTemplate(ds.spec?.template, ds, { nodeName, tolerations: daemonPodTolerations(ds) });
  pod.metadata.labels = { ...pod.metadata.labels, [REVISION_HASH_LABEL]: templateHash(ds.spec?.template ?? {}) };
  return pod;
}

export interface DaemonSetControllerOptions {
  store: ClusterStore;
  log: Logger;
  events: EventRecorder;
  now: () => number;
}

export function daemonSetController({ store, log, events, now }: DaemonSetControllerOptions): ControllerDefinition {
  const allDaemonSets = () => store.list<DaemonSet>(API.daemonSet.apiVersion, API.daemonSet.kind).items.map(objectKey);
  return {
    name: 'daemonset-controller',
    watches: [
      { ...API.daemonSet, keys: (event) => (event.type === 'DELETED' ? [] : [objectKey(event.object)]) },
      {
        ...API.pod,
        keys: (event) => {
          const owner = controllerRef(event.object);
          return owner?.kind === 'DaemonSet' ? [`${event.object.metadata.namespace ?? 'default'}/${owner.name}`] : [];
        },
      },
      { ...API.node, keys: () => allDaemonSets() },
    ],
    reconcile(key): ReconcileOutcome | void {
      const { namespace, name } = splitKey(key);
      const ds = store.get<DaemonSet>(API.daemonSet.apiVersion, API.daemonSet.kind, namespace, name);
      if (!ds) return;
      const nodes = store.list<Node>(API.node.apiVersion, API.node.kind).items;
      const pods = store.list<Pod>(API.pod.apiVersion, API.pod.kind, { namespace }).items;
      const plan = reconcileDaemonSet(ds, nodes, pods, now());
      for (const pod of plan.delete) {
        try {
          store.delete(API.pod.apiVersion, API.pod.kind, namespace, pod.metadata.name ?? '');
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        }
        log.debug({ daemonSet: key, pod: pod.metadata.name, node: pod.spec?.nodeName }, 'deleted daemon pod');
        events.record(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name ?? ''}`);
      }
      for (const { nodeName } of plan.create) {
        const created = store.create(daemonPod(ds, nodeName), { fieldManager: 'daemonset-controller' });
        log.debug({ daemonSet: key, pod: created.metadata.name, node: nodeName }, 'created daemon pod');
        events.record(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name ?? ''}`);
      }
      const fresh = store.get<DaemonSet>(API.daemonSet.apiVersion, API.daemonSet.kind, namespace, name);
      if (fresh && !sameJson(fresh.status, plan.status)) {
        fresh.status = plan.status;
        store.update(fresh, { subresource: 'status', fieldManager: 'daemonset-controller' });
        log.debug({ daemonSet: key, status: plan.status }, 'updated status');
      }
      return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : undefined;
    },
  };
}
