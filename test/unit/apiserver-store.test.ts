import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import { ApiError, type KubeObject, type WatchEvent } from '../../src/sandbox/apiserver/types.js';

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

const ns = (name: string, labels?: Record<string, string>): KubeObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } });
const cm = (name: string, namespace = 'default', extra: Partial<KubeObject> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { k: 'v' }, ...extra });
const pod = (name: string, namespace = 'default', labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, labels },
  spec: { containers: [{ name: 'app', image: 'nginx' }] },
});

/** Collects watch events; `settle` waits for queued deliveries (they run on microtasks). */
function collect(store: MemoryStore, apiVersion: string, kind: string, options = {}): { events: WatchEvent[]; stop: () => void } {
  const events: WatchEvent[] = [];
  const stop = store.watch(apiVersion, kind, options, (e) => events.push(e));
  return { events, stop };
}
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('memory store: basics', () => {
  it('starts with the four system namespaces', () => {
    const store = newStore();
    expect(store.list('v1', 'Namespace').items.map((n) => n.metadata.name)).toEqual(['default', 'kube-node-lease', 'kube-public', 'kube-system']);
    expect(store.get('v1', 'Namespace', undefined, 'default')?.status).toEqual({ phase: 'Active' });
  });

  it('assigns uid, creationTimestamp, generation and a strictly increasing resourceVersion', () => {
    const store = newStore({ now: () => new Date('2026-01-02T03:04:05.678Z') });
    const before = Number(store.currentResourceVersion());
    const a = store.create(cm('a'));
    const b = store.create(cm('b'));
    expect(a.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.metadata.creationTimestamp).toBe('2026-01-02T03:04:05Z');
    expect(a.metadata.generation).toBe(1);
    expect(Number(a.metadata.resourceVersion)).toBe(before + 1);
    expect(Number(b.metadata.resourceVersion)).toBe(before + 2);
    expect(store.currentResourceVersion()).toBe(String(before + 2));
  });

  it('returns copies: mutating a result never changes the store', () => {
    const store = newStore();
    const a = store.create(cm('a'));
    (a.data as Record<string, string>).k = 'changed';
    expect(store.get('v1', 'ConfigMap', 'default', 'a')?.data).toEqual({ k: 'v' });
  });

  it('honours generateName and defaults the namespace', () => {
    const store = newStore();
    const created = store.create<KubeObject>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'web-' } });
    expect(created.metadata.name).toMatch(/^web-[a-z0-9]{5}$/);
    expect(created.metadata.namespace).toBe('default');
  });

  it('rejects creates into a missing namespace with 404 naming it, and duplicates with 409', () => {
    const store = newStore();
    const missing = apiError(() => store.create(cm('a', 'nope')));
    expect(missing.code).toBe(404);
    expect(missing.message).toBe('namespaces "nope" not found');
    store.create(cm('a'));
    const dup = apiError(() => store.create(cm('a')));
    expect(dup.code).toBe(409);
    expect(dup.reason).toBe('AlreadyExists');
    expect(dup.message).toBe('configmaps "a" already exists');
  });

  it('names resources like Kubernetes in 404s', () => {
    const store = newStore();
    expect(apiError(() => store.delete('apps/v1', 'Deployment', 'default', 'x')).message).toBe('deployments.apps "x" not found');
    expect(apiError(() => store.delete('v1', 'Pod', 'default', 'x')).message).toBe('pods "x" not found');
    expect(apiError(() => store.get('example.com/v1', 'Widget', 'default', 'x')).code).toBe(404);
  });

  it('rejects a missing name (422 naming metadata.name) and a non-object metadata (400)', () => {
    const store = newStore();
    const err = apiError(() => store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: {} }));
    expect(err.code).toBe(422);
    expect(err.status.details?.causes?.[0]?.field).toBe('metadata.name');
    expect(apiError(() => store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: 5 } as unknown as KubeObject)).code).toBe(400);
  });
});

describe('memory store: updates', () => {
  it('enforces resourceVersion with the Kubernetes conflict message', () => {
    const store = newStore();
    const a = store.create(cm('a'));
    store.update({ ...a, data: { k: 'v2' } });
    const err = apiError(() => store.update({ ...a, data: { k: 'v3' } }));
    expect(err.code).toBe(409);
    expect(err.message).toBe(
      'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your changes to the latest version and try again',
    );
  });

  it('bumps generation only when something outside metadata and status changes', () => {
    const store = newStore();
    const p = store.create(pod('p'));
    const relabelled = store.update({ ...p, metadata: { ...p.metadata, labels: { x: 'y' } } });
    expect(relabelled.metadata.generation).toBe(1);
    const respecced = store.update({ ...relabelled, spec: { containers: [{ name: 'app', image: 'nginx:2' }] } });
    expect(respecced.metadata.generation).toBe(2);
  });

  it('treats an update that changes nothing as a no-op (same resourceVersion, no event)', async () => {
    const store = newStore();
    const a = store.create(cm('a'));
    const { events } = collect(store, 'v1', 'ConfigMap', { resourceVersion: a.metadata.resourceVersion });
    const same = store.update(a);
    expect(same.metadata.resourceVersion).toBe(a.metadata.resourceVersion);
    await settle();
    expect(events).toEqual([]);
  });

  it('splits the status subresource from the main endpoint', () => {
    const store = newStore();
    const p = store.create({ ...pod('p'), status: { phase: 'Running' } });
    // Status sent with a create is dropped (admission may default it, e.g. phase Pending).
    expect((p.status as { phase?: string } | undefined)?.phase).not.toBe('Running');
    const withStatus = store.update({ ...p, status: { phase: 'Running' }, spec: { containers: [{ name: 'app', image: 'ignored' }] } }, { subresource: 'status' });
    expect(withStatus.status).toEqual({ phase: 'Running' });
    expect((withStatus.spec as { containers: Array<{ image: string }> }).containers[0]?.image).toBe('nginx');
    const mainWrite = store.update({ ...withStatus, status: { phase: 'Failed' }, metadata: { ...withStatus.metadata, labels: { a: 'b' } } });
    expect(mainWrite.status).toEqual({ phase: 'Running' });
    expect(mainWrite.metadata.labels).toEqual({ a: 'b' });
  });

  it('patches through the patch module, refusing patches that change apiVersion or kind', () => {
    const store = newStore();
    store.create(cm('a'));
    const patched = store.patch('v1', 'ConfigMap', 'default', 'a', 'merge', { data: { k: 'v2' } });
    expect(patched.data).toEqual({ k: 'v2' });
    expect(apiError(() => store.patch('v1', 'ConfigMap', 'default', 'a', 'merge', { kind: 'Secret' })).code).toBe(400);
    expect(apiError(() => store.patch('v1', 'ConfigMap', 'default', 'a', 'json', [{ op: 'replace', path: '/apiVersion', value: 5 }])).code).toBe(400);
    expect(apiError(() => store.patch('v1', 'ConfigMap', 'default', 'missing', 'merge', {})).code).toBe(404);
  });

  it('keeps identity fields on update', () => {
    const store = newStore();
    const a = store.create(cm('a'));
    const b = store.update({ ...a, metadata: { ...a.metadata, uid: 'forged', creationTimestamp: '1999-01-01T00:00:00Z' }, data: { k: 'x' } });
    expect(b.metadata.uid).toBe(a.metadata.uid);
    expect(b.metadata.creationTimestamp).toBe(a.metadata.creationTimestamp);
  });
});

describe('memory store: lists and selectors', () => {
  it('filters by namespace, labels and fields', () => {
    const store = newStore();
    store.create(ns('demo'));
    store.create(pod('a', 'demo', { app: 'web' }));
    store.create(pod('b', 'demo', { app: 'db' }));
    store.create(pod('c', 'default', { app: 'web' }));
    const names = (o: { labelSelector?: string; fieldSelector?: string; namespace?: string }): string[] => store.list('v1', 'Pod', o).items.map((p) => p.metadata.name ?? '');
    expect(names({})).toEqual(['c', 'a', 'b']);
    expect(names({ namespace: 'demo' })).toEqual(['a', 'b']);
    expect(names({ labelSelector: 'app=web' })).toEqual(['c', 'a']);
    expect(names({ labelSelector: 'app notin (web)' })).toEqual(['b']);
    expect(names({ fieldSelector: 'metadata.name!=a', namespace: 'demo' })).toEqual(['b']);
    expect(store.list('v1', 'Pod').kind).toBe('PodList');
  });
});

describe('memory store: deletion, finalizers and garbage collection', () => {
  function owner(store: MemoryStore, name = 'owner'): KubeObject {
    return store.create(cm(name));
  }
  const dependent = (name: string, o: KubeObject, extra: Partial<KubeObject['metadata']> = {}): KubeObject =>
    cm(name, 'default', {
      metadata: { name, namespace: 'default', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: o.metadata.name ?? '', uid: o.metadata.uid ?? '', blockOwnerDeletion: true }], ...extra },
    });

  it('holds an object with finalizers until the last one is removed', () => {
    const store = newStore();
    store.create(cm('a', 'default', { metadata: { name: 'a', namespace: 'default', finalizers: ['example.com/hold'] } }));
    const marked = store.delete('v1', 'ConfigMap', 'default', 'a');
    expect(marked.metadata.deletionTimestamp).toBeDefined();
    expect(store.get('v1', 'ConfigMap', 'default', 'a')).toBeDefined();
    const current = store.get('v1', 'ConfigMap', 'default', 'a') as KubeObject;
    store.update({ ...current, metadata: { ...current.metadata, finalizers: [] } });
    expect(store.get('v1', 'ConfigMap', 'default', 'a')).toBeUndefined();
  });

  it('Background: dependents are deleted after the owner goes', async () => {
    const store = newStore();
    const o = owner(store);
    store.create(dependent('d1', o));
    const { events } = collect(store, 'v1', 'ConfigMap', { resourceVersion: store.currentResourceVersion() });
    store.delete('v1', 'ConfigMap', 'default', 'owner', { propagationPolicy: 'Background' });
    expect(store.get('v1', 'ConfigMap', 'default', 'd1')).toBeUndefined();
    await settle();
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['DELETED owner', 'DELETED d1']);
  });

  it('collects an object created with owners that no longer exist (a stale controller), after the create returns', async () => {
    const store = newStore();
    const o = owner(store);
    store.delete('v1', 'ConfigMap', 'default', 'owner');
    const late = store.create(dependent('late', o));
    expect(late.metadata.uid).toBeDefined();
    await new Promise((r) => setImmediate(r));
    expect(store.get('v1', 'ConfigMap', 'default', 'late')).toBeUndefined();
    const live = owner(store, 'live');
    store.create(dependent('kept', live));
    await new Promise((r) => setImmediate(r));
    expect(store.get('v1', 'ConfigMap', 'default', 'kept')).toBeDefined();
  });

  it('Background: a dependent with another live owner only loses the dangling reference', () => {
    const store = newStore();
    const o1 = owner(store, 'o1');
    const o2 = owner(store, 'o2');
    const d = dependent('d', o1);
    d.metadata.ownerReferences?.push({ apiVersion: 'v1', kind: 'ConfigMap', name: 'o2', uid: o2.metadata.uid ?? '' });
    store.create(d);
    store.delete('v1', 'ConfigMap', 'default', 'o1');
    expect(store.get('v1', 'ConfigMap', 'default', 'd')?.metadata.ownerReferences?.map((r) => r.name)).toEqual(['o2']);
  });

  it('Foreground: the owner keeps a foregroundDeletion finalizer until its dependents are gone', () => {
    const store = newStore();
    const o = owner(store);
    store.create(dependent('d1', o, { finalizers: ['example.com/hold'] }));
    store.delete('v1', 'ConfigMap', 'default', 'owner', { propagationPolicy: 'Foreground' });
    const waiting = store.get('v1', 'ConfigMap', 'default', 'owner');
    expect(waiting?.metadata.finalizers).toContain('foregroundDeletion');
    expect(waiting?.metadata.deletionTimestamp).toBeDefined();
    const d1 = store.get('v1', 'ConfigMap', 'default', 'd1') as KubeObject;
    expect(d1.metadata.deletionTimestamp).toBeDefined();
    store.update({ ...d1, metadata: { ...d1.metadata, finalizers: [] } });
    expect(store.get('v1', 'ConfigMap', 'default', 'd1')).toBeUndefined();
    expect(store.get('v1', 'ConfigMap', 'default', 'owner')).toBeUndefined();
  });

  it('Orphan: dependents stay with their owner references stripped', () => {
    const store = newStore();
    const o = owner(store);
    store.create(dependent('d1', o));
    store.delete('v1', 'ConfigMap', 'default', 'owner', { propagationPolicy: 'Orphan' });
    const d1 = store.get('v1', 'ConfigMap', 'default', 'd1');
    expect(d1).toBeDefined();
    expect(d1?.metadata.ownerReferences).toBeUndefined();
  });

  it('deletes everything in a namespace, then the namespace (Terminating in between)', async () => {
    const store = newStore({ namespaceCascadeDelayMs: 0 });
    store.create(ns('demo'));
    store.create(cm('a', 'demo'));
    store.create(cm('held', 'demo', { metadata: { name: 'held', namespace: 'demo', finalizers: ['example.com/hold'] } }));
    const { events } = collect(store, 'v1', 'Namespace', { resourceVersion: store.currentResourceVersion() });
    store.delete('v1', 'Namespace', undefined, 'demo');
    expect(store.get('v1', 'ConfigMap', 'demo', 'a')).toBeUndefined();
    expect(store.get('v1', 'Namespace', undefined, 'demo')?.status).toEqual({ phase: 'Terminating' });
    expect(apiError(() => store.create(cm('new', 'demo'))).code).toBe(403);
    const held = store.get('v1', 'ConfigMap', 'demo', 'held') as KubeObject;
    store.update({ ...held, metadata: { ...held.metadata, finalizers: [] } });
    expect(store.get('v1', 'Namespace', undefined, 'demo')).toBeUndefined();
    await settle();
    expect(events.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED']);
  });

  it('empties a terminating namespace only after the cascade delay (like the namespace controller)', () => {
    vi.useFakeTimers();
    try {
      const store = newStore({ namespaceCascadeDelayMs: 1000 });
      store.create(ns('demo'));
      store.create(cm('a', 'demo'));
      store.create(cm('b', 'demo'));
      store.delete('v1', 'Namespace', undefined, 'demo');
      // `kubectl delete -f` deletes the Namespace first, then its contents: they must still be there.
      expect(store.delete('v1', 'ConfigMap', 'demo', 'a').metadata.name).toBe('a');
      expect(store.get('v1', 'Namespace', undefined, 'demo')?.status).toEqual({ phase: 'Terminating' });
      vi.advanceTimersByTime(1000);
      expect(store.get('v1', 'ConfigMap', 'demo', 'b')).toBeUndefined();
      expect(store.get('v1', 'Namespace', undefined, 'demo')).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('graceful pod deletion: a bound pod terminates until its kubelet deletes it with grace 0', () => {
    const store = newStore({ gracefulPodDeletion: true, now: () => new Date('2026-01-01T00:00:00Z') });
    store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'sandbox-node1' } });
    store.create({ ...pod('bound'), spec: { nodeName: 'sandbox-node1', terminationGracePeriodSeconds: 5, containers: [{ name: 'app', image: 'nginx' }] } });
    store.create({ ...pod('orphan'), spec: { nodeName: 'no-such-node', containers: [{ name: 'app', image: 'nginx' }] } });
    const terminating = store.delete('v1', 'Pod', 'default', 'bound');
    expect(terminating.metadata).toMatchObject({ deletionTimestamp: '2026-01-01T00:00:05Z', deletionGracePeriodSeconds: 5 });
    expect(store.delete('v1', 'Pod', 'default', 'bound').metadata.resourceVersion).toBe(terminating.metadata.resourceVersion);
    store.delete('v1', 'Pod', 'default', 'bound', { gracePeriodSeconds: 0 });
    expect(store.get('v1', 'Pod', 'default', 'bound')).toBeUndefined();
    store.delete('v1', 'Pod', 'default', 'orphan');
    expect(store.get('v1', 'Pod', 'default', 'orphan')).toBeUndefined();
  });

  it('refuses to delete the default namespace', () => {
    const store = newStore();
    expect(apiError(() => store.delete('v1', 'Namespace', undefined, 'default')).code).toBe(403);
  });

  it('checks delete preconditions', () => {
    const store = newStore();
    store.create(cm('a'));
    expect(apiError(() => store.delete('v1', 'ConfigMap', 'default', 'a', { preconditions: { uid: 'other' } })).code).toBe(409);
  });
});

describe('memory store: watch', () => {
  it('starts with ADDED for current state when no resourceVersion is given, delivered asynchronously', async () => {
    const store = newStore();
    store.create(cm('a'));
    const { events } = collect(store, 'v1', 'ConfigMap', {});
    expect(events).toEqual([]);
    store.create(cm('b'));
    expect(events).toEqual([]);
    await settle();
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED a', 'ADDED b']);
  });

  it('replays from a resourceVersion in order', async () => {
    const store = newStore();
    const a = store.create(cm('a'));
    store.update({ ...a, data: { k: '2' } });
    store.delete('v1', 'ConfigMap', 'default', 'a');
    const { events } = collect(store, 'v1', 'ConfigMap', { resourceVersion: a.metadata.resourceVersion });
    await settle();
    expect(events.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED']);
    const versions = events.map((e) => Number(e.object.metadata.resourceVersion));
    expect(versions).toEqual([...versions].sort((x, y) => x - y));
  });

  it('answers 410 Expired for a resourceVersion older than the event log', () => {
    const store = newStore({ eventLogSize: 3 });
    const first = store.create(cm('a'));
    for (let i = 0; i < 5; i++) store.create(cm(`n${i}`));
    const err = apiError(() => store.watch('v1', 'ConfigMap', { resourceVersion: first.metadata.resourceVersion }, () => undefined));
    expect(err.code).toBe(410);
    expect(err.reason).toBe('Expired');
    expect(err.message).toMatch(/too old resource version/);
  });

  it('turns selector entry and exit into ADDED and DELETED', async () => {
    const store = newStore();
    const a = store.create(pod('a', 'default', { app: 'x' }));
    const { events } = collect(store, 'v1', 'Pod', { labelSelector: 'app=web', resourceVersion: a.metadata.resourceVersion });
    const entered = store.update({ ...a, metadata: { ...a.metadata, labels: { app: 'web' } } });
    store.update({ ...entered, metadata: { ...entered.metadata, labels: { app: 'other' } } });
    await settle();
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'DELETED']);
  });

  it('sends bookmarks when asked', async () => {
    const store = newStore({ bookmarkIntervalMs: 10 });
    const { events, stop } = collect(store, 'v1', 'ConfigMap', { resourceVersion: store.currentResourceVersion(), allowBookmarks: true });
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.type === 'BOOKMARK') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    stop();
    const bookmark = events.find((e) => e.type === 'BOOKMARK');
    expect(bookmark?.object.metadata.resourceVersion).toBe(store.currentResourceVersion());
  });

  it('stops delivering after the stop function is called', async () => {
    const store = newStore();
    const { events, stop } = collect(store, 'v1', 'ConfigMap', { resourceVersion: store.currentResourceVersion() });
    store.create(cm('a'));
    stop();
    await settle();
    expect(events).toEqual([]);
  });
});

describe('memory store: multi-version kinds and CRDs', () => {
  it('stores one VirtualService and serves it under every Istio version', async () => {
    const store = newStore();
    const { events } = collect(store, 'networking.istio.io/v1alpha3', 'VirtualService', {});
    store.create({ apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: { name: 'r' }, spec: { hosts: ['x'] } });
    expect(store.get('networking.istio.io/v1', 'VirtualService', 'default', 'r')?.apiVersion).toBe('networking.istio.io/v1');
    expect(store.list('networking.istio.io/v1alpha3', 'VirtualService').items[0]?.apiVersion).toBe('networking.istio.io/v1alpha3');
    await settle();
    expect(events[0]?.object.apiVersion).toBe('networking.istio.io/v1alpha3');
  });

  const crd: KubeObject = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.com' },
    spec: {
      group: 'example.com',
      scope: 'Namespaced',
      names: { kind: 'Widget', plural: 'widgets', singular: 'widget', shortNames: ['wd'], listKind: 'WidgetList' },
      versions: [
        { name: 'v1', served: true, storage: true, subresources: { status: {} } },
        { name: 'v1beta1', served: true, storage: false },
      ],
    },
  };

  it('registers a CRD at create time and unregisters it (with its objects) on delete', () => {
    const store = newStore();
    store.create(crd);
    const type = store.resourceType('example.com/v1', 'Widget');
    expect(type).toMatchObject({ plural: 'widgets', namespaced: true, shortNames: ['wd'], statusSubresource: true });
    expect(store.resourceType('example.com/v1beta1', 'Widget')?.statusSubresource).toBe(false);
    store.create({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } });
    expect(store.list('example.com/v1beta1', 'Widget').items).toHaveLength(1);
    const established = store.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, 'widgets.example.com');
    expect((established?.status as { conditions: Array<{ type: string }> }).conditions.map((c) => c.type)).toContain('Established');
    store.delete('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, 'widgets.example.com');
    expect(store.resourceType('example.com/v1', 'Widget')).toBeUndefined();
    store.create(crd);
    expect(store.list('example.com/v1', 'Widget').items).toEqual([]);
  });

  describe('snapshots', () => {
    let dir = '';
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('round-trips objects, the resourceVersion counter and CRD registrations', async () => {
      dir = await mkdtemp(join(tmpdir(), 'amesh-snap-'));
      const snapshotPath = join(dir, 'state', 'snapshot.json');
      const first = newStore({ snapshotPath });
      first.create(crd);
      first.create({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } });
      first.create(ns('demo'));
      const saved = first.create(cm('a', 'demo'));
      await first.saveSnapshot();
      const second = newStore({ snapshotPath });
      expect(second.currentResourceVersion()).toBe(first.currentResourceVersion());
      expect(second.get('v1', 'ConfigMap', 'demo', 'a')).toEqual(saved);
      expect(second.get('example.com/v1', 'Widget', 'default', 'w')).toBeDefined();
      const next = second.create(cm('b', 'demo'));
      expect(Number(next.metadata.resourceVersion)).toBe(Number(first.currentResourceVersion()) + 1);
      // History before the snapshot is gone: resuming from before it means re-listing.
      expect(apiError(() => second.watch('v1', 'ConfigMap', { resourceVersion: '1' }, () => undefined)).code).toBe(410);
    });
  });
});
