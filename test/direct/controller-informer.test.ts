/**
 * The controller's resilient informer (and the MeshIndex over it) against the sandbox API server:
 * it syncs, reports every add/update/delete once, restarts after the API server goes away, after
 * a failing list, treats a missing CRD as empty until it appears, and abandons a silent watch.
 * The status writers' requests (policy `/status` merge patch, pod annotation merge patch) are
 * checked against the same server.
 */
import { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Informer, listRaw, type InformerChange, type RawList, type ResourceKind } from '../../src/controller/kube/informer.js';
import { MeshIndex } from '../../src/controller/mesh/mesh-index.js';
import { PolicyStatusWriter } from '../../src/controller/status/policy-status.js';
import { PodRedirectionWriter, REDIRECTION_ANNOTATION } from '../../src/controller/status/redirection.js';
import type { AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../../src/controller/translate/enrolment.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const NS = 'informer';
const cm = (name: string, value = '1'): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data: { value } });
const CONFIG_MAPS: ResourceKind = { group: '', version: 'v1', plural: 'configmaps' };
const WIDGETS: ResourceKind = { group: 'example.com', version: 'v1', plural: 'widgets' };

type ConfigMap = KubeObject & { data?: { value?: string } };

/** A logger whose records the test can read. */
function capturingLogger() {
  const records: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), records };
}

describe('controller informer against the API server', () => {
  let h: Harness;
  let kc: KubeConfig;
  const started: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    h = await startHarness({ eventLogSize: 50 });
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    kc = new KubeConfig();
    kc.loadFromFile(h.kubeconfig);
  });

  afterEach(async () => {
    for (const s of started.splice(0)) await s.stop();
  });

  afterAll(async () => {
    await h?.close();
  });

  function informer<T extends KubeObject>(resource: ResourceKind, o: Partial<ConstructorParameters<typeof Informer<T>>[0]> = {}) {
    const { log, records } = capturingLogger();
    const inf = new Informer<T>({ kubeConfig: kc, resource, log, backoffInitialMs: 20, backoffMaxMs: 200, ...o });
    const changes: string[] = [];
    inf.onChange((c: InformerChange<T>) => changes.push(`${c.type} ${c.object.metadata.name ?? ''}${c.type === 'delete' ? '' : ` ${(c.object as ConfigMap).data?.value ?? ''}`}`));
    started.push(inf);
    return { inf, changes, records };
  }

  const cacheState = (inf: Informer<ConfigMap>): string[] =>
    inf
      .list()
      .filter((o) => o.metadata.namespace === NS)
      .map((o) => `${o.metadata.name ?? ''}=${o.data?.value ?? ''}`)
      .sort();
  const storeState = (): string[] =>
    h.store
      .list<ConfigMap>('v1', 'ConfigMap', { namespace: NS })
      .items.map((o) => `${o.metadata.name ?? ''}=${o.data?.value ?? ''}`)
      .sort();

  it('syncs, then reports each add, update and delete once', async () => {
    h.store.create(cm('before'));
    const { inf, changes } = informer<ConfigMap>(CONFIG_MAPS);
    await inf.start();
    await inf.whenSynced();
    expect(inf.synced()).toBe(true);
    expect(inf.get(`${NS}/before`)?.data?.value).toBe('1');
    expect(changes).toContain('add before 1');
    const a = h.store.create(cm('a'));
    h.store.update({ ...a, data: { value: '2' } });
    h.store.delete('v1', 'ConfigMap', NS, 'a');
    await eventually(() => expect(changes.slice(-3)).toEqual(['add a 1', 'update a 2', 'delete a']), { timeoutMs: 5000, description: 'watch events' });
    expect(changes.filter((c) => c.endsWith(' a 1') || c === 'delete a')).toHaveLength(2);
    expect(cacheState(inf)).toEqual(storeState());
  });

  it('restarts after the API server goes away and catches up, deletions included', async () => {
    h.store.create(cm('doomed'));
    const { inf, changes, records } = informer<ConfigMap>(CONFIG_MAPS);
    await inf.start();
    await inf.whenSynced();
    await h.stopServer();
    // The watch broke; while the server is down every restart attempt fails (and is logged).
    await eventually(() => expect(inf.stats().restarts).toBeGreaterThanOrEqual(2), { timeoutMs: 5000, description: 'failed restarts while the server is down' });
    h.store.create(cm('during-outage'));
    h.store.delete('v1', 'ConfigMap', NS, 'doomed');
    await h.restartServer();
    await eventually(() => expect(cacheState(inf)).toEqual(storeState()), { timeoutMs: 10_000, description: 'the cache to match the store after the restart' });
    expect(changes).toContain('add during-outage 1');
    expect(changes).toContain('delete doomed');
    const failure = records.find((r) => r.msg === 'informer failed; restarting');
    expect(failure).toMatchObject({ resource: 'configmaps/v1', retryInMs: expect.any(Number), reason: expect.any(String) });
    // Backoff is capped.
    expect(Math.max(...records.filter((r) => r.msg === 'informer failed; restarting').map((r) => r.retryInMs as number))).toBeLessThanOrEqual(200);
  });

  it('re-lists after 410 Gone (more writes than the event log holds while it was away), says so in its log, and loses no change', async () => {
    h.store.create(cm('gone-before'));
    const { inf, changes, records } = informer<ConfigMap>(CONFIG_MAPS);
    await inf.start();
    await inf.whenSynced();
    const listsBefore = inf.stats().lists;
    await h.stopServer();
    // The event log holds 50 writes: 60 more make the informer's resourceVersion too old.
    for (let i = 0; i < 60; i++) h.store.create(cm(`gone-bulk-${i}`));
    h.store.delete('v1', 'ConfigMap', NS, 'gone-before');
    await h.restartServer();
    await eventually(() => expect(cacheState(inf)).toEqual(storeState()), { timeoutMs: 10_000, description: 'the cache to match the store after the 410' });
    expect(inf.stats().expired).toBeGreaterThanOrEqual(1);
    expect(inf.stats().lists).toBeGreaterThan(listsBefore);
    expect(changes).toContain('delete gone-before');
    expect(records.find((r) => String(r.msg).startsWith('watch expired (410 Gone'))).toMatchObject({ resource: 'configmaps/v1', reason: expect.stringContaining('too old resource version') });
  });

  it('retries a failing list with backoff until it succeeds', async () => {
    let calls = 0;
    const list = async (): Promise<RawList<ConfigMap>> => {
      calls++;
      if (calls <= 3) throw Object.assign(new Error('injected list failure'), { statusCode: 500 });
      return listRaw<ConfigMap>(kc, CONFIG_MAPS);
    };
    const { inf, records } = informer<ConfigMap>(CONFIG_MAPS, { list });
    await inf.start();
    expect(inf.synced()).toBe(false);
    await inf.whenSynced();
    expect(calls).toBe(4);
    expect(inf.stats().restarts).toBe(3);
    expect(records.filter((r) => r.msg === 'informer failed; restarting').map((r) => r.retryInMs)).toEqual([20, 40, 80]);
    expect(cacheState(inf)).toEqual(storeState());
  });

  it('treats a resource whose CRD is missing as empty, logs it once, and picks it up once installed', async () => {
    const { inf, records, changes } = informer<KubeObject>(WIDGETS, { missingRetryMs: 50 });
    await inf.start();
    expect(inf.synced()).toBe(true);
    expect(inf.list()).toEqual([]);
    await eventually(() => expect(inf.stats().lists).toBeGreaterThanOrEqual(3), { timeoutMs: 5000, description: 'slow retries' });
    expect(records.filter((r) => r.msg.startsWith('resource not served'))).toHaveLength(1);
    expect(records.find((r) => r.msg.startsWith('resource not served'))?.msg).toContain('hint');
    h.store.create({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com' },
      spec: { group: 'example.com', scope: 'Namespaced', names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' }, versions: [{ name: 'v1', served: true, storage: true }] },
    });
    h.store.create({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1', namespace: NS }, spec: {} });
    await eventually(() => expect(changes).toContain('add w1 '), { timeoutMs: 5000, description: 'the widget after its CRD was installed' });
    expect(inf.get(`${NS}/w1`)).toBeDefined();
  });

  it('abandons a watch that delivers nothing (no events, no bookmarks) and re-lists', async () => {
    // The harness sends bookmarks once a minute: a 200 ms window sees the watch as stalled.
    const { inf, records, changes } = informer<ConfigMap>(CONFIG_MAPS, { stallWindowMs: 200 });
    await inf.start();
    await inf.whenSynced();
    const listsBefore = inf.stats().lists;
    await eventually(() => expect(inf.stats().stalls).toBeGreaterThanOrEqual(1), { timeoutMs: 5000, description: 'the stall detector' });
    await eventually(() => expect(inf.stats().lists).toBeGreaterThan(listsBefore), { timeoutMs: 5000, description: 'a re-list after the stall' });
    expect(records.find((r) => String(r.msg).startsWith('watch delivered nothing'))).toMatchObject({ resource: 'configmaps/v1', stallWindowMs: 200 });
    // Still watching after the restart, and a re-list alone reports nothing new.
    const before = changes.length;
    h.store.create(cm('after-stall'));
    await eventually(() => expect(changes.slice(before)).toEqual(['add after-stall 1']), { timeoutMs: 5000, description: 'an event after the stall restart' });
  });

  it('a re-list reports objects that vanished while not watched as deleted', async () => {
    h.store.create(cm('vanishing'));
    const hidden = new Set<string>();
    const list = async (): Promise<RawList<ConfigMap>> => {
      const all = await listRaw<ConfigMap>(kc, CONFIG_MAPS);
      return { ...all, items: all.items.filter((o) => !hidden.has(o.metadata.name ?? '')) };
    };
    const { inf, changes } = informer<ConfigMap>(CONFIG_MAPS, { list, stallWindowMs: 200 });
    await inf.start();
    await inf.whenSynced();
    expect(inf.get(`${NS}/vanishing`)).toBeDefined();
    hidden.add('vanishing'); // the next list misses it, as if it was deleted unseen
    await eventually(() => expect(changes).toContain('delete vanishing'), { timeoutMs: 5000, description: 'the delete found by the re-list' });
    expect(inf.get(`${NS}/vanishing`)).toBeUndefined();
    expect(changes.filter((c) => c.startsWith('add ') && !c.startsWith('add vanishing'))).toHaveLength(inf.list().length);
  });

  describe('with frequent bookmarks', () => {
    let hb: Harness;
    let kcb: KubeConfig;
    beforeAll(async () => {
      hb = await startHarness({ bookmarkIntervalMs: 40 });
      kcb = new KubeConfig();
      kcb.loadFromFile(hb.kubeconfig);
    });
    afterAll(async () => {
      await hb?.close();
    });

    it('keeps a quiet watch that receives bookmarks', async () => {
      const inf = new Informer<ConfigMap>({ kubeConfig: kcb, resource: CONFIG_MAPS, log: capturingLogger().log, stallWindowMs: 300 });
      started.push(inf);
      await inf.start();
      await inf.whenSynced();
      // Ten bookmarks span more than the stall window several times over.
      await eventually(() => expect(inf.stats().watchEvents).toBeGreaterThanOrEqual(10), { timeoutMs: 5000, description: 'bookmarks' });
      expect(inf.stats().stalls).toBe(0);
      expect(inf.stats().lists).toBe(1);
    });
  });
});

describe('MeshIndex against the API server', () => {
  let h: Harness;
  let mesh: MeshIndex;

  beforeAll(async () => {
    h = await startHarness();
    const kc = new KubeConfig();
    kc.loadFromFile(h.kubeconfig);
    mesh = new MeshIndex({ kubeConfig: kc, log: pino({ level: 'silent' }), trustDomain: 'cluster.local', informer: { backoffInitialMs: 20, backoffMaxMs: 200 } });
  });

  afterAll(async () => {
    await mesh?.stop();
    await h?.close();
  });

  it('serves workloads, services and authorizations from the watched objects and reports changes', async () => {
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient' } } });
    const created = h.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'demo', labels: { app: 'web' } },
      spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 8080 }] }] },
    });
    h.store.update({ ...created, status: { phase: 'Running', podIP: '10.244.0.5', conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
    h.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'demo' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] } });
    let changes = 0;
    mesh.onChange(() => changes++);
    await mesh.start();
    await mesh.whenSynced();
    expect(mesh.synced()).toBe(true);
    const first = mesh.resources();
    expect(mesh.resources()).toBe(first); // cached until the next change
    const web = [...first.workloads.values()].find((w) => w.name === 'web');
    expect(web).toMatchObject({ tunnelProtocol: 'HBONE', status: 'HEALTHY', addresses: ['10.244.0.5'], services: { 'demo/web.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } } });
    expect(first.services.has('demo/web.demo.svc.cluster.local')).toBe(true);

    const before = changes;
    h.store.create({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'demo' }, spec: { mtls: { mode: 'STRICT' } } });
    await eventually(() => expect(mesh.resources().authorizations.has('demo/istio_converted_peer_authentication_strict')).toBe(true), { timeoutMs: 5000, description: 'the PeerAuthentication to take effect' });
    expect(changes).toBeGreaterThan(before);
    expect(mesh.resources()).not.toBe(first);
    expect([...mesh.resources().workloads.values()][0]?.authorizationPolicies).toEqual(['demo/istio_converted_peer_authentication_strict']);
  });
});

describe('status writers against the API server', () => {
  let h: Harness;
  let kc: KubeConfig;

  beforeAll(async () => {
    h = await startHarness();
    kc = new KubeConfig();
    kc.loadFromFile(h.kubeconfig);
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient' } } });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('writes policy conditions through the status subresource, keeping the spec', async () => {
    const policy = h.store.create({
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'l7', namespace: 'demo' },
      spec: { selector: { matchLabels: { app: 'web' } }, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
    });
    const writer = new PolicyStatusWriter({ kubeConfig: kc, log: pino({ level: 'silent' }) });
    writer.reconcile({ authorizationPolicies: [policy as AuthorizationPolicyObject] });
    await writer.idle();
    const stored = h.store.get('security.istio.io/v1', 'AuthorizationPolicy', 'demo', 'l7') as KubeObject & { status?: { conditions?: Array<{ type: string; status: string; message: string; observedGeneration?: number }> } };
    expect(stored.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual(['Accepted=True', 'Warning=True']);
    expect(stored.status?.conditions?.[1]?.message).toContain('spec.rules[0].to[0].operation.methods');
    expect(stored.status?.conditions?.[0]?.observedGeneration).toBe(stored.metadata.generation);
    expect(stored.spec).toEqual(policy.spec);
  });

  it('merge-patches the redirection annotation on a pod', async () => {
    h.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'demo', uid: 'ignored', annotations: { keep: 'me' } }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    const pod = h.store.get('v1', 'Pod', 'demo', 'web') as PodObject & KubeObject;
    const writer = new PodRedirectionWriter({ kubeConfig: kc, capturedByAgent: () => false, log: pino({ level: 'silent' }) });
    writer.reconcile([pod], (name) => h.store.get('v1', 'Namespace', undefined, name) as NamespaceObject | undefined);
    await writer.idle();
    expect((h.store.get('v1', 'Pod', 'demo', 'web') as KubeObject).metadata.annotations).toEqual({ keep: 'me', [REDIRECTION_ANNOTATION]: 'pending' });
  });
});
