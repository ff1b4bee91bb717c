import { describe, expect, it } from 'vitest';
import { MeshState } from '../../src/node-agent/state/mesh-state.js';
import { decideInbound, decideLeavingSource, decideOutbound, endpointWeight, pickWeighted } from '../../src/node-agent/proxy/route.js';
import type { GatewayAddress, MeshSnapshot, Service, Workload } from '../../src/node-agent/state/types.js';

const wl = (over: Partial<Workload>): Workload => ({ uid: 'x', name: 'x', namespace: 'demo', addresses: [], tunnelProtocol: 'HBONE', serviceAccount: 'default', services: {}, ...over });
const snapshot: MeshSnapshot = {
  trustDomain: 'cluster.local',
  workloads: [
    wl({ uid: 'demo/a', name: 'a', addresses: ['10.244.1.2'], node: 'node1', serviceAccount: 'sa-a' }),
    wl({ uid: 'demo/b1', name: 'b1', addresses: ['10.244.2.2'], node: 'node2', serviceAccount: 'sa-b', services: { 'demo/b.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } } }),
    wl({ uid: 'demo/b2', name: 'b2', addresses: ['10.244.1.3'], node: 'node1', serviceAccount: 'sa-b', services: { 'demo/b.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 0 }] } } }),
    wl({ uid: 'demo/plain', name: 'plain', addresses: ['10.244.2.9'], node: 'node2', tunnelProtocol: 'NONE' }),
    wl({ uid: 'demo/leaving', name: 'leaving', addresses: ['10.244.1.9'], node: 'node1', tunnelProtocol: 'NONE' }),
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
  it('routes a captured source that is leaving the mesh as if uncaptured: same-node pods in-process, the rest as plain TCP', () => {
    const leaving = { ...ctx, source: state.workloadByIp('10.244.1.9')! };
    // Service VIP → endpoint on another node: plain TCP to that endpoint (its node captures it as plaintext).
    expect(decideLeavingSource(leaving, { ip: '10.96.0.20', port: 80 })).toMatchObject({ kind: 'passthrough', target: { ip: '10.244.2.2', port: 8080 }, service: { name: 'b' } });
    // → endpoint on this node: in-process, as the destination's plaintext capture (the caller passes no identity).
    expect(decideLeavingSource({ ...leaving, random: last }, { ip: '10.96.0.20', port: 80 })).toMatchObject({ kind: 'hbone', sameNode: true, target: { ip: '10.244.1.3', port: 8080 } });
    expect(decideLeavingSource(leaving, { ip: '10.244.2.2', port: 8080 })).toMatchObject({ kind: 'passthrough', target: { ip: '10.244.2.2', port: 8080 } });
    expect(decideLeavingSource(leaving, { ip: '10.244.2.9', port: 80 })).toMatchObject({ kind: 'passthrough' });
    expect(decideLeavingSource(leaving, { ip: '10.244.2.2', port: 15008 })).toMatchObject({ kind: 'reject', code: 'loop' });
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

describe('waypoint hand-off (DESIGN §4, §7)', () => {
  const WP_KEY = 'demo/waypoint.demo.svc.cluster.local';
  const WP_ID = 'spiffe://cluster.local/ns/demo/sa/waypoint';
  const wpMember = { [WP_KEY]: { ports: [{ servicePort: 15008, targetPort: 15008 }] } };
  const byVip: GatewayAddress = { address: { address: '10.96.0.50' }, hboneMtlsPort: 15008 };
  const byHostname: GatewayAddress = { hostname: { namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local' }, hboneMtlsPort: 15009 };
  const svc = (name: string, vip: string | string[], over: Partial<Service> = {}): Service => ({
    name,
    namespace: 'demo',
    hostname: `${name}.demo.svc.cluster.local`,
    addresses: Array.isArray(vip) ? vip : [vip],
    ports: [{ servicePort: 9080, targetPort: 9080 }],
    ...over,
  });
  const member = (name: string): Workload['services'] => ({ [`demo/${name}.demo.svc.cluster.local`]: { ports: [{ servicePort: 9080, targetPort: 9080 }] } });
  // Waypoint pods are never captured (dataplane-mode none): tunnelProtocol NONE. wp1 runs on this node.
  const wp1 = wl({ uid: 'demo/wp1', name: 'wp1', addresses: ['10.244.1.50', 'fd00::1:50'], node: 'node1', serviceAccount: 'waypoint', tunnelProtocol: 'NONE', services: wpMember });
  const wp2 = wl({ uid: 'demo/wp2', name: 'wp2', addresses: ['10.244.2.50'], node: 'node2', serviceAccount: 'waypoint', tunnelProtocol: 'NONE', services: wpMember });
  const wpSick = wl({ uid: 'demo/wp-sick', name: 'wp-sick', addresses: ['10.244.2.51'], node: 'node1', serviceAccount: 'waypoint', tunnelProtocol: 'NONE', status: 'UNHEALTHY', services: wpMember });
  const client = wl({ uid: 'demo/client', name: 'client', addresses: ['10.244.1.10'], node: 'node1', serviceAccount: 'client' });
  const waypointState = (over: { waypointPods?: Workload[] } = {}): MeshState =>
    new MeshState({
      trustDomain: 'cluster.local',
      workloads: [
        ...(over.waypointPods ?? [wp1, wp2, wpSick]),
        client,
        wl({ uid: 'demo/r1', name: 'r1', addresses: ['10.244.2.40', 'fd00::2:40'], node: 'node2', serviceAccount: 'reviews', services: { ...member('reviews'), ...member('ratings'), ...member('plain') } }),
        wl({ uid: 'demo/db', name: 'db', addresses: ['10.244.2.60'], node: 'node2', serviceAccount: 'db', waypoint: byVip }),
        wl({ uid: 'demo/db-local', name: 'db-local', addresses: ['10.244.1.60'], node: 'node1', serviceAccount: 'db', waypoint: byHostname }),
        wl({ uid: 'demo/db-pod-wp', name: 'db-pod-wp', addresses: ['10.244.2.61'], node: 'node2', serviceAccount: 'db', waypoint: { address: { address: '10.244.2.50' }, hboneMtlsPort: 15008 } }),
        // Bound to a workload waypoint, but reached through a service without one (below).
        wl({ uid: 'demo/e1', name: 'e1', addresses: ['10.244.2.70'], node: 'node2', serviceAccount: 'e', waypoint: byVip, services: member('endpoints-bound') }),
      ],
      services: [
        svc('waypoint', '10.96.0.50', { ports: [{ servicePort: 15008, targetPort: 15008 }] }),
        svc('reviews', ['10.96.0.40', 'fd00:96::40'], { waypoint: byVip }),
        svc('ratings', '10.96.0.41', { waypoint: byHostname }),
        svc('plain', '10.96.0.42'),
        svc('ghost', '10.96.0.43', { waypoint: { address: { address: '10.96.9.9' }, hboneMtlsPort: 15008 } }),
        svc('lost', '10.96.0.44', { waypoint: { hostname: { namespace: 'demo', hostname: 'gone.demo.svc.cluster.local' }, hboneMtlsPort: 15008 } }),
        svc('endpoints-bound', '10.96.0.45'),
      ],
      policies: [],
    });
  const s = waypointState();
  const wctx = { state: s, node: 'node1', hbonePort: 15008, random: first, source: client };

  it('a source leaving the mesh is not sent through a waypoint (its HBONE needs an identity)', () => {
    const leaving = wl({ ...client, tunnelProtocol: 'NONE' });
    expect(decideLeavingSource({ ...wctx, source: leaving }, { ip: '10.96.0.40', port: 9080 })).toMatchObject({ kind: 'reject', code: 'leaving-mesh' });
    expect(decideLeavingSource({ ...wctx, source: leaving }, { ip: '10.96.0.42', port: 9080 })).toMatchObject({ kind: 'passthrough', target: { ip: '10.244.2.40', port: 9080 } });
  });

  it('sends service-addressed traffic to the service’s waypoint (address form) with the VIP:port as authority', () => {
    const r = decideOutbound(wctx, { ip: '10.96.0.40', port: 9080 });
    expect(r).toEqual({
      kind: 'waypoint',
      waypoint: { name: WP_KEY, pod: wp1 },
      nextHop: { ip: '10.244.1.50', port: 15008 },
      target: { ip: '10.96.0.40', port: 9080 },
      expectedIdentities: [WP_ID],
      service: expect.objectContaining({ name: 'reviews' }),
    });
    // A waypoint pod on this very node is still dialled over the network: there is no in-process form.
    expect(r).not.toHaveProperty('sameNode');
  });

  it('chooses among the waypoint’s healthy pods with the weighted picker, never an unhealthy one', () => {
    expect(decideOutbound({ ...wctx, random: last }, { ip: '10.96.0.40', port: 9080 })).toMatchObject({ kind: 'waypoint', waypoint: { pod: { uid: 'demo/wp2' } }, nextHop: { ip: '10.244.2.50', port: 15008 } });
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const r = decideOutbound({ ...wctx, random: () => i / 100 }, { ip: '10.96.0.40', port: 9080 });
      if (r.kind === 'waypoint') seen.add(r.waypoint.pod.uid);
    }
    expect([...seen].sort()).toEqual(['demo/wp1', 'demo/wp2']);
    // capacity 0 = never chosen, as for service endpoints
    const weighted = waypointState({ waypointPods: [{ ...wp1, capacity: 0 }, wp2] });
    expect(decideOutbound({ ...wctx, state: weighted }, { ip: '10.96.0.40', port: 9080 })).toMatchObject({ waypoint: { pod: { uid: 'demo/wp2' } } });
  });

  it('resolves the hostname form through the waypoint Service and uses its HBONE port', () => {
    expect(decideOutbound(wctx, { ip: '10.96.0.41', port: 9080 })).toMatchObject({
      kind: 'waypoint',
      waypoint: { name: WP_KEY, pod: { uid: 'demo/wp1' } },
      nextHop: { ip: '10.244.1.50', port: 15009 },
      target: { ip: '10.96.0.41', port: 9080 },
    });
  });

  it('dials the waypoint pod in the family of the destination', () => {
    expect(decideOutbound(wctx, { ip: 'fd00:96::40', port: 9080 })).toMatchObject({ kind: 'waypoint', nextHop: { ip: 'fd00::1:50', port: 15008 }, target: { ip: 'fd00:96::40', port: 9080 } });
  });

  it.each([
    ['address form (the waypoint VIP)', '10.244.2.60', 'demo/db', { ip: '10.244.1.50', port: 15008 }, WP_KEY],
    ['hostname form, destination on this node', '10.244.1.60', 'demo/db-local', { ip: '10.244.1.50', port: 15009 }, WP_KEY],
    ['address form naming a waypoint pod IP', '10.244.2.61', 'demo/db-pod-wp', { ip: '10.244.2.50', port: 15008 }, 'demo/wp2'],
  ] as const)('sends workload-addressed traffic to the workload’s waypoint: %s', (_n, ip, uid, nextHop, name) => {
    expect(decideOutbound(wctx, { ip, port: 5432 })).toEqual({
      kind: 'waypoint',
      waypoint: { name, pod: expect.objectContaining({ serviceAccount: 'waypoint' }) },
      nextHop,
      target: { ip, port: 5432 },
      expectedIdentities: [WP_ID],
      workload: expect.objectContaining({ uid }),
    });
  });

  it('applies a service’s waypoint to service traffic only, a workload’s to workload traffic only', () => {
    // r1 backs the bound service reviews, but has no waypoint of its own: addressed directly, no waypoint.
    expect(decideOutbound(wctx, { ip: '10.244.2.40', port: 9080 })).toMatchObject({ kind: 'hbone', nextHop: { ip: '10.244.2.40', port: 15008 }, target: { ip: '10.244.2.40', port: 9080 } });
    // plain (no waypoint) reaches r1 directly.
    expect(decideOutbound(wctx, { ip: '10.96.0.42', port: 9080 })).toMatchObject({ kind: 'hbone', workload: { uid: 'demo/r1' } });
    // e1 has a workload waypoint, but reached through a service without one: direct.
    expect(decideOutbound(wctx, { ip: '10.96.0.45', port: 9080 })).toMatchObject({ kind: 'hbone', workload: { uid: 'demo/e1' }, target: { ip: '10.244.2.70', port: 9080 } });
  });

  it.each([
    ['a waypoint VIP that is neither service nor workload', '10.96.0.43', /ghost.*waypoint 10\.96\.9\.9.*neither a known service nor a workload/],
    ['a waypoint hostname that is no service', '10.96.0.44', /lost.*waypoint demo\/gone\.demo\.svc\.cluster\.local/],
  ] as const)('fails closed (no-waypoint), never bypassing the waypoint: %s', (_n, ip, reason) => {
    const r = decideOutbound(wctx, { ip, port: 9080 });
    expect(r).toMatchObject({ kind: 'reject', code: 'no-waypoint' });
    if (r.kind === 'reject') expect(r.reason).toMatch(reason);
  });

  it('fails closed when the waypoint has no healthy pod (service, hostname and pod-IP forms)', () => {
    const none = waypointState({ waypointPods: [wpSick] });
    for (const [ip, port] of [['10.96.0.40', 9080], ['10.96.0.41', 9080], ['10.244.2.60', 5432]] as const) {
      const r = decideOutbound({ ...wctx, state: none }, { ip, port });
      expect(r).toMatchObject({ kind: 'reject', code: 'no-waypoint' });
      if (r.kind === 'reject') expect(r.reason).toContain(`waypoint ${WP_KEY}, which has no healthy pod`);
    }
    const podGone = waypointState({ waypointPods: [wp1, { ...wp2, status: 'UNHEALTHY' }] });
    expect(decideOutbound({ ...wctx, state: podGone }, { ip: '10.244.2.61', port: 5432 })).toMatchObject({ kind: 'reject', code: 'no-waypoint', reason: expect.stringContaining('waypoint demo/wp2, which has no healthy pod') });
  });

  it('keeps the port check and loop protection ahead of the waypoint', () => {
    expect(decideOutbound(wctx, { ip: '10.96.0.40', port: 81 })).toMatchObject({ kind: 'reject', code: 'no-port' });
    expect(decideOutbound(wctx, { ip: '10.244.2.60', port: 15008 })).toMatchObject({ kind: 'reject', code: 'loop' });
  });

  it.each([
    ['a healthy waypoint pod', wp1],
    ['another pod of the same waypoint', wp2],
    ['an unhealthy pod of the waypoint', wpSick],
  ] as const)('never sends traffic from %s back to its waypoint', (_n, source) => {
    expect(decideOutbound({ ...wctx, source }, { ip: '10.96.0.40', port: 9080 })).toMatchObject({ kind: 'hbone', workload: { uid: 'demo/r1' }, target: { ip: '10.244.2.40', port: 9080 } });
    expect(decideOutbound({ ...wctx, source }, { ip: '10.96.0.41', port: 9080 })).toMatchObject({ kind: 'hbone', workload: { uid: 'demo/r1' } });
    expect(decideOutbound({ ...wctx, source }, { ip: '10.244.2.60', port: 5432 })).toMatchObject({ kind: 'hbone', workload: { uid: 'demo/db' }, target: { ip: '10.244.2.60', port: 5432 } });
  });

  it('loop protection for a waypoint addressed by pod IP covers that pod only', () => {
    expect(decideOutbound({ ...wctx, source: wp2 }, { ip: '10.244.2.61', port: 5432 })).toMatchObject({ kind: 'hbone', workload: { uid: 'demo/db-pod-wp' } });
    expect(decideOutbound({ ...wctx, source: wp1 }, { ip: '10.244.2.61', port: 5432 })).toMatchObject({ kind: 'waypoint', waypoint: { name: 'demo/wp2' } });
  });

  it('without a source in the context, the waypoint applies', () => {
    const { source: _unused, ...noSource } = wctx;
    expect(decideOutbound(noSource, { ip: '10.96.0.40', port: 9080 })).toMatchObject({ kind: 'waypoint' });
  });

  it('inbound accepts the waypoint’s onward tunnel unchanged: endpoint IP:target port, dialled at the endpoint IP', () => {
    // The waypoint opens HBONE to <endpoint IP>:15008 with :authority <endpoint IP>:<target port>.
    expect(decideInbound(s, 'node2', { ip: '10.244.2.40', port: 9080 }, '10.244.2.40')).toMatchObject({ ok: true, workload: { uid: 'demo/r1' }, target: { ip: '10.244.2.40', port: 9080 } });
    // A workload bound to a waypoint is still admitted when the waypoint delivers to it.
    expect(decideInbound(s, 'node2', { ip: '10.244.2.60', port: 5432 }, '10.244.2.60')).toMatchObject({ ok: true, workload: { uid: 'demo/db' } });
    // The VIP as :authority is the client→waypoint leg only; a node agent never accepts it.
    expect(decideInbound(s, 'node2', { ip: '10.96.0.40', port: 9080 }, '10.244.2.40')).toMatchObject({ ok: false, status: 400 });
  });
});

describe('decideInbound', () => {
  it.each([
    ['local mesh workload', '10.244.1.2', 8080, '10.244.1.2', true, undefined],
    ['target differs from dialled address', '10.244.1.3', 8080, '10.244.1.2', false, 400],
    ['mesh port as target', '10.244.1.2', 15008, '10.244.1.2', false, 400],
    ['unknown address', '10.244.1.99', 80, '10.244.1.99', false, 503],
    ['workload on another node', '10.244.2.2', 80, '10.244.2.2', false, 503],
    // Being unenrolled: the capture still sends its connections here for a moment (delivered, not reset).
    ['local workload out of the mesh', '10.244.1.9', 80, '10.244.1.9', true, undefined],
    ['remote workload out of the mesh', '10.244.2.9', 80, '10.244.2.9', false, 503],
  ] as const)('%s', (_n, ip, port, dialled, ok, status) => {
    const d = decideInbound(state, 'node1', { ip, port }, dialled);
    expect(d.ok).toBe(ok);
    if (!d.ok) expect(d.status).toBe(status);
  });
});
