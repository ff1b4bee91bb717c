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

export const WAYPOINT_CONFIG_TYPE_URL = 'type.googleapis.com/amesh.l7.v1.WaypointConfig';

export interface WaypointConfig {
  /** The waypoint Gateway. */
  namespace: string;
  name: string;
  /** The SPIFFE identity the waypoint serves as (its ServiceAccount). */
  identity: string;
  services: WaypointService[];
  clusters: Cluster[];
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
  /** Whole-request timeout; absent = none. */
  timeoutMs?: number;
}

export type LoadBalancerPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

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
}

export interface Cluster {
  /** `outbound|<service port>|<subset or empty>|<hostname>` */
  name: string;
  /** `namespace/hostname` of the service. */
  service: string;
  port: number;
  subset?: string;
  lb: LoadBalancerPolicy;
  /** Healthy endpoints only. */
  endpoints: Endpoint[];
}

export function clusterName(hostname: string, port: number, subset?: string): string {
  return `outbound|${port}|${subset ?? ''}|${hostname}`;
}
