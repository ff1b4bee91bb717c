/**
 * The sandbox LoadBalancer controller against the real in-memory store (addresses assigned
 * through the status subresource, released on type change and deletion, unchanged by a
 * controller restart), and the host port relay on loopback: listeners opened through a
 * HostListen, connections relayed to the Service's LoadBalancer address, the annotation written
 * and removed, listeners closed when the Service goes.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { startControllers, type Controllers } from '../../src/sandbox/controllers/index.js';
import type { HostListen, HostListenResult } from '../../src/sandbox/network/host-listener.js';
import { HostPortRelay } from '../../src/sandbox/network/host-port-relay.js';
import { HOST_PORTS_ANNOTATION } from '../../src/sandbox/network/host-ports.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';

const WAIT = { timeoutMs: 10_000, intervalMs: 20 };

function lbService(name: string, extra: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { type: 'LoadBalancer', selector: { app: name }, ports: [{ name: 'http', port: 80 }], ...extra } };
}

const ipOf = (store: MemoryStore, name: string): string | undefined =>
  (store.get('v1', 'Service', 'demo', name)?.status as { loadBalancer?: { ingress?: Array<{ ip?: string }> } } | undefined)?.loadBalancer?.ingress?.[0]?.ip;

describe('LoadBalancer controller', () => {
  let store: MemoryStore | undefined;
  let controllers: Controllers | undefined;
  afterEach(async () => {
    await controllers?.stop();
    store?.close();
  });

  it('assigns pool addresses, honours loadBalancerIP, releases on type change and delete, and keeps addresses across a restart', async () => {
    store = createMemoryStore();
    const s = store;
    controllers = startControllers({ store: s, log: silentLogger });
    s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    s.create(lbService('a'));
    s.create(lbService('b'));
    s.create(lbService('c', { loadBalancerIP: '10.252.0.50' }));
    s.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'plain', namespace: 'demo' }, spec: { ports: [{ port: 80 }] } });
    await eventually(() => expect([ipOf(s, 'a'), ipOf(s, 'b'), ipOf(s, 'c')]).toEqual(['10.252.0.1', '10.252.0.2', '10.252.0.50']), { ...WAIT, description: 'addresses assigned' });
    expect(ipOf(s, 'plain')).toBeUndefined();

    s.patch('v1', 'Service', 'demo', 'a', 'merge', { spec: { type: 'ClusterIP' } });
    await eventually(() => expect(s.get('v1', 'Service', 'demo', 'a')?.status).toEqual({ loadBalancer: {} }), { ...WAIT, description: 'released on type change' });
    s.create(lbService('d'));
    await eventually(() => expect(ipOf(s, 'd')).toBe('10.252.0.1'), { ...WAIT, description: 'the freed address reused' });
    s.delete('v1', 'Service', 'demo', 'b');
    s.create(lbService('e'));
    await eventually(() => expect(ipOf(s, 'e')).toBe('10.252.0.2'), { ...WAIT, description: "a deleted Service's address reused" });

    // A restarted controller derives everything from the store: no status write at all.
    await controllers.idle();
    await controllers.stop();
    const version = s.currentResourceVersion();
    controllers = startControllers({ store: s, log: silentLogger });
    await controllers.idle();
    expect([ipOf(s, 'c'), ipOf(s, 'd'), ipOf(s, 'e')]).toEqual(['10.252.0.50', '10.252.0.1', '10.252.0.2']);
    expect(s.currentResourceVersion()).toBe(version);
  });
});

/** Opens listeners in this process on 127.0.0.1, the way the host helper does. */
const loopbackListen: HostListen = async (requests) => {
  const results: HostListenResult[] = [];
  for (const request of requests) {
    let result: HostListenResult = { error: 'no port' };
    for (const port of [...request.candidates, 0]) {
      const server = net.createServer();
      const ok = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen({ host: '127.0.0.1', port }, () => resolve(true));
      });
      if (ok) {
        result = { server, port: (server.address() as net.AddressInfo).port };
        break;
      }
    }
    results.push(result);
  }
  return results;
};

function request(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    // Half-close: the backend answers after our end, through the relay.
    socket.end(text);
  });
}

describe('host port relay', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('relays a host port to the LoadBalancer address, falls back to an ephemeral port, writes and removes the annotation', async () => {
    // The "LoadBalancer address" is 127.0.0.1 here; the backend holds the port the relay would prefer.
    const backend = net.createServer({ allowHalfOpen: true }, (socket) => {
      let body = '';
      socket.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      socket.on('end', () => socket.end(`echo:${body}`));
    });
    await new Promise<void>((resolve) => backend.listen({ host: '127.0.0.1', port: 0 }, resolve));
    cleanup.push(() => backend.close());
    const backendPort = (backend.address() as net.AddressInfo).port;
    const store = createMemoryStore();
    cleanup.push(() => store.close());
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    const svc = store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'gw', namespace: 'demo' }, spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: backendPort }] } });
    store.update({ ...svc, status: { loadBalancer: { ingress: [{ ip: '127.0.0.1' }] } } }, { subresource: 'status' });

    const relay = new HostPortRelay({ store, log: silentLogger, listen: loopbackListen, debounceMs: 1 });
    cleanup.push(() => relay.stop());
    await relay.start();
    const [entry] = relay.entries();
    expect(entry).toMatchObject({ service: 'demo/gw', port: backendPort, ip: '127.0.0.1' });
    const hostPort = entry?.hostPort ?? 0;
    expect(hostPort).not.toBe(backendPort);
    expect(store.get('v1', 'Service', 'demo', 'gw')?.metadata.annotations?.[HOST_PORTS_ANNOTATION]).toBe(`${backendPort}=${hostPort}`);
    expect(await request(hostPort, 'hello')).toBe('echo:hello');

    // No longer a LoadBalancer: the listener closes and the annotation goes.
    store.patch('v1', 'Service', 'demo', 'gw', 'merge', { spec: { type: 'ClusterIP' } });
    await eventually(() => expect(relay.entries()).toEqual([]), { ...WAIT, description: 'listener closed' });
    await eventually(() => expect(store.get('v1', 'Service', 'demo', 'gw')?.metadata.annotations?.[HOST_PORTS_ANNOTATION]).toBeUndefined(), { ...WAIT, description: 'annotation removed' });
    await expect(request(hostPort, 'x')).rejects.toThrow(/ECONNREFUSED/);
  });
});
