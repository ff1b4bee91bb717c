/**
 * The waypoint's configuration: what the controller computes from Gateway API routes, Istio
 * VirtualServices and DestinationRules (src/controller/translate/), pushes over xDS as one
 * resource per waypoint, and the L7 engine (src/l7/) executes. Envoy's model, trimmed: a waypoint
 * serves `services` (each by VIP:port), each port has an ordered `routes` table (first match
 * wins), routes forward to `clusters` (a service port, optionally a subset, with its endpoints
 * and load-balancing policy).
 *
 * Wire form: type URL WAYPOINT_CONFIG_TYPE_URL, resource name `<namespace>/<gateway name>`, the
 * message `amesh.l7.v1.WaypointConfig` (proto/amesh/l7/v1/waypoint.proto) whose `json` field is
 * this object as JSON. The waypoint validates it (a NACK names the bad field) before use.
 *
 * Names are stable strings so a config diff is readable: a route is `<Kind>/<ns>/<name>#<rule
 * index>` of the object it came from (`#<rule>.<match>` when a Gateway API rule is split per match
 * for precedence, with `:exact` / `:prefix` for the two halves of a PathPrefix); a cluster is
 * Envoy's `outbound|<port>|<subset>|<hostname>`. Regex matches are whole-value matches (RE2 /
 * Envoy semantics), compiled as JavaScript RegExps.
 */

import type { TelemetrySettings } from '../telemetry/telemetry-config.js';

export const WAYPOINT_CONFIG_TYPE_URL = 'type.googleapis.com/amesh.l7.v1.WaypointConfig';

export interface WaypointConfig {
  /** The waypoint Gateway. */
  namespace: string;
  name: string;
  /** The SPIFFE identity the waypoint serves as (its ServiceAccount). */
  identity: string;
  services: WaypointService[];
  clusters: Cluster[];
  /** L7 AuthorizationPolicies enforced here (targetRefs to this waypoint or a bound Service). */
  policies?: L7Policy[];
  /** RequestAuthentication JWT rules enforced here. */
  jwtRules?: JwtRule[];
  /**
   * Absent or 'waypoint': an east-west waypoint (HBONE in, `services` by VIP). 'gateway': an
   * ingress gateway (src/gateway/): plain TCP / TLS in on `listeners`, see GatewayListener.
   */
  kind?: 'waypoint' | 'gateway';
  /** Ingress gateways only: what the gateway listens on (one entry per port). */
  listeners?: GatewayListener[];
  /** What the Telemetry resources resolve to for this proxy (access log, tracing); absent = DEFAULT_TELEMETRY. */
  telemetry?: TelemetrySettings;
}

/**
 * The address an ingress gateway's HTTP routes are filed under in `services`: an HTTP or HTTPS
 * listener on port P has its routes in the WaypointService port P whose `addresses` hold this
 * value, and the gateway looks them up with `(GATEWAY_LISTENER_ADDRESS, P)`. Hostname
 * selection (listener hostnames, Istio server hosts, HTTPRoute hostnames, VirtualService hosts)
 * is carried by `authority` matches in the routes themselves; `defaultCluster` is '' so a request
 * no route matches gets 404 `NR`, as Envoy answers at a gateway.
 */
export const GATEWAY_LISTENER_ADDRESS = '0.0.0.0';

/**
 * One port of an ingress gateway. Several Gateway listeners / Istio servers on the same port are
 * merged into one entry by the controller (they must agree on the protocol; a conflict is the
 * controller's to report, the gateway never sees it).
 * - HTTP: plaintext HTTP/1.1 (and h2c prior knowledge); routes in `services` (see above).
 * - HTTPS: TLS terminated with `certificates` (chosen by SNI), then as HTTP; ALPN h2 and http/1.1.
 * - TLS: passthrough; the ClientHello's SNI selects an `l4Routes` entry, bytes are relayed.
 * - TCP: every connection takes the first `l4Routes` entry.
 */
export interface GatewayListener {
  /** The listeners merged here, `<Kind>/<ns>/<gateway>/<listener or server name>`, comma-joined; logs and dumps. */
  name: string;
  port: number;
  protocol: 'HTTP' | 'HTTPS' | 'TLS' | 'TCP';
  /** HTTPS: at least one. The most specific hostname pattern matching the SNI wins; no SNI or no match → the first. */
  certificates?: GatewayCertificate[];
  /** TLS and TCP listeners: first match wins; none → the connection is closed (logged `NR`). */
  l4Routes?: L4Route[];
}

export interface GatewayCertificate {
  /** The Secret it came from, `namespace/name` (logs, dumps; never the key). */
  name: string;
  /** SNI patterns: `exact.host`, `*.suffix`, `*`; empty = any. */
  hostnames: string[];
  /** PEM: the certificate chain (leaf first) and its private key, from the Secret's tls.crt / tls.key. */
  certChain: string;
  privateKey: string;
}

/** A TLS-passthrough (by SNI) or TCP route of a gateway listener. */
export interface L4Route {
  /** `<Kind>/<ns>/<name>#<index>` of the VirtualService tls/tcp entry or TLSRoute/TCPRoute rule. */
  name: string;
  /** SNI patterns (`exact`, `*.suffix`, `*`); absent/empty = any (TCP listeners ignore it). */
  hostnames?: string[];
  backends: WeightedBackend[];
}

/** A service whose traffic this waypoint handles (bound with istio.io/use-waypoint). */
export interface WaypointService {
  /** `namespace/hostname`, as in istio.workload.Service. */
  key: string;
  namespace: string;
  hostname: string;
  /** The VIPs clients dial; the HBONE `:authority` the node agent sends is `<vip>:<port>`. */
  addresses: string[];
  ports: WaypointPort[];
}

export type PortProtocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'TCP' | 'AUTO';

export interface WaypointPort {
  /** The service port. */
  port: number;
  /** From the Service port's appProtocol / name prefix; AUTO = sniff HTTP/1.1 vs h2c vs opaque TCP. */
  protocol: PortProtocol;
  /** Ordered; the first route with a matching `matches` entry wins. */
  routes: HttpRoute[];
  /** Where requests go when no route matches (and opaque TCP always): the service's own cluster. */
  defaultCluster: string;
  /** Retry policy of requests that take `defaultCluster` (Istio's default policy); absent = none. */
  defaultRetries?: RetryPolicy;
}

export type StringMatchKind = 'exact' | 'prefix' | 'regex';

export interface StringMatch {
  kind: StringMatchKind;
  value: string;
}

export interface HeaderMatch {
  /** Lower-case header name. */
  name: string;
  /** Absent = the header must be present with any value. */
  match?: StringMatch;
  /** Match when the condition does NOT hold (Istio's withoutHeaders). */
  invert?: boolean;
}

export interface QueryParamMatch {
  name: string;
  match?: StringMatch;
}

/** Every present field must hold. */
export interface RequestMatch {
  path?: StringMatch;
  method?: string;
  headers?: HeaderMatch[];
  queryParams?: QueryParamMatch[];
  /** Istio `authority` match (the Host / :authority header, port stripped). */
  authority?: StringMatch;
}

export interface HeaderMutation {
  /** Replace (or add when absent). */
  set?: Record<string, string>;
  /** Append a value. */
  add?: Record<string, string>;
  remove?: string[];
}

export interface UrlRewrite {
  /** New Host / :authority. */
  hostname?: string;
  /** `full` replaces the whole path; `prefix` replaces the matched path prefix. */
  path?: { kind: 'full' | 'prefix'; value: string };
}

export interface Redirect {
  scheme?: 'http' | 'https';
  hostname?: string;
  port?: number;
  path?: { kind: 'full' | 'prefix'; value: string };
  /** 301 (default), 302, 303, 307, 308. */
  statusCode: number;
}

export interface Mirror {
  cluster: string;
  /** 0–100; absent = 100. */
  percent?: number;
}

export interface WeightedBackend {
  cluster: string;
  /** Relative weight; 0 = never chosen. */
  weight: number;
  /** Filters applied only when this backend is chosen (Gateway API backendRef filters). */
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
}

export type RouteAction =
  | { kind: 'forward'; backends: WeightedBackend[] }
  | { kind: 'redirect'; redirect: Redirect }
  | { kind: 'direct-response'; status: number; body?: string };

export interface HttpRoute {
  /** `<Kind>/<ns>/<name>#<rule index>`, e.g. `VirtualService/demo/backend#0`. */
  name: string;
  /** OR of matches; empty = every request. */
  matches: RequestMatch[];
  action: RouteAction;
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  rewrite?: UrlRewrite;
  mirrors?: Mirror[];
  /** Whole-request timeout (all tries included, Envoy's route timeout); absent = none. */
  timeoutMs?: number;
  /** Absent = no retries (the controller fills in Istio's default policy when the user sets none). */
  retries?: RetryPolicy;
  /** Fault injection, applied before the request is forwarded (Istio HTTPFaultInjection). */
  fault?: FaultPolicy;
}

/**
 * Envoy's retry conditions as Istio spells them in `retryOn`. HTTP status based: `5xx` (any 5xx
 * or no response: connect failure / reset / per-try timeout), `gateway-error` (502, 503, 504),
 * `retriable-4xx` (409), `retriable-status-codes` (the codes in `retriableStatusCodes`);
 * connection based: `connect-failure`, `reset` (disconnect/reset before response headers),
 * `refused-stream` (HTTP/2 REFUSED_STREAM); gRPC based (status in the response / trailers-only
 * headers): `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`.
 */
export type RetryOn =
  | '5xx'
  | 'gateway-error'
  | 'reset'
  | 'connect-failure'
  | 'retriable-4xx'
  | 'refused-stream'
  | 'retriable-status-codes'
  | 'cancelled'
  | 'deadline-exceeded'
  | 'internal'
  | 'resource-exhausted'
  | 'unavailable';

export interface RetryPolicy {
  /** Retries after the first try (Istio `attempts`); 0 = none. */
  attempts: number;
  /** Timeout of each try; absent = only the route timeout applies. */
  perTryTimeoutMs?: number;
  retryOn: RetryOn[];
  /** For `retriable-status-codes`. */
  retriableStatusCodes?: number[];
  /** A retry goes to another endpoint when one is eligible (Envoy previous_hosts; Istio's default). */
  otherHost: boolean;
  /** Exponential backoff with full jitter: base (Envoy default 25 ms), capped at 10× base. */
  backoffBaseMs?: number;
}

export interface FaultPolicy {
  /** Delay this share of requests before forwarding them. */
  delay?: { percent: number; delayMs: number };
  /** Answer this share of requests locally (flag FI) instead of forwarding them. */
  abort?: { percent: number; httpStatus?: number; grpcStatus?: number };
}

/**
 * An AuthorizationPolicy as the waypoint enforces it. Values keep Istio's string syntax
 * (`*`, `prefix*`, `*suffix`, CIDRs, `ns/name` principals without `spiffe://`...); the engine
 * (src/l7/authz/) compiles them. Istio semantics: CUSTOM is not supported; DENY policies first
 * (any match → 403), then if any ALLOW policy applies, a request must match one (else 403);
 * AUDIT only logs. A policy with no rules: ALLOW matches nothing, DENY matches nothing.
 */
export interface L7Policy {
  /** `namespace/name` of the AuthorizationPolicy. */
  name: string;
  action: 'ALLOW' | 'DENY' | 'AUDIT';
  /** The services (keys, `namespace/hostname`) it applies to; absent = all traffic of this waypoint. */
  services?: string[];
  rules: L7Rule[];
}

/** Every present part must hold; `from` entries are OR'ed, `to` entries are OR'ed, `when` AND'ed. */
export interface L7Rule {
  from?: L7Source[];
  to?: L7Operation[];
  when?: L7Condition[];
}

export interface L7Source {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

export interface L7Operation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

export interface L7Condition {
  /** Istio key: `request.headers[x]`, `source.ip`, `source.namespace`, `source.principal`, `remote.ip`, `destination.ip`, `destination.port`, `request.auth.principal`, `request.auth.audiences`, `request.auth.presenter`, `request.auth.claims[c]` (nested `[a][b]`). */
  key: string;
  values?: string[];
  notValues?: string[];
}

/** One RequestAuthentication `jwtRules` entry. */
export interface JwtRule {
  /** `namespace/name` of the RequestAuthentication. */
  policy: string;
  /** The services (keys) it applies to; absent = all traffic of this waypoint. */
  services?: string[];
  issuer: string;
  /** Absent/empty = any audience. */
  audiences?: string[];
  /** Inline JWKS (JSON text). */
  jwks?: string;
  /** Fetched (and cached) by the waypoint when `jwks` is absent. */
  jwksUri?: string;
  /** Where the token is; default `Authorization: Bearer <token>`. */
  fromHeaders?: Array<{ name: string; prefix?: string }>;
  fromParams?: string[];
  /** Keep the token in the request forwarded upstream (default: removed). */
  forwardOriginalToken?: boolean;
  /** Put the verified payload (base64url JSON) in this request header upstream. */
  outputPayloadToHeader?: string;
}

export type LoadBalancerPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

/** DestinationRule `loadBalancer.consistentHash`: endpoints chosen on a ring by this key. */
export type HashPolicy =
  | { kind: 'header'; name: string }
  | { kind: 'cookie'; name: string; path?: string; ttlMs?: number }
  | { kind: 'source-ip' }
  | { kind: 'query'; name: string };

/** DestinationRule `connectionPool`, Envoy circuit-breaker semantics, per cluster. Absent = unlimited. */
export interface ConnectionPool {
  /** tcp.maxConnections: upstream connections of the cluster (HTTP/1.1: requests in flight). */
  maxConnections?: number;
  /** tcp.connectTimeout. */
  connectTimeoutMs?: number;
  /** http.http1MaxPendingRequests: requests waiting for a connection; beyond → 503 `UO`. */
  maxPendingRequests?: number;
  /** http.http2MaxRequests: requests in flight to the cluster; beyond → 503 `UO`. */
  maxRequests?: number;
  /** http.maxRequestsPerConnection: a connection is closed after this many requests. */
  maxRequestsPerConnection?: number;
  /** http.maxRetries: retries in flight to the cluster; beyond, a retry is not made. */
  maxRetries?: number;
  /** http.idleTimeout: idle upstream connections close after this long. */
  idleTimeoutMs?: number;
}

/** DestinationRule `outlierDetection` (Envoy outlier detection). */
export interface OutlierDetection {
  /** 5xx responses (and local failures) in a row that eject an endpoint; absent = off. */
  consecutive5xxErrors?: number;
  /** 502/503/504 (and local failures) in a row that eject; absent = off. */
  consecutiveGatewayErrors?: number;
  /** How often ejections are reviewed (Istio default 10 s). */
  intervalMs: number;
  /** Ejection time = this × times ejected (Istio default 30 s). */
  baseEjectionTimeMs: number;
  /** At most this share of the cluster's endpoints ejected at once (Istio default 10). */
  maxEjectionPercent: number;
  /** Istio minHealthPercent: below this share healthy, ejection is off (panic). Default 0. */
  minHealthPercent?: number;
}

/** localityLbSetting basics: prefer endpoints nearest the waypoint (same zone, then region). */
export interface LocalityLb {
  /** `region/zone/subzone` of the waypoint itself ('' parts when unknown). */
  local: string;
  /** Istio `failover` (from region → to region) order hints. */
  failover?: Array<{ from: string; to: string }>;
}

export interface Endpoint {
  /** The workload's IP. */
  address: string;
  /** The target port on the workload. */
  port: number;
  /** Expected SPIFFE identity (HBONE endpoints). */
  identity: string;
  /** In the mesh: reach it over HBONE (`address:15008`); else plain TCP to `address:port`. */
  hbone: boolean;
  /** Relative weight (absent = 1). */
  weight?: number;
  /** The workload uid (logs, config dumps). */
  workload?: string;
  /** `region/zone/subzone` (from the node's topology labels); absent = unknown. */
  locality?: string;
  /**
   * Reached through a waypoint (a gateway's route to a Service labelled
   * `istio.io/ingress-use-waypoint=true` that has one): the waypoint's address is the HBONE next
   * hop (`<waypoint>:15008`), `address:port` are the service VIP and port (the CONNECT
   * `:authority`), `identity` is the waypoint's. Absent = HBONE straight to `address:15008`.
   */
  waypoint?: string;
  /**
   * Who the endpoint is, for the `destination_*` metric labels and access logs (issue #9): the
   * workload's name (its Deployment's, as Istio's `workload_name`), namespace, and canonical
   * service / revision (labels `service.istio.io/canonical-name` | `app.kubernetes.io/name` | `app`
   * and `service.istio.io/canonical-revision` | `app.kubernetes.io/version` | `version`).
   * Absent = `unknown` in metrics.
   */
  meta?: EndpointMeta;
}

export interface EndpointMeta {
  workloadName: string;
  namespace: string;
  canonicalName: string;
  canonicalRevision: string;
}

export interface Cluster {
  /** `outbound|<service port>|<subset or empty>|<hostname>` */
  name: string;
  /** `namespace/hostname` of the service. */
  service: string;
  port: number;
  subset?: string;
  lb: LoadBalancerPolicy;
  /** When set, replaces `lb`: consistent hashing (ring hash) on this key. */
  hash?: HashPolicy;
  connectionPool?: ConnectionPool;
  outlierDetection?: OutlierDetection;
  localityLb?: LocalityLb;
  /** Healthy endpoints only. */
  endpoints: Endpoint[];
}

export function clusterName(hostname: string, port: number, subset?: string): string {
  return `outbound|${port}|${subset ?? ''}|${hostname}`;
}
