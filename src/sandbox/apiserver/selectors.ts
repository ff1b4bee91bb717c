/**
 * Label and field selectors, parsed once per request and matched against objects.
 * Syntax: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
 * Pure functions; invalid selectors throw ApiError 400 naming the selector.
 */
import { badRequest } from './api-errors.js';
import type { KubeObject } from './types.js';

export type LabelOperator = 'exists' | '!exists' | '=' | '!=' | 'in' | 'notin';

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  values: string[];
}

export interface FieldRequirement {
  path: string;
  operator: '=' | '!=';
  value: string;
}

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Splits on commas that are not inside `( … )`. */
function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

function checkKey(key: string, selector: string): string {
  if (!KEY.test(key) || key.length > 317) throw badRequest(`unable to parse requirement: invalid label key "${key}" in label selector "${selector}"`);
  return key;
}

function checkValue(value: string, selector: string): string {
  if (!VALUE.test(value) || value.length > 63) throw badRequest(`unable to parse requirement: invalid label value "${value}" in label selector "${selector}"`);
  return value;
}

export function parseLabelSelector(selector: string | undefined): LabelRequirement[] {
  if (!selector) return [];
  return splitTopLevel(selector).map((part): LabelRequirement => {
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (set) {
      const values = (set[3] ?? '').split(',').map((v) => checkValue(v.trim(), selector));
      return { key: checkKey(set[1] ?? '', selector), operator: set[2] as 'in' | 'notin', values };
    }
    const eq = /^([^!=\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (eq) {
      const operator = eq[2] === '!=' ? '!=' : '=';
      return { key: checkKey(eq[1] ?? '', selector), operator, values: [checkValue((eq[3] ?? '').trim(), selector)] };
    }
    if (part.startsWith('!')) return { key: checkKey(part.slice(1).trim(), selector), operator: '!exists', values: [] };
    return { key: checkKey(part, selector), operator: 'exists', values: [] };
  });
}

export function matchesLabels(requirements: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const all = labels ?? {};
  return requirements.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(all, r.key);
    const value = all[r.key];
    switch (r.operator) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case '=':
        return has && value === r.values[0];
      case '!=':
        return !has || value !== r.values[0];
      case 'in':
        return has && r.values.includes(value ?? '');
      case 'notin':
        return !has || !r.values.includes(value ?? '');
    }
  });
}

/**
 * Field selectors: `path=value`, `path==value`, `path!=value`, comma-separated. Kubernetes
 * supports a per-kind list of paths; the sandbox accepts any dotted path to a scalar (a
 * missing field compares as ''), which covers metadata.name, metadata.namespace,
 * spec.nodeName, status.phase and the involvedObject.* fields `kubectl events` uses.
 */
export function parseFieldSelector(selector: string | undefined): FieldRequirement[] {
  if (!selector) return [];
  return splitTopLevel(selector).map((part) => {
    const m = /^([A-Za-z0-9_.-]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid field selector "${selector}": "${part}" is not of the form field=value or field!=value`);
    return { path: m[1] ?? '', operator: m[2] === '!=' ? '!=' : '=', value: (m[3] ?? '').trim() };
  });
}

function fieldValue(object: KubeObject, path: string): string {
  let current: unknown = object;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object') return '';
    current = (current as Record<string, unknown>)[segment];
  }
  if (current === undefined || current === null) return '';
  return typeof current === 'object' ? JSON.stringify(current) : String(current as string | number | boolean);
}

export function matchesFields(requirements: FieldRequirement[], object: KubeObject): boolean {
  return requirements.every((r) => (fieldValue(object, r.path) === r.value) === (r.operator === '='));
}

export interface Selector {
  namespace?: string;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

export function parseSelector(options: { namespace?: string; labelSelector?: string; fieldSelector?: string }): Selector {
  return {
    ...(options.namespace ? { namespace: options.namespace } : {}),
    labels: parseLabelSelector(options.labelSelector),
    fields: parseFieldSelector(options.fieldSelector),
  };
}

export function matchesSelector(selector: Selector, object: KubeObject): boolean {
  if (selector.namespace !== undefined && object.metadata.namespace !== selector.namespace) return false;
  return matchesLabels(selector.labels, object.metadata.labels) && matchesFields(selector.fields, object);
}
