/**
 * Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`, KEP-2885) at the depth
 * the sandbox knows: the top level of every built-in kind and of `metadata`. Custom resources
 * (and Istio / Gateway API kinds, whose schemas we do not carry) are checked only at the top
 * level against apiVersion/kind/metadata/spec/status, unless a CRD schema lists more.
 */
import type { KubeObject, ResourceType } from './types.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

const COMMON = ['apiVersion', 'kind', 'metadata'];
const SPEC_STATUS = [...COMMON, 'spec', 'status'];

/** Top-level fields per group/kind beyond the common ones. */
const TOP_LEVEL: Record<string, string[]> = {
  '/ConfigMap': [...COMMON, 'data', 'binaryData', 'immutable'],
  '/Secret': [...COMMON, 'data', 'stringData', 'type', 'immutable'],
  '/ServiceAccount': [...COMMON, 'secrets', 'imagePullSecrets', 'automountServiceAccountToken'],
  '/Endpoints': [...COMMON, 'subsets'],
  '/Event': [
    ...COMMON,
    'involvedObject',
    'reason',
    'message',
    'source',
    'firstTimestamp',
    'lastTimestamp',
    'count',
    'type',
    'eventTime',
    'series',
    'action',
    'related',
    'reportingComponent',
    'reportingInstance',
  ],
  'discovery.k8s.io/EndpointSlice': [...COMMON, 'addressType', 'endpoints', 'ports'],
  'rbac.authorization.k8s.io/ClusterRole': [...COMMON, 'rules', 'aggregationRule'],
  'rbac.authorization.k8s.io/Role': [...COMMON, 'rules'],
  'rbac.authorization.k8s.io/ClusterRoleBinding': [...COMMON, 'subjects', 'roleRef'],
  'rbac.authorization.k8s.io/RoleBinding': [...COMMON, 'subjects', 'roleRef'],
};

const OBJECT_META = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);

export function parseFieldValidation(value: string | null): FieldValidation | undefined {
  if (value === null || value === '') return 'Warn';
  return value === 'Strict' || value === 'Warn' || value === 'Ignore' ? value : undefined;
}

/**
 * Unknown fields of `object` as kube-apiserver words them (`unknown field "spec.foo"`).
 * `extraTopLevel` widens the allowed set (a CRD schema's top-level properties).
 */
export function unknownFields(type: Pick<ResourceType, 'group' | 'kind'>, object: Record<string, unknown>, extraTopLevel: string[] = []): string[] {
  const allowed = new Set([...(TOP_LEVEL[`${type.group}/${type.kind}`] ?? SPEC_STATUS), ...extraTopLevel]);
  const unknown: string[] = [];
  // `$patch`, `$setElementOrder/…` and friends are strategic-merge directives, not fields.
  for (const key of Object.keys(object)) if (!allowed.has(key) && !key.startsWith('$')) unknown.push(`unknown field "${key}"`);
  const meta = object.metadata;
  if (meta !== null && typeof meta === 'object' && !Array.isArray(meta)) {
    for (const key of Object.keys(meta)) if (!OBJECT_META.has(key) && !key.startsWith('$')) unknown.push(`unknown field "metadata.${key}"`);
  }
  return unknown;
}

/** Top-level property names a CRD's structural schema declares for `version` (empty: anything goes). */
export function crdTopLevelFields(crd: KubeObject | undefined, version: string): string[] | 'any' {
  const versions = (crd?.spec as { versions?: Array<{ name?: string; schema?: { openAPIV3Schema?: Record<string, unknown> } }> } | undefined)?.versions ?? [];
  const schema = versions.find((v) => v.name === version)?.schema?.openAPIV3Schema;
  if (!schema || schema['x-kubernetes-preserve-unknown-fields'] === true) return 'any';
  const properties = schema.properties;
  if (!properties || typeof properties !== 'object') return 'any';
  return Object.keys(properties);
}
