/**
 * Istio DestinationRule (networking.istio.io v1, v1beta1, v1alpha3: one schema) → the subsets and
 * traffic policies a waypoint uses for a host. Pure.
 *
 * Carried: `host` (resolved with Istio's rules relative to the rule's namespace, route-model.ts),
 * `subsets[]` (name → pod labels) and `trafficPolicy` at three levels — the rule, each subset,
 * and `portLevelSettings[]` of either (merged per cluster by route-model.ts effectivePolicy):
 * - `loadBalancer.simple` ROUND_ROBIN / LEAST_REQUEST (and its old alias LEAST_CONN) / RANDOM;
 *   `consistentHash` on `httpHeaderName`, `httpCookie` {name, path, ttl}, `useSourceIp` or
 *   `httpQueryParameterName` (a ring hash, also for `maglev`); `localityLbSetting` {enabled,
 *   failover}.
 * - `connectionPool.tcp` {maxConnections, connectTimeout}, `connectionPool.http`
 *   {http1MaxPendingRequests, http2MaxRequests, maxRequestsPerConnection, maxRetries,
 *   idleTimeout}. Zero means "not set", as in Istio (proto3 scalars): no limit.
 * - `outlierDetection` {consecutive5xxErrors, consecutiveGatewayErrors, interval,
 *   baseEjectionTime, maxEjectionPercent, minHealthPercent} with Istio's (Envoy's) defaults:
 *   5 consecutive 5xx, 10 s, 30 s, 10 %, 0 %. The deprecated `consecutiveErrors` counts gateway
 *   errors and turns the 5xx default off (istio/api#617), unless the new fields are set.
 * Everything else (tls — mesh traffic is always mutual TLS —, tcpKeepalive, h2UpgradePolicy,
 * warmup, `distribute`, ...) is named in a warning and ignored; malformed values (negative
 * counts, bad durations, percentages over 100, two hash keys) are issues that reject the rule.
 *
 * Without a DestinationRule, or with `simple` unset, the policy is LEAST_REQUEST: Istio's default
 * since 1.14 (better than round robin when endpoints differ in speed).
 *
 * When several rules name one service, the one in effect is, in order: an exact host over a
 * wildcard, a rule in the service's own namespace, the oldest (creationTimestamp), then by
 * namespace/name. Istio merges same-namespace rules; we do not (one rule per host), and say so
 * on the rule left out.
 */
import type { ConnectionPool, HashPolicy, LoadBalancerPolicy, OutlierDetection } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import { hostMatches, issue, parseDurationMs, resolveHost, type HostRule, type LoadBalancerSettings, type PolicySet, type RouteIssue, type SubsetInfo, type TrafficPolicyLevel } from './route-model.js';
import { contained } from './contain.js';

export const DEFAULT_LOAD_BALANCER: LoadBalancerPolicy = 'LEAST_REQUEST';

/** Envoy's outlier detection defaults, which Istio keeps for fields left unset. */
export const OUTLIER_DEFAULTS = { consecutive5xxErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 } as const;

type Json = Record<string, unknown>;

export interface TrafficPolicySpec {
  loadBalancer?: Json;
  connectionPool?: Json;
  outlierDetection?: Json;
  portLevelSettings?: Json[];
  [field: string]: unknown;
}

export interface DestinationRuleSpec {
  host?: string;
  trafficPolicy?: TrafficPolicySpec;
  subsets?: Array<{ name?: string; labels?: Record<string, string>; trafficPolicy?: TrafficPolicySpec } & Record<string, unknown>>;
  exportTo?: string[];
  workloadSelector?: unknown;
}

export interface DestinationRuleObject extends KubeObjectLike {
  spec?: DestinationRuleSpec;
}

export interface DestinationRuleTranslation {
  /** The resolved host (a hostname or a wildcard pattern); undefined when missing. */
  host?: string;
  rule: HostRule;
  issues: RouteIssue[];
  warnings: string[];
}

const SIMPLE: Record<string, LoadBalancerPolicy | undefined> = {
  ROUND_ROBIN: 'ROUND_ROBIN',
  LEAST_REQUEST: 'LEAST_REQUEST',
  LEAST_CONN: 'LEAST_REQUEST',
  RANDOM: 'RANDOM',
};

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown): boolean => v !== undefined && v !== null;

/** Issues and warnings of one DestinationRule. */
class Findings {
  readonly issues: RouteIssue[] = [];
  readonly warnings: string[] = [];

  fail(reason: RouteIssue['reason'], path: string, problem: string): undefined {
    this.issues.push(issue(reason, path, problem));
    return undefined;
  }

  ignore(path: string, why = 'not supported by amesh waypoints'): void {
    this.warnings.push(`${path}: ${why}; ignored`);
  }

  /** Warn about every present field of `spec` not in `known`. */
  unknown(spec: Json, path: string, known: readonly string[]): void {
    for (const [field, value] of Object.entries(spec)) if (present(value) && !known.includes(field)) this.ignore(`${path}.${field}`);
  }

  /** A non-negative integer (protobuf uint32 / int32 counts); undefined when absent or bad. */
  count(value: unknown, path: string, max?: number): number | undefined {
    if (!present(value)) return undefined;
    const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) return this.fail('InvalidSpec', path, `${JSON.stringify(value)} is not a non-negative integer`);
    if (max !== undefined && n > max) return this.fail('InvalidSpec', path, `${n} is more than ${max}`);
    return n;
  }

  /** A duration of at least `min` ms (Istio validates 1 ms); undefined when absent or bad. */
  duration(value: unknown, path: string, min = 1): number | undefined {
    if (!present(value)) return undefined;
    const ms = typeof value === 'string' ? parseDurationMs(value) : undefined;
    if (ms === undefined) return this.fail('InvalidDuration', path, `${JSON.stringify(value)} is not a duration (e.g. "10s", "500ms")`);
    if (ms < min) return this.fail('InvalidDuration', path, `${JSON.stringify(value)} is shorter than ${min}ms`);
    return ms;
  }
}

function consistentHash(spec: Json, path: string, f: Findings): HashPolicy | undefined {
  f.unknown(spec, path, ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName', 'ringHash', 'maglev', 'minimumRingSize']);
  if (present(spec.minimumRingSize)) f.ignore(`${path}.minimumRingSize`, 'the ring size is chosen by the waypoint');
  if (isObject(spec.ringHash) && present(spec.ringHash.minimumRingSize)) f.ignore(`${path}.ringHash.minimumRingSize`, 'the ring size is chosen by the waypoint');
  if (present(spec.maglev)) f.warnings.push(`${path}.maglev: a ring hash is used instead (same stickiness, different table)`);
  const keys = (['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const).filter((k) => present(spec[k]) && spec[k] !== false);
  if (keys.length !== 1) return f.fail('InvalidSpec', path, keys.length ? `set only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (got ${keys.join(', ')})` : 'one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required');
  const key = keys[0];
  const value = key ? spec[key] : undefined;
  const name = (v: unknown, at: string): string | undefined => (typeof v === 'string' && v.trim() ? v.trim() : f.fail('InvalidSpec', at, 'a non-empty name is required'));
  switch (key) {
    case 'httpHeaderName': {
      const n = name(value, `${path}.httpHeaderName`);
      return n ? { kind: 'header', name: n.toLowerCase() } : undefined;
    }
    case 'httpQueryParameterName': {
      const n = name(value, `${path}.httpQueryParameterName`);
      return n ? { kind: 'query', name: n } : undefined;
    }
    case 'useSourceIp':
      return value === true ? { kind: 'source-ip' } : f.fail('InvalidSpec', `${path}.useSourceIp`, `${JSON.stringify(value)} is not true or false`);
    default: {
      if (!isObject(value)) return f.fail('InvalidSpec', `${path}.httpCookie`, 'an object {name, path, ttl} is required');
      f.unknown(value, `${path}.httpCookie`, ['name', 'path', 'ttl']);
      const n = name(value.name, `${path}.httpCookie.name`);
      // ttl present (even 0s: a session cookie) = the waypoint sets the cookie when the request has none.
      const ttlMs = f.duration(value.ttl, `${path}.httpCookie.ttl`, 0);
      if (!n) return undefined;
      return { kind: 'cookie', name: n, ...(typeof value.path === 'string' && value.path ? { path: value.path } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}) };
    }
  }
}

function localitySetting(spec: Json, path: string, f: Findings): LoadBalancerSettings['locality'] {
  f.unknown(spec, path, ['enabled', 'failover', 'distribute', 'failoverPriority']);
  if (Array.isArray(spec.distribute) && spec.distribute.length) f.ignore(`${path}.distribute`, 'weighted locality distribution is not supported by amesh waypoints');
  if (Array.isArray(spec.failoverPriority) && spec.failoverPriority.length) f.ignore(`${path}.failoverPriority`, 'label-based failover priority is not supported by amesh waypoints');
  if (present(spec.enabled) && typeof spec.enabled !== 'boolean') f.fail('InvalidSpec', `${path}.enabled`, `${JSON.stringify(spec.enabled)} is not true or false`);
  const failover: Array<{ from: string; to: string }> = [];
  (Array.isArray(spec.failover) ? spec.failover : []).forEach((entry: unknown, i) => {
    const at = `${path}.failover[${i}]`;
    const e = isObject(entry) ? entry : {};
    const from = typeof e.from === 'string' ? e.from.trim() : '';
    const to = typeof e.to === 'string' ? e.to.trim() : '';
    if (!from || !to) f.fail('InvalidSpec', at, 'from and to (regions) are required');
    else if (from === to) f.fail('InvalidSpec', at, `from and to are the same region ${JSON.stringify(from)}`);
    else failover.push({ from, to });
  });
  return { enabled: spec.enabled !== false, ...(failover.length ? { failover } : {}) };
}

function loadBalancer(spec: Json, path: string, f: Findings): LoadBalancerSettings {
  f.unknown(spec, path, ['simple', 'consistentHash', 'localityLbSetting', 'warmupDurationSecs', 'warmup']);
  for (const field of ['warmupDurationSecs', 'warmup']) if (present(spec[field])) f.ignore(`${path}.${field}`, 'slow start is not supported by amesh waypoints');
  const result: LoadBalancerSettings = {};
  const simple = present(spec.simple) ? String(spec.simple) : 'UNSPECIFIED';
  if (simple !== 'UNSPECIFIED') {
    const lb = SIMPLE[simple];
    if (lb) result.simple = lb;
    else f.warnings.push(`${path}.simple: ${simple} not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM); ${DEFAULT_LOAD_BALANCER} is used`);
  }
  if (present(spec.consistentHash)) {
    // Istio's LoadBalancerSettings is a oneof: simple or consistentHash.
    if (simple !== 'UNSPECIFIED') f.fail('InvalidSpec', path, 'set only one of simple, consistentHash');
    const hash = isObject(spec.consistentHash) ? consistentHash(spec.consistentHash, `${path}.consistentHash`, f) : f.fail('InvalidSpec', `${path}.consistentHash`, 'an object is required');
    if (hash) result.hash = hash;
  }
  if (isObject(spec.localityLbSetting)) result.locality = localitySetting(spec.localityLbSetting, `${path}.localityLbSetting`, f);
  return result;
}

function connectionPool(spec: Json, path: string, f: Findings): ConnectionPool {
  f.unknown(spec, path, ['tcp', 'http']);
  const pool: ConnectionPool = {};
  // Zero is protobuf's "unset": no limit (Istio only sets a threshold for a value > 0).
  const limit = (key: keyof ConnectionPool, value: number | undefined): void => {
    if (value !== undefined && value > 0) pool[key] = value;
  };
  if (isObject(spec.tcp)) {
    const at = `${path}.tcp`;
    const tcp = spec.tcp;
    f.unknown(tcp, at, ['maxConnections', 'connectTimeout', 'tcpKeepalive', 'maxConnectionDuration', 'idleTimeout']);
    limit('maxConnections', f.count(tcp.maxConnections, `${at}.maxConnections`));
    limit('connectTimeoutMs', f.duration(tcp.connectTimeout, `${at}.connectTimeout`));
    if (present(tcp.tcpKeepalive)) f.ignore(`${at}.tcpKeepalive`, 'upstream keepalive probes are not configurable in amesh waypoints');
    if (present(tcp.maxConnectionDuration)) f.ignore(`${at}.maxConnectionDuration`);
    if (present(tcp.idleTimeout)) f.ignore(`${at}.idleTimeout`, 'TCP proxy idle timeouts are not supported by amesh waypoints (http.idleTimeout is)');
  }
  if (isObject(spec.http)) {
    const at = `${path}.http`;
    const http = spec.http;
    f.unknown(http, at, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams']);
    limit('maxPendingRequests', f.count(http.http1MaxPendingRequests, `${at}.http1MaxPendingRequests`));
    limit('maxRequests', f.count(http.http2MaxRequests, `${at}.http2MaxRequests`));
    limit('maxRequestsPerConnection', f.count(http.maxRequestsPerConnection, `${at}.maxRequestsPerConnection`));
    limit('maxRetries', f.count(http.maxRetries, `${at}.maxRetries`));
    limit('idleTimeoutMs', f.duration(http.idleTimeout, `${at}.idleTimeout`));
    if (present(http.h2UpgradePolicy) && http.h2UpgradePolicy !== 'DEFAULT') f.ignore(`${at}.h2UpgradePolicy`, 'the waypoint speaks to endpoints in the protocol of the port');
    if (http.useClientProtocol === true) f.ignore(`${at}.useClientProtocol`, 'the waypoint speaks to endpoints in the protocol of the port');
    if (present(http.maxConcurrentStreams)) f.ignore(`${at}.maxConcurrentStreams`);
  }
  return pool;
}

function outlierDetection(spec: Json, path: string, f: Findings): OutlierDetection {
  f.unknown(spec, path, ['consecutive5xxErrors', 'consecutiveGatewayErrors', 'consecutiveErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent', 'splitExternalLocalOriginErrors', 'consecutiveLocalOriginFailures']);
  if (spec.splitExternalLocalOriginErrors === true) f.ignore(`${path}.splitExternalLocalOriginErrors`, 'local failures always count as errors in amesh waypoints');
  if (present(spec.consecutiveLocalOriginFailures)) f.ignore(`${path}.consecutiveLocalOriginFailures`, 'local failures always count as errors in amesh waypoints');
  const legacy = f.count(spec.consecutiveErrors, `${path}.consecutiveErrors`);
  const fiveXx = f.count(spec.consecutive5xxErrors, `${path}.consecutive5xxErrors`);
  const gateway = f.count(spec.consecutiveGatewayErrors, `${path}.consecutiveGatewayErrors`);
  const legacyOn = legacy !== undefined && legacy > 0;
  // 0 = that kind of ejection off; unset = Envoy's default (5 for 5xx; off for gateway errors).
  const five = fiveXx ?? (legacyOn ? 0 : OUTLIER_DEFAULTS.consecutive5xxErrors);
  const gw = gateway ?? (legacyOn ? legacy : 0);
  const minHealth = f.count(spec.minHealthPercent, `${path}.minHealthPercent`, 100);
  const maxEjection = f.count(spec.maxEjectionPercent, `${path}.maxEjectionPercent`, 100);
  return {
    ...(five > 0 ? { consecutive5xxErrors: five } : {}),
    ...(gw > 0 ? { consecutiveGatewayErrors: gw } : {}),
    intervalMs: f.duration(spec.interval, `${path}.interval`) ?? OUTLIER_DEFAULTS.intervalMs,
    baseEjectionTimeMs: f.duration(spec.baseEjectionTime, `${path}.baseEjectionTime`) ?? OUTLIER_DEFAULTS.baseEjectionTimeMs,
    // Istio sets the percentage only when > 0 (0 = unset = Envoy's 10).
    maxEjectionPercent: maxEjection !== undefined && maxEjection > 0 ? maxEjection : OUTLIER_DEFAULTS.maxEjectionPercent,
    ...(minHealth !== undefined && minHealth > 0 ? { minHealthPercent: minHealth } : {}),
  };
}

/** The fields one policy level carries (top level, subset, or a portLevelSettings entry). */
function policyLevel(spec: Json, path: string, f: Findings, known: readonly string[]): TrafficPolicyLevel {
  const level: TrafficPolicyLevel = {};
  for (const [field, value] of Object.entries(spec)) {
    if (!present(value) || field === 'port' || field === 'portLevelSettings') continue;
    if (!known.includes(field)) {
      f.ignore(`${path}.${field}`, field === 'tls' ? 'mesh traffic to endpoints is always mutual TLS over HBONE' : undefined);
      continue;
    }
    if (!isObject(value)) {
      f.fail('InvalidSpec', `${path}.${field}`, 'an object is required');
      continue;
    }
    if (field === 'loadBalancer') level.loadBalancer = loadBalancer(value, `${path}.loadBalancer`, f);
    else if (field === 'connectionPool') level.connectionPool = connectionPool(value, `${path}.connectionPool`, f);
    else if (field === 'outlierDetection') level.outlierDetection = outlierDetection(value, `${path}.outlierDetection`, f);
  }
  return level;
}

const POLICY_FIELDS = ['loadBalancer', 'connectionPool', 'outlierDetection'] as const;

/** A trafficPolicy (undefined = inherit everything) and its portLevelSettings. */
function trafficPolicy(spec: unknown, path: string, f: Findings): PolicySet {
  if (!present(spec)) return {};
  if (!isObject(spec)) return f.fail('InvalidSpec', path, 'an object is required') ?? {};
  const set: { policy?: TrafficPolicyLevel; portPolicies?: Map<number, TrafficPolicyLevel> } = { policy: policyLevel(spec, path, f, POLICY_FIELDS) };
  const entries = spec.portLevelSettings;
  if (present(entries) && !Array.isArray(entries)) f.fail('InvalidSpec', `${path}.portLevelSettings`, 'a list is required');
  (Array.isArray(entries) ? (entries as unknown[]) : []).forEach((entry, i) => {
    const at = `${path}.portLevelSettings[${i}]`;
    if (!isObject(entry)) return f.fail('InvalidSpec', at, 'an object is required');
    const number = isObject(entry.port) ? entry.port.number : undefined;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > 65535) return f.fail('InvalidSpec', `${at}.port.number`, `${JSON.stringify(number)} is not a port number`);
    const level = policyLevel(entry, at, f, POLICY_FIELDS);
    set.portPolicies ??= new Map();
    // Istio uses the first entry for a port.
    if (set.portPolicies.has(number)) f.ignore(at, `port ${number} already has settings (the first entry is used)`);
    else set.portPolicies.set(number, level);
    return undefined;
  });
  return set;
}

export function destinationRuleName(dr: KubeObjectLike): string {
  return `${dr.metadata.namespace ?? 'default'}/${dr.metadata.name ?? ''}`;
}

/** translateDestinationRule, a throw on a value of the wrong type contained to this object (contain.ts). */
export function translateDestinationRule(dr: DestinationRuleObject, clusterDomain: string): DestinationRuleTranslation {
  return contained(() => translateDestinationRuleUnchecked(dr, clusterDomain), (reason) => ({ rule: { rule: `${dr.metadata.namespace ?? 'default'}/${dr.metadata.name ?? ''}`, subsets: new Map() }, issues: [issue('InvalidSpec', 'spec', reason)], warnings: [] }));
}

function translateDestinationRuleUnchecked(dr: DestinationRuleObject, clusterDomain: string): DestinationRuleTranslation {
  const namespace = dr.metadata.namespace ?? 'default';
  const spec = dr.spec ?? {};
  const f = new Findings();
  const host = spec.host?.trim() ? resolveHost(spec.host, namespace, clusterDomain) : undefined;
  if (!host) f.fail('InvalidSpec', 'spec.host', 'required');
  const top = trafficPolicy(spec.trafficPolicy, 'spec.trafficPolicy', f);
  const subsets = new Map<string, SubsetInfo>();
  (spec.subsets ?? []).forEach((s, i) => {
    const path = `spec.subsets[${i}]`;
    const name = s.name?.trim();
    if (!name) {
      f.fail('InvalidSpec', `${path}.name`, 'required');
      return;
    }
    if (subsets.has(name)) {
      f.fail('InvalidSpec', `${path}.name`, `duplicate subset ${JSON.stringify(name)}`);
      return;
    }
    subsets.set(name, { labels: { ...(s.labels ?? {}) }, ...trafficPolicy(s.trafficPolicy, `${path}.trafficPolicy`, f) });
  });
  const levels = [top, ...subsets.values()].flatMap((set) => [set.policy, ...(set.portPolicies?.values() ?? [])]);
  if (levels.some((l) => l?.loadBalancer?.locality?.enabled) && !levels.some((l) => l?.outlierDetection)) {
    f.warnings.push('loadBalancer.localityLbSetting: ignored without outlierDetection (Istio applies locality failover only to clusters with outlier detection)');
  }
  if (spec.workloadSelector) f.warnings.push('spec.workloadSelector: not supported (it scopes sidecars); the rule applies to every waypoint');
  if (spec.exportTo && !spec.exportTo.every((e) => e === '*')) f.warnings.push('spec.exportTo: visibility is not enforced by amesh waypoints; ignored');
  return { ...(host ? { host } : {}), rule: { rule: destinationRuleName(dr), ...top, subsets }, issues: f.issues, warnings: f.warnings };
}

export interface RuleCandidate {
  /** `namespace/name` */
  key: string;
  namespace: string;
  creationTimestamp?: string;
  host: string;
  rule: HostRule;
}

/** Orders candidates for one service (see the file comment); the first is in effect. */
export function compareRuleCandidates(serviceNamespace: string) {
  return (a: RuleCandidate, b: RuleCandidate): number => {
    const exact = Number(b.host.startsWith('*') ? 0 : 1) - Number(a.host.startsWith('*') ? 0 : 1);
    if (exact) return exact;
    const own = Number(b.namespace === serviceNamespace) - Number(a.namespace === serviceNamespace);
    if (own) return own;
    return (a.creationTimestamp ?? '').localeCompare(b.creationTimestamp ?? '') || a.key.localeCompare(b.key);
  };
}

/**
 * The rule in effect per service hostname, and for each rule the services it lost to another
 * (for its Warning condition).
 */
export function effectiveDestinationRules(
  candidates: readonly RuleCandidate[],
  services: ReadonlyArray<{ hostname: string; namespace: string }>,
): { byHost: Map<string, HostRule>; shadowed: Map<string, string[]> } {
  const byHost = new Map<string, HostRule>();
  const shadowed = new Map<string, string[]>();
  for (const service of services) {
    const matching = candidates.filter((c) => hostMatches(c.host, service.hostname)).sort(compareRuleCandidates(service.namespace));
    const [winner, ...losers] = matching;
    if (!winner) continue;
    byHost.set(service.hostname, winner.rule);
    for (const l of losers) {
      const list = shadowed.get(l.key) ?? [];
      list.push(`spec.host: ${service.hostname} is configured by DestinationRule ${winner.key}, which takes precedence; this rule is not used for it`);
      shadowed.set(l.key, list);
    }
  }
  return { byHost, shadowed };
}
