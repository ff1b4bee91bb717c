import { describe, expect, it } from 'vitest';
import { readConfigDump, stripNetwork, waypointName } from '../../src/cli/inspect/config-dump-view.js';
import { renderTable } from '../../src/cli/inspect/table.js';
import { formatCertificates, formatConnections, formatShort, mergedWorkloads, structured, type AgentDump } from '../../src/cli/inspect/ztunnel-config-format.js';

const NOW = Date.parse('2026-12-02T16:00:00Z');

// The earlier agent shape (Istio workload API field names).
const oldDump = {
  node: 'w1',
  workloads: [
    { uid: 'c/demo/Pod/client-1', name: 'client-1', namespace: 'demo', addresses: ['10.244.1.4'], tunnelProtocol: 'HBONE', serviceAccount: 'default', node: 'w1', status: 'HEALTHY', services: {} },
    {
      uid: 'c/demo/Pod/backend-1',
      name: 'backend-1',
      namespace: 'demo',
      addresses: ['10.244.1.3'],
      tunnelProtocol: 'HBONE',
      serviceAccount: 'backend-sa',
      node: 'w1',
      status: 'UNHEALTHY',
      services: { 'demo/backend.demo.svc.cluster.local': { ports: [] } },
      waypoint: { hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008 },
    },
    { uid: 'c/amesh-system/Pod/ctl', name: 'ctl', namespace: 'amesh-system', addresses: ['10.244.1.2'], tunnelProtocol: 'NONE', serviceAccount: 'amesh-controller', node: 'w1', services: {} },
  ],
  services: [{ name: 'backend', namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', addresses: ['10.96.0.4'], ports: [{ servicePort: 80, targetPort: 8080 }] }],
  policies: [{ name: 'deny-all', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [] }] }],
  certificates: [
    { identity: 'spiffe://cluster.local/ns/demo/sa/default', state: 'Available', serial: 'ab12', notBefore: '2026-12-02T15:00:00.000Z', notAfter: '2026-12-03T15:00:00.000Z', chain: [], roots: [], failures: 0 },
    { identity: 'spiffe://cluster.local/ns/demo/sa/backend-sa', state: 'Unavailable', chain: [], roots: [], failures: 3, lastError: 'AMESH_CA_UNAVAILABLE cannot reach the CA at amesh-controller.amesh-system:15012' },
  ],
  ca: { mode: 'xds', address: 'amesh-controller.amesh-system.svc:15012' },
  connections: { live: 1, liveConnections: [{ local: '10.244.1.3:8080', remote: '10.244.1.4:40000', state: 'open', workload: 'c/demo/Pod/backend-1', identity: 'spiffe://cluster.local/ns/demo/sa/default' }] },
};

// ztunnel's field names (issue #9).
const newDump = {
  workloads: [
    { uid: 'c/demo/Pod/backend-1', name: 'backend-1', namespace: 'demo', workloadIps: ['10.244.1.3'], protocol: 'HBONE', serviceAccount: 'backend-sa', node: 'w1', status: 'Healthy' },
    { uid: 'c/demo/Pod/frontend-1', name: 'frontend-1', namespace: 'demo', workloadIps: ['/10.244.2.2'], protocol: 'TCP', serviceAccount: 'frontend-sa', node: 'w2', status: 'Healthy', waypoint: { destination: 'demo/waypoint' } },
  ],
  services: [
    {
      name: 'frontend',
      namespace: 'demo',
      hostname: 'frontend.demo.svc.cluster.local',
      vips: ['/10.96.0.3'],
      ports: { '80': 8080 },
      endpoints: { 'c/demo/Pod/frontend-1': { workloadUid: 'c/demo/Pod/frontend-1', port: { '80': 8080 } } },
      waypoint: { destination: 'demo/waypoint' },
    },
  ],
  policies: [{ name: 'allow-frontend', namespace: 'demo', scope: 'WorkloadSelector', action: 'Allow', rules: [[], []] }],
  certificates: [
    {
      identity: 'spiffe://cluster.local/ns/demo/sa/frontend-sa',
      state: 'Available',
      certChain: [
        { pem: '', serialNumber: '01', validFrom: '2026-12-02T15:00:00Z', expirationTime: '2026-12-03T15:00:00Z' },
        { pem: '', serialNumber: '02', validFrom: '2026-01-01T00:00:00Z', expirationTime: '2036-01-01T00:00:00Z' },
      ],
    },
  ],
};

const dumps = (): AgentDump[] => [
  { node: 'w1', view: readConfigDump(oldDump, NOW) },
  { node: 'w2', view: readConfigDump(newDump, NOW) },
];

describe('readConfigDump', () => {
  it('reads the earlier shape', () => {
    const v = readConfigDump(oldDump, NOW);
    expect(v.workloads[1]).toMatchObject({ name: 'backend-1', addresses: ['10.244.1.3'], protocol: 'HBONE', waypoint: 'demo/waypoint', services: ['demo/backend.demo.svc.cluster.local'] });
    expect(v.workloads[2]?.protocol).toBe('TCP');
    expect(v.services[0]).toMatchObject({ vips: ['10.96.0.4'], endpointsHealthy: 0, endpointsTotal: 1 });
    expect(v.certificates).toEqual([
      { identity: 'spiffe://cluster.local/ns/demo/sa/default', type: 'Leaf', state: 'Available', valid: true, serial: 'ab12', notBefore: '2026-12-02T15:00:00.000Z', notAfter: '2026-12-03T15:00:00.000Z', error: '' },
      { identity: 'spiffe://cluster.local/ns/demo/sa/backend-sa', type: '', state: 'Unavailable', valid: false, serial: '', notBefore: '', notAfter: '', error: expect.stringContaining('AMESH_CA_UNAVAILABLE') as string },
    ]);
    expect(v.connections).toEqual([{ workload: 'demo/backend-1', direction: 'inbound', local: '10.244.1.3:8080', remote: '10.244.1.4:40000', identity: 'spiffe://cluster.local/ns/demo/sa/default', state: 'open' }]);
    expect(v.ca).toEqual({ mode: 'xds', address: 'amesh-controller.amesh-system.svc:15012', problem: '' });
  });
  it('reads ztunnel field names', () => {
    const v = readConfigDump(newDump, NOW);
    expect(v.workloads[1]).toMatchObject({ addresses: ['10.244.2.2'], protocol: 'TCP', waypoint: 'demo/waypoint' });
    expect(v.services[0]).toMatchObject({ vips: ['10.96.0.3'], waypoint: 'demo/waypoint', endpointsHealthy: 1, endpointsTotal: 1 });
    expect(v.policies[0]).toEqual({ namespace: 'demo', name: 'allow-frontend', action: 'Allow', scope: 'WorkloadSelector', rules: 2, dryRun: false });
    expect(v.certificates.map((c) => [c.type, c.serial, c.valid])).toEqual([
      ['Leaf', '01', true],
      ['Root', '02', true],
    ]);
  });
  it('reads the agent config-dump.ts shape: rootCerts apart, "Unavailable: <error>" state, waypoint destination ns/hostname', () => {
    const v = readConfigDump(
      {
        workloads: [{ uid: 'u', name: 'p', namespace: 'demo', workloadIps: ['10.0.0.1'], protocol: 'HBONE', waypoint: { destination: 'demo/waypoint.demo.svc.cluster.local', hboneMtlsPort: 15008 } }],
        certificates: [
          {
            identity: 'spiffe://cluster.local/ns/demo/sa/a',
            state: 'Available',
            certChain: [{ pem: '', serialNumber: '11', validFrom: '2026-12-02T15:00:00Z', expirationTime: '2026-12-03T15:00:00Z' }],
            rootCerts: [{ pem: '', serialNumber: '22', validFrom: '2026-01-01T00:00:00Z', expirationTime: '2036-01-01T00:00:00Z' }],
          },
          { identity: 'spiffe://cluster.local/ns/demo/sa/b', state: 'Unavailable: AMESH_CA_UNAVAILABLE: connect ECONNREFUSED 10.96.0.2:15012', certChain: [], rootCerts: [], failures: 2 },
        ],
      },
      NOW,
    );
    expect(v.workloads[0]?.waypoint).toBe('demo/waypoint');
    expect(waypointName({ destination: '/10.96.0.9', hboneMtlsPort: 15008 })).toBe('10.96.0.9');
    expect(v.certificates.map((c) => [c.type, c.serial, c.state, c.valid])).toEqual([
      ['Leaf', '11', 'Available', true],
      ['Root', '22', 'Available', true],
      ['', '', 'Unavailable', false],
    ]);
    expect(v.certificates[2]?.error).toBe('AMESH_CA_UNAVAILABLE: connect ECONNREFUSED 10.96.0.2:15012');
  });
  it('marks expired and not-yet-valid certificates invalid', () => {
    const later = readConfigDump(newDump, Date.parse('2026-12-04T00:00:00Z'));
    expect(later.certificates[0]?.valid).toBe(false);
    expect(later.certificates[1]?.valid).toBe(true);
  });
  it('tolerates junk', () => {
    expect(readConfigDump(null).workloads).toEqual([]);
    expect(readConfigDump({ workloads: 'x', services: [1], certificates: [{}] }).certificates).toHaveLength(1);
  });
  it('waypoint and address helpers', () => {
    expect(stripNetwork('net1/10.0.0.1')).toBe('10.0.0.1');
    expect(stripNetwork('fd00::1')).toBe('fd00::1');
    expect(waypointName({ address: { address: '/10.96.0.9' }, hboneMtlsPort: 15008 })).toBe('10.96.0.9');
    expect(waypointName(undefined)).toBe('');
  });
});

describe('short tables', () => {
  it('workloads: istioctl columns, merged by uid across agents, sorted', () => {
    const text = formatShort('workloads', dumps());
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+POD NAME\s+ADDRESS\s+NODE\s+WAYPOINT\s+PROTOCOL$/);
    expect(lines.slice(1).map((l) => l.split(/\s{3,}/))).toEqual([
      ['amesh-system', 'ctl', '10.244.1.2', 'w1', 'None', 'TCP'],
      ['demo', 'backend-1', '10.244.1.3', 'w1', 'demo/waypoint', 'HBONE'],
      ['demo', 'client-1', '10.244.1.4', 'w1', 'None', 'HBONE'],
      ['demo', 'frontend-1', '10.244.2.2', 'w2', 'demo/waypoint', 'TCP'],
    ]);
    expect(mergedWorkloads(dumps(), { namespace: 'amesh-system' }).map((w) => w.name)).toEqual(['ctl']);
  });
  it('services and policies', () => {
    expect(formatShort('services', dumps()).split('\n')[0]).toMatch(/^NAMESPACE\s+SERVICE NAME\s+SERVICE VIP\s+WAYPOINT\s+ENDPOINTS$/);
    expect(formatShort('services', dumps())).toMatch(/demo\s+frontend\s+10\.96\.0\.3\s+demo\/waypoint\s+1\/1/);
    expect(formatShort('services', dumps())).toMatch(/demo\s+backend\s+10\.96\.0\.4\s+None\s+0\/1/);
    expect(formatShort('policies', dumps())).toMatch(/^NAMESPACE\s+POLICY NAME\s+ACTION\s+SCOPE\ndemo\s+allow-frontend\s+Allow\s+WorkloadSelector\ndemo\s+deny-all\s+DENY\s+NAMESPACE\n$/);
  });
  it('a waypoint given by address is shown by the name of the Service with that VIP', () => {
    const d: AgentDump[] = [
      {
        node: 'w1',
        view: readConfigDump({
          workloads: [{ uid: 'a', name: 'a', namespace: 'demo', workloadIps: ['10.0.0.1'], protocol: 'HBONE', waypoint: { destination: '/10.96.0.5', hboneMtlsPort: 15008 } }],
          services: [
            { name: 'waypoint', namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local', vips: ['/10.96.0.5'], endpoints: {} },
            { name: 'backend', namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', vips: ['/10.96.0.4'], endpoints: {}, waypoint: { destination: '/10.96.0.5', hboneMtlsPort: 15008 } },
          ],
        }),
      },
    ];
    expect(formatShort('workloads', d)).toMatch(/demo\s+a\s+10\.0\.0\.1\s+-\s+demo\/waypoint\s+HBONE/);
    expect(formatShort('services', d)).toMatch(/demo\s+backend\s+10\.96\.0\.4\s+demo\/waypoint\s+0\/0/);
  });
  it('certificates: istioctl columns, a NODE column with several agents, the failure reason below', () => {
    const one = formatCertificates(dumps().slice(1));
    expect(one.split('\n')[0]).toMatch(/^CERTIFICATE NAME\s+TYPE\s+STATUS\s+VALID CERT\s+SERIAL NUMBER\s+NOT AFTER\s+NOT BEFORE$/);
    const all = formatCertificates(dumps());
    expect(all.split('\n')[0]).toMatch(/^NODE\s+CERTIFICATE NAME/);
    expect(all).toMatch(/w1\s+spiffe:\/\/cluster.local\/ns\/demo\/sa\/backend-sa\s+-\s+Unavailable\s+false/);
    expect(all).toContain('w1: spiffe://cluster.local/ns/demo/sa/backend-sa: AMESH_CA_UNAVAILABLE');
  });
  it('connections: direction from the agent listener when the entry does not say', () => {
    const v = readConfigDump({ connections: { liveConnections: [{ local: '10.0.0.2:15008', remote: '10.0.0.9:5000', state: 'open' }, { local: '10.0.0.2:15001', remote: '10.0.0.3:4000' }, { type: 'Http2Stream' }] } });
    expect(v.connections.map((c) => c.direction)).toEqual(['inbound', 'outbound', '']);
  });
  it('connections', () => {
    expect(formatConnections(dumps().slice(0, 1))).toMatch(/demo\/backend-1\s+inbound\s+10\.244\.1\.3:8080\s+10\.244\.1\.4:40000\s+spiffe:\S+\s+open/);
    expect(formatConnections(dumps(), { namespace: 'other' }).trim().split('\n')).toHaveLength(1);
  });
});

describe('structured output', () => {
  it('merges raw entries for cluster state, keeps ztunnel field names', () => {
    const workloads = structured('workloads', dumps()) as Array<{ uid: string; workloadIps?: string[] }>;
    expect(workloads.map((w) => w.uid)).toEqual(['c/demo/Pod/client-1', 'c/demo/Pod/backend-1', 'c/amesh-system/Pod/ctl', 'c/demo/Pod/frontend-1']);
    expect(structured('policies', dumps(), { namespace: 'demo' })).toHaveLength(2);
  });
  it('per-agent sections by node, or the section itself for one agent', () => {
    expect(Object.keys(structured('certificates', dumps()) as object)).toEqual(['w1', 'w2']);
    expect(structured('certificates', dumps().slice(1))).toBe(newDump.certificates);
  });
});

describe('renderTable', () => {
  it('pads columns, dashes empty cells', () => {
    expect(renderTable(['A', 'LONG'], [['xyz', ''], ['', 'b']])).toBe('A     LONG\nxyz   -\n-     b\n');
  });
});
