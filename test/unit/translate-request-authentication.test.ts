import { describe, expect, it } from 'vitest';
import { translateRequestAuthentication, type JwtRuleSpec, type RequestAuthenticationObject } from '../../src/controller/translate/request-authentication.js';

const ROOT = 'amesh-system';
const JWKS = '{"keys":[{"kty":"EC","crv":"P-256","x":"x","y":"y"}]}';
const ra = (jwtRules: Array<JwtRuleSpec | null>, extra: Partial<NonNullable<RequestAuthenticationObject['spec']>> = { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'waypoint' }] }): RequestAuthenticationObject => ({
  metadata: { name: 'jwt', namespace: 'demo' },
  spec: { ...extra, jwtRules },
});

describe('translateRequestAuthentication', () => {
  it.each<[string, JwtRuleSpec, unknown, string[]]>([
    ['inline jwks', { issuer: 'iss', jwks: JWKS }, { policy: 'demo/jwt', issuer: 'iss', jwks: JWKS }, []],
    ['jwksUri', { issuer: 'iss', jwksUri: 'https://keys.example/jwks' }, { policy: 'demo/jwt', issuer: 'iss', jwksUri: 'https://keys.example/jwks' }, []],
    ['jwks beats jwksUri', { issuer: 'iss', jwks: JWKS, jwksUri: 'http://x/' }, { policy: 'demo/jwt', issuer: 'iss', jwks: JWKS }, ['spec.jwtRules[0].jwksUri: ignored, jwks is set']],
    [
      'locations, audiences, forwarding, payload header',
      { issuer: 'iss', jwks: JWKS, audiences: ['a', ''], fromHeaders: [{ name: 'X-Jwt', prefix: 'Token ' }, { name: '' }], fromParams: ['tok'], forwardOriginalToken: true, outputPayloadToHeader: 'X-Payload' },
      { policy: 'demo/jwt', issuer: 'iss', jwks: JWKS, audiences: ['a'], fromHeaders: [{ name: 'x-jwt', prefix: 'Token ' }], fromParams: ['tok'], forwardOriginalToken: true, outputPayloadToHeader: 'x-payload' },
      ['spec.jwtRules[0].fromHeaders[1].name: required; ignored'],
    ],
    [
      'unsupported fields are named',
      { issuer: 'iss', jwks: JWKS, fromCookies: ['session'], outputClaimToHeaders: [{ header: 'x', claim: 'y' }], timeout: '5s' },
      { policy: 'demo/jwt', issuer: 'iss', jwks: JWKS },
      [
        'spec.jwtRules[0].fromCookies: not supported, ignored (the default locations are used: Authorization: Bearer, access_token)',
        'spec.jwtRules[0].outputClaimToHeaders: not supported, ignored',
        "spec.jwtRules[0].timeout: not supported, ignored (the waypoint's JWKS fetch timeout applies)",
      ],
    ],
    ['no issuer', { jwks: JWKS }, undefined, ['spec.jwtRules[0].issuer: required; rule dropped']],
    // Rules without usable keys stay, with an empty key set: tokens of the issuer are refused, never let through unchecked.
    ['no keys (OpenID discovery)', { issuer: 'iss' }, { policy: 'demo/jwt', issuer: 'iss', jwks: '{"keys":[]}' }, ['spec.jwtRules[0]: neither jwks nor jwksUri is set and OpenID discovery is not supported; no usable keys, tokens of iss are refused (401)']],
    ['bad inline jwks', { issuer: 'iss', jwks: '{"nokeys":1}' }, { policy: 'demo/jwt', issuer: 'iss', jwks: '{"keys":[]}' }, ['spec.jwtRules[0].jwks: is not a JWKS (no "keys" array); no usable keys, tokens of iss are refused (401)']],
    ['jwks not JSON', { issuer: 'iss', jwks: 'nope' }, { policy: 'demo/jwt', issuer: 'iss', jwks: '{"keys":[]}' }, ['spec.jwtRules[0].jwks: is not valid JSON; no usable keys, tokens of iss are refused (401)']],
    ['bad jwksUri', { issuer: 'iss', jwksUri: 'file:///etc/keys' }, { policy: 'demo/jwt', issuer: 'iss', jwks: '{"keys":[]}' }, ['spec.jwtRules[0].jwksUri: "file:///etc/keys" scheme file: is not supported (http or https); no usable keys, tokens of iss are refused (401)']],
  ])('%s', (_name, rule, want, warnings) => {
    const t = translateRequestAuthentication(ra([rule]), ROOT);
    expect(t.rules).toEqual(want === undefined ? [] : [want]);
    expect(t.warnings).toEqual(warnings);
  });

  it('reports its targets (as AuthorizationPolicy) and tolerates null rules', () => {
    const t = translateRequestAuthentication(ra([null, { issuer: 'iss', jwks: JWKS }], { targetRefs: [{ kind: 'Service', name: 'backend' }] }), ROOT);
    expect(t.targets).toEqual([{ kind: 'Service', namespace: 'demo', name: 'backend', field: 'spec.targetRefs[0]' }]);
    expect(t.rules).toHaveLength(1);
    expect(t.warnings).toEqual(['spec.jwtRules[0].issuer: required; rule dropped']);
  });

  it('has no targets without targetRefs or selector (a node-agent policy)', () => {
    expect(translateRequestAuthentication(ra([{ issuer: 'iss', jwks: JWKS }], {}), ROOT).targets).toEqual([]);
  });
});
