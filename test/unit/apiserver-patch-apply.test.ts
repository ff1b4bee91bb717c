import { describe, expect, it } from 'vitest';
import { applyPatch, recordUpdateManager } from '../../src/sandbox/apiserver/patch/index.js';
import { ApiError, type KubeObject, type ResourceType } from '../../src/sandbox/apiserver/types.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const DEPLOYMENT: ResourceType = { group: 'apps', version: 'v1', kind: 'Deployment', listKind: 'DeploymentList', plural: 'deployments', singular: 'deployment', namespaced: true, shortNames: [], categories: [], verbs: [], statusSubresource: true };

const CONFIG_V1 = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web, team: blue}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: x:1
      - name: helper
        image: h:1
`;

function apply(live: KubeObject | undefined, config: unknown, fieldManager: string | null = 'kubectl', force = false): KubeObject {
  return applyPatch('apply', live, config, { resourceType: DEPLOYMENT, ...(fieldManager ? { fieldManager } : {}), force, now: NOW });
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

type DeploymentSpec = { replicas?: number; template: { spec: { containers: Array<{ name: string; image: string }> } } };
const specOf = (o: KubeObject): DeploymentSpec => o['spec'] as DeploymentSpec;
const entry = (o: KubeObject, manager: string) => o.metadata.managedFields?.find((e) => e.manager === manager);

/** A v1 config edited as a plain object. */
function configWith(edit: (c: { metadata: { labels: Record<string, string> }; spec: DeploymentSpec }) => void): Record<string, unknown> {
  const config = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'demo', labels: { app: 'web', team: 'blue' } as Record<string, string> },
    spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'x:1' }, { name: 'helper', image: 'h:1' }] } } } as DeploymentSpec,
  };
  edit(config);
  return config;
}

describe('server-side apply', () => {
  it('creates from YAML and records Apply ownership in FieldsV1', () => {
    const created = apply(undefined, CONFIG_V1);
    expect(created.metadata.name).toBe('web');
    expect(specOf(created).template.spec.containers).toEqual([{ name: 'app', image: 'x:1' }, { name: 'helper', image: 'h:1' }]);
    expect(created.metadata.managedFields).toHaveLength(1);
    const mine = entry(created, 'kubectl');
    expect(mine).toMatchObject({ operation: 'Apply', apiVersion: 'apps/v1', time: '2030-01-01T00:00:00Z', fieldsType: 'FieldsV1' });
    expect(mine?.fieldsV1).toMatchObject({
      'f:metadata': { 'f:labels': { 'f:app': {}, 'f:team': {} } },
      'f:spec': {
        'f:replicas': {},
        'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:name': {}, 'f:image': {} } } } },
      },
    });
    expect(JSON.stringify(mine?.fieldsV1)).not.toContain('f:name":{},"f:namespace'); // identity is not tracked
  });

  it('updates fields it owns and removes fields it stopped applying', () => {
    const created = apply(undefined, CONFIG_V1);
    const updated = apply(
      created,
      configWith((c) => {
        c.spec.replicas = 3;
        delete c.metadata.labels['team'];
        c.spec.template.spec.containers = [{ name: 'app', image: 'x:2' }];
      }),
    );
    expect(specOf(updated).replicas).toBe(3);
    expect(updated.metadata.labels).toEqual({ app: 'web' });
    expect(specOf(updated).template.spec.containers).toEqual([{ name: 'app', image: 'x:2' }]);
    expect(JSON.stringify(entry(updated, 'kubectl')?.fieldsV1)).not.toContain('helper');
  });

  it('keeps a dropped field that another manager also owns', () => {
    const created = apply(undefined, CONFIG_V1);
    // A controller labels the object and scales it (Update operations).
    const labelled = { ...created, metadata: { ...created.metadata, labels: { ...created.metadata.labels, extra: 'yes' } } };
    const touched = recordUpdateManager(created, labelled, 'labeller', 'Update', NOW);
    expect(entry(touched, 'labeller')?.fieldsV1).toEqual({ 'f:metadata': { 'f:labels': { 'f:extra': {} } } });
    // Another applier shares ownership of the helper container by applying the same values.
    const shared = apply(touched, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { template: { spec: { containers: [{ name: 'helper', image: 'h:1' }] } } } }, 'other');
    const reapplied = apply(shared, configWith((c) => (c.spec.template.spec.containers = [{ name: 'app', image: 'x:1' }])));
    expect(specOf(reapplied).template.spec.containers.map((c) => c.name)).toEqual(['app', 'helper']);
    expect(reapplied.metadata.labels?.['extra']).toBe('yes');
  });

  it('conflicts with a field another manager set to a different value', () => {
    const base = apply(undefined, CONFIG_V1, 'kubectl-client-side-apply');
    // Also the Update path: kubectl client-side apply created it, then `kubectl scale` changed replicas.
    const scaled = recordUpdateManager(base, { ...base, spec: { ...specOf(base), replicas: 5 } }, 'kubectl-client-side-apply', 'Update', NOW);
    const err = catchApiError(() => apply(scaled, configWith((c) => (c.spec.replicas = 3))));
    expect(err.code).toBe(409);
    expect(err.reason).toBe('Conflict');
    expect(err.message).toBe('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas');
    expect(err.status.details?.causes).toEqual([{ reason: 'FieldManagerConflict', message: 'conflict with "kubectl-client-side-apply" using apps/v1', field: '.spec.replicas' }]);
  });

  it('lists every conflict, with keyed list items in Kubernetes path syntax', () => {
    const base = apply(undefined, CONFIG_V1, 'ci');
    const err = catchApiError(() => apply(base, configWith((c) => {
      c.spec.replicas = 9;
      c.spec.template.spec.containers = [{ name: 'app', image: 'x:9' }];
    })));
    expect(err.message).toBe('Apply failed with 2 conflicts: conflicts with "ci" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name="app"].image');
  });

  it('does not conflict when the values agree, and shares ownership', () => {
    const base = apply(undefined, CONFIG_V1, 'ci');
    const same = apply(base, CONFIG_V1, 'kubectl');
    expect(entry(same, 'ci')?.fieldsV1).toEqual(entry(same, 'kubectl')?.fieldsV1);
  });

  it('with force takes ownership of the conflicting fields', () => {
    const base = apply(undefined, CONFIG_V1, 'ci');
    const forced = apply(base, configWith((c) => (c.spec.replicas = 7)), 'kubectl', true);
    expect(specOf(forced).replicas).toBe(7);
    expect(JSON.stringify(entry(forced, 'ci')?.fieldsV1)).not.toContain('f:replicas');
    expect(JSON.stringify(entry(forced, 'kubectl')?.fieldsV1)).toContain('f:replicas');
  });

  it('credits fields of an object written without field tracking to before-first-apply', () => {
    const created = apply(undefined, CONFIG_V1);
    const { managedFields: _dropped, ...metadata } = created.metadata;
    const untracked = { ...created, metadata };
    const err = catchApiError(() => apply(untracked, configWith((c) => (c.spec.replicas = 4))));
    expect(err.message).toContain('conflict with "before-first-apply" using apps/v1: .spec.replicas');
  });

  it.each<[string, unknown, string | null, RegExp]>([
    ['no field manager', CONFIG_V1, null, /fieldManager is required/],
    ['no name', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: {} }, 'kubectl', /metadata\.name/],
    ['no kind', { apiVersion: 'apps/v1', metadata: { name: 'web' } }, 'kubectl', /apiVersion and kind/],
    ['another kind', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' } }, 'kubectl', /is a Pod/],
    ['broken YAML', 'kind: [', 'kubectl', /YAML/],
    ['a YAML list', '- a\n- b\n', 'kubectl', /must be a YAML or JSON object/],
  ])('rejects %s with 400', (_name, config, manager, message) => {
    const err = catchApiError(() => apply(undefined, config, manager));
    expect(err.code).toBe(400);
    expect(err.message).toMatch(message);
  });
});

describe('recordUpdateManager', () => {
  it('credits the writer with changed fields and takes them from other managers', () => {
    const created = apply(undefined, CONFIG_V1);
    const next = structuredClone(created);
    (next['spec'] as DeploymentSpec).replicas = 10;
    const out = recordUpdateManager(created, next, 'hpa', 'Update', NOW);
    expect(entry(out, 'hpa')?.fieldsV1).toEqual({ 'f:spec': { 'f:replicas': {} } });
    expect(JSON.stringify(entry(out, 'kubectl')?.fieldsV1)).not.toContain('f:replicas');
    // Idempotent: recording the same write again changes nothing.
    expect(recordUpdateManager(created, out, 'hpa', 'Update', NOW).metadata.managedFields).toEqual(out.metadata.managedFields);
  });

  it('drops removed fields from every manager and drops managers left with nothing', () => {
    const created = recordUpdateManager(undefined, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: '1' } }, 'creator', 'Update', NOW);
    expect(entry(created, 'creator')?.fieldsV1).toEqual({ 'f:data': { 'f:a': {} } });
    const emptied = recordUpdateManager(created, { ...created, data: {} }, 'editor', 'Update', NOW);
    expect(entry(emptied, 'creator')).toBeUndefined();
    expect(entry(emptied, 'editor')?.fieldsV1).toEqual({ 'f:data': {} });
  });
});
