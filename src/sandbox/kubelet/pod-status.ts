/**
 * Pod status from the kubelet's view of its containers — pure, so phases and conditions are
 * table-tested. Semantics: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/
 *
 * - Pending until every container has started at least once; Running afterwards while any
 *   runs or will restart; Succeeded/Failed once all have terminated for good.
 * - Conditions keep their lastTransitionTime while their status does not change.
 */
import type { ContainerStatus, PodCondition, PodStatus } from './pod-types.js';

export interface PodStatusInput {
  restartPolicy: 'Always' | 'OnFailure' | 'Never' | undefined;
  containers: ContainerStatus[];
  podIP?: string;
  hostIP?: string;
  startTime?: string;
  previous?: PodStatus;
  /** ISO time for new transitions. */
  now: string;
}

function everStarted(c: ContainerStatus): boolean {
  return 'running' in c.state || 'terminated' in c.state || c.restartCount > 0 || 'terminated' in c.lastState;
}

function terminatedForGood(c: ContainerStatus, policy: PodStatusInput['restartPolicy']): boolean {
  if (!('terminated' in c.state)) return false;
  const code = c.state.terminated.exitCode;
  return policy === 'Never' || (policy === 'OnFailure' && code === 0);
}

export function podPhase(restartPolicy: PodStatusInput['restartPolicy'], containers: ContainerStatus[]): PodStatus['phase'] {
  if (containers.length > 0 && containers.every((c) => terminatedForGood(c, restartPolicy))) {
    return containers.every((c) => 'terminated' in c.state && c.state.terminated.exitCode === 0) ? 'Succeeded' : 'Failed';
  }
  return containers.length > 0 && containers.every(everStarted) ? 'Running' : 'Pending';
}

function condition(type: string, ok: boolean, previous: PodCondition[] | undefined, now: string, reason?: string, message?: string): PodCondition {
  const status = ok ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  return {
    type,
    status,
    lastProbeTime: null,
    lastTransitionTime: before && before.status === status ? before.lastTransitionTime : now,
    ...(reason && !ok ? { reason } : {}),
    ...(message && !ok ? { message } : {}),
  };
}

export function computePodStatus(input: PodStatusInput): PodStatus {
  const { containers, previous, now } = input;
  const phase = podPhase(input.restartPolicy, containers);
  const notReady = containers.filter((c) => !c.ready).map((c) => c.name);
  const allReady = notReady.length === 0 && containers.length > 0;
  const finished = phase === 'Succeeded' || phase === 'Failed';
  const message = notReady.length ? `containers with unready status: [${notReady.join(' ')}]` : undefined;
  const reason = finished ? 'PodCompleted' : 'ContainersNotReady';
  const conditions = [
    condition('PodReadyToStartContainers', input.podIP !== undefined, previous?.conditions, now),
    condition('Initialized', true, previous?.conditions, now),
    condition('Ready', allReady && !finished, previous?.conditions, now, reason, message),
    condition('ContainersReady', allReady && !finished, previous?.conditions, now, reason, message),
    condition('PodScheduled', true, previous?.conditions, now),
  ];
  return {
    phase,
    conditions,
    ...(input.hostIP ? { hostIP: input.hostIP, hostIPs: [{ ip: input.hostIP }] } : {}),
    ...(input.podIP ? { podIP: input.podIP, podIPs: [{ ip: input.podIP }] } : {}),
    ...(input.startTime ? { startTime: input.startTime } : {}),
    containerStatuses: containers,
    qosClass: 'BestEffort',
  };
}
