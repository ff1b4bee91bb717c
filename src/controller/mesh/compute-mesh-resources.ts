/**
 * The whole mesh state node agents are served (DESIGN §6), computed from what the API server
 * holds. Pure and total: the same view gives the same resources, whatever the order of its lists.
 *
 * - workloads: one per listed pod (translate/workload.ts), keyed by uid; a pod holding an IP that
 *   another pod (first by namespace/name) already holds is dropped — a stale pod on a reused IP.
 *   Its locality comes from its label or its Node (translate/locality.ts). Selector-less Services
 *   take their members from EndpointSlices (translate/endpoint-slice.ts): a listed pod's address
 *   adds the Service to that pod's Workload, any other address becomes a plain endpoint Workload.
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
 * pods × (services + policies per namespace). `updateMeshResources` re-translates only the pods
 * that changed (mesh-index.ts uses it when only Pods and Nodes changed): at 2 000 pods a one-pod
 * change costs a few milliseconds instead of a full computation, and every other Workload stays
 * the same object, so the publisher neither stringifies nor encodes it again.
 */
import type { Authorization, GatewayAddress, PortList, Service } from '../../node-agent/state/types.js';
import { endpointWorkload, sliceMembership, type EndpointSliceObject, type EndpointWorkload, type SliceMembership } from '../translate/endpoint-slice.js';
import type { NodeObject } from '../translate/locality.js';
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

/** A served Workload: a listed pod's, or an endpoint of a selector-less Service no pod holds. */
export type MeshWorkload = PodWorkload | EndpointWorkload;

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
  /** Nodes: their topology labels are their pods' locality (translate/locality.ts). */
  nodes?: readonly NodeObject[];
  /** EndpointSlices: members of selector-less Services (translate/endpoint-slice.ts). */
  endpointSlices?: readonly EndpointSliceObject[];
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
  /** By workload uid (the xDS resource name): pods, and selector-less Services' other endpoints. */
  workloads: Map<string, MeshWorkload>;
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

/** What translating one pod needs beyond the pod: everything else the view gives, prepared once. */
interface PodTranslationContext {
  trustDomain: string;
  clusterDomain: string;
  rootNamespace: string;
  namespaces: Map<string, NamespaceObject>;
  servicesByNamespace: Map<string, ServiceObject[]>;
  selectorPolicies: Map<string, SelectorPolicy[]>;
  peerByNamespace: Map<string, PeerAuthenticationObject[]>;
  waypointCtx: WaypointContext;
  slices: SliceMembership;
}

interface TranslatedPod {
  workload: PodWorkload;
  bindingKey: string;
  binding: WaypointBindingRecord;
  /** The PeerAuthentication authorization the pod uses (key `namespace/name`), if any. */
  peer?: { key: string; authorization: Authorization };
}

function translatePod(pod: PodObject, ctx: PodTranslationContext, nodes: ReadonlyMap<string, NodeObject>, authorizations: ReadonlyMap<string, Authorization>): TranslatedPod {
  const ns = nsOf(pod);
  const labels = pod.metadata.labels ?? {};
  const applied = (ctx.selectorPolicies.get(ns) ?? []).filter((p) => selectorMatches(p.matchLabels, labels)).map((p) => p.key);
  const rootPeer = ctx.peerByNamespace.get(ctx.rootNamespace) ?? [];
  const candidates = ns === ctx.rootNamespace ? rootPeer : [...(ctx.peerByNamespace.get(ns) ?? []), ...rootPeer];
  const peerAuthorization = candidates.length ? peerAuthenticationAuthorization(ns, effectiveMtls(candidates, { namespace: ns, labels }, ctx.rootNamespace)) : undefined;
  let peer: TranslatedPod['peer'];
  if (peerAuthorization) {
    const key = `${ns}/${peerAuthorization.name}`;
    // An AuthorizationPolicy of the same name keeps its key (it was there first).
    peer = { key, authorization: authorizations.get(key) ?? peerAuthorization };
    applied.push(key);
  }
  let sliceServices: Record<string, PortList> | undefined;
  if (ctx.slices.byAddress.size) {
    for (const address of podAddresses(pod)) {
      const member = ctx.slices.byAddress.get(address);
      if (member) sliceServices = { ...sliceServices, ...member.services };
    }
  }
  const node = pod.spec?.nodeName ? nodes.get(pod.spec.nodeName) : undefined;
  const workload = translateWorkload(pod, {
    namespace: ctx.namespaces.get(ns),
    services: ctx.servicesByNamespace.get(ns) ?? [],
    trustDomain: ctx.trustDomain,
    clusterDomain: ctx.clusterDomain,
    authorizationPolicies: applied,
    ...(node ? { node } : {}),
    ...(sliceServices ? { sliceServices } : {}),
  });
  const name = pod.metadata.name ?? '';
  const bindingKey = waypointBindingKey('Pod', ns, name);
  let binding: WaypointBindingRecord;
  if (isWaypointPod(pod)) {
    binding = { kind: 'Pod', namespace: ns, name, binding: { reason: NEVER_FOR_WAYPOINTS }, reason: 'NotBound', detail: NEVER_FOR_WAYPOINTS, relevant: false };
  } else {
    const namespace = ctx.namespaces.get(ns);
    const bound = workloadWaypoint(pod, namespace, ctx.waypointCtx.waypoints);
    if (bound.waypoint) workload.waypoint = gatewayAddressOf(bound.waypoint);
    const relevant = isRelevant(bound, labels, namespace, [pod.spec?.serviceAccountName || 'default'], ctx.waypointCtx.perServiceAccount.get(ns));
    binding = { kind: 'Pod', namespace: ns, name, binding: bound, ...explain(bound, 'Pod', labels, namespace, ns, ctx.waypointCtx), relevant };
  }
  return { workload, bindingKey, binding, ...(peer ? { peer } : {}) };
}

/** Bookkeeping of one listed pod whose Workload is served. */
interface PodEntry {
  uid: string;
  addresses: string[];
  bindingKey: string;
  peerKey?: string;
}

/** What `updateMeshResources` needs from the computation it updates. */
interface IncrementalState {
  ctx: PodTranslationContext;
  /** Pod key (`namespace/name`) → its served Workload. */
  pods: Map<string, PodEntry>;
  /** Address → the pod key holding it. */
  addressOwner: Map<string, string>;
  /** PeerAuthentication authorizations (added for pods, not AuthorizationPolicies) → how many pods use them. */
  peerUsers: Map<string, number>;
}

export interface MeshComputation {
  resources: MeshResources;
  /**
   * Undefined when pod changes cannot be applied alone (two pods claimed one address, so which
   * one is served depends on all of them): every change then recomputes everything.
   */
  readonly incremental: IncrementalState | undefined;
}

export function computeMeshResources(view: MeshView, options: MeshOptions): MeshResources {
  return computeMesh(view, options).resources;
}

/** The whole mesh from the view (see the file comment), with what `updateMeshResources` needs. */
export function computeMesh(view: MeshView, options: MeshOptions): MeshComputation {
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
  const ctx: PodTranslationContext = {
    trustDomain: options.trustDomain,
    clusterDomain,
    rootNamespace,
    namespaces,
    servicesByNamespace: groupByNamespace(view.services),
    selectorPolicies,
    peerByNamespace: groupByNamespace(view.peerAuthentications ?? []),
    waypointCtx,
    slices: sliceMembership(view.services, view.endpointSlices ?? [], clusterDomain),
  };
  const nodes = new Map((view.nodes ?? []).map((n) => [n.metadata.name ?? '', n]));

  const workloads = new Map<string, MeshWorkload>();
  const state: IncrementalState = { ctx, pods: new Map(), addressOwner: new Map(), peerUsers: new Map() };
  let collisions = false;
  for (const pod of listedPods.sort(byNamespaceName)) {
    const addresses = podAddresses(pod);
    if (addresses.some((a) => state.addressOwner.has(a))) {
      collisions = true;
      continue;
    }
    const podKey = `${nsOf(pod)}/${pod.metadata.name ?? ''}`;
    for (const a of addresses) state.addressOwner.set(a, podKey);
    const translated = translatePod(pod, ctx, nodes, authorizations);
    const entry: PodEntry = { uid: translated.workload.uid, addresses, bindingKey: translated.bindingKey };
    if (translated.peer) {
      const { key, authorization } = translated.peer;
      if (!authorizations.has(key)) {
        authorizations.set(key, authorization);
        state.peerUsers.set(key, 0);
      }
      if (state.peerUsers.has(key)) {
        state.peerUsers.set(key, (state.peerUsers.get(key) ?? 0) + 1);
        entry.peerKey = key;
      }
    }
    state.pods.set(podKey, entry);
    waypointBindings.set(translated.bindingKey, translated.binding);
    workloads.set(translated.workload.uid, translated.workload);
  }
  // Selector-less Services' addresses no listed pod holds: plain endpoints.
  for (const [address, member] of ctx.slices.byAddress) {
    if (state.addressOwner.has(address)) continue;
    const workload = endpointWorkload(address, member, options.trustDomain);
    workloads.set(workload.uid, workload);
  }
  return { resources: { workloads, services, authorizations, waypointBindings }, incremental: collisions ? undefined : state };
}

/**
 * The computation after some pods changed (and nothing else; a Node change is a change of the
 * pods on it): `changed` maps each pod key (`namespace/name`) to the pod now, or undefined when
 * it is gone. Equal to `computeMesh` over the new view, without translating the other pods.
 * Undefined when that cannot be done alone — the caller then recomputes everything: an address
 * claimed twice, a pod address a selector-less Service's EndpointSlice lists, or a namespace with
 * a per-service-account waypoint (its Services' bindings depend on the pods). `previous` is left
 * as it was.
 */
export function updateMeshResources(previous: MeshComputation, changed: ReadonlyMap<string, PodObject | undefined>, nodes: ReadonlyMap<string, NodeObject>): MeshComputation | undefined {
  const before = previous.incremental;
  if (!before) return undefined;
  const { ctx } = before;
  const covered = (ns: string): boolean => ctx.waypointCtx.perServiceAccount.has(ns);
  const inSlices = (addresses: readonly string[]): boolean => addresses.some((a) => ctx.slices.byAddress.has(a));
  // Checks first: past them nothing can fail half-way.
  const addressOwner = new Map(before.addressOwner);
  for (const key of changed.keys()) {
    const entry = before.pods.get(key);
    if (!entry) continue;
    if (covered(key.slice(0, key.indexOf('/'))) || inSlices(entry.addresses)) return undefined;
    for (const a of entry.addresses) addressOwner.delete(a);
  }
  const added: Array<[string, PodObject, string[]]> = [];
  for (const [key, pod] of changed) {
    if (!pod || !isListedPod(pod)) continue;
    const addresses = podAddresses(pod);
    if (covered(nsOf(pod)) || inSlices(addresses) || addresses.some((a) => addressOwner.has(a))) return undefined;
    for (const a of addresses) addressOwner.set(a, key);
    added.push([key, pod, addresses]);
  }

  const { resources } = previous;
  const workloads = new Map(resources.workloads);
  const authorizations = new Map(resources.authorizations);
  const waypointBindings = new Map(resources.waypointBindings);
  const pods = new Map(before.pods);
  const peerUsers = new Map(before.peerUsers);
  for (const key of changed.keys()) {
    const entry = pods.get(key);
    if (!entry) continue;
    pods.delete(key);
    workloads.delete(entry.uid);
    waypointBindings.delete(entry.bindingKey);
    if (entry.peerKey !== undefined) peerUsers.set(entry.peerKey, (peerUsers.get(entry.peerKey) ?? 1) - 1);
  }
  for (const [key, pod, addresses] of added) {
    const translated = translatePod(pod, ctx, nodes, authorizations);
    const entry: PodEntry = { uid: translated.workload.uid, addresses, bindingKey: translated.bindingKey };
    if (translated.peer) {
      const { key: peerKey, authorization } = translated.peer;
      if (!authorizations.has(peerKey)) {
        authorizations.set(peerKey, authorization);
        peerUsers.set(peerKey, 0);
      }
      if (peerUsers.has(peerKey)) {
        peerUsers.set(peerKey, (peerUsers.get(peerKey) ?? 0) + 1);
        entry.peerKey = peerKey;
      }
    }
    pods.set(key, entry);
    waypointBindings.set(translated.bindingKey, translated.binding);
    workloads.set(translated.workload.uid, translated.workload);
  }
  for (const [key, users] of peerUsers) {
    if (users > 0) continue;
    peerUsers.delete(key);
    authorizations.delete(key);
  }
  return {
    resources: { workloads, services: resources.services, authorizations, waypointBindings },
    incremental: { ctx, pods, addressOwner, peerUsers },
  };
}

/** The resources as sorted lists (stable output for files and snapshots). */
export function sortedResources(resources: MeshResources): { workloads: MeshWorkload[]; services: Service[]; authorizations: Authorization[] } {
  const byKey = <T>(map: Map<string, T>): T[] =>
    [...map.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([, v]) => v);
  const workloads = [...resources.workloads.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  return { workloads, services: byKey(resources.services), authorizations: byKey(resources.authorizations) };
}
