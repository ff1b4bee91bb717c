/**
 * The trust bundle publisher against the embedded API server: every namespace holds
 * `istio-ca-root-cert` with the current roots, new namespaces get it, edits and deletions are
 * reconciled back, and a root rotation reaches every namespace.
 */
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootStore } from '../../src/controller/ca/root-store.js';
import { ISTIO_CONFIG_LABEL, TRUST_BUNDLE_CONFIGMAP, TRUST_BUNDLE_KEY, TrustBundlePublisher, bundleText, isTerminating } from '../../src/controller/ca/trust-bundle-publisher.js';
import { INITIAL_NAMESPACES } from '../../src/sandbox/apiserver/memory-store.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const CONTROLLER_NS = 'amesh-system';
let h: Harness;
let kc: KubeConfig;
let roots: RootStore;
let publisher: TrustBundlePublisher;

const configMap = (namespace: string): V1ConfigMap | undefined => h.store.get('v1', 'ConfigMap', namespace, TRUST_BUNDLE_CONFIGMAP) as V1ConfigMap | undefined;
const published = (namespace: string): string | undefined => configMap(namespace)?.data?.[TRUST_BUNDLE_KEY];
const expected = (): string => bundleText(roots.current().trustBundlePem);
const allNamespaces = (): string[] => h.store.list('v1', 'Namespace').items.map((n) => n.metadata.name as string);

beforeAll(async () => {
  h = await startHarness();
  h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: CONTROLLER_NS } });
  h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
  // A stale copy from an earlier install: reconciled on start.
  h.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: TRUST_BUNDLE_CONFIGMAP, namespace: 'demo', labels: { team: 'a' } }, data: { [TRUST_BUNDLE_KEY]: 'stale' } });
  kc = new KubeConfig();
  kc.loadFromFile(h.kubeconfig);
  roots = new RootStore({ core: kc.makeApiClient(CoreV1Api), namespace: CONTROLLER_NS, trustDomain: 'cluster.local', pollIntervalMs: 0 });
  await roots.start();
  publisher = new TrustBundlePublisher({ kubeConfig: kc, bundle: () => roots.current().trustBundlePem, retryMs: 50 });
  roots.onChange(() => publisher.bundleChanged());
  await publisher.start();
});

afterAll(async () => {
  await publisher?.stop();
  await roots?.stop();
  await h?.close();
});

describe('TrustBundlePublisher', () => {
  it('has published to every namespace when start() resolves', () => {
    expect(publisher.synced()).toBe(true);
    const namespaces = allNamespaces();
    expect(namespaces).toEqual(expect.arrayContaining([...INITIAL_NAMESPACES, CONTROLLER_NS, 'demo']));
    for (const ns of namespaces) {
      expect(published(ns), ns).toBe(expected());
      expect(configMap(ns)?.metadata?.labels?.[ISTIO_CONFIG_LABEL], ns).toBe('true');
    }
    expect(expected()).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    // The stale copy was replaced, its other labels kept.
    expect(configMap('demo')?.metadata?.labels?.team).toBe('a');
  });

  it('publishes to a namespace created later', async () => {
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late' } });
    await eventually(() => expect(published('late')).toBe(expected()), { timeoutMs: 5000, description: 'the ConfigMap in a new namespace' });
  });

  it('restores a deleted ConfigMap', async () => {
    h.store.delete('v1', 'ConfigMap', 'demo', TRUST_BUNDLE_CONFIGMAP);
    await eventually(() => expect(published('demo')).toBe(expected()), { timeoutMs: 5000, description: 'the ConfigMap recreated' });
  });

  it('restores an edited ConfigMap (data and label)', async () => {
    const cm = h.store.get('v1', 'ConfigMap', 'default', TRUST_BUNDLE_CONFIGMAP);
    if (!cm) throw new Error('no ConfigMap in default');
    h.store.update({ ...cm, metadata: { ...cm.metadata, labels: {} }, data: { [TRUST_BUNDLE_KEY]: 'tampered', extra: 'x' } });
    await eventually(
      () => {
        expect(published('default')).toBe(expected());
        expect(configMap('default')?.metadata?.labels?.[ISTIO_CONFIG_LABEL]).toBe('true');
        expect(configMap('default')?.data).toEqual({ [TRUST_BUNDLE_KEY]: expected() });
      },
      { timeoutMs: 5000, description: 'the ConfigMap restored' },
    );
  });

  it('propagates a root rotation to every namespace (both roots during the overlap)', async () => {
    const before = publisher.writes();
    const rotation = await roots.rotateRoot({ overlapSeconds: 3600 });
    const text = bundleText([rotation.newRootPem, rotation.previousRootPem]);
    expect(expected()).toBe(text);
    await eventually(
      () => {
        for (const ns of allNamespaces()) expect(published(ns), ns).toBe(text);
      },
      { timeoutMs: 10_000, description: 'the rotated bundle everywhere' },
    );
    expect(publisher.writes() - before).toBe(allNamespaces().length);
  });

  it('does not write when nothing changed', async () => {
    const before = publisher.writes();
    publisher.bundleChanged();
    await publisher.idle();
    expect(publisher.writes()).toBe(before);
  });

  it('skips namespaces being deleted', () => {
    expect(isTerminating({ metadata: { name: 'x', deletionTimestamp: new Date() } })).toBe(true);
    expect(isTerminating({ metadata: { name: 'x' }, status: { phase: 'Terminating' } })).toBe(true);
    expect(isTerminating({ metadata: { name: 'x' }, status: { phase: 'Active' } })).toBe(false);
  });
});
