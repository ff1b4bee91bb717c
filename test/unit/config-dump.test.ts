// /config_dump in ztunnel's shape: field names and value forms as istioctl ztunnel-config reads
// them (workloads, services with endpoints, policies as rule/clause/match, certificates with
// base64 PEM, decimal serial and RFC 3339 times), amesh extras kept but never shadowing.
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CertificateSnapshot } from '../../src/identity/certificate-manager.js';
import type { IssuedCertificate } from '../../src/identity/certificate-provider.js';
import type { MeshSnapshot, Workload } from '../../src/node-agent/state/types.js';
import { buildConfigDump, dumpCert } from '../../src/node-agent/telemetry/config-dump.js';
import { createTestCa, workload } from '../helpers/pki.js';

const HBONE: Workload = {
  uid: 'Kubernetes//Pod/demo/client-7d9',
  name: 'client-7d9',
  namespace: 'demo',
  addresses: ['10.0.1.5'],
  tunnelProtocol: 'HBONE',
  serviceAccount: 'client',
  node: 'node1',
  canonicalName: 'client',
  canonicalRevision: 'v1',
  workloadName: 'client',
  workloadType: 'DEPLOYMENT',
  services: { 'demo/backend.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } },
  waypoint: { address: { address: '10.96.0.20' }, hboneMtlsPort: 15008 },
};
const PLAIN: Workload = {
  uid: 'Kubernetes//Pod/demo/backend-1',
  name: 'backend-1',
  namespace: 'demo',
  addresses: ['10.0.2.7'],
  tunnelProtocol: 'NONE',
  serviceAccount: '',
  status: 'UNHEALTHY',
  workloadType: 'POD',
  network: 'net1',
  services: { 'demo/backend.demo.svc.cluster.local': { ports: [] } },
};

const SNAPSHOT: MeshSnapshot = {
  trustDomain: 'cluster.local',
  workloads: [HBONE, PLAIN],
  services: [
    {
      name: 'backend',
      namespace: 'demo',
      hostname: 'backend.demo.svc.cluster.local',
      addresses: ['10.96.0.10'],
      ports: [
        { servicePort: 443, targetPort: 8443 },
        { servicePort: 80, targetPort: 8080 },
      ],
      waypoint: { hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008 },
    },
    { name: 'api', namespace: 'demo', hostname: 'api.demo.svc.cluster.local', addresses: [], ports: [], subjectAltNames: ['spiffe://cluster.local/ns/demo/sa/api'] },
  ],
  policies: [
    {
      name: 'deny-other',
      namespace: 'demo',
      scope: 'NAMESPACE',
      action: 'DENY',
      rules: [
        {
          clauses: [
            {
              matches: [
                {
                  notNamespaces: [{ exact: 'demo' }],
                  principals: [{ prefix: 'cluster.local/ns/' }, { presence: {} }],
                  sourceIps: [{ address: '10.0.0.0', length: 8 }],
                  destinationPorts: [80],
                },
              ],
            },
          ],
        },
      ],
    },
    { name: 'allow-all', namespace: 'amesh-system', scope: 'GLOBAL', action: 'ALLOW', rules: [], dryRun: true },
  ],
};

let issued: IssuedCertificate;
beforeAll(async () => {
  const ca = await createTestCa();
  issued = await ca.issue(workload('demo', 'client'));
});

function available(): CertificateSnapshot {
  const leaf = new X509Certificate(issued.chainPem[0] as string);
  return {
    identity: 'spiffe://cluster.local/ns/demo/sa/client',
    state: 'Available',
    serial: leaf.serialNumber.toLowerCase(),
    notBefore: issued.notBefore.toISOString(),
    notAfter: issued.notAfter.toISOString(),
    chain: [...issued.chainPem],
    roots: [...issued.rootsPem],
    failures: 0,
  };
}

describe('buildConfigDump', () => {
  it('puts the four ztunnel keys first and keeps amesh extras without letting them shadow', () => {
    const dump = buildConfigDump({ snapshot: SNAPSHOT, certificates: [], extras: { node: 'node1', version: 3, workloads: 'ignored', ca: { mode: 'local' }, telemetry: undefined } });
    expect(Object.keys(dump)).toEqual(['workloads', 'services', 'policies', 'certificates', 'node', 'version', 'ca']);
    expect(dump.workloads).toHaveLength(2);
  });

  it('dumps workloads as ztunnel does: sorted by uid, protocol HBONE/TCP, defaults filled, empty fields left out', () => {
    const { workloads } = buildConfigDump({ snapshot: SNAPSHOT, certificates: [] });
    expect(workloads.map((w) => w.uid)).toEqual(['Kubernetes//Pod/demo/backend-1', 'Kubernetes//Pod/demo/client-7d9']);
    expect(workloads[1]).toEqual({
      workloadIps: ['10.0.1.5'],
      waypoint: { destination: '/10.96.0.20', hboneMtlsPort: 15008 },
      protocol: 'HBONE',
      networkMode: 'Standard',
      uid: 'Kubernetes//Pod/demo/client-7d9',
      name: 'client-7d9',
      namespace: 'demo',
      trustDomain: 'cluster.local',
      serviceAccount: 'client',
      workloadName: 'client',
      workloadType: 'deployment',
      canonicalName: 'client',
      canonicalRevision: 'v1',
      node: 'node1',
      status: 'Healthy',
      clusterId: 'Kubernetes',
      services: ['demo/backend.demo.svc.cluster.local'],
      capacity: 1,
    });
    expect(workloads[0]).toMatchObject({ protocol: 'TCP', serviceAccount: 'default', status: 'Unhealthy', workloadType: 'pod', network: 'net1' });
    expect(workloads[0]).not.toHaveProperty('waypoint');
    expect(workloads[0]).not.toHaveProperty('canonicalName');
    expect(workloads[0]).not.toHaveProperty('tunnelProtocol');
  });

  it('dumps services sorted by hostname with network/ip VIPs, a port map and endpoints per workload uid', () => {
    const { services } = buildConfigDump({ snapshot: SNAPSHOT, certificates: [] });
    expect(services.map((s) => s.name)).toEqual(['api', 'backend']);
    const backend = services[1];
    expect(backend).toEqual({
      name: 'backend',
      namespace: 'demo',
      hostname: 'backend.demo.svc.cluster.local',
      vips: ['/10.96.0.10'],
      ports: { '80': 8080, '443': 8443 },
      endpoints: {
        'Kubernetes//Pod/demo/backend-1': { workloadUid: 'Kubernetes//Pod/demo/backend-1', service: 'demo/backend.demo.svc.cluster.local', port: { '80': 8080, '443': 8443 }, status: 'Unhealthy' },
        'Kubernetes//Pod/demo/client-7d9': { workloadUid: 'Kubernetes//Pod/demo/client-7d9', service: 'demo/backend.demo.svc.cluster.local', port: { '80': 8080 }, status: 'Healthy' },
      },
      subjectAltNames: [],
      waypoint: { destination: 'demo/waypoint.demo.svc.cluster.local', hboneMtlsPort: 15008 },
    });
    expect(services[0]).toMatchObject({ endpoints: {}, subjectAltNames: ['spiffe://cluster.local/ns/demo/sa/api'] });
  });

  it('dumps policies as rule → clause → match with ztunnel enum and StringMatch spellings', () => {
    const { policies } = buildConfigDump({ snapshot: SNAPSHOT, certificates: [] });
    expect(policies.map((p) => `${p.namespace}/${p.name}`)).toEqual(['amesh-system/allow-all', 'demo/deny-other']);
    expect(policies[0]).toEqual({ name: 'allow-all', namespace: 'amesh-system', scope: 'Global', action: 'Allow', rules: [], dryRun: true });
    expect(policies[1]).toEqual({
      name: 'deny-other',
      namespace: 'demo',
      scope: 'Namespace',
      action: 'Deny',
      rules: [[[{ notNamespaces: [{ Exact: 'demo' }], principals: [{ Prefix: 'cluster.local/ns/' }, { Presence: [] }], sourceIps: ['10.0.0.0/8'], destinationPorts: [80] }]]],
      dryRun: false,
    });
  });

  it('dumps an available certificate: chain without the root, roots apart, base64 PEM, decimal serial, RFC 3339 times', () => {
    const snap = available();
    const [cert] = buildConfigDump({ snapshot: SNAPSHOT, certificates: [snap] }).certificates;
    expect(cert?.identity).toBe('spiffe://cluster.local/ns/demo/sa/client');
    expect(cert?.state).toBe('Available');
    expect(cert?.rootCerts).toHaveLength(issued.rootsPem.length);
    expect(cert?.certChain.length).toBe(issued.chainPem.filter((p) => !issued.rootsPem.some((r) => r.trim() === p.trim())).length);
    const leaf = cert?.certChain[0];
    expect(Buffer.from(leaf?.pem ?? '', 'base64').toString('utf8').trim()).toBe((issued.chainPem[0] as string).trim());
    const x = new X509Certificate(issued.chainPem[0] as string);
    expect(leaf?.serialNumber).toBe(BigInt(`0x${x.serialNumber}`).toString(10));
    expect(leaf?.serialNumber).toMatch(/^\d+$/);
    expect(leaf?.validFrom).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(leaf?.expirationTime ?? '')).toBe(Math.floor(Date.parse(x.validTo) / 1000) * 1000);
    // amesh extras stay for readers of the leaf at a glance
    expect(cert).toMatchObject({ serial: snap.serial, notBefore: snap.notBefore, notAfter: snap.notAfter, failures: 0 });
  });

  it('spells the waiting and failing states as ztunnel ("Unavailable: <error>") with empty chains', () => {
    const certs: CertificateSnapshot[] = [
      { identity: 'spiffe://cluster.local/ns/b/sa/b', state: 'Unavailable', chain: [], roots: [], failures: 3, lastError: 'AMESH_CA_UNAVAILABLE: CA 10.0.0.1:15012 failed', nextAttempt: '2030-01-01T00:00:10.000Z' },
      { identity: 'spiffe://cluster.local/ns/a/sa/a', state: 'Initializing', chain: [], roots: [], failures: 0 },
    ];
    const dumped = buildConfigDump({ snapshot: SNAPSHOT, certificates: certs }).certificates;
    expect(dumped.map((c) => c.identity)).toEqual(['spiffe://cluster.local/ns/a/sa/a', 'spiffe://cluster.local/ns/b/sa/b']);
    expect(dumped[0]).toEqual({ identity: 'spiffe://cluster.local/ns/a/sa/a', state: 'Initializing', certChain: [], rootCerts: [], failures: 0 });
    expect(dumped[1]?.state).toBe('Unavailable: AMESH_CA_UNAVAILABLE: CA 10.0.0.1:15012 failed');
    expect(dumped[1]).toMatchObject({ certChain: [], rootCerts: [], failures: 3, nextAttempt: '2030-01-01T00:00:10.000Z' });
  });

  it('never fails the dump over an unreadable PEM', () => {
    expect(dumpCert('-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----')).toMatchObject({ serialNumber: '', validFrom: '', expirationTime: '' });
  });

  it('is JSON-stable: the same input gives the same text', () => {
    const a = JSON.stringify(buildConfigDump({ snapshot: SNAPSHOT, certificates: [available()] }));
    const b = JSON.stringify(buildConfigDump({ snapshot: { ...SNAPSHOT, workloads: [...SNAPSHOT.workloads].reverse(), policies: [...SNAPSHOT.policies].reverse() }, certificates: [available()] }));
    expect(a).toBe(b);
  });
});
