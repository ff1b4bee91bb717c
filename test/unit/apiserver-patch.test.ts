import { describe, expect, it } from 'vitest';
import { applyPatch } from '../../src/sandbox/apiserver/patch/index.js';
import { ApiError, type KubeObject, type PatchType, type ResourceType } from '../../src/sandbox/apiserver/types.js';

const NOW = new Date('2030-01-01T00:00:00.123Z');

function resourceType(group: string, kind: string, plural: string): ResourceType {
  return { group, version: 'v1', kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), namespaced: true, shortNames: [], categories: [], verbs: [], statusSubresource: true };
}
const DEPLOYMENT = resourceType('apps', 'Deployment', 'deployments');
const POD = resourceType('', 'Pod', 'pods');
const SERVICE = resourceType('', 'Service', 'services');
const VIRTUAL_SERVICE = resourceType('networking.istio.io', 'VirtualService', 'virtualservices');

function deployment(): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'demo', uid: 'u1', resourceVersion: '7', labels: { app: 'web', tier: 'front' }, finalizers: ['a', 'b'] },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            { name: 'app', image: 'x:1', ports: [{ containerPort: 80, protocol: 'TCP' }], env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
            { name: 'sidecar', image: 's:1' },
          ],
          tolerations: [{ key: 'k', operator: 'Exists' }],
          volumes: [{ name: 'data', emptyDir: {} }],
        },
      },
    },
  };
}

function patch(type: PatchType, live: KubeObject, body: unknown, resource = DEPLOYMENT): KubeObject {
  return applyPatch(type, live, body, { resourceType: resource, now: NOW });
}

function catchApiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an ApiError');
}

type Spec = { template: { spec: { containers: Array<Record<string, unknown>>; tolerations: unknown[]; volumes: unknown[] } }; replicas: number; strategy: Record<string, unknown> };
const specOf = (o: KubeObject): Spec => o['spec'] as Spec;

describe('merge patch (RFC 7386)', () => {
  it.each([
    ['sets a scalar', { spec: { replicas: 5 } }, (o: KubeObject) => expect(specOf(o).replicas).toBe(5)],
    ['null deletes a key', { metadata: { labels: { tier: null } } }, (o: KubeObject) => expect(o.metadata.labels).toEqual({ app: 'web' })],
    ['replaces lists whole', { spec: { template: { spec: { containers: [{ name: 'only', image: 'o:1' }] } } } }, (o: KubeObject) => expect(specOf(o).template.spec.containers).toEqual([{ name: 'only', image: 'o:1' }])],
    ['adds nested maps without nulls', { metadata: { annotations: { a: 'b', c: null } } }, (o: KubeObject) => expect(o.metadata.annotations).toEqual({ a: 'b' })],
  ])('%s', (_name, body, check) => {
    check(patch('merge', deployment(), body));
  });

  it('never mutates the live object', () => {
    const live = deployment();
    const before = structuredClone(live);
    patch('merge', live, { metadata: { labels: { tier: null } }, spec: { replicas: 9 } });
    expect(live).toEqual(before);
  });

  it('rejects a non-object body with 400', () => {
    expect(catchApiError(() => patch('merge', deployment(), [1])).code).toBe(400);
  });
});

describe('json patch (RFC 6902)', () => {
  it('applies add/replace/remove/test operations in order', () => {
    const out = patch('json', deployment(), [
      { op: 'test', path: '/spec/replicas', value: 2 },
      { op: 'replace', path: '/spec/replicas', value: 3 },
      { op: 'add', path: '/metadata/labels/new', value: 'yes' },
      { op: 'remove', path: '/spec/template/spec/containers/1' },
      { op: 'add', path: '/spec/template/spec/containers/0/env/-', value: { name: 'C', value: '3' } },
    ]);
    expect(specOf(out).replicas).toBe(3);
    expect(out.metadata.labels?.['new']).toBe('yes');
    expect(specOf(out).template.spec.containers.map((c) => c['name'])).toEqual(['app']);
    expect((specOf(out).template.spec.containers[0]?.['env'] as unknown[]).length).toBe(3);
  });

  it.each([
    ['a failing test op', [{ op: 'test', path: '/spec/replicas', value: 9 }], 422, /operation #0 \(test \/spec\/replicas\) failed/],
    ['a path that does not exist', [{ op: 'replace', path: '/spec/nope/x', value: 1 }], 422, /operation #0 \(replace \/spec\/nope\/x\)/],
    ['an unknown op', [{ op: 'frobnicate', path: '/spec' }], 422, /frobnicate/],
    ['an index out of range (second op)', [{ op: 'test', path: '/kind', value: 'Deployment' }, { op: 'add', path: '/spec/template/spec/containers/7', value: {} }], 422, /operation #1 \(add \/spec\/template\/spec\/containers\/7\)/],
    ['a body that is not a list', { op: 'add' }, 400, /JSON array of RFC 6902 operations/],
  ])('rejects %s', (_name, body, code, message) => {
    const err = catchApiError(() => patch('json', deployment(), body));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('rejects a patch that removes metadata', () => {
    expect(catchApiError(() => patch('json', deployment(), [{ op: 'remove', path: '/metadata' }])).code).toBe(422);
  });
});

describe('strategic merge patch', () => {
  it("applies kubectl client-side apply's image change with $setElementOrder", () => {
    const lastApplied = JSON.stringify({ apiVersion: 'apps/v1', kind: 'Deployment' });
    const out = patch('strategic', deployment(), {
      metadata: { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied } },
      spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'app' }, { name: 'sidecar' }], containers: [{ image: 'x:2', name: 'app' }] } } },
    });
    const containers = specOf(out).template.spec.containers;
    expect(containers.map((c) => [c['name'], c['image']])).toEqual([
      ['app', 'x:2'],
      ['sidecar', 's:1'],
    ]);
    // Untouched fields of the merged item survive.
    expect(containers[0]?.['ports']).toEqual([{ containerPort: 80, protocol: 'TCP' }]);
    expect(out.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']).toBe(lastApplied);
  });

  it('reorders items by $setElementOrder and keeps server-only items after them', () => {
    const out = patch('strategic', deployment(), { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'sidecar' }, { name: 'new' }], containers: [{ name: 'new', image: 'n:1' }] } } } });
    expect(specOf(out).template.spec.containers.map((c) => c['name'])).toEqual(['sidecar', 'new', 'app']);
  });

  it.each<[string, unknown, (o: KubeObject) => void]>([
    [
      'deletes a container with $patch: delete',
      { spec: { template: { spec: { containers: [{ name: 'sidecar', $patch: 'delete' }] } } } },
      (o) => expect(specOf(o).template.spec.containers.map((c) => c['name'])).toEqual(['app']),
    ],
    [
      'merges env by name and deletes with null fields',
      { spec: { template: { spec: { containers: [{ name: 'app', env: [{ name: 'B', value: '20' }, { name: 'C', value: '3' }, { name: 'A', $patch: 'delete' }] }] } } } },
      (o) => expect(specOf(o).template.spec.containers[0]?.['env']).toEqual([{ name: 'B', value: '20' }, { name: 'C', value: '3' }]),
    ],
    [
      'merges container ports by containerPort',
      { spec: { template: { spec: { containers: [{ name: 'app', ports: [{ containerPort: 80, name: 'http' }, { containerPort: 9090 }] }] } } } },
      (o) => expect(specOf(o).template.spec.containers[0]?.['ports']).toEqual([{ containerPort: 80, protocol: 'TCP', name: 'http' }, { containerPort: 9090 }]),
    ],
    [
      "applies kubectl's nested patch removing one env var",
      { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'app' }, { name: 'sidecar' }], containers: [{ '$setElementOrder/env': [{ name: 'A' }], env: [{ $patch: 'delete', name: 'B' }], name: 'app' }] } } } },
      (o) => expect(specOf(o).template.spec.containers[0]?.['env']).toEqual([{ name: 'A', value: '1' }]),
    ],
    [
      'honours $retainKeys inside a list item (volume source switch)',
      { spec: { template: { spec: { volumes: [{ $retainKeys: ['name', 'configMap'], name: 'data', configMap: { name: 'cfg' } }] } } } },
      (o) => expect(specOf(o).template.spec.volumes).toEqual([{ name: 'data', configMap: { name: 'cfg' } }]),
    ],
    ['replaces tolerations (no merge key)', { spec: { template: { spec: { tolerations: [{ key: 'z', operator: 'Exists' }] } } } }, (o) => expect(specOf(o).template.spec.tolerations).toEqual([{ key: 'z', operator: 'Exists' }])],
    [
      'replaces a keyed list with a {$patch: replace} item',
      { spec: { template: { spec: { containers: [{ $patch: 'replace' }, { name: 'solo', image: 'solo:1' }] } } } },
      (o) => expect(specOf(o).template.spec.containers).toEqual([{ name: 'solo', image: 'solo:1' }]),
    ],
    ['replaces a map with $patch: replace', { spec: { selector: { $patch: 'replace', matchLabels: { other: 'x' } } } }, (o) => expect((o['spec'] as { selector: unknown }).selector).toEqual({ matchLabels: { other: 'x' } })],
    ['deletes a map with $patch: delete', { spec: { strategy: { $patch: 'delete' } } }, (o) => expect(specOf(o).strategy).toBeUndefined()],
    [
      "clears other keys with $retainKeys (kubectl's strategy switch)",
      { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate', rollingUpdate: null } } },
      (o) => expect(specOf(o).strategy).toEqual({ type: 'Recreate' }),
    ],
    ['removes finalizers with $deleteFromPrimitiveList', { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } }, (o) => expect(o.metadata.finalizers).toEqual(['b'])],
    ['unions finalizers (set list)', { metadata: { finalizers: ['b', 'c'] } }, (o) => expect(o.metadata.finalizers).toEqual(['a', 'b', 'c'])],
    ['null deletes a label', { metadata: { labels: { tier: null } } }, (o) => expect(o.metadata.labels).toEqual({ app: 'web' })],
    ['merges volumes by name', { spec: { template: { spec: { volumes: [{ name: 'cache', emptyDir: {} }] } } } }, (o) => expect(specOf(o).template.spec.volumes).toHaveLength(2)],
  ])('%s', (_name, body, check) => {
    check(patch('strategic', deployment(), body));
  });

  it('merges Pod containers and Service ports by their keys', () => {
    const pod: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'a:1' }], tolerations: [] }, status: { conditions: [{ type: 'Ready', status: 'False' }, { type: 'Initialized', status: 'True' }] } };
    const patchedPod = patch('strategic', pod, { spec: { containers: [{ name: 'a', image: 'a:2' }] }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }, POD);
    expect(patchedPod['spec']).toEqual({ containers: [{ name: 'a', image: 'a:2' }], tolerations: [] });
    expect((patchedPod['status'] as { conditions: unknown[] }).conditions).toEqual([{ type: 'Ready', status: 'True' }, { type: 'Initialized', status: 'True' }]);

    const svc: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80, targetPort: 8080 }, { port: 443 }] } };
    const patchedSvc = patch('strategic', svc, { spec: { ports: [{ port: 80, targetPort: 9090 }] } }, SERVICE);
    expect((patchedSvc['spec'] as { ports: unknown[] }).ports).toEqual([{ port: 80, targetPort: 9090 }, { port: 443 }]);
  });

  it('rejects an item without its merge key (422) and unknown directives', () => {
    const missingKey = catchApiError(() => patch('strategic', deployment(), { spec: { template: { spec: { containers: [{ image: 'x' }] } } } }));
    expect(missingKey.code).toBe(422);
    expect(missingKey.message).toContain('does not contain declared merge key: name');
    expect(catchApiError(() => patch('strategic', deployment(), { spec: { $patch: 'explode' } })).code).toBe(422);
  });

  it('is refused with 415 for custom resources, like kube-apiserver', () => {
    const vs: KubeObject = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r' }, spec: { hosts: ['a'] } };
    const err = catchApiError(() => patch('strategic', vs, { spec: { hosts: ['b'] } }, VIRTUAL_SERVICE));
    expect(err.code).toBe(415);
    expect(err.reason).toBe('UnsupportedMediaType');
    expect(err.message).toContain('strategic merge patch is not supported for VirtualService.networking.istio.io');
    // The same change as a merge patch works.
    expect(patch('merge', vs, { spec: { hosts: ['b'] } }, VIRTUAL_SERVICE)['spec']).toEqual({ hosts: ['b'] });
  });
});

describe('field manager on non-apply patches', () => {
  it('records an Update entry for the fields the patch changed', () => {
    const out = applyPatch('merge', deployment(), { spec: { replicas: 4 } }, { resourceType: DEPLOYMENT, fieldManager: 'kubectl-scale', now: NOW });
    expect(out.metadata.managedFields).toEqual([{ manager: 'kubectl-scale', operation: 'Update', apiVersion: 'apps/v1', time: '2030-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:replicas': {} } } }]);
  });
});
