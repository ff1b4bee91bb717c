import { describe, expect, it } from 'vitest';
import { computeMeshResources, type MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { PodObject } from '../../src/controller/translate/enrolment.js';
import { endpointWorkload, sliceMembership, usesEndpointSlices, type EndpointSliceObject } from '../../src/controller/translate/endpoint-slice.js';
import type { ServiceObject } from '../../src/controller/translate/service.js';

const svc = (name: string, o: { ns?: string; selector?: Record<string, string>; clusterIP?: string; ports?: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string }> } = {}): ServiceObject => ({
  metadata: { name, namespace: o.ns ?? 'demo' },
  spec: { clusterIP: o.clusterIP ?? '10.96.0.30', ...(o.selector ? { selector: o.selector } : {}), ports: o.ports ?? [{ port: 5432, targetPort: 5432 }] },
});

const slice = (name: string, service: string, endpoints: Array<{ addresses: string[]; ready?: boolean | null }>, o: { ns?: string; ports?: EndpointSliceObject['ports']; addressType?: string } = {}): EndpointSliceObject => ({
  metadata: { name, namespace: o.ns ?? 'demo', labels: { 'kubernetes.io/service-name': service } },
  addressType: o.addressType ?? 'IPv4',
  endpoints: endpoints.map((e) => ({ addresses: e.addresses, ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }) })),
  ports: o.ports ?? [{ port: 6432, protocol: 'TCP' }],
});

const pod = (name: string, ip: string, labels: Record<string, string> = {}): PodObject => ({
  metadata: { name, namespace: 'demo', uid: `uid-${name}`, labels },
  spec: { nodeName: 'n1', serviceAccountName: name },
  status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
});

const DB = 'demo/db.demo.svc.cluster.local';

describe('usesEndpointSlices', () => {
  it.each([
    ['no selector', svc('db'), true],
    ['empty selector', svc('db', { selector: {} }), true],
    ['a selector', svc('db', { selector: { app: 'db' } }), false],
    ['headless', svc('db', { clusterIP: 'None' }), false],
  ])('%s', (_what, s, expected) => expect(usesEndpointSlices(s)).toBe(expected));
});

describe('sliceMembership', () => {
  it.each<[string, ServiceObject[], EndpointSliceObject[], Record<string, unknown>]>([
    ['an unnamed port maps to the unnamed slice port', [svc('db')], [slice('db-1', 'db', [{ addresses: ['192.168.1.10'] }])], { '192.168.1.10': { [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } } }],
    [
      'named ports map by name; a port the slice lacks is left out',
      [svc('db', { ports: [{ name: 'sql', port: 5432 }, { name: 'admin', port: 9000 }, { name: 'dns', port: 53, protocol: 'UDP' }] })],
      [slice('db-1', 'db', [{ addresses: ['192.168.1.10'] }], { ports: [{ name: 'sql', port: 6432, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] })],
      { '192.168.1.10': { [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } } },
    ],
    ['slices of a selector Service are ignored', [svc('db', { selector: { app: 'db' } })], [slice('db-1', 'db', [{ addresses: ['192.168.1.10'] }])], {}],
    ['slices of an unknown Service are ignored', [svc('other')], [slice('db-1', 'db', [{ addresses: ['192.168.1.10'] }])], {}],
    ['FQDN slices are ignored', [svc('db')], [slice('db-1', 'db', [{ addresses: ['db.example.com'] }], { addressType: 'FQDN' })], {}],
    ['a slice in another namespace is not the Service’s', [svc('db')], [slice('db-1', 'db', [{ addresses: ['192.168.1.10'] }], { ns: 'other' })], {}],
    [
      'two slices of one Service: ports merge per address',
      [svc('db', { ports: [{ name: 'a', port: 1 }, { name: 'b', port: 2 }] })],
      [slice('db-1', 'db', [{ addresses: ['192.168.1.10'] }], { ports: [{ name: 'b', port: 20 }] }), slice('db-2', 'db', [{ addresses: ['192.168.1.10'] }], { ports: [{ name: 'a', port: 10 }] })],
      { '192.168.1.10': { [DB]: { ports: [{ servicePort: 1, targetPort: 10 }, { servicePort: 2, targetPort: 20 }] } } },
    ],
  ])('%s', (_what, services, slices, expected) => {
    const got = Object.fromEntries([...sliceMembership(services, slices).byAddress].map(([a, m]) => [a, m.services]));
    expect(got).toEqual(expected);
  });

  it('readiness: missing or null means ready; unready only when no slice says ready', () => {
    const m = sliceMembership(
      [svc('db')],
      [slice('db-1', 'db', [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2'], ready: false }, { addresses: ['10.0.0.3'], ready: null }, { addresses: ['10.0.0.4'], ready: false }]), slice('db-2', 'db', [{ addresses: ['10.0.0.4'], ready: true }])],
    ).byAddress;
    expect(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map((a) => m.get(a)?.ready)).toEqual([true, false, true, true]);
  });

  it('an address two namespaces list belongs to the first namespace by name', () => {
    const m = sliceMembership([svc('db', { ns: 'b' }), svc('db', { ns: 'a' })], [slice('x', 'db', [{ addresses: ['10.0.0.1'] }], { ns: 'b' }), slice('x', 'db', [{ addresses: ['10.0.0.1'] }], { ns: 'a' })]).byAddress;
    expect(m.get('10.0.0.1')?.namespace).toBe('a');
    expect(Object.keys(m.get('10.0.0.1')?.services ?? {})).toEqual(['a/db.a.svc.cluster.local']);
  });

  it('endpointWorkload: plain TCP, no node, no service account, named after the Service', () => {
    const m = sliceMembership([svc('db')], [slice('db-1', 'db', [{ addresses: ['192.168.1.10'], ready: false }])]).byAddress.get('192.168.1.10');
    if (!m) throw new Error('no membership');
    expect(endpointWorkload('192.168.1.10', m, 'cluster.local')).toEqual({
      uid: 'discovery.k8s.io/EndpointSlice/demo/192.168.1.10',
      name: 'db',
      namespace: 'demo',
      addresses: ['192.168.1.10'],
      tunnelProtocol: 'NONE',
      trustDomain: 'cluster.local',
      serviceAccount: '',
      workloadName: 'db',
      status: 'UNHEALTHY',
      services: { [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } },
    });
  });
});

describe('computeMeshResources with EndpointSlices', () => {
  const view = (o: Partial<MeshView>): MeshView => ({ namespaces: [{ metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient' } } }], pods: [], services: [], ...o });

  it('a slice address a pod holds makes that pod a member (ports from the slice); other addresses are plain endpoints', () => {
    const r = computeMeshResources(
      view({
        pods: [pod('db-0', '10.244.0.7'), pod('web', '10.244.0.8', { app: 'web' })],
        services: [svc('db'), svc('web', { selector: { app: 'web' }, clusterIP: '10.96.0.31', ports: [{ port: 80, targetPort: 8080 }] })],
        endpointSlices: [slice('db-1', 'db', [{ addresses: ['10.244.0.7', '192.168.1.10'] }]), slice('web-1', 'web', [{ addresses: ['10.244.0.99'] }])],
      }),
      { trustDomain: 'cluster.local' },
    );
    expect(r.workloads.get('uid-db-0')).toMatchObject({ tunnelProtocol: 'HBONE', services: { [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } } });
    expect(r.workloads.get('discovery.k8s.io/EndpointSlice/demo/192.168.1.10')).toMatchObject({ tunnelProtocol: 'NONE', status: 'HEALTHY', services: { [DB]: { ports: [{ servicePort: 5432, targetPort: 6432 }] } } });
    // The selector Service's slice is ignored: its members come from the selector.
    expect(r.workloads.get('uid-web')?.services).toEqual({ 'demo/web.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } });
    expect(r.workloads.size).toBe(3);
  });

  it('an address of a pod that is not listed (Pending) is a plain endpoint', () => {
    const pending: PodObject = { ...pod('db-0', '10.244.0.7'), status: { phase: 'Pending', podIP: '10.244.0.7' } };
    const r = computeMeshResources(view({ pods: [pending], services: [svc('db')], endpointSlices: [slice('db-1', 'db', [{ addresses: ['10.244.0.7'] }])] }), { trustDomain: 'cluster.local' });
    expect([...r.workloads.keys()]).toEqual(['discovery.k8s.io/EndpointSlice/demo/10.244.0.7']);
  });
});
