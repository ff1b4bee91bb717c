/**
 * `metav1.LabelSelector` (matchLabels + matchExpressions): validation and matching, for
 * workload selectors that must select their own pod template.
 */
import type { FieldErrors } from './field-errors.js';
import { validateLabels } from './metadata.js';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

export function isEmptySelector(selector: LabelSelector): boolean {
  return Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
}

export function validateLabelSelector(selector: LabelSelector, field: string, errors: FieldErrors): void {
  validateLabels(selector.matchLabels, `${field}.matchLabels`, errors);
  (selector.matchExpressions ?? []).forEach((expression, i) => {
    const at = `${field}.matchExpressions[${i}]`;
    if (!(OPERATORS as readonly string[]).includes(expression.operator)) {
      errors.notSupported(`${at}.operator`, expression.operator, OPERATORS);
      return;
    }
    const values = expression.values ?? [];
    if ((expression.operator === 'In' || expression.operator === 'NotIn') && values.length === 0) errors.required(`${at}.values`, 'must be specified when `operator` is \'In\' or \'NotIn\'');
    if ((expression.operator === 'Exists' || expression.operator === 'DoesNotExist') && values.length > 0) errors.forbidden(`${at}.values`, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
  });
}

/** An empty selector matches everything (callers reject it where Kubernetes does). */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(labels, key);
    const value = labels[key];
    if (operator === 'In' && !(present && values.includes(value as string))) return false;
    if (operator === 'NotIn' && present && values.includes(value as string)) return false;
    if (operator === 'Exists' && !present) return false;
    if (operator === 'DoesNotExist' && present) return false;
  }
  return true;
}
