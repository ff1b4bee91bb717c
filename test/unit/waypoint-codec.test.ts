/**
 * WaypointConfig ↔ amesh.l7.v1.WaypointConfig bytes: round trip, determinism, and refusal of
 * everything the schema forbids with `waypointConfig.<path>: <problem>`.
 */
import { describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import { xdsProto } from '../../src/xds/proto.js';
import { decodeWaypointConfig, encodeWaypointConfig, waypointConfigResourceName, WAYPOINT_CONFIG_TYPE_URL } from '../../src/xds/waypoint-codec.js';

const V1 = 'outbound|80|v1|backend.demo.svc.cluster.local';
const ALL = 'outbound|80||backend.demo.svc.cluster.local';

function sample(): WaypointConfig {
  return {
    namespace: 'demo',
    name: 'waypoint',
    identity: 'spiffe://cluster.local/ns/demo/sa/waypoint',
    services: [
      {
        key: 'demo/backend.demo.svc.cluster.local',
        namespace: 'demo',
        hostname: 'backend.demo.svc.cluster.local',
        addresses: ['10.96.0.10'],
        ports: [
          {
            port: 80,
            protocol: 'HTTP',
            defaultCluster: ALL,
            routes: [
              {
                name: 'VirtualService/demo/backend#0',
                matches: [{ path: { kind: 'regex', value: '^/api/v[0-9]+' }, headers: [{ name: 'x', invert: true }], method: 'GET' }],
                action: { kind: 'forward', backends: [{ cluster: V1, weight: 90, requestHeaders: { set: { a: 'b' } } }, { cluster: ALL, weight: 0 }] },
                rewrite: { path: { kind: 'prefix', value: '/' } },
                mirrors: [{ cluster: ALL, percent: 12.5 }],
                timeoutMs: 1500,
              },
              { name: 'VirtualService/demo/backend#1', matches: [], action: { kind: 'redirect', redirect: { statusCode: 308, scheme: 'https', port: 443 } } },
            ],
          },
        ],
      },
    ],
    clusters: [
      { name: ALL, service: 'demo/backend.demo.svc.cluster.local', port: 80, lb: 'LEAST_REQUEST', endpoints: [{ address: '10.0.0.11', port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/backend', hbone: true, workload: 'uid-1' }] },
      { name: V1, service: 'demo/backend.demo.svc.cluster.local', port: 80, subset: 'v1', lb: 'ROUND_ROBIN', endpoints: [] },
    ],
  };
}

function refusal(mutate: (c: WaypointConfig & Record<string, unknown>) => void): string {
  const c = sample() as WaypointConfig & Record<string, unknown>;
  mutate(c);
  try {
    encodeWaypointConfig(c);
  } catch (err) {
    if (!isAmeshError(err, 'AMESH_XDS_INVALID_RESOURCE')) throw err;
    // The decoder refuses the same thing with the same words.
    const type = xdsProto().waypointConfig;
    const bytes = type.encode(type.create({ json: JSON.stringify(c) })).finish();
    expect(() => decodeWaypointConfig(bytes)).toThrow(err.message);
    return err.message;
  }
  throw new Error('encodeWaypointConfig accepted an invalid config');
}

const port0 = (c: WaypointConfig) => c.services[0]!.ports[0]!;
const route0 = (c: WaypointConfig) => port0(c).routes[0]!;

describe('waypoint codec', () => {
  it('round-trips and is deterministic', () => {
    const bytes = encodeWaypointConfig(sample());
    expect(decodeWaypointConfig(bytes)).toEqual(sample());
    expect(encodeWaypointConfig(sample())).toEqual(bytes);
    expect(WAYPOINT_CONFIG_TYPE_URL).toBe('type.googleapis.com/amesh.l7.v1.WaypointConfig');
    expect(waypointConfigResourceName(sample())).toBe('demo/waypoint');
  });

  it.each<[string, (c: WaypointConfig & Record<string, unknown>) => void, string]>([
    ['an unknown field', (c) => (c.extra = 1), 'waypointConfig: Unrecognized key(s) in object: \'extra\''],
    ['a regex that does not compile', (c) => (route0(c).matches[0]!.path = { kind: 'regex', value: '(' }), 'waypointConfig.services[0].ports[0].routes[0].matches[0].path.value: "(" is not a valid regular expression'],
    [
      'a negative weight',
      (c) => {
        const action = route0(c).action;
        if (action.kind === 'forward') action.backends[0]!.weight = -1;
      },
      'waypointConfig.services[0].ports[0].routes[0].action.backends[0].weight: Number must be greater than or equal to 0',
    ],
    ['weights totalling 0', (c) => (route0(c).action = { kind: 'forward', backends: [{ cluster: V1, weight: 0 }] }), 'waypointConfig.services[0].ports[0].routes[0].action.backends: the backends’ weights total 0'],
    ['port 0', (c) => (port0(c).port = 0), 'waypointConfig.services[0].ports[0].port: Number must be greater than or equal to 1'],
    ['port 65536', (c) => (c.clusters[0]!.endpoints[0]!.port = 65536), 'waypointConfig.clusters[0].endpoints[0].port: Number must be less than or equal to 65535'],
    ['duplicate route names on a port', (c) => (port0(c).routes[1]!.name = route0(c).name), 'waypointConfig.services[0].ports[0].routes[1].name: duplicate route name "VirtualService/demo/backend#0" on port 80'],
    ['an undefined cluster', (c) => (c.clusters = c.clusters.filter((cl) => cl.name !== V1)), `waypointConfig.services[0].ports[0].routes[0].action.backends[0].cluster: cluster "${V1}" is not defined in clusters`],
    ['an undefined mirror cluster', (c) => (route0(c).mirrors = [{ cluster: 'nope' }]), 'waypointConfig.services[0].ports[0].routes[0].mirrors[0].cluster: cluster "nope" is not defined in clusters'],
    ['a bad redirect code', (c) => (port0(c).routes[1]!.action = { kind: 'redirect', redirect: { statusCode: 200 } }), 'waypointConfig.services[0].ports[0].routes[1].action.redirect.statusCode: must be one of 301, 302, 303, 307, 308'],
    ['an unknown load balancer', (c) => ((c.clusters[0] as { lb: string }).lb = 'MAGLEV'), 'waypointConfig.clusters[0].lb: Invalid enum value'],
  ])('refuses %s', (_what, mutate, message) => {
    expect(refusal(mutate)).toContain(message);
  });

  it('refuses bytes that are not the message, and JSON that is not JSON', () => {
    expect(() => decodeWaypointConfig(Uint8Array.from([0x0a, 0x05, 0x7b]))).toThrow(/^waypointConfig: not a valid amesh.l7.v1.WaypointConfig/);
    const type = xdsProto().waypointConfig;
    expect(() => decodeWaypointConfig(type.encode(type.create({ json: '{' })).finish())).toThrow(/^waypointConfig.json: not valid JSON/);
    expect(() => decodeWaypointConfig(new Uint8Array())).toThrow(/^waypointConfig.json: not valid JSON/);
  });
});
