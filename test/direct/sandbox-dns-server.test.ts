import { once } from 'node:events';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterStore, KubeList, KubeObject, WatchEvent } from '../../src/sandbox/apiserver/types.js';
import { startClusterDns, type ClusterDnsServer } from '../../src/sandbox/dns/cluster-dns-server.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';

/** Just enough of ClusterStore for the DNS server: list + watch, events delivered asynchronously. */
function fakeStore(): ClusterStore & { put(o: KubeObject): void } {
  const objects = new Map<string, KubeObject>();
  const watchers = new Set<{ kind: string; fn: (e: WatchEvent) => void }>();
  const key = (o: KubeObject): string => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
  return {
    put(o: KubeObject) {
      objects.set(key(o), o);
      for (const w of watchers) if (w.kind === o.kind) queueMicrotask(() => w.fn({ type: 'ADDED', object: o }));
    },
    list<T extends KubeObject>(apiVersion: string, kind: string): KubeList<T> {
      return { apiVersion, kind: `${kind}List`, metadata: { resourceVersion: '1' }, items: [...objects.values()].filter((o) => o.kind === kind) as T[] };
    },
    watch(_apiVersion: string, kind: string, _options: unknown, fn: (e: WatchEvent) => void) {
      const entry = { kind, fn: fn as (e: WatchEvent) => void };
      watchers.add(entry);
      return () => watchers.delete(entry);
    },
  } as unknown as ClusterStore & { put(o: KubeObject): void };
}

const service = (name: string, spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec });
const slice = (name: string, ips: string[]): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${name}-1`, namespace: 'demo', labels: { 'kubernetes.io/service-name': name } },
  addressType: 'IPv4',
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
});

describe('cluster DNS server', () => {
  const store = fakeStore();
  let dns: ClusterDnsServer;
  let resolver: Resolver;

  beforeAll(async () => {
    store.put(service('backend', { clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }));
    store.put(service('big', { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] }));
    store.put(slice('big', Array.from({ length: 80 }, (_, i) => `10.244.1.${i + 2}`)));
    dns = await startClusterDns({ store, address: '127.0.0.1', port: 0, log: silentLogger });
    resolver = new Resolver({ timeout: 2_000, tries: 1 });
    resolver.setServers([`127.0.0.1:${dns.port}`]);
  });

  afterAll(async () => {
    await dns?.close();
  });

  it('answers A and SRV queries for services', async () => {
    expect(await resolver.resolve4('backend.demo.svc.cluster.local')).toEqual(['10.96.0.50']);
    expect(await resolver.resolve4('KUBERNETES.default.svc.cluster.local')).toEqual(['10.96.0.1']);
    // Node 24's resolver adds `type: 'SRV'` to each record; the record's own fields are compared.
    const srv = (await resolver.resolveSrv('_http._tcp.backend.demo.svc.cluster.local')).map(({ name, port, priority, weight }) => ({ name, port, priority, weight }));
    expect(srv).toEqual([{ name: 'backend.demo.svc.cluster.local', port: 80, priority: 0, weight: 100 }]);
  });

  it('NXDOMAIN for unknown names inside and outside the cluster, no data for AAAA', async () => {
    await expect(resolver.resolve4('missing.demo.svc.cluster.local')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolver.resolve4('example.com')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolver.resolve6('backend.demo.svc.cluster.local')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('a large answer is truncated over UDP and the resolver completes it over TCP', async () => {
    const addresses = await resolver.resolve4('big.demo.svc.cluster.local');
    expect(addresses).toHaveLength(80);

    const udp = dgram.createSocket('udp4');
    try {
      udp.send(dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'big.demo.svc.cluster.local' }] }), dns.port, '127.0.0.1');
      const [message] = (await once(udp, 'message')) as [Buffer];
      const reply = dnsPacket.decode(message);
      expect(reply.flag_tc).toBe(true);
      expect(message.length).toBeLessThanOrEqual(512);
    } finally {
      udp.close();
    }
  });

  it('serves several length-prefixed queries on one TCP connection, split across writes', async () => {
    const socket = net.connect(dns.port, '127.0.0.1');
    await once(socket, 'connect');
    try {
      const frame = (id: number, name: string): Buffer => {
        const body = dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name }] });
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(body.length);
        return Buffer.concat([prefix, body]);
      };
      const both = Buffer.concat([frame(1, 'backend.demo.svc.cluster.local'), frame(2, 'nope.demo.svc.cluster.local')]);
      socket.write(both.subarray(0, 5));
      socket.write(both.subarray(5));
      let received = Buffer.alloc(0);
      const replies: dnsPacket.DecodedPacket[] = [];
      for (let i = 0; i < 10 && replies.length < 2; i++) {
        const [chunk] = (await once(socket, 'data')) as [Buffer];
        received = Buffer.concat([received, chunk]);
        while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
          replies.push(dnsPacket.decode(received.subarray(2, 2 + received.readUInt16BE(0))));
          received = received.subarray(2 + received.readUInt16BE(0));
        }
      }
      expect(replies.map((r) => [r.id, (r as unknown as { rcode: string }).rcode, r.answers?.length])).toEqual([
        [1, 'NOERROR', 1],
        [2, 'NXDOMAIN', 0],
      ]);
    } finally {
      socket.destroy();
    }
  });

  it('survives garbage and keeps answering', async () => {
    const udp = dgram.createSocket('udp4');
    try {
      udp.send(Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0xff]), dns.port, '127.0.0.1');
      const [message] = (await once(udp, 'message')) as [Buffer];
      expect(message.readUInt16BE(0)).toBe(0xabcd);
      expect(message.readUInt16BE(2) & 0xf).toBe(1); // FORMERR
      udp.send(Buffer.from([1, 2, 3]), dns.port, '127.0.0.1');
    } finally {
      udp.close();
    }
    const tcp = net.connect(dns.port, '127.0.0.1');
    await once(tcp, 'connect');
    tcp.end(Buffer.from([0x00, 0x05, 1, 2, 3, 4, 5]));
    await once(tcp, 'close');
    expect(await resolver.resolve4('backend.demo.svc.cluster.local')).toEqual(['10.96.0.50']);
  });

  it('follows Service changes from the store', async () => {
    store.put(service('late', { clusterIP: '10.96.0.77', ports: [{ name: 'http', port: 80 }] }));
    await eventually(async () => expect(await resolver.resolve4('late.demo.svc.cluster.local')).toEqual(['10.96.0.77']), { timeoutMs: 5_000 });
  });

  it('reports a port already taken with AMESH_PORT_IN_USE', async () => {
    await expect(startClusterDns({ store, address: '127.0.0.1', port: dns.port, log: silentLogger })).rejects.toMatchObject({ code: 'AMESH_PORT_IN_USE' });
  });
});
