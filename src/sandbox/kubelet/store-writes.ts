/**
 * Read-modify-write helpers over the ClusterStore. Store calls are synchronous, so a get and
 * the update after it cannot interleave with another writer in this process: no conflicts.
 */
import { ApiError, type ClusterStore, type KubeObject } from '../apiserver/types.js';

/** Replaces the `status` of an object through its status subresource; 404 when it is gone. */
export function replaceStatus(store: ClusterStore, apiVersion: string, kind: string, namespace: string | undefined, name: string, status: unknown, fieldManager: string): KubeObject {
  const current = store.get(apiVersion, kind, namespace, name);
  if (!current) throw new ApiError(404, 'NotFound', `${kind.toLowerCase()} "${name}" not found`, { name, kind });
  return store.update({ ...current, status }, { subresource: 'status', fieldManager });
}

/** Applies `change` to a copy of the object and writes it back (main resource). */
export function modify(store: ClusterStore, apiVersion: string, kind: string, namespace: string | undefined, name: string, change: (o: KubeObject) => KubeObject, fieldManager: string): KubeObject {
  const current = store.get(apiVersion, kind, namespace, name);
  if (!current) throw new ApiError(404, 'NotFound', `${kind.toLowerCase()} "${name}" not found`, { name, kind });
  return store.update(change(current), { fieldManager });
}
