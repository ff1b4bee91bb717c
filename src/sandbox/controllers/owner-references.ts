/**
 * Ownership helpers: which controller owns an object, and the reference a controller stamps on
 * what it creates. `blockOwnerDeletion` makes foreground deletion of the owner wait for it.
 */
import type { KubeObject, OwnerReference } from '../apiserver/types.js';

export function controllerRef(object: KubeObject): OwnerReference | undefined {
  return object.metadata.ownerReferences?.find((reference) => reference.controller === true);
}

export function isControlledBy(object: KubeObject, owner: KubeObject): boolean {
  const reference = controllerRef(object);
  return reference !== undefined && reference.uid === owner.metadata.uid;
}

export function ownerReferenceTo(owner: KubeObject): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The queue key of a namespaced object: `namespace/name`. */
export function objectKey(object: KubeObject): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export function isDeleting(object: KubeObject): boolean {
  return object.metadata.deletionTimestamp !== undefined;
}

/** A Namespace that exists and is not being torn down: controllers may still create in it. */
export function isActiveNamespace(namespace: KubeObject | undefined): namespace is KubeObject {
  const phase = (namespace?.status as { phase?: string } | undefined)?.phase;
  return namespace !== undefined && !isDeleting(namespace) && phase !== 'Terminating';
}
