/**
 * The whole mesh state node agents are served (DESIGN §6), computed from what the API server
 * holds. Pure and total: the same view gives the same resources, whatever the order of its lists.
 *
 * - workloads: one per listed pod (translate/workload.ts), keyed by uid; a pod holding an IP that
 *   another pod (first by namespace/name) already holds is dropped — a stale pod on a reused IP.
 * - services: ClusterIP services (translate/service.ts), keyed `namespace/hostname`.
 * - authorizations: every AuthorizationPolicy node agents enforce, keyed `namespace/name`, plus
 *   one DENY-without-principal policy per effective PeerAuthentication mode per namespace; the
 *   WORKLOAD_SELECTOR ones are listed on the workloads they select (`authorizationPolicies`).
 *
 * Mesh-wide policy lives in the root namespace, `amesh-system` by default (the namespace amesh is
 * installed in, as `istio-system` is Istio's); configurable for clusters that keep Istio's.
 *
 * Cost: services and selector policies are indexed by namespace, PeerAuthentications by
 * namespace, so a pod only meets the objects of its own namespace (and the root's): linear in
 * pods × (services + policies per namespace).
 */
import type { Authorization, GatewayAddress, Service } from '../../node-agent/state/types.js';
import { DEFAULT_ROOT_NAMESPACE, translateAuthorizationPolicy, type AuthorizationPolicyObject } from '../translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../translate/enrolment.js';
import { effectiveMtls, peerAuthenticationAuthorization, type PeerAuthenticationObject } from '../translate/peer-authentication.js';
import type { RequestAuthenticationObject } from '../translate/request-authentication.js';
import { DEFAULT_CLUSTER_DOMAIN, serviceKey, translateService, type ServiceObject } from '../translate/service.js';
import { isListedPod, podAddresses, selectorMatches, translateWorkload, type PodWorkload } from '../translate/workload.js';
import {
  isWaypointGateway,
  isWaypointPod,
  listWaypoints,
  serviceWaypoint,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
  WAYPOINT_HBONE_PORT,
  workloadWaypoint,
  type Binding,
  type GatewayObject,
  type WaypointInfo,
} from '../translate/waypoint-binding.js';
import { waypointAcceptance } from '../waypoint/acceptance.js';

export const MESH_ROOT_NAMESPACE = DEFAULT_ROOT_NAMESPACE;

export interface MeshView {
  namespaces: readonly NamespaceObject[];
  pods: readonly PodObject[];
  services: readonly ServiceObject[];
  authorizationPolicies?: readonly AuthorizationPolicyObject[];
  peerAuthentications?: readonly PeerAuthenticationObject[];
  /** JWT rules; waypoints enforce them (translate/waypoint-policies.ts), node agents do not. */
  requestAuthentications?: readonly RequestAuthenticationObject[];
  /** gateway.networking.k8s.io Gateways (waypoints among them). */
  gateways?: readonly KubeObjectLike[];
  /** Routing inputs of waypoints: Gateway API routes and Istio networking resources. */
  httpRoutes?: readonly KubeObjectLike[];
  grpcRoutes?: readonly KubeObjectLike[];
  /** Gateway API L4 routes (ingress TLS passthrough / TCP listeners; translate/ingress-l4-routes.ts). */
  tlsRoutes?: readonly KubeObjectLike[];
  tcpRoutes?: readonly KubeObjectLike[];
  virtualServices?: readonly KubeObjectLike[];
  destinationRules?: readonly KubeObjectLike[];
  /** networking.istio.io Gateways (ingress servers; translate/ingress-config.ts). */
  istioGateways?: readonly KubeObjectLike[];
  /** Secrets (ingress TLS certificates). Their data must never be logged. */
  secrets?: readonly KubeObjectLike[];
  /** telemetry.istio.io Telemetries (translate/telemetry.ts). */
  telemetries?: readonly KubeObjectLike[];
  /** The mesh config: ConfigMap `istio` of the root namespace (at most one; translate/mesh-config.ts). */
  meshConfigMaps?: readonly KubeObjectLike[];
}

/** Any Kubernetes object as read from the API (plain JSON). */
export interface KubeObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; namespace?: string; uid?: string; generation?: number; resourceVersion?: string; creationTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: unknown;
  status?: unknown;
}

export interface MeshOptions {
  trustDomain: string;
  clusterDomain?: string;
  /** Where mesh-wide PeerAuthentication / AuthorizationPolicy live (default `amesh-system`). */
  rootNamespace?: string;
}

export interface MeshResources {
  /** By workload uid (the xDS resource name). */
  workloads: Map<string, PodWorkload>;
  /** By `namespace/hostname`. */
  services: Map<string, Service>;
  /** By `namespace/name`. */
  authorizations: Map<string, Authorization>;
  /**
   * Why each Service and listed Pod has (or has not) a waypoint, keyed by
   * `waypointBindingKey(kind, namespace, name)` — the input of the waypoint status writer.
   */
  waypointBindings: Map<string, WaypointBindingRecord>;
}

/** Condition reasons of `istio.io/WaypointBound` (and the pod annotation's). */
export type WaypointBindingReason = 'Bound' | 'NotBound' | 'WaypointNotFound' | 'WaypointWrongKind' | 'WaypointNotAccepted';

export interface WaypointBindingRecord {
  kind: 'Service' | 'Pod';
  namespace: string;
  name: string;
  binding: Binding;
  reason: WaypointBindingReason;
  /** What the condition message says after "bound to waypoint ns/name" or as the reason why not. */
  detail: string;
  /**
   * Whether status should explain it: the object or its namespace carries `istio.io/use-waypoint`,
   * or a per-service-account waypoint of its namespace covers it. Others are left untouched.
   */
  relevant: boolean;
}

export function waypointBindingKey(kind: 'Service' | 'Pod', namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** The convention of node-agent/state/types.ts: the Service VIP when known, else its hostname. */
export function gatewayAddressOf(waypoint: WaypointInfo): GatewayAddress {
  return waypoint.address
    ? { address: { address: waypoint.address }, hboneMtlsPort: WAYPOINT_HBONE_PORT }
    : { hostname: { namespace: waypoint.ref.namespace, hostname: waypoint.hostname }, hboneMtlsPort: WAYPOINT_HBONE_PORT };
}

const nsOf = (o: { metadata: { namespace?: string } }): string => o.metadata.namespace ?? 'default';
const byNamespaceName = (a: { metadata: { namespace?: string; name?: string } }, b: { metadata: { namespace?: string; name?: string } }): number =>
  nsOf(a).localeCompare(nsOf(b)) || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');

function groupByNamespace<T extends { metadata: { namespace?: string } }>(items: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const ns = nsOf(item);
    const list = out.get(ns);
    if (list) list.push(item);
    else out.set(ns, [item]);
  }
  return out;
}

interface SelectorPolicy {
  matchLabels: Record<string, string>;
  key: string;
}

// ---- waypoint binding (DESIGN §7; rules in translate/waypoint-binding.ts) ----

interface WaypointContext {
  /** Accepted waypoints (a binding to a rejected one is no binding: it is not deployed). */
  waypoints: WaypointInfo[];
  /** `namespace/name` → why a waypoint Gateway is not accepted. */
  rejected: Map<string, string>;
  /** `namespace/name` of every waypoint Gateway: their own Services never use a waypoint. */
  gateways: Set<string>;
  /** namespace → service accounts that a per-service-account waypoint there covers. */
  perServiceAccount: Map<string, Set<string>>;
}

function waypointContext(view: MeshView, options: { trustDomain: string; clusterDomain: string }): WaypointContext {
  const all = (view.gateways ?? []).filter((g) => isWaypointGateway(g as GatewayObject)) as GatewayObject[];
  const rejected = new Map<string, string>();
  const accepted: GatewayObject[] = [];
  for (const g of all) {
    const verdict = waypointAcceptance(g);
    if (verdict.accepted) accepted.push(g);
    else rejected.set(`${nsOf(g)}/${g.metadata.name ?? ''}`, verdict.message);
  }
  const waypoints = listWaypoints(accepted, view.services, options);
  const perServiceAccount = new Map<string, Set<string>>();
  for (const w of waypoints) {
    if (w.forServiceAccount === undefined) continue;
    const set = perServiceAccount.get(w.ref.namespace) ?? new Set<string>();
    set.add(w.forServiceAccount);
    perServiceAccount.set(w.ref.namespace, set);
  }
  return { waypoints, rejected, gateways: new Set(all.map((g) => `${nsOf(g)}/${g.metadata.name ?? ''}`)), perServiceAccount };
}

const NEVER_FOR_WAYPOINTS = "a waypoint's own pods and Service never use a waypoint";

/** The status reason and text of a binding (which label said what, and what it found). */
function explain(binding: Binding, kind: 'Service' | 'Pod', labels: Record<string, string> | undefined, namespace: NamespaceObject | undefined, objectNamespace: string, ctx: WaypointContext): { reason: WaypointBindingReason; detail: string } {
  if (binding.waypoint) {
    const detail =
      binding.via === 'service-account'
        ? `per-service-account waypoint for ${binding.waypoint.forServiceAccount ?? '?'}, amesh.io/for-service-account`
        : `${USE_WAYPOINT_LABEL} on the ${binding.via === 'object' ? kind.toLowerCase() : 'namespace'}`;
    return { reason: 'Bound', detail };
  }
  if (binding.via === undefined) return { reason: 'NotBound', detail: binding.reason };
  const source = binding.via === 'object' ? labels : namespace?.metadata.labels;
  const name = source?.[USE_WAYPOINT_LABEL]?.trim() ?? '';
  if (name === 'none') return { reason: 'NotBound', detail: binding.reason };
  const ref = `${source?.[USE_WAYPOINT_NAMESPACE_LABEL]?.trim() || objectNamespace}/${name}`;
  const rejected = ctx.rejected.get(ref);
  if (rejected !== undefined) return { reason: 'WaypointNotAccepted', detail: `waypoint ${ref} (${USE_WAYPOINT_LABEL} on the ${binding.via === 'object' ? kind.toLowerCase() : 'namespace'}) is not accepted: ${rejected}` };
  const exists = ctx.waypoints.some((w) => `${w.ref.namespace}/${w.ref.name}` === ref);
  return { reason: exists ? 'WaypointWrongKind' : 'WaypointNotFound', detail: binding.reason };
}

function isRelevant(binding: Binding, labels: Record<string, string> | undefined, namespace: NamespaceObject | undefined, serviceAccounts: readonly string[], covered: Set<string> | undefined): boolean {
  if (binding.waypoint?.forServiceAccount !== undefined && binding.via === 'service-account') return true;
  if (labels?.[USE_WAYPOINT_LABEL] !== undefined || namespace?.metadata.labels?.[USE_WAYPOINT_LABEL] !== undefined) return true;
  return covered !== undefined && serviceAccounts.some((sa) => covered.has(sa));
}

export function computeMeshResources(view: MeshView, options: MeshOptions): MeshResources {
  const clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const rootNamespace = options.rootNamespace ?? MESH_ROOT_NAMESPACE;
  const namespaces = new Map(view.namespaces.map((n) => [n.metadata.name ?? '', n]));
  const waypointCtx = waypointContext(view, { trustDomain: options.trustDomain, clusterDomain });
  const waypointBindings = new Map<string, WaypointBindingRecord>();
  const listedPods = view.pods.filter(isListedPod);
  const listedByNamespace = waypointCtx.perServiceAccount.size ? groupByNamespace(listedPods) : new Map<string, PodObject[]>();

  const services = new Map<string, Service>();
  for (const s of [...view.services].sort(byNamespaceName)) {
    const service = translateService(s, clusterDomain);
    if (!service) continue;
    services.set(serviceKey(service.namespace, service.hostname), service);
    const ns = nsOf(s);
    const name = s.metadata.name ?? '';
    const namespace = namespaces.get(ns);
    const record = (binding: Binding, explained: { reason: WaypointBindingReason; detail: string }, relevant: boolean): void => {
      waypointBindings.set(waypointBindingKey('Service', ns, name), { kind: 'Service', namespace: ns, name, binding, ...explained, relevant });
    };
    if (waypointCtx.gateways.has(`${ns}/${name}`)) {
      record({ reason: NEVER_FOR_WAYPOINTS }, { reason: 'NotBound', detail: NEVER_FOR_WAYPOINTS }, false);
      continue;
    }
    // Per-service-account waypoints need the accounts of the selected pods; only then are they looked up.
    const covered = waypointCtx.perServiceAccount.get(ns);
    const endpointAccounts = covered
      ? [...new Set((listedByNamespace.get(ns) ?? []).filter((p) => !isWaypointPod(p) && selectorMatches(s.spec?.selector, p.metadata.labels)).map((p) => p.spec?.serviceAccountName || 'default'))]
      : [];
    const binding = serviceWaypoint(s, namespace, waypointCtx.waypoints, endpointAccounts);
    if (binding.waypoint) service.waypoint = gatewayAddressOf(binding.waypoint);
    record(binding, explain(binding, 'Service', s.metadata.labels, namespace, ns, waypointCtx), isRelevant(binding, s.metadata.labels, namespace, endpointAccounts, covered));
  }
  const servicesByNamespace = groupByNamespace(view.services);

  const authorizations = new Map<string, Authorization>();
  const selectorPolicies = new Map<string, SelectorPolicy[]>();
  for (const ap of view.authorizationPolicies ?? []) {
    const { authorization } = translateAuthorizationPolicy(ap, rootNamespace);
    if (!authorization) continue;
    const key = `${authorization.namespace}/${authorization.name}`;
    authorizations.set(key, authorization);
    if (authorization.scope !== 'WORKLOAD_SELECTOR') continue;
    const list = selectorPolicies.get(authorization.namespace) ?? [];
    list.push({ matchLabels: ap.spec?.selector?.matchLabels ?? {}, key });
    selectorPolicies.set(authorization.namespace, list);
  }
  const peerByNamespace = groupByNamespace(view.peerAuthentications ?? []);
  const rootPeer = peerByNamespace.get(rootNamespace) ?? [];

  const workloads = new Map<string, PodWorkload>();
  const seenAddresses = new Set<string>();
  for (const pod of listedPods.sort(byNamespaceName)) {
    const addresses = podAddresses(pod);
    if (addresses.some((a) => seenAddresses.has(a))) continue;
    for (const a of addresses) seenAddresses.add(a);
    const ns = nsOf(pod);
    const labels = pod.metadata.labels ?? {};
    const applied = (selectorPolicies.get(ns) ?? []).filter((p) => selectorMatches(p.matchLabels, labels)).map((p) => p.key);
    const candidates = ns === rootNamespace ? rootPeer : [...(peerByNamespace.get(ns) ?? []), ...rootPeer];
    const peer = candidates.length ? peerAuthenticationAuthorization(ns, effectiveMtls(candidates, { namespace: ns, labels }, rootNamespace)) : undefined;
    if (peer) {
      const key = `${ns}/${peer.name}`;
      if (!authorizations.has(key)) authorizations.set(key, peer);
      applied.push(key);
    }
    const workload = translateWorkload(pod, {
      namespace: namespaces.get(ns),
      services: servicesByNamespace.get(ns) ?? [],
      trustDomain: options.trustDomain,
      clusterDomain,
      authorizationPolicies: applied,
    });
    const podKey = waypointBindingKey('Pod', ns, pod.metadata.name ?? '');
    if (isWaypointPod(pod)) {
      waypointBindings.set(podKey, { kind: 'Pod', namespace: ns, name: pod.metadata.name ?? '', binding: { reason: NEVER_FOR_WAYPOINTS }, reason: 'NotBound', detail: NEVER_FOR_WAYPOINTS, relevant: false });
    } else {
      const namespace = namespaces.get(ns);
      const binding = workloadWaypoint(pod, namespace, waypointCtx.waypoints);
      if (binding.waypoint) workload.waypoint = gatewayAddressOf(binding.waypoint);
      const relevant = isRelevant(binding, labels, namespace, [pod.spec?.serviceAccountName || 'default'], waypointCtx.perServiceAccount.get(ns));
      waypointBindings.set(podKey, { kind: 'Pod', namespace: ns, name: pod.metadata.name ?? '', binding, ...explain(binding, 'Pod', labels, namespace, ns, waypointCtx), relevant });
    }
    workloads.set(workload.uid, workload);
  }
  return { workloads, services, authorizations, waypointBindings };
}

/** The resources as sorted lists (stable output for files and snapshots). */
export function sortedResources(resources: MeshResources): { workloads: PodWorkload[]; services: Service[]; authorizations: Authorization[] } {
  const byKey = <T>(map: Map<string, T>): T[] =>
    [...map.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([, v]) => v);
  const workloads = [...resources.workloads.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  return { workloads, services: byKey(resources.services), authorizations: byKey(resources.authorizations) };
}
