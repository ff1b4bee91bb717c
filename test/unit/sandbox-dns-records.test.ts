import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { buildDnsView, resolveName } from '../../src/sandbox/dns/cluster-dns-records.js';
import { answerQuery } from '../../src/sandbox/dns/cluster-dns-server.js';

const svc = (name: string, namespace: string, spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec });
const slice = (service: string, namespace: string, endpoints: unknown[]): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${service}-x`, namespace, labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  endpoints,
  ports: [],
});

const view = buildDnsView(
  [
    svc('backend', 'demo', { clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }, { port: 9 }] }),
    svc('db', 'demo', { clusterIP: 'None', ports: [{ name: 'pg', port: 5432 }] }),
    svc('ext', 'demo', { type: 'ExternalName', externalName: 'example.com.' }),
    svc('kubernetes', 'default', { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443 }] }),
  ],
  [
    slice('db', 'demo', [
      { addresses: ['10.244.2.7'], hostname: 'db-1', conditions: { ready: true } },
      { addresses: ['10.244.1.6'], hostname: 'db-0' },
      { addresses: ['10.244.1.9'], conditions: { ready: false } },
      { addresses: ['10.244.2.8'] },
    ]),
  ],
);

const summary = (name: string, qtype: string): string => {
  const r = resolveName(name, qtype, view);
  const data = r.answers.map((a) => {
    const d = (a as { data: unknown }).data;
    return `${a.type} ${typeof d === 'string' ? d : JSON.stringify(d)}`;
  });
  return [r.rcode, ...data].join(' | ');
};

describe('resolveName', () => {
  it.each([
    ['backend.demo.svc.cluster.local', 'A', 'NOERROR | A 10.96.0.50'],
    ['BackEnd.Demo.SVC.cluster.local.', 'A', 'NOERROR | A 10.96.0.50'],
    ['kubernetes.default.svc.cluster.local', 'A', 'NOERROR | A 10.96.0.1'],
    ['backend.demo.svc.cluster.local', 'AAAA', 'NOERROR'],
    ['backend.demo.svc.cluster.local', 'TXT', 'NOERROR'],
    ['missing.demo.svc.cluster.local', 'A', 'NXDOMAIN'],
    ['backend.other.svc.cluster.local', 'A', 'NXDOMAIN'],
    ['backend.demo.svc.cluster.local.demo.svc.cluster.local', 'A', 'NXDOMAIN'],
    ['db.demo.svc.cluster.local', 'A', 'NOERROR | A 10.244.1.6 | A 10.244.2.7 | A 10.244.2.8'],
    ['db-0.db.demo.svc.cluster.local', 'A', 'NOERROR | A 10.244.1.6'],
    ['10-244-2-8.db.demo.svc.cluster.local', 'A', 'NOERROR | A 10.244.2.8'],
    ['10-244-1-9.db.demo.svc.cluster.local', 'A', 'NXDOMAIN'],
    ['db-0.backend.demo.svc.cluster.local', 'A', 'NXDOMAIN'],
    ['_http._tcp.backend.demo.svc.cluster.local', 'SRV', 'NOERROR | SRV {"priority":0,"weight":100,"port":80,"target":"backend.demo.svc.cluster.local"}'],
    ['_dns._udp.backend.demo.svc.cluster.local', 'SRV', 'NOERROR | SRV {"priority":0,"weight":100,"port":53,"target":"backend.demo.svc.cluster.local"}'],
    ['_http._udp.backend.demo.svc.cluster.local', 'SRV', 'NXDOMAIN'],
    ['_http._tcp.backend.demo.svc.cluster.local', 'A', 'NOERROR'],
    ['10-244-1-2.demo.pod.cluster.local', 'A', 'NOERROR | A 10.244.1.2'],
    ['10-244-1.demo.pod.cluster.local', 'A', 'NXDOMAIN'],
    ['ext.demo.svc.cluster.local', 'A', 'NOERROR | CNAME example.com'],
    ['demo.svc.cluster.local', 'A', 'NOERROR'],
    ['nope.svc.cluster.local', 'A', 'NXDOMAIN'],
    ['cluster.local', 'A', 'NOERROR'],
    ['example.com', 'A', 'NXDOMAIN'],
    ['notcluster.local', 'A', 'NXDOMAIN'],
  ])('%s %s → %s', (name, qtype, expected) => {
    expect(summary(name, qtype)).toBe(expected);
  });

  it('answers with TTL 5 and an SOA on negative answers inside the domain only', () => {
    const positive = resolveName('backend.demo.svc.cluster.local', 'A', view);
    expect(positive.answers[0]).toMatchObject({ ttl: 5, class: 'IN', name: 'backend.demo.svc.cluster.local' });
    expect(positive.authorities).toEqual([]);
    expect(resolveName('x.demo.svc.cluster.local', 'A', view).authorities[0]).toMatchObject({ type: 'SOA', name: 'cluster.local' });
    expect(resolveName('example.com', 'A', view).authorities).toEqual([]);
  });

  it('headless SRV: one record per endpoint plus the targets as additionals', () => {
    const r = resolveName('_pg._tcp.db.demo.svc.cluster.local', 'SRV', view);
    expect(r.answers.map((a) => (a as { data: { target: string } }).data.target)).toEqual([
      'db-0.db.demo.svc.cluster.local',
      'db-1.db.demo.svc.cluster.local',
      '10-244-2-8.db.demo.svc.cluster.local',
    ]);
    expect(r.additionals.map((a) => `${a.name} ${(a as { data: string }).data}`)).toContain('db-1.db.demo.svc.cluster.local 10.244.2.7');
  });

  it('falls back to 10.96.0.1 for kubernetes.default before the Service exists', () => {
    expect(resolveName('kubernetes.default.svc.cluster.local', 'A', buildDnsView([], [])).answers).toMatchObject([{ data: '10.96.0.1' }]);
  });

  it('honours another cluster domain', () => {
    const custom = buildDnsView([svc('a', 'b', { clusterIP: '10.96.0.9' })], [], 'corp.internal');
    expect(resolveName('a.b.svc.corp.internal', 'A', custom).answers).toHaveLength(1);
    expect(resolveName('a.b.svc.cluster.local', 'A', custom).rcode).toBe('NXDOMAIN');
  });
});

describe('answerQuery', () => {
  const query = (name: string, type: dnsPacket.RecordType = 'A', extra: Partial<dnsPacket.Packet> = {}): Buffer =>
    dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...extra });
  const decode = (buf: Buffer | undefined): dnsPacket.DecodedPacket => dnsPacket.decode(buf as Buffer);

  it('answers authoritatively, echoing id, question and RD', () => {
    const reply = decode(answerQuery(query('backend.demo.svc.cluster.local'), view, 512));
    expect(reply).toMatchObject({ id: 4242, type: 'response', flag_aa: true, flag_rd: true, flag_tc: false });
    expect((reply as unknown as { rcode: string }).rcode).toBe('NOERROR');
    expect(reply.answers?.[0]).toMatchObject({ type: 'A', data: '10.96.0.50' });
  });

  it('NXDOMAIN rcode for unknown names', () => {
    expect((decode(answerQuery(query('nope.demo.svc.cluster.local'), view, 512)) as unknown as { rcode: string }).rcode).toBe('NXDOMAIN');
  });

  it('FORMERR for garbage with a header, nothing for a runt, nothing for responses', () => {
    const garbage = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]), Buffer.from([0xc0, 0xff, 0xff])]);
    const reply = answerQuery(garbage, view, 512) as Buffer;
    expect(reply.readUInt16BE(0)).toBe(0x1234);
    expect(reply.readUInt16BE(2) & 0x800f).toBe(0x8001);
    expect(answerQuery(Buffer.from([1, 2, 3]), view, 512)).toBeUndefined();
    expect(answerQuery(dnsPacket.encode({ type: 'response', id: 1, questions: [] }), view, 512)).toBeUndefined();
  });

  it('FORMERR for zero or several questions, NOTIMP for other opcodes', () => {
    const none = dnsPacket.encode({ type: 'query', id: 7, questions: [] });
    expect((decode(answerQuery(none, view, 512)) as unknown as { rcode: string }).rcode).toBe('FORMERR');
    const notify = query('a.cluster.local');
    notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2);
    expect((answerQuery(notify, view, 512) as Buffer).readUInt16BE(2) & 0xf).toBe(4);
  });

  it('truncates an oversized UDP answer without EDNS, but not over TCP or with a large EDNS buffer', () => {
    const many = buildDnsView(
      [svc('big', 'demo', { clusterIP: 'None' })],
      [slice('big', 'demo', Array.from({ length: 60 }, (_, i) => ({ addresses: [`10.244.1.${i + 2}`] })))],
    );
    const udp = decode(answerQuery(query('big.demo.svc.cluster.local'), many, 512));
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toHaveLength(0);
    expect(decode(answerQuery(query('big.demo.svc.cluster.local'), many, 'tcp')).answers).toHaveLength(60);
    const edns = query('big.demo.svc.cluster.local', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as unknown as dnsPacket.Answer] });
    const big = decode(answerQuery(edns, many, 512));
    expect(big.flag_tc).toBe(false);
    expect(big.answers).toHaveLength(60);
    expect(big.additionals?.some((r) => r.type === 'OPT')).toBe(true);
  });
});
