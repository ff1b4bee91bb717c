/**
 * Strategic merge patch (`application/strategic-merge-patch+json`), the patch kubectl sends
 * for built-in kinds (`kubectl apply` client-side, `kubectl patch`, `kubectl edit`,
 * `kubectl scale`/`label`/`annotate`). Like a JSON merge patch, except:
 * - lists with a merge key (containers by name, ...) merge item by item; set lists
 *   (finalizers) union; other lists are replaced;
 * - directives: `$patch: replace|delete|merge` on a map or list item, a `{$patch: replace}`
 *   list item (replace the whole list), `$retainKeys: [...]` (clear the map's other fields),
 *   `$deleteFromPrimitiveList/<field>: [...]`, `$setElementOrder/<field>: [...]`.
 * Spec: https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md
 * No library implements this outside Go; it is written here against that document.
 */
import { isDeepStrictEqual } from 'node:util';
import { ApiError } from '../types.js';
import { isPlainObject, withoutNulls, type JsonObject } from './json-value.js';
import { childPath, itemPath, type ListSchema, type ListStrategy } from './list-strategy.js';

const DIRECTIVE = '$patch';
const RETAIN_KEYS = '$retainKeys';
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList/';
const SET_ELEMENT_ORDER = '$setElementOrder/';

function invalidPatch(message: string): ApiError {
  return new ApiError(422, 'Invalid', `strategic merge patch: ${message}`);
}

/** Applies `patch` to `original`; returns undefined when the patch deletes the whole document. */
export function strategicMergePatch(original: JsonObject, patch: unknown, schema: ListSchema): JsonObject | undefined {
  if (!isPlainObject(patch)) throw new ApiError(400, 'BadRequest', 'strategic merge patch: the request body must be a JSON object');
  return mergeMap(original, patch, '', schema);
}

function mergeMap(original: JsonObject, patch: JsonObject, schemaPath: string, schema: ListSchema): JsonObject | undefined {
  const directive = patch[DIRECTIVE];
  if (directive === 'delete') return undefined;
  if (directive === 'replace') {
    const { [DIRECTIVE]: _directive, ...rest } = patch;
    return mergeMap({}, rest, schemaPath, schema);
  }
  if (directive !== undefined && directive !== 'merge') throw invalidPatch(`unknown $patch directive ${JSON.stringify(directive)} at ${schemaPath || '.'}: expected replace, delete or merge`);

  const result: JsonObject = { ...original };
  // Deletions first: a patch may remove stale values and add new ones to the same list.
  for (const [key, value] of Object.entries(patch)) {
    if (!key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) continue;
    const field = key.slice(DELETE_FROM_PRIMITIVE_LIST.length);
    if (!Array.isArray(value)) throw invalidPatch(`${key} at ${schemaPath || '.'} must be a list`);
    const current = result[field];
    if (Array.isArray(current)) result[field] = current.filter((item) => !value.some((gone) => isDeepStrictEqual(gone, item)));
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key === DIRECTIVE || key === RETAIN_KEYS || key.startsWith(DELETE_FROM_PRIMITIVE_LIST) || key.startsWith(SET_ELEMENT_ORDER)) continue;
    if (key.startsWith('$')) throw invalidPatch(`unknown directive ${key} at ${schemaPath || '.'}`);
    const path = childPath(schemaPath, key);
    if (value === null) {
      delete result[key];
    } else if (isPlainObject(value)) {
      const current = result[key];
      const merged = mergeMap(isPlainObject(current) ? current : {}, value, path, schema);
      if (merged === undefined) delete result[key];
      else result[key] = merged;
    } else if (Array.isArray(value)) {
      const current = result[key];
      result[key] = mergeList(Array.isArray(current) ? current : [], value, path, schema);
    } else {
      result[key] = value;
    }
  }
  for (const [key, value] of Object.entries(patch)) {
    if (!key.startsWith(SET_ELEMENT_ORDER)) continue;
    const field = key.slice(SET_ELEMENT_ORDER.length);
    if (!Array.isArray(value)) throw invalidPatch(`${key} at ${schemaPath || '.'} must be a list`);
    const current = result[field];
    if (Array.isArray(current)) result[field] = applyElementOrder(current, value, schema(childPath(schemaPath, field)));
  }
  const retainKeys = patch[RETAIN_KEYS];
  if (retainKeys !== undefined) {
    if (!Array.isArray(retainKeys) || !retainKeys.every((k) => typeof k === 'string')) throw invalidPatch(`$retainKeys at ${schemaPath || '.'} must be a list of field names`);
    for (const key of Object.keys(result)) if (!retainKeys.includes(key)) delete result[key];
  }
  return result;
}

function mergeList(original: unknown[], patch: unknown[], schemaPath: string, schema: ListSchema): unknown[] {
  const strategy = schema(schemaPath);
  const replaceMarker = patch.findIndex((item) => isPlainObject(item) && item[DIRECTIVE] === 'replace' && Object.keys(item).length === 1);
  if (replaceMarker >= 0) {
    return mergeList([], patch.filter((_, i) => i !== replaceMarker), schemaPath, () => ({ type: 'atomic' }));
  }
  if (strategy.type === 'atomic') return patch.map((item) => (isPlainObject(item) ? (mergeMap({}, item, itemPath(schemaPath), schema) ?? {}) : withoutNulls(item)));
  if (strategy.type === 'set') {
    const result = [...original];
    for (const item of patch) if (!result.some((existing) => isDeepStrictEqual(existing, item))) result.push(item);
    return result;
  }
  const key = strategy.key;
  const result = [...original];
  for (const item of patch) {
    if (!isPlainObject(item)) throw invalidPatch(`${schemaPath} items must be objects with the merge key ${key}, got ${JSON.stringify(item)}`);
    const keyValue = item[key];
    if (keyValue === undefined) throw invalidPatch(`map: ${JSON.stringify(item)} does not contain declared merge key: ${key} (in ${schemaPath})`);
    const index = result.findIndex((existing) => isPlainObject(existing) && isDeepStrictEqual(existing[key], keyValue));
    const directive = item[DIRECTIVE];
    if (directive === 'delete') {
      for (let i = result.length - 1; i >= 0; i--) {
        const existing = result[i];
        if (isPlainObject(existing) && isDeepStrictEqual(existing[key], keyValue)) result.splice(i, 1);
      }
      continue;
    }
    const base = index >= 0 && directive !== 'replace' ? (result[index] as JsonObject) : {};
    const merged = mergeMap(base, item, itemPath(schemaPath), schema) ?? {};
    if (index >= 0) result[index] = merged;
    else result.push(merged);
  }
  return result;
}

/**
 * `$setElementOrder`: items named in the order list come first, in that order; items only the
 * server knows keep their relative order after them (kubectl lists every item it manages).
 */
function applyElementOrder(list: unknown[], order: unknown[], strategy: ListStrategy): unknown[] {
  const identity = (item: unknown): unknown => (strategy.type === 'map' && isPlainObject(item) ? item[strategy.key] : item);
  const rank = (item: unknown): number => {
    const id = identity(item);
    const at = order.findIndex((entry) => isDeepStrictEqual(identity(entry), id));
    return at < 0 ? order.length : at;
  };
  return list
    .map((item, position) => ({ item, position, rank: rank(item) }))
    .sort((a, b) => a.rank - b.rank || a.position - b.position)
    .map((entry) => entry.item);
}
