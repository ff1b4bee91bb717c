/**
 * AuthorizationPolicy → istio.security.Authorization (node-agent L4), table-tested, and checked
 * against the evaluator the agents run (src/policy/l4-authorization.ts) for the cases where the
 * translation decides what traffic passes.
 */
import { describe, expect, it } from 'vitest';
import { addressMatch, stringMatch, translateAuthorizationPolicy, type AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import { evaluateL4 } from '../../src/policy/l4-authorization.js';

const policy = (namespace: string, spec: AuthorizationPolicyObject['spec']): AuthorizationPolicyObject => ({ metadata: { name: 'p', namespace }, spec });

describe('string and address matches', () => {
  it.each([
    ['*', { presence: {} }],
    ['cluster.local/ns/demo/*', { prefix: 'cluster.local/ns/demo/' }],
    ['*/sa/frontend', { suffix: '/sa/frontend' }],
    ['cluster.local/ns/demo/sa/frontend', { exact: 'cluster.local/ns/demo/sa/frontend' }],
  ])('%s', (value, want) => expect(stringMatch(value)).toEqual(want));

  it.each([
    ['10.0.0.0/8', { address: '10.0.0.0', length: 8 }],
    ['10.1.2.3', { address: '10.1.2.3', length: 32 }],
    ['fd00::/8', { address: 'fd00::', length: 8 }],
    ['10.0.0.0/33', undefined],
    ['300.0.0.1', undefined],
    ['example.com', undefined],
  ])('%s', (value, want) => expect(addressMatch(value)).toEqual(want));
});

describe('translateAuthorizationPolicy', () => {
  it('scopes: selector → WORKLOAD_SELECTOR, root namespace → GLOBAL, else NAMESPACE', () => {
    expect(translateAuthorizationPolicy(policy('demo', { selector: { matchLabels: { app: 'b' } } })).authorization?.scope).toBe('WORKLOAD_SELECTOR');
    expect(translateAuthorizationPolicy(policy('amesh-system', {})).authorization?.scope).toBe('GLOBAL');
    expect(translateAuthorizationPolicy(policy('amesh-system', {}), 'amesh-system').authorization?.scope).toBe('GLOBAL');
    expect(translateAuthorizationPolicy(policy('demo', {})).authorization?.scope).toBe('NAMESPACE');
  });

  it('an ALLOW policy without rules allows nothing; `rules: [{}]` allows everything', () => {
    expect(translateAuthorizationPolicy(policy('demo', { action: 'ALLOW' })).authorization).toMatchObject({ action: 'ALLOW', rules: [] });
    expect(translateAuthorizationPolicy(policy('demo', { rules: [{}] })).authorization?.rules).toEqual([{ clauses: [] }]);
  });

  it('from, to and when become AND-ed clauses with OR-ed matches', () => {
    const t = translateAuthorizationPolicy(
      policy('demo', {
        action: 'ALLOW',
        rules: [
          {
            from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }, { source: { namespaces: ['ops'], ipBlocks: ['10.0.0.0/8'] } }],
            to: [{ operation: { ports: ['8080'] } }],
            when: [{ key: 'source.ip', notValues: ['10.9.0.0/16'] }],
          },
        ],
      }),
    );
    expect(t.warnings).toEqual([]);
    expect(t.authorization?.rules).toEqual([
      {
        clauses: [
          { matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/frontend' }] }, { namespaces: [{ exact: 'ops' }], sourceIps: [{ address: '10.0.0.0', length: 8 }] }] },
          { matches: [{ destinationPorts: [8080] }] },
          { matches: [{ notSourceIps: [{ address: '10.9.0.0', length: 16 }] }] },
        ],
      },
    ]);
  });

  it('drops an ALLOW rule with L7 fields (allows less) and says which fields', () => {
    const t = translateAuthorizationPolicy(policy('demo', { rules: [{ to: [{ operation: { methods: ['GET'], ports: ['80'] } }] }, { from: [{ source: { namespaces: ['demo'] } }] }] }));
    expect(t.authorization?.rules).toEqual([{ clauses: [{ matches: [{ namespaces: [{ exact: 'demo' }] }] }] }]);
    expect(t.warnings).toEqual([expect.stringMatching(/spec\.rules\[0\]: dropped: node agents cannot check spec\.rules\[0\]\.to\[0\]\.operation\.methods/)]);
  });

  it('keeps the L4 part of a DENY rule with L7 fields (denies more) and says so', () => {
    const t = translateAuthorizationPolicy(policy('demo', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['evil'] } }], when: [{ key: 'request.headers[x-user]', values: ['bob'] }] }] }));
    expect(t.authorization?.rules).toEqual([{ clauses: [{ matches: [{ namespaces: [{ exact: 'evil' }] }] }] }]);
    expect(t.warnings).toEqual([expect.stringMatching(/only its L4 part is enforced.*request\.headers\[x-user\]/)]);
  });

  it('leaves waypoint policies and AUDIT/CUSTOM actions to others, with a reason', () => {
    expect(translateAuthorizationPolicy(policy('demo', { targetRefs: [{ kind: 'Gateway', name: 'waypoint' }] }))).toEqual({ warnings: [expect.stringMatching(/waypoint/)] });
    expect(translateAuthorizationPolicy(policy('demo', { action: 'CUSTOM' })).authorization).toBeUndefined();
    expect(translateAuthorizationPolicy(policy('demo', { action: 'AUDIT' })).warnings[0]).toMatch(/AUDIT is not enforced/);
  });

  it('names invalid values: an ALLOW rule with one is dropped, a DENY rule keeps the rest', () => {
    const allow = translateAuthorizationPolicy(policy('demo', { rules: [{ to: [{ operation: { ports: ['http'] } }] }] }));
    expect(allow.authorization?.rules).toEqual([]);
    expect(allow.warnings).toEqual(['spec.rules[0].to[0].operation.ports: "http" is not a port number', expect.stringMatching(/dropped/)]);
    const deny = translateAuthorizationPolicy(policy('demo', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['nope', '10.0.0.1'] } }] }] }));
    expect(deny.authorization?.rules).toEqual([{ clauses: [{ matches: [{ sourceIps: [{ address: '10.0.0.1', length: 32 }] }] }] }]);
    expect(deny.warnings).toEqual(['spec.rules[0].from[0].source.ipBlocks: "nope" is not an IP address or CIDR']);
  });

  it('decides traffic as Istio would once the agents evaluate it', () => {
    const allowFrontendOn8080 = translateAuthorizationPolicy(
      policy('demo', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }], to: [{ operation: { ports: ['8080'] } }] }] }),
    ).authorization;
    const conn = (identity: string | null, destinationPort: number) => ({ sourceIdentity: identity, sourceIp: '10.244.1.2', destinationIp: '10.244.2.2', destinationPort });
    const decide = (c: ReturnType<typeof conn>) => evaluateL4([allowFrontendOn8080!], c).allowed;
    expect(decide(conn('spiffe://cluster.local/ns/demo/sa/frontend', 8080))).toBe(true);
    expect(decide(conn('spiffe://cluster.local/ns/demo/sa/frontend', 9090))).toBe(false);
    expect(decide(conn('spiffe://cluster.local/ns/demo/sa/other', 8080))).toBe(false);
    expect(decide(conn(null, 8080))).toBe(false);
  });
});
