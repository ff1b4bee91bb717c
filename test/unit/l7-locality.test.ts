import { describe, expect, it } from 'vitest';
import { ClusterBalancer } from '../../src/l7/balancer.js';
import type { Endpoint, LocalityLb } from '../../src/l7/config.js';
import { localityPriority, nearestLevel, parseLocality } from '../../src/l7/resilience/locality.js';

const LOCAL: LocalityLb = { local: 'us-east/us-east-1a/rack1' };

describe('localityPriority', () => {
  it.each<[string, LocalityLb, string | undefined, number]>([
    ['same region, zone and subzone', LOCAL, 'us-east/us-east-1a/rack1', 0],
    ['same region and zone, other subzone', LOCAL, 'us-east/us-east-1a/rack2', 1],
    ['same region and zone, no subzone', LOCAL, 'us-east/us-east-1a', 1],
    ['same region, other zone', LOCAL, 'us-east/us-east-1b/rack1', 2],
    ['other region', LOCAL, 'eu-west/eu-west-1a/rack1', 3],
    ['unknown endpoint locality', LOCAL, undefined, 3],
    ['empty endpoint locality', LOCAL, '', 3],
    ['failover target region', { ...LOCAL, failover: [{ from: 'us-east', to: 'eu-west' }] }, 'eu-west/x/y', 3],
    ['second failover target', { ...LOCAL, failover: [{ from: 'us-east', to: 'eu-west' }, { from: 'us-east', to: 'ap-south' }] }, 'ap-south/x', 4],
    ['not a failover target: after them', { ...LOCAL, failover: [{ from: 'us-east', to: 'eu-west' }] }, 'ap-south/x', 4],
    ['failover of another region is ignored', { ...LOCAL, failover: [{ from: 'eu-west', to: 'ap-south' }] }, 'ap-south/x', 3],
    ['waypoint locality unknown: no preference', { local: '' }, 'eu-west/x/y', 0],
    ['waypoint zone unknown, endpoint zone unknown: same zone', { local: 'us-east' }, 'us-east', 0],
    ['waypoint zone unknown, endpoint has a zone', { local: 'us-east' }, 'us-east/us-east-1a', 2],
  ])('%s → %d', (_n, lb, locality, expected) => {
    expect(localityPriority(lb, locality)).toBe(expected);
  });

  it('parseLocality and nearestLevel', () => {
    expect(parseLocality('r/z')).toEqual({ region: 'r', zone: 'z', subzone: '' });
    expect(parseLocality(undefined)).toEqual({ region: '', zone: '', subzone: '' });
    expect(nearestLevel([3, 1, 2, 1], (n) => n)).toEqual([1, 1]);
    expect(nearestLevel([], (n: number) => n)).toEqual([]);
  });
});

describe('ClusterBalancer with localityLb', () => {
  const ep = (address: string, locality?: string): Endpoint => ({ address, port: 80, identity: 'spiffe://x/ns/a/sa/b', hbone: true, ...(locality ? { locality } : {}) });
  const endpoints = [ep('far', 'eu-west/eu-west-1a'), ep('zone', 'us-east/us-east-1a/rack9'), ep('region', 'us-east/us-east-1b'), ep('zone2', 'us-east/us-east-1a/rack8'), ep('unknown')];
  const picks = (b: ClusterBalancer, now = 0, n = 8): string[] => [...new Set(Array.from({ length: n }, () => b.pick({ now })?.endpoint.address ?? '-'))].sort();
  const od = { consecutive5xxErrors: 1, intervalMs: 1000, baseEjectionTimeMs: 10_000, maxEjectionPercent: 100 };

  it('uses the nearest level, falls to the next only when a level has no eligible endpoint', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', endpoints, Math.random, undefined, { localityLb: LOCAL, outlierDetection: od });
    expect(picks(b)).toEqual(['zone', 'zone2']);
    const byName = (n: string) => b.endpoints.find((e) => e.endpoint.address === n)!;
    b.recordResult(byName('zone'), { status: 500 }, 0);
    expect(picks(b)).toEqual(['zone2']); // one left in the level: stay
    b.recordResult(byName('zone2'), { status: 500 }, 0);
    expect(picks(b)).toEqual(['region']);
    b.recordResult(byName('region'), { status: 500 }, 0);
    expect(picks(b)).toEqual(['far', 'unknown']);
    expect(b.snapshot(0).map((s) => [s.key, s.priority])).toEqual([
      ['far:80', 3],
      ['zone:80', 1],
      ['region:80', 2],
      ['zone2:80', 1],
      ['unknown:80', 3],
    ]);
  });

  it('a failover region is preferred over other regions', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('eu', 'eu-west/a'), ep('ap', 'ap-south/a')], Math.random, undefined, { localityLb: { ...LOCAL, failover: [{ from: 'us-east', to: 'ap-south' }] } });
    expect(picks(b)).toEqual(['ap']);
  });

  it('an excluded endpoint (retry) counts as gone for its level', () => {
    const b = new ClusterBalancer('ROUND_ROBIN', [ep('near', 'us-east/us-east-1a/rack1'), ep('far', 'eu-west/a')], Math.random, undefined, { localityLb: LOCAL });
    const near = b.endpoints[0]!;
    expect(b.pick({ now: 0, exclude: new Set([near]) })?.endpoint.address).toBe('far');
  });

  it('a locality change of an endpoint builds a new balancer', () => {
    const cluster = (loc: string) => ({ name: 'c', service: 'a/b', port: 80, lb: 'ROUND_ROBIN' as const, endpoints: [ep('x', loc)], localityLb: LOCAL });
    const b = ClusterBalancer.carryOver(undefined, cluster('us-east/us-east-1a'));
    expect(ClusterBalancer.carryOver(b, cluster('us-east/us-east-1a'))).toBe(b);
    expect(ClusterBalancer.carryOver(b, cluster('eu-west/a'))).not.toBe(b);
  });
});
