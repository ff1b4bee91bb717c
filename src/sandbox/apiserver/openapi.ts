/**
 * The smallest OpenAPI v3 kube-apiserver-alike that makes kubectl trust server-side field
 * validation. kubectl 1.32 (`k8s.io/cli-runtime` QueryParamVerifierV3) reads the root
 * `/openapi/v3`, fetches the document of the object's group/version, finds the PATCH operation
 * tagged `x-kubernetes-group-version-kind` for the kind and looks for a `fieldValidation` query
 * parameter. When found, `kubectl apply/create` sends `fieldValidation=Strict` and skips its
 * client-side validation (which would need the full v2 schema we do not serve).
 *
 * The PATCH operations deliberately declare no requestBody: kubectl then computes apply
 * patches from its compiled-in types (strategic merge for built-ins, JSON merge for custom
 * resources) instead of from schemas we do not have.
 */
import type { ResourceRegistry } from './registry.js';
import { typesOf } from './discovery.js';

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

/** A stable content hash so kubectl's disk cache refreshes when the served types change. */
function hashOf(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).toUpperCase().padStart(8, '0');
}

export function openApiRoot(registry: ResourceRegistry): Record<string, unknown> {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const group of registry.groups()) {
    for (const version of group.versions) {
      const path = gvPath(group.name, version);
      const doc = JSON.stringify(openApiGroupVersion(registry, group.name, version) ?? {});
      paths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hashOf(doc)}` };
    }
  }
  return { paths };
}

export function openApiGroupVersion(registry: ResourceRegistry, group: string, version: string): Record<string, unknown> | undefined {
  const types = typesOf(registry, group, version);
  if (types.length === 0) return undefined;
  const prefix = `/${gvPath(group, version)}`;
  const paths: Record<string, unknown> = {};
  const parameters = [
    { name: 'fieldValidation', in: 'query', description: 'Ignore, Warn or Strict handling of unknown or duplicate fields', schema: { type: 'string', uniqueItems: true } },
    { name: 'fieldManager', in: 'query', schema: { type: 'string', uniqueItems: true } },
    { name: 'dryRun', in: 'query', schema: { type: 'string', uniqueItems: true } },
  ];
  for (const t of types) {
    const gvk = { group: t.group, version: t.version, kind: t.kind };
    const item = t.namespaced ? `${prefix}/namespaces/{namespace}/${t.plural}/{name}` : `${prefix}/${t.plural}/{name}`;
    const operation = (verb: string): Record<string, unknown> => ({
      operationId: `${verb}${t.kind}`,
      'x-kubernetes-action': verb,
      'x-kubernetes-group-version-kind': gvk,
      parameters,
      responses: { '200': { description: 'OK' } },
    });
    paths[item] = { get: operation('get'), put: operation('put'), patch: operation('patch'), delete: operation('delete') };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (amesh sandbox)', version: 'v1.32.0-amesh' },
    paths,
    components: { schemas: {} },
  };
}
