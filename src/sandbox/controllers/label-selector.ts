/**
 * Label selector matching as Kubernetes defines it
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#resources-that-support-set-based-requirements).
 * Workload selectors (`LabelSelector`) are AND-ed matchLabels + matchExpressions; an undefined
 * selector selects nothing, an empty one everything. Service selectors are plain maps and an
 * empty map selects nothing (a Service without selector has user-managed endpoints).
 */
import type { LabelSelector } from './kube-types.js';

export function matchesLabelSelector(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const requirement of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(have, requirement.key);
    const value = have[requirement.key];
    const values = requirement.values ?? [];
    switch (requirement.operator) {
      case 'In':
        if (!present || !values.includes(value as string)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(value as string)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        // An operator we do not know must not select everything by accident.
        return false;
    }
  }
  return true;
}

/** Service-style selector: every key/value must be present; empty or missing selects nothing. */
export function matchesServiceSelector(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  const have = labels ?? {};
  return Object.entries(selector).every(([key, value]) => have[key] === value);
}
