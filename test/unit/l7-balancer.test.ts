import { describe, expect, it } from 'vitest';
import { ClusterBalancer, endpointKey, endpointSetSignature, weightedDraw } from '../../src/l7/balancer.js';
import type { Cluster, Endpoint } from '../../src/l7/config.js';

const ep = (address: string, weight?: number, over: Partial<Endpoint> = {}): Endpoint => ({ address, port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/b', hbone: true, ...(weight !== undefined ? { weight } : {}), ...over });
const names = (b: ClusterBalancer, n: number, now = 0): string[] => Array.from({ length: n }, () => b.pick(now)?.endpoint.address ?? '-');

/** Cycles through the given values: injected randomness. */
const sequence = (...values: number[]): (() => number) => {
  let i = 0;
  return () => values[i++ % values.length] as number;
};

describe('ROUND_ROBIN (smooth weighted)', () => {
  it.each<[string, Endpoint[], string[]]>([
    ['equal weights alternate', [ep('a'), ep('b'), ep('c')], ['a', 'b', 'c', 'a', 'b', 'c']],
    // nginx's smooth WRR for 5:1:1 — never five a's in a row.
    ['5:1:1 interleaves', [ep('a', 5), ep('b', 1), ep('c', 1)], ['a', 'a', 'b', 'a', 'c', 'a', 'a']],
    ['weight 0 is never chosen', [ep('a', 0), ep('b')], ['b', 'b', 'b']],
    ['single endpoint', [ep('a')], ['a', 'a']],
  ])('%s', (_n, endpoints, expected) => {
    expect(names(new ClusterBalancer('ROUND_ROBIN', endpoints), expected.length)).toEqual(expected);
  });

  it('honours weights exactly over a window of the total weight', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('a', 9), ep('b', 1)]);
    const picks = names(b, 100);
    expect(picks.filter((p) => p === 'a')).toHaveLength(90);
  });

  it('no endpoints → undefined', () => {
    expect(new ClusterBalancer('ROUND_ROBIN', []).pick()).toBeUndefined();
  });
});

describe('RANDOM (weighted)', () => {
  it.each<[number, string]>([
    [0, 'a'],
    [0.74, 'a'],
    [0.75, 'b'],
    [0.9999, 'b'],
  ])('random %d → %s for weights 3:1', (r, expected) => {
    expect(new ClusterBalancer('RANDOM', [ep('a', 3), ep('b', 1)], () => r).pick()?.endpoint.address).toBe(expected);
  });
});

describe('LEAST_REQUEST (power of two choices)', () => {
  it('of two draws, the one with fewer requests in flight per weight wins; ties go to the first draw', () => {
    // Draws: first 'a' (r=0), then from [b, c] 'b' (r=0).
    const b = new ClusterBalancer('LEAST_REQUEST', [ep('a'), ep('b'), ep('c')], sequence(0));
    const [a, bb] = b.endpoints;
    expect(b.pick()?.endpoint.address).toBe('a');
    b.started(a!);
    expect(b.pick()?.endpoint.address).toBe('b');
    b.started(bb!);
    b.started(bb!);
    expect(b.pick()?.endpoint.address).toBe('a');
    b.finished(bb!);
    b.finished(bb!);
    b.finished(bb!); // never below zero
    expect(bb!.inFlight).toBe(0);
  });

  it('weights scale the in-flight comparison', () => {
    const b = new ClusterBalancer('LEAST_REQUEST', [ep('heavy', 4), ep('light', 1)], sequence(0, 0));
    const [heavy] = b.endpoints;
    for (let i = 0; i < 3; i++) b.started(heavy!);
    // Draws heavy then light: heavy has 3/4 = 0.75 in flight per weight, light 0/1 = 0: light wins.
    expect(b.pick()?.endpoint.address).toBe('light');
  });
});

describe('passive health', () => {
  it('ejects after consecutive connect failures, skips the ejected endpoint, returns it after the ejection', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('a'), ep('b')], Math.random, { consecutiveFailures: 2, ejectionMs: 1000 });
    const [a] = b.endpoints;
    b.connectFailed(a!, 0);
    b.connectSucceeded(a!); // resets the streak
    b.connectFailed(a!, 0);
    expect(a!.ejectedUntil).toBe(0);
    b.connectFailed(a!, 0);
    expect(a!.ejectedUntil).toBe(1000);
    expect(names(b, 4, 500)).toEqual(['b', 'b', 'b', 'b']);
    expect(names(b, 4, 1000).sort()).toEqual(['a', 'a', 'b', 'b']);
  });

  it('panic mode: when every endpoint is ejected, all are used', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('a'), ep('b')], Math.random, { consecutiveFailures: 1, ejectionMs: 1000 });
    for (const e of b.endpoints) b.connectFailed(e, 0);
    expect(names(b, 2, 10).sort()).toEqual(['a', 'b']);
  });
});

describe('state across config updates', () => {
  const cluster = (endpoints: Endpoint[], lb: Cluster['lb'] = 'ROUND_ROBIN'): Cluster => ({ name: 'c', service: 'demo/b', port: 80, lb, endpoints });

  it.each<[string, Cluster, boolean]>([
    ['same endpoints in another order', cluster([ep('b'), ep('a')]), true],
    ['a weight changed', cluster([ep('a', 2), ep('b')]), false],
    ['an endpoint added', cluster([ep('a'), ep('b'), ep('c')]), false],
    ['policy changed', cluster([ep('a'), ep('b')], 'RANDOM'), false],
    ['identity changed', cluster([ep('a', undefined, { identity: 'spiffe://x/ns/y/sa/z' }), ep('b')]), false],
  ])('%s → kept: %s', (_n, next, kept) => {
    const previous = ClusterBalancer.carryOver(undefined, cluster([ep('a'), ep('b')]));
    previous.pick();
    expect(ClusterBalancer.carryOver(previous, next) === previous).toBe(kept);
  });

  it('signature and key helpers', () => {
    expect(endpointKey({ address: 'fd00::1', port: 80 })).toBe('[fd00::1]:80');
    expect(endpointSetSignature('ROUND_ROBIN', [ep('b'), ep('a')])).toBe(endpointSetSignature('ROUND_ROBIN', [ep('a'), ep('b')]));
  });

  it('weightedDraw falls back to the last candidate on rounding', () => {
    const b = new ClusterBalancer('RANDOM', [ep('a'), ep('b')]);
    expect(weightedDraw(b.endpoints, () => 0.9999999999999999).endpoint.address).toBe('b');
  });
});
