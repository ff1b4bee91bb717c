/**
 * Merging our status conditions into an object's list (Kubernetes conventions): conditions of
 * other types (other controllers') are kept as they are; ours get `observedGeneration`, and keep
 * their `lastTransitionTime` while their status is unchanged. Pure.
 */
import type { Condition, ConditionSpec } from '../status/policy-status.js';

export type { Condition, ConditionSpec } from '../status/policy-status.js';

export function mergeConditions(desired: readonly ConditionSpec[], current: readonly Condition[] | undefined, owned: readonly string[], generation: number | undefined, now: Date): Condition[] {
  const ownedSet = new Set(owned);
  const others = (current ?? []).filter((c) => !ownedSet.has(c.type));
  const ours = desired.map((d): Condition => {
    const previous = current?.find((c) => c.type === d.type);
    return {
      ...d,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: previous && previous.status === d.status && previous.lastTransitionTime ? previous.lastTransitionTime : now.toISOString(),
    };
  });
  return [...others, ...ours];
}

/** Same conditions (type, status, reason, message, observedGeneration), in any order, times ignored. */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const norm = (list: readonly Condition[]): string =>
    JSON.stringify(
      list
        .map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration ?? null])
        .sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
  return norm(a ?? []) === norm(b ?? []);
}
