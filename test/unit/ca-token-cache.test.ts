/**
 * A positive TokenReview is cached for at most the reviewer's TTL and never past the token's own
 * `exp`, so an expired token is asked about again (and refused) instead of being served from cache.
 */
import { describe, expect, it } from 'vitest';
import type { V1TokenReview } from '@kubernetes/client-node';
import { jwtExpiryMs, KubeTokenReviewer } from '../../src/controller/kube/token-reviewer.js';

function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'ES256' })}.${part(claims)}.c2ln`;
}

describe('token review cache and token expiry', () => {
  it('reads exp from a JWT and nothing from other strings', () => {
    expect(jwtExpiryMs(jwt({ exp: 1_800_000_000 }))).toBe(1_800_000_000_000);
    expect(jwtExpiryMs(jwt({ sub: 'x' }))).toBeUndefined();
    expect(jwtExpiryMs('not-a-jwt')).toBeUndefined();
    expect(jwtExpiryMs('a.%%%.c')).toBeUndefined();
  });

  it('asks the API server again once the cached token has expired, even within the cache TTL', async () => {
    let now = 1_000_000;
    let calls = 0;
    const api = {
      createTokenReview: async ({ body }: { body: V1TokenReview }): Promise<V1TokenReview> => {
        calls++;
        const alive = now < 1_002_000;
        return { ...body, status: alive ? { authenticated: true, audiences: ['istio-ca'], user: { username: 'system:serviceaccount:a:b' } } : { authenticated: false, error: 'token expired' } };
      },
    };
    const reviewer = new KubeTokenReviewer({ api: api as never, cacheTtlMs: 60_000, now: () => now });
    const token = jwt({ exp: 1_002 }); // expires at 1_002_000 ms
    expect((await reviewer.review(token, ['istio-ca'])).authenticated).toBe(true);
    now = 1_001_000;
    expect((await reviewer.review(token, ['istio-ca'])).authenticated).toBe(true);
    expect(calls).toBe(1);
    now = 1_002_500;
    expect((await reviewer.review(token, ['istio-ca'])).authenticated).toBe(false);
    expect(calls).toBe(2);
  });
});
