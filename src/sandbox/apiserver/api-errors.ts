/**
 * Constructors for the `ApiError`s the store and HTTP layer raise, with the exact wording
 * kube-apiserver uses: kubectl and client libraries print `message` verbatim, and some tools
 * match on it (e.g. the Conflict text that retry helpers look for).
 */
import { ApiError, type ResourceType } from './types.js';

/** `pods` for core, `deployments.apps` otherwise: how Kubernetes names a resource in messages. */
export function qualifiedResource(type: Pick<ResourceType, 'plural' | 'group'>): string {
  return type.group ? `${type.plural}.${type.group}` : type.plural;
}

export function notFound(type: ResourceType, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualifiedResource(type)} "${name}" not found`, { name, group: type.group, kind: type.plural });
}

/** An unknown URL or kind: the text kubectl shows for a missing resource type. */
export function resourceNotServed(detail?: string): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource', detail ? { causes: [{ reason: 'UnexpectedServerResponse', message: detail }] } : undefined);
}

export function alreadyExists(type: ResourceType, name: string): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualifiedResource(type)} "${name}" already exists`, { name, group: type.group, kind: type.plural });
}

export function conflict(type: ResourceType, name: string): ApiError {
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(type)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group: type.group, kind: type.plural },
  );
}

export function preconditionFailed(type: ResourceType, name: string, message: string): ApiError {
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(type)} "${name}": ${message}`, { name, group: type.group, kind: type.plural });
}

export interface Cause {
  field: string;
  message: string;
  reason?: string;
}

/** 422 in the form `Kind.group "name" is invalid: field: message`. */
export function invalid(type: Pick<ResourceType, 'kind' | 'group'>, name: string, causes: Cause[]): ApiError {
  const qualifiedKind = type.group ? `${type.kind}.${type.group}` : type.kind;
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return new ApiError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${text}`, {
    name,
    group: type.group,
    kind: type.kind,
    causes: causes.map((c) => ({ reason: c.reason ?? 'FieldValueInvalid', message: c.message, field: c.field })),
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function forbidden(type: ResourceType, name: string, message: string): ApiError {
  return new ApiError(403, 'Forbidden', `${qualifiedResource(type)} "${name}" is forbidden: ${message}`, { name, group: type.group, kind: type.plural });
}

export function methodNotAllowed(message: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', message);
}

export function expired(message: string): ApiError {
  return new ApiError(410, 'Expired', message);
}

export function unauthorized(): ApiError {
  return new ApiError(401, 'Unauthorized', 'Unauthorized');
}

export function internalError(message: string): ApiError {
  return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
}
