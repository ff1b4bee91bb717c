/**
 * DestinationRule → subsets and traffic policies (load balancing, consistent hash, connection
 * pool, outlier detection, locality, port-level settings) for a host; which rule is in effect per
 * service.
 */
import { describe, expect, it } from 'vitest';
import { effectiveDestinationRules, translateDestinationRule, type RuleCandidate } from '../../src/controller/translate/destination-rule.js';
import { effectivePolicy, hostMatches, resolveHost, type TrafficPolicyLevel } from '../../src/controller/translate/route-model.js';
import type { ConnectionPool, HashPolicy, OutlierDetection } from '../../src/l7/config.js';
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
      policy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
      subsets: new Map([
        ['v1', { labels: { version: 'v1' } }],
        ['v2', { labels: { version: 'v2' }, policy: { loadBalancer: { simple: 'RANDOM' } } }],
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
    expect(t.rule.policy?.loadBalancer?.simple).toBe(lb);
    expect(t.warnings).toEqual(warnings);
  });

  it('names every ignored trafficPolicy field, at rule, subset and port level', () => {
    const t = translate({
      host: 'backend',
      trafficPolicy: {
        connectionPool: { tcp: { maxConnections: 1, tcpKeepalive: { time: '1s' }, maxConnectionDuration: '1h' }, http: { h2UpgradePolicy: 'UPGRADE', useClientProtocol: true, maxConcurrentStreams: 5 } },
        loadBalancer: { consistentHash: { httpHeaderName: 'x', minimumRingSize: 1024 }, warmupDurationSecs: '10s' },
        tls: { mode: 'ISTIO_MUTUAL' },
        proxyProtocol: {},
        portLevelSettings: [{ port: { number: 80 }, tls: { mode: 'DISABLE' } }],
      },
      subsets: [{ name: 'v1', labels: { version: 'v1' }, trafficPolicy: { outlierDetection: { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3, bogus: 1 } } }],
      exportTo: ['.'],
    });
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual([
      'spec.trafficPolicy.connectionPool.tcp.tcpKeepalive: upstream keepalive probes are not configurable in amesh waypoints; ignored',
      'spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration: not supported by amesh waypoints; ignored',
      'spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: the waypoint speaks to endpoints in the protocol of the port; ignored',
      'spec.trafficPolicy.connectionPool.http.useClientProtocol: the waypoint speaks to endpoints in the protocol of the port; ignored',
      'spec.trafficPolicy.connectionPool.http.maxConcurrentStreams: not supported by amesh waypoints; ignored',
      'spec.trafficPolicy.loadBalancer.warmupDurationSecs: slow start is not supported by amesh waypoints; ignored',
      'spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: the ring size is chosen by the waypoint; ignored',
      'spec.trafficPolicy.tls: mesh traffic to endpoints is always mutual TLS over HBONE; ignored',
      'spec.trafficPolicy.proxyProtocol: not supported by amesh waypoints; ignored',
      'spec.trafficPolicy.portLevelSettings[0].tls: mesh traffic to endpoints is always mutual TLS over HBONE; ignored',
      'spec.subsets[0].trafficPolicy.outlierDetection.bogus: not supported by amesh waypoints; ignored',
      'spec.subsets[0].trafficPolicy.outlierDetection.splitExternalLocalOriginErrors: local failures always count as errors in amesh waypoints; ignored',
      'spec.subsets[0].trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: local failures always count as errors in amesh waypoints; ignored',
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

/** The one-level policy of `trafficPolicy` (no issues, no warnings expected). */
function level(trafficPolicy: unknown): TrafficPolicyLevel | undefined {
  const t = translate({ host: 'backend', trafficPolicy });
  expect(t.issues).toEqual([]);
  return t.rule.policy;
}

describe('loadBalancer.consistentHash → hash', () => {
  it.each<[string, unknown, HashPolicy]>([
    ['a header (lower-cased)', { httpHeaderName: 'X-User' }, { kind: 'header', name: 'x-user' }],
    ['a cookie with path and ttl', { httpCookie: { name: 'session', path: '/', ttl: '1h' } }, { kind: 'cookie', name: 'session', path: '/', ttlMs: 3_600_000 }],
    ['a cookie with ttl 0s: a session cookie is generated', { httpCookie: { name: 's', ttl: '0s' } }, { kind: 'cookie', name: 's', ttlMs: 0 }],
    ['a cookie without ttl: never generated', { httpCookie: { name: 's' } }, { kind: 'cookie', name: 's' }],
    ['the source IP', { useSourceIp: true }, { kind: 'source-ip' }],
    ['a query parameter', { httpQueryParameterName: 'user' }, { kind: 'query', name: 'user' }],
    ['ringHash settings are accepted', { httpHeaderName: 'x', ringHash: {} }, { kind: 'header', name: 'x' }],
  ])('%s', (_what, consistentHash, hash) => {
    expect(level({ loadBalancer: { consistentHash } })?.loadBalancer).toEqual({ hash });
  });

  it('maglev: a ring hash is used, with a warning', () => {
    const t = translate({ host: 'backend', trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true, maglev: { tableSize: 65537 } } } } });
    expect(t.rule.policy?.loadBalancer?.hash).toEqual({ kind: 'source-ip' });
    expect(t.warnings).toEqual(['spec.trafficPolicy.loadBalancer.consistentHash.maglev: a ring hash is used instead (same stickiness, different table)']);
  });

  it.each<[string, unknown, string]>([
    ['no key', {}, 'spec.trafficPolicy.loadBalancer.consistentHash: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required'],
    ['useSourceIp false only', { useSourceIp: false }, 'spec.trafficPolicy.loadBalancer.consistentHash: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required'],
    ['two keys', { httpHeaderName: 'x', useSourceIp: true }, 'spec.trafficPolicy.loadBalancer.consistentHash: set only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (got httpHeaderName, useSourceIp)'],
    ['a cookie without a name', { httpCookie: { ttl: '1s' } }, 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: a non-empty name is required'],
    ['a cookie with a bad ttl', { httpCookie: { name: 'a', ttl: '1 day' } }, 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl: "1 day" is not a duration (e.g. "10s", "500ms")'],
  ])('rejects %s', (_what, consistentHash, message) => {
    expect(translate({ host: 'backend', trafficPolicy: { loadBalancer: { consistentHash } } }).issues.map((i) => i.message)).toEqual([message]);
  });

  it('rejects simple and consistentHash together (Istio’s oneof)', () => {
    expect(translate({ host: 'backend', trafficPolicy: { loadBalancer: { simple: 'RANDOM', consistentHash: { useSourceIp: true } } } }).issues.map((i) => i.message)).toEqual([
      'spec.trafficPolicy.loadBalancer: set only one of simple, consistentHash',
    ]);
  });
});

describe('connectionPool', () => {
  it.each<[string, unknown, ConnectionPool]>([
    [
      'every supported field',
      { tcp: { maxConnections: 1, connectTimeout: '250ms' }, http: { http1MaxPendingRequests: 2, http2MaxRequests: 3, maxRequestsPerConnection: 4, maxRetries: 5, idleTimeout: '30s' } },
      { maxConnections: 1, connectTimeoutMs: 250, maxPendingRequests: 2, maxRequests: 3, maxRequestsPerConnection: 4, maxRetries: 5, idleTimeoutMs: 30_000 },
    ],
    ['zero is unset (no limit), as in Istio', { tcp: { maxConnections: 0 }, http: { http1MaxPendingRequests: 0, maxRetries: 0 } }, {}],
    ['numbers as strings (int64 JSON)', { tcp: { maxConnections: '7' } }, { maxConnections: 7 }],
    ['h2UpgradePolicy DEFAULT is silent', { http: { h2UpgradePolicy: 'DEFAULT', maxRetries: 1 } }, { maxRetries: 1 }],
  ])('%s', (_what, connectionPool, want) => {
    const t = translate({ host: 'backend', trafficPolicy: { connectionPool } });
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual([]);
    expect(t.rule.policy?.connectionPool).toEqual(want);
  });

  it.each<[string, unknown, string]>([
    ['a negative limit', { tcp: { maxConnections: -1 } }, 'InvalidSpec spec.trafficPolicy.connectionPool.tcp.maxConnections: -1 is not a non-negative integer'],
    ['a fractional limit', { http: { http2MaxRequests: 1.5 } }, 'InvalidSpec spec.trafficPolicy.connectionPool.http.http2MaxRequests: 1.5 is not a non-negative integer'],
    ['a bad connectTimeout', { tcp: { connectTimeout: '1' } }, 'InvalidDuration spec.trafficPolicy.connectionPool.tcp.connectTimeout: "1" is not a duration (e.g. "10s", "500ms")'],
    ['a zero idleTimeout (Istio: at least 1ms)', { http: { idleTimeout: '0s' } }, 'InvalidDuration spec.trafficPolicy.connectionPool.http.idleTimeout: "0s" is shorter than 1ms'],
  ])('rejects %s', (_what, connectionPool, message) => {
    expect(translate({ host: 'backend', trafficPolicy: { connectionPool } }).issues.map((i) => `${i.reason} ${i.message}`)).toEqual([message]);
  });
});

describe('outlierDetection (Istio / Envoy defaults)', () => {
  const DEFAULTS = { intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 };
  it.each<[string, unknown, OutlierDetection]>([
    ['present and empty: 5 consecutive 5xx, 10s, 30s, 10%', {}, { consecutive5xxErrors: 5, ...DEFAULTS }],
    [
      'every field',
      { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: '1s', baseEjectionTime: '15s', maxEjectionPercent: 50, minHealthPercent: 20 },
      { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, intervalMs: 1000, baseEjectionTimeMs: 15_000, maxEjectionPercent: 50, minHealthPercent: 20 },
    ],
    ['consecutive5xxErrors 0 turns 5xx ejection off', { consecutive5xxErrors: 0, consecutiveGatewayErrors: 1 }, { consecutiveGatewayErrors: 1, ...DEFAULTS }],
    ['deprecated consecutiveErrors = gateway errors, 5xx off (istio/api#617)', { consecutiveErrors: 4 }, { consecutiveGatewayErrors: 4, ...DEFAULTS }],
    ['the new fields win over consecutiveErrors', { consecutiveErrors: 4, consecutive5xxErrors: 2, consecutiveGatewayErrors: 6 }, { consecutive5xxErrors: 2, consecutiveGatewayErrors: 6, ...DEFAULTS }],
    ['maxEjectionPercent 0 and minHealthPercent 0 are the defaults', { maxEjectionPercent: 0, minHealthPercent: 0 }, { consecutive5xxErrors: 5, ...DEFAULTS }],
  ])('%s', (_what, outlierDetection, want) => {
    expect(level({ outlierDetection })?.outlierDetection).toEqual(want);
  });

  it.each<[string, unknown, string]>([
    ['a negative count', { consecutive5xxErrors: -2 }, 'InvalidSpec spec.trafficPolicy.outlierDetection.consecutive5xxErrors: -2 is not a non-negative integer'],
    ['maxEjectionPercent over 100', { maxEjectionPercent: 101 }, 'InvalidSpec spec.trafficPolicy.outlierDetection.maxEjectionPercent: 101 is more than 100'],
    ['a bad interval', { interval: 'often' }, 'InvalidDuration spec.trafficPolicy.outlierDetection.interval: "often" is not a duration (e.g. "10s", "500ms")'],
    ['a zero baseEjectionTime', { baseEjectionTime: '0s' }, 'InvalidDuration spec.trafficPolicy.outlierDetection.baseEjectionTime: "0s" is shorter than 1ms'],
  ])('rejects %s', (_what, outlierDetection, message) => {
    expect(translate({ host: 'backend', trafficPolicy: { outlierDetection } }).issues.map((i) => `${i.reason} ${i.message}`)).toEqual([message]);
  });
});

describe('loadBalancer.localityLbSetting', () => {
  it('enabled with failover; distribute and failoverPriority are warned about', () => {
    const t = translate({
      host: 'backend',
      trafficPolicy: {
        outlierDetection: {},
        loadBalancer: { localityLbSetting: { enabled: true, failover: [{ from: 'us-east', to: 'us-west' }], distribute: [{ from: 'a/*', to: { 'b/*': 100 } }], failoverPriority: ['topology.kubernetes.io/zone'] } },
      },
    });
    expect(t.issues).toEqual([]);
    expect(t.rule.policy?.loadBalancer).toEqual({ locality: { enabled: true, failover: [{ from: 'us-east', to: 'us-west' }] } });
    expect(t.warnings).toEqual([
      'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute: weighted locality distribution is not supported by amesh waypoints; ignored',
      'spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority: label-based failover priority is not supported by amesh waypoints; ignored',
    ]);
  });

  it('enabled: false turns the mesh default off', () => {
    expect(level({ loadBalancer: { localityLbSetting: { enabled: false } } })?.loadBalancer).toEqual({ locality: { enabled: false } });
  });

  it('without outlierDetection anywhere in the rule: a warning (Istio applies it only with outlier detection)', () => {
    const t = translate({ host: 'backend', trafficPolicy: { loadBalancer: { localityLbSetting: { enabled: true } } } });
    expect(t.warnings).toEqual(['loadBalancer.localityLbSetting: ignored without outlierDetection (Istio applies locality failover only to clusters with outlier detection)']);
  });

  it.each<[string, unknown, string]>([
    ['failover without to', [{ from: 'us-east' }], 'spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: from and to (regions) are required'],
    ['failover to the same region', [{ from: 'eu', to: 'eu' }], 'spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: from and to are the same region "eu"'],
  ])('rejects %s', (_what, failover, message) => {
    expect(translate({ host: 'backend', trafficPolicy: { outlierDetection: {}, loadBalancer: { localityLbSetting: { failover } } } }).issues.map((i) => i.message)).toEqual([message]);
  });
});

describe('portLevelSettings and the merge per (port, subset) (Istio MergeSubsetTrafficPolicy)', () => {
  const pool = (maxConnections: number): ConnectionPool => ({ maxConnections });
  const t = translate({
    host: 'backend',
    trafficPolicy: {
      loadBalancer: { simple: 'ROUND_ROBIN' },
      connectionPool: { tcp: { maxConnections: 10 } },
      portLevelSettings: [
        { port: { number: 8080 }, connectionPool: { tcp: { maxConnections: 80 } } },
        { port: { number: 8080 }, connectionPool: { tcp: { maxConnections: 99 } } },
      ],
    },
    subsets: [
      { name: 'v1', labels: { version: 'v1' }, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1 } } },
      { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'RANDOM' }, portLevelSettings: [{ port: { number: 9090 }, connectionPool: { tcp: { maxConnections: 2 } } }] } },
    ],
  });
  const OD = { consecutive5xxErrors: 1, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 };

  it('warns about a second entry for a port (the first is used)', () => {
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual(['spec.trafficPolicy.portLevelSettings[1]: port 8080 already has settings (the first entry is used); ignored']);
  });

  it.each<[string, number, string | undefined, TrafficPolicyLevel]>([
    ['the rule’s policy', 80, undefined, { loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: pool(10) }],
    ['a port-level entry replaces it; omitted fields are defaults, not inherited', 8080, undefined, { connectionPool: pool(80) }],
    ['a subset’s field overrides, the rest is inherited', 80, 'v1', { loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: pool(10), outlierDetection: OD }],
    ['a subset on a port with rule port-level settings', 8080, 'v1', { connectionPool: pool(80), outlierDetection: OD }],
    ['a subset’s own load balancer', 80, 'v2', { loadBalancer: { simple: 'RANDOM' }, connectionPool: pool(10) }],
    ['a subset’s port-level entry replaces every field', 9090, 'v2', { connectionPool: pool(2) }],
    ['an unknown subset: the rule’s', 80, 'v9', { loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: pool(10) }],
  ])('%s (port %s, subset %s)', (_what, port, subset, want) => {
    expect(effectivePolicy(t.rule, port, subset)).toEqual(want);
  });

  it('no rule: nothing', () => expect(effectivePolicy(undefined, 80)).toEqual({}));

  it.each<[string, unknown, string]>([
    ['an entry without a port', [{ connectionPool: {} }], 'spec.trafficPolicy.portLevelSettings[0].port.number: undefined is not a port number'],
    ['a port out of range', [{ port: { number: 70000 } }], 'spec.trafficPolicy.portLevelSettings[0].port.number: 70000 is not a port number'],
    ['not a list', { port: { number: 80 } }, 'spec.trafficPolicy.portLevelSettings: a list is required'],
  ])('rejects %s', (_what, portLevelSettings, message) => {
    expect(translate({ host: 'backend', trafficPolicy: { portLevelSettings } }).issues.map((i) => i.message)).toEqual([message]);
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
