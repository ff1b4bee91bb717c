/**
 * Members of Services WITHOUT a selector, from their EndpointSlices (DESIGN §6). Pure.
 *
 * A Service with a selector gets its members from the selector (translate/workload.ts says why);
 * its EndpointSlices are ignored. A ClusterIP Service without one is managed by hand (or by
 * another controller): its members are the addresses of the EndpointSlices labelled
 * `kubernetes.io/service-name: <service>` in its namespace.
 * - Ports: a Service port takes the slice port of the same name (both unnamed for a one-port
 *   Service), TCP only; the slice port's number is the target port. A slice without that port
 *   gives its addresses no endpoint for it.
 * - FQDN slices are ignored (node agents balance to addresses, never to names).
 * - An address held by a listed pod makes THAT pod's Workload a member (`podMembers`); it stays
 *   whatever the pod is (HBONE when enrolled), and its health is its own Ready condition.
 * - Any other address is no pod the mesh knows: it becomes an endpoint Workload of its own
 *   (`endpointWorkloads`), as istiod does for selector-less Services — tunnel protocol NONE (node
 *   agents send it plain TCP), no node, no service account, HEALTHY unless every slice listing it
 *   says `ready: false` (a missing `ready` means ready, as the API defines). One Workload per
 *   address: a second namespace listing the same address is left out (addresses must be unique;
 *   the first namespace in name order keeps it). A pod that is not listed (not Running, host
 *   network) does not count as holding its address: such an address is a plain endpoint.
 */
import type { PortList, Workload } from '../../node-agent/state/types.js';
import type { ObjectMeta } from './enrolment.js';
import { clusterAddresses, DEFAULT_CLUSTER_DOMAIN, isTcp, serviceHostname, serviceKey, type ServiceObject } from './service.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** The uid prefix of endpoint Workloads (as istiod names them, without its cluster id). */
export const ENDPOINT_WORKLOAD_UID_PREFIX = 'discovery.k8s.io/EndpointSlice';

export interface EndpointSliceObject {
  metadata: ObjectMeta;
  addressType?: string;
  endpoints?: Array<{
    addresses?: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
  }>;
  ports?: Array<{ name?: string | null; port?: number | null; protocol?: string | null }> | null;
}

/** A Workload for an address no listed pod holds. */
export type EndpointWorkload = Workload & Required<Pick<Workload, 'trustDomain' | 'status'>> & { workloadType?: undefined; node?: undefined };

/** Selector-less ClusterIP Services: the only ones whose EndpointSlices count. */
export function usesEndpointSlices(service: ServiceObject): boolean {
  const selector = service.spec?.selector;
  return (!selector || Object.keys(selector).length === 0) && clusterAddresses(service).length > 0;
}

/** `namespace/name` of the Service a slice belongs to, or undefined (not a Service's slice). */
export function sliceServiceKey(slice: EndpointSliceObject): string | undefined {
  const name = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return name ? `${slice.metadata.namespace ?? 'default'}/${name}` : undefined;
}

interface AddressMembership {
  namespace: string;
  /** Service names, for the endpoint Workload's name. */
  serviceNames: Set<string>;
  services: Record<string, PortList>;
  ready: boolean;
}

export interface SliceMembership {
  /** address → the selector-less Services it backs, with ports resolved (first namespace in name order wins the address). */
  byAddress: Map<string, AddressMembership>;
}

const byName = (a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number =>
  (a.metadata.namespace ?? 'default').localeCompare(b.metadata.namespace ?? 'default') || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');

/** Members of every selector-less Service, by address. */
export function sliceMembership(services: readonly ServiceObject[], slices: readonly EndpointSliceObject[], clusterDomain = DEFAULT_CLUSTER_DOMAIN): SliceMembership {
  const byAddress = new Map<string, AddressMembership>();
  if (slices.length === 0) return { byAddress };
  const selectorless = new Map<string, ServiceObject>();
  for (const s of services) if (usesEndpointSlices(s)) selectorless.set(`${s.metadata.namespace ?? 'default'}/${s.metadata.name ?? ''}`, s);
  if (selectorless.size === 0) return { byAddress };
  for (const slice of [...slices].sort(byName)) {
    if (slice.addressType === 'FQDN') continue;
    const key = sliceServiceKey(slice);
    const service = key === undefined ? undefined : selectorless.get(key);
    if (!service) continue;
    const namespace = service.metadata.namespace ?? 'default';
    const name = service.metadata.name ?? '';
    const hostKey = serviceKey(namespace, serviceHostname(name, namespace, clusterDomain));
    const ports = (service.spec?.ports ?? []).filter(isTcp).flatMap((p) => {
      const match = (slice.ports ?? []).find((sp) => (sp.name ?? '') === (p.name ?? '') && (sp.protocol ?? 'TCP') === 'TCP' && (sp.port ?? 0) > 0);
      return match ? [{ servicePort: p.port, targetPort: match.port as number }] : [];
    });
    for (const endpoint of slice.endpoints ?? []) {
      const ready = endpoint.conditions?.ready !== false;
      for (const address of endpoint.addresses ?? []) {
        let entry = byAddress.get(address);
        if (entry && entry.namespace !== namespace) continue;
        if (!entry) {
          entry = { namespace, serviceNames: new Set(), services: {}, ready: false };
          byAddress.set(address, entry);
        }
        entry.serviceNames.add(name);
        entry.ready ||= ready;
        const list = (entry.services[hostKey] ??= { ports: [] });
        for (const p of ports) if (!list.ports.some((q) => q.servicePort === p.servicePort)) list.ports.push(p);
      }
    }
  }
  for (const entry of byAddress.values()) for (const list of Object.values(entry.services)) list.ports.sort((a, b) => a.servicePort - b.servicePort);
  return { byAddress };
}

/** The endpoint Workload of an address no listed pod holds. */
export function endpointWorkload(address: string, membership: AddressMembership, trustDomain: string): EndpointWorkload {
  const name = [...membership.serviceNames].sort()[0] ?? address;
  return {
    uid: `${ENDPOINT_WORKLOAD_UID_PREFIX}/${membership.namespace}/${address}`,
    name,
    namespace: membership.namespace,
    addresses: [address],
    tunnelProtocol: 'NONE',
    trustDomain,
    serviceAccount: '',
    workloadName: name,
    status: membership.ready ? 'HEALTHY' : 'UNHEALTHY',
    services: Object.fromEntries(Object.keys(membership.services).sort().map((k) => [k, membership.services[k] as PortList])),
  };
}
