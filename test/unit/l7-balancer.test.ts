import { describe, expect, it } from 'vitest';
import { ClusterBalancer, endpointKey, endpointSetSignature, weightedDraw, type EndpointState } from '../../src/l7/balancer.js';
import type { Cluster, Endpoint, WaypointConfig } from '../../src/l7/config.js';
import { buildWaypointState, poolTargets } from '../../src/l7/waypoint-state.js';

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

describe('pick context', () => {
  it('pick({ now }) equals pick(now)', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('a'), ep('b')], Math.random, { consecutiveFailures: 1, ejectionMs: 1000 });
    b.connectFailed(b.endpoints[0]!, 0);
    expect(b.pick({ now: 10 })?.endpoint.address).toBe('b');
    expect(b.pick(10)?.endpoint.address).toBe('b');
    expect(b.pick({ now: 1000 })).toBeDefined();
  });

  it('exclude skips previous attempts; ignored when nothing else is left', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('a'), ep('b'), ep('c')]);
    const [a, bb, c] = b.endpoints;
    expect(names2(b, 4, new Set([a!]))).toEqual(['b', 'c', 'b', 'c']);
    expect(names2(b, 2, new Set([a!, bb!, c!])).length).toBe(2);
    expect(b.pick({ now: 0, exclude: new Set([a!, bb!, c!]) })).toBeDefined();
  });

  it('exclude combines with ejection: an ejected endpoint is not a fallback while another is healthy', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('a'), ep('b'), ep('c')], Math.random, { consecutiveFailures: 1, ejectionMs: 1000 });
    const [a, bb] = b.endpoints;
    b.connectFailed(a!, 0);
    expect(names2(b, 3, new Set([bb!]))).toEqual(['c', 'c', 'c']);
  });

  it('snapshot shows the per-endpoint state for dumps', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('a'), ep('b', 3, { locality: 'r/z' })], Math.random, { consecutiveFailures: 2, ejectionMs: 1000 });
    const [a] = b.endpoints;
    b.started(a!);
    b.connectFailed(a!, 5);
    b.connectFailed(a!, 5);
    expect(b.snapshot(6)).toEqual([
      { key: 'a:8080', weight: 1, ejected: true, ejectedUntil: 1005, consecutive5xx: 0, consecutiveGatewayErrors: 0, consecutiveFailures: 0, timesEjected: 1, ejectionMultiplier: 0, inFlight: 1, requests: 1, failures: 2 },
      { key: 'b:8080', locality: 'r/z', weight: 3, ejected: false, ejectedUntil: 0, consecutive5xx: 0, consecutiveGatewayErrors: 0, consecutiveFailures: 0, timesEjected: 0, ejectionMultiplier: 0, inFlight: 0, requests: 0, failures: 0 },
    ]);
    expect(b.snapshot(1005)[0]).toMatchObject({ ejected: false, ejectedUntil: 0 });
  });
});

describe('buildWaypointState: balancer and breaker carry-over', () => {
  const config = (cluster: Partial<Cluster> = {}): WaypointConfig => ({
    namespace: 'demo',
    name: 'waypoint',
    identity: 'spiffe://cluster.local/ns/demo/sa/waypoint',
    services: [],
    clusters: [{ name: 'c', service: 'demo/b', port: 80, lb: 'ROUND_ROBIN', endpoints: [ep('a'), ep('b')], ...cluster }],
  });

  it.each<[string, Partial<Cluster>, Partial<Cluster>, { balancer: boolean; breaker: boolean }]>([
    ['nothing changed', { connectionPool: { maxConnections: 1 } }, { connectionPool: { maxConnections: 1 } }, { balancer: true, breaker: true }],
    ['pool settings changed', { connectionPool: { maxConnections: 1 } }, { connectionPool: { maxConnections: 2 } }, { balancer: true, breaker: false }],
    ['pool added', {}, { connectionPool: { maxConnections: 2 } }, { balancer: true, breaker: false }],
    ['endpoints changed', { connectionPool: { maxConnections: 1 } }, { connectionPool: { maxConnections: 1 }, endpoints: [ep('a')] }, { balancer: false, breaker: true }],
    ['hash policy changed', {}, { hash: { kind: 'source-ip' } }, { balancer: false, breaker: true }],
    ['outlier detection changed', {}, { outlierDetection: { consecutive5xxErrors: 1, intervalMs: 1, baseEjectionTimeMs: 1, maxEjectionPercent: 10 } }, { balancer: false, breaker: true }],
    ['locality settings changed', {}, { localityLb: { local: 'r/z/s' } }, { balancer: false, breaker: true }],
  ])('%s', (_n, before, after, kept) => {
    const s1 = buildWaypointState(config(before), 1, undefined);
    const s2 = buildWaypointState(config(after), 2, s1);
    const r1 = s1.clusters.get('c')!;
    const r2 = s2.clusters.get('c')!;
    expect(r2.balancer === r1.balancer).toBe(kept.balancer);
    expect(r2.breaker === r1.breaker).toBe(kept.breaker);
    expect(r2.breaker.settings).toEqual(after.connectionPool ?? {});
  });

  it('a request admitted by a replaced breaker releases into the old one', () => {
    const s1 = buildWaypointState(config({ connectionPool: { maxConnections: 1 } }), 1, undefined);
    const old = s1.clusters.get('c')!.breaker;
    const lease = old.admit('http1');
    const s2 = buildWaypointState(config({ connectionPool: { maxConnections: 5 } }), 2, s1);
    expect(s2.clusters.get('c')!.breaker.stats().active).toBe(0);
    if (lease.kind === 'go') lease.release();
    expect(old.stats().active).toBe(0);
  });

  it('poolTargets pairs every endpoint with its cluster’s pool settings', () => {
    const s = buildWaypointState(config({ connectionPool: { maxRequestsPerConnection: 2 } }), 1, undefined);
    expect(poolTargets(s).map((t) => [t.endpoint.address, t.settings])).toEqual([
      ['a', { maxRequestsPerConnection: 2 }],
      ['b', { maxRequestsPerConnection: 2 }],
    ]);
  });
});

function names2(b: ClusterBalancer, n: number, exclude: ReadonlySet<EndpointState>): string[] {
  return Array.from({ length: n }, () => b.pick({ now: 0, exclude })?.endpoint.address ?? '-');
}
