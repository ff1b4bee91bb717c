/**
 * A TokenReviewer backed by the Kubernetes TokenReview API, as istiod's Kubernetes JWT
 * authenticator does it: the review asks for the CA's audiences, and an authenticated answer
 * counts only if the API server confirms one of them (an audience-unaware authenticator returns
 * none — the TokenReview docs say to treat that as not valid for us).
 *
 * Positive answers are cached briefly (a node agent asks for several certificates with the same
 * token within seconds), keyed by a SHA-256 of token and audiences so the cache never holds a
 * token. Negative answers are not cached: a token that just became valid must work at once, and
 * failures are cheap to repeat. Review failures (API server unreachable, 403) reject.
 */
import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig, type V1TokenReview } from '@kubernetes/client-node';
import type { ReviewedToken, TokenReviewer } from '../ca/types.js';

/** kube-apiserver caches its own TokenReview answers for 10 s; a minute is Istio's order of magnitude. */
export const DEFAULT_REVIEW_CACHE_TTL_MS = 60_000;
export const DEFAULT_REVIEW_CACHE_MAX_ENTRIES = 4096;

export interface KubeTokenReviewerOptions {
  /** The API (or a fake with the same method). */
  api: Pick<AuthenticationV1Api, 'createTokenReview'>;
  cacheTtlMs?: number;
  cacheMaxEntries?: number;
  /** Injected for tests; default Date.now. */
  now?: () => number;
}

interface CacheEntry {
  expiresAt: number;
  result: ReviewedToken;
}

export class KubeTokenReviewer implements TokenReviewer {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly opts: KubeTokenReviewerOptions) {
    this.ttlMs = opts.cacheTtlMs ?? DEFAULT_REVIEW_CACHE_TTL_MS;
    this.maxEntries = opts.cacheMaxEntries ?? DEFAULT_REVIEW_CACHE_MAX_ENTRIES;
    this.now = opts.now ?? Date.now;
  }

  static fromKubeConfig(kc: KubeConfig, options: Omit<KubeTokenReviewerOptions, 'api'> = {}): KubeTokenReviewer {
    return new KubeTokenReviewer({ ...options, api: kc.makeApiClient(AuthenticationV1Api) });
  }

  async review(token: string, audiences: string[]): Promise<ReviewedToken> {
    const key = createHash('sha256').update(token).update('\0').update(audiences.join('\0')).digest('base64');
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) return structuredClone(hit.result);
    if (hit) this.cache.delete(key);

    const body: V1TokenReview = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } };
    const answer = await this.opts.api.createTokenReview({ body });
    const result = toReviewedToken(answer, audiences);
    if (result.authenticated && this.ttlMs > 0) {
      // Map order is insertion order: the first key is the oldest entry.
      while (this.cache.size >= this.maxEntries) {
        const oldest = this.cache.keys().next().value;
        if (oldest === undefined) break;
        this.cache.delete(oldest);
      }
      // Never past the token's own `exp`: the API server said yes for now, not for after it expires.
      const expiresAt = Math.min(now + this.ttlMs, jwtExpiryMs(token) ?? Number.POSITIVE_INFINITY);
      if (expiresAt > now) this.cache.set(key, { expiresAt, result: structuredClone(result) });
    }
    return result;
  }
}

/**
 * The `exp` claim of a JWT in ms, read without verifying (the API server verified it); only ever
 * used to shorten how long a positive review is cached. Undefined for anything else.
 */
export function jwtExpiryMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Reduces a TokenReview answer to what the CA needs, enforcing the audience check. */
export function toReviewedToken(answer: V1TokenReview, audiences: string[]): ReviewedToken {
  const s = answer.status;
  if (!s?.authenticated) return { authenticated: false, error: s?.error || 'the token was not authenticated' };
  const confirmed = (s.audiences ?? []).filter((a) => audiences.includes(a));
  if (audiences.length > 0 && confirmed.length === 0) {
    return { authenticated: false, error: `the token is not valid for audiences ${audiences.join(', ')} (the API server confirmed ${(s.audiences ?? []).join(', ') || 'none'})` };
  }
  const user = s.user ?? {};
  return {
    authenticated: true,
    ...(user.username !== undefined ? { username: user.username } : {}),
    ...(user.uid !== undefined ? { uid: user.uid } : {}),
    ...(user.groups !== undefined ? { groups: [...user.groups] } : {}),
    ...(user.extra !== undefined ? { extra: Object.fromEntries(Object.entries(user.extra).map(([k, v]) => [k, [...v]])) } : {}),
  };
}
