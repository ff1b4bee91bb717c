// Re-checking live inbound connections on a state change (issue #5): the pure decision as a
// table, and the tracker resetting exactly the refused connections.
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { recheckInbound, type InboundAttributes } from '../../src/node-agent/proxy/connection-recheck.js';
import { ConnectionTracker } from '../../src/node-agent/proxy/connection-tracker.js';
import { MeshState } from '../../src/node-agent/state/mesh-state.js';
import type { Authorization, MeshSnapshot, Workload } from '../../src/node-agent/state/types.js';

const server: Workload = { uid: 'demo/server', name: 'server', namespace: 'demo', addresses: ['10.244.1.5'], tunnelProtocol: 'HBONE', serviceAccount: 'server', node: 'node1', services: {} };
const attrs = (identity: string | null, port = 8080): InboundAttributes => ({
  connection: { sourceIdentity: identity, sourceIp: '10.244.2.7', destinationIp: '10.244.1.5', destinationPort: port },
  workloadUid: 'demo/server',
});
const alice = 'spiffe://cluster.local/ns/demo/sa/alice';
const bob = 'spiffe://cluster.local/ns/demo/sa/bob';
const allowAlice: Authorization = { name: 'allow-alice', namespace: 'demo', scope: 'NAMESPACE', action: 'ALLOW', rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/alice' }] }] }] }] };
const denyPort: Authorization = { name: 'deny-9090', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ destinationPorts: [9090] }] }] }] };
const otherNamespace: Authorization = { ...allowAlice, name: 'elsewhere', namespace: 'prod' };
const state = (over: Partial<MeshSnapshot>): MeshState => new MeshState({ trustDomain: 'cluster.local', workloads: [server], services: [], policies: [], ...over });

describe('recheckInbound', () => {
  it.each([
    ['no policies: kept', state({}), attrs(bob), { keep: true }],
    ['ALLOW for alice: alice kept', state({ policies: [allowAlice] }), attrs(alice), { keep: true }],
    ['ALLOW for alice: bob closed, policy named', state({ policies: [allowAlice] }), attrs(bob), { keep: false, decision: { unmatchedAllowPolicies: ['demo/allow-alice'] } }],
    ['ALLOW for alice: plaintext closed', state({ policies: [allowAlice] }), attrs(null), { keep: false }],
    ['DENY port 9090: other port kept', state({ policies: [denyPort] }), attrs(bob, 8080), { keep: true }],
    ['DENY port 9090: closed with rule', state({ policies: [denyPort] }), attrs(bob, 9090), { keep: false, decision: { policy: 'demo/deny-9090', rule: { index: 0, description: 'destinationPorts=9090' } } }],
    ['a policy of another namespace does not apply', state({ policies: [otherNamespace] }), attrs(bob), { keep: true }],
    ['dry-run DENY: kept', state({ policies: [{ ...denyPort, dryRun: true }] }), attrs(bob, 9090), { keep: true }],
    ['workload gone: closed', state({ workloads: [] }), attrs(alice), { keep: false, reason: 'destination workload demo/server no longer exists' }],
    ['address now another workload: closed', state({ workloads: [{ ...server, uid: 'demo/new' }] }), attrs(alice), { keep: false, reason: expect.stringContaining('now belongs to workload demo/new') }],
  ] as const)('%s', (_name, s, a, expected) => {
    expect(recheckInbound(s, a)).toMatchObject(expected);
  });
});

describe('ConnectionTracker.recheck', () => {
  it('resets only refused inbound connections and leaves untracked ones alone', () => {
    const tracker = new ConnectionTracker();
    const plainOutbound = new PassThrough();
    const fromAlice = new PassThrough();
    const fromBob = new PassThrough();
    tracker.add(plainOutbound);
    tracker.add(fromAlice, attrs(alice));
    tracker.add(fromBob, attrs(bob));
    expect(tracker.inboundSize).toBe(2);

    const s = state({ policies: [allowAlice] });
    const closed = tracker.recheck((a) => recheckInbound(s, a));
    expect(closed.map((c) => c.attributes.connection.sourceIdentity)).toEqual([bob]);
    expect(fromBob.destroyed).toBe(true);
    expect(fromAlice.destroyed).toBe(false);
    expect(plainOutbound.destroyed).toBe(false);
  });

  it('adding a tracked connection again attaches attributes without a second close listener', () => {
    const tracker = new ConnectionTracker();
    const s = new PassThrough();
    tracker.add(s);
    tracker.add(s, attrs(bob));
    expect(tracker.size).toBe(1);
    expect(tracker.inboundSize).toBe(1);
    expect(EventEmitter.listenerCount(s, 'close')).toBe(1);
    expect(tracker.describe()[0]).toMatchObject({ workload: 'demo/server', identity: bob });
  });
});
