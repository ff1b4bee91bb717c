/**
 * The `/scale` subresource (autoscaling/v1 Scale) of Deployments and ReplicaSets, which
 * `kubectl scale` uses: a view of `spec.replicas` plus the status it reports. Pure mapping;
 * the HTTP layer writes the result back through a merge patch of the owner object.
 */
import { badRequest, invalid } from './api-errors.js';
import type { KubeObject, ResourceType } from './types.js';

/** group/kind of the types with a scale subresource. */
const SCALABLE = new Set(['apps/Deployment', 'apps/ReplicaSet']);

export function hasScaleSubresource(type: Pick<ResourceType, 'group' | 'kind'>): boolean {
  return SCALABLE.has(`${type.group}/${type.kind}`);
}

export const SCALE_DISCOVERY = { group: 'autoscaling', version: 'v1', kind: 'Scale' };

export function toScale(object: KubeObject): KubeObject {
  const spec = (object.spec ?? {}) as { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
  const status = (object.status ?? {}) as { replicas?: number };
  const selector = Object.entries(spec.selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const { name, namespace, uid, resourceVersion, creationTimestamp } = object.metadata;
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: { name, namespace, uid, resourceVersion, creationTimestamp },
    spec: { replicas: spec.replicas ?? 1 },
    status: { replicas: status.replicas ?? 0, selector },
  };
}

/** The replica count a written Scale asks for (422 when it is not a non-negative integer). */
export function replicasOf(scale: unknown, name: string): number {
  if (scale === null || typeof scale !== 'object' || Array.isArray(scale)) throw badRequest('the Scale in the request body must be a JSON object');
  const replicas = ((scale as { spec?: { replicas?: unknown } }).spec ?? {}).replicas;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    throw invalid({ group: 'autoscaling', kind: 'Scale' }, name, [{ field: 'spec.replicas', message: `Invalid value: ${JSON.stringify(replicas ?? null)}: must be a non-negative integer` }]);
  }
  return replicas;
}
