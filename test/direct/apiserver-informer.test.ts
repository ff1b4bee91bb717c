/**
 * A @kubernetes/client-node informer (ListWatch) against the embedded API server: it must see
 * every change, survive an API server restart, and recover from a 410 Expired by re-listing —
 * the contract every controller in the sandbox (and any user tool) relies on.
 */
import { CoreV1Api, KubeConfig, makeInformer, type Informer, type ObjectCache, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const NS = 'informer';
const cm = (name: string, value = '1') => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data: { value } });

describe('client-node informer against the API server', () => {
  let h: Harness;
  let informer: Informer<V1ConfigMap> & ObjectCache<V1ConfigMap>;
  let lists = 0;
  let stopped = false;
  const seen: string[] = [];

  beforeAll(async () => {
    // A small event log so a short outage is enough to make the informer's resourceVersion expire.
    h = await startHarness({ eventLogSize: 5 });
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    h.store.create(cm('before'));
    const kc = new KubeConfig();
    kc.loadFromFile(h.kubeconfig);
    const api = kc.makeApiClient(CoreV1Api);
    informer = makeInformer(kc, `/api/v1/namespaces/${NS}/configmaps`, () => {
      lists++;
      return api.listNamespacedConfigMap({ namespace: NS });
    });
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name ?? ''} ${o.data?.value ?? ''}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name ?? ''} ${o.data?.value ?? ''}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name ?? ''}`));
    // client-node stops on connection errors; restarting is the caller's job (as in its docs).
    informer.on('error', () => {
      if (stopped) return;
      setTimeout(() => {
        if (!stopped) informer.start().catch(() => undefined);
      }, 50);
    });
    await informer.start();
  });

  afterAll(async () => {
    stopped = true;
    await informer?.stop();
    await h?.close();
  });

  const cache = (): string[] =>
    informer
      .list(NS)
      .map((o) => `${o.metadata?.name ?? ''}=${o.data?.value ?? ''}`)
      .sort();
  const storeState = (): string[] =>
    h.store
      .list('v1', 'ConfigMap', { namespace: NS })
      .items.map((o) => `${o.metadata.name ?? ''}=${(o.data as { value: string }).value}`)
      .sort();

  it('sees the initial list and every add, update and delete', async () => {
    await eventually(() => expect(seen).toContain('add before 1'), { timeoutMs: 5000, description: 'initial list' });
    const a = h.store.create(cm('a'));
    h.store.update({ ...a, data: { value: '2' } });
    h.store.delete('v1', 'ConfigMap', NS, 'a');
    await eventually(() => expect(seen.slice(-3)).toEqual(['add a 1', 'update a 2', 'delete a']), { timeoutMs: 5000, description: 'watch events' });
  });

  it('survives an API server restart and resumes from its resourceVersion', async () => {
    const listsBefore = lists;
    await h.stopServer();
    h.store.create(cm('during-outage'));
    await h.restartServer();
    await eventually(() => expect(seen).toContain('add during-outage 1'), { timeoutMs: 10_000, description: 'the change made while the server was down' });
    h.store.create(cm('after-restart'));
    await eventually(() => expect(seen).toContain('add after-restart 1'), { timeoutMs: 10_000, description: 'a change after the restart' });
    // Resumed by watching from its resourceVersion: the event log still held the outage's change.
    expect(lists).toBe(listsBefore);
  });

  it('recovers from 410 Expired by re-listing without losing a change', async () => {
    const listsBefore = lists;
    await h.stopServer();
    // More writes than the event log holds: the informer's resourceVersion is now too old.
    for (let i = 0; i < 8; i++) h.store.create(cm(`bulk-${i}`));
    h.store.delete('v1', 'ConfigMap', NS, 'before');
    const outage = h.store.get('v1', 'ConfigMap', NS, 'during-outage') as KubeObject;
    h.store.update({ ...outage, data: { value: 'changed' } });
    await h.restartServer();
    await eventually(() => expect(cache()).toEqual(storeState()), { timeoutMs: 10_000, description: 'the informer cache to match the store' });
    expect(lists).toBeGreaterThan(listsBefore);
    expect(seen).toContain('delete before');
    expect(seen).toContain('update during-outage changed');
  });
});
