import { beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { JwtRule, L7Policy, WaypointConfig } from '../../src/l7/config.js';
import { compileAuthz, JWT_BODY, jwksCacheFor, type AuthzDeps, type AuthzOutcome, type RequestAttributes } from '../../src/l7/authz/engine.js';
import { DEFAULT_JWKS_REFRESH_MS, DEFAULT_JWKS_RETRY_MS } from '../../src/l7/authz/jwks-cache.js';

const BACKEND = 'demo/backend.demo.svc.cluster.local';
const ISSUER = 'https://issuer.example';
const NOW = Date.parse('2026-03-01T12:00:00Z');
const sec = (ms: number): number => Math.floor(ms / 1000);

interface Signer {
  key: CryptoKey;
  jwk: JWK;
  alg: string;
}

async function signer(alg: 'ES256' | 'RS256', kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { key: privateKey, jwk, alg };
}

const jwks = (...signers: Signer[]): string => JSON.stringify({ keys: signers.map((s) => s.jwk) });

async function token(s: Signer, claims: Record<string, unknown> = {}, opts: { iss?: string; sub?: string; aud?: string | string[]; exp?: number; nbf?: number } = {}): Promise<string> {
  let t = new SignJWT({ ...claims })
    .setProtectedHeader({ alg: s.alg, kid: s.jwk.kid as string })
    .setIssuer(opts.iss ?? ISSUER)
    .setSubject(opts.sub ?? 'alice')
    .setIssuedAt(sec(NOW))
    .setExpirationTime(opts.exp ?? sec(NOW) + 3600);
  if (opts.aud) t = t.setAudience(opts.aud);
  if (opts.nbf !== undefined) t = t.setNotBefore(opts.nbf);
  return t.sign(s.key);
}

const config = (jwtRules: JwtRule[], policies: L7Policy[] = []): WaypointConfig => ({
  namespace: 'demo',
  name: 'waypoint',
  identity: 'spiffe://cluster.local/ns/demo/sa/waypoint',
  services: [{ key: BACKEND, namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', addresses: ['10.96.0.10'], ports: [] }],
  clusters: [],
  jwtRules,
  policies,
});

const req = (headers: Record<string, string> = {}, query = ''): RequestAttributes => ({
  service: BACKEND,
  http: { method: 'GET', path: '/api', query, host: 'backend', headers },
  peerIdentity: 'spiffe://cluster.local/ns/demo/sa/frontend',
  sourceIp: '10.244.1.5',
  remoteIp: '10.244.1.5',
  destinationIp: '10.96.0.10',
  destinationPort: 8080,
});
const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

const requireJwt: L7Policy = { name: 'demo/require-jwt', action: 'ALLOW', rules: [{ from: [{ requestPrincipals: [`${ISSUER}/*`] }] }] };

let es: Signer;
let rs: Signer;
let stranger: Signer;
beforeAll(async () => {
  es = await signer('ES256', 'es-1');
  rs = await signer('RS256', 'rs-1');
  stranger = await signer('ES256', 'es-1');
});

const deps = (over: AuthzDeps = {}): AuthzDeps => ({ now: () => NOW, ...over });
const check = (cfg: WaypointConfig, attrs: RequestAttributes, d: AuthzDeps = deps()): Promise<AuthzOutcome> => Promise.resolve(compileAuthz(cfg, d).check(attrs));
const inline = (over: Partial<JwtRule> = {}): JwtRule => ({ policy: 'demo/jwt', issuer: ISSUER, jwks: jwks(es, rs), ...over });

describe('JWT authentication', () => {
  it('refuses every token of an issuer whose rule has no usable keys (the controller sends an empty key set)', async () => {
    const outcome = await check(config([inline({ jwks: '{"keys":[]}' })]), req(bearer(await token(es))));
    expect(outcome).toMatchObject({ allowed: false, status: 401, policy: 'demo/jwt' });
  });

  it('verifies ES256 and RS256 tokens, sets the request principal, removes the token', async () => {
    for (const s of [es, rs]) {
      const outcome = await check(config([inline()], [requireJwt]), req(bearer(await token(s))));
      expect(outcome).toEqual({ allowed: true, policy: 'demo/require-jwt rule 0', requestPrincipal: `${ISSUER}/alice`, removeHeaders: ['authorization'] });
    }
  });

  it('passes a request without a token, unauthenticated; an ALLOW on requestPrincipals then denies it', async () => {
    expect(compileAuthz(config([inline()]), deps()).check(req())).toEqual({ allowed: true });
    const outcome = await check(config([inline()], [requireJwt]), req());
    expect(outcome).toMatchObject({ allowed: false, status: 403, body: 'RBAC: access denied' });
  });

  const failures: Array<[string, () => Promise<string>, Partial<JwtRule>, number, string]> = [
    ['expired', () => token(es, {}, { exp: sec(NOW) - 3600 }), {}, 401, JWT_BODY.expired],
    ['not yet valid', () => token(es, {}, { nbf: sec(NOW) + 3600 }), {}, 401, JWT_BODY.notYetValid],
    ['wrong issuer', () => token(es, {}, { iss: 'https://evil.example' }), {}, 401, JWT_BODY.unknownIssuer],
    ['bad signature (same kid, other key)', () => token(stranger), {}, 401, JWT_BODY.verificationFails],
    ['audience not allowed', () => token(es, {}, { aud: 'other' }), { audiences: ['backend'] }, 403, JWT_BODY.audience],
    ['audience missing', () => token(es), { audiences: ['backend'] }, 403, JWT_BODY.audience],
    ['garbage', async () => 'not.a-jwt', {}, 401, JWT_BODY.badFormat],
  ];
  it.each(failures)('rejects a token: %s', async (_name, make, rule, status, body) => {
    const outcome = await check(config([inline(rule)]), req(bearer(await make())));
    expect(outcome).toMatchObject({ allowed: false, status, body });
    if (!outcome.allowed) expect(outcome.policy).toBe('demo/jwt');
  });

  it('tolerates 60 s of clock skew on exp', async () => {
    const outcome = await check(config([inline()]), req(bearer(await token(es, {}, { exp: sec(NOW) - 30 }))));
    expect(outcome.allowed).toBe(true);
  });

  it('accepts one of several audiences', async () => {
    const outcome = await check(config([inline({ audiences: ['a', 'backend'] })]), req(bearer(await token(es, {}, { aud: ['backend', 'x'] }))));
    expect(outcome).toMatchObject({ allowed: true, requestPrincipal: `${ISSUER}/alice` });
  });

  it('reads fromHeaders with a prefix and fromParams; forwards the token when asked; outputs the payload', async () => {
    const t = await token(es);
    const rule = inline({ fromHeaders: [{ name: 'X-Jwt', prefix: 'Token ' }], forwardOriginalToken: true, outputPayloadToHeader: 'X-Jwt-Payload' });
    const outcome = await check(config([rule]), req({ 'x-jwt': `Token ${t}` }));
    expect(outcome).toEqual({ allowed: true, requestPrincipal: `${ISSUER}/alice`, setHeaders: { 'x-jwt-payload': t.split('.')[1] } });
    // The default location is not looked at once a rule names its own.
    expect(await check(config([rule]), req(bearer(t)))).toEqual({ allowed: true });
    const byParam = await check(config([inline({ fromParams: ['tok'] })]), req({}, `a=1&tok=${t}`));
    expect(byParam).toMatchObject({ allowed: true, requestPrincipal: `${ISSUER}/alice` });
    expect(byParam).not.toHaveProperty('removeHeaders');
    const byDefaultParam = await check(config([inline()]), req({}, `access_token=${t}`));
    expect(byDefaultParam).toMatchObject({ allowed: true, requestPrincipal: `${ISSUER}/alice` });
  });

  it('picks the rule by issuer among several', async () => {
    const other: JwtRule = { policy: 'demo/other', issuer: 'https://other.example', jwks: jwks(stranger) };
    const t = await token(stranger, {}, { iss: 'https://other.example', sub: 'bob' });
    expect(await check(config([inline(), other]), req(bearer(t)))).toMatchObject({ allowed: true, requestPrincipal: 'https://other.example/bob' });
  });

  it('offers claims, audiences and presenter to when conditions', async () => {
    const policy = (key: string, values: string[]): L7Policy => ({ name: 'demo/claims', action: 'ALLOW', rules: [{ when: [{ key, values }] }] });
    const t = await token(es, { groups: ['dev', 'ops'], org: { team: 'blue' }, azp: 'web', level: 3 }, { aud: ['backend'] });
    const cases: Array<[string, string[], boolean]> = [
      ['request.auth.claims[groups]', ['ops'], true],
      ['request.auth.claims[groups]', ['admin'], false],
      ['request.auth.claims[org][team]', ['blue'], true],
      ['request.auth.claims[org][missing]', ['*'], false],
      ['request.auth.claims[level]', ['3'], true],
      ['request.auth.principal', [`${ISSUER}/alice`], true],
      ['request.auth.audiences', ['backend'], true],
      ['request.auth.presenter', ['web'], true],
      ['request.auth.presenter', ['cli'], false],
    ];
    for (const [key, values, allowed] of cases) {
      const outcome = await check(config([inline()], [policy(key, values)]), req(bearer(t)));
      expect([key, values, outcome.allowed]).toEqual([key, values, allowed]);
    }
  });

  it('applies rules to their services only', async () => {
    const t = await token(es, {}, { exp: sec(NOW) - 3600 });
    const elsewhere = inline({ services: ['demo/other.demo.svc.cluster.local'] });
    expect(compileAuthz(config([elsewhere]), deps()).check(req(bearer(t)))).toEqual({ allowed: true });
  });
});

describe('JWKS fetched from jwksUri', () => {
  const URI = 'http://keys.demo.svc:8080/jwks.json';
  const fetcher = (documents: () => string) => {
    const calls: string[] = [];
    return {
      calls,
      fetchJwks: async (uri: string): Promise<string> => {
        calls.push(uri);
        return documents();
      },
    };
  };

  it('fetches once and reuses the keys across compileAuthz calls (cache on deps)', async () => {
    const f = fetcher(() => jwks(es));
    const d = deps({ fetchJwks: f.fetchJwks });
    const rule: JwtRule = { policy: 'demo/jwt', issuer: ISSUER, jwksUri: URI };
    const t = await token(es);
    expect(await check(config([rule]), req(bearer(t)), d)).toMatchObject({ allowed: true, requestPrincipal: `${ISSUER}/alice` });
    // A new config (same deps): no new fetch.
    expect(await check(config([rule], [requireJwt]), req(bearer(t)), d)).toMatchObject({ allowed: true });
    expect(f.calls).toEqual([URI]);
    expect(jwksCacheFor(d).snapshot()).toEqual([{ uri: URI, fetchedAt: NOW }]);
  });

  it('refreshes after the TTL in the background, keeping the old keys meanwhile', async () => {
    let now = NOW;
    let doc = jwks(es);
    const f = fetcher(() => doc);
    const d: AuthzDeps = { now: () => now, fetchJwks: f.fetchJwks };
    const rule: JwtRule = { policy: 'demo/jwt', issuer: ISSUER, jwksUri: URI };
    const t = await token(es);
    await check(config([rule]), req(bearer(t)), d);
    expect(f.calls).toHaveLength(1);
    now += DEFAULT_JWKS_REFRESH_MS + 1;
    doc = jwks(rs);
    // Served from the old set while the refresh runs…
    expect((await check(config([rule]), req(bearer(t)), d)).allowed).toBe(true);
    expect(f.calls).toHaveLength(2);
    // …then the new set applies.
    await Promise.resolve();
    const outcome = await check(config([rule]), req(bearer(await token(rs))), d);
    expect(outcome.allowed).toBe(true);
  });

  it('fails closed while the JWKS cannot be fetched, then retries after the retry interval', async () => {
    let now = NOW;
    let up = false;
    const calls: string[] = [];
    const errors: string[] = [];
    const d: AuthzDeps = {
      now: () => now,
      fetchJwks: async (uri) => {
        calls.push(uri);
        if (!up) throw new Error('connection refused');
        return jwks(es);
      },
      onJwksError: (uri) => errors.push(uri),
    };
    const rule: JwtRule = { policy: 'demo/jwt', issuer: ISSUER, jwksUri: URI };
    const t = await token(es);
    const first = await check(config([rule]), req(bearer(t)), d);
    expect(first).toMatchObject({ allowed: false, status: 401, body: JWT_BODY.jwksFetch, policy: 'demo/jwt' });
    // Within the retry interval: no new fetch.
    up = true;
    expect((await check(config([rule]), req(bearer(t)), d)).allowed).toBe(false);
    expect(calls).toHaveLength(1);
    expect(errors).toEqual([URI]);
    now += DEFAULT_JWKS_RETRY_MS;
    expect((await check(config([rule]), req(bearer(t)), d)).allowed).toBe(true);
    expect(calls).toHaveLength(2);
  });

  it('re-fetches once for an unknown kid (rotated keys)', async () => {
    let now = NOW;
    let doc = jwks(es);
    const f = fetcher(() => doc);
    const d: AuthzDeps = { now: () => now, fetchJwks: f.fetchJwks };
    const rule: JwtRule = { policy: 'demo/jwt', issuer: ISSUER, jwksUri: URI };
    await check(config([rule]), req(bearer(await token(es))), d);
    doc = jwks(es, rs);
    // Too soon after the last fetch: no re-fetch, the unknown key fails.
    expect(await check(config([rule]), req(bearer(await token(rs))), d)).toMatchObject({ allowed: false, status: 401, body: JWT_BODY.noKey });
    now += 31_000;
    expect(await check(config([rule]), req(bearer(await token(rs))), d)).toMatchObject({ allowed: true });
    expect(f.calls).toHaveLength(2);
  });

  it('fails closed without a fetcher', async () => {
    const rule: JwtRule = { policy: 'demo/jwt', issuer: ISSUER, jwksUri: URI };
    const outcome = await check(config([rule]), req(bearer(await token(es))), deps());
    expect(outcome).toMatchObject({ allowed: false, status: 401, body: JWT_BODY.jwksFetch });
  });

  it('prefetches at compile time', async () => {
    const f = fetcher(() => jwks(es));
    compileAuthz(config([{ policy: 'demo/jwt', issuer: ISSUER, jwksUri: URI }]), deps({ fetchJwks: f.fetchJwks }));
    expect(f.calls).toEqual([URI]);
  });
});
