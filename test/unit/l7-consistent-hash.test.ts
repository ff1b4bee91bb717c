import { describe, expect, it } from 'vitest';
import { ClusterBalancer } from '../../src/l7/balancer.js';
import type { Endpoint, HashPolicy } from '../../src/l7/config.js';
import { cookieValue, hash32, HashRing, requestHashKey, setCookieValue, type HashRequest } from '../../src/l7/resilience/consistent-hash.js';

const ep = (address: string, weight?: number): Endpoint => ({ address, port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/b', hbone: true, ...(weight !== undefined ? { weight } : {}) });
const eps = (n: number): Endpoint[] => Array.from({ length: n }, (_, i) => ep(`10.0.0.${i + 1}`));
const KEYS = Array.from({ length: 4000 }, (_, i) => `user-${i}`);
const HEADER: HashPolicy = { kind: 'header', name: 'x-user' };

function owners(b: ClusterBalancer, keys: readonly string[] = KEYS): Map<string, string> {
  return new Map(keys.map((k) => [k, b.pick({ now: 0, hashKey: k })?.endpoint.address ?? '-']));
}

describe('hash32 (MurmurHash3 x86 32)', () => {
  it('matches the reference implementation on 4-byte blocks', () => {
    // The textbook byte-oriented algorithm over the string's UTF-16LE bytes, written independently.
    const reference = (bytes: Uint8Array): number => {
      let h = 0;
      const blocks = bytes.length >> 2;
      for (let i = 0; i < blocks; i++) {
        let k = bytes[i * 4]! | (bytes[i * 4 + 1]! << 8) | (bytes[i * 4 + 2]! << 16) | (bytes[i * 4 + 3]! << 24);
        k = Math.imul(k, 0xcc9e2d51);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, 0x1b873593);
        h ^= k;
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      }
      const tail = blocks * 4;
      const rest = bytes.length & 3;
      if (rest > 0) {
        let k = 0;
        if (rest >= 3) k ^= bytes[tail + 2]! << 16;
        if (rest >= 2) k ^= bytes[tail + 1]! << 8;
        k ^= bytes[tail]!;
        k = Math.imul(k, 0xcc9e2d51);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, 0x1b873593);
        h ^= k;
      }
      h ^= bytes.length;
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      return h >>> 0;
    };
    expect(reference(new Uint8Array(Buffer.from('hello')))).toBe(0x248bfa47); // published test vector
    for (const text of ['', 'a', 'ab', 'abc', '10.0.0.1:8080_17', 'ünïcödé']) {
      expect(hash32(text)).toBe(reference(new Uint8Array(Buffer.from(text, 'utf16le'))));
    }
  });
});

describe('HashRing', () => {
  it('spreads keys evenly over equal members and by weight', () => {
    const ring = new HashRing([
      { item: 'a', key: 'a', weight: 1 },
      { item: 'b', key: 'b', weight: 1 },
      { item: 'c', key: 'c', weight: 2 },
    ]);
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (const k of KEYS) counts[ring.lookup(hash32(k)) as string]!++;
    expect(counts.a! / KEYS.length).toBeCloseTo(0.25, 1);
    expect(counts.b! / KEYS.length).toBeCloseTo(0.25, 1);
    expect(counts.c! / KEYS.length).toBeCloseTo(0.5, 1);
  });

  it('does not depend on member order', () => {
    const members = ['a', 'b', 'c'].map((k) => ({ item: k, key: k, weight: 1 }));
    const r1 = new HashRing(members);
    const r2 = new HashRing([...members].reverse());
    for (const k of KEYS.slice(0, 500)) expect(r1.lookup(hash32(k))).toBe(r2.lookup(hash32(k)));
  });

  it('walks past rejected members; none accepted → undefined', () => {
    const ring = new HashRing(['a', 'b'].map((k) => ({ item: k, key: k, weight: 1 })));
    for (const k of KEYS.slice(0, 100)) expect(ring.lookup(hash32(k), (m) => m !== 'a')).toBe('b');
    expect(ring.lookup(1, () => false)).toBeUndefined();
    expect(new HashRing<string>([]).lookup(1)).toBeUndefined();
  });
});

describe('ClusterBalancer with a hash policy', () => {
  it('the same key goes to the same endpoint', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', eps(4), Math.random, undefined, { hash: HEADER });
    const first = owners(b);
    expect(owners(b)).toEqual(first);
    expect(new Set(first.values()).size).toBe(4);
  });

  it('removing 1 of 4 endpoints moves only the keys it owned (~1/4)', () => {
    const before = owners(new ClusterBalancer('ROUND_ROBIN', eps(4), Math.random, undefined, { hash: HEADER }));
    const after = owners(new ClusterBalancer('ROUND_ROBIN', eps(4).slice(0, 3), Math.random, undefined, { hash: HEADER }));
    let moved = 0;
    for (const [k, owner] of before) {
      if (owner === '10.0.0.4') continue;
      if (after.get(k) !== owner) moved++;
    }
    expect(moved).toBe(0);
    const share = [...before.values()].filter((o) => o === '10.0.0.4').length / KEYS.length;
    expect(share).toBeGreaterThan(0.2);
    expect(share).toBeLessThan(0.3);
  });

  it('adding a 5th endpoint takes ~1/5 of the keys, all from the others', () => {
    const before = owners(new ClusterBalancer('ROUND_ROBIN', eps(4), Math.random, undefined, { hash: HEADER }));
    const after = owners(new ClusterBalancer('ROUND_ROBIN', eps(5), Math.random, undefined, { hash: HEADER }));
    const moved = [...before].filter(([k, o]) => after.get(k) !== o);
    expect(moved.every(([k]) => after.get(k) === '10.0.0.5')).toBe(true);
    expect(moved.length / KEYS.length).toBeGreaterThan(0.15);
    expect(moved.length / KEYS.length).toBeLessThan(0.25);
  });

  it('an ejected or excluded endpoint is walked past; its keys spread, the others stay', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', eps(4), Math.random, undefined, { hash: HEADER });
    const before = owners(b);
    const gone = b.endpoints[1]!;
    const after = new Map(KEYS.map((k) => [k, b.pick({ now: 0, hashKey: k, exclude: new Set([gone]) })?.endpoint.address]));
    for (const [k, owner] of before) {
      if (owner === gone.endpoint.address) expect(after.get(k)).not.toBe(owner);
      else expect(after.get(k)).toBe(owner);
    }
  });

  it('without a key: the cluster’s lb policy', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', eps(3), Math.random, undefined, { hash: HEADER });
    expect([0, 1, 2].map(() => b.pick({ now: 0 })?.endpoint.address)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('a key without a hash policy is ignored', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', eps(3));
    expect([0, 1, 2].map(() => b.pick({ now: 0, hashKey: 'same' })?.endpoint.address)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });
});

describe('requestHashKey', () => {
  const req = (over: Partial<HashRequest> = {}): HashRequest => ({ headers: {}, sourceIp: '10.1.1.1', query: '', ...over });
  const fixed = (): string => 'generated';

  it.each<[string, HashPolicy, HashRequest, ReturnType<typeof requestHashKey>]>([
    ['header present', HEADER, req({ headers: { 'x-user': 'alice' } }), { key: 'alice' }],
    ['header name case-insensitive', { kind: 'header', name: 'X-User' }, req({ headers: { 'x-user': 'alice' } }), { key: 'alice' }],
    ['header repeated', HEADER, req({ headers: { 'x-user': ['a', 'b'] } }), { key: 'a,b' }],
    ['header absent', HEADER, req(), {}],
    ['source ip', { kind: 'source-ip' }, req(), { key: '10.1.1.1' }],
    ['query param', { kind: 'query', name: 'u' }, req({ query: '?x=1&u=bob' }), { key: 'bob' }],
    ['query param without ?', { kind: 'query', name: 'u' }, req({ query: 'u=bob%20b' }), { key: 'bob b' }],
    ['query param absent', { kind: 'query', name: 'u' }, req({ query: '?x=1' }), {}],
    ['cookie present', { kind: 'cookie', name: 'sid', ttlMs: 60_000 }, req({ headers: { cookie: 'a=1; sid=abc; b=2' } }), { key: 'abc' }],
    ['cookie quoted', { kind: 'cookie', name: 'sid' }, req({ headers: { cookie: 'sid="abc"' } }), { key: 'abc' }],
    ['cookie absent, no ttl: no key', { kind: 'cookie', name: 'sid' }, req({ headers: { cookie: 'a=1' } }), {}],
    ['cookie absent, ttl: generated', { kind: 'cookie', name: 'sid', path: '/api', ttlMs: 60_000 }, req(), { key: 'generated', setCookie: 'sid=generated; Path=/api; Max-Age=60; HttpOnly' }],
    ['cookie absent, ttl 0: session cookie', { kind: 'cookie', name: 'sid', ttlMs: 0 }, req(), { key: 'generated', setCookie: 'sid=generated; HttpOnly' }],
  ])('%s', (_n, policy, request, expected) => {
    expect(requestHashKey(policy, request, fixed)).toEqual(expected);
  });

  it('generates a random cookie value by default', () => {
    const a = requestHashKey({ kind: 'cookie', name: 'sid', ttlMs: 1000 }, req());
    const b = requestHashKey({ kind: 'cookie', name: 'sid', ttlMs: 1000 }, req());
    expect(a.key).toMatch(/^[0-9a-f]{16}$/);
    expect(a.key).not.toBe(b.key);
    expect(a.setCookie).toBe(`sid=${a.key}; Max-Age=1; HttpOnly`);
  });

  it('cookie helpers', () => {
    expect(cookieValue(['x=1', 'sid=2; y=3'], 'sid')).toBe('2');
    expect(cookieValue('sidx=1; broken; sid=', 'sid')).toBe('');
    expect(cookieValue(undefined, 'sid')).toBeUndefined();
    expect(setCookieValue({ name: 'n', ttlMs: 1500 }, 'v')).toBe('n=v; Max-Age=2; HttpOnly');
  });
});
