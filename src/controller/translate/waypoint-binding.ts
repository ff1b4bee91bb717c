/**
 * Which waypoint handles traffic to a Service or a Pod, and why (DESIGN §7) — pure.
 *
 * Waypoints are Gateway API Gateways with class `istio-waypoint` (or our `amesh-waypoint`).
 * A waypoint serves `istio.io/waypoint-for` = `service` (default), `workload`, `all` or `none`.
 * Binding, most specific first:
 *   1. the object's own `istio.io/use-waypoint: <name>` label (`none` opts it out), with
 *      `istio.io/use-waypoint-namespace` naming another namespace (default: the object's);
 *   2. our extension: a waypoint Gateway annotated `amesh.io/for-service-account: <sa>` binds
 *      the workloads of that service account in its namespace, and the services whose selected
 *      pods all run as it;
 *   3. the namespace's `istio.io/use-waypoint` label (`none` = no waypoint).
 * A binding to a waypoint that does not exist, or that does not serve this kind of traffic, is
 * no binding — with a reason the controller writes on the object ("waypoint demo/w handles
 * workloads only").
 */
import type { NamespaceObject, PodObject } from './enrolment.js';
import type { ServiceObject } from './service.js';

export const WAYPOINT_CLASSES: ReadonlySet<string> = new Set(['istio-waypoint', 'amesh-waypoint']);
export const WAYPOINT_FOR_LABEL = 'istio.io/waypoint-for';
export const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint';
export const USE_WAYPOINT_NAMESPACE_LABEL = 'istio.io/use-waypoint-namespace';
export const FOR_SERVICE_ACCOUNT_ANNOTATION = 'amesh.io/for-service-account';
/** The HBONE port every waypoint listens on. */
export const WAYPOINT_HBONE_PORT = 15008;

export type WaypointFor = 'service' | 'workload' | 'all' | 'none';

export interface GatewayObject {
  metadata: { name?: string; namespace?: string; uid?: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { gatewayClassName?: string; listeners?: Array<{ name?: string; port?: number; protocol?: string }> };
  status?: { addresses?: Array<{ type?: string; value?: string }> };
}

export interface WaypointRef {
  namespace: string;
  name: string;
}

export interface WaypointInfo {
  ref: WaypointRef;
  for: WaypointFor;
  /** Set for a per-service-account waypoint. */
  forServiceAccount?: string;
  /** `<name>.<namespace>.svc.<domain>`: the waypoint's own Service. */
  hostname: string;
  /** The waypoint Service's ClusterIP, once it has one. */
  address?: string;
  /** The SPIFFE identity the waypoint runs as (ServiceAccount = the Gateway's name). */
  identity: string;
}

export type Binding = { waypoint: WaypointInfo; via: 'object' | 'service-account' | 'namespace' } | { waypoint?: undefined; reason: string; via?: 'object' | 'namespace' };

export function isWaypointGateway(gateway: GatewayObject): boolean {
  return WAYPOINT_CLASSES.has(gateway.spec?.gatewayClassName ?? '');
}

export function waypointFor(gateway: GatewayObject): WaypointFor {
  const value = gateway.metadata.labels?.[WAYPOINT_FOR_LABEL];
  return value === 'workload' || value === 'all' || value === 'none' ? value : 'service';
}

/**
 * Every waypoint Gateway, with the ClusterIP of its Service (same name and namespace) when known.
 * Sorted by namespace/name, so the result is deterministic.
 */
export function listWaypoints(
  gateways: readonly GatewayObject[],
  services: readonly ServiceObject[],
  options: { trustDomain: string; clusterDomain?: string },
): WaypointInfo[] {
  const domain = options.clusterDomain ?? 'cluster.local';
  const vip = new Map<string, string>();
  for (const s of services) {
    const ip = s.spec?.clusterIP;
    if (ip && ip !== 'None') vip.set(`${s.metadata.namespace ?? 'default'}/${s.metadata.name ?? ''}`, ip);
  }
  return gateways
    .filter(isWaypointGateway)
    .map((g): WaypointInfo => {
      const namespace = g.metadata.namespace ?? 'default';
      const name = g.metadata.name ?? '';
      const sa = g.metadata.annotations?.[FOR_SERVICE_ACCOUNT_ANNOTATION]?.trim();
      const address = vip.get(`${namespace}/${name}`);
      return {
        ref: { namespace, name },
        for: waypointFor(g),
        ...(sa ? { forServiceAccount: sa } : {}),
        hostname: `${name}.${namespace}.svc.${domain}`,
        ...(address ? { address } : {}),
        identity: `spiffe://${options.trustDomain}/ns/${namespace}/sa/${name}`,
      };
    })
    .sort((a, b) => `${a.ref.namespace}/${a.ref.name}`.localeCompare(`${b.ref.namespace}/${b.ref.name}`));
}

type Kind = 'service' | 'workload';

function serves(waypoint: WaypointInfo, kind: Kind): boolean {
  return waypoint.for === 'all' || waypoint.for === kind;
}

function refusal(waypoint: WaypointInfo, kind: Kind): string {
  const name = `${waypoint.ref.namespace}/${waypoint.ref.name}`;
  if (waypoint.for === 'none') return `waypoint ${name} is istio.io/waypoint-for=none`;
  return `waypoint ${name} handles ${waypoint.for === 'service' ? 'services' : 'workloads'} only (istio.io/waypoint-for=${waypoint.for}); ${kind} traffic is not sent to it`;
}

/** Resolve a use-waypoint label on `labels` (of an object in `namespace`). */
function fromLabels(
  labels: Record<string, string> | undefined,
  namespace: string,
  waypoints: readonly WaypointInfo[],
  kind: Kind,
  via: 'object' | 'namespace',
): Binding | undefined {
  const name = labels?.[USE_WAYPOINT_LABEL]?.trim();
  if (!name) return undefined;
  if (name === 'none') return { reason: `${via === 'object' ? 'the object' : `namespace ${namespace}`} opts out (${USE_WAYPOINT_LABEL}=none)`, via };
  const ns = labels?.[USE_WAYPOINT_NAMESPACE_LABEL]?.trim() || namespace;
  const waypoint = waypoints.find((w) => w.ref.namespace === ns && w.ref.name === name);
  if (!waypoint) return { reason: `waypoint ${ns}/${name} (${USE_WAYPOINT_LABEL} on the ${via}) does not exist`, via };
  if (!serves(waypoint, kind)) return { reason: refusal(waypoint, kind), via };
  return { waypoint, via };
}

function perServiceAccount(namespace: string, serviceAccounts: readonly string[], waypoints: readonly WaypointInfo[], kind: Kind): WaypointInfo | undefined {
  if (serviceAccounts.length === 0) return undefined;
  return waypoints.find((w) => w.ref.namespace === namespace && w.forServiceAccount !== undefined && serviceAccounts.every((sa) => sa === w.forServiceAccount) && serves(w, kind === 'service' ? 'service' : 'workload'));
}

const NO_WAYPOINT = 'no istio.io/use-waypoint label on the object or its namespace';

/**
 * The waypoint for service-addressed traffic to `service`. `endpointServiceAccounts` are the
 * service accounts of the pods it selects (for per-service-account waypoints).
 */
export function serviceWaypoint(
  service: ServiceObject,
  namespace: NamespaceObject | undefined,
  waypoints: readonly WaypointInfo[],
  endpointServiceAccounts: readonly string[] = [],
): Binding {
  const ns = service.metadata.namespace ?? 'default';
  const own = fromLabels(service.metadata.labels, ns, waypoints, 'service', 'object');
  if (own) return own;
  const bySa = perServiceAccount(ns, [...new Set(endpointServiceAccounts)], waypoints, 'service');
  if (bySa) return { waypoint: bySa, via: 'service-account' };
  return fromLabels(namespace?.metadata.labels, ns, waypoints, 'service', 'namespace') ?? { reason: NO_WAYPOINT };
}

/** The waypoint for workload-addressed traffic to `pod`. */
export function workloadWaypoint(pod: PodObject, namespace: NamespaceObject | undefined, waypoints: readonly WaypointInfo[]): Binding {
  const ns = pod.metadata.namespace ?? 'default';
  const own = fromLabels(pod.metadata.labels, ns, waypoints, 'workload', 'object');
  if (own) return own;
  const sa = pod.spec?.serviceAccountName || 'default';
  const bySa = perServiceAccount(ns, [sa], waypoints, 'workload');
  if (bySa) return { waypoint: bySa, via: 'service-account' };
  return fromLabels(namespace?.metadata.labels, ns, waypoints, 'workload', 'namespace') ?? { reason: NO_WAYPOINT };
}

/** A waypoint's pods never go through a waypoint themselves (that would loop). */
export function isWaypointPod(pod: PodObject): boolean {
  return pod.metadata.labels?.['gateway.networking.k8s.io/gateway-name'] !== undefined && pod.metadata.labels?.['istio.io/dataplane-mode'] === 'none';
}
