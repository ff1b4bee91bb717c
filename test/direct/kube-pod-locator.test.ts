/**
 * KubePodLocator (an informer over Pods) against the embedded API server. The CA trusts its
 * answers to let a node agent impersonate a workload, so what must hold is: only live pods bound
 * to a node count, every change reaches the index (add, bind, finish, terminate, delete), and
 * the cache stays right across an API server restart — including writes it missed while the
 * server was down and the watch had to fall back to a fresh list.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubePodLocator } from '../../src/controller/kube/pod-locator.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const NS = 'locator';
const HOLD = 'amesh.test/hold';
const WAIT = { timeoutMs: 10_000, intervalMs: 20 };

let h: Harness;
let kc: KubeConfig;
const locators: KubePodLocator[] = [];

beforeAll(async () => {
  // A short event log, so an outage with a handful of writes makes the watch's resourceVersion
  // expire (410) and the informer must re-list.
  h = await startHarness({ eventLogSize: 5 });
  h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  kc = new KubeConfig();
  kc.loadFromFile(h.kubeconfig);
});

afterAll(async () => {
  await Promise.all(locators.map((l) => l.stop()));
  await h?.close();
});

function makeLocator(): KubePodLocator {
  const locator = new KubePodLocator({ kubeConfig: kc, log: silentLogger });
  locators.push(locator);
  return locator;
}

function createPod(name: string, o: { node?: string; serviceAccount?: string; finalizers?: string[] } = {}): KubeObject {
  return h.store.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, ...(o.finalizers ? { finalizers: o.finalizers } : {}) },
    spec: { ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}), ...(o.node ? { nodeName: o.node } : {}), containers: [{ name: 'app', image: 'nginx' }] },
  });
}

function getPod(name: string): KubeObject {
  const pod = h.store.get('v1', 'Pod', NS, name);
  if (!pod) throw new Error(`no pod ${NS}/${name}`);
  return pod;
}

function setPhase(name: string, phase: string): void {
  const pod = getPod(name);
  h.store.update({ ...pod, status: { ...((pod.status as object | undefined) ?? {}), phase } }, { subresource: 'status' });
}

function deletePod(name: string): void {
  h.store.delete('v1', 'Pod', NS, name);
}

const until = (probe: () => void, description: string): Promise<void> => eventually(probe, { ...WAIT, description });

describe('KubePodLocator against the embedded API server', () => {
  let locator: KubePodLocator;

  beforeAll(async () => {
    createPod('early', { node: 'n1', serviceAccount: 's' });
    locator = makeLocator();
    expect(locator.synced()).toBe(false);
    expect(locator.hasPodOnNode('n1', NS, 's')).toBe(false);
    await locator.start();
  });

  it('is synced after the first list, which it has indexed', () => {
    expect(locator.synced()).toBe(true);
    expect(locator.hasPodOnNode('n1', NS, 's')).toBe(true);
    expect(locator.hasPodOnNode('n2', NS, 's')).toBe(false);
    expect(locator.hasPodOnNode('n1', NS, 'other')).toBe(false);
    expect(locator.hasPodOnNode('n1', 'default', 's')).toBe(false);
    expect(locator.pod(NS, 'early')).toEqual({ namespace: NS, name: 'early', uid: expect.any(String), serviceAccount: 's', nodeName: 'n1' });
    expect(locator.pod(NS, 'missing')).toBeUndefined();
  });

  it('picks up a pod created after start; its service account defaults to "default"', async () => {
    createPod('late', { node: 'n2' });
    await until(() => expect(locator.hasPodOnNode('n2', NS, 'default')).toBe(true), 'pod late on n2');
    expect(locator.pod(NS, 'late')).toEqual({ namespace: NS, name: 'late', uid: expect.any(String), serviceAccount: 'default', nodeName: 'n2' });
    expect(locator.hasPodOnNode('n1', NS, 'default')).toBe(false);
  });

  it('counts a pod only once it is bound to a node', async () => {
    createPod('pending', { serviceAccount: 'sched' });
    await until(() => expect(locator.pod(NS, 'pending')).toEqual({ namespace: NS, name: 'pending', uid: expect.any(String), serviceAccount: 'sched' }), 'unbound pod known');
    expect(locator.hasPodOnNode('n1', NS, 'sched')).toBe(false);
    // The sandbox scheduler binds with an update of spec.nodeName.
    const pod = getPod('pending');
    h.store.update({ ...pod, spec: { ...(pod.spec as object), nodeName: 'n1' } });
    await until(() => expect(locator.hasPodOnNode('n1', NS, 'sched')).toBe(true), 'pod bound to n1');
    expect(locator.pod(NS, 'pending')?.nodeName).toBe('n1');
  });

  it('keeps a node/service account while any of its pods lives, and drops it with the last one', async () => {
    createPod('twin-a', { node: 'n1', serviceAccount: 'twin' });
    createPod('twin-b', { node: 'n1', serviceAccount: 'twin' });
    await until(() => expect(locator.pod(NS, 'twin-b')).toBeDefined(), 'both twins known');
    deletePod('twin-a');
    await until(() => expect(locator.pod(NS, 'twin-a')).toBeUndefined(), 'twin-a gone');
    expect(locator.hasPodOnNode('n1', NS, 'twin')).toBe(true);
    deletePod('twin-b');
    await until(() => expect(locator.hasPodOnNode('n1', NS, 'twin')).toBe(false), 'no twin left on n1');
    expect(locator.pod(NS, 'twin-b')).toBeUndefined();
  });

  it.each(['Succeeded', 'Failed'])('drops a pod whose phase becomes %s', async (phase) => {
    const name = `done-${phase.toLowerCase()}`;
    createPod(name, { node: 'n1', serviceAccount: name });
    await until(() => expect(locator.hasPodOnNode('n1', NS, name)).toBe(true), `${name} on n1`);
    setPhase(name, 'Running');
    setPhase(name, phase);
    await until(() => expect(locator.hasPodOnNode('n1', NS, name)).toBe(false), `${name} dropped`);
    expect(locator.pod(NS, name)).toBeUndefined();
    // Still in the API server: it is the phase, not a deletion, that took it out.
    expect(getPod(name).status).toMatchObject({ phase });
  });

  it('drops a terminating pod (deletionTimestamp set, kept by a finalizer)', async () => {
    createPod('terminating', { node: 'n1', serviceAccount: 'term', finalizers: [HOLD] });
    await until(() => expect(locator.hasPodOnNode('n1', NS, 'term')).toBe(true), 'pod terminating on n1');
    deletePod('terminating');
    expect(getPod('terminating').metadata.deletionTimestamp).toBeDefined();
    await until(() => expect(locator.hasPodOnNode('n1', NS, 'term')).toBe(false), 'terminating pod dropped');
    expect(locator.pod(NS, 'terminating')).toBeUndefined();
    // Releasing the finalizer deletes it for good; nothing comes back.
    const pod = getPod('terminating');
    h.store.update({ ...pod, metadata: { ...pod.metadata, finalizers: [] } });
    expect(h.store.get('v1', 'Pod', NS, 'terminating')).toBeUndefined();
    createPod('after-terminating', { node: 'n1', serviceAccount: 'term-marker' });
    await until(() => expect(locator.hasPodOnNode('n1', NS, 'term-marker')).toBe(true), 'later event seen');
    expect(locator.hasPodOnNode('n1', NS, 'term')).toBe(false);
  });

  it('survives an API server restart: resumes the watch and sees what changed meanwhile', async () => {
    createPod('steady', { node: 'n3', serviceAccount: 'steady' });
    createPod('doomed', { node: 'n3', serviceAccount: 'doomed' });
    await until(() => expect(locator.hasPodOnNode('n3', NS, 'doomed')).toBe(true), 'pods on n3');

    await h.stopServer();
    // Fewer writes than the event log holds: the watch resumes from its resourceVersion.
    deletePod('doomed');
    createPod('born-offline', { node: 'n3', serviceAccount: 'offline' });
    // The cache is kept while the server is away: answers stay available.
    expect(locator.synced()).toBe(true);
    expect(locator.hasPodOnNode('n3', NS, 'steady')).toBe(true);
    await h.restartServer();

    await until(() => {
      expect(locator.hasPodOnNode('n3', NS, 'offline')).toBe(true);
      expect(locator.hasPodOnNode('n3', NS, 'doomed')).toBe(false);
    }, 'changes made during the outage');
    expect(locator.hasPodOnNode('n3', NS, 'steady')).toBe(true);
    expect(locator.synced()).toBe(true);
    createPod('after-restart', { node: 'n3', serviceAccount: 'after' });
    await until(() => expect(locator.hasPodOnNode('n3', NS, 'after')).toBe(true), 'watch live after restart');
  });

  it('survives an outage longer than the event log: re-lists, dropping pods deleted meanwhile', async () => {
    createPod('relist-gone', { node: 'n4', serviceAccount: 'gone' });
    createPod('relist-kept', { node: 'n4', serviceAccount: 'kept' });
    await until(() => expect(locator.hasPodOnNode('n4', NS, 'gone')).toBe(true), 'pods on n4');

    await h.stopServer();
    deletePod('relist-gone');
    // More writes than the event log (5) holds: the informer's resourceVersion expires (410).
    for (let i = 0; i < 8; i++) h.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `churn-${i}`, namespace: NS }, data: {} });
    createPod('relist-new', { node: 'n4', serviceAccount: 'new' });
    await h.restartServer();

    await until(() => {
      expect(locator.hasPodOnNode('n4', NS, 'new')).toBe(true);
      expect(locator.hasPodOnNode('n4', NS, 'gone')).toBe(false);
    }, 'the re-list after 410');
    expect(locator.pod(NS, 'relist-gone')).toBeUndefined();
    expect(locator.hasPodOnNode('n4', NS, 'kept')).toBe(true);
    expect(locator.synced()).toBe(true);
  });
});

describe('KubePodLocator start-up', () => {
  it('stays unsynced while the API server is down, syncs once it is back, and stops cleanly', async () => {
    const down = await startHarness();
    try {
      down.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'waiting', namespace: 'default' }, spec: { nodeName: 'n1', containers: [{ name: 'app', image: 'nginx' }] } });
      const config = new KubeConfig();
      config.loadFromFile(down.kubeconfig);
      await down.stopServer();
      const locator = new KubePodLocator({ kubeConfig: config, log: silentLogger });
      locators.push(locator);
      await locator.start();
      expect(locator.synced()).toBe(false);
      expect(locator.hasPodOnNode('n1', 'default', 'default')).toBe(false);
      await down.restartServer();
      // The first retry comes after 500 ms (then 1 s, 2 s …).
      await eventually(() => expect(locator.synced()).toBe(true), { ...WAIT, description: 'synced after the API server came back' });
      expect(locator.hasPodOnNode('n1', 'default', 'default')).toBe(true);

      // A stopped locator no longer follows the API server. A running one is the witness that the
      // event was delivered (no fixed sleep).
      const witness = new KubePodLocator({ kubeConfig: config, log: silentLogger });
      locators.push(witness);
      await witness.start();
      await locator.stop();
      down.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unseen', namespace: 'default' }, spec: { nodeName: 'n9', containers: [{ name: 'app', image: 'nginx' }] } });
      await eventually(() => expect(witness.hasPodOnNode('n9', 'default', 'default')).toBe(true), { ...WAIT, description: 'the witness sees the new pod' });
      expect(locator.hasPodOnNode('n9', 'default', 'default')).toBe(false);
      await witness.stop();
    } finally {
      await down.close();
    }
  });
});
