/**
 * JSON patch, RFC 6902 (`application/json-patch+json`), via fast-json-patch with operation
 * validation on. kube-apiserver answers a failed operation with 422 and the operation's text;
 * we name the operation's index, verb and path so the user sees which one failed.
 */
import jsonPatch, { type Operation } from 'fast-json-patch';
import { ApiError } from '../types.js';

const { JsonPatchError, applyPatch: applyOperations } = jsonPatch;

function describeOperation(index: number | undefined, operation: unknown): string {
  const op = operation as Partial<Operation> & { from?: string } | undefined;
  const position = index === undefined ? '' : ` #${index}`;
  if (!op || typeof op !== 'object') return `operation${position}`;
  const from = typeof op.from === 'string' ? ` from ${op.from}` : '';
  return `operation${position} (${String(op.op)} ${String(op.path)}${from})`;
}

/** fast-json-patch appends the operation and the whole document to its messages; keep the sentence. */
function firstLine(message: string): string {
  return message.split('\n', 1)[0] ?? message;
}

export function jsonPatchDocument(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) {
    throw new ApiError(400, 'BadRequest', 'json patch: the request body must be a JSON array of RFC 6902 operations ([{"op":"replace","path":"/spec/replicas","value":3}])');
  }
  try {
    return applyOperations(structuredClone(target), patch as Operation[], true, true, true).newDocument;
  } catch (err) {
    if (err instanceof JsonPatchError) {
      const what = describeOperation(err.index, err.operation);
      const message = err.name === 'TEST_OPERATION_FAILED' ? `json patch ${what} failed: the value at ${String((err.operation as Operation | undefined)?.path)} does not equal the tested value` : `json patch ${what} failed: ${firstLine(err.message)}`;
      throw new ApiError(422, 'Invalid', message, { causes: [{ reason: 'FieldValueInvalid', message, field: String((err.operation as Operation | undefined)?.path ?? '') }] });
    }
    throw new ApiError(422, 'Invalid', `json patch failed: ${firstLine((err as Error).message)}`);
  }
}
