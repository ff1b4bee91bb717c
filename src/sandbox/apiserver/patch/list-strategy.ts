/**
 * How lists merge, per kind and JSON path: the subset of Kubernetes' Go struct tags
 * (`patchStrategy:"merge" patchMergeKey:"name"`, `listType=map`, `listMapKey=...`) that
 * strategic merge patch and server-side apply need for the kinds the sandbox serves.
 *
 * Paths are dotted field names with `[]` for "any list item": `spec.containers[].ports`.
 * A list not in the table is atomic (replaced whole), as in Kubernetes for untagged lists
 * (tolerations, EndpointSlice endpoints, Endpoints subsets).
 *
 * Kubernetes keys some lists by several fields for SSA (container ports by containerPort +
 * protocol); the sandbox keys by the strategic-merge key alone, which is what kubectl's
 * client-side apply and almost every manifest rely on.
 */
import type { ResourceType } from '../types.js';

export type ListStrategy = { type: 'map'; key: string } | { type: 'set' } | { type: 'atomic' };

const ATOMIC: ListStrategy = { type: 'atomic' };
const byKey = (key: string): ListStrategy => ({ type: 'map', key });

/** Lists inside a PodSpec, relative to the PodSpec. */
const POD_SPEC_LISTS: Record<string, ListStrategy> = (() => {
  const container: Record<string, ListStrategy> = {
    ports: byKey('containerPort'),
    env: byKey('name'),
    volumeMounts: byKey('mountPath'),
    volumeDevices: byKey('devicePath'),
  };
  const out: Record<string, ListStrategy> = {
    volumes: byKey('name'),
    imagePullSecrets: byKey('name'),
    hostAliases: byKey('ip'),
    readinessGates: ATOMIC,
  };
  for (const list of ['containers', 'initContainers', 'ephemeralContainers']) {
    out[list] = byKey('name');
    for (const [field, strategy] of Object.entries(container)) out[`${list}[].${field}`] = strategy;
  }
  return out;
})();

/** Lists every object has. */
const COMMON_LISTS: Record<string, ListStrategy> = {
  'metadata.ownerReferences': byKey('uid'),
  'metadata.finalizers': { type: 'set' },
  // Conditions are keyed by type in every built-in kind and in Gateway API / Istio status.
  'status.conditions': byKey('type'),
};

function withPrefix(prefix: string, lists: Record<string, ListStrategy>): Record<string, ListStrategy> {
  return Object.fromEntries(Object.entries(lists).map(([path, strategy]) => [`${prefix}${path}`, strategy]));
}

const POD_TEMPLATE = withPrefix('spec.template.spec.', POD_SPEC_LISTS);

/** Per `group/kind` (group '' for core). */
const KIND_LISTS: Record<string, Record<string, ListStrategy>> = {
  '/Pod': { ...withPrefix('spec.', POD_SPEC_LISTS), 'status.podIPs': byKey('ip'), 'status.hostIPs': byKey('ip') },
  '/Service': { 'spec.ports': byKey('port') },
  '/Node': { 'status.addresses': byKey('type'), 'spec.podCIDRs': { type: 'set' } },
  'apps/Deployment': POD_TEMPLATE,
  'apps/ReplicaSet': POD_TEMPLATE,
  'apps/DaemonSet': POD_TEMPLATE,
  'apps/StatefulSet': POD_TEMPLATE,
  'batch/Job': POD_TEMPLATE,
  'batch/CronJob': withPrefix('spec.jobTemplate.spec.template.spec.', POD_SPEC_LISTS),
};

/**
 * Groups whose kinds are compiled into kube-apiserver and so have a strategic-merge schema.
 * Everything else (CRDs, Istio, Gateway API) is a custom resource in a real cluster.
 */
const BUILTIN_GROUPS = new Set(['', 'apps', 'batch', 'autoscaling', 'policy', 'discovery.k8s.io', 'coordination.k8s.io', 'networking.k8s.io', 'rbac.authorization.k8s.io', 'events.k8s.io', 'apiextensions.k8s.io', 'authentication.k8s.io', 'authorization.k8s.io', 'storage.k8s.io', 'scheduling.k8s.io', 'node.k8s.io', 'certificates.k8s.io', 'admissionregistration.k8s.io']);

export function hasStrategicSchema(type: Pick<ResourceType, 'group'>): boolean {
  return BUILTIN_GROUPS.has(type.group);
}

/** Looks up how the list at `schemaPath` (e.g. `spec.containers[].env`) merges for a kind. */
export type ListSchema = (schemaPath: string) => ListStrategy;

export function listSchemaFor(type: Pick<ResourceType, 'group' | 'kind'>): ListSchema {
  const table = { ...COMMON_LISTS, ...(KIND_LISTS[`${type.group}/${type.kind}`] ?? {}) };
  return (schemaPath) => table[schemaPath] ?? ATOMIC;
}

/** Appends a field name to a schema path. */
export function childPath(schemaPath: string, field: string): string {
  return schemaPath ? `${schemaPath}.${field}` : field;
}

/** The schema path of a list's items. */
export function itemPath(schemaPath: string): string {
  return `${schemaPath}[]`;
}
