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
import type { Authorization, Service } from '../../node-agent/state/types.js';
import { DEFAULT_ROOT_NAMESPACE, translateAuthorizationPolicy, type AuthorizationPolicyObject } from '../translate/authorization-policy.js';
import type { NamespaceObject, PodObject } from '../translate/enrolment.js';
import { effectiveMtls, peerAuthenticationAuthorization, type PeerAuthenticationObject } from '../translate/peer-authentication.js';
import { DEFAULT_CLUSTER_DOMAIN, serviceKey, translateService, type ServiceObject } from '../translate/service.js';
import { isListedPod, podAddresses, selectorMatches, translateWorkload, type PodWorkload } from '../translate/workload.js';

export const MESH_ROOT_NAMESPACE = DEFAULT_ROOT_NAMESPACE;

export interface MeshView {
  namespaces: readonly NamespaceObject[];
  pods: readonly PodObject[];
  services: readonly ServiceObject[];
  authorizationPolicies?: readonly AuthorizationPolicyObject[];
  peerAuthentications?: readonly PeerAuthenticationObject[];
  /** gateway.networking.k8s.io Gateways (waypoints among them). */
  gateways?: readonly KubeObjectLike[];
  /** Routing inputs of waypoints: Gateway API routes and Istio networking resources. */
  httpRoutes?: readonly KubeObjectLike[];
  grpcRoutes?: readonly KubeObjectLike[];
  virtualServices?: readonly KubeObjectLike[];
  destinationRules?: readonly KubeObjectLike[];
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

export function computeMeshResources(view: MeshView, options: MeshOptions): MeshResources {
  const clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const rootNamespace = options.rootNamespace ?? MESH_ROOT_NAMESPACE;
  const namespaces = new Map(view.namespaces.map((n) => [n.metadata.name ?? '', n]));

  const services = new Map<string, Service>();
  for (const s of [...view.services].sort(byNamespaceName)) {
    const service = translateService(s, clusterDomain);
    if (service) services.set(serviceKey(service.namespace, service.hostname), service);
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
  for (const pod of view.pods.filter(isListedPod).sort(byNamespaceName)) {
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
    workloads.set(workload.uid, workload);
  }
  return { workloads, services, authorizations };
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
