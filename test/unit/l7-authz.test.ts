import { describe, expect, it } from 'vitest';
import type { L7Policy, L7Rule, WaypointConfig } from '../../src/l7/config.js';
import { compileAuthz, RBAC_DENIED_BODY, type AuthzOutcome, type RequestAttributes } from '../../src/l7/authz/engine.js';
import { hostMatcher, ipMatcher, parseCidr, pathMatcher, portMatcher, splitHostPort, stringMatcher } from '../../src/l7/authz/matchers.js';
import { bracketPath } from '../../src/l7/authz/policy.js';

const BACKEND = 'demo/backend.demo.svc.cluster.local';
const OTHER = 'demo/other.demo.svc.cluster.local';

const config = (policies: L7Policy[]): WaypointConfig => ({
  namespace: 'demo',
  name: 'waypoint',
  identity: 'spiffe://cluster.local/ns/demo/sa/waypoint',
  services: [
    { key: BACKEND, namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', addresses: ['10.96.0.10'], ports: [] },
    { key: OTHER, namespace: 'demo', hostname: 'other.demo.svc.cluster.local', addresses: ['10.96.0.11'], ports: [] },
  ],
  clusters: [],
  policies,
});

const req = (over: Partial<RequestAttributes> = {}, http: Partial<NonNullable<RequestAttributes['http']>> = {}): RequestAttributes => ({
  service: BACKEND,
  http: { method: 'GET', path: '/api/v1/items', query: '', host: 'backend.demo.svc.cluster.local:8080', headers: {}, ...http },
  peerIdentity: 'spiffe://cluster.local/ns/demo/sa/frontend',
  sourceIp: '10.244.1.5',
  remoteIp: '10.244.1.5',
  destinationIp: '10.96.0.10',
  destinationPort: 8080,
  ...over,
});
const tcp = (over: Partial<RequestAttributes> = {}): RequestAttributes => {
  const r = req(over);
  delete r.http;
  return r;
};

const allow = (rules: L7Rule[], name = 'demo/allow', services?: string[]): L7Policy => ({ name, action: 'ALLOW', rules, ...(services ? { services } : {}) });
const deny = (rules: L7Rule[], name = 'demo/deny', services?: string[]): L7Policy => ({ name, action: 'DENY', rules, ...(services ? { services } : {}) });

function sync(outcome: AuthzOutcome | Promise<AuthzOutcome>): AuthzOutcome {
  if (outcome instanceof Promise) throw new Error('expected a synchronous outcome');
  return outcome;
}
const decide = (policies: L7Policy[], attrs: RequestAttributes): AuthzOutcome => sync(compileAuthz(config(policies)).check(attrs));

describe('matchers', () => {
  it.each([
    ['*', 'x', true],
    ['*', '', false],
    ['/api*', '/api/v1', true],
    ['/api*', '/ap', false],
    ['*.svc', 'a.svc', true],
    ['*.svc', 'a.svcx', false],
    ['GET', 'GET', true],
    ['GET', 'get', false],
  ])('string %s vs %s', (pattern, value, want) => expect(stringMatcher(pattern)(value)).toBe(want));

  it.each([
    ['backend.demo', 'backend.demo', true],
    ['backend.demo', 'Backend.Demo:8080', true],
    ['backend.demo:8080', 'backend.demo:8080', true],
    ['backend.demo:8080', 'backend.demo:9090', false],
    ['backend.demo:8080', 'backend.demo', false],
    ['*.demo.svc.cluster.local', 'backend.demo.svc.cluster.local:80', true],
    ['backend*', 'BACKEND.x', true],
    ['other', 'backend', false],
    ['::1', '[::1]:8080', true],
  ])('host %s vs %s', (pattern, value, want) => expect(hostMatcher(pattern)(value)).toBe(want));

  it('splits host and port, IPv6 included', () => {
    expect(splitHostPort('a:80')).toEqual({ name: 'a', port: '80' });
    expect(splitHostPort('[fd00::1]:80')).toEqual({ name: 'fd00::1', port: '80' });
    expect(splitHostPort('fd00::1')).toEqual({ name: 'fd00::1', port: '' });
  });

  it.each([
    ['/api/v1*', '/api/v1/items', true],
    ['/api/v1*', '/api/v2', false],
    ['/api/v1', '/api/v1?x=1', true],
    ['*/items', '/a/items', true],
    ['/users/{*}/profile', '/users/7/profile', true],
    ['/users/{*}/profile', '/users/7/8/profile', false],
    ['/files/{**}', '/files/a/b/c', true],
    ['/files/{**}', '/other/a', false],
  ])('path %s vs %s', (pattern, value, want) => expect(pathMatcher(pattern)(value)).toBe(want));

  it.each([
    [['10.0.0.0/8'], '10.1.2.3', true],
    [['10.0.0.0/8'], '11.1.2.3', false],
    [['10.1.2.3'], '10.1.2.3', true],
    [['10.1.2.3'], '::ffff:10.1.2.3', true],
    [['fd00::/8'], 'fd12::1', true],
    [['fd00::/8'], '10.1.2.3', false],
    [['2001:db8::1'], '2001:db8::1', true],
    [['not-an-ip'], '10.1.2.3', false],
    [['10.0.0.0/33'], '10.1.2.3', false],
    [['10.0.0.0/8'], '', false],
  ])('ip %j vs %s', (cidrs, ip, want) => expect(ipMatcher(cidrs)(ip)).toBe(want));

  it('parses CIDRs strictly and ports as numbers', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('10.0.0.0/8/1')).toBeUndefined();
    expect(parseCidr('10.0.0.0/x')).toBeUndefined();
    expect(portMatcher('8080')('8080')).toBe(true);
    expect(portMatcher('08080')('8080')).toBe(true);
    expect(portMatcher('abc')('abc')).toBe(false);
    expect(portMatcher('*')('1')).toBe(true);
  });

  it('reads bracketed keys', () => {
    expect(bracketPath('[a][b]')).toEqual(['a', 'b']);
    expect(bracketPath('[a]x')).toBeUndefined();
    expect(bracketPath('')).toBeUndefined();
  });
});

describe('compileAuthz: RBAC', () => {
  it('is empty without policies and allows everything synchronously', () => {
    const authz = compileAuthz(config([]));
    expect(authz.empty).toBe(true);
    expect(sync(authz.check(req()))).toEqual({ allowed: true });
  });

  it('takes a constant fast path when nothing applies to the service', () => {
    const authz = compileAuthz(config([allow([{}], 'demo/a', [OTHER])]));
    expect(authz.empty).toBe(false);
    const a = authz.check(req());
    const b = authz.check(req({ sourceIp: '1.2.3.4' }));
    expect(a).toEqual({ allowed: true });
    expect(a).toBe(b);
  });

  // The seeds' example: only frontend's service account may GET /api/v1* on backend.
  const seeds = allow([{ from: [{ principals: ['cluster.local/ns/demo/sa/frontend'] }], to: [{ methods: ['GET'], paths: ['/api/v1*'] }] }], 'demo/backend-policy', [BACKEND]);
  const cases: Array<[string, L7Policy[], RequestAttributes, boolean, string?]> = [
    ['seeds: frontend GET /api/v1 allowed', [seeds], req(), true],
    ['seeds: POST denied', [seeds], req({}, { method: 'POST' }), false, 'no ALLOW policy matched (demo/backend-policy)'],
    ['seeds: other path denied', [seeds], req({}, { path: '/admin' }), false],
    ['seeds: other caller denied', [seeds], req({ peerIdentity: 'spiffe://cluster.local/ns/demo/sa/intruder' }), false],
    ['seeds: no peer identity denied', [seeds], req({ peerIdentity: '' }), false],
    ['seeds: another service is not affected', [seeds], req({ service: OTHER, peerIdentity: '' }), true],
    ['ALLOW with no rules denies all', [allow([])], req(), false],
    ['ALLOW with an empty rule allows all', [allow([{}])], req(), true],
    ['DENY with no rules denies nothing', [deny([])], req(), true],
    ['DENY beats ALLOW', [allow([{}]), deny([{ to: [{ methods: ['GET'] }] }])], req(), false, 'demo/deny rule 0'],
    ['DENY names the matching rule', [deny([{ to: [{ methods: ['PUT'] }] }, { to: [{ paths: ['/api*'] }] }])], req(), false, 'demo/deny rule 1'],
    ['any ALLOW suffices, and is named', [allow([{ to: [{ methods: ['PUT'] }] }], 'demo/a'), allow([{ to: [{ methods: ['PUT'] }] }, { to: [{ methods: ['GET'] }] }], 'demo/b')], req(), true, 'demo/b rule 1'],
    ['no ALLOW names them all', [allow([{ to: [{ methods: ['PUT'] }] }], 'demo/a'), allow([{ to: [{ methods: ['POST'] }] }], 'demo/b')], req(), false, 'no ALLOW policy matched (demo/a, demo/b)'],
    ['namespaces from the identity', [allow([{ from: [{ namespaces: ['demo'] }] }])], req(), true],
    ['notNamespaces', [allow([{ from: [{ notNamespaces: ['demo'] }] }])], req(), false],
    ['from entries OR', [allow([{ from: [{ namespaces: ['x'] }, { principals: ['*/sa/frontend'] }] }])], req(), true],
    ['fields AND within an entry', [allow([{ from: [{ namespaces: ['demo'], principals: ['*/sa/other'] }] }])], req(), false],
    ['ipBlocks vs sourceIp', [allow([{ from: [{ ipBlocks: ['10.244.0.0/16'] }] }])], req(), true],
    ['notIpBlocks', [allow([{ from: [{ notIpBlocks: ['10.244.0.0/16'] }] }])], req(), false],
    ['remoteIpBlocks vs remoteIp', [allow([{ from: [{ remoteIpBlocks: ['192.0.2.0/24'] }] }])], req({ remoteIp: '192.0.2.7' }), true],
    ['remoteIpBlocks do not look at sourceIp', [allow([{ from: [{ remoteIpBlocks: ['10.244.0.0/16'] }] }])], req({ remoteIp: '192.0.2.7' }), false],
    ['IPv6 source', [allow([{ from: [{ ipBlocks: ['fd00::/8'] }] }])], req({ sourceIp: 'fd00::5' }), true],
    ['hosts without port', [allow([{ to: [{ hosts: ['backend.demo.svc.cluster.local'] }] }])], req(), true],
    ['notHosts', [allow([{ to: [{ notHosts: ['BACKEND.demo.svc.cluster.local'] }] }])], req(), false],
    ['ports', [allow([{ to: [{ ports: ['8080'] }] }])], req(), true],
    ['notPorts', [allow([{ to: [{ notPorts: ['8080'] }] }])], req(), false],
    ['notMethods', [allow([{ to: [{ notMethods: ['GET'] }] }])], req(), false],
    ['notPaths', [allow([{ to: [{ notPaths: ['/admin*'] }] }])], req(), true],
    ['when request.headers', [allow([{ when: [{ key: 'request.headers[X-Team]', values: ['blue'] }] }])], req({}, { headers: { 'x-team': 'blue' } }), true],
    ['when request.headers, list value', [allow([{ when: [{ key: 'request.headers[x-team]', values: ['blue'] }] }])], req({}, { headers: { 'x-team': ['red', 'blue'] } }), true],
    ['when header absent', [allow([{ when: [{ key: 'request.headers[x-team]', values: ['*'] }] }])], req(), false],
    ['when notValues on an absent header holds', [allow([{ when: [{ key: 'request.headers[x-team]', notValues: ['red'] }] }])], req(), true],
    ['when source.ip', [allow([{ when: [{ key: 'source.ip', values: ['10.244.1.0/24'] }] }])], req(), true],
    ['when source.namespace', [allow([{ when: [{ key: 'source.namespace', values: ['prod'] }] }])], req(), false],
    ['when source.principal', [allow([{ when: [{ key: 'source.principal', values: ['cluster.local/ns/demo/sa/frontend'] }] }])], req(), true],
    ['when remote.ip', [allow([{ when: [{ key: 'remote.ip', notValues: ['10.244.1.5'] }] }])], req(), false],
    ['when destination.ip', [allow([{ when: [{ key: 'destination.ip', values: ['10.96.0.0/12'] }] }])], req(), true],
    ['when destination.port', [allow([{ when: [{ key: 'destination.port', values: ['9090'] }] }])], req(), false],
    ['when conditions AND', [allow([{ when: [{ key: 'destination.port', values: ['8080'] }, { key: 'source.namespace', values: ['prod'] }] }])], req(), false],
    ['unknown when key: ALLOW rule never matches', [allow([{ when: [{ key: 'connection.sni', values: ['*'] }] }])], req(), false],
    ['unknown when key: DENY rule ignores it', [deny([{ when: [{ key: 'connection.sni', values: ['x'] }] }])], req(), false],
    ['requestPrincipals without a token', [allow([{ from: [{ requestPrincipals: ['*'] }] }])], req(), false],
    ['notRequestPrincipals * denies requests without a token', [deny([{ from: [{ notRequestPrincipals: ['*'] }] }])], req(), false],
    // Opaque TCP: HTTP-only fields cannot be checked.
    ['TCP: ALLOW rule with methods never matches', [allow([{ to: [{ methods: ['GET'] }] }])], tcp(), false],
    ['TCP: ALLOW rule with an HTTP field in another entry never matches', [allow([{ to: [{ ports: ['8080'] }, { paths: ['/x'] }] }])], tcp(), false],
    ['TCP: ALLOW rule with L4 fields only matches', [allow([{ from: [{ principals: ['*/sa/frontend'] }], to: [{ ports: ['8080'] }] }])], tcp(), true],
    ['TCP: DENY rule ignores HTTP fields (denies more)', [deny([{ to: [{ methods: ['POST'], ports: ['8080'] }] }])], tcp(), false],
    ['TCP: DENY rule keeps its L4 part', [deny([{ to: [{ methods: ['POST'], ports: ['9090'] }] }])], tcp(), true],
    ['TCP: DENY with request.headers condition ignored', [deny([{ when: [{ key: 'request.headers[x]', values: ['y'] }] }])], tcp(), false],
  ];
  it.each(cases)('%s', (_name, policies, attrs, allowed, policy) => {
    const outcome = decide(policies, attrs);
    expect(outcome.allowed).toBe(allowed);
    if (!outcome.allowed) {
      expect(outcome.status).toBe(403);
      expect(outcome.body).toBe(RBAC_DENIED_BODY);
    }
    if (policy) expect(outcome.policy).toBe(policy);
  });

  it('reports matching AUDIT policies with the allowed outcome, never denies for them', () => {
    const audit: L7Policy = { name: 'demo/audit', action: 'AUDIT', rules: [{ to: [{ methods: ['POST'] }] }, { to: [{ methods: ['GET'] }] }] };
    expect(decide([audit], req())).toEqual({ allowed: true, audit: ['demo/audit rule 1'] });
    expect(decide([audit], req({}, { method: 'DELETE' }))).toEqual({ allowed: true });
    const denied = decide([audit, allow([])], req());
    expect(denied.allowed).toBe(false);
  });

  it('applies policies without services to workload-addressed requests too', () => {
    expect(decide([allow([])], req({ service: '' })).allowed).toBe(false);
    expect(decide([allow([], 'demo/a', [BACKEND])], req({ service: '' })).allowed).toBe(true);
  });

  it('fails closed when evaluation throws', () => {
    const authz = compileAuthz(config([allow([{ when: [{ key: 'request.headers[x]', values: ['y'] }] }])]));
    const hostile = req();
    Object.defineProperty(hostile.http as object, 'headers', {
      get() {
        throw new Error('boom');
      },
    });
    const outcome = sync(authz.check(hostile));
    expect(outcome).toMatchObject({ allowed: false, status: 403, body: RBAC_DENIED_BODY, reason: expect.stringContaining('boom') });
  });
});
