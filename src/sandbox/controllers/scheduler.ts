/**
 * The sandbox scheduler: binds pods that have no `spec.nodeName` (and use the default
 * scheduler) to a node. Decision (`schedulePod`) is pure:
 *
 * - Filter: the node is not cordoned (`spec.unschedulable`, unless tolerated), `nodeSelector`
 *   matches its labels, and the pod tolerates every NoSchedule/NoExecute taint — including
 *   `not-ready` for a node whose Ready condition is not True.
 * - Score: fewest pods of the same controller (spread replicas first), then fewest pods
 *   overall, then node name (deterministic).
 * - Nothing fits: PodScheduled=False, reason Unschedulable, with the scheduler's message
 *   ("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."); such
 *   pods are retried whenever a Node changes.
 *
 * Binding updates `spec.nodeName` through `store.update` (the sandbox API server allows the
 * empty → node transition, standing in for the pods/binding subresource), then sets
 * PodScheduled=True on the status subresource.
 */
import type { Logger } from 'pino';
import type { ClusterStore } from '../apiserver/types.js';
import type { ControllerDefinition } from './controller-runner.js';
import { kubeTime, setCondition } from './conditions.js';
import type { EventRecorder } from './events.js';
import { API, type Node, type Pod } from './kube-types.js';
import { controllerRef, isDeleting, objectKey, splitKey } from './owner-references.js';
import { isPodTerminal, podCondition } from './pod-state.js';
import { TAINT_UNSCHEDULABLE, describeTaint, effectiveTaints, untoleratedTaint } from './taints.js';

export const DEFAULT_SCHEDULER = 'default-scheduler';

export type ScheduleDecision = { kind: 'bind'; nodeName: string } | { kind: 'unschedulable'; message: string };

export function needsScheduling(pod: Pod): boolean {
  const schedulerName = pod.spec?.schedulerName ?? DEFAULT_SCHEDULER;
  return !pod.spec?.nodeName && schedulerName === DEFAULT_SCHEDULER && !isDeleting(pod) && !isPodTerminal(pod);
}

/** Why `node` cannot run `pod`, in the scheduler's words, or undefined when it can. */
export function nodeRejection(pod: Pod, node: Node): string | undefined {
  const tolerations = pod.spec?.tolerations;
  if (node.spec?.unschedulable && untoleratedTaint([{ key: TAINT_UNSCHEDULABLE, effect: 'NoSchedule' }], tolerations)) {
    return 'node(s) were unschedulable';
  }
  const labels = node.metadata.labels ?? {};
  const selector = pod.spec?.nodeSelector ?? {};
  if (Object.entries(selector).some(([key, value]) => labels[key] !== value)) {
    return "node(s) didn't match Pod's node affinity/selector";
  }
  const taint = untoleratedTaint(effectiveTaints(node), tolerations);
  if (taint) return `node(s) had untolerated taint ${describeTaint(taint)}`;
  return undefined;
}

export function schedulePod(pod: Pod, nodes: Node[], pods: Pod[]): ScheduleDecision {
  const rejections = new Map<string, number>();
  const feasible: Node[] = [];
  for (const node of nodes) {
    const reason = nodeRejection(pod, node);
    if (reason) rejections.set(reason, (rejections.get(reason) ?? 0) + 1);
    else feasible.push(node);
  }
  if (feasible.length === 0) {
    if (nodes.length === 0) return { kind: 'unschedulable', message: 'no nodes available to schedule pods' };
    const reasons = [...rejections.entries()]
      .map(([reason, count]) => `${count} ${reason}`)
      .sort()
      .join(', ');
    return { kind: 'unschedulable', message: `0/${nodes.length} nodes are available: ${reasons}.` };
  }
  const owner = controllerRef(pod)?.uid;
  const load = new Map<string, { siblings: number; total: number }>();
  for (const other of pods) {
    const nodeName = other.spec?.nodeName;
    if (!nodeName || isPodTerminal(other) || other.metadata.uid === pod.metadata.uid) continue;
    const entry = load.get(nodeName) ?? { siblings: 0, total: 0 };
    entry.total++;
    if (owner !== undefined && controllerRef(other)?.uid === owner) entry.siblings++;
    load.set(nodeName, entry);
  }
  const score = (node: Node) => load.get(node.metadata.name ?? '') ?? { siblings: 0, total: 0 };
  const best = [...feasible].sort((a, b) => {
    const sa = score(a);
    const sb = score(b);
    return sa.siblings - sb.siblings || sa.total - sb.total || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');
  })[0] as Node;
  return { kind: 'bind', nodeName: best.metadata.name ?? '' };
}

export interface SchedulerOptions {
  store: ClusterStore;
  log: Logger;
  events: EventRecorder;
  now: () => number;
}

export function schedulerController({ store, log, events, now }: SchedulerOptions): ControllerDefinition {
  const unscheduledKeys = (): string[] =>
    store
      .list<Pod>(API.pod.apiVersion, API.pod.kind)
      .items.filter(needsScheduling)
      .map(objectKey);

  return {
    name: 'scheduler',
    watches: [
      { ...API.pod, keys: (event) => (event.type !== 'DELETED' && needsScheduling(event.object as Pod) ? [objectKey(event.object)] : []) },
      // A node appearing, becoming Ready or being uncordoned may fit pods that did not fit.
      { ...API.node, keys: (event) => (event.type === 'DELETED' ? [] : unscheduledKeys()) },
    ],
    reconcile(key) {
      const { namespace, name } = splitKey(key);
      const pod = store.get<Pod>(API.pod.apiVersion, API.pod.kind, namespace, name);
      if (!pod || !needsScheduling(pod)) return;
      const nodes = store.list<Node>(API.node.apiVersion, API.node.kind).items;
      const pods = store.list<Pod>(API.pod.apiVersion, API.pod.kind).items;
      const decision = schedulePod(pod, nodes, pods);
      const nowIso = kubeTime(now());
      if (decision.kind === 'unschedulable') {
        const previous = podCondition(pod, 'PodScheduled');
        if (previous?.status === 'False' && previous.reason === 'Unschedulable' && previous.message === decision.message) return;
        pod.status = {
          ...pod.status,
          phase: pod.status?.phase ?? 'Pending',
          conditions: setCondition(pod.status?.conditions, { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: decision.message, lastProbeTime: null }, nowIso),
        };
        store.update(pod, { subresource: 'status', fieldManager: 'default-scheduler' });
        log.debug({ pod: key, message: decision.message }, 'pod unschedulable');
        events.record(pod, 'Warning', 'FailedScheduling', decision.message);
        return;
      }
      pod.spec = { ...pod.spec, nodeName: decision.nodeName };
      const bound = store.update(pod, { fieldManager: 'default-scheduler' });
      bound.status = {
        ...bound.status,
        conditions: setCondition(bound.status?.conditions, { type: 'PodScheduled', status: 'True', lastProbeTime: null }, nowIso).map((condition) => {
          if (condition.type !== 'PodScheduled') return condition;
          const { reason: _reason, message: _message, ...rest } = condition;
          return rest;
        }),
      };
      store.update(bound, { subresource: 'status', fieldManager: 'default-scheduler' });
      log.debug({ pod: key, node: decision.nodeName }, 'pod bound');
      events.record(bound, 'Normal', 'Scheduled', `Successfully assigned ${key} to ${decision.nodeName}`);
    },
  };
}
