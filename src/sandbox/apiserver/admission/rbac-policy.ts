/**
 * RBAC (ClusterRole, ClusterRoleBinding, Role, RoleBinding) and policy/v1 PodDisruptionBudget:
 * the defaults and validation kube-apiserver applies on write (pkg/apis/rbac/v1/defaults.go,
 * pkg/apis/rbac/validation, pkg/apis/policy/validation), in its words. The sandbox STORES these objects and never consults them — it
 * authorizes every authenticated caller, and nothing evicts pods — so what a real cluster would
 * refuse is refused here too, but nothing is enforced.
 */
import { isDeepStrictEqual } from 'node:util';
import type { KubeObject } from '../types.js';
import { isPlainObject, type JsonObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';
import { validateLabelSelector, type LabelSelector } from './label-selector.js';
import { dns1123Subdomain } from './names.js';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';
export const RBAC_KINDS = ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'] as const;
export type RbacKind = (typeof RBAC_KINDS)[number];

const SUBJECT_KINDS = ['ServiceAccount', 'User', 'Group'] as const;
const EVICTION_POLICIES = ['IfHealthyBudget', 'AlwaysAllow'] as const;

const strings = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

function validateRule(rule: unknown, at: string, namespaced: boolean, errors: FieldErrors): void {
  if (!isPlainObject(rule)) return errors.typeInvalid(at, rule, 'must be an object');
  if (strings(rule['verbs']).length === 0) errors.required(`${at}.verbs`, 'verbs must contain at least one value');
  const nonResourceUrls = strings(rule['nonResourceURLs']);
  if (nonResourceUrls.length > 0) {
    if (namespaced) errors.invalid(`${at}.nonResourceURLs`, rule['nonResourceURLs'], 'namespaced rules cannot apply to non-resource URLs');
    if (strings(rule['apiGroups']).length > 0 || strings(rule['resources']).length > 0 || strings(rule['resourceNames']).length > 0) {
      errors.invalid(`${at}.nonResourceURLs`, rule['nonResourceURLs'], 'rules cannot apply to both regular resources and non-resource URLs');
    }
    return;
  }
  if (strings(rule['apiGroups']).length === 0) errors.required(`${at}.apiGroups`, 'resource rules must supply at least one api group');
  if (strings(rule['resources']).length === 0) errors.required(`${at}.resources`, 'resource rules must supply at least one resource');
}

function validateRules(role: KubeObject, namespaced: boolean, errors: FieldErrors): void {
  const rules = role['rules'];
  if (rules === undefined || rules === null) return;
  if (!Array.isArray(rules)) return errors.typeInvalid('rules', rules, 'must be a list');
  rules.forEach((rule: unknown, i) => validateRule(rule, `rules[${i}]`, namespaced, errors));
}

function validateAggregationRule(role: KubeObject, errors: FieldErrors): void {
  const rule = role['aggregationRule'];
  if (rule === undefined || rule === null) return;
  const selectors = isPlainObject(rule) ? strings(rule['clusterRoleSelectors']) : [];
  if (selectors.length === 0) return errors.required('aggregationRule.clusterRoleSelectors', 'at least one clusterRoleSelector required if aggregationRule is non-nil');
  selectors.forEach((selector, i) => {
    if (isPlainObject(selector)) validateLabelSelector(selector as LabelSelector, `aggregationRule.clusterRoleSelectors[${i}]`, errors);
  });
}

function validateSubject(subject: unknown, at: string, namespaced: boolean, errors: FieldErrors): void {
  if (!isPlainObject(subject)) return errors.typeInvalid(at, subject, 'must be an object');
  const name = subject['name'];
  if (typeof name !== 'string' || name === '') errors.required(`${at}.name`);
  const apiGroup = subject['apiGroup'] ?? '';
  switch (subject['kind']) {
    case 'ServiceAccount':
      if (typeof name === 'string' && name !== '') for (const message of dns1123Subdomain(name)) errors.invalid(`${at}.name`, name, message);
      if (apiGroup !== '') errors.notSupported(`${at}.apiGroup`, apiGroup, ['']);
      if (!namespaced && (typeof subject['namespace'] !== 'string' || subject['namespace'] === '')) errors.required(`${at}.namespace`);
      break;
    case 'User':
    case 'Group':
      if (apiGroup !== RBAC_GROUP) errors.notSupported(`${at}.apiGroup`, apiGroup, [RBAC_GROUP]);
      break;
    default:
      errors.notSupported(`${at}.kind`, subject['kind'], SUBJECT_KINDS);
  }
}

/** pkg/apis/rbac/v1/defaults.go: roleRef.apiGroup, and User/Group subjects' apiGroup, default to rbac's group. */
function defaultBinding(binding: KubeObject): void {
  const roleRef = binding['roleRef'];
  if (isPlainObject(roleRef) && (roleRef['apiGroup'] === undefined || roleRef['apiGroup'] === '')) roleRef['apiGroup'] = RBAC_GROUP;
  for (const subject of strings(binding['subjects'])) {
    if (!isPlainObject(subject) || (subject['apiGroup'] !== undefined && subject['apiGroup'] !== '')) continue;
    // A ServiceAccount's group is '' — omitted, as kube-apiserver's omitempty leaves it.
    if (subject['kind'] === 'User' || subject['kind'] === 'Group') subject['apiGroup'] = RBAC_GROUP;
  }
}

function validateBinding(binding: KubeObject, namespaced: boolean, old: KubeObject | undefined, errors: FieldErrors): void {
  defaultBinding(binding);
  const roleRef = binding['roleRef'];
  if (!isPlainObject(roleRef)) {
    errors.required('roleRef');
  } else {
    if (roleRef['apiGroup'] !== RBAC_GROUP) errors.notSupported('roleRef.apiGroup', roleRef['apiGroup'] ?? '', [RBAC_GROUP]);
    const kinds = namespaced ? ['Role', 'ClusterRole'] : ['ClusterRole'];
    if (!kinds.includes(roleRef['kind'] as string)) errors.notSupported('roleRef.kind', roleRef['kind'] ?? '', kinds);
    const name = roleRef['name'];
    if (typeof name !== 'string' || name === '') errors.required('roleRef.name');
    else if (name.includes('/') || name.includes('%') || name === '.' || name === '..') errors.invalid('roleRef.name', name, 'may not contain "/" or "%" or be "." or ".."');
  }
  const subjects = binding['subjects'];
  if (subjects !== undefined && subjects !== null) {
    if (!Array.isArray(subjects)) errors.typeInvalid('subjects', subjects, 'must be a list');
    else subjects.forEach((subject: unknown, i) => validateSubject(subject, `subjects[${i}]`, namespaced, errors));
  }
  // A binding's role never changes (delete and recreate it): kube-apiserver's words.
  if (old && old['roleRef'] !== undefined && !isDeepStrictEqual(old['roleRef'], roleRef)) errors.invalid('roleRef', roleRef, 'cannot change roleRef');
}

export function admitRbac(kind: RbacKind, object: KubeObject, old: KubeObject | undefined, errors: FieldErrors): void {
  switch (kind) {
    case 'Role':
      return validateRules(object, true, errors);
    case 'ClusterRole':
      validateRules(object, false, errors);
      return validateAggregationRule(object, errors);
    case 'RoleBinding':
      return validateBinding(object, true, old, errors);
    case 'ClusterRoleBinding':
      return validateBinding(object, false, old, errors);
  }
}

const PERCENT = /^[0-9]+%$/;

/** pkg/apis/apps/validation ValidatePositiveIntOrPercent + IsNotMoreThan100Percent. */
function validateIntOrPercent(spec: JsonObject, key: string, errors: FieldErrors): void {
  const value = spec[key];
  const at = `spec.${key}`;
  if (value === undefined || value === null) return;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) errors.typeInvalid(at, value, 'must be an integer or a percent string');
    else if (value < 0) errors.invalid(at, value, 'must be greater than or equal to 0');
  } else if (typeof value === 'string') {
    if (!PERCENT.test(value)) errors.invalid(at, value, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')");
    else if (Number(value.slice(0, -1)) > 100) errors.invalid(at, value, 'must not be greater than 100%');
  } else {
    errors.typeInvalid(at, value, 'must be an integer or a percent string');
  }
}

export function admitPodDisruptionBudget(pdb: KubeObject, errors: FieldErrors): void {
  const spec = isPlainObject(pdb['spec']) ? pdb['spec'] : {};
  pdb['spec'] = spec;
  if (spec['minAvailable'] !== undefined && spec['minAvailable'] !== null && spec['maxUnavailable'] !== undefined && spec['maxUnavailable'] !== null) {
    errors.invalid('spec', spec, 'minAvailable and maxUnavailable cannot be both set');
  }
  validateIntOrPercent(spec, 'minAvailable', errors);
  validateIntOrPercent(spec, 'maxUnavailable', errors);
  const selector = spec['selector'];
  if (selector !== undefined && selector !== null) {
    if (!isPlainObject(selector)) errors.typeInvalid('spec.selector', selector, 'must be a label selector');
    else validateLabelSelector(selector as LabelSelector, 'spec.selector', errors);
  }
  const policy = spec['unhealthyPodEvictionPolicy'];
  if (policy !== undefined && policy !== null && !(EVICTION_POLICIES as readonly unknown[]).includes(policy)) errors.notSupported('spec.unhealthyPodEvictionPolicy', policy, EVICTION_POLICIES);
}
