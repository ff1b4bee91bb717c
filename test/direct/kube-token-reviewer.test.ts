/**
 * KubeTokenReviewer against the embedded API server, whose TokenReview is answered by the
 * sandbox's TokenAuthority (real bound service-account JWTs, real audience checks). The shared
 * harness answers TokenReview only for its admin token, so this file wires its own server the
 * same way the sandbox daemon does.
 *
 * What must hold: only tokens minted for the CA's audience authenticate, as the service account
 * with the pod/node binding in `extra`; positive answers are cached (and only those) until the
 * entry expires; a review that cannot be made rejects, so the CA answers UNAVAILABLE instead of
 * treating the caller as unauthenticated.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import type { Server } from 'node:https';
import { AuthenticationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CA_TOKEN_AUDIENCE } from '../../src/controller/ca/types.js';
import { KubeTokenReviewer, toReviewedToken } from '../../src/controller/kube/token-reviewer.js';
import { createApiServer } from '../../src/sandbox/apiserver/http-server.js';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import { createServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';
import { TokenAuthority } from '../../src/sandbox/apiserver/tokens.js';

const ADMIN_TOKEN = 'reviewer-test-admin';
/** Answered like an authenticator that ignores audiences: authenticated, no audiences confirmed. */
const AUDIENCE_UNAWARE_TOKEN = 'legacy-static-token';

function kubeConfigFor(server: string, caPem: string, token = ADMIN_TOKEN): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server, caData: Buffer.from(caPem).toString('base64') }],
    users: [{ name: 'test', token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
    currentContext: 'test',
  });
  return kc;
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

describe('KubeTokenReviewer against the embedded API server', () => {
  let serverClock = Date.now();
  let authority: TokenAuthority;
  let store: MemoryStore;
  let server: Server;
  let url: string;
  let caPem: string;
  let api: AuthenticationV1Api;
  let apiCalls = 0;
  /** The real client, counting the TokenReviews that reach the API server. */
  let countingApi: Pick<AuthenticationV1Api, 'createTokenReview'>;

  beforeAll(async () => {
    authority = await TokenAuthority.create({ now: () => new Date(serverClock) });
    authority.addStaticToken(ADMIN_TOKEN, { username: 'admin', uid: 'admin', groups: ['system:masters', 'system:authenticated'] });
    const tls = await createServingCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], days: 1 });
    caPem = tls.caCertPem;
    store = createMemoryStore();
    server = createApiServer({
      store,
      tls: { cert: tls.certPem, key: tls.keyPem },
      authenticate: (token) => authority.verify(token),
      tokenReview: (token, audiences) =>
        token === AUDIENCE_UNAWARE_TOKEN
          ? { authenticated: true, user: { username: 'legacy', uid: 'legacy', groups: ['system:authenticated'] } }
          : authority.verify(token, audiences ? { audiences } : {}),
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    api = kubeConfigFor(url, caPem).makeApiClient(AuthenticationV1Api);
    countingApi = {
      createTokenReview: (...args: Parameters<AuthenticationV1Api['createTokenReview']>) => {
        apiCalls++;
        return api.createTokenReview(...args);
      },
    };
  });

  afterAll(async () => {
    if (server?.listening) {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    }
    store?.close();
  });

  beforeEach(() => {
    serverClock = Date.now();
    apiCalls = 0;
  });

  function token(o: { audiences?: string[]; pod?: string; node?: string; namespace?: string; serviceAccount?: string; expirationSeconds?: number } = {}): Promise<string> {
    const namespace = o.namespace ?? 'amesh-system';
    const serviceAccount = o.serviceAccount ?? 'amesh-node';
    return authority.issueServiceAccountToken({
      namespace,
      serviceAccount,
      serviceAccountUid: `${namespace}-${serviceAccount}-uid`,
      audiences: o.audiences ?? [CA_TOKEN_AUDIENCE],
      ...(o.pod ? { pod: { name: o.pod, uid: `${o.pod}-uid` } } : {}),
      ...(o.node ? { node: { name: o.node, uid: `${o.node}-uid` } } : {}),
      ...(o.expirationSeconds !== undefined ? { expirationSeconds: o.expirationSeconds } : {}),
    });
  }

  describe('authenticates', () => {
    it('a pod-bound istio-ca token as its service account, with the pod and node in extra', async () => {
      const reviewer = new KubeTokenReviewer({ api: countingApi });
      const result = await reviewer.review(await token({ pod: 'amesh-node-x1', node: 'n1' }), [CA_TOKEN_AUDIENCE]);
      expect(result).toEqual({
        authenticated: true,
        username: 'system:serviceaccount:amesh-system:amesh-node',
        uid: 'amesh-system-amesh-node-uid',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:amesh-system', 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/pod-name': ['amesh-node-x1'],
          'authentication.kubernetes.io/pod-uid': ['amesh-node-x1-uid'],
          'authentication.kubernetes.io/node-name': ['n1'],
          'authentication.kubernetes.io/node-uid': ['n1-uid'],
        },
      });
      expect(apiCalls).toBe(1);
    });

    it('a token carrying several audiences when one of them is the CA’s', async () => {
      const reviewer = new KubeTokenReviewer({ api: countingApi });
      const result = await reviewer.review(await token({ audiences: ['https://kubernetes.default.svc', CA_TOKEN_AUDIENCE], namespace: 'demo', serviceAccount: 'web' }), [CA_TOKEN_AUDIENCE]);
      expect(result).toMatchObject({ authenticated: true, username: 'system:serviceaccount:demo:web' });
      expect(result.extra).toBeUndefined();
    });
  });

  describe('does not authenticate', () => {
    it('a token minted for another audience', async () => {
      const reviewer = new KubeTokenReviewer({ api: countingApi });
      const result = await reviewer.review(await token({ audiences: ['vault'] }), [CA_TOKEN_AUDIENCE]);
      expect(result.authenticated).toBe(false);
      expect(result.error).toMatch(/audience/);
      expect(result.username).toBeUndefined();
    });

    it('garbage, and asks again next time (negative answers are not cached)', async () => {
      const reviewer = new KubeTokenReviewer({ api: countingApi });
      for (const garbage of ['not-a-jwt', 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln']) {
        const result = await reviewer.review(garbage, [CA_TOKEN_AUDIENCE]);
        expect(result.authenticated, garbage).toBe(false);
        expect(result.error, garbage).toMatch(/invalid bearer token/);
      }
      await reviewer.review('not-a-jwt', [CA_TOKEN_AUDIENCE]);
      expect(apiCalls).toBe(3);
    });

    it('an expired token', async () => {
      const reviewer = new KubeTokenReviewer({ api: countingApi });
      const expired = await token({ expirationSeconds: 600 });
      serverClock += 601_000;
      expect(await reviewer.review(expired, [CA_TOKEN_AUDIENCE])).toEqual({ authenticated: false, error: 'invalid bearer token: token has expired' });
    });

    it('an answer from an audience-unaware authenticator (authenticated, but no audience confirmed)', async () => {
      const reviewer = new KubeTokenReviewer({ api: countingApi });
      const result = await reviewer.review(AUDIENCE_UNAWARE_TOKEN, [CA_TOKEN_AUDIENCE]);
      expect(result.authenticated).toBe(false);
      expect(result.error).toMatch(/not valid for audiences istio-ca .*confirmed none/);
      expect(toReviewedToken({ spec: {}, status: { authenticated: true, audiences: ['other'] } }, [CA_TOKEN_AUDIENCE]).authenticated).toBe(false);
    });
  });

  describe('cache', () => {
    it('serves the second review of the same token without calling the API server', async () => {
      const reviewer = new KubeTokenReviewer({ api: countingApi });
      const bearer = await token({ pod: 'amesh-node-x1' });
      const first = await reviewer.review(bearer, [CA_TOKEN_AUDIENCE]);
      const second = await reviewer.review(bearer, [CA_TOKEN_AUDIENCE]);
      expect(apiCalls).toBe(1);
      expect(second).toEqual(first);
      // A caller mutating its answer must not poison the cache.
      second.extra?.['authentication.kubernetes.io/pod-name']?.splice(0);
      expect(await reviewer.review(bearer, [CA_TOKEN_AUDIENCE])).toEqual(first);
      // Another audience list is another question.
      await reviewer.review(bearer, [CA_TOKEN_AUDIENCE, 'other']);
      expect(apiCalls).toBe(2);
    });

    it('re-reviews an expired entry, and the API server’s new answer wins', async () => {
      let clock = 1_000_000;
      const reviewer = new KubeTokenReviewer({ api: countingApi, cacheTtlMs: 5000, now: () => clock });
      const bearer = await token({ expirationSeconds: 600 });
      expect((await reviewer.review(bearer, [CA_TOKEN_AUDIENCE])).authenticated).toBe(true);
      clock += 4999;
      expect((await reviewer.review(bearer, [CA_TOKEN_AUDIENCE])).authenticated).toBe(true);
      expect(apiCalls).toBe(1);

      clock += 1;
      expect((await reviewer.review(bearer, [CA_TOKEN_AUDIENCE])).authenticated).toBe(true);
      expect(apiCalls).toBe(2);

      // Meanwhile the token expired at the API server: once the entry expires the CA learns it.
      serverClock += 601_000;
      clock += 5000;
      expect(await reviewer.review(bearer, [CA_TOKEN_AUDIENCE])).toMatchObject({ authenticated: false, error: 'invalid bearer token: token has expired' });
      expect(apiCalls).toBe(3);
    });

    it('evicts the oldest entry when full, and caches nothing with a TTL of 0', async () => {
      const small = new KubeTokenReviewer({ api: countingApi, cacheMaxEntries: 2 });
      const [a, b, c] = await Promise.all([token({ serviceAccount: 'a' }), token({ serviceAccount: 'b' }), token({ serviceAccount: 'c' })]);
      for (const t of [a, b, c]) await small.review(t as string, [CA_TOKEN_AUDIENCE]);
      expect(apiCalls).toBe(3);
      await small.review(c as string, [CA_TOKEN_AUDIENCE]);
      await small.review(b as string, [CA_TOKEN_AUDIENCE]);
      expect(apiCalls).toBe(3);
      await small.review(a as string, [CA_TOKEN_AUDIENCE]);
      expect(apiCalls).toBe(4);

      const uncached = new KubeTokenReviewer({ api: countingApi, cacheTtlMs: 0 });
      await uncached.review(a as string, [CA_TOKEN_AUDIENCE]);
      await uncached.review(a as string, [CA_TOKEN_AUDIENCE]);
      expect(apiCalls).toBe(6);
    });
  });

  describe('rejects (the CA answers UNAVAILABLE) when the review cannot be made', () => {
    it('the API server is unreachable', async () => {
      const reviewer = KubeTokenReviewer.fromKubeConfig(kubeConfigFor(`https://127.0.0.1:${await closedPort()}`, caPem));
      await expect(reviewer.review(await token(), [CA_TOKEN_AUDIENCE])).rejects.toThrow(/ECONNREFUSED|connect/);
    });

    it('the API server refuses the reviewer’s own credentials (401)', async () => {
      const reviewer = KubeTokenReviewer.fromKubeConfig(kubeConfigFor(url, caPem, 'not-the-admin-token'));
      await expect(reviewer.review(await token(), [CA_TOKEN_AUDIENCE])).rejects.toThrow(/401/);
    });

    it('a cached answer is still served while the API server is unreachable', async () => {
      const bearer = await token({ pod: 'amesh-node-x1' });
      let failing = false;
      const flaky = new KubeTokenReviewer({
        api: {
          createTokenReview: (...args: Parameters<AuthenticationV1Api['createTokenReview']>) => (failing ? Promise.reject(new Error('connect ECONNREFUSED')) : api.createTokenReview(...args)),
        },
      });
      const first = await flaky.review(bearer, [CA_TOKEN_AUDIENCE]);
      expect(first.authenticated).toBe(true);
      failing = true;
      expect(await flaky.review(bearer, [CA_TOKEN_AUDIENCE])).toEqual(first);
      await expect(flaky.review(await token({ serviceAccount: 'other' }), [CA_TOKEN_AUDIENCE])).rejects.toThrow(/ECONNREFUSED/);
    });
  });
});
