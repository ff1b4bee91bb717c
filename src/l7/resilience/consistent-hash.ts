/**
 * DestinationRule `loadBalancer.consistentHash` as a ring hash (Envoy's RING_HASH, Ketama-like):
 * every endpoint owns `VIRTUAL_NODES_PER_WEIGHT × weight` points on a 32-bit ring, each point the
 * hash of `<endpoint key>_<i>`; a request's key hashes to a point and takes the first endpoint
 * clockwise. A point depends only on its endpoint, so when an endpoint leaves only the keys it
 * owned move (≈ 1/n of them) and when one joins it takes ≈ 1/(n+1) from the others.
 *
 * The ring is capped at MAX_RING_POINTS (points scale down proportionally beyond it, at the cost
 * of some stability for clusters that large). Hash: MurmurHash3 x86 32-bit over UTF-16 code
 * units — fast in JavaScript, well distributed, stable across processes (Envoy's xxHash64 is not
 * needed: keys are only compared within one waypoint).
 *
 * `requestHashKey` extracts the key from a request per the policy (header, cookie, source IP,
 * query parameter); a cookie policy with a TTL and no cookie in the request generates one, which
 * the proxy returns to the client with `Set-Cookie` (Envoy's behaviour).
 */
import { randomBytes } from 'node:crypto';
import type { HashPolicy } from '../config.js';

export const VIRTUAL_NODES_PER_WEIGHT = 1024;
export const MAX_RING_POINTS = 1 << 17;
/** Owner indexes packed under each point's hash (at most 2^21 members). */
const OWNER_SPACE = 2 ** 21;

/** MurmurHash3 (x86, 32-bit) of the string's UTF-16 code units. */
export function hash32(text: string, seed = 0): number {
  let h = seed >>> 0;
  const n = text.length;
  let i = 0;
  // Two code units per 32-bit block.
  for (; i + 1 < n; i += 2) {
    let k = (text.charCodeAt(i) & 0xffff) | ((text.charCodeAt(i + 1) & 0xffff) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    let k = text.charCodeAt(i) & 0xffff;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface RingMember<T> {
  item: T;
  /** Stable identity of the member (its points derive from it). */
  key: string;
  weight: number;
}

export class HashRing<T> {
  private readonly points: Uint32Array;
  /** Index into `items` of each point, in ring order. */
  private readonly owners: Uint32Array;
  private readonly items: T[];

  constructor(members: readonly RingMember<T>[]) {
    const live = members.filter((m) => m.weight > 0);
    this.items = live.map((m) => m.item);
    const totalWeight = live.reduce((n, m) => n + m.weight, 0);
    const scale = totalWeight > 0 ? Math.min(VIRTUAL_NODES_PER_WEIGHT, MAX_RING_POINTS / totalWeight) : 0;
    const counts = live.map((m) => Math.max(1, Math.round(m.weight * scale)));
    const size = counts.reduce((n, c) => n + c, 0);
    // Each point packed as hash × 2^21 + owner index (exact in a double up to 2^53) and sorted as
    // a typed array: several times faster than sorting index arrays with a comparator.
    const packed = new Float64Array(size);
    let p = 0;
    for (const [idx, m] of live.entries()) {
      const count = counts[idx] as number;
      for (let i = 0; i < count; i++, p++) packed[p] = hash32(`${m.key}_${i}`) * OWNER_SPACE + idx;
    }
    packed.sort();
    this.points = new Uint32Array(size);
    this.owners = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
      const v = packed[i] as number;
      const owner = v % OWNER_SPACE;
      this.points[i] = (v - owner) / OWNER_SPACE;
      this.owners[i] = owner;
    }
  }

  get size(): number {
    return this.points.length;
  }

  /**
   * The first member clockwise from `hash` that `accept`s (ejected or excluded members are
   * walked past, so their keys spread over the following members). Undefined when none does.
   */
  lookup(hash: number, accept: (item: T) => boolean = () => true): T | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.points[mid] as number) < hash) lo = mid + 1;
      else hi = mid;
    }
    const rejected = new Set<number>();
    for (let step = 0; step < n && rejected.size < this.items.length; step++) {
      const owner = this.owners[(lo + step) % n] as number;
      if (rejected.has(owner)) continue;
      const item = this.items[owner] as T;
      if (accept(item)) return item;
      rejected.add(owner);
    }
    return undefined;
  }
}

export interface HashRequest {
  /** Lower-case header names, as Node delivers them. */
  headers: Record<string, string | string[] | undefined>;
  sourceIp: string;
  /** The query string, with or without its leading `?`. */
  query: string;
}

export interface HashKey {
  /** Absent = the request has no key: the cluster's normal policy picks. */
  key?: string;
  /** The Set-Cookie value to add to the response (a cookie policy generated the key). */
  setCookie?: string;
}

/** The hash key of a request per `policy`; `random` makes generated cookie values (tests inject it). */
export function requestHashKey(policy: HashPolicy, req: HashRequest, random: () => string = randomCookieValue): HashKey {
  switch (policy.kind) {
    case 'header': {
      const value = req.headers[policy.name.toLowerCase()];
      if (value === undefined) return {};
      return { key: Array.isArray(value) ? value.join(',') : value };
    }
    case 'source-ip':
      return req.sourceIp ? { key: req.sourceIp } : {};
    case 'query': {
      const value = new URLSearchParams(req.query.startsWith('?') ? req.query.slice(1) : req.query).get(policy.name);
      return value === null ? {} : { key: value };
    }
    case 'cookie': {
      const value = cookieValue(req.headers.cookie, policy.name);
      if (value !== undefined) return { key: value };
      // Envoy: no TTL → no cookie generated (the request simply has no key); TTL 0 → a session cookie.
      if (policy.ttlMs === undefined) return {};
      const generated = random();
      return { key: generated, setCookie: setCookieValue(policy, generated) };
    }
  }
}

/** `name=value; Path=…; Max-Age=…; HttpOnly` (Max-Age in whole seconds; none for a session cookie). */
export function setCookieValue(policy: { name: string; path?: string; ttlMs?: number }, value: string): string {
  const parts = [`${policy.name}=${value}`];
  if (policy.path) parts.push(`Path=${policy.path}`);
  if (policy.ttlMs !== undefined && policy.ttlMs > 0) parts.push(`Max-Age=${Math.max(1, Math.ceil(policy.ttlMs / 1000))}`);
  parts.push('HttpOnly');
  return parts.join('; ');
}

/** The value of cookie `name` in a Cookie header (RFC 6265 `a=b; c=d`; quotes stripped); first wins. */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const lines = Array.isArray(header) ? header : [header];
  for (const line of lines) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      if (pair.slice(0, eq).trim() !== name) continue;
      const raw = pair.slice(eq + 1).trim();
      return raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
    }
  }
  return undefined;
}

function randomCookieValue(): string {
  return randomBytes(8).toString('hex');
}
