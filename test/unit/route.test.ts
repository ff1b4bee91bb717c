import { describe, expect, it } from 'vitest';
import { MeshState } from '../../src/node-agent/state/mesh-state.js';
import { decideInbound, decideOutbound, endpointWeight, pickWeighted } from '../../src/node-agent/proxy/route.js';
import type { MeshSnapshot, Workload } from '../../src/node-agent/state/types.js';

const wl = (over: Partial<Workload>): Workload => ({ uid: 'x', name: 'x', namespace: 'demo', addresses: [], tunnelProtocol: 'HBONE', serviceAccount: 'default', services: {}, ...over });
const snapshot: MeshSnapshot = {
  trustDomain: 'cluster.local',
  workloads: [
    wl({ uid: 'demo/a', name: 'a', addresses: ['10.244.1.2'], node: 'node1', serviceAccount: 'sa-a' }),
    wl({ uid: 'demo/b1', name: 'b1', addresses: ['10.244.2.2'], node: 'node2', serviceAccount: 'sa-b', services: { 'demo/b.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } } }),
    wl({ uid: 'demo/b2', name: 'b2', addresses: ['10.244.1.3'], node: 'node1', serviceAccount: 'sa-b', services: { 'demo/b.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 0 }] } } }),
    wl({ uid: 'demo/plain', name: 'plain', addresses: ['10.244.2.9'], node: 'node2', tunnelProtocol: 'NONE' }),
    wl({ uid: 'demo/sick', name: 'sick', addresses: ['10.244.2.10'], node: 'node2', status: 'UNHEALTHY', services: { 'demo/empty.demo.svc.cluster.local': { ports: [] } } }),
  ],
  services: [
    { name: 'b', namespace: 'demo', hostname: 'b.demo.svc.cluster.local', addresses: ['10.96.0.20'], ports: [{ servicePort: 80, targetPort: 8080 }] },
    { name: 'empty', namespace: 'demo', hostname: 'empty.demo.svc.cluster.local', addresses: ['10.96.0.21'], ports: [{ servicePort: 80, targetPort: 80 }] },
  ],
  policies: [],
};
const state = new MeshState(snapshot);
// random() = 0 chooses the first endpoint with weight, just below 1 the last.
const first = (): number => 0;
const last = (): number => 0.999999;
const ctx = { state, node: 'node1', hbonePort: 15008, random: first };

describe('decideOutbound', () => {
  it('tunnels to a remote mesh workload via its IP:15008 with the workload as authority', () => {
    const r = decideOutbound(ctx, { ip: '10.244.2.2', port: 8080 });
    expect(r).toMatchObject({ kind: 'hbone', nextHop: { ip: '10.244.2.2', port: 15008 }, target: { ip: '10.244.2.2', port: 8080 }, sameNode: false, expectedIdentities: ['spiffe://cluster.local/ns/demo/sa/sa-b'] });
  });
  it('serves same-node destinations in-process', () => {
    expect(decideOutbound(ctx, { ip: '10.244.1.3', port: 80 })).toMatchObject({ kind: 'hbone', sameNode: true });
  });
  it('resolves a service VIP to an endpoint and its target port', () => {
    expect(decideOutbound(ctx, { ip: '10.96.0.20', port: 80 })).toMatchObject({ kind: 'hbone', target: { ip: '10.244.2.2', port: 8080 }, service: { name: 'b' } });
    // targetPort 0 on the workload falls back to the service's target port
    expect(decideOutbound({ ...ctx, random: last }, { ip: '10.96.0.20', port: 80 })).toMatchObject({ target: { ip: '10.244.1.3', port: 8080 } });
  });
  it('passes through to workloads outside the mesh and unknown destinations', () => {
    expect(decideOutbound(ctx, { ip: '10.244.2.9', port: 80 })).toMatchObject({ kind: 'passthrough', target: { ip: '10.244.2.9', port: 80 } });
    expect(decideOutbound(ctx, { ip: '192.0.2.1', port: 443 })).toMatchObject({ kind: 'passthrough' });
  });
  it.each([15001, 15006, 15008])('rejects mesh port %d (loop protection)', (port) => {
    expect(decideOutbound(ctx, { ip: '10.244.2.2', port })).toMatchObject({ kind: 'reject', code: 'loop' });
  });
  it('rejects a service port that does not exist and a service with no healthy endpoints', () => {
    expect(decideOutbound(ctx, { ip: '10.96.0.20', port: 81 })).toMatchObject({ kind: 'reject', code: 'no-port' });
    expect(decideOutbound(ctx, { ip: '10.96.0.21', port: 80 })).toMatchObject({ kind: 'reject', code: 'no-endpoints' });
  });
});

describe('weighted endpoint choice (ztunnel: capacity, absent = 1, 0 = never)', () => {
  const key = 'demo/w.demo.svc.cluster.local';
  const member = { [key]: { ports: [{ servicePort: 80, targetPort: 8080 }] } };
  const lbState = (capacities: Array<number | undefined>, protocols: Array<'HBONE' | 'NONE'> = []): MeshState =>
    new MeshState({
      trustDomain: 'cluster.local',
      workloads: capacities.map((capacity, i) =>
        wl({ uid: `demo/w${i}`, name: `w${i}`, addresses: [`10.244.3.${i + 1}`], node: 'node2', services: member, tunnelProtocol: protocols[i] ?? 'HBONE', ...(capacity === undefined ? {} : { capacity }) }),
      ),
      services: [{ name: 'w', namespace: 'demo', hostname: 'w.demo.svc.cluster.local', addresses: ['10.96.0.30'], ports: [{ servicePort: 80, targetPort: 8080 }] }],
      policies: [],
    });
  const chosen = (s: MeshState, r: number): string | undefined => {
    const route = decideOutbound({ state: s, node: 'node1', hbonePort: 15008, random: () => r }, { ip: '10.96.0.30', port: 80 });
    return route.kind === 'reject' ? route.code : route.workload?.uid;
  };

  it.each([
    // capacities, random(), chosen
    [[undefined, undefined], 0.49, 'demo/w0'],
    [[undefined, undefined], 0.5, 'demo/w1'],
    [[3, 1], 0.74, 'demo/w0'],
    [[3, 1], 0.75, 'demo/w1'],
    [[0, 1], 0, 'demo/w1'],
    [[1, 0], 0.999999, 'demo/w0'],
    [[0, 2, 0, 2], 0.5, 'demo/w3'],
    [[0, 0], 0.3, 'no-endpoints'],
  ] as const)('capacities %j, random %d → %s', (capacities, r, expected) => {
    expect(chosen(lbState([...capacities]), r)).toBe(expected);
  });

  it('spreads choices in proportion to capacity', () => {
    const s = lbState([1, 3]);
    const counts = new Map<string | undefined, number>();
    const steps = 1000;
    for (let i = 0; i < steps; i++) {
      const uid = chosen(s, i / steps);
      counts.set(uid, (counts.get(uid) ?? 0) + 1);
    }
    expect(counts.get('demo/w0')).toBe(250);
    expect(counts.get('demo/w1')).toBe(750);
  });

  it('sends plain TCP (passthrough) to a chosen endpoint outside the mesh, HBONE to one inside', () => {
    const s = lbState([1, 1], ['NONE', 'HBONE']);
    const toPlain = decideOutbound({ state: s, node: 'node1', hbonePort: 15008, random: first }, { ip: '10.96.0.30', port: 80 });
    expect(toPlain).toMatchObject({ kind: 'passthrough', target: { ip: '10.244.3.1', port: 8080 }, workload: { uid: 'demo/w0' }, service: { name: 'w' } });
    const toMesh = decideOutbound({ state: s, node: 'node1', hbonePort: 15008, random: last }, { ip: '10.96.0.30', port: 80 });
    expect(toMesh).toMatchObject({ kind: 'hbone', nextHop: { ip: '10.244.3.2', port: 15008 }, target: { ip: '10.244.3.2', port: 8080 } });
  });

  it('skips endpoints without an address (hostname-only workloads from xDS)', () => {
    const s = new MeshState({ ...lbState([1, 1]).snapshot, workloads: lbState([1, 1]).snapshot.workloads.map((w, i) => (i === 0 ? { ...w, addresses: [] } : w)) });
    expect(chosen(s, 0)).toBe('demo/w1');
  });

  it('pickWeighted: weights, negative as 0, empty list', () => {
    expect(pickWeighted(['a', 'b'], (x) => (x === 'a' ? -5 : 1), () => 0)).toBe('b');
    expect(pickWeighted([], () => 1, () => 0)).toBeUndefined();
    expect(endpointWeight(wl({}))).toBe(1);
    expect(endpointWeight(wl({ capacity: 0 }))).toBe(0);
  });
});

describe('decideInbound', () => {
  it.each([
    ['local mesh workload', '10.244.1.2', 8080, '10.244.1.2', true, undefined],
    ['target differs from dialled address', '10.244.1.3', 8080, '10.244.1.2', false, 400],
    ['mesh port as target', '10.244.1.2', 15008, '10.244.1.2', false, 400],
    ['unknown address', '10.244.1.99', 80, '10.244.1.99', false, 503],
    ['workload on another node', '10.244.2.2', 80, '10.244.2.2', false, 503],
  ] as const)('%s', (_n, ip, port, dialled, ok, status) => {
    const d = decideInbound(state, 'node1', { ip, port }, dialled);
    expect(d.ok).toBe(ok);
    if (!d.ok) expect(d.status).toBe(status);
  });
});
