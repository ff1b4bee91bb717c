/**
 * Upserting status conditions without churn: `lastTransitionTime` moves only when `status`
 * changes and `lastUpdateTime` (Deployments) only when reason or message changes, so
 * re-running a reconcile over an unchanged world produces an identical status and no write.
 */
import type { Condition } from './kube-types.js';

export function setCondition(existing: Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime' | 'lastUpdateTime'>, nowIso: string, withUpdateTime = false): Condition[] {
  const conditions = [...(existing ?? [])];
  const index = conditions.findIndex((condition) => condition.type === next.type);
  const previous = index >= 0 ? conditions[index] : undefined;
  const transitioned = previous?.status !== next.status;
  const changed = transitioned || previous?.reason !== next.reason || previous?.message !== next.message;
  const merged: Condition = {
    ...previous,
    ...next,
    lastTransitionTime: transitioned || !previous?.lastTransitionTime ? nowIso : previous.lastTransitionTime,
  };
  if (withUpdateTime) merged.lastUpdateTime = changed || !previous?.lastUpdateTime ? nowIso : previous.lastUpdateTime;
  if (index >= 0) conditions[index] = merged;
  else conditions.push(merged);
  return conditions;
}

/** Kubernetes timestamps (metav1.Time): RFC 3339 with second precision, as the API server writes them. */
export function kubeTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
