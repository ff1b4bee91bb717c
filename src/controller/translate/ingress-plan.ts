/**
 * What the two ingress front ends (Gateway API: ingress-gateway-api.ts; Istio Gateway +
 * VirtualService: ingress-istio.ts) decide for one gateway deployment, and how that becomes its
 * WaypointConfig (`kind: 'gateway'`, src/l7/config.ts). Pure.
 *
 * Invariants of the assembled config:
 * - one `listeners` entry per port, sorted by port; HTTP and HTTPS ports also get their routes
 *   in the one WaypointService whose address is GATEWAY_LISTENER_ADDRESS, `defaultCluster: ''`,
 *   the last route a 404 (NO_ROUTE_NAME) — a request no route matches is Envoy's `NR`;
 * - host selection is in the routes' `authority` matches (hostRoutes): a route confined to a
 *   host pattern is named `<route>@<pattern>` so names stay unique on a port;
 * - forwarding routes without `retries` get Istio's default policy (waypoint-config.ts
 *   withRetries), as every Istio gateway route does;
 * - clusters are exactly those the routes (and l4 routes) name (ingress-clusters.ts).
 */
import type { Cluster, GatewayCertificate, GatewayListener, HttpRoute, L4Route, PortProtocol, RequestMatch, WaypointConfig, WaypointService } from '../../l7/config.js';
import { GATEWAY_LISTENER_ADDRESS } from '../../l7/config.js';
import type { KubeObjectLike, MeshView } from '../mesh/compute-mesh-resources.js';
import type { ConditionSpec } from '../status/policy-status.js';
import type { IngressDeployment, IngressLastValid } from './ingress-model.js';
import type { SecretLookup } from './ingress-secrets.js';
import { ANY_HOST, authorityFor, restrictAuthority } from './ingress-hosts.js';
import { clusterHashes, type ClusterRef, type HostRule, type RouteContext } from './route-model.js';
import { NO_ROUTE_NAME, withRetries } from './waypoint-config.js';

/** What both front ends read, and where they put status and last-valid specs. */
export interface FrontEndContext {
  view: MeshView;
  routeCtx: RouteContext;
  trustDomain: string;
  clusterDomain: string;
  /** Where the default ingress gateway runs. */
  controllerNamespace: string;
  secrets: SecretLookup;
  lastValid?: ReadonlyMap<string, IngressLastValid>;
  /** Out: conditions by status key (IngressResult.status). */
  status: Map<string, ConditionSpec[]>;
  /** Out: specs in use (IngressResult.valid). */
  valid: Map<string, IngressLastValid>;
}

/** `<Kind>/<namespace>/<name>`. */
export function objectKey(kind: string, object: KubeObjectLike): string {
  return `${kind}/${object.metadata.namespace ?? 'default'}/${object.metadata.name ?? ''}`;
}

/** Oldest first, then namespace/name (Istio's and the Gateway API's tie-break). */
export function byAge(a: KubeObjectLike, b: KubeObjectLike): number {
  return (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || `${a.metadata.namespace ?? 'default'}/${a.metadata.name ?? ''}`.localeCompare(`${b.metadata.namespace ?? 'default'}/${b.metadata.name ?? ''}`);
}

/** The last valid spec of an object with the same uid, if any. */
export function lastValidOf(ctx: FrontEndContext, key: string, object: KubeObjectLike): IngressLastValid | undefined {
  const last = ctx.lastValid?.get(key);
  return last && last.uid === object.metadata.uid ? last : undefined;
}

/** Ports a gateway pod uses itself (DESIGN §3: admin, metrics, readiness): never a listener. */
export const RESERVED_GATEWAY_PORTS: ReadonlySet<number> = new Set([15000, 15020, 15021]);

export type ListenerProtocol = GatewayListener['protocol'];

/** One port of a gateway as the front ends plan it. */
export interface PortPlan {
  port: number;
  protocol: ListenerProtocol;
  /** HTTP(S) ports: what the WaypointPort says (HTTP unless every server on it is HTTP2/GRPC). */
  httpProtocol: PortProtocol;
  /** `<Kind>/<ns>/<gateway>/<listener or server>` of everything merged here. */
  names: string[];
  certificates: GatewayCertificate[];
  /** HTTP(S): in order, authority already applied; the final 404 is added on assembly. */
  routes: HttpRoute[];
  l4Routes: L4Route[];
}

export interface DeploymentPlan {
  deployment: IngressDeployment;
  identity: string;
  /** By port. */
  ports: Map<number, PortPlan>;
  /** Every cluster a route of this deployment names. */
  clusters: Map<string, ClusterRef>;
  /** Status keys of the routing objects that use each cluster (where a note about it belongs). */
  clusterUsers: Map<string, Set<string>>;
}

export function noteClusterUse(plan: Pick<DeploymentPlan, 'clusters' | 'clusterUsers'>, ref: ClusterRef, statusKey: string): void {
  plan.clusters.set(ref.name, ref);
  const users = plan.clusterUsers.get(ref.name) ?? new Set<string>();
  users.add(statusKey);
  plan.clusterUsers.set(ref.name, users);
}

export function newPortPlan(port: number, protocol: ListenerProtocol): PortPlan {
  return { port, protocol, httpProtocol: 'HTTP', names: [], certificates: [], routes: [], l4Routes: [] };
}

/** `name@pattern` unless the pattern is `*`. */
export function hostScopedName(name: string, pattern: string): string {
  return pattern === ANY_HOST ? name : `${name}@${pattern}`;
}

/**
 * Routes confined to `pattern`: each match gets the pattern's authority (ANDed with its own);
 * matches no host can satisfy are dropped, and a route left without matches with them.
 */
export function hostRoutes(routes: readonly HttpRoute[], pattern: string): HttpRoute[] {
  const out: HttpRoute[] = [];
  for (const route of routes) {
    const declared: RequestMatch[] = route.matches.length ? route.matches : [{}];
    const matches: RequestMatch[] = [];
    for (const m of declared) {
      const { match, never } = restrictAuthority(m.authority, pattern);
      if (never) continue;
      const { authority: _old, ...rest } = m;
      matches.push(match ? { ...rest, authority: match } : rest);
    }
    if (matches.length === 0) continue;
    const matchAll = matches.length === 1 && Object.keys(matches[0] ?? {}).length === 0;
    out.push({ ...route, name: hostScopedName(route.name, pattern), matches: matchAll ? [] : matches });
  }
  return out;
}

/** The 404 that closes a host (Envoy: a virtual host none of whose routes matched answers NR). */
export function closeHost(pattern: string): HttpRoute | undefined {
  const authority = authorityFor(pattern);
  if (!authority) return undefined;
  return { name: hostScopedName(NO_ROUTE_NAME, pattern), matches: [{ authority }], action: { kind: 'direct-response', status: 404, body: 'no route matched\n' } };
}

export const NO_ROUTE: HttpRoute = { name: NO_ROUTE_NAME, matches: [], action: { kind: 'direct-response', status: 404, body: 'no route matched\n' } };

/** The `name` of a listener entry: the merged listeners, comma-joined. */
function listenerName(plan: PortPlan): string {
  return [...new Set(plan.names)].join(',');
}

/** The WaypointConfig of a planned deployment, with its materialised clusters. */
export function assembleConfig(plan: DeploymentPlan, clusters: Cluster[], destinationRules: ReadonlyMap<string, HostRule>, hostname: string): WaypointConfig {
  const hashed = (cluster: string): boolean => {
    const ref = plan.clusters.get(cluster);
    return ref !== undefined && clusterHashes(destinationRules, ref);
  };
  const ports = [...plan.ports.values()].sort((a, b) => a.port - b.port);
  const listeners: GatewayListener[] = ports.map((p) => ({
    name: listenerName(p),
    port: p.port,
    protocol: p.protocol,
    ...(p.protocol === 'HTTPS' ? { certificates: p.certificates } : {}),
    ...(p.protocol === 'TLS' || p.protocol === 'TCP' ? { l4Routes: p.l4Routes } : {}),
  }));
  const httpPorts = ports.filter((p) => p.protocol === 'HTTP' || p.protocol === 'HTTPS');
  const services: WaypointService[] = httpPorts.length
    ? [
        {
          key: `${plan.deployment.namespace}/${hostname}`,
          namespace: plan.deployment.namespace,
          hostname,
          addresses: [GATEWAY_LISTENER_ADDRESS],
          ports: httpPorts.map((p) => ({ port: p.port, protocol: p.httpProtocol, routes: [...p.routes.map((r) => withRetries(r, hashed)), NO_ROUTE], defaultCluster: '' })),
        },
      ]
    : [];
  return {
    namespace: plan.deployment.namespace,
    name: plan.deployment.name,
    identity: plan.identity,
    kind: 'gateway',
    listeners,
    services,
    clusters,
  };
}
