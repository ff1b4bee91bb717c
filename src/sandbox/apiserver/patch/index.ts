/**
 * PATCH for the sandbox API server: one entry point for the four patch types kube-apiserver
 * accepts. The store calls `applyPatch` with the live object and then runs admission and its
 * usual update path on the result, so a patch is validated exactly like an update.
 *
 * For merge/json/strategic patches with a `fieldManager`, the result's managedFields already
 * record the manager's changes (operation Update); calling `recordUpdateManager` again with the
 * same live object is harmless (it is idempotent).
 */
import { ApiError, type KubeObject, type PatchType, type ResourceType } from '../types.js';
import { jsonPatchDocument } from './json-patch.js';
import { isPlainObject } from './json-value.js';
import { hasStrategicSchema, listSchemaFor } from './list-strategy.js';
import { recordUpdateManager } from './managed-fields.js';
import { mergePatch } from './merge-patch.js';
import { serverSideApply } from './server-side-apply.js';
import { strategicMergePatch } from './strategic-merge.js';

export { recordUpdateManager } from './managed-fields.js';
export { BEFORE_FIRST_APPLY } from './server-side-apply.js';

export interface PatchContext {
  resourceType: ResourceType;
  fieldManager?: string;
  force?: boolean;
  now: Date;
}

function qualifiedKind(type: ResourceType): string {
  return type.group ? `${type.kind}.${type.group}` : type.kind;
}

function asObject(result: unknown, type: PatchType): KubeObject {
  if (!isPlainObject(result) || !isPlainObject(result['metadata'])) {
    throw new ApiError(422, 'Invalid', `${type} patch: the patched document is not a Kubernetes object (it must stay a JSON object with metadata)`);
  }
  return result as KubeObject;
}

export function applyPatch(type: PatchType, live: KubeObject | undefined, patch: unknown, ctx: PatchContext): KubeObject {
  // Patches build their result from the live object's subtrees and SSA deletes in place:
  // work on a copy so a failed or dry-run patch never touches the caller's object.
  live = live === undefined ? undefined : structuredClone(live);
  if (type === 'apply') return serverSideApply(live, patch, ctx);
  if (!live) throw new ApiError(404, 'NotFound', `${ctx.resourceType.plural} not found: a ${type} patch needs an existing object (use server-side apply to create)`);
  let result: KubeObject;
  switch (type) {
    case 'merge':
      if (!isPlainObject(patch)) throw new ApiError(400, 'BadRequest', 'merge patch: the request body must be a JSON object');
      result = asObject(mergePatch(live, patch), type);
      break;
    case 'json':
      result = asObject(jsonPatchDocument(live, patch), type);
      break;
    case 'strategic':
      if (!hasStrategicSchema(ctx.resourceType)) {
        throw new ApiError(
          415,
          'UnsupportedMediaType',
          `strategic merge patch is not supported for ${qualifiedKind(ctx.resourceType)} (a custom resource): use a JSON merge patch (kubectl patch --type=merge) or a JSON patch; the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
        );
      }
      result = asObject(strategicMergePatch(live, patch, listSchemaFor(ctx.resourceType)), type);
      break;
    default:
      throw new ApiError(415, 'UnsupportedMediaType', `unknown patch type ${String(type)}: accepted are json, merge, strategic and apply`);
  }
  return ctx.fieldManager ? recordUpdateManager(live, result, ctx.fieldManager, 'Update', ctx.now) : result;
}
