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
 * - RollingUpdate (maxUnavailable, default 1): old-template pods that are not available go at
 *   once; available ones are deleted (and replaced in the same step) only while fewer than
 *   maxUnavailable eligible nodes lack an available pod — i.e. the next old pod goes once the
 *   previous replacement is ready. OnDelete leaves old pods alone.
 */
import type { Logger } from 'pino';
import { ApiError, type ClusterStore } from '../apiserver/types.js';
import type { ControllerDefinition, ReconcileOutcome } from './controller-runner.js';
import type { EventRecorder } from './events.js';
import { resolveIntOrPercent } from './int-or-percent.js';
import { API, type DaemonSet, type DaemonSetStatus, type Node, type Pod, type Toleration } from './kube-types.js';
import { controllerRef, isControlledBy, isDeleting, objectKey, splitKey } from './owner-references.js';
import { podFromTemplate } from './pod-template.js';
import { creationTime, isPodAvailable, isPodReady } from './pod-state.js';
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
  const create: Array<{ nodeName: string }> = [];
  const remove: Pod[] = [];
  let requeueAfterMs: number | undefined;
  const eligible = new Map<string, Pod | undefined>();
  let misscheduled = 0;

  for (const node of [...nodes].sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''))) {
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
        requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, due - now);
      }
    }
    // Keep one pod per node: the current template's if any, else the oldest.
    const keep = [...live].sort((a, b) => Number(isCurrent(b)) - Number(isCurrent(a)) || creationTime(a) - creationTime(b))[0];
    remove.push(...live.filter((pod) => pod !== keep));
    if (!keep && !waitingOnFailed && !isDeleting(ds)) create.push({ nodeName });
    eligible.set(nodeName, keep);
  }

  const desired = eligible.size;
  if (ds.spec?.updateStrategy?.type !== 'OnDelete' && !isDeleting(ds)) {
    const maxUnavailable = Math.max(1, resolveIntOrPercent(ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable, 1, desired, true));
    let unavailable = [...eligible.values()].filter((pod) => !pod || !isPodAvailable(pod, minReadySeconds, now)).length;
    const outdated = [...eligible.entries()].filter((entry): entry is [string, Pod] => entry[1] !== undefined && !isCurrent(entry[1]));
    for (const [nodeName, pod] of outdated) {
      const available = isPodAvailable(pod, minReadySeconds, now);
      if (available) {
        if (unavailable >= maxUnavailable) continue;
        unavailable++;
      }
      remove.push(pod);
      create.push({ nodeName });
    }
  }

  const scheduled = [...eligible.values()].filter((pod): pod is Pod => pod !== undefined);
  const status: DaemonSetStatus = {
    ...ds.status,
    desiredNumberScheduled: desired,
    currentNumberScheduled: scheduled.length,
    numberMisscheduled: misscheduled,
    numberReady: scheduled.filter(isPodReady).length,
    numberAvailable: scheduled.filter((pod) => isPodAvailable(pod, minReadySeconds, now)).length,
    numberUnavailable: desired - scheduled.filter((pod) => isPodAvailable(pod, minReadySeconds, now)).length,
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
