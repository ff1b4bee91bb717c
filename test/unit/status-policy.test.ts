import { describe, expect, it } from 'vitest';
import { MESH_ROOT_NAMESPACE } from '../../src/controller/mesh/compute-mesh-resources.js';
import { authorizationPolicyConditions, conditionsEqual, nextConditions, peerAuthenticationConditions, PolicyStatusWriter, type Condition } from '../../src/controller/status/policy-status.js';
import type { AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import type { PeerAuthenticationObject } from '../../src/controller/translate/peer-authentication.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const ap = (spec: AuthorizationPolicyObject['spec'], namespace = 'demo', extra: Record<string, unknown> = {}): AuthorizationPolicyObject => ({ metadata: { name: 'p', namespace, generation: 3 } as AuthorizationPolicyObject['metadata'], spec, ...extra });
const pa = (spec: PeerAuthenticationObject['spec'], namespace = 'demo'): PeerAuthenticationObject => ({ metadata: { name: 'p', namespace }, spec });

describe('authorizationPolicyConditions', () => {
  it('accepts a policy node agents enforce as written', () => {
    expect(authorizationPolicyConditions(ap({ selector: { matchLabels: { app: 'a' } }, rules: [{ from: [{ source: { namespaces: ['x'] } }] }] }))).toEqual([
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by node agents (L4), on the selected workloads' },
    ]);
    expect(authorizationPolicyConditions(ap({ action: 'DENY', rules: [{}] }, MESH_ROOT_NAMESPACE))?.[0]?.message).toContain('mesh-wide');
  });

  it('names each ignored L7 field in a Warning condition', () => {
    const conditions = authorizationPolicyConditions(ap({ rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/x'] } }] }] }));
    expect(conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Accepted', 'True', 'Accepted'],
      ['Warning', 'True', 'IgnoredFields'],
    ]);
    expect(conditions?.[1]?.message).toContain('spec.rules[0].to[0].operation.methods');
    expect(conditions?.[1]?.message).toContain('spec.rules[0].to[0].operation.paths');
  });

  it('does not accept an action node agents cannot enforce', () => {
    expect(authorizationPolicyConditions(ap({ action: 'CUSTOM' }))).toEqual([{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: expect.stringContaining('spec.action: CUSTOM') }]);
  });

  it('places waypoint policies (targetRefs) on waypoints, not node agents (details: policy-status-l7.test.ts)', () => {
    // Without a view no waypoint is known: the target is named as not found.
    expect(authorizationPolicyConditions(ap({ targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'w' }] }))).toEqual([
      { type: 'Accepted', status: 'False', reason: 'TargetNotFound', message: expect.stringContaining('spec.targetRefs[0]: waypoint demo/w not found') },
    ]);
  });
});

describe('peerAuthenticationConditions', () => {
  it.each([
    ['namespace STRICT', pa({ mtls: { mode: 'STRICT' } }), undefined],
    ['DISABLE acts as PERMISSIVE', pa({ mtls: { mode: 'DISABLE' } }), 'spec.mtls.mode: DISABLE acts as PERMISSIVE'],
    ['port-level without selector', pa({ mtls: { mode: 'STRICT' }, portLevelMtls: { '80': { mode: 'PERMISSIVE' } } }), 'spec.portLevelMtls: ignored, port-level modes need a workload selector'],
    ['invalid port', pa({ selector: { matchLabels: { app: 'a' } }, portLevelMtls: { x: { mode: 'STRICT' } } }), 'spec.portLevelMtls[x]: not a port number'],
  ])('%s', (_what, policy, warning) => {
    const conditions = peerAuthenticationConditions(policy);
    expect(conditions[0]).toMatchObject({ type: 'Accepted', status: 'True' });
    if (warning) expect(conditions[1]).toMatchObject({ type: 'Warning', status: 'True', message: expect.stringContaining(warning) });
    else expect(conditions).toHaveLength(1);
  });
});

describe('nextConditions / conditionsEqual', () => {
  const then = '2026-01-01T00:00:00.000Z';
  const now = new Date('2026-02-02T00:00:00.000Z');
  const current: Condition[] = [
    { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'old', observedGeneration: 1, lastTransitionTime: then },
    { type: 'WaypointAccepted', status: 'True', reason: 'Bound', message: 'not ours', lastTransitionTime: then },
  ];

  it('keeps the transition time while the status holds, keeps other writers’ conditions, stamps the generation', () => {
    const next = nextConditions([{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'new' }], current, 2, now);
    expect(next).toEqual([
      current[1],
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'new', observedGeneration: 2, lastTransitionTime: then },
    ]);
    const flipped = nextConditions([{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: 'x' }], current, 2, now);
    expect(flipped[1]?.lastTransitionTime).toBe(now.toISOString());
  });

  it('compares without the times', () => {
    const same = nextConditions([{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'old' }], current, 1, now);
    expect(conditionsEqual(current, same)).toBe(true);
    expect(conditionsEqual(current, nextConditions([{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'old' }], current, 2, now))).toBe(false);
  });
});

describe('PolicyStatusWriter', () => {
  it('writes only changed status, and carries on after 404/405', async () => {
    const writes: string[] = [];
    const writer = new PolicyStatusWriter({
      log: silentLogger,
      now: () => new Date('2026-03-03T00:00:00.000Z'),
      patch: async (resource, namespace, name, status) => {
        if (name === 'no-status') throw Object.assign(new Error('Method Not Allowed'), { code: 405 });
        writes.push(`${resource.plural} ${namespace}/${name} ${status.conditions.map((c) => `${c.type}=${c.status}`).join(',')}`);
      },
    });
    const fresh = { metadata: { name: 'fresh', namespace: 'demo', generation: 1 }, spec: { action: 'DENY', rules: [{}] } } as AuthorizationPolicyObject;
    const upToDate = {
      metadata: { name: 'done', namespace: 'demo', generation: 1 },
      spec: { mtls: { mode: 'STRICT' } },
      status: { conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by node agents, namespace-wide', observedGeneration: 1, lastTransitionTime: 'x' }] },
    } as PeerAuthenticationObject;
    const unsupported = { metadata: { name: 'no-status', namespace: 'demo' }, spec: {} } as AuthorizationPolicyObject;
    writer.reconcile({ authorizationPolicies: [fresh, unsupported], peerAuthentications: [upToDate, pa({ mtls: { mode: 'DISABLE' } })] });
    await writer.idle();
    expect(writes).toEqual(['authorizationpolicies demo/fresh Accepted=True', 'peerauthentications demo/p Accepted=True,Warning=True']);
  });
});
