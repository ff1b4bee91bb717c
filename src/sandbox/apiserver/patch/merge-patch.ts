/**
 * JSON merge patch, RFC 7386 (`application/merge-patch+json`): objects merge recursively,
 * `null` deletes, anything else (arrays included) replaces. What kubectl uses for CRDs.
 */
import { isPlainObject, withoutNulls, type JsonObject } from './json-value.js';

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return withoutNulls(patch);
  const out: JsonObject = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}
