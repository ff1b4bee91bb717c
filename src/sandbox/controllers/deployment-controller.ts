/**
 * The Deployment controller: one ReplicaSet per pod template, rolled out by strategy.
 *
 * `reconcileDeployment` (pure) returns the writes for one step; each write triggers the next
 * step through the ReplicaSet watch, as kube-controller-manager's `rolloutRolling` does:
 * - the current template's ReplicaSet is `<deployment>-<pod-template-hash>`, its selector and
 *   template carry the `pod-template-hash` label, and its `deployment.kubernetes.io/revision`
 *   is one above every older ReplicaSet's (a rollback to an old template re-revisions it);
 * - RollingUpdate: scale the new ReplicaSet up within `replicas + maxSurge`, then scale old
 *   ones down while at least `replicas - maxUnavailable` pods stay available (unhealthy old
 *   pods go first). Availability counts min(status.availableReplicas, spec.replicas) so a
 *   ReplicaSet whose status lags a scale-down is never counted twice;
 * - Recreate: scale every old ReplicaSet to 0, wait until their pods are gone, then scale up;
 * - `spec.paused`: no new ReplicaSet and no rollout, only scaling of the current one;
 * - fully scaled-down old ReplicaSets beyond `revisionHistoryLimit` (default 10) are deleted;
 * - status and the Available / Progressing conditions with Kubernetes' reasons.
 */
import type { Logger } from 'pino';
import { ApiError, type ClusterStore, type WatchEvent } from '../apiserver/types.js';
import type { ControllerDefinition } from './controller-runner.js';
import { kubeTime, setCondition } from './conditions.js';
import type { EventRecorder } from './events.js';
import { resolveIntOrPercent } from './int-or-percent.js';
import { API, type Condition, type Deployment, type DeploymentStatus, type ReplicaSet } from './kube-types.js';
import { matchesLabelSelector } from './label-selector.js';
import { controllerRef, isControlledBy, isDeleting, objectKey, ownerReferenceTo, splitKey } from './owner-references.js';
import { sameJson, templateHash } from './template-hash.js';

export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
const DEFAULT_REVISION_HISTORY_LIMIT = 10;

export type DeploymentAction =
  | { type: 'adoptReplicaSet'; name: string }
  | { type: 'createReplicaSet'; replicaSet: ReplicaSet }
  | { type: 'scaleReplicaSet'; name: string; from: number; replicas: number; revision?: string }
  | { type: 'deleteReplicaSet'; name: string }
  | { type: 'annotateRevision'; revision: string };

export interface DeploymentPlan {
  actions: DeploymentAction[];
  status: DeploymentStatus;
}

export function revisionOf(rs: ReplicaSet): number {
  const value = Number(rs.metadata.annotations?.[REVISION_ANNOTATION] ?? '0');
  return Number.isFinite(value) ? value : 0;
}

const specReplicas = (rs: ReplicaSet): number => rs.spec?.replicas ?? 0;
const availableOf = (rs: ReplicaSet, replicas = specReplicas(rs)): number => Math.min(rs.status?.availableReplicas ?? 0, replicas);
const byAge = (a: ReplicaSet, b: ReplicaSet): number => revisionOf(a) - revisionOf(b) || (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '');

export function rollingParameters(deployment: Deployment): { maxSurge: number; maxUnavailable: number } {
  const replicas = deployment.spec?.replicas ?? 1;
  if (deployment.spec?.strategy?.type === 'Recreate') return { maxSurge: 0, maxUnavailable: replicas };
  const rolling = deployment.spec?.strategy?.rollingUpdate;
  const maxSurge = resolveIntOrPercent(rolling?.maxSurge, '25%', replicas, true);
  let maxUnavailable = resolveIntOrPercent(rolling?.maxUnavailable, '25%', replicas, false);
  // Both zero would deadlock the rollout; Kubernetes validation forbids it, we degrade to 1.
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable: Math.min(maxUnavailable, replicas) };
}

export function newReplicaSetFor(deployment: Deployment, hash: string, replicas: number, revision: number): ReplicaSet {
  const template = deployment.spec?.template ?? {};
  const selector = deployment.spec?.selector ?? {};
  const labels = { ...template.metadata?.labels, [POD_TEMPLATE_HASH_LABEL]: hash };
  return {
    apiVersion: API.replicaSet.apiVersion,
    kind: API.replicaSet.kind,
    metadata: {
      name: `${deployment.metadata.name ?? ''}-${hash}`,
      namespace: deployment.metadata.namespace ?? 'default',
      labels,
      annotations: { [REVISION_ANNOTATION]: String(revision) },
      ownerReferences: [ownerReferenceTo(deployment)],
    },
    spec: {
      replicas,
      minReadySeconds: deployment.spec?.minReadySeconds ?? 0,
      selector: { ...selector, matchLabels: { ...selector.matchLabels, [POD_TEMPLATE_HASH_LABEL]: hash } },
      template: { ...structuredClone(template), metadata: { ...structuredClone(template.metadata ?? {}), labels } },
    },
  };
}

/** Replicas for the new ReplicaSet under RollingUpdate (`NewRSNewReplicas`). */
export function rollingNewReplicas(replicas: number, maxSurge: number, newCurrent: number, totalCurrent: number): number {
  if (newCurrent >= replicas) return replicas;
  const maxTotal = replicas + maxSurge;
  if (totalCurrent >= maxTotal) return newCurrent;
  return Math.min(newCurrent + (maxTotal - totalCurrent), replicas);
}

/** New spec.replicas for old ReplicaSets under RollingUpdate (`reconcileOldReplicaSets`). */
export function rollingOldReplicas(replicas: number, maxUnavailable: number, newRS: { spec: number; available: number }, old: ReplicaSet[]): Map<string, number> {
  const result = new Map(old.map((rs) => [rs.metadata.name ?? '', specReplicas(rs)]));
  const allPods = newRS.spec + old.reduce((sum, rs) => sum + specReplicas(rs), 0);
  const minAvailable = Math.max(0, replicas - maxUnavailable);
  const newUnavailable = newRS.spec - Math.min(newRS.available, newRS.spec);
  let budget = allPods - minAvailable - newUnavailable;
  if (budget <= 0) return result;
  const ordered = [...old].sort(byAge);
  // First shed old pods that are not available anyway: that costs no availability.
  for (const rs of ordered) {
    if (budget <= 0) break;
    const name = rs.metadata.name ?? '';
    const current = result.get(name) ?? 0;
    const unhealthy = current - availableOf(rs, current);
    const cut = Math.min(budget, unhealthy);
    if (cut > 0) {
      result.set(name, current - cut);
      budget -= cut;
    }
  }
  let available = Math.min(newRS.available, newRS.spec) + ordered.reduce((sum, rs) => sum + availableOf(rs, result.get(rs.metadata.name ?? '') ?? 0), 0);
  for (const rs of ordered) {
    if (available <= minAvailable) break;
    const name = rs.metadata.name ?? '';
    const current = result.get(name) ?? 0;
    const cut = Math.min(current, available - minAvailable);
    if (cut > 0) {
      result.set(name, current - cut);
      available -= cut;
    }
  }
  return result;
}

export function reconcileDeployment(deployment: Deployment, namespaceReplicaSets: ReplicaSet[], nowIso: string): DeploymentPlan {
  const actions: DeploymentAction[] = [];
  const replicas = deployment.spec?.replicas ?? 1;
  const paused = deployment.spec?.paused === true;
  const recreate = deployment.spec?.strategy?.type === 'Recreate';
  const { maxSurge, maxUnavailable } = rollingParameters(deployment);
  const collisionCount = typeof deployment.status?.collisionCount === 'number' ? deployment.status.collisionCount : 0;
  const hash = templateHash(deployment.spec?.template ?? {}, collisionCount);
  const newName = `${deployment.metadata.name ?? ''}-${hash}`;

  const owned: ReplicaSet[] = [];
  for (const rs of namespaceReplicaSets) {
    if (isControlledBy(rs, deployment)) owned.push(rs);
    else if (!controllerRef(rs) && !isDeleting(rs) && matchesLabelSelector(deployment.spec?.selector, rs.metadata.labels)) {
      actions.push({ type: 'adoptReplicaSet', name: rs.metadata.name ?? '' });
      owned.push(rs);
    }
  }
  const clash = namespaceReplicaSets.find((rs) => rs.metadata.name === newName && !owned.includes(rs));
  if (clash) {
    // Someone else's ReplicaSet has our name: hash again with a bumped collision count.
    return { actions, status: { ...deployment.status, collisionCount: collisionCount + 1 } };
  }

  let newRS = owned.find((rs) => rs.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] === hash);
  const old = owned.filter((rs) => rs !== newRS);
  const maxOldRevision = old.reduce((max, rs) => Math.max(max, revisionOf(rs)), 0);
  let newReplicas = newRS ? specReplicas(newRS) : 0;
  const oldReplicas = new Map(old.map((rs) => [rs.metadata.name ?? '', specReplicas(rs)]));
  let created = false;

  const scaleNew = (target: number): void => {
    if (!newRS) {
      newRS = newReplicaSetFor(deployment, hash, target, maxOldRevision + 1);
      actions.push({ type: 'createReplicaSet', replicaSet: newRS });
      created = true;
    } else if (target !== specReplicas(newRS)) {
      actions.push({ type: 'scaleReplicaSet', name: newName, from: specReplicas(newRS), replicas: target });
    }
    newReplicas = target;
  };
  const scaleOld = (targets: Map<string, number>): boolean => {
    let changed = false;
    for (const rs of old) {
      const name = rs.metadata.name ?? '';
      const target = targets.get(name) ?? specReplicas(rs);
      if (target !== specReplicas(rs)) {
        actions.push({ type: 'scaleReplicaSet', name, from: specReplicas(rs), replicas: target });
        oldReplicas.set(name, target);
        changed = true;
      }
    }
    return changed;
  };

  if (newRS && revisionOf(newRS) <= maxOldRevision) {
    actions.push({ type: 'scaleReplicaSet', name: newName, from: specReplicas(newRS), replicas: specReplicas(newRS), revision: String(maxOldRevision + 1) });
  }

  if (paused) {
    // Only scaling while paused: the current ReplicaSet (new one, else the newest active one) follows spec.replicas.
    const current = newRS ?? [...old].filter((rs) => specReplicas(rs) > 0).sort(byAge).at(-1);
    if (current && specReplicas(current) !== replicas) {
      actions.push({ type: 'scaleReplicaSet', name: current.metadata.name ?? '', from: specReplicas(current), replicas });
    }
  } else if (recreate) {
    const oldActive = old.some((rs) => specReplicas(rs) > 0);
    const oldPodsLeft = old.some((rs) => (rs.status?.replicas ?? 0) > 0);
    if (oldActive) scaleOld(new Map(old.map((rs) => [rs.metadata.name ?? '', 0])));
    else if (!oldPodsLeft) scaleNew(replicas);
  } else {
    const total = newReplicas + old.reduce((sum, rs) => sum + specReplicas(rs), 0);
    const target = newRS ? rollingNewReplicas(replicas, maxSurge, newReplicas, total) : rollingNewReplicas(replicas, maxSurge, 0, total);
    if (!newRS || target !== newReplicas) scaleNew(target);
    else scaleOld(rollingOldReplicas(replicas, maxUnavailable, { spec: newReplicas, available: newRS.status?.availableReplicas ?? 0 }, old));
  }

  // History: delete fully scaled-down old ReplicaSets beyond the limit, oldest first.
  const limit = deployment.spec?.revisionHistoryLimit ?? DEFAULT_REVISION_HISTORY_LIMIT;
  const drained = old.filter((rs) => (oldReplicas.get(rs.metadata.name ?? '') ?? 0) === 0 && (rs.status?.replicas ?? 0) === 0 && !isDeleting(rs)).sort(byAge);
  for (const rs of drained.slice(0, Math.max(0, drained.length - limit))) actions.push({ type: 'deleteReplicaSet', name: rs.metadata.name ?? '' });

  const newRevision = newRS ? String(revisionOf(newRS) > maxOldRevision ? revisionOf(newRS) : maxOldRevision + 1) : undefined;
  if (newRevision && deployment.metadata.annotations?.[REVISION_ANNOTATION] !== newRevision) actions.push({ type: 'annotateRevision', revision: newRevision });

  return { actions, status: deploymentStatus(deployment, owned, newRS && !created ? newRS : undefined, { replicas, maxUnavailable, paused, created, newName }, nowIso) };
}

function deploymentStatus(
  deployment: Deployment,
  owned: ReplicaSet[],
  newRS: ReplicaSet | undefined,
  facts: { replicas: number; maxUnavailable: number; paused: boolean; created: boolean; newName: string },
  nowIso: string,
): DeploymentStatus {
  const sum = (pick: (rs: ReplicaSet) => number | undefined) => owned.reduce((total, rs) => total + (pick(rs) ?? 0), 0);
  const statusReplicas = sum((rs) => rs.status?.replicas);
  const available = sum((rs) => rs.status?.availableReplicas);
  const updated = newRS?.status?.replicas ?? 0;
  let conditions: Condition[] | undefined = deployment.status?.conditions;
  const minimumAvailable = available >= facts.replicas - facts.maxUnavailable;
  conditions = setCondition(
    conditions,
    minimumAvailable
      ? { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }
      : { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' },
    nowIso,
    true,
  );
  const complete = newRS !== undefined && updated === facts.replicas && available === facts.replicas && statusReplicas === facts.replicas && (newRS.status?.availableReplicas ?? 0) === facts.replicas;
  const progressing: Omit<Condition, 'lastTransitionTime' | 'lastUpdateTime'> = facts.paused
    ? { type: 'Progressing', status: 'Unknown', reason: 'DeploymentPaused', message: 'Deployment is paused' }
    : complete
      ? { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${facts.newName}" has successfully progressed.` }
      : facts.created
        ? { type: 'Progressing', status: 'True', reason: 'NewReplicaSetCreated', message: `Created new replica set "${facts.newName}"` }
        : { type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `ReplicaSet "${facts.newName}" is progressing.` };
  conditions = setCondition(conditions, progressing, nowIso, true);
  return {
    ...deployment.status,
    observedGeneration: deployment.metadata.generation ?? 1,
    replicas: statusReplicas,
    updatedReplicas: updated,
    readyReplicas: sum((rs) => rs.status?.readyReplicas),
    availableReplicas: available,
    unavailableReplicas: Math.max(0, facts.replicas - available),
    conditions,
  };
}

export interface DeploymentControllerOptions {
  store: ClusterStore;
  log: Logger;
  events: EventRecorder;
  now: () => number;
}

export function deploymentController({ store, log, events, now }: DeploymentControllerOptions): ControllerDefinition {
  const replicaSetKeys = (event: WatchEvent): string[] => {
    const rs = event.object as ReplicaSet;
    const namespace = rs.metadata.namespace ?? 'default';
    const owner = controllerRef(rs);
    if (owner) return owner.kind === 'Deployment' ? [`${namespace}/${owner.name}`] : [];
    return store
      .list<Deployment>(API.deployment.apiVersion, API.deployment.kind, { namespace })
      .items.filter((deployment) => matchesLabelSelector(deployment.spec?.selector, rs.metadata.labels))
      .map(objectKey);
  };

  return {
    name: 'deployment-controller',
    watches: [
      { ...API.deployment, keys: (event) => (event.type === 'DELETED' ? [] : [objectKey(event.object)]) },
      { ...API.replicaSet, keys: replicaSetKeys },
    ],
    reconcile(key) {
      const { namespace, name } = splitKey(key);
      const deployment = store.get<Deployment>(API.deployment.apiVersion, API.deployment.kind, namespace, name);
      if (!deployment || isDeleting(deployment)) return;
      const replicaSets = store.list<ReplicaSet>(API.replicaSet.apiVersion, API.replicaSet.kind, { namespace }).items;
      const plan = reconcileDeployment(deployment, replicaSets, kubeTime(now()));
      const getRS = (rsName: string) => store.get<ReplicaSet>(API.replicaSet.apiVersion, API.replicaSet.kind, namespace, rsName);

      for (const action of plan.actions) {
        switch (action.type) {
          case 'adoptReplicaSet': {
            const rs = getRS(action.name);
            if (!rs) break;
            rs.metadata.ownerReferences = [...(rs.metadata.ownerReferences ?? []), ownerReferenceTo(deployment)];
            store.update(rs, { fieldManager: 'deployment-controller' });
            log.debug({ deployment: key, replicaSet: action.name }, 'adopted replica set');
            break;
          }
          case 'createReplicaSet': {
            store.create(action.replicaSet, { fieldManager: 'deployment-controller' });
            const to = action.replicaSet.spec?.replicas ?? 0;
            log.debug({ deployment: key, replicaSet: action.replicaSet.metadata.name, replicas: to }, 'created replica set');
            events.record(deployment, 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${action.replicaSet.metadata.name ?? ''} from 0 to ${to}`);
            break;
          }
          case 'scaleReplicaSet': {
            const rs = getRS(action.name);
            if (!rs) break;
            rs.spec = { ...rs.spec, replicas: action.replicas };
            if (action.revision) rs.metadata.annotations = { ...rs.metadata.annotations, [REVISION_ANNOTATION]: action.revision };
            store.update(rs, { fieldManager: 'deployment-controller' });
            log.debug({ deployment: key, replicaSet: action.name, from: action.from, to: action.replicas }, 'scaled replica set');
            if (action.from !== action.replicas) {
              const direction = action.replicas > action.from ? 'up' : 'down';
              events.record(deployment, 'Normal', 'ScalingReplicaSet', `Scaled ${direction} replica set ${action.name} from ${action.from} to ${action.replicas}`);
            }
            break;
          }
          case 'deleteReplicaSet':
            try {
              store.delete(API.replicaSet.apiVersion, API.replicaSet.kind, namespace, action.name);
            } catch (err) {
              if (!(err instanceof ApiError && err.code === 404)) throw err;
            }
            log.debug({ deployment: key, replicaSet: action.name }, 'deleted old replica set beyond revisionHistoryLimit');
            break;
          case 'annotateRevision': {
            const fresh = store.get<Deployment>(API.deployment.apiVersion, API.deployment.kind, namespace, name);
            if (!fresh) break;
            fresh.metadata.annotations = { ...fresh.metadata.annotations, [REVISION_ANNOTATION]: action.revision };
            store.update(fresh, { fieldManager: 'deployment-controller' });
            break;
          }
        }
      }

      const fresh = store.get<Deployment>(API.deployment.apiVersion, API.deployment.kind, namespace, name);
      if (fresh && !sameJson(fresh.status, plan.status)) {
        fresh.status = plan.status;
        store.update(fresh, { subresource: 'status', fieldManager: 'deployment-controller' });
        log.debug({ deployment: key, status: fresh.status }, 'updated status');
      }
    },
  };
}
