/**
 * Wire compatibility of our trimmed xDS protos (proto/istio/workload, proto/istio/security,
 * proto/envoy/...) with Istio's: messages encoded from our .proto files are taken apart here by a
 * second, independent description — a table of Istio's field numbers and wire types applied by a
 * minimal protobuf reader written for this test — and bytes written by a minimal encoder from
 * that table decode through our .proto files. A renumbered field, a wrong type (string vs bytes,
 * packed vs not) or a wrong enum value fails here (issue #5; DESIGN §6).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { encodeServiceAddress, encodeWorkloadAddress } from '../../src/xds/codec.js';

const PROTO_DIR = join(import.meta.dirname, '..', '..', 'proto');

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // google/protobuf/* come from protobufjs' bundled well-known types; ours from proto/.
  root.resolvePath = (origin, target) => {
    if (target.startsWith('google/protobuf/')) return target;
    const fromRoot = join(PROTO_DIR, target);
    return existsSync(fromRoot) ? fromRoot : join(dirname(origin), target);
  };
  root.loadSync(['istio/workload/workloadapi.proto', 'istio/security/authorization.proto', 'envoy/service/discovery/v3/discovery.proto'], { keepCase: false });
  root.resolveAll();
  return root;
}

// ---- the independent description: a protobuf wire reader/writer and Istio's field numbers ----

type Field = { wire: 0; value: bigint } | { wire: 2; value: Buffer } | { wire: 1 | 5; value: Buffer };

function readVarint(buf: Buffer, at: { pos: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[at.pos++];
    if (byte === undefined) throw new Error('truncated varint');
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return result;
    shift += 7n;
  }
}

/** Field number → the values seen, in order. */
function fields(buf: Buffer): Map<number, Field[]> {
  const out = new Map<number, Field[]>();
  const at = { pos: 0 };
  while (at.pos < buf.length) {
    const key = Number(readVarint(buf, at));
    const number = key >>> 3;
    const wire = key & 7;
    let field: Field;
    if (wire === 0) field = { wire: 0, value: readVarint(buf, at) };
    else if (wire === 2) {
      const length = Number(readVarint(buf, at));
      field = { wire: 2, value: buf.subarray(at.pos, at.pos + length) };
      at.pos += length;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      field = { wire, value: buf.subarray(at.pos, at.pos + size) };
      at.pos += size;
    } else throw new Error(`unexpected wire type ${wire} for field ${number}`);
    out.set(number, [...(out.get(number) ?? []), field]);
  }
  return out;
}

function one(msg: Map<number, Field[]>, number: number): Field {
  const list = msg.get(number);
  expect(list, `field ${number} present`).toBeDefined();
  expect(list).toHaveLength(1);
  return (list as Field[])[0] as Field;
}
const str = (msg: Map<number, Field[]>, n: number): string => {
  const f = one(msg, n);
  expect(f.wire, `field ${n} is length-delimited`).toBe(2);
  return (f.value as Buffer).toString('utf8');
};
const varint = (msg: Map<number, Field[]>, n: number): number => {
  const f = one(msg, n);
  expect(f.wire, `field ${n} is a varint`).toBe(0);
  return Number(f.value);
};
const sub = (msg: Map<number, Field[]>, n: number): Map<number, Field[]> => fields(one(msg, n).value as Buffer);
const subs = (msg: Map<number, Field[]>, n: number): Map<number, Field[]>[] => (msg.get(n) ?? []).map((f) => fields(f.value as Buffer));
const strs = (msg: Map<number, Field[]>, n: number): string[] => (msg.get(n) ?? []).map((f) => (f.value as Buffer).toString('utf8'));

function writeVarint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  do {
    let byte = v & 0x7f;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    bytes.push(byte);
  } while (v > 0);
  return Buffer.from(bytes);
}
const tag = (n: number, wire: number): Buffer => writeVarint((n << 3) | wire);
const vField = (n: number, value: number): Buffer => Buffer.concat([tag(n, 0), writeVarint(value)]);
const lField = (n: number, value: Buffer | string): Buffer => {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([tag(n, 2), writeVarint(bytes.length), bytes]);
};

const root = loadRoot();
const type = (name: string): protobuf.Type => root.lookupType(name);
const encode = (name: string, object: Record<string, unknown>): Buffer => {
  const t = type(name);
  // fromObject drops names it does not know: refuse them, so a misspelt field cannot pass unseen.
  for (const key of Object.keys(object)) expect(Object.keys(t.fields), `${name} has a field ${key}`).toContain(key);
  const message = t.fromObject(object);
  expect(t.verify(message), `${name} is valid for our proto`).toBeNull();
  return Buffer.from(t.encode(message).finish());
};

describe('istio.workload wire format', () => {
  it('Workload: Istio field numbers and types', () => {
    const bytes = encode('istio.workload.Workload', {
      uid: 'cluster1//Pod/demo/backend-v1-abc',
      name: 'backend-v1-abc',
      namespace: 'demo',
      addresses: [Buffer.from([10, 244, 1, 3])],
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
      services: { 'demo/backend.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080, appProtocol: 'HTTP11' }] } },
      authorizationPolicies: ['demo/allow-frontend'],
      status: 'UNHEALTHY',
      clusterId: 'Kubernetes',
      locality: { region: 'r', zone: 'z', subzone: 's' },
      networkMode: 'HOST_NETWORK',
      capacity: { value: 3 },
    });
    const w = fields(bytes);
    expect(str(w, 20)).toBe('cluster1//Pod/demo/backend-v1-abc');
    expect(str(w, 1)).toBe('backend-v1-abc');
    expect(str(w, 2)).toBe('demo');
    expect([...(one(w, 3).value as Buffer)]).toEqual([10, 244, 1, 3]);
    expect(str(w, 21)).toBe('backend-v1-abc.demo');
    expect(str(w, 4)).toBe('net1');
    expect(varint(w, 5)).toBe(1); // HBONE
    expect(str(w, 6)).toBe('cluster.local');
    expect(str(w, 7)).toBe('backend-sa');
    const waypoint = sub(w, 8);
    expect(str(fields(one(waypoint, 1).value as Buffer), 2)).toBe('waypoint.demo.svc.cluster.local');
    expect(varint(waypoint, 3)).toBe(15008);
    expect(str(w, 9)).toBe('worker-1');
    expect(str(w, 10)).toBe('backend');
    expect(str(w, 11)).toBe('v1');
    expect(varint(w, 12)).toBe(2); // POD
    expect(str(w, 13)).toBe('backend-v1');
    // map<string, PortList> services = 22: entries {key = 1, value = 2}.
    const [entry] = subs(w, 22);
    expect(str(entry as Map<number, Field[]>, 1)).toBe('demo/backend.demo.svc.cluster.local');
    const [port] = subs(sub(entry as Map<number, Field[]>, 2), 1);
    expect([varint(port as Map<number, Field[]>, 1), varint(port as Map<number, Field[]>, 2), varint(port as Map<number, Field[]>, 3)]).toEqual([80, 8080, 1]);
    expect(strs(w, 16)).toEqual(['demo/allow-frontend']);
    expect(varint(w, 17)).toBe(1); // UNHEALTHY
    expect(str(w, 18)).toBe('Kubernetes');
    expect(str(sub(w, 24), 2)).toBe('z');
    expect(varint(w, 25)).toBe(1); // HOST_NETWORK
    expect(varint(sub(w, 27), 1)).toBe(3); // UInt32Value.value
    expect(w.has(15)).toBe(false);
  });

  it('Address wraps a Workload as field 1 and a Service as field 2', () => {
    const workload = fields(encode('istio.workload.Address', { workload: { uid: 'w1', name: 'a' } }));
    expect(str(sub(workload, 1), 20)).toBe('w1');
    expect(workload.has(2)).toBe(false);
    const service = fields(encode('istio.workload.Address', { service: { name: 'backend', namespace: 'demo', hostname: 'backend.demo.svc.cluster.local' } }));
    expect(str(sub(service, 2), 3)).toBe('backend.demo.svc.cluster.local');
  });

  it('Service: Istio field numbers and types', () => {
    const s = fields(
      encode('istio.workload.Service', {
        name: 'backend',
        namespace: 'demo',
        hostname: 'backend.demo.svc.cluster.local',
        addresses: [{ network: 'net1', address: Buffer.from([10, 96, 0, 3]) }],
        ports: [{ servicePort: 80, targetPort: 8080, appProtocol: 'GRPC' }],
        subjectAltNames: ['spiffe://cluster.local/ns/demo/sa/backend-sa'],
        waypoint: { address: { network: '', address: Buffer.from([10, 96, 0, 9]) }, hboneMtlsPort: 15008 },
        loadBalancing: { routingPreference: ['NETWORK', 'NODE'], mode: 'FAILOVER', healthPolicy: 'ALLOW_ALL' },
        ipFamilies: 'IPV4_ONLY',
      }),
    );
    expect([str(s, 1), str(s, 2), str(s, 3)]).toEqual(['backend', 'demo', 'backend.demo.svc.cluster.local']);
    const address = sub(s, 4);
    expect(str(address, 1)).toBe('net1');
    expect([...(one(address, 2).value as Buffer)]).toEqual([10, 96, 0, 3]);
    const port = sub(s, 5);
    expect([varint(port, 1), varint(port, 2), varint(port, 3)]).toEqual([80, 8080, 3]);
    expect(strs(s, 6)).toEqual(['spiffe://cluster.local/ns/demo/sa/backend-sa']);
    expect([...(one(sub(sub(s, 7), 2), 2).value as Buffer)]).toEqual([10, 96, 0, 9]);
    const lb = sub(s, 8);
    // repeated enum routing_preference = 1: packed in proto3 → one length-delimited run of varints.
    expect([...(one(lb, 1).value as Buffer)]).toEqual([6, 4]);
    expect([varint(lb, 2), varint(lb, 3)]).toEqual([2, 1]);
    expect(varint(s, 9)).toBe(1);
  });

  it('decodes a Workload written from the independent table', () => {
    const ports = lField(1, Buffer.concat([vField(1, 80), vField(2, 8080)]));
    const servicesEntry = lField(22, Buffer.concat([lField(1, 'demo/backend.demo.svc.cluster.local'), lField(2, ports)]));
    const bytes = Buffer.concat([lField(1, 'b'), lField(2, 'demo'), lField(3, Buffer.from([10, 244, 2, 2])), vField(5, 1), lField(7, 'backend-sa'), lField(9, 'worker-2'), servicesEntry, lField(20, 'uid-b')]);
    const decoded = type('istio.workload.Workload').toObject(type('istio.workload.Workload').decode(bytes), { enums: String, bytes: Array }) as Record<string, unknown>;
    expect(decoded).toMatchObject({
      uid: 'uid-b',
      name: 'b',
      namespace: 'demo',
      addresses: [[10, 244, 2, 2]],
      tunnelProtocol: 'HBONE',
      serviceAccount: 'backend-sa',
      node: 'worker-2',
      services: { 'demo/backend.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } },
    });
  });
});

describe('waypoint (GatewayAddress) as our codec writes it', () => {
  // GatewayAddress{oneof destination {NamespacedHostname hostname = 1; NetworkAddress address = 2}; uint32 hbone_mtls_port = 3}
  it('Workload.waypoint = 8, hostname form: NamespacedHostname{namespace = 1, hostname = 2}', () => {
    const address = fields(Buffer.from(encodeWorkloadAddress({ uid: 'u', name: 'a', namespace: 'demo', addresses: ['10.244.0.1'], tunnelProtocol: 'HBONE', serviceAccount: 'sa', services: {}, waypoint: { hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008 } })));
    const waypoint = sub(sub(address, 1), 8);
    const hostname = sub(waypoint, 1);
    expect([str(hostname, 1), str(hostname, 2)]).toEqual(['demo', 'waypoint.demo.svc.cluster.local']);
    expect(waypoint.has(2)).toBe(false);
    expect(varint(waypoint, 3)).toBe(15008);
  });

  it('Service.waypoint = 7, address form: NetworkAddress{network = 1, address = 2 bytes}', () => {
    const address = fields(Buffer.from(encodeServiceAddress({ name: 'b', namespace: 'demo', hostname: 'b.demo.svc.cluster.local', addresses: ['10.96.0.3'], ports: [], waypoint: { address: { network: 'net1', address: '10.96.0.9' }, hboneMtlsPort: 15008 } })));
    const waypoint = sub(sub(address, 2), 7);
    const network = sub(waypoint, 2);
    expect(str(network, 1)).toBe('net1');
    expect([...(one(network, 2).value as Buffer)]).toEqual([10, 96, 0, 9]);
    expect(waypoint.has(1)).toBe(false);
    expect(varint(waypoint, 3)).toBe(15008);
  });

  it('decodes a waypoint written from the independent table', () => {
    const gatewayAddress = Buffer.concat([lField(1, Buffer.concat([lField(1, 'demo'), lField(2, 'waypoint.demo.svc.cluster.local')])), vField(3, 15008)]);
    const bytes = Buffer.concat([lField(1, 'b'), lField(2, 'demo'), lField(3, 'b.demo.svc.cluster.local'), lField(7, gatewayAddress)]);
    const decoded = type('istio.workload.Service').toObject(type('istio.workload.Service').decode(bytes), { oneofs: true }) as Record<string, unknown>;
    expect(decoded.waypoint).toEqual({ hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15008, destination: 'hostname' });
  });
});

describe('istio.security.Authorization wire format', () => {
  it('uses Istio field numbers for rules, clauses, matches and string matches', () => {
    const a = fields(
      encode('istio.security.Authorization', {
        name: 'strict',
        namespace: 'demo',
        scope: 'WORKLOAD_SELECTOR',
        action: 'DENY',
        rules: [
          {
            clauses: [
              {
                matches: [
                  {
                    notPrincipals: [{ presence: {} }],
                    principals: [{ exact: 'cluster.local/ns/demo/sa/frontend' }],
                    namespaces: [{ prefix: 'de' }],
                    notNamespaces: [{ suffix: 'mo' }],
                    sourceIps: [{ address: Buffer.from([10, 0, 0, 0]), length: 8 }],
                    destinationPorts: [8080, 9090],
                    notDestinationPorts: [22],
                  },
                ],
              },
            ],
          },
        ],
        dryRun: true,
      }),
    );
    expect([str(a, 1), str(a, 2)]).toEqual(['strict', 'demo']);
    expect([varint(a, 3), varint(a, 4)]).toEqual([2, 1]);
    expect(varint(a, 6)).toBe(1);
    const match = sub(sub(sub(a, 5), 1), 2);
    expect(str(sub(match, 1), 2)).toBe('de'); // namespaces → StringMatch.prefix
    expect(str(sub(match, 2), 3)).toBe('mo'); // not_namespaces → suffix
    expect(str(sub(match, 3), 1)).toBe('cluster.local/ns/demo/sa/frontend'); // principals → exact
    const presence = sub(match, 4); // not_principals → presence = 4 (google.protobuf.Empty)
    expect(one(presence, 4).wire).toBe(2);
    expect((one(presence, 4).value as Buffer).length).toBe(0);
    const ip = sub(match, 5);
    expect([...(one(ip, 1).value as Buffer)]).toEqual([10, 0, 0, 0]);
    expect(varint(ip, 2)).toBe(8);
    expect([...(one(match, 9).value as Buffer)]).toEqual([...writeVarint(8080), ...writeVarint(9090)]); // packed
    expect([...(one(match, 10).value as Buffer)]).toEqual([22]);
  });
});

describe('envoy delta xDS wire format', () => {
  it('DeltaDiscoveryRequest: node, type URL, subscriptions, initial versions, nonce, NACK detail', () => {
    const r = fields(
      encode('envoy.service.discovery.v3.DeltaDiscoveryRequest', {
        node: { id: 'sidecar~10.0.0.1~amesh-node-x.amesh-system~amesh-system.svc.cluster.local', cluster: 'Kubernetes', metadata: { fields: { NAME: { stringValue: 'x' } } } },
        typeUrl: 'type.googleapis.com/istio.workload.Address',
        resourceNamesSubscribe: ['*'],
        resourceNamesUnsubscribe: ['demo/gone'],
        initialResourceVersions: { 'uid-a': 'v1' },
        responseNonce: 'n-7',
        errorDetail: { code: 3, message: 'bad workload uid-a' },
      }),
    );
    const node = sub(r, 1);
    expect(str(node, 1)).toContain('amesh-node-x');
    expect(str(node, 2)).toBe('Kubernetes');
    expect(node.has(3)).toBe(true);
    expect(str(r, 2)).toBe('type.googleapis.com/istio.workload.Address');
    expect(strs(r, 3)).toEqual(['*']);
    expect(strs(r, 4)).toEqual(['demo/gone']);
    const [version] = subs(r, 5);
    expect([str(version as Map<number, Field[]>, 1), str(version as Map<number, Field[]>, 2)]).toEqual(['uid-a', 'v1']);
    expect(str(r, 6)).toBe('n-7');
    const status = sub(r, 7);
    expect([varint(status, 1), str(status, 2)]).toEqual([3, 'bad workload uid-a']);
  });

  it('DeltaDiscoveryResponse: resources with Any payloads, type URL 4, nonce 5, removals 6', () => {
    const workload = encode('istio.workload.Address', { workload: { uid: 'uid-a', name: 'a' } });
    const r = fields(
      encode('envoy.service.discovery.v3.DeltaDiscoveryResponse', {
        systemVersionInfo: '42',
        resources: [{ version: 'v2', name: 'uid-a', aliases: ['demo/a'], resource: { type_url: 'type.googleapis.com/istio.workload.Address', value: workload } }],
        typeUrl: 'type.googleapis.com/istio.workload.Address',
        nonce: 'n-8',
        removedResources: ['uid-b'],
      }),
    );
    expect(str(r, 1)).toBe('42');
    expect(r.has(3)).toBe(false);
    expect(str(r, 4)).toBe('type.googleapis.com/istio.workload.Address');
    expect(str(r, 5)).toBe('n-8');
    expect(strs(r, 6)).toEqual(['uid-b']);
    const resource = sub(r, 2);
    expect([str(resource, 1), str(resource, 3)]).toEqual(['v2', 'uid-a']);
    expect(strs(resource, 4)).toEqual(['demo/a']);
    const any = sub(resource, 2);
    expect(str(any, 1)).toBe('type.googleapis.com/istio.workload.Address');
    expect(str(sub(fields(one(any, 2).value as Buffer), 1), 20)).toBe('uid-a');
  });
});
