/**
 * Pods: PodSpec defaults and validation, status.phase Pending on create, and the update rule
 * that a running pod's spec is immutable except for a few fields (pkg/apis/core/validation
 * ValidatePodUpdate).
 *
 * Sandbox relaxation: `spec.nodeName` may be set once when it was empty, because the sandbox
 * scheduler binds with an update instead of the `pods/binding` subresource.
 */
import { isDeepStrictEqual } from 'node:util';
import type { KubeObject } from '../types.js';
import { isPlainObject, type JsonObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';
import { addDefaultTolerations, defaultPodSpec, validatePodSpec } from './pod-spec.js';

const MUTABLE_FIELDS_MESSAGE =
  'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

export function admitPodCreate(pod: KubeObject, errors: FieldErrors): void {
  if (isPlainObject(pod['spec'])) {
    defaultPodSpec(pod['spec'], true);
    addDefaultTolerations(pod['spec']);
  }
  validatePodSpec(pod['spec'], 'spec', errors);
  const status = isPlainObject(pod['status']) ? pod['status'] : {};
  status['phase'] ??= 'Pending';
  status['qosClass'] ??= 'BestEffort';
  pod['status'] = status;
}

/** The spec with every field an update may change replaced by the old value. */
function immutablePart(spec: JsonObject, old: JsonObject): JsonObject {
  const copy = structuredClone(spec);
  for (const list of ['containers', 'initContainers'] as const) {
    const oldList = Array.isArray(old[list]) ? (old[list] as unknown[]) : [];
    if (!Array.isArray(copy[list])) continue;
    (copy[list] as unknown[]).forEach((container, i) => {
      const previous = oldList[i];
      if (isPlainObject(container) && isPlainObject(previous)) {
        container['image'] = previous['image'];
        // The pull policy default follows the image tag; it is not a user change.
        container['imagePullPolicy'] = previous['imagePullPolicy'];
      }
    });
  }
  copy['activeDeadlineSeconds'] = old['activeDeadlineSeconds'];
  copy['tolerations'] = old['tolerations'];
  if (!old['nodeName']) copy['nodeName'] = old['nodeName'];
  for (const key of Object.keys(copy)) if (copy[key] === undefined) delete copy[key];
  return copy;
}

export function admitPodUpdate(pod: KubeObject, old: KubeObject, errors: FieldErrors): void {
  if (isPlainObject(pod['spec'])) {
    // A PUT that omits the admission-added tolerations keeps them instead of failing.
    if (pod['spec']['tolerations'] === undefined && isPlainObject(old['spec'])) pod['spec']['tolerations'] = structuredClone(old['spec']['tolerations']);
    defaultPodSpec(pod['spec'], true);
  }
  validatePodSpec(pod['spec'], 'spec', errors);
  if (!errors.empty) return;
  const spec = pod['spec'] as JsonObject;
  const oldSpec = isPlainObject(old['spec']) ? old['spec'] : {};
  const oldOut = { ...oldSpec };
  for (const key of Object.keys(oldOut)) if (oldOut[key] === undefined) delete oldOut[key];
  if (!isDeepStrictEqual(immutablePart(spec, oldSpec), immutablePart(oldOut, oldSpec))) {
    errors.forbidden('spec', MUTABLE_FIELDS_MESSAGE);
    return;
  }
  const oldTolerations = Array.isArray(oldSpec['tolerations']) ? oldSpec['tolerations'] : [];
  const newTolerations = Array.isArray(spec['tolerations']) ? spec['tolerations'] : [];
  if (!oldTolerations.every((t) => newTolerations.some((n) => isDeepStrictEqual(n, t)))) {
    errors.forbidden('spec.tolerations', 'existing toleration can not be modified except its tolerationSeconds');
  }
  const oldDeadline = oldSpec['activeDeadlineSeconds'];
  if (typeof oldDeadline === 'number' && (spec['activeDeadlineSeconds'] === undefined || (spec['activeDeadlineSeconds'] as number) > oldDeadline)) {
    errors.invalid('spec.activeDeadlineSeconds', spec['activeDeadlineSeconds'], 'must be less than or equal to previous value');
  }
}
