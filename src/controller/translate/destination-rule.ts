/**
 * Istio DestinationRule (networking.istio.io v1, v1beta1, v1alpha3: one schema) → the subsets
 * and load-balancing policy a waypoint uses for a host. Pure.
 *
 * Carried: `host` (resolved with Istio's rules relative to the rule's namespace, route-model.ts),
 * `subsets[]` (name → pod labels, with a per-subset trafficPolicy override) and
 * `trafficPolicy.loadBalancer.simple` ROUND_ROBIN / LEAST_REQUEST (and its old alias LEAST_CONN)
 * / RANDOM. Everything else in a trafficPolicy (connectionPool, outlierDetection, tls,
 * portLevelSettings, consistentHash, ...) is named in a warning and ignored.
 *
 * Without a DestinationRule, or with `simple` unset, the policy is LEAST_REQUEST: Istio's default
 * since 1.14 (better than round robin when endpoints differ in speed).
 *
 * When several rules name one service, the one in effect is, in order: an exact host over a
 * wildcard, a rule in the service's own namespace, the oldest (creationTimestamp), then by
 * namespace/name. Istio merges same-namespace rules; we do not (one rule per host), and say so
 * on the rule left out.
 */
import type { LoadBalancerPolicy } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import { hostMatches, issue, resolveHost, type HostRule, type RouteIssue, type SubsetInfo } from './route-model.js';

export const DEFAULT_LOAD_BALANCER: LoadBalancerPolicy = 'LEAST_REQUEST';

export interface TrafficPolicySpec {
  loadBalancer?: { simple?: string } & Record<string, unknown>;
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

/** The load balancer of a trafficPolicy (undefined = inherit), warnings for the rest of it. */
function trafficPolicy(policy: TrafficPolicySpec | undefined, path: string, warnings: string[]): LoadBalancerPolicy | undefined {
  if (!policy) return undefined;
  let lb: LoadBalancerPolicy | undefined;
  for (const [field, value] of Object.entries(policy)) {
    if (value === undefined || value === null) continue;
    if (field !== 'loadBalancer') {
      warnings.push(`${path}.${field}: not supported by amesh waypoints; ignored`);
      continue;
    }
    for (const [lbField, lbValue] of Object.entries(policy.loadBalancer ?? {})) {
      if (lbValue === undefined || lbValue === null) continue;
      if (lbField !== 'simple') {
        warnings.push(`${path}.loadBalancer.${lbField}: not supported by amesh waypoints; ignored`);
        continue;
      }
      const simple = String(lbValue);
      if (simple === 'UNSPECIFIED') continue;
      lb = SIMPLE[simple];
      if (!lb) warnings.push(`${path}.loadBalancer.simple: ${simple} not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM); ${DEFAULT_LOAD_BALANCER} is used`);
    }
  }
  return lb;
}

export function destinationRuleName(dr: KubeObjectLike): string {
  return `${dr.metadata.namespace ?? 'default'}/${dr.metadata.name ?? ''}`;
}

export function translateDestinationRule(dr: DestinationRuleObject, clusterDomain: string): DestinationRuleTranslation {
  const namespace = dr.metadata.namespace ?? 'default';
  const spec = dr.spec ?? {};
  const issues: RouteIssue[] = [];
  const warnings: string[] = [];
  const host = spec.host?.trim() ? resolveHost(spec.host, namespace, clusterDomain) : undefined;
  if (!host) issues.push(issue('InvalidSpec', 'spec.host', 'required'));
  const lb = trafficPolicy(spec.trafficPolicy, 'spec.trafficPolicy', warnings);
  const subsets = new Map<string, SubsetInfo>();
  (spec.subsets ?? []).forEach((s, i) => {
    const path = `spec.subsets[${i}]`;
    const name = s.name?.trim();
    if (!name) {
      issues.push(issue('InvalidSpec', `${path}.name`, 'required'));
      return;
    }
    if (subsets.has(name)) {
      issues.push(issue('InvalidSpec', `${path}.name`, `duplicate subset ${JSON.stringify(name)}`));
      return;
    }
    const subsetLb = trafficPolicy(s.trafficPolicy, `${path}.trafficPolicy`, warnings);
    subsets.set(name, { labels: { ...(s.labels ?? {}) }, ...(subsetLb ? { lb: subsetLb } : {}) });
  });
  if (spec.workloadSelector) warnings.push('spec.workloadSelector: not supported (it scopes sidecars); the rule applies to every waypoint');
  if (spec.exportTo && !spec.exportTo.every((e) => e === '*')) warnings.push('spec.exportTo: visibility is not enforced by amesh waypoints; ignored');
  return { ...(host ? { host } : {}), rule: { rule: destinationRuleName(dr), ...(lb ? { lb } : {}), subsets }, issues, warnings };
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
