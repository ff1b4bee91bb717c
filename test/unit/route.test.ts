import { describe, expect, it } from 'vitest';
import { MeshState } from '../../src/node-agent/state/mesh-state.js';
import { decideInbound, decideOutbound } from '../../src/node-agent/proxy/route.js';
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
const first = <T>(items: T[]): T => items[0]!;
const last = <T>(items: T[]): T => items[items.length - 1]!;
const ctx = { state, node: 'node1', hbonePort: 15008, pick: first };

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
    expect(decideOutbound({ ...ctx, pick: last }, { ip: '10.96.0.20', port: 80 })).toMatchObject({ target: { ip: '10.244.1.3', port: 8080 } });
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
