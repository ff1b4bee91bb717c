import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './apiserver-harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const json = (text: string): Record<string, unknown> => JSON.parse(text) as Record<string, unknown>;

describe('API server HTTP: probes, auth, discovery', () => {
  it('answers probes and /version without a token', async () => {
    expect((await h.request('GET', '/healthz', { token: null })).body).toBe('ok');
    const version = await h.request('GET', '/version', { token: null });
    expect(json(version.body).gitVersion).toBe('v1.32.0-amesh');
  });

  it('answers 401 Status without a valid token', async () => {
    for (const token of [null, 'wrong']) {
      const res = await h.request('GET', '/api/v1/pods', { token });
      expect(res.status).toBe(401);
      expect(json(res.body)).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
    }
  });

  it('serves legacy discovery even when aggregated discovery is asked for', async () => {
    const res = await h.request('GET', '/apis', { accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' });
    expect(res.headers['content-type']).toBe('application/json');
    const groups = json(res.body).groups as Array<{ name: string; preferredVersion: { version: string } }>;
    expect(groups.find((g) => g.name === 'networking.istio.io')?.preferredVersion.version).toBe('v1');
    const core = json((await h.request('GET', '/api/v1')).body).resources as Array<{ name: string; shortNames?: string[]; categories?: string[] }>;
    expect(core.find((r) => r.name === 'pods')).toMatchObject({ shortNames: ['po'], categories: ['all'] });
    expect(core.some((r) => r.name === 'pods/status')).toBe(true);
  });

  it('lists group-versions in the OpenAPI v3 root with fieldValidation on PATCH', async () => {
    const root = json((await h.request('GET', '/openapi/v3')).body).paths as Record<string, { serverRelativeURL: string }>;
    const apps = root['apis/apps/v1'];
    expect(apps?.serverRelativeURL).toMatch(/^\/openapi\/v3\/apis\/apps\/v1\?hash=/);
    const doc = json((await h.request('GET', apps?.serverRelativeURL ?? '')).body).paths as Record<string, { patch: { parameters: Array<{ name: string }> } }>;
    const item = doc['/apis/apps/v1/namespaces/{namespace}/deployments/{name}'];
    expect(item?.patch.parameters.map((p) => p.name)).toContain('fieldValidation');
  });
});

describe('API server HTTP: CRUD', () => {
  it('creates, reads, lists as Table, and deletes', async () => {
    const created = await h.request('POST', '/api/v1/namespaces/default/configmaps', { body: JSON.stringify({ metadata: { name: 'c1' }, data: { a: 'b' } }), contentType: 'application/json' });
    expect(created.status).toBe(201);
    expect(json(created.body)).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c1', namespace: 'default' } });
    const table = json((await h.request('GET', '/api/v1/namespaces/default/configmaps', { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' })).body);
    expect(table.kind).toBe('Table');
    expect((table.rows as Array<{ cells: unknown[] }>)[0]?.cells[0]).toBe('c1');
    const deleted = await h.request('DELETE', '/api/v1/namespaces/default/configmaps/c1');
    expect(deleted.status).toBe(200);
    const missing = await h.request('GET', '/api/v1/namespaces/default/configmaps/c1');
    expect(missing.status).toBe(404);
    expect(json(missing.body)).toMatchObject({ kind: 'Status', reason: 'NotFound', message: 'configmaps "c1" not found' });
  });

  it('rejects a body whose kind or namespace contradicts the URL with 400', async () => {
    const wrongKind = await h.request('POST', '/api/v1/namespaces/default/configmaps', { body: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' } }), contentType: 'application/json' });
    expect(wrongKind.status).toBe(400);
    const wrongNs = await h.request('POST', '/api/v1/namespaces/default/configmaps', { body: JSON.stringify({ metadata: { name: 'x', namespace: 'kube-system' } }), contentType: 'application/json' });
    expect(wrongNs.status).toBe(400);
  });

  it('honours fieldValidation Strict, Warn and Ignore', async () => {
    const body = JSON.stringify({ metadata: { name: 'fv' }, data: {}, bogus: 1 });
    const strict = await h.request('POST', '/api/v1/namespaces/default/configmaps?fieldValidation=Strict', { body, contentType: 'application/json' });
    expect(strict.status).toBe(400);
    expect(json(strict.body).message).toContain('unknown field "bogus"');
    const warn = await h.request('POST', '/api/v1/namespaces/default/configmaps?fieldValidation=Warn', { body, contentType: 'application/json' });
    expect(warn.status).toBe(201);
    expect(String(warn.headers.warning)).toContain('unknown field');
    await h.request('DELETE', '/api/v1/namespaces/default/configmaps/fv');
    const ignore = await h.request('POST', '/api/v1/namespaces/default/configmaps?fieldValidation=Ignore', { body, contentType: 'application/json' });
    expect(ignore.status).toBe(201);
    expect(ignore.headers.warning).toBeUndefined();
  });

  it('deletes a collection by label selector', async () => {
    for (const [name, app] of [['l1', 'x'], ['l2', 'x'], ['l3', 'y']]) {
      h.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', labels: { app: app ?? '' } } });
    }
    const res = await h.request('DELETE', '/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx');
    expect(res.status).toBe(200);
    expect((json(res.body).items as Array<{ metadata: { name: string } }>).map((i) => i.metadata.name)).toEqual(['l1', 'l2']);
    expect(h.store.get('v1', 'ConfigMap', 'default', 'l3')).toBeDefined();
  });

  it('writes status only through /status, and patches it there', async () => {
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'st' } });
    h.store.create({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', namespace: 'st' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } } } });
    const patch = (path: string, body: unknown): Promise<{ status: number; body: string }> =>
      h.request('PATCH', path, { body: JSON.stringify(body), contentType: 'application/merge-patch+json' });
    const main = await patch('/apis/apps/v1/namespaces/st/deployments/d', { status: { replicas: 9 } });
    expect(main.status).toBe(200);
    expect(json(main.body).status).not.toEqual(expect.objectContaining({ replicas: 9 }));
    const sub = await patch('/apis/apps/v1/namespaces/st/deployments/d/status', { status: { replicas: 2 }, spec: { replicas: 7 } });
    expect(sub.status).toBe(200);
    expect(json(sub.body)).toMatchObject({ status: { replicas: 2 } });
    expect((json(sub.body).spec as { replicas: number }).replicas).not.toBe(7);
    const get = await h.request('GET', '/apis/apps/v1/namespaces/st/deployments/d/status');
    expect(json(get.body)).toMatchObject({ kind: 'Deployment', status: { replicas: 2 } });
  });

  it('filters a legacy /watch/ path by label selector', async () => {
    const rv = h.store.currentResourceVersion();
    h.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'w-in', namespace: 'default', labels: { pick: 'yes' } } });
    h.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'w-out', namespace: 'default', labels: { pick: 'no' } } });
    const res = await h.request('GET', `/api/v1/watch/namespaces/default/configmaps?labelSelector=pick%3Dyes&resourceVersion=${rv}&timeoutSeconds=1`);
    const events = res.body.trim().split('\n').map((line) => json(line));
    expect(events.map((e) => `${String(e.type)} ${(e.object as { metadata: { name: string } }).metadata.name}`)).toEqual(['ADDED w-in']);
  });

  it('answers TokenReview from the tokenReview callback', async () => {
    const res = await h.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'nope' } }), contentType: 'application/json' });
    expect(res.status).toBe(201);
    expect(json(res.body).status).toEqual({ authenticated: false, error: 'invalid token' });
  });

  it('streams a watch from a resourceVersion and ends it after timeoutSeconds', async () => {
    const rv = h.store.currentResourceVersion();
    h.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'watched', namespace: 'default' } });
    const res = await h.request('GET', `/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${rv}&timeoutSeconds=1`);
    const events = res.body.trim().split('\n').map((line) => json(line));
    expect(events.map((e) => e.type)).toEqual(['ADDED']);
  });

  it('sends 410 as a watch ERROR event', async () => {
    const small = await startHarness({ eventLogSize: 2 });
    try {
      for (let i = 0; i < 5; i++) small.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `c${i}`, namespace: 'default' } });
      const res = await small.request('GET', '/api/v1/configmaps?watch=1&resourceVersion=1');
      expect(res.status).toBe(200);
      const event = json(res.body.trim());
      expect(event).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    } finally {
      await small.close();
    }
  });
});
