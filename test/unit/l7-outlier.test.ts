import { describe, expect, it } from 'vitest';
import { ClusterBalancer, type EndpointState } from '../../src/l7/balancer.js';
import type { Endpoint, OutlierDetection } from '../../src/l7/config.js';
import { EnvoyOutlierDetector, initialOutlierState, MAX_EJECTION_TIME_MS } from '../../src/l7/resilience/outlier.js';

const ep = (address: string): Endpoint => ({ address, port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/b', hbone: true });
const eps = (n: number): Endpoint[] => Array.from({ length: n }, (_, i) => ep(`10.0.0.${i + 1}`));

const OD: OutlierDetection = { consecutive5xxErrors: 3, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100 };

function balancer(n: number, od: Partial<OutlierDetection> = {}): ClusterBalancer {
  return new ClusterBalancer('ROUND_ROBIN', eps(n), Math.random, undefined, { outlierDetection: { ...OD, ...od } });
}

const fail = (b: ClusterBalancer, e: EndpointState, times: number, now: number, status = 500): void => {
  for (let i = 0; i < times; i++) b.recordResult(e, { status }, now);
};
const picked = (b: ClusterBalancer, n: number, now: number): string[] => [...new Set(Array.from({ length: n }, () => b.pick({ now })?.endpoint.address ?? '-'))].sort();

describe('consecutive errors (Envoy semantics)', () => {
  it.each<[string, Partial<OutlierDetection>, Array<{ status?: number; failure?: 'connect' | 'reset' | 'timeout' }>, boolean]>([
    ['3 × 500 reach consecutive5xxErrors 3', {}, [{ status: 500 }, { status: 500 }, { status: 500 }], true],
    ['2 × 500 do not', {}, [{ status: 500 }, { status: 500 }], false],
    ['a success in between resets the streak', {}, [{ status: 500 }, { status: 500 }, { status: 200 }, { status: 500 }], false],
    ['a 404 is a success for outlier detection', {}, [{ status: 500 }, { status: 500 }, { status: 404 }, { status: 500 }], false],
    ['local failures count as 5xx', {}, [{ failure: 'connect' }, { failure: 'reset' }, { failure: 'timeout' }], true],
    ['results without status or failure change nothing', {}, [{ status: 500 }, { status: 500 }, {}, { status: 500 }], true],
    ['gateway errors: 502/503/504 in a row', { consecutive5xxErrors: undefined, consecutiveGatewayErrors: 3 }, [{ status: 502 }, { status: 503 }, { status: 504 }], true],
    ['gateway errors: a 500 breaks the gateway streak', { consecutive5xxErrors: undefined, consecutiveGatewayErrors: 3 }, [{ status: 502 }, { status: 500 }, { status: 503 }, { status: 504 }], false],
    ['gateway errors: local failures count', { consecutive5xxErrors: undefined, consecutiveGatewayErrors: 2 }, [{ failure: 'connect' }, { status: 503 }], true],
    ['gateway errors only: 500s never eject', { consecutive5xxErrors: undefined, consecutiveGatewayErrors: 1 }, [{ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }], false],
  ])('%s → ejected: %s', (_n, od, results, ejected) => {
    const b = balancer(4, od);
    const e = b.endpoints[0]!;
    for (const r of results) b.recordResult(e, r, 0);
    expect(e.ejected).toBe(ejected);
    expect(b.snapshot(0)[0]?.ejected).toBe(ejected);
  });

  it('ejects at the threshold, at once (not at the next sweep); the ejected endpoint is skipped', () => {
    const b = balancer(3);
    const [a] = b.endpoints;
    fail(b, a!, 3, 1234);
    expect(a!.ejected).toBe(true);
    expect(picked(b, 10, 1235)).toEqual(['10.0.0.2', '10.0.0.3']);
  });
});

describe('maxEjectionPercent', () => {
  it('caps ejections at the share of the cluster', () => {
    const b = balancer(4, { maxEjectionPercent: 50 });
    for (const e of b.endpoints) fail(b, e, 3, 0);
    expect(b.endpoints.map((e) => e.ejected)).toEqual([true, true, false, false]);
  });

  it('at least one endpoint may be ejected even below one endpoint’s share (Envoy)', () => {
    const b = balancer(3, { maxEjectionPercent: 10 });
    for (const e of b.endpoints) fail(b, e, 3, 0);
    expect(b.endpoints.map((e) => e.ejected)).toEqual([true, false, false]);
  });

  it('0 disables ejection', () => {
    const b = balancer(3, { maxEjectionPercent: 0 });
    fail(b, b.endpoints[0]!, 10, 0);
    expect(b.endpoints[0]!.ejected).toBe(false);
  });

  it('a refused ejection restarts the streak', () => {
    const b = balancer(2, { maxEjectionPercent: 50 });
    const [a, c] = b.endpoints;
    fail(b, a!, 3, 0);
    fail(b, c!, 3, 0); // refused: 50 % already ejected
    expect(c!.ejected).toBe(false);
    expect(c!.consecutive5xx).toBe(0);
  });
});

describe('re-admission on the interval sweep', () => {
  it('re-admits at the first sweep at least baseEjectionTime after the ejection', () => {
    const b = balancer(2);
    const [a] = b.endpoints;
    b.pick({ now: 0 }); // sweeps at 10 s, 20 s, ...
    fail(b, a!, 3, 5_000); // ejected for 30 s: until 35 s → re-admitted at the 40 s sweep
    expect(b.snapshot(5_000)[0]).toMatchObject({ ejected: true, ejectedUntil: 40_000, timesEjected: 1, ejectionMultiplier: 1 });
    expect(picked(b, 10, 35_000)).toEqual(['10.0.0.2']);
    expect(picked(b, 10, 39_999)).toEqual(['10.0.0.2']);
    expect(picked(b, 10, 40_000)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(a!.ejected).toBe(false);
  });

  it('an ejection on a sweep boundary is re-admitted exactly baseEjectionTime later', () => {
    const b = balancer(2);
    b.pick({ now: 0 });
    fail(b, b.endpoints[0]!, 3, 10_000);
    expect(b.endpoints[0]!.ejectedUntil).toBe(40_000);
  });

  it('streaks restart on re-admission', () => {
    const b = balancer(2);
    const [a] = b.endpoints;
    b.pick({ now: 0 });
    fail(b, a!, 3, 0);
    fail(b, a!, 2, 1); // results of requests still in flight while ejected: ignored
    b.pick({ now: 30_000 });
    expect(a!.ejected).toBe(false);
    fail(b, a!, 2, 30_001);
    expect(a!.ejected).toBe(false);
  });

  it('evaluates any number of elapsed sweeps at once', () => {
    const b = balancer(2);
    b.pick({ now: 0 });
    fail(b, b.endpoints[0]!, 3, 0);
    expect(b.snapshot(7 * 24 * 3600_000)[0]).toMatchObject({ ejected: false, ejectionMultiplier: 0 });
  });
});

describe('ejection time multiplier', () => {
  it('grows with ejections in a row and decays one per healthy sweep', () => {
    const b = balancer(2);
    const [a] = b.endpoints;
    b.pick({ now: 0 });
    fail(b, a!, 3, 0); // multiplier 1: 30 s → re-admitted at the 30 s sweep
    b.pick({ now: 30_000 });
    expect(a!.ejected).toBe(false);
    fail(b, a!, 3, 30_001); // before any healthy sweep: multiplier 2 → 60 s
    expect(a!).toMatchObject({ ejected: true, ejectionMultiplier: 2, timesEjected: 2, ejectedUntil: 100_000 });
    expect(picked(b, 4, 99_999)).toEqual(['10.0.0.2']);
    expect(picked(b, 4, 100_000)).toEqual(['10.0.0.1', '10.0.0.2']);
    // Two healthy sweeps (110 s, 120 s) bring it back to 0; the next ejection is base-long again.
    b.pick({ now: 120_000 });
    expect(a!.ejectionMultiplier).toBe(0);
    fail(b, a!, 3, 125_000);
    expect(a!).toMatchObject({ ejectionMultiplier: 1, ejectedUntil: 160_000 });
  });

  it('is capped by max_ejection_time (300 s)', () => {
    const d = new EnvoyOutlierDetector({ ...OD, consecutive5xxErrors: 1, baseEjectionTimeMs: 100_000 });
    const h = initialOutlierState();
    const hosts = [h, initialOutlierState()];
    let now = 0;
    d.advance(hosts, now);
    for (let i = 0; i < 10; i++) {
      d.record(h, { status: 500 }, hosts, now);
      expect(h.ejected).toBe(true);
      expect(h.ejectedUntil - now).toBeLessThanOrEqual(MAX_EJECTION_TIME_MS + OD.intervalMs);
      now = h.ejectedUntil;
      d.advance(hosts, now);
      expect(h.ejected).toBe(false);
    }
    expect(h.ejectionMultiplier).toBe(4); // stops growing once base × multiplier ≥ max + base
    expect(h.timesEjected).toBe(10);
  });
});

describe('panic', () => {
  it('all endpoints ejected → all are used', () => {
    const b = balancer(2);
    for (const e of b.endpoints) fail(b, e, 3, 0);
    expect(b.endpoints.every((e) => e.ejected)).toBe(true);
    expect(picked(b, 4, 1)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('fewer healthy than minHealthPercent → all are used', () => {
    const b = balancer(4, { minHealthPercent: 60 });
    fail(b, b.endpoints[0]!, 3, 0);
    expect(picked(b, 8, 1)).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4']); // 75 % healthy ≥ 60
    fail(b, b.endpoints[1]!, 3, 1);
    expect(picked(b, 8, 2)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']); // 50 % < 60
  });
});

describe('without outlierDetection: the passive default', () => {
  it('5xx responses never eject; 5 connect failures eject for 10 s', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', eps(2));
    const [a] = b.endpoints;
    fail(b, a!, 50, 0);
    expect(a!.ejected).toBe(false);
    for (let i = 0; i < 5; i++) b.recordResult(a!, { failure: 'connect' }, 0);
    expect(a!).toMatchObject({ ejected: true, ejectedUntil: 10_000, failures: 5 });
    expect(picked(b, 4, 9_999)).toEqual(['10.0.0.2']);
    expect(picked(b, 4, 10_000)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('a response resets the connect-failure streak', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', eps(2));
    const [a] = b.endpoints;
    for (let i = 0; i < 4; i++) b.recordResult(a!, { failure: 'connect' }, 0);
    b.recordResult(a!, { status: 503 }, 0);
    b.recordResult(a!, { failure: 'connect' }, 0);
    expect(a!.ejected).toBe(false);
  });
});

describe('state across config updates', () => {
  it('an endpoint that stays keeps its ejection and in-flight count when another joins', () => {
    const cluster = (n: number) => ({ name: 'c', service: 'demo/b', port: 80, lb: 'ROUND_ROBIN' as const, endpoints: eps(n), outlierDetection: OD });
    const b1 = ClusterBalancer.carryOver(undefined, cluster(2));
    const [a] = b1.endpoints;
    b1.pick({ now: 0 });
    b1.started(a!);
    fail(b1, a!, 3, 0);
    const b2 = ClusterBalancer.carryOver(b1, cluster(3));
    expect(b2).not.toBe(b1);
    expect(b2.endpoints[0]).toBe(a);
    expect(picked(b2, 10, 1)).toEqual(['10.0.0.2', '10.0.0.3']);
    b1.finished(a!); // the request that started on the old balancer ends
    expect(b2.endpoints[0]!.inFlight).toBe(0);
    // The sweep phase carried over too: re-admitted at the 30 s sweep.
    expect(picked(b2, 10, 30_000)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('a changed outlierDetection builds a new balancer', () => {
    const base = { name: 'c', service: 'demo/b', port: 80, lb: 'ROUND_ROBIN' as const, endpoints: eps(2) };
    const b1 = ClusterBalancer.carryOver(undefined, { ...base, outlierDetection: OD });
    expect(ClusterBalancer.carryOver(b1, { ...base, outlierDetection: { ...OD } })).toBe(b1);
    expect(ClusterBalancer.carryOver(b1, { ...base, outlierDetection: { ...OD, intervalMs: 1 } })).not.toBe(b1);
    expect(ClusterBalancer.carryOver(b1, base)).not.toBe(b1);
  });
});
