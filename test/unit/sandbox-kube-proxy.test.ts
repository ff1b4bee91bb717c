import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ClusterStore, KubeList, KubeObject, WatchEvent } from '../../src/sandbox/apiserver/types.js';
import { planClusterNetwork } from '../../src/sandbox/network/cluster-network.js';
import { KubeProxy } from '../../src/sandbox/network/kube-proxy.js';
import { silentLogger } from '../../src/telemetry/logger.js';

/** Just enough of ClusterStore for kube-proxy: list + watch, events delivered asynchronously. */
function fakeStore(): ClusterStore & { put(o: KubeObject): void } {
  const objects = new Map<string, KubeObject>();
  const watchers = new Set<{ kind: string; fn: (e: WatchEvent) => void }>();
  const key = (o: KubeObject): string => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
  return {
    put(o: KubeObject) {
      const type = objects.has(key(o)) ? 'MODIFIED' : 'ADDED';
      objects.set(key(o), o);
      for (const w of watchers) if (w.kind === o.kind) queueMicrotask(() => w.fn({ type, object: o }));
    },
    list<T extends KubeObject>(apiVersion: string, kind: string): KubeList<T> {
      return { apiVersion, kind: `${kind}List`, metadata: { resourceVersion: '1' }, items: [...objects.values()].filter((o) => o.kind === kind) as T[] };
    },
    watch(_apiVersion: string, kind: string, _options: unknown, fn: (e: WatchEvent) => void) {
      const entry = { kind, fn: fn as (e: WatchEvent) => void };
      watchers.add(entry);
      return () => watchers.delete(entry);
    },
    currentResourceVersion: () => '1',
    resourceType: () => undefined,
    get: () => undefined,
    create: () => {
      throw new Error('not in fake');
    },
    update: () => {
      throw new Error('not in fake');
    },
    patch: () => {
      throw new Error('not in fake');
    },
    delete: () => {
      throw new Error('not in fake');
    },
  } as ClusterStore & { put(o: KubeObject): void };
}

const plan = planClusterNetwork({ prefix: 'ams', nodes: ['sandbox-node1', 'sandbox-node2'] });
const web: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'demo' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80 }] } };
const webSlice: KubeObject = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'web-1', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['10.244.1.2'], conditions: { ready: true } }],
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
};

describe('KubeProxy', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('programs every node and the fabric on start, then follows the store', async () => {
    const store = fakeStore();
    const applied: Array<[string, string]> = [];
    const proxy = new KubeProxy({ store, network: { plan }, log: silentLogger, apply: async (ns, text) => void applied.push([ns, text]) });
    await proxy.start();
    expect(applied.map(([ns]) => ns)).toEqual(['/run/netns/ams-node1', '/run/netns/ams-node2', '/run/netns/ams-net']);
    expect(applied[0]?.[1]).toContain('dnat to 10.250.0.254:6443');
    expect(applied[0]?.[1]).not.toContain('10.96.0.20');

    vi.useFakeTimers();
    applied.length = 0;
    store.put(web);
    store.put(webSlice);
    await vi.advanceTimersByTimeAsync(25);
    // One debounced sync for the burst, one apply per namespace.
    expect(applied).toHaveLength(3);
    expect(applied[0]?.[1]).toContain('dnat to 10.244.1.2:8080');

    applied.length = 0;
    await proxy.syncNow();
    expect(applied).toHaveLength(0); // unchanged text is not re-applied

    await proxy.stop();
    expect(applied.map(([, text]) => text)).toEqual(Array(3).fill('table ip amesh-kube-proxy\ndelete table ip amesh-kube-proxy\n'));
    applied.length = 0;
    store.put({ ...web, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 81 }] } });
    await vi.advanceTimersByTimeAsync(100);
    expect(applied).toHaveLength(0); // stopped: no more watching
  });

  it('retries a namespace whose apply failed', async () => {
    vi.useFakeTimers();
    const store = fakeStore();
    let failures = 1;
    const applied: string[] = [];
    const proxy = new KubeProxy({
      store,
      network: { plan },
      log: silentLogger,
      apply: async (ns) => {
        if (ns.endsWith('ams-node2') && failures-- > 0) throw new Error('nft: boom');
        applied.push(ns);
      },
    });
    await proxy.start();
    expect(applied).toEqual(['/run/netns/ams-node1', '/run/netns/ams-net']);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(applied).toEqual(['/run/netns/ams-node1', '/run/netns/ams-net', '/run/netns/ams-node2']);
    await proxy.stop();
  });
});
