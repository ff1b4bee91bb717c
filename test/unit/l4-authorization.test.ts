import { describe, expect, it } from 'vitest';
import { decisionLogFields, describeRule, evaluateL4, ipInPrefix, type L4Connection } from '../../src/policy/l4-authorization.js';
import type { Authorization } from '../../src/node-agent/state/types.js';

const alice = 'spiffe://cluster.local/ns/demo/sa/alice';
const conn = (over: Partial<L4Connection> = {}): L4Connection => ({
  sourceIdentity: alice,
  sourceIp: '10.244.1.2',
  destinationIp: '10.244.2.2',
  destinationPort: 8080,
  ...over,
});
const policy = (p: Partial<Authorization>): Authorization => ({ name: 'p', namespace: 'demo', scope: 'NAMESPACE', action: 'ALLOW', rules: [], ...p });
const strict = policy({ name: 'strict', action: 'DENY', rules: [{ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }] }] }] }] });

describe('evaluateL4', () => {
  const cases: Array<[string, Authorization[], Partial<L4Connection>, boolean]> = [
    ['no policies allows', [], {}, true],
    ['STRICT denies plaintext', [strict], { sourceIdentity: null }, false],
    ['STRICT allows mTLS', [strict], {}, true],
    ['ALLOW by principal', [policy({ rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/alice' }] }] }] }] })], {}, true],
    ['ALLOW by principal, other peer denied', [policy({ rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/bob' }] }] }] }] })], {}, false],
    ['ALLOW with no rules denies all', [policy({})], {}, false],
    ['ALLOW by namespace prefix', [policy({ rules: [{ clauses: [{ matches: [{ namespaces: [{ prefix: 'de' }] }] }] }] })], {}, true],
    ['ALLOW by port, wrong port', [policy({ rules: [{ clauses: [{ matches: [{ destinationPorts: [9090] }] }] }] })], {}, false],
    ['clauses AND: both hold', [policy({ rules: [{ clauses: [{ matches: [{ destinationPorts: [8080] }] }, { matches: [{ namespaces: [{ exact: 'demo' }] }] }] }] })], {}, true],
    ['clauses AND: one fails', [policy({ rules: [{ clauses: [{ matches: [{ destinationPorts: [8080] }] }, { matches: [{ namespaces: [{ exact: 'prod' }] }] }] }] })], {}, false],
    ['matches OR', [policy({ rules: [{ clauses: [{ matches: [{ destinationPorts: [1] }, { destinationPorts: [8080] }] }] }] })], {}, true],
    ['DENY beats ALLOW', [policy({ rules: [{ clauses: [] }] }), policy({ name: 'd', action: 'DENY', rules: [{ clauses: [{ matches: [{ sourceIps: [{ address: '10.244.1.0', length: 24 }] }] }] }] })], {}, false],
    ['DENY not source ip', [policy({ action: 'DENY', rules: [{ clauses: [{ matches: [{ notSourceIps: [{ address: '10.244.1.0', length: 24 }] }] }] }] })], {}, true],
    ['dry-run DENY not enforced', [{ ...strict, dryRun: true }], { sourceIdentity: null }, true],
    ['IPv6 destination prefix', [policy({ rules: [{ clauses: [{ matches: [{ destinationIps: [{ address: 'fd00::', length: 64 }] }] }] }] })], { destinationIp: 'fd00::5' }, true],
  ];
  it.each(cases)('%s', (_name, policies, over, allowed) => {
    const d = evaluateL4(policies, conn(over));
    expect(d.allowed, d.reason).toBe(allowed);
    expect(d.reason).toBeTruthy();
  });

  it('names the deciding policy and reports dry-run denials', () => {
    expect(evaluateL4([strict], conn({ sourceIdentity: null })).policy).toBe('demo/strict');
    expect(evaluateL4([{ ...strict, dryRun: true }], conn({ sourceIdentity: null })).dryRunWouldDeny).toEqual(['demo/strict']);
  });

  // Every denial names the policy and the rule that matched (issue #5).
  const twoRules = policy({
    name: 'two',
    action: 'DENY',
    rules: [{ clauses: [{ matches: [{ destinationPorts: [9090] }] }] }, { clauses: [{ matches: [{ principals: [{ suffix: '/sa/alice' }] }, { namespaces: [{ prefix: 'prod' }] }] }, { matches: [{ notSourceIps: [{ address: '192.168.0.0', length: 16 }] }] }] }],
  });
  const allowBob = policy({ name: 'bob', rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/bob' }] }] }] }] });
  it.each([
    ['DENY by its second rule', [twoRules], {}, { allowed: false, policy: 'demo/two', rule: { index: 1, description: '(principals=*/sa/alice OR namespaces=prod*) AND notSourceIps=192.168.0.0/16' } }],
    ['DENY by its first rule', [twoRules], { destinationPort: 9090, sourceIdentity: null }, { allowed: false, policy: 'demo/two', rule: { index: 0, description: 'destinationPorts=9090' } }],
    ['STRICT', [strict], { sourceIdentity: null }, { allowed: false, policy: 'demo/strict', rule: { index: 0, description: 'notPrincipals=*' } }],
    ['ALLOW names its rule', [allowBob], { sourceIdentity: 'spiffe://cluster.local/ns/demo/sa/bob' }, { allowed: true, policy: 'demo/bob', rule: { index: 0, description: 'principals=cluster.local/ns/demo/sa/bob' } }],
    ['implicit deny names the ALLOW policies tried', [allowBob], {}, { allowed: false, unmatchedAllowPolicies: ['demo/bob'] }],
  ] as const)('%s', (_name, policies, over, expected) => {
    const d = evaluateL4([...policies], conn(over));
    expect(d).toMatchObject(expected);
    if (!d.allowed && !d.unmatchedAllowPolicies) expect(d.reason).toContain(`rule ${d.rule?.index}`);
  });

  it('log fields name policy and rule for every kind of decision', () => {
    expect(decisionLogFields(evaluateL4([strict], conn({ sourceIdentity: null })))).toEqual({ policy: 'demo/strict', rule: '0: notPrincipals=*' });
    expect(decisionLogFields(evaluateL4([allowBob], conn()))).toEqual({ policy: 'demo/bob', rule: 'no ALLOW rule matched' });
    expect(decisionLogFields(evaluateL4([], conn()))).toEqual({ policy: '(none)', rule: '(none)' });
  });

  it('describes a rule in one capped line', () => {
    expect(describeRule({ clauses: [] })).toBe('any connection');
    expect(describeRule({ clauses: [{ matches: [{}] }] })).toBe('any');
    const huge = describeRule({ clauses: [{ matches: [{ destinationPorts: Array.from({ length: 200 }, (_, i) => i + 1) }] }] });
    expect(huge.length).toBe(200);
    expect(huge.endsWith('…')).toBe(true);
  });
});

describe('ipInPrefix', () => {
  it.each([
    ['10.1.2.3', '10.1.0.0', 16, true],
    ['10.2.2.3', '10.1.0.0', 16, false],
    ['10.1.2.3', '0.0.0.0', 0, true],
    ['10.1.2.3', '10.1.2.3', 32, true],
    ['fd00::1', 'fd00::', 64, true],
    ['fd01::1', 'fd00::', 64, false],
    ['::ffff:10.1.2.3', '::ffff:10.1.0.0', 112, true],
    ['10.1.2.3', 'fd00::', 8, false],
  ])('%s in %s/%d = %s', (ip, address, length, expected) => {
    expect(ipInPrefix(ip, { address, length })).toBe(expected);
  });
});
