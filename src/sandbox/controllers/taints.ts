/**
 * Taints and tolerations (https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/),
 * plus the taints the node lifecycle controller would put on a node that is not Ready or is
 * cordoned — the sandbox has no such controller, so they are derived from the Node here.
 */
import type { Node, Taint, Toleration } from './kube-types.js';

export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';

export function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.operator === 'Exists') return !toleration.key || toleration.key === taint.key;
  return toleration.key === taint.key && (toleration.value ?? '') === (taint.value ?? '');
}

/** The first NoSchedule/NoExecute taint no toleration covers (PreferNoSchedule never blocks). */
export function untoleratedTaint(taints: Taint[], tolerations: Toleration[] | undefined): Taint | undefined {
  return taints.find((taint) => taint.effect !== 'PreferNoSchedule' && !(tolerations ?? []).some((toleration) => tolerates(toleration, taint)));
}

export function isNodeReady(node: Node): boolean {
  return node.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True') ?? false;
}

/** The node's own taints plus `not-ready` when its Ready condition is not True. */
export function effectiveTaints(node: Node): Taint[] {
  const taints = [...(node.spec?.taints ?? [])];
  if (!isNodeReady(node) && !taints.some((taint) => taint.key === TAINT_NOT_READY)) {
    taints.push({ key: TAINT_NOT_READY, effect: 'NoSchedule' });
  }
  return taints;
}

export function describeTaint(taint: Taint): string {
  return `{${taint.key}: ${taint.value ?? ''}}`;
}
