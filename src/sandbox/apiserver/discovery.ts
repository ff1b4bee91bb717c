/**
 * Legacy (unaggregated) discovery documents, built from the registry on every request so
 * CRDs appear and disappear immediately. kubectl 1.32 asks for aggregated discovery first
 * (`as=APIGroupDiscoveryList`); answering with plain `application/json` makes client-go fall
 * back to these documents, which is all the sandbox needs.
 */
import { apiVersionOf, type ResourceRegistry } from './registry.js';
import { hasScaleSubresource, SCALE_DISCOVERY } from './scale-subresource.js';
import type { ResourceType } from './types.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-amesh',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupDocument(name: string, versions: string[]): Record<string, unknown> {
  const entries = versions.map((version) => ({ groupVersion: apiVersionOf(name, version), version }));
  return { name, versions: entries, preferredVersion: entries[0] };
}

export function apiGroupList(registry: ResourceRegistry): Record<string, unknown> {
  const groups = registry
    .groups()
    .filter((g) => g.name !== '')
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((g) => groupDocument(g.name, g.versions));
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

export function apiGroup(registry: ResourceRegistry, name: string): Record<string, unknown> | undefined {
  const group = registry.groups().find((g) => g.name === name && name !== '');
  return group ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDocument(group.name, group.versions) } : undefined;
}

/** The types served under one group/version, or undefined when it is not served. */
export function typesOf(registry: ResourceRegistry, group: string, version: string): ResourceType[] {
  return registry
    .all()
    .filter((t) => t.group === group && t.version === version)
    .sort((a, b) => a.plural.localeCompare(b.plural));
}

export function apiResourceList(registry: ResourceRegistry, group: string, version: string): Record<string, unknown> | undefined {
  const types = typesOf(registry, group, version);
  if (types.length === 0) return undefined;
  const resources: Array<Record<string, unknown>> = [];
  for (const t of types) {
    resources.push({
      name: t.plural,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: t.verbs,
      ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
      ...(t.categories.length ? { categories: t.categories } : {}),
    });
    if (t.statusSubresource) resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
    if (hasScaleSubresource(t)) resources.push({ name: `${t.plural}/scale`, singularName: '', namespaced: t.namespaced, ...SCALE_DISCOVERY, verbs: ['get', 'patch', 'update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(group, version), resources };
}
