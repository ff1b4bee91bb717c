import { describe, expect, it } from 'vitest';
import { createClusterIpAllocator } from '../../src/sandbox/apiserver/cluster-ip-allocator.js';
import { EventLog } from '../../src/sandbox/apiserver/event-log.js';
import { crdTopLevelFields, parseFieldValidation, unknownFields } from '../../src/sandbox/apiserver/field-validation.js';
import { openApiGroupVersion, openApiRoot } from '../../src/sandbox/apiserver/openapi.js';
import { ResourceRegistry } from '../../src/sandbox/apiserver/registry.js';
import { MAX_NESTING_DEPTH, nestingDepth } from '../../src/sandbox/apiserver/request-body.js';
import { replicasOf, toScale } from '../../src/sandbox/apiserver/scale-subresource.js';
import { toTable, wantsTable } from '../../src/sandbox/apiserver/table.js';
import { apiResourceList } from '../../src/sandbox/apiserver/discovery.js';

describe('ClusterIP allocation', () => {
  it('skips the reserved addresses and what stored Services use, and forgets pending IPs after a write', () => {
    const stored = ['10.96.0.2'];
    const allocator = createClusterIpAllocator(() => stored);
    expect(allocator.allocate()).toBe('10.96.0.3');
    expect(allocator.isInUse('10.96.0.3')).toBe(true);
    expect(allocator.allocate()).toBe('10.96.0.4');
    allocator.endWrite();
    expect(allocator.isInUse('10.96.0.3')).toBe(false);
    expect(allocator.isInUse('10.96.0.1')).toBe(false);
    stored.push(...Array.from({ length: 8 }, (_, i) => `10.96.0.${i + 3}`));
    expect(allocator.allocate()).toBe('10.96.0.11');
  });
});

describe('event log', () => {
  it('reports what it can replay and refuses versions it has dropped', () => {
    const log = new EventLog(2, 10);
    const entry = (rv: number) => ({ resourceVersion: rv, storageKey: '/ConfigMap', type: 'ADDED' as const, object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} } });
    expect(log.since(9)).toBeUndefined();
    expect(log.since(10)).toEqual([]);
    for (const rv of [11, 12, 13]) log.append(entry(rv));
    expect(log.compactedThrough).toBe(11);
    expect(log.since(10)).toBeUndefined();
    expect(log.since(11)?.map((e) => e.resourceVersion)).toEqual([12, 13]);
  });
});

describe('field validation', () => {
  it('names unknown top-level and metadata fields per kind', () => {
    expect(unknownFields({ group: '', kind: 'ConfigMap' }, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', nmae: 'y' }, data: {}, spec: {} })).toEqual([
      'unknown field "spec"',
      'unknown field "metadata.nmae"',
    ]);
    expect(unknownFields({ group: 'apps', kind: 'Deployment' }, { spec: {}, status: {} })).toEqual([]);
    expect(unknownFields({ group: '', kind: 'Endpoints' }, { '$setElementOrder/subsets': [], metadata: { '$deleteFromPrimitiveList/finalizers': [] } })).toEqual([]);
    expect(parseFieldValidation(null)).toBe('Warn');
    expect(parseFieldValidation('bogus')).toBeUndefined();
  });
  it('reads a CRD schema for its top-level fields', () => {
    const crd = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: {}, spec: { versions: [{ name: 'v1', schema: { openAPIV3Schema: { properties: { spec: {}, extra: {} } } } }] } };
    expect(crdTopLevelFields(crd, 'v1')).toEqual(['spec', 'extra']);
    expect(crdTopLevelFields(crd, 'v2')).toBe('any');
  });
});

describe('request body depth guard', () => {
  it.each([
    ['{"a":{"b":[1,2]}}', 3],
    ['"[[[[[["', 0],
    ['a:\n  b:\n    c: 1\n', 4],
  ])('nestingDepth(%j) = %d', (text, depth) => {
    expect(nestingDepth(text)).toBe(depth);
  });
  it('flags hostile nesting', () => {
    expect(nestingDepth('['.repeat(5000))).toBeGreaterThan(MAX_NESTING_DEPTH);
  });
});

describe('discovery and OpenAPI', () => {
  const registry = new ResourceRegistry();
  it('lists status and scale subresources', () => {
    const names = (apiResourceList(registry, 'apps', 'v1')?.resources as Array<{ name: string; kind: string; group?: string }>).map((r) => `${r.name}:${r.group ?? ''}${r.kind}`);
    expect(names).toContain('deployments/status:Deployment');
    expect(names).toContain('deployments/scale:autoscalingScale');
  });
  it('advertises fieldValidation on every PATCH operation, tagged with the GVK', () => {
    const root = openApiRoot(registry).paths as Record<string, unknown>;
    expect(Object.keys(root)).toContain('api/v1');
    expect(Object.keys(root)).toContain('apis/networking.istio.io/v1alpha3');
    const doc = openApiGroupVersion(registry, '', 'v1')?.paths as Record<string, { patch: { 'x-kubernetes-group-version-kind': unknown; parameters: Array<{ name: string; in: string }> } }>;
    const nodes = doc['/api/v1/nodes/{name}'];
    expect(nodes?.patch['x-kubernetes-group-version-kind']).toEqual({ group: '', version: 'v1', kind: 'Node' });
    expect(nodes?.patch.parameters).toContainEqual(expect.objectContaining({ name: 'fieldValidation', in: 'query' }));
    expect(openApiGroupVersion(registry, 'nope', 'v1')).toBeUndefined();
  });
});

describe('tables', () => {
  const now = new Date('2026-01-01T01:00:00Z');
  it('prints service and deployment columns, with wide columns at priority 1', () => {
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { type: 'ClusterIP', clusterIP: '10.96.0.11', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'web' } },
    };
    const table = toTable('', 'Service', [svc], { resourceVersion: '5', now, includeObject: 'Metadata' });
    expect((table.rows as Array<{ cells: unknown[]; object: { kind: string } }>)[0]).toMatchObject({ cells: ['web', 'ClusterIP', '10.96.0.11', '<none>', '80/TCP', '60m', 'app=web'], object: { kind: 'PartialObjectMetadata' } });
    expect((table.columnDefinitions as Array<{ name: string; priority: number }>).find((c) => c.name === 'Selector')?.priority).toBe(1);
    const cells = (o: Parameters<typeof toTable>[2][number]): unknown[] => (toTable('', 'Service', [o], { resourceVersion: '5', now, includeObject: 'None' }).rows as Array<{ cells: unknown[] }>)[0]?.cells ?? [];
    const lb = { ...svc, spec: { ...svc.spec, type: 'LoadBalancer' } };
    expect(cells(lb)[3]).toBe('<pending>');
    expect(cells({ ...lb, status: { loadBalancer: { ingress: [{ ip: '10.252.0.1' }] } } })[3]).toBe('10.252.0.1');
    expect(toTable('example.com', 'Widget', [svc], { resourceVersion: '5', now, includeObject: 'None' }).rows).toEqual([{ cells: ['web', '60m'] }]);
  });
  it('recognises kubectl get\'s Accept header', () => {
    expect(wantsTable('application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json')).toBe(true);
    expect(wantsTable('application/json')).toBe(false);
    expect(wantsTable(undefined)).toBe(false);
  });
});

describe('scale subresource mapping', () => {
  it('maps a Deployment to a Scale and validates written replicas', () => {
    const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'demo' }, spec: { replicas: 3, selector: { matchLabels: { app: 'web' } } }, status: { replicas: 2 } };
    expect(toScale(deployment)).toMatchObject({ apiVersion: 'autoscaling/v1', kind: 'Scale', spec: { replicas: 3 }, status: { replicas: 2, selector: 'app=web' } });
    expect(replicasOf({ spec: { replicas: 0 } }, 'web')).toBe(0);
    expect(() => replicasOf({ spec: { replicas: -1 } }, 'web')).toThrow(/spec.replicas/);
  });
});
