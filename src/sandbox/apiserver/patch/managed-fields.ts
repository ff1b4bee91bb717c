/**
 * `metadata.managedFields` bookkeeping: decoding entries into field sets, encoding them back,
 * and recording what a non-apply write (create, update, merge/json/strategic patch) changed.
 *
 * Update semantics follow kube-apiserver: the writer becomes an owner of every field whose
 * value it changed (taking it from other managers, silently — only apply can conflict), and
 * fields the write removed leave every manager's set. A request that carries no managedFields
 * keeps the stored ones. https://kubernetes.io/docs/reference/using-api/server-side-apply/#using-server-side-apply-in-a-controller
 */
import { isDeepStrictEqual } from 'node:util';
import type { KubeObject, ManagedFieldsEntry } from '../types.js';
import { FieldSet, fieldSetOf, fromFieldsV1, toFieldsV1, valueAt, type FieldPath } from './field-set.js';
import { listSchemaFor, type ListSchema } from './list-strategy.js';

export interface ManagerFields {
  entry: ManagedFieldsEntry;
  set: FieldSet;
}

/** managedFields timestamps have second precision. */
export function managedFieldsTime(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function schemaOf(object: Pick<KubeObject, 'apiVersion' | 'kind'>): ListSchema {
  const slash = object.apiVersion.indexOf('/');
  return listSchemaFor({ group: slash < 0 ? '' : object.apiVersion.slice(0, slash), kind: object.kind });
}

export function decodeManagedFields(entries: ManagedFieldsEntry[] | undefined): ManagerFields[] {
  return (entries ?? []).map((entry) => ({ entry, set: fromFieldsV1(entry.fieldsV1) }));
}

/** Drops managers that own nothing, like kube-apiserver does. */
export function encodeManagedFields(managers: ManagerFields[]): ManagedFieldsEntry[] | undefined {
  const entries = managers.filter((m) => m.set.size > 0).map((m) => ({ ...m.entry, fieldsType: 'FieldsV1' as const, fieldsV1: toFieldsV1(m.set) }));
  return entries.length > 0 ? entries : undefined;
}

export function sameManager(entry: ManagedFieldsEntry, manager: string, operation: 'Apply' | 'Update', subresource?: string): boolean {
  return entry.manager === manager && entry.operation === operation && entry.subresource === subresource;
}

/** Item members (`k:`/`v:`) exist or not; leaves compare by value. */
export function memberChanged(before: unknown, after: unknown, path: FieldPath): boolean {
  const last = path[path.length - 1] ?? '';
  const a = valueAt(before, path);
  const b = valueAt(after, path);
  if (a.found !== b.found) return true;
  if (!last.startsWith('f:')) return false;
  return !isDeepStrictEqual(a.value, b.value);
}

export function withManagedFields(object: KubeObject, entries: ManagedFieldsEntry[] | undefined): KubeObject {
  const metadata = { ...object.metadata };
  if (entries) metadata.managedFields = entries;
  else delete metadata.managedFields;
  return { ...object, metadata };
}

export function recordUpdateManager(oldObj: KubeObject | undefined, newObj: KubeObject, manager: string, operation: 'Update', now: Date): KubeObject {
  const schema = schemaOf(newObj);
  const sent = newObj.metadata.managedFields;
  const managers = decodeManagedFields(sent && sent.length > 0 ? sent : oldObj?.metadata.managedFields);
  const newSet = fieldSetOf(newObj, schema);
  const oldSet = oldObj ? fieldSetOf(oldObj, schema) : new FieldSet();
  const changed = newSet.paths().filter((path) => !oldSet.has(path) || memberChanged(oldObj, newObj, path));
  const removed = oldSet.difference(newSet).paths();
  if (changed.length === 0 && removed.length === 0) return newObj;

  for (const m of managers) {
    for (const path of removed) m.set.delete(path);
    if (!sameManager(m.entry, manager, operation)) for (const path of changed) m.set.delete(path);
  }
  let mine = managers.find((m) => sameManager(m.entry, manager, operation));
  if (!mine) {
    mine = { entry: { manager, operation, apiVersion: newObj.apiVersion }, set: new FieldSet() };
    managers.push(mine);
  }
  for (const path of changed) mine.set.add(path);
  mine.entry = { ...mine.entry, apiVersion: newObj.apiVersion, time: managedFieldsTime(now) };
  return withManagedFields(newObj, encodeManagedFields(managers));
}
