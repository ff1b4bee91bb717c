/**
 * Server-side apply (`application/apply-patch+yaml`, `kubectl apply --server-side`):
 * https://kubernetes.io/docs/reference/using-api/server-side-apply/
 *
 * 1. The applied configuration's members become the manager's `Apply` field set.
 * 2. A member another manager owns with a different live value is a conflict (409) unless
 *    `force`, which moves ownership to the applier.
 * 3. The configuration merges into the live object: maps merge, keyed lists merge by key,
 *    set lists union, everything else is replaced.
 * 4. Members the manager applied last time but not now are removed from the object unless
 *    another manager still owns them (or something below them).
 *
 * Simplifications against structured-merge-diff: no schema beyond list merge keys (unknown
 * lists are atomic), and the applier's own `Update` entries are not treated as conflicting.
 */
import { parse as parseYaml } from 'yaml';
import { ApiError, type KubeObject, type ResourceType } from '../types.js';
import { FieldSet, deleteAt, describePath, fieldSetOf, type FieldPath } from './field-set.js';
import { isPlainObject, withoutNulls, type JsonObject } from './json-value.js';
import { childPath, itemPath, listSchemaFor, type ListSchema } from './list-strategy.js';
import { decodeManagedFields, encodeManagedFields, managedFieldsTime, memberChanged, sameManager, withManagedFields, type ManagerFields } from './managed-fields.js';

/** The manager Kubernetes credits with an object's fields when it is first applied to. */
export const BEFORE_FIRST_APPLY = 'before-first-apply';

export interface ApplyContext {
  resourceType: ResourceType;
  fieldManager?: string;
  force?: boolean;
  now: Date;
}

function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function parseAppliedConfiguration(patch: unknown): JsonObject {
  let parsed: unknown = patch;
  if (typeof patch === 'string' || patch instanceof Uint8Array) {
    const text = typeof patch === 'string' ? patch : Buffer.from(patch).toString('utf8');
    try {
      parsed = parseYaml(text);
    } catch (err) {
      throw badRequest(`error decoding YAML apply patch: ${(err as Error).message}`);
    }
  }
  if (!isPlainObject(parsed)) throw badRequest('apply patch: the applied configuration must be a YAML or JSON object');
  return parsed;
}

function mergeApplied(live: unknown, config: unknown, schemaPath: string, schema: ListSchema): unknown {
  if (isPlainObject(live) && isPlainObject(config)) {
    const out: JsonObject = { ...live };
    for (const [key, value] of Object.entries(config)) out[key] = mergeApplied(live[key], value, childPath(schemaPath, key), schema);
    return out;
  }
  if (Array.isArray(live) && Array.isArray(config)) {
    const strategy = schema(schemaPath);
    if (strategy.type === 'set') return [...live, ...config.filter((item) => !live.some((existing) => JSON.stringify(existing) === JSON.stringify(item)))];
    if (strategy.type === 'map' && config.every((item) => isPlainObject(item) && item[strategy.key] !== undefined)) {
      const out = [...live];
      for (const item of config as JsonObject[]) {
        const index = out.findIndex((existing) => isPlainObject(existing) && JSON.stringify(existing[strategy.key]) === JSON.stringify(item[strategy.key]));
        if (index >= 0) out[index] = mergeApplied(out[index], item, itemPath(schemaPath), schema);
        else out.push(item);
      }
      return out;
    }
  }
  return config;
}

function conflictError(conflicts: Array<{ manager: string; apiVersion: string; path: FieldPath }>): ApiError {
  const byManager = new Map<string, string[]>();
  for (const c of conflicts) {
    const heading = `"${c.manager}" using ${c.apiVersion}`;
    byManager.set(heading, [...(byManager.get(heading) ?? []), describePath(c.path)]);
  }
  const parts = [...byManager].map(([heading, paths]) => (paths.length === 1 ? `conflict with ${heading}: ${paths[0] as string}` : `conflicts with ${heading}:\n${paths.map((p) => `- ${p}`).join('\n')}`));
  const count = conflicts.length === 1 ? '1 conflict' : `${conflicts.length} conflicts`;
  return new ApiError(409, 'Conflict', `Apply failed with ${count}: ${parts.join('\n')}`, {
    causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${c.apiVersion}`, field: describePath(c.path) })),
  });
}

/** `...k:{"name":"x"}/f:name`: the key of a list item, which lives and dies with the item. */
function isItemKeyField(path: FieldPath): boolean {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (!last?.startsWith('f:') || !parent?.startsWith('k:')) return false;
  return last.slice(2) in (JSON.parse(parent.slice(2)) as JsonObject);
}

export function serverSideApply(live: KubeObject | undefined, patch: unknown, ctx: ApplyContext): KubeObject {
  const manager = ctx.fieldManager;
  if (!manager) throw badRequest('fieldManager is required for apply requests: pass ?fieldManager=<name> (kubectl apply --server-side sends "kubectl")');
  const config = withoutNulls(parseAppliedConfiguration(patch)) as JsonObject;
  const metadata = config['metadata'];
  if (typeof config['apiVersion'] !== 'string' || typeof config['kind'] !== 'string') throw badRequest('apply patch: the applied configuration must set apiVersion and kind');
  if (!isPlainObject(metadata) || typeof metadata['name'] !== 'string' || metadata['name'] === '') throw badRequest('apply patch: the applied configuration must set metadata.name');
  if (config['kind'] !== ctx.resourceType.kind) throw badRequest(`apply patch: the applied configuration is a ${String(config['kind'])}, but the request is for ${ctx.resourceType.kind}`);
  if (live && live.metadata.name !== metadata['name']) throw badRequest(`the name of the object (${metadata['name']}) does not match the name on the URL (${String(live.metadata.name)})`);
  delete metadata['managedFields'];

  const schema = listSchemaFor(ctx.resourceType);
  const managers: ManagerFields[] = decodeManagedFields(live?.metadata.managedFields);
  if (live && managers.length === 0) {
    // An object written without field tracking: its current fields belong to a placeholder
    // manager so the first apply cannot silently overwrite them.
    managers.push({ entry: { manager: BEFORE_FIRST_APPLY, operation: 'Update', apiVersion: live.apiVersion }, set: fieldSetOf(live, schema) });
  }
  const applied = fieldSetOf(config, schema);

  const conflicts: Array<{ manager: string; apiVersion: string; path: FieldPath; owner: ManagerFields }> = [];
  for (const other of managers) {
    if (other.entry.manager === manager) continue;
    for (const path of applied.paths()) {
      if (other.set.has(path) && memberChanged(live, config, path)) conflicts.push({ manager: other.entry.manager, apiVersion: other.entry.apiVersion, path, owner: other });
    }
  }
  if (conflicts.length > 0 && !ctx.force) throw conflictError(conflicts);
  for (const c of conflicts) c.owner.set.delete(c.path);

  const merged = mergeApplied(live ?? {}, config, '', schema) as KubeObject;
  const previous = managers.find((m) => sameManager(m.entry, manager, 'Apply'));
  if (previous) {
    const others = managers.filter((m) => m !== previous).reduce((acc, m) => acc.union(m.set), new FieldSet());
    const dropped = previous.set.difference(applied).paths().filter((path) => !others.coversOrContains(path) && !isItemKeyField(path));
    // Shallowest first: an item is found by its key field, so it must go before that field
    // does; removing the fields of an already removed item is then a no-op.
    for (const path of dropped.sort((a, b) => a.length - b.length)) deleteAt(merged, path);
    previous.set = applied;
    previous.entry = { ...previous.entry, apiVersion: String(config['apiVersion']), time: managedFieldsTime(ctx.now) };
  } else {
    managers.push({ entry: { manager, operation: 'Apply', apiVersion: String(config['apiVersion']), time: managedFieldsTime(ctx.now) }, set: applied });
  }
  return withManagedFields(merged, encodeManagedFields(managers));
}
