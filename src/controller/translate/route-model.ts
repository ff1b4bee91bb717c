/**
 * What the routing translators (virtual-service.ts, http-route.ts, grpc-route.ts) share: the
 * context they read (services and DestinationRule subsets, by hostname), the pieces they return
 * (routes per service port, the clusters those routes name, problems and ignored fields), and
 * the small parsers Istio and the Gateway API have in common (hosts, durations). Pure.
 *
 * A translator never drops a bad part silently: an `issue` rejects the whole object (the caller
 * keeps serving the object's last valid translation, see waypoint-config.ts), a `warning` names
 * a field that is accepted but ignored.
 */
import type { ConnectionPool, HashPolicy, HttpRoute, LoadBalancerPolicy, OutlierDetection, RetryOn, RetryPolicy } from '../../l7/config.js';
import { clusterName } from '../../l7/config.js';

/** Why an object is not accepted (the `reason` of its Accepted=False condition). */
export type RouteIssueReason =
  | 'InvalidDestination'
  | 'InvalidRegex'
  | 'InvalidWeights'
  | 'InvalidRedirect'
  | 'InvalidDuration'
  | 'InvalidSpec'
  | 'UnsupportedValue';

export interface RouteIssue {
  reason: RouteIssueReason;
  /** `spec.http[0].route[1].destination.subset: subset "v3" not defined in DestinationRule demo/backend` */
  message: string;
}

export function issue(reason: RouteIssueReason, path: string, problem: string): RouteIssue {
  return { reason, message: `${path}: ${problem}` };
}

/** A service the translators can route to. */
export interface RouteService {
  namespace: string;
  name: string;
  /** `<name>.<namespace>.svc.<cluster domain>` */
  hostname: string;
  /** Its (TCP) service ports. */
  ports: readonly number[];
}

/**
 * One level of a DestinationRule trafficPolicy as destination-rule.ts translates it: top level, a
 * subset's, or a `portLevelSettings` entry. A present field replaces the inherited one as a whole
 * (Istio merges field by field, never inside a field; see effectivePolicy).
 */
export interface TrafficPolicyLevel {
  loadBalancer?: LoadBalancerSettings;
  /** Present but empty = set with no limits (still replaces an inherited pool). */
  connectionPool?: ConnectionPool;
  outlierDetection?: OutlierDetection;
}

/** `trafficPolicy.loadBalancer`: Istio's oneof `simple` | `consistentHash`, plus locality settings. */
export interface LoadBalancerSettings {
  simple?: LoadBalancerPolicy;
  hash?: HashPolicy;
  /** `localityLbSetting`; absent = the mesh default (enabled, no failover hints). */
  locality?: { enabled: boolean; failover?: Array<{ from: string; to: string }> };
}

/** A trafficPolicy with its `portLevelSettings` (by service port). */
export interface PolicySet {
  policy?: TrafficPolicyLevel;
  portPolicies?: ReadonlyMap<number, TrafficPolicyLevel>;
}

export interface SubsetInfo extends PolicySet {
  labels: Readonly<Record<string, string>>;
}

/** The DestinationRule in effect for one host (destination-rule.ts). */
export interface HostRule extends PolicySet {
  /** `namespace/name` of the DestinationRule. */
  rule: string;
  subsets: ReadonlyMap<string, SubsetInfo>;
}

/**
 * The trafficPolicy in effect for (service port, subset), Istio's MergeSubsetTrafficPolicy: the
 * rule's port-level entry for the port replaces the rule's policy (fields it omits take their
 * defaults, they are not inherited); then a subset's fields override; a subset's port-level entry
 * replaces every field.
 */
export function effectivePolicy(rule: HostRule | undefined, port: number, subset?: string): TrafficPolicyLevel {
  if (!rule) return {};
  const top = rule.portPolicies?.get(port) ?? rule.policy ?? {};
  const own = subset !== undefined ? rule.subsets.get(subset) : undefined;
  if (!own) return top;
  const ownPort = own.portPolicies?.get(port);
  if (ownPort) return ownPort;
  const merged: TrafficPolicyLevel = { ...top };
  if (own.policy?.loadBalancer) merged.loadBalancer = own.policy.loadBalancer;
  if (own.policy?.connectionPool) merged.connectionPool = own.policy.connectionPool;
  if (own.policy?.outlierDetection) merged.outlierDetection = own.policy.outlierDetection;
  return merged;
}

/** Does the cluster balance by consistent hash? (Then retries stay on the same endpoint, as in Istio.) */
export function clusterHashes(rules: RouteContext['destinationRules'], ref: { hostname: string; port: number; subset?: string }): boolean {
  return effectivePolicy(rules.get(ref.hostname), ref.port, ref.subset).loadBalancer?.hash !== undefined;
}

export interface RouteContext {
  clusterDomain: string;
  /** Every routable service, by hostname. */
  services: ReadonlyMap<string, RouteService>;
  /** The effective DestinationRule per hostname. */
  destinationRules: ReadonlyMap<string, HostRule>;
}

/** A cluster a route names; waypoint-config.ts gives it endpoints. */
export interface ClusterRef {
  /** `outbound|<port>|<subset>|<hostname>` */
  name: string;
  /** `namespace/hostname` */
  service: string;
  hostname: string;
  port: number;
  subset?: string;
  /** The subset's pod labels when translated (kept with a last valid translation). */
  subsetLabels?: Readonly<Record<string, string>>;
}

/** One route on one port of one service. */
export interface RouteEntry {
  /** The service hostname the route applies to. */
  hostname: string;
  port: number;
  route: HttpRoute;
}

export interface Translation {
  /** Routes in the object's own order (the caller orders across objects). */
  entries: RouteEntry[];
  clusters: ClusterRef[];
  /** Non-empty = the object is rejected as a whole. */
  issues: RouteIssue[];
  /** Accepted but ignored fields, each naming its path. */
  warnings: string[];
}

export function emptyTranslation(): Translation {
  return { entries: [], clusters: [], issues: [], warnings: [] };
}

/** The cluster for a destination (`requestPort`: the port the request came in on), or an issue naming `path`. */
export function resolveDestination(
  ctx: RouteContext,
  target: { hostname: string; port?: number; subset?: string },
  requestPort: number | undefined,
  path: string,
): ClusterRef | RouteIssue {
  const service = ctx.services.get(target.hostname);
  if (!service) return issue('InvalidDestination', `${path}.host`, `service ${target.hostname} not found`);
  let port = target.port;
  if (port === undefined) {
    // Istio: without a port, a single-port destination takes that port; else the request's.
    // (No request port: only checking the object; any port of the service will do.)
    if (service.ports.length === 1 || (requestPort === undefined && service.ports.length > 0)) port = service.ports[0];
    else if (requestPort !== undefined && service.ports.includes(requestPort)) port = requestPort;
    else return issue('InvalidDestination', `${path}.port`, `service ${target.hostname} has ${service.ports.length === 0 ? 'no TCP ports' : `ports ${service.ports.join(', ')}`}: name one`);
  } else if (!service.ports.includes(port)) {
    return issue('InvalidDestination', `${path}.port.number`, `service ${target.hostname} has no port ${port}`);
  }
  if (port === undefined) return issue('InvalidDestination', `${path}.port`, `service ${target.hostname} has no port`);
  const ref: ClusterRef = { name: clusterName(service.hostname, port, target.subset), service: `${service.namespace}/${service.hostname}`, hostname: service.hostname, port };
  if (target.subset !== undefined) {
    const rule = ctx.destinationRules.get(service.hostname);
    const subset = rule?.subsets.get(target.subset);
    if (!subset) {
      const why = rule ? ` not defined in DestinationRule ${rule.rule}` : `: no DestinationRule for ${service.hostname} defines subsets`;
      return issue('InvalidDestination', `${path}.subset`, `subset ${JSON.stringify(target.subset)}${why}`);
    }
    ref.subset = target.subset;
    ref.subsetLabels = subset.labels;
  }
  return ref;
}

export function isIssue(value: ClusterRef | RouteIssue): value is RouteIssue {
  return 'reason' in value;
}

/**
 * Istio's host rules, relative to the config's namespace: a short name `backend` is
 * `backend.<ns>.svc.<domain>`; `backend.demo` and `backend.demo.svc` are completed to the FQDN
 * (Kubernetes DNS resolves them so, and users write them); anything longer is taken as written.
 * Wildcards (`*`, `*.demo.svc.cluster.local`) stay patterns (see hostMatches).
 */
export function resolveHost(host: string, namespace: string, clusterDomain: string): string {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  if (h.startsWith('*')) return h;
  const parts = h.split('.');
  if (parts.length === 1) return `${h}.${namespace}.svc.${clusterDomain}`;
  if (parts.length === 2) return `${h}.svc.${clusterDomain}`;
  if (parts.length === 3 && parts[2] === 'svc') return `${h}.${clusterDomain}`;
  return h;
}

/** Does a resolved host (maybe a wildcard) cover the service hostname? */
export function hostMatches(pattern: string, hostname: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return hostname.endsWith(pattern.slice(1));
  return pattern === hostname;
}

/**
 * A duration as Istio (protobuf JSON, `1.5s`) and the Gateway API (`1h30m`, `500ms`) write it,
 * in milliseconds; undefined when malformed.
 */
export function parseDurationMs(value: string): number | undefined {
  const text = value.trim();
  if (!/^(\d+(\.\d+)?(h|m|s|ms))+$/.test(text)) return undefined;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let total = 0;
  for (const [, amount, , u] of text.matchAll(/(\d+(\.\d+)?)(h|ms|m|s)/g)) total += Number(amount) * (unit[u ?? 's'] ?? 0);
  return Math.round(total);
}

export function regexCompiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

/**
 * Istio's retry policy for a route that sets none (also the default route of a service): 2
 * retries on connection failures, refused streams and gRPC unavailable / cancelled
 * (pilot/pkg/networking/core/route/retry/retry.go; `retriable-status-codes` is listed with no
 * codes: current Istio no longer retries 503 by default). A retry prefers another endpoint, except under
 * consistent hashing, where it stays on the chosen one.
 */
export const ISTIO_DEFAULT_RETRY_ON: readonly RetryOn[] = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'];
export const ISTIO_DEFAULT_ATTEMPTS = 2;

/** A route's retries explicitly off (`attempts: 0`): the default policy must not be applied. */
export const RETRIES_OFF: RetryPolicy = Object.freeze({ attempts: 0, retryOn: [], otherHost: false }) as RetryPolicy;

export function defaultRetryPolicy(hashed: boolean): RetryPolicy {
  return { attempts: ISTIO_DEFAULT_ATTEMPTS, retryOn: [...ISTIO_DEFAULT_RETRY_ON], otherHost: !hashed };
}

const RETRY_CONDITIONS: ReadonlySet<string> = new Set<RetryOn>([
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

/**
 * An Istio `retryOn` list ("5xx,connect-failure,503"): known Envoy conditions, HTTP status codes
 * (which mean `retriable-status-codes` with those codes, added when missing, as Istio does), and
 * the entries we do not implement (the caller warns about them).
 */
export function parseRetryOn(value: string): { retryOn: RetryOn[]; codes: number[]; unknown: string[] } {
  const retryOn: RetryOn[] = [];
  const codes: number[] = [];
  const unknown: string[] = [];
  for (const raw of value.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    if (/^\d+$/.test(part)) {
      const code = Number(part);
      if (code >= 100 && code <= 599) {
        if (!codes.includes(code)) codes.push(code);
      } else unknown.push(part);
    } else if (RETRY_CONDITIONS.has(part)) {
      if (!retryOn.includes(part as RetryOn)) retryOn.push(part as RetryOn);
    } else unknown.push(part);
  }
  if (codes.length && !retryOn.includes('retriable-status-codes')) retryOn.push('retriable-status-codes');
  return { retryOn, codes, unknown };
}

/** gRPC status names (Istio `fault.abort.grpcStatus`) → codes. */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};
