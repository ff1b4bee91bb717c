/**
 * JWKS key sets, cached across config updates: the engine is recompiled on every config, but a
 * key set (and the keys jose imported from it) must survive that, so the cache hangs off the
 * AuthzDeps object the waypoint creates once (a WeakMap keyed by it), never off a compiled config.
 *
 * - Inline JWKS: parsed once per distinct text.
 * - `jwksUri`: fetched through `deps.fetchJwks`; served from the cache and refreshed in the
 *   background once older than `jwksRefreshMs` (20 min, istiod's JWKS resolver refresh): the old
 *   keys keep verifying while the refresh runs, and a failed refresh keeps them. A failed first
 *   fetch is remembered for `jwksRetryMs` so a burst of requests does not become a burst of
 *   fetches; the next request after that retries. Concurrent requests share one fetch.
 * - A token whose `kid` is not in the set triggers one re-fetch (keys rotated), at most once per
 *   KID_REFETCH_COOLDOWN_MS per URI (an attacker's random kids must not turn into fetches).
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AmeshError } from '../../errors/amesh-error.js';
import type { AuthzDeps } from './types.js';

export const DEFAULT_JWKS_REFRESH_MS = 20 * 60_000;
export const DEFAULT_JWKS_RETRY_MS = 5_000;
export const KID_REFETCH_COOLDOWN_MS = 30_000;
/** Bounds on what the cache keeps (configs name a handful of issuers). */
const MAX_INLINE = 64;
const MAX_REMOTE = 64;

export type KeySet = JWTVerifyGetKey;

interface RemoteEntry {
  keys?: KeySet;
  fetchedAt: number;
  pending?: Promise<KeySet>;
  failedAt?: number;
  error?: unknown;
}

/** Parses a JWKS document; throws when it is not JSON with a `keys` array. */
export function parseJwks(text: string): KeySet {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'the JWKS is not valid JSON', { cause: err });
  }
  if (json === null || typeof json !== 'object' || !Array.isArray((json as { keys?: unknown }).keys)) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'the JWKS has no "keys" array');
  }
  return createLocalJWKSet(json as JSONWebKeySet);
}

/** Keeps at most `max` entries, dropping the oldest inserted. */
function bounded<K, V>(map: Map<K, V>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}

export class JwksCache {
  readonly #deps: AuthzDeps;
  readonly #inline = new Map<string, KeySet>();
  readonly #remote = new Map<string, RemoteEntry>();

  constructor(deps: AuthzDeps) {
    this.#deps = deps;
  }

  #now(): number {
    return this.#deps.now?.() ?? Date.now();
  }

  /** The key set of an inline JWKS (throws when it is invalid). */
  inline(text: string): KeySet {
    let keys = this.#inline.get(text);
    if (!keys) {
      keys = parseJwks(text);
      this.#inline.set(text, keys);
      bounded(this.#inline, MAX_INLINE);
    }
    return keys;
  }

  /** The key set of a JWKS URI; rejects when none could be fetched yet. */
  remote(uri: string): Promise<KeySet> {
    const now = this.#now();
    const entry = this.#remote.get(uri);
    if (entry?.keys) {
      if (now - entry.fetchedAt >= (this.#deps.jwksRefreshMs ?? DEFAULT_JWKS_REFRESH_MS) && !entry.pending) this.#fetch(uri).catch(() => undefined);
      return Promise.resolve(entry.keys);
    }
    if (entry?.pending) return entry.pending;
    if (entry?.failedAt !== undefined && now - entry.failedAt < (this.#deps.jwksRetryMs ?? DEFAULT_JWKS_RETRY_MS)) return Promise.reject(entry.error);
    return this.#fetch(uri);
  }

  /** Starts fetching a URI not cached yet (at config time, so the first request need not wait). */
  prefetch(uri: string): void {
    if (this.#remote.has(uri)) return;
    this.#fetch(uri).catch(() => undefined);
  }

  /**
   * The key set after a re-fetch, for a token whose key was not found; undefined when the
   * current set is too fresh to re-fetch (cooldown) or the re-fetch failed.
   */
  async refetchForUnknownKey(uri: string): Promise<KeySet | undefined> {
    const entry = this.#remote.get(uri);
    if (entry?.pending) return entry.pending.catch(() => undefined);
    if (entry?.keys && this.#now() - entry.fetchedAt < KID_REFETCH_COOLDOWN_MS) return undefined;
    return this.#fetch(uri).catch(() => undefined);
  }

  /** Test and debug view: which URIs are cached and since when. */
  snapshot(): Array<{ uri: string; fetchedAt?: number; failedAt?: number }> {
    return [...this.#remote.entries()].map(([uri, e]) => ({ uri, ...(e.keys ? { fetchedAt: e.fetchedAt } : {}), ...(e.failedAt !== undefined ? { failedAt: e.failedAt } : {}) }));
  }

  #fetch(uri: string): Promise<KeySet> {
    let entry = this.#remote.get(uri);
    if (!entry) {
      entry = { fetchedAt: 0 };
      this.#remote.set(uri, entry);
      bounded(this.#remote, MAX_REMOTE);
    }
    if (entry.pending) return entry.pending;
    const target = entry;
    const fetchJwks = this.#deps.fetchJwks;
    const pending = (async (): Promise<KeySet> => {
      if (!fetchJwks) throw new AmeshError('AMESH_CONFIG_INVALID', `cannot fetch the JWKS ${uri}: this waypoint has no JWKS fetcher`);
      const keys = parseJwks(await fetchJwks(uri));
      target.keys = keys;
      target.fetchedAt = this.#now();
      delete target.failedAt;
      delete target.error;
      return keys;
    })();
    target.pending = pending;
    pending.then(
      () => delete target.pending,
      (err: unknown) => {
        delete target.pending;
        target.failedAt = this.#now();
        target.error = err;
        this.#deps.onJwksError?.(uri, err);
      },
    );
    return pending;
  }
}

const caches = new WeakMap<AuthzDeps, JwksCache>();

/** The cache of this deps object (created on first use; lives as long as the deps). */
export function jwksCacheFor(deps: AuthzDeps): JwksCache {
  let cache = caches.get(deps);
  if (!cache) {
    cache = new JwksCache(deps);
    caches.set(deps, cache);
  }
  return cache;
}
