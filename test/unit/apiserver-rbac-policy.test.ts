/**
 * rbac.authorization.k8s.io/v1 (ClusterRole, ClusterRoleBinding, Role, RoleBinding) and policy/v1
 * PodDisruptionBudget as built-in kinds of the sandbox API server: registry and discovery (scope,
 * plural, short name, status subresource), OpenAPI paths, storage with list/watch and
 * server-side apply, kube-apiserver's defaults and validation messages, top-level field
 * validation and `kubectl get` columns. Stored, not enforced — nothing here authorizes anything.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { admit, type AdmissionContext } from '../../src/sandbox/apiserver/admission/index.js';
import { apiGroupList, apiResourceList } from '../../src/sandbox/apiserver/discovery.js';
import { unknownFields } from '../../src/sandbox/apiserver/field-validation.js';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import { openApiGroupVersion } from '../../src/sandbox/apiserver/openapi.js';
import { ResourceRegistry } from '../../src/sandbox/apiserver/registry.js';
import { toTable } from '../../src/sandbox/apiserver/table.js';
import { ApiError, type KubeObject, type WatchEvent } from '../../src/sandbox/apiserver/types.js';

const RBAC = 'rbac.authorization.k8s.io/v1';

const stores: MemoryStore[] = [];
function newStore(options: Parameters<typeof createMemoryStore>[0] = {}): MemoryStore {
  const store = createMemoryStore(options);
  stores.push(store);
  return store;
}
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an ApiError');
}

const clusterRole = (name: string, rules: unknown[] = [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]): KubeObject => ({ apiVersion: RBAC, kind: 'ClusterRole', metadata: { name }, rules });
const role = (name: string, namespace = 'default', rules: unknown[] = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }]): KubeObject => ({ apiVersion: RBAC, kind: 'Role', metadata: { name, namespace }, rules });
const binding = (kind: 'RoleBinding' | 'ClusterRoleBinding', name: string, extra: Partial<KubeObject> = {}): KubeObject => ({
  apiVersion: RBAC,
  kind,
  metadata: kind === 'RoleBinding' ? { name, namespace: 'default' } : { name },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'reader' },
  subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: 'default' }],
  ...extra,
});
const pdb = (name: string, spec: Record<string, unknown> = { maxUnavailable: 1, selector: { matchLabels: { app: 'web' } } }, namespace = 'default'): KubeObject => ({
  apiVersion: 'policy/v1',
  kind: 'PodDisruptionBudget',
  metadata: { name, namespace },
  spec,
});

describe('registry and discovery', () => {
  const registry = new ResourceRegistry();

  it('serves the four RBAC kinds with their scope and policy/v1 PodDisruptionBudget with a status subresource', () => {
    const scope = (kind: string) => registry.byKind(RBAC, kind)?.namespaced;
    expect([scope('ClusterRole'), scope('ClusterRoleBinding'), scope('Role'), scope('RoleBinding')]).toEqual([false, false, true, true]);
    expect(registry.byPlural('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings')?.kind).toBe('ClusterRoleBinding');
    const budget = registry.byPlural('policy', 'v1', 'poddisruptionbudgets');
    expect(budget).toMatchObject({ kind: 'PodDisruptionBudget', listKind: 'PodDisruptionBudgetList', namespaced: true, shortNames: ['pdb'], statusSubresource: true });
    for (const kind of ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']) expect(registry.isBuiltinKind('rbac.authorization.k8s.io', kind), kind).toBe(true);
    expect(registry.isBuiltinKind('policy', 'PodDisruptionBudget')).toBe(true);
  });

  it('lists the groups and their resources as kubectl and client libraries discover them', () => {
    const groups = (apiGroupList(registry).groups as Array<{ name: string; preferredVersion: { groupVersion: string } }>).map((g) => [g.name, g.preferredVersion.groupVersion]);
    expect(groups).toEqual(expect.arrayContaining([['rbac.authorization.k8s.io', RBAC], ['policy', 'policy/v1']]));
    const rbac = apiResourceList(registry, 'rbac.authorization.k8s.io', 'v1')?.resources as Array<{ name: string; namespaced: boolean; kind: string; verbs: string[] }>;
    expect(rbac.map((r) => [r.name, r.namespaced, r.kind])).toEqual([
      ['clusterrolebindings', false, 'ClusterRoleBinding'],
      ['clusterroles', false, 'ClusterRole'],
      ['rolebindings', true, 'RoleBinding'],
      ['roles', true, 'Role'],
    ]);
    expect(rbac[0]?.verbs).toEqual(expect.arrayContaining(['create', 'get', 'list', 'watch', 'patch', 'update', 'delete', 'deletecollection']));
    const policy = apiResourceList(registry, 'policy', 'v1')?.resources as Array<{ name: string; shortNames?: string[] }>;
    expect(policy.map((r) => r.name)).toEqual(['poddisruptionbudgets', 'poddisruptionbudgets/status']);
    expect(policy[0]?.shortNames).toEqual(['pdb']);
  });

  it('describes PATCH for every kind in OpenAPI v3 (kubectl then trusts server-side field validation)', () => {
    const rbacPaths = Object.keys((openApiGroupVersion(registry, 'rbac.authorization.k8s.io', 'v1')?.paths ?? {}) as Record<string, unknown>);
    expect(rbacPaths).toEqual(
      expect.arrayContaining(['/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}', '/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}']),
    );
    expect(Object.keys((openApiGroupVersion(registry, 'policy', 'v1')?.paths ?? {}) as Record<string, unknown>)).toEqual(['/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{name}']);
  });
});

describe('storage', () => {
  it('stores cluster-scoped roles without a namespace and namespaced ones in theirs, and lists them', () => {
    const store = newStore();
    const created = store.create(clusterRole('reader'));
    expect(created.metadata.namespace).toBeUndefined();
    expect(created.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]);
    store.create(role('a'));
    store.create(role('b', 'kube-system'));
    expect(store.list(RBAC, 'Role', { namespace: 'default' }).items.map((r) => r.metadata.name)).toEqual(['a']);
    expect(store.list(RBAC, 'Role').items.map((r) => `${r.metadata.namespace}/${r.metadata.name}`).sort()).toEqual(['default/a', 'kube-system/b']);
    expect(store.get(RBAC, 'ClusterRole', undefined, 'reader')?.metadata.uid).toBe(created.metadata.uid);
    expect(apiError(() => store.get(RBAC, 'Role', 'default', 'missing') ?? store.delete(RBAC, 'Role', 'default', 'missing')).code).toBe(404);
  });

  it('delivers ADDED, MODIFIED and DELETED to watchers', async () => {
    const store = newStore();
    const events: WatchEvent[] = [];
    const stop = store.watch(RBAC, 'RoleBinding', { namespace: 'default' }, (e) => events.push(e));
    store.create(binding('RoleBinding', 'app'));
    store.patch(RBAC, 'RoleBinding', 'default', 'app', 'merge', { subjects: [{ kind: 'ServiceAccount', name: 'other' }] });
    store.delete(RBAC, 'RoleBinding', 'default', 'app');
    await new Promise((resolve) => setImmediate(resolve));
    stop();
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    expect((events[1]?.object as KubeObject).subjects).toEqual([{ kind: 'ServiceAccount', name: 'other' }]);
  });

  it('server-side applies: created once, re-applying the same is a no-op, rules are replaced whole (atomic list)', () => {
    const store = newStore();
    const config = clusterRole('reader', [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list'] }]);
    const first = store.patch(RBAC, 'ClusterRole', undefined, 'reader', 'apply', config, { fieldManager: 'amesh-install' });
    const again = store.patch(RBAC, 'ClusterRole', undefined, 'reader', 'apply', config, { fieldManager: 'amesh-install' });
    expect(again.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const changed = store.patch(RBAC, 'ClusterRole', undefined, 'reader', 'apply', clusterRole('reader', [{ apiGroups: [''], resources: ['pods'], verbs: ['watch'] }]), { fieldManager: 'amesh-install' });
    expect(changed.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['watch'] }]);
    expect(changed.metadata.managedFields?.[0]).toMatchObject({ manager: 'amesh-install', operation: 'Apply' });
  });

  it('keeps a PodDisruptionBudget status out of spec writes (status subresource) and bumps generation on spec changes', () => {
    const store = newStore();
    const created = store.create({ ...pdb('web'), status: { disruptionsAllowed: 5 } });
    expect(created.status).toBeUndefined();
    expect(created.metadata.generation).toBe(1);
    store.update({ ...created, status: { disruptionsAllowed: 1, currentHealthy: 2, desiredHealthy: 1, expectedPods: 2 } }, { subresource: 'status' });
    const updated = store.patch('policy/v1', 'PodDisruptionBudget', 'default', 'web', 'merge', { spec: { maxUnavailable: 2 }, status: { disruptionsAllowed: 9 } });
    expect(updated.status).toMatchObject({ disruptionsAllowed: 1 });
    expect(updated.metadata.generation).toBe(2);
  });

  it('deletes namespaced roles, bindings and budgets with their namespace, and leaves cluster-scoped ones', () => {
    const store = newStore({ namespaceCascadeDelayMs: 0 });
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } });
    store.create(role('r', 'team'));
    store.create({ ...binding('RoleBinding', 'b'), metadata: { name: 'b', namespace: 'team' } });
    store.create(pdb('p', undefined, 'team'));
    store.create(clusterRole('reader'));
    store.delete('v1', 'Namespace', undefined, 'team');
    expect(store.list(RBAC, 'Role', { namespace: 'team' }).items).toEqual([]);
    expect(store.list(RBAC, 'RoleBinding', { namespace: 'team' }).items).toEqual([]);
    expect(store.list('policy/v1', 'PodDisruptionBudget', { namespace: 'team' }).items).toEqual([]);
    expect(store.get(RBAC, 'ClusterRole', undefined, 'reader')).toBeDefined();
  });
});

describe('admission', () => {
  const registry = new ResourceRegistry();
  const ctx = (object: KubeObject, oldObject?: KubeObject): AdmissionContext => {
    const resourceType = registry.byKind(object.apiVersion, object.kind);
    if (!resourceType) throw new Error(`not served: ${object.apiVersion} ${object.kind}`);
    return {
      operation: oldObject ? 'UPDATE' : 'CREATE',
      resourceType,
      ...(oldObject ? { oldObject } : {}),
      allocateClusterIp: () => '10.96.0.10',
      releaseClusterIp: () => undefined,
      isClusterIpInUse: () => false,
    };
  };
  const refused = (object: KubeObject, oldObject?: KubeObject): string => {
    const err = apiError(() => admit(object, ctx(object, oldObject)));
    expect(err.code).toBe(422);
    return err.message;
  };

  it('accepts the install manifests’ shapes and defaults the role and User/Group subject groups', () => {
    const out = admit(
      binding('ClusterRoleBinding', 'b', { roleRef: { kind: 'ClusterRole', name: 'reader' }, subjects: [{ kind: 'User', name: 'alice' }, { kind: 'Group', name: 'devs' }, { kind: 'ServiceAccount', name: 'app', namespace: 'x' }] }),
      ctx(binding('ClusterRoleBinding', 'b')),
    );
    expect(out.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'reader' });
    expect(out.subjects).toEqual([
      { kind: 'User', name: 'alice', apiGroup: 'rbac.authorization.k8s.io' },
      { kind: 'Group', name: 'devs', apiGroup: 'rbac.authorization.k8s.io' },
      { kind: 'ServiceAccount', name: 'app', namespace: 'x' },
    ]);
    expect(() => admit(clusterRole('nonresource', [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]), ctx(clusterRole('x')))).not.toThrow();
    expect(() => admit(pdb('p', { minAvailable: '50%' }), ctx(pdb('p')))).not.toThrow();
  });

  it('refuses rules kube-apiserver refuses, in its words', () => {
    expect(refused(role('r', 'default', [{ apiGroups: [''], resources: ['pods'] }]))).toBe('Role.rbac.authorization.k8s.io "r" is invalid: rules[0].verbs: Required value: verbs must contain at least one value');
    expect(refused(role('r', 'default', [{ resources: ['pods'], verbs: ['get'] }]))).toContain('rules[0].apiGroups: Required value: resource rules must supply at least one api group');
    expect(refused(role('r', 'default', [{ nonResourceURLs: ['/healthz'], verbs: ['get'] }]))).toContain('rules[0].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs');
    expect(refused(clusterRole('c', [{ nonResourceURLs: ['/healthz'], resources: ['pods'], verbs: ['get'] }]))).toContain('rules cannot apply to both regular resources and non-resource URLs');
    expect(refused({ ...clusterRole('c'), aggregationRule: {} })).toContain('aggregationRule.clusterRoleSelectors: Required value');
  });

  it('refuses bindings without a valid roleRef or with bad subjects, and a changed roleRef', () => {
    expect(refused(binding('ClusterRoleBinding', 'b', { roleRef: undefined }))).toBe('ClusterRoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Required value');
    expect(refused(binding('ClusterRoleBinding', 'b', { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' } }))).toContain('roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"');
    expect(() => admit(binding('RoleBinding', 'b', { roleRef: { kind: 'Role', name: 'r' } }), ctx(binding('RoleBinding', 'b')))).not.toThrow();
    expect(refused(binding('ClusterRoleBinding', 'b', { subjects: [{ kind: 'ServiceAccount', name: 'app' }] }))).toContain('subjects[0].namespace: Required value');
    // A RoleBinding's ServiceAccount subject may omit the namespace (it means the binding's own).
    expect(() => admit(binding('RoleBinding', 'b', { subjects: [{ kind: 'ServiceAccount', name: 'app' }] }), ctx(binding('RoleBinding', 'b')))).not.toThrow();
    expect(refused(binding('RoleBinding', 'b', { subjects: [{ kind: 'Robot', name: 'r2' }] }))).toContain('subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"');
    expect(refused(binding('RoleBinding', 'b', { subjects: [{ kind: 'User', name: 'alice', apiGroup: 'example.com' }] }))).toContain('subjects[0].apiGroup: Unsupported value: "example.com"');
    const old = admit(binding('RoleBinding', 'b'), ctx(binding('RoleBinding', 'b')));
    expect(refused(binding('RoleBinding', 'b', { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' } }), old)).toContain('roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"admin"}: cannot change roleRef');
    expect(() => admit(binding('RoleBinding', 'b', { subjects: [] }), ctx(binding('RoleBinding', 'b'), old))).not.toThrow();
  });

  it('refuses PodDisruptionBudgets with both bounds, bad values or a bad selector', () => {
    expect(refused(pdb('p', { minAvailable: 1, maxUnavailable: 1 }))).toContain('minAvailable and maxUnavailable cannot be both set');
    expect(refused(pdb('p', { maxUnavailable: -1 }))).toContain('spec.maxUnavailable: Invalid value: -1: must be greater than or equal to 0');
    expect(refused(pdb('p', { minAvailable: 'half' }))).toContain("spec.minAvailable: Invalid value: \"half\": a valid percent string must be a numeric string followed by an ending '%'");
    expect(refused(pdb('p', { minAvailable: '150%' }))).toContain('must not be greater than 100%');
    expect(refused(pdb('p', { maxUnavailable: 1, selector: { matchExpressions: [{ key: 'app', operator: 'Is' }] } }))).toContain('spec.selector.matchExpressions[0].operator: Unsupported value: "Is"');
    expect(refused(pdb('p', { maxUnavailable: 1, unhealthyPodEvictionPolicy: 'Never' }))).toContain('spec.unhealthyPodEvictionPolicy: Unsupported value: "Never"');
  });
});

describe('field validation and tables', () => {
  it('knows the top-level fields of each RBAC kind', () => {
    const type = (kind: string) => ({ group: 'rbac.authorization.k8s.io', kind });
    expect(unknownFields(type('ClusterRole'), { ...clusterRole('c'), aggregationRule: {} })).toEqual([]);
    expect(unknownFields(type('Role'), { ...role('r'), spec: {} })).toEqual(['unknown field "spec"']);
    expect(unknownFields(type('Role'), { ...role('r'), aggregationRule: {} })).toEqual(['unknown field "aggregationRule"']);
    expect(unknownFields(type('RoleBinding'), binding('RoleBinding', 'b'))).toEqual([]);
    expect(unknownFields({ group: 'policy', kind: 'PodDisruptionBudget' }, { ...pdb('p'), rules: [] })).toEqual(['unknown field "rules"']);
  });

  it('prints the columns kubectl shows for them', () => {
    const now = new Date('2026-01-01T00:10:00Z');
    const meta = { creationTimestamp: '2026-01-01T00:00:00Z' };
    const table = (group: string, kind: string, o: KubeObject) => {
      const t = toTable(group, kind, [{ ...o, metadata: { ...o.metadata, ...meta } }], { resourceVersion: '1', now, includeObject: 'None' }) as { columnDefinitions: Array<{ name: string; priority: number }>; rows: Array<{ cells: unknown[] }> };
      return { columns: t.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name), cells: t.rows[0]?.cells };
    };
    expect(table('rbac.authorization.k8s.io', 'ClusterRole', clusterRole('reader'))).toEqual({ columns: ['Name', 'Created At'], cells: ['reader', '2026-01-01T00:00:00Z'] });
    const subjects = [{ kind: 'ServiceAccount', name: 'app', namespace: 'demo' }, { kind: 'User', name: 'alice' }];
    expect(table('rbac.authorization.k8s.io', 'RoleBinding', binding('RoleBinding', 'b', { subjects }))).toEqual({ columns: ['Name', 'Role', 'Age'], cells: ['b', 'ClusterRole/reader', '10m', 'alice', '', 'demo/app'] });
    expect(table('policy', 'PodDisruptionBudget', pdb('p'))).toEqual({ columns: ['Name', 'Min Available', 'Max Unavailable', 'Allowed Disruptions', 'Age'], cells: ['p', 'N/A', '1', 0, '10m'] });
  });
});
