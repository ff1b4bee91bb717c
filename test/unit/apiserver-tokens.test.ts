import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_ISSUER, TokenAuthority, type ServiceAccountTokenClaims } from '../../src/sandbox/apiserver/tokens.js';

const dir = mkdtempSync(join(tmpdir(), 'amesh-tokens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const POD_TOKEN = {
  namespace: 'demo',
  serviceAccount: 'web',
  serviceAccountUid: 'sa-uid-1',
  pod: { name: 'web-0', uid: 'pod-uid-1' },
  node: { name: 'sandbox-node1', uid: 'node-uid-1' },
};

function fakeClock(start: string): { now: () => Date; advance: (seconds: number) => void } {
  let t = new Date(start).getTime();
  return { now: () => new Date(t), advance: (s) => (t += s * 1000) };
}

describe('TokenAuthority', () => {
  it('issues tokens with the claims of a Kubernetes bound service-account token', async () => {
    const clock = fakeClock('2030-01-01T00:00:00Z');
    const authority = await TokenAuthority.create({ now: clock.now });
    const token = await authority.issueServiceAccountToken({ ...POD_TOKEN, audiences: ['istio-ca'], expirationSeconds: 7200 });
    const claims = decodeJwt(token) as unknown as ServiceAccountTokenClaims;
    const iat = Date.parse('2030-01-01T00:00:00Z') / 1000;
    expect(claims).toMatchObject({
      iss: DEFAULT_ISSUER,
      sub: 'system:serviceaccount:demo:web',
      aud: ['istio-ca'],
      iat,
      nbf: iat,
      exp: iat + 7200,
      'kubernetes.io': { namespace: 'demo', serviceaccount: { name: 'web', uid: 'sa-uid-1' }, pod: { name: 'web-0', uid: 'pod-uid-1' }, node: { name: 'sandbox-node1', uid: 'node-uid-1' } },
    });
    const review = await authority.verify(token, { audiences: ['istio-ca'] });
    expect(review).toEqual({
      authenticated: true,
      audiences: ['istio-ca'],
      user: {
        username: 'system:serviceaccount:demo:web',
        uid: 'sa-uid-1',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:demo', 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/pod-name': ['web-0'],
          'authentication.kubernetes.io/pod-uid': ['pod-uid-1'],
          'authentication.kubernetes.io/node-name': ['sandbox-node1'],
          'authentication.kubernetes.io/node-uid': ['node-uid-1'],
        },
      },
    });
  });

  it('defaults the audience to the issuer and the lifetime to one hour (at least ten minutes)', async () => {
    const authority = await TokenAuthority.create({ issuer: 'https://sandbox.example' });
    const token = await authority.issueServiceAccountToken({ namespace: 'a', serviceAccount: 'b', serviceAccountUid: 'u' });
    const claims = decodeJwt(token);
    expect(claims.aud).toEqual(['https://sandbox.example']);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3600);
    expect((await authority.verify(token)).authenticated).toBe(true);
    const short = decodeJwt(await authority.issueServiceAccountToken({ namespace: 'a', serviceAccount: 'b', serviceAccountUid: 'u', expirationSeconds: 60 }));
    expect((short.exp ?? 0) - (short.iat ?? 0)).toBe(600);
  });

  it('rejects expired, wrong-audience, foreign and garbage tokens with a reason', async () => {
    const clock = fakeClock('2030-01-01T00:00:00Z');
    const authority = await TokenAuthority.create({ now: clock.now });
    const other = await TokenAuthority.create({ now: clock.now });
    const token = await authority.issueServiceAccountToken({ ...POD_TOKEN, expirationSeconds: 600 });
    const foreign = await other.issueServiceAccountToken(POD_TOKEN);
    const cases: Array<[string, Promise<{ authenticated: boolean; error?: string }>, RegExp]> = [
      ['wrong audience', authority.verify(token, { audiences: ['istio-ca'] }), /audiences/],
      ['wrong key', authority.verify(foreign), /signature/],
      ['garbage', authority.verify('not-a-token'), /not a valid JWT/],
      ['tampered', authority.verify(`${token.slice(0, -4)}AAAA`), /signature|JWT/],
    ];
    for (const [name, pending, reason] of cases) {
      const review = await pending;
      expect(review.authenticated, name).toBe(false);
      expect(review.error, name).toMatch(reason);
    }
    expect((await authority.verify(token)).authenticated).toBe(true);
    clock.advance(601);
    expect(await authority.verify(token)).toEqual({ authenticated: false, error: 'invalid bearer token: token has expired' });
  });

  it('rejects tokens whose pod is gone via isBound', async () => {
    const livePods = new Set(['pod-uid-1']);
    const authority = await TokenAuthority.create({ isBound: (claims) => claims['kubernetes.io'].pod === undefined || livePods.has(claims['kubernetes.io'].pod.uid) });
    const token = await authority.issueServiceAccountToken(POD_TOKEN);
    expect((await authority.verify(token)).authenticated).toBe(true);
    livePods.delete('pod-uid-1');
    const review = await authority.verify(token);
    expect(review.authenticated).toBe(false);
    expect(review.error).toContain('pod demo/web-0');
  });

  it('authenticates static tokens (admin kubeconfig) and nothing similar', async () => {
    const authority = await TokenAuthority.create();
    authority.addStaticToken('s3cret-admin', { username: 'sandbox-admin', uid: 'admin', groups: ['system:masters', 'system:authenticated'] });
    expect(await authority.verify('s3cret-admin')).toMatchObject({ authenticated: true, user: { username: 'sandbox-admin', groups: ['system:masters', 'system:authenticated'] } });
    expect((await authority.verify('s3cret-admin2')).authenticated).toBe(false);
    expect(() => authority.addStaticToken('', { username: 'x', uid: 'x', groups: [] })).toThrow(/must not be empty/);
  });

  it('persists the signing key (0600) so a restarted authority accepts old tokens', async () => {
    const keyFile = join(dir, 'nested', 'sa.key');
    const first = await TokenAuthority.create({ keyFile });
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const token = await first.issueServiceAccountToken(POD_TOKEN);
    const second = await TokenAuthority.create({ keyFile });
    expect((await second.verify(token)).authenticated).toBe(true);
    const unrelated = await TokenAuthority.create({ keyFile: join(dir, 'other.key') });
    expect((await unrelated.verify(token)).authenticated).toBe(false);
  });

  it('refuses a key file that is not a P-256 PKCS#8 key, naming the file', async () => {
    const keyFile = join(dir, 'bad.key');
    writeFileSync(keyFile, 'garbage');
    await expect(TokenAuthority.create({ keyFile })).rejects.toThrow(keyFile);
  });
});
