/**
 * DestinationRule → subsets and load balancing for a host; which rule is in effect per service.
 */
import { describe, expect, it } from 'vitest';
import { effectiveDestinationRules, translateDestinationRule, type RuleCandidate } from '../../src/controller/translate/destination-rule.js';
import { hostMatches, resolveHost } from '../../src/controller/translate/route-model.js';
import { BACKEND, destinationRule } from '../helpers/route-fixtures.js';

const translate = (spec: unknown, extra = {}) => translateDestinationRule(destinationRule(spec, 'backend', extra), 'cluster.local');

describe('hosts (Istio rules, relative to the rule’s namespace)', () => {
  it.each([
    ['backend', BACKEND],
    ['backend.demo', BACKEND],
    ['backend.demo.svc', BACKEND],
    [BACKEND, BACKEND],
    ['Backend.Demo.svc.cluster.local.', BACKEND],
    ['backend.other', 'backend.other.svc.cluster.local'],
    ['api.example.com', 'api.example.com'],
    ['*.demo.svc.cluster.local', '*.demo.svc.cluster.local'],
  ])('%s → %s', (host, want) => {
    expect(resolveHost(host, 'demo', 'cluster.local')).toBe(want);
    expect(translate({ host }).host).toBe(want);
  });

  it.each([
    ['*', BACKEND, true],
    ['*.demo.svc.cluster.local', BACKEND, true],
    ['*.other.svc.cluster.local', BACKEND, false],
    [BACKEND, BACKEND, true],
    ['frontend.demo.svc.cluster.local', BACKEND, false],
  ])('%s covers %s: %s', (pattern, host, want) => expect(hostMatches(pattern, host)).toBe(want));
});

describe('translateDestinationRule', () => {
  it('subsets by labels with per-subset overrides; the rule’s load balancer', () => {
    const t = translate({
      host: 'backend',
      trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } },
      ],
    });
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual([]);
    expect(t.rule).toEqual({
      rule: 'demo/backend',
      lb: 'ROUND_ROBIN',
      subsets: new Map([
        ['v1', { labels: { version: 'v1' } }],
        ['v2', { labels: { version: 'v2' }, lb: 'RANDOM' }],
      ]),
    });
  });

  it.each([
    ['ROUND_ROBIN', 'ROUND_ROBIN', []],
    ['LEAST_REQUEST', 'LEAST_REQUEST', []],
    ['LEAST_CONN', 'LEAST_REQUEST', []],
    ['RANDOM', 'RANDOM', []],
    ['UNSPECIFIED', undefined, []],
    ['PASSTHROUGH', undefined, ['spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM); LEAST_REQUEST is used']],
  ])('simple %s → %s', (simple, lb, warnings) => {
    const t = translate({ host: 'backend', trafficPolicy: { loadBalancer: { simple } } });
    expect(t.rule.lb).toBe(lb);
    expect(t.warnings).toEqual(warnings);
  });

  it('names every ignored trafficPolicy field, at rule and subset level', () => {
    const t = translate({
      host: 'backend',
      trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 } }, loadBalancer: { consistentHash: { httpHeaderName: 'x' } }, tls: { mode: 'ISTIO_MUTUAL' } },
      subsets: [{ name: 'v1', labels: { version: 'v1' }, trafficPolicy: { outlierDetection: {} } }],
      exportTo: ['.'],
    });
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual([
      'spec.trafficPolicy.connectionPool: not supported by amesh waypoints; ignored',
      'spec.trafficPolicy.loadBalancer.consistentHash: not supported by amesh waypoints; ignored',
      'spec.trafficPolicy.tls: not supported by amesh waypoints; ignored',
      'spec.subsets[0].trafficPolicy.outlierDetection: not supported by amesh waypoints; ignored',
      'spec.exportTo: visibility is not enforced by amesh waypoints; ignored',
    ]);
  });

  it.each([
    ['no host', { subsets: [] }, 'spec.host: required'],
    ['a subset without a name', { host: 'backend', subsets: [{ labels: { a: 'b' } }] }, 'spec.subsets[0].name: required'],
    ['duplicate subsets', { host: 'backend', subsets: [{ name: 'v1' }, { name: 'v1' }] }, 'spec.subsets[1].name: duplicate subset "v1"'],
  ])('rejects %s', (_what, spec, message) => {
    expect(translate(spec).issues).toEqual([{ reason: 'InvalidSpec', message }]);
  });
});

describe('effectiveDestinationRules', () => {
  const candidate = (key: string, host: string, creationTimestamp: string): RuleCandidate => ({ key, namespace: key.split('/')[0] ?? '', creationTimestamp, host, rule: { rule: key, subsets: new Map() } });
  const services = [{ hostname: BACKEND, namespace: 'demo' }];

  it.each([
    ['exact host beats wildcard', [candidate('demo/wild', '*.demo.svc.cluster.local', '2020'), candidate('demo/exact', BACKEND, '2026')], 'demo/exact'],
    ['the service’s namespace beats another', [candidate('other/a', BACKEND, '2020'), candidate('demo/b', BACKEND, '2026')], 'demo/b'],
    ['then the oldest', [candidate('demo/new', BACKEND, '2026'), candidate('demo/old', BACKEND, '2020')], 'demo/old'],
    ['then by name', [candidate('demo/b', BACKEND, '2020'), candidate('demo/a', BACKEND, '2020')], 'demo/a'],
  ])('%s', (_what, candidates, winner) => {
    const { byHost, shadowed } = effectiveDestinationRules(candidates, services);
    expect(byHost.get(BACKEND)?.rule).toBe(winner);
    const loser = candidates.find((c) => c.key !== winner)?.key ?? '';
    expect(shadowed.get(loser)).toEqual([`spec.host: ${BACKEND} is configured by DestinationRule ${winner}, which takes precedence; this rule is not used for it`]);
  });
});
