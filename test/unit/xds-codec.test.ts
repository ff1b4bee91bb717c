/**
 * The xDS codec (src/xds/codec.ts): mesh state ↔ Istio's resource bytes. Round trips cover every
 * field we model (IPv4 and IPv6, every Match list, every StringMatch kind); decoding refuses what
 * a node agent cannot serve, naming the field; bytes written by hand with protobufjs (as istiod
 * would send them, with proto3 defaults left out) decode to the documented defaults.
 */
import { describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import type { Authorization, Service, Workload } from '../../src/node-agent/state/types.js';
import {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  authorizationResourceName,
  decodeAddress,
  decodeAuthorization,
  encodeAuthorization,
  encodeServiceAddress,
  encodeWorkloadAddress,
  serviceResourceName,
  workloadResourceName,
} from '../../src/xds/codec.js';
import { bytesToIp, ipToBytes } from '../../src/xds/ip-bytes.js';
import { checkAddressResource } from '../../src/node-agent/xds/xds-resources.js';
import { xdsProto } from '../../src/xds/proto.js';

const workload: Workload = {
  uid: 'Kubernetes//Pod/demo/backend-v1-abc',
  name: 'backend-v1-abc',
  namespace: 'demo',
  addresses: ['10.244.1.3', 'fd00:10:244::3'],
  hostname: 'backend-v1-abc.demo',
  network: 'net1',
  tunnelProtocol: 'HBONE',
  trustDomain: 'cluster.local',
  serviceAccount: 'backend-sa',
  waypoint: { hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008 },
  node: 'worker-1',
  canonicalName: 'backend',
  canonicalRevision: 'v1',
  workloadType: 'POD',
  workloadName: 'backend-v1',
  services: {
    'demo/backend.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080, appProtocol: 'HTTP11' }, { servicePort: 9090, targetPort: 0 }] },
    'demo/all.demo.svc.cluster.local': { ports: [{ servicePort: 443, targetPort: 8443, appProtocol: 'TLS' }] },
  },
  authorizationPolicies: ['demo/allow-frontend', 'demo/strict'],
  status: 'UNHEALTHY',
  clusterId: 'Kubernetes',
  capacity: 3,
};

const service: Service = {
  name: 'backend',
  namespace: 'demo',
  hostname: 'backend.demo.svc.cluster.local',
  addresses: ['10.96.0.3', '2001:db8::1:0:0:1'],
  ports: [
    { servicePort: 80, targetPort: 8080, appProtocol: 'GRPC' },
    { servicePort: 81, targetPort: 0 },
  ],
  subjectAltNames: ['spiffe://cluster.local/ns/demo/sa/backend-sa'],
  waypoint: { address: { address: '10.96.0.9' }, hboneMtlsPort: 15008 },
};

const authorization: Authorization = {
  name: 'allow-frontend',
  namespace: 'demo',
  scope: 'WORKLOAD_SELECTOR',
  action: 'DENY',
  dryRun: true,
  rules: [
    {
      clauses: [
        {
          matches: [
            {
              namespaces: [{ exact: 'demo' }, { prefix: 'de' }],
              notNamespaces: [{ suffix: 'mo' }],
              principals: [{ exact: 'cluster.local/ns/demo/sa/frontend' }, { presence: {} }],
              notPrincipals: [{ presence: {} }],
              sourceIps: [{ address: '10.0.0.0', length: 8 }],
              notSourceIps: [{ address: 'fd00::', length: 8 }],
              destinationIps: [{ address: '10.244.1.3', length: 32 }],
              notDestinationIps: [{ address: '::1', length: 128 }],
              destinationPorts: [8080, 9090],
              notDestinationPorts: [22],
            },
            { principals: [{ suffix: '/sa/admin' }] },
          ],
        },
        { matches: [{ notDestinationPorts: [15000] }] },
      ],
    },
    { clauses: [] },
  ],
};

function expectInvalid(fn: () => unknown, message: string | RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isAmeshError(caught, 'AMESH_XDS_INVALID_RESOURCE'), String(caught)).toBe(true);
  if (typeof message === 'string') expect((caught as Error).message).toBe(message);
  else expect((caught as Error).message).toMatch(message);
}

/** Bytes as istiod would write them: protobufjs from a plain object, defaults left out. */
function raw(typeName: 'address' | 'authorization', object: Record<string, unknown>): Uint8Array {
  const type = xdsProto()[typeName];
  return type.encode(type.fromObject(object)).finish();
}

describe('resource names and type URLs', () => {
  it('follow Istio: workload uid, namespace/hostname, namespace/name', () => {
    expect(ADDRESS_TYPE_URL).toBe('type.googleapis.com/istio.workload.Address');
    expect(AUTHORIZATION_TYPE_URL).toBe('type.googleapis.com/istio.security.Authorization');
    expect(workloadResourceName(workload)).toBe('Kubernetes//Pod/demo/backend-v1-abc');
    expect(serviceResourceName(service)).toBe('demo/backend.demo.svc.cluster.local');
    expect(authorizationResourceName(authorization)).toBe('demo/allow-frontend');
  });
});

describe('ip bytes', () => {
  it.each([
    ['10.244.1.3', [10, 244, 1, 3]],
    ['::', Array(16).fill(0)],
    ['::1', [...Array(15).fill(0), 1]],
    ['fd00:10:244::3', [0xfd, 0, 0, 0x10, 0x02, 0x44, ...Array(9).fill(0), 3]],
    ['2001:db8::1:0:0:1', [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]],
    ['::ffff:10.1.2.3', [...Array(10).fill(0), 0xff, 0xff, 10, 1, 2, 3]],
  ])('%s ↔ %j', (ip, bytes) => {
    expect(Array.from(ipToBytes(ip) as Uint8Array)).toEqual(bytes);
    expect(bytesToIp(Uint8Array.from(bytes))).toBe(ip);
  });

  it('writes IPv6 in RFC 5952 form and refuses what is not an address', () => {
    expect(bytesToIp(ipToBytes('2001:DB8:0:0:1:0:0:1') as Uint8Array)).toBe('2001:db8::1:0:0:1');
    expect(bytesToIp(ipToBytes('1:0:0:2:0:0:0:3') as Uint8Array)).toBe('1:0:0:2::3');
    expect(bytesToIp(ipToBytes('1:2:3:4:5:6:7:8') as Uint8Array)).toBe('1:2:3:4:5:6:7:8');
    expect(bytesToIp(ipToBytes('1:0:2:3:4:5:6:7') as Uint8Array)).toBe('1:0:2:3:4:5:6:7');
    expect(ipToBytes('10.0.0.256')).toBeUndefined();
    expect(ipToBytes('backend')).toBeUndefined();
    expect(ipToBytes('fe80::1%eth0')).toBeUndefined();
    expect(bytesToIp(new Uint8Array(5))).toBeUndefined();
  });
});

describe('round trips', () => {
  it('a workload with every modelled field, IPv4 and IPv6', () => {
    const decoded = decodeAddress(encodeWorkloadAddress(workload));
    expect(decoded).toEqual({ kind: 'workload', workload });
  });

  it('a service with IPv4 and IPv6 addresses', () => {
    expect(decodeAddress(encodeServiceAddress(service))).toEqual({ kind: 'service', service });
  });

  it('an authorization with every Match field and every StringMatch kind', () => {
    expect(decodeAuthorization(encodeAuthorization(authorization))).toEqual(authorization);
  });

  it('a minimal workload decodes with proto3 defaults', () => {
    const minimal: Workload = { uid: 'u1', name: 'a', namespace: 'demo', addresses: [], tunnelProtocol: 'NONE', serviceAccount: 'default', services: {} };
    expect(decodeAddress(encodeWorkloadAddress(minimal))).toEqual({ kind: 'workload', workload: { ...minimal, status: 'HEALTHY', workloadType: 'DEPLOYMENT' } });
  });

  it('capacity 0 is kept apart from an absent capacity (UInt32Value)', () => {
    const base: Workload = { uid: 'u1', name: 'a', namespace: 'demo', addresses: [], tunnelProtocol: 'NONE', serviceAccount: 'default', services: {} };
    const zero = decodeAddress(encodeWorkloadAddress({ ...base, capacity: 0 }));
    expect(zero.kind === 'workload' && zero.workload.capacity).toBe(0);
    const absent = decodeAddress(encodeWorkloadAddress(base));
    expect(absent.kind === 'workload' && 'capacity' in absent.workload).toBe(false);
  });

  it('encoding is deterministic: the services map order does not change the bytes', () => {
    const reordered: Workload = { ...workload, services: Object.fromEntries(Object.entries(workload.services).reverse()) };
    expect(Buffer.from(encodeWorkloadAddress(reordered)).equals(Buffer.from(encodeWorkloadAddress(workload)))).toBe(true);
  });
});

describe('waypoint (GatewayAddress)', () => {
  const base: Workload = { uid: 'u1', name: 'a', namespace: 'demo', addresses: ['10.244.0.1'], tunnelProtocol: 'HBONE', serviceAccount: 'default', services: {} };
  const svc: Service = { name: 'b', namespace: 'demo', hostname: 'b.demo.svc.cluster.local', addresses: ['10.96.0.1'], ports: [] };

  it.each<[string, NonNullable<Workload['waypoint']>]>([
    ['the hostname form', { hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008 }],
    ['the address form (IPv4)', { address: { address: '10.96.0.9' }, hboneMtlsPort: 15008 }],
    ['the address form with a network (IPv6)', { address: { network: 'net1', address: 'fd00::9' }, hboneMtlsPort: 15009 }],
  ])('round-trips %s on workloads and services', (_what, waypoint) => {
    expect(decodeAddress(encodeWorkloadAddress({ ...base, waypoint }))).toEqual({ kind: 'workload', workload: { ...base, waypoint, status: 'HEALTHY', workloadType: 'DEPLOYMENT' } });
    expect(decodeAddress(encodeServiceAddress({ ...svc, waypoint }))).toEqual({ kind: 'service', service: { ...svc, waypoint } });
  });

  it('an absent waypoint stays absent', () => {
    const decoded = decodeAddress(encodeServiceAddress(svc));
    expect(decoded.kind === 'service' && 'waypoint' in decoded.service).toBe(false);
  });

  it.each<[string, () => unknown, string]>([
    ['no destination', () => decodeAddress(raw('address', { service: { name: 'n', namespace: 'ns', hostname: 'h', waypoint: { hboneMtlsPort: 15008 } } })), 'service.waypoint: neither hostname nor address is set'],
    ['port 0', () => decodeAddress(raw('address', { workload: { uid: 'u', name: 'n', namespace: 'ns', waypoint: { hostname: { namespace: 'ns', hostname: 'w' } } } })), 'workload.waypoint.hboneMtlsPort: 0 is not a port (1-65535)'],
    ['a bad address', () => decodeAddress(raw('address', { workload: { uid: 'u', name: 'n', namespace: 'ns', waypoint: { address: { address: Buffer.from([1, 2]) }, hboneMtlsPort: 15008 } } })), 'workload.waypoint.address.address: 2 bytes is not an IPv4/IPv6 address'],
    ['an empty hostname', () => decodeAddress(raw('address', { service: { name: 'n', namespace: 'ns', hostname: 'h', waypoint: { hostname: { namespace: 'ns', hostname: '' }, hboneMtlsPort: 15008 } } })), 'service.waypoint.hostname.hostname: must not be empty'],
    ['both forms on encode', () => encodeServiceAddress({ ...svc, waypoint: { hostname: { namespace: 'a', hostname: 'b' }, address: { address: '10.0.0.1' }, hboneMtlsPort: 15008 } }), 'service.waypoint: exactly one of hostname and address must be set'],
    ['a hostname as address on encode', () => encodeWorkloadAddress({ ...base, waypoint: { address: { address: 'waypoint' }, hboneMtlsPort: 15008 } }), 'workload.waypoint.address.address: "waypoint" is not an IPv4/IPv6 address'],
  ])('refuses %s, naming the field', (_what, fn, message) => expectInvalid(fn, message));

  it("the node agent's resource checks accept a waypoint on both kinds", () => {
    const waypoint = { address: { address: '10.96.0.9' }, hboneMtlsPort: 15008 };
    const w = checkAddressResource('u1', encodeWorkloadAddress({ ...base, waypoint }), 'cluster.local');
    expect(w.ok && w.value.kind === 'workload' && w.value.workload.waypoint).toEqual(waypoint);
    const s = checkAddressResource('demo/b.demo.svc.cluster.local', encodeServiceAddress({ ...svc, waypoint }), 'cluster.local');
    expect(s.ok && s.value.kind === 'service' && s.value.service.waypoint).toEqual(waypoint);
  });
});

describe('decoding bytes written elsewhere', () => {
  it('a bare authorization is GLOBAL ALLOW with no rules', () => {
    expect(decodeAuthorization(raw('authorization', { name: 'p', namespace: 'ns' }))).toEqual({ name: 'p', namespace: 'ns', scope: 'GLOBAL', action: 'ALLOW', rules: [] });
  });

  it('an unknown app protocol or workload type decodes as absent; fields we do not model (network gateway) are skipped', () => {
    const bytes = raw('address', {
      workload: {
        uid: 'u',
        name: 'n',
        namespace: 'ns',
        workloadType: 7,
        services: { 'ns/s.ns.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 80, appProtocol: 42 }] } },
        locality: { zone: 'z' },
        networkGateway: { hostname: { namespace: 'ns', hostname: 'gw' }, hboneMtlsPort: 15008 },
      },
    });
    const decoded = decodeAddress(bytes);
    expect(decoded).toEqual({
      kind: 'workload',
      workload: { uid: 'u', name: 'n', namespace: 'ns', addresses: [], tunnelProtocol: 'NONE', serviceAccount: '', status: 'HEALTHY', services: { 'ns/s.ns.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 80 }] } }, locality: { zone: 'z' } },
    });
  });

  it('a locality round-trips part by part; an all-empty one decodes as absent', () => {
    const base: Workload = { uid: 'u1', name: 'a', namespace: 'demo', addresses: ['10.244.0.1'], tunnelProtocol: 'HBONE', serviceAccount: 'default', services: {} };
    const full = decodeAddress(encodeWorkloadAddress({ ...base, locality: { region: 'eu-west', zone: 'eu-west-1a', subzone: 'rack.7' } }));
    expect(full.kind === 'workload' && full.workload.locality).toEqual({ region: 'eu-west', zone: 'eu-west-1a', subzone: 'rack.7' });
    const zoneOnly = decodeAddress(encodeWorkloadAddress({ ...base, locality: { zone: 'z1' } }));
    expect(zoneOnly.kind === 'workload' && zoneOnly.workload.locality).toEqual({ zone: 'z1' });
    const empty = decodeAddress(raw('address', { workload: { uid: 'u', name: 'n', namespace: 'ns', locality: {} } }));
    expect(empty.kind === 'workload' && 'locality' in empty.workload).toBe(false);
    const checked = checkAddressResource(base.uid, encodeWorkloadAddress({ ...base, locality: { region: 'r' } }), 'cluster.local');
    expect(checked.ok && checked.value.kind === 'workload' && checked.value.workload.locality).toEqual({ region: 'r' });
  });
});

describe('decoding refuses, naming the field', () => {
  const w = (extra: Record<string, unknown>): Uint8Array => raw('address', { workload: { uid: 'u', name: 'n', namespace: 'ns', ...extra } });
  const s = (extra: Record<string, unknown>): Uint8Array => raw('address', { service: { name: 'n', namespace: 'ns', hostname: 'h', ...extra } });
  const a = (match: Record<string, unknown>): Uint8Array => raw('authorization', { name: 'p', namespace: 'ns', rules: [{ clauses: [{ matches: [match] }] }] });

  it.each<[string, () => unknown, string | RegExp]>([
    ['an empty Address', () => decodeAddress(raw('address', {})), 'address: neither workload nor service is set'],
    ['garbage', () => decodeAddress(Uint8Array.from([0x0a, 0xff])), /^address: not a valid istio\.workload\.Address/],
    ['an empty uid', () => decodeAddress(w({ uid: '' })), 'workload.uid: must not be empty'],
    ['an empty workload name', () => decodeAddress(w({ name: '' })), 'workload.name: must not be empty'],
    ['an empty workload namespace', () => decodeAddress(w({ namespace: '' })), 'workload.namespace: must not be empty'],
    ['a 5-byte address', () => decodeAddress(w({ addresses: [Buffer.from([1, 2, 3, 4, 5])] })), 'workload.addresses[0]: 5 bytes is not an IPv4/IPv6 address'],
    ['an empty address', () => decodeAddress(w({ addresses: [Buffer.from([10, 0, 0, 1]), Buffer.alloc(0)] })), 'workload.addresses[1]: 0 bytes is not an IPv4/IPv6 address'],
    ['an unknown tunnel protocol', () => decodeAddress(w({ tunnelProtocol: 9 })), 'workload.tunnelProtocol: unknown value 9'],
    ['an unknown status', () => decodeAddress(w({ status: 5 })), 'workload.status: unknown value 5'],
    ['a services key without a namespace', () => decodeAddress(w({ services: { hostname: { ports: [] } } })), 'workload.services["hostname"]: key must be "<namespace>/<hostname>"'],
    ['service port 0 in a workload', () => decodeAddress(w({ services: { 'ns/h': { ports: [{ servicePort: 0, targetPort: 80 }] } } })), 'workload.services["ns/h"].ports[0].servicePort: 0 is not a port (1-65535)'],
    ['a target port above 65535', () => decodeAddress(w({ services: { 'ns/h': { ports: [{ servicePort: 80, targetPort: 70000 }] } } })), 'workload.services["ns/h"].ports[0].targetPort: 70000 is not a port (1-65535)'],
    ['an empty service hostname', () => decodeAddress(s({ hostname: '' })), 'service.hostname: must not be empty'],
    ['an empty service namespace', () => decodeAddress(s({ namespace: '' })), 'service.namespace: must not be empty'],
    ['a 3-byte service address', () => decodeAddress(s({ addresses: [{ network: '', address: Buffer.from([1, 2, 3]) }] })), 'service.addresses[0].address: 3 bytes is not an IPv4/IPv6 address'],
    ['service port 0', () => decodeAddress(s({ ports: [{ servicePort: 80, targetPort: 80 }, { servicePort: 0, targetPort: 80 }] })), 'service.ports[1].servicePort: 0 is not a port (1-65535)'],
    ['an empty authorization name', () => decodeAuthorization(raw('authorization', { namespace: 'ns' })), 'authorization.name: must not be empty'],
    ['an empty authorization namespace', () => decodeAuthorization(raw('authorization', { name: 'p' })), 'authorization.namespace: must not be empty'],
    ['an unknown action', () => decodeAuthorization(raw('authorization', { name: 'p', namespace: 'ns', action: 3 })), 'authorization.action: unknown value 3'],
    ['an unknown scope', () => decodeAuthorization(raw('authorization', { name: 'p', namespace: 'ns', scope: 8 })), 'authorization.scope: unknown value 8'],
    ['an empty StringMatch', () => decodeAuthorization(a({ principals: [{ exact: 'x' }, {}] })), 'authorization.rules[0].clauses[0].matches[0].principals[1]: none of exact, prefix, suffix, presence is set'],
    ['a bad source IP', () => decodeAuthorization(a({ notSourceIps: [{ address: Buffer.from([1]), length: 8 }] })), 'authorization.rules[0].clauses[0].matches[0].notSourceIps[0].address: 1 bytes is not an IPv4/IPv6 address'],
    ['a prefix longer than the address', () => decodeAuthorization(a({ destinationIps: [{ address: Buffer.from([10, 0, 0, 0]), length: 33 }] })), 'authorization.rules[0].clauses[0].matches[0].destinationIps[0].length: 33 is longer than the 32 bits of 10.0.0.0'],
    ['destination port 0', () => decodeAuthorization(a({ destinationPorts: [80, 0] })), 'authorization.rules[0].clauses[0].matches[0].destinationPorts[1]: 0 is not a port (1-65535)'],
  ])('%s', (_name, fn, message) => expectInvalid(fn, message));

  it('the encoder refuses an address that is not an IP, naming the field', () => {
    expectInvalid(() => encodeWorkloadAddress({ ...workload, addresses: ['10.0.0.1', 'backend'] }), 'workload.addresses[1]: "backend" is not an IPv4/IPv6 address');
    expectInvalid(() => encodeServiceAddress({ ...service, addresses: ['300.1.1.1'] }), 'service.addresses[0]: "300.1.1.1" is not an IPv4/IPv6 address');
  });
});
