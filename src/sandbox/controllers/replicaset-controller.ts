/**
 * The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector.
 *
 * `reconcileReplicaSet` (pure) decides, from the ReplicaSet and the pods of its namespace:
 * - adopt orphans (no controller) that match the selector; release owned pods that no longer do;
 * - create pods from the template while active pods (not terminal, not deleting) are too few.
 *   Failed/Succeeded pods do not count and get replaced — after a back-off that doubles with
 *   each finished pod still around (1 s … 16 s), so a pod that fails at once (an unknown image)
 *   does not make the controller spin; only the newest few finished pods are kept;
 * - delete surplus pods, cheapest first: unscheduled, then Pending, then not Ready, then newest
 *   (kube-controller-manager's `ActivePods` ordering, simplified);
 * - status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration.
 */
import type { Logger } from 'pino';
import { ApiError, type ClusterStore, type WatchEvent } from '../apiserver/types.js';
import type { ControllerDefinition, ReconcileOutcome } from './controller-runner.js';
import type { EventRecorder } from './events.js';
import { API, type Pod, type ReplicaSet, type ReplicaSetStatus } from './kube-types.js';
import { matchesLabelSelector } from './label-selector.js';
import { controllerRef, isControlledBy, isDeleting, objectKey, ownerReferenceTo, splitKey } from './owner-references.js';
import { podFromTemplate } from './pod-template.js';
import { creationTime, isPodActive, isPodAvailable, isPodReady, isPodTerminal } from './pod-state.js';
import { sameJson } from './template-hash.js';

/** Finished pods kept for `kubectl get pods` to show why; older ones are deleted. */
export const MAX_FINISHED_PODS_KEPT = 5;
const REPLACEMENT_BACKOFF_BASE_MS = 1_000;
/** Pods created per reconcile at most, like the controller's slow-start batches. */
const MAX_CREATE_BURST = 100;

export interface ReplicaSetPlan {
  adopt: Pod[];
  release: Pod[];
  create: number;
  delete: Pod[];
  status: ReplicaSetStatus;
  /** Reconcile again after this long (a replacement back-off or minReadySeconds pending). */
  requeueAfterMs?: number;
}

const PHASE_RANK: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/** Sort order for surplus deletion: the pod whose loss hurts least comes first. */
export function compareForDeletion(a: Pod, b: Pod): number {
  const assigned = (pod: Pod) => (pod.spec?.nodeName ? 1 : 0);
  const phase = (pod: Pod) => PHASE_RANK[pod.status?.phase ?? 'Pending'] ?? 0;
  const ready = (pod: Pod) => (isPodReady(pod) ? 1 : 0);
  return assigned(a) - assigned(b) || phase(a) - phase(b) || ready(a) - ready(b) || creationTime(b) - creationTime(a);
}

export function reconcileReplicaSet(rs: ReplicaSet, namespacePods: Pod[], now: number): ReplicaSetPlan {
  const selector = rs.spec?.selector;
  const desired = rs.spec?.replicas ?? 1;
  const minReadySeconds = rs.spec?.minReadySeconds ?? 0;
  const adopt: Pod[] = [];
  const release: Pod[] = [];
  const owned: Pod[] = [];
  for (const pod of namespacePods) {
    const matches = matchesLabelSelector(selector, pod.metadata.labels);
    if (isControlledBy(pod, rs)) {
      if (matches || isDeleting(pod)) owned.push(pod);
      else release.push(pod);
    } else if (!controllerRef(pod) && matches && !isDeleting(pod) && !isDeleting(rs)) {
      adopt.push(pod);
      owned.push(pod);
    }
  }

  const active = owned.filter(isPodActive);
  const finished = owned.filter(isPodTerminal).sort((a, b) => creationTime(b) - creationTime(a));
  const toDelete = finished.slice(MAX_FINISHED_PODS_KEPT);
  const finishedKept = finished.length - toDelete.length;
  let create = 0;
  let requeueAfterMs: number | undefined;
  if (!isDeleting(rs)) {
    const diff = desired - active.length;
    if (diff > 0) {
      const newestFinished = finished[0];
      const waitUntil = newestFinished ? creationTime(newestFinished) + REPLACEMENT_BACKOFF_BASE_MS * 2 ** (finishedKept - 1) : 0;
      if (waitUntil > now) requeueAfterMs = waitUntil - now;
      else create = Math.min(diff, MAX_CREATE_BURST);
    } else if (diff < 0) {
      toDelete.push(...[...active].sort(compareForDeletion).slice(0, -diff));
    }
  }

  const templateLabels = rs.spec?.template?.metadata?.labels ?? {};
  const readyNotAvailable = active.some((pod) => isPodReady(pod) && !isPodAvailable(pod, minReadySeconds, now));
  if (readyNotAvailable && requeueAfterMs === undefined) requeueAfterMs = minReadySeconds * 1000;
  const status: ReplicaSetStatus = {
    ...rs.status,
    replicas: active.length,
    fullyLabeledReplicas: active.filter((pod) => Object.entries(templateLabels).every(([key, value]) => pod.metadata.labels?.[key] === value)).length,
    readyReplicas: active.filter(isPodReady).length,
    availableReplicas: active.filter((pod) => isPodAvailable(pod, minReadySeconds, now)).length,
    observedGeneration: rs.metadata.generation ?? 1,
  };
  return { adopt, release, create, delete: toDelete, status, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

export interface ReplicaSetControllerOptions {
  store: ClusterStore;
  log: Logger;
  events: EventRecorder;
  now: () => number;
}

export function replicaSetController({ store, log, events, now }: ReplicaSetControllerOptions): ControllerDefinition {
  const podKeys = (event: WatchEvent): string[] => {
    const pod = event.object as Pod;
    const namespace = pod.metadata.namespace ?? 'default';
    const owner = controllerRef(pod);
    if (owner) return owner.kind === 'ReplicaSet' ? [`${namespace}/${owner.name}`] : [];
    // An orphan: any ReplicaSet that selects it may adopt it.
    return store
      .list<ReplicaSet>(API.replicaSet.apiVersion, API.replicaSet.kind, { namespace })
      .items.filter((rs) => matchesLabelSelector(rs.spec?.selector, pod.metadata.labels))
      .map(objectKey);
  };

  return {
    name: 'replicaset-controller',
    watches: [
      { ...API.replicaSet, keys: (event) => (event.type === 'DELETED' ? [] : [objectKey(event.object)]) },
      { ...API.pod, keys: podKeys },
    ],
    reconcile(key): ReconcileOutcome | void {
      const { namespace, name } = splitKey(key);
      const rs = store.get<ReplicaSet>(API.replicaSet.apiVersion, API.replicaSet.kind, namespace, name);
      if (!rs) return;
      const pods = store.list<Pod>(API.pod.apiVersion, API.pod.kind, { namespace }).items;
      const plan = reconcileReplicaSet(rs, pods, now());

      for (const pod of plan.adopt) {
        pod.metadata.ownerReferences = [...(pod.metadata.ownerReferences ?? []), ownerReferenceTo(rs)];
        store.update(pod, { fieldManager: 'replicaset-controller' });
        log.debug({ replicaSet: key, pod: pod.metadata.name }, 'adopted orphan pod');
      }
      for (const pod of plan.release) {
        pod.metadata.ownerReferences = (pod.metadata.ownerReferences ?? []).filter((reference) => reference.uid !== rs.metadata.uid);
        store.update(pod, { fieldManager: 'replicaset-controller' });
        log.debug({ replicaSet: key, pod: pod.metadata.name }, 'released pod that no longer matches the selector');
      }
      for (let index = 0; index < plan.create; index++) {
        const created = store.create(podFromTemplate(rs.spec?.template, rs), { fieldManager: 'replicaset-controller' });
        log.debug({ replicaSet: key, pod: created.metadata.name }, 'created pod');
        events.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name ?? ''}`);
      }
      for (const pod of plan.delete) {
        try {
          store.delete(API.pod.apiVersion, API.pod.kind, namespace, pod.metadata.name ?? '');
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        }
        log.debug({ replicaSet: key, pod: pod.metadata.name }, 'deleted pod');
        events.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name ?? ''}`);
      }

      // Re-read: the writes above bumped nothing on the ReplicaSet, but a concurrent writer may have.
      const fresh = store.get<ReplicaSet>(API.replicaSet.apiVersion, API.replicaSet.kind, namespace, name);
      if (fresh && !sameJson(fresh.status, plan.status)) {
        fresh.status = plan.status;
        store.update(fresh, { subresource: 'status', fieldManager: 'replicaset-controller' });
        log.debug({ replicaSet: key, status: plan.status }, 'updated status');
      }
      return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : undefined;
    },
  };
}
