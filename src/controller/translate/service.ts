/**
 * Kubernetes Service → istio.workload.Service (DESIGN §6). Pure.
 *
 * Only ClusterIP services with an address are published: a headless service (`clusterIP: None`)
 * has no virtual IP for node agents to capture, and its pods are reached by their own addresses
 * (which are workloads). Only TCP ports are listed — node agents carry TCP only. A numeric
 * targetPort is copied; a named one is 0 here ("resolve per endpoint", as istiod sends it) and
 * resolved on each pod in its Workload's `services` entry (translate/workload.ts).
 */
import type { Port, Service } from '../../node-agent/state/types.js';
import type { ObjectMeta } from './enrolment.js';

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

export interface ServicePortSpec {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface ServiceObject {
  metadata: ObjectMeta;
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    selector?: Record<string, string>;
    ports?: ServicePortSpec[];
  };
}

export function serviceHostname(name: string, namespace: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN): string {
  return `${name}.${namespace}.svc.${clusterDomain}`;
}

/** The xDS resource name of a service, and the key of a Workload's `services` map. */
export function serviceKey(namespace: string, hostname: string): string {
  return `${namespace}/${hostname}`;
}

export function isTcp(port: ServicePortSpec): boolean {
  return (port.protocol ?? 'TCP') === 'TCP';
}

/** A numeric target port (a number or a digits-only string), the service port when unset, else 0. */
export function numericTargetPort(port: ServicePortSpec): number {
  const target = port.targetPort ?? port.port;
  if (typeof target === 'number') return target;
  return /^\d+$/.test(target) ? Number(target) : 0;
}

/** The virtual IPs of a ClusterIP service; empty for headless and for one not allocated yet. */
export function clusterAddresses(service: ServiceObject): string[] {
  const ips = service.spec?.clusterIPs?.length ? service.spec.clusterIPs : service.spec?.clusterIP ? [service.spec.clusterIP] : [];
  return ips.filter((ip) => ip && ip !== 'None');
}

/** The published Service, or undefined when node agents have nothing to capture for it. */
export function translateService(service: ServiceObject, clusterDomain = DEFAULT_CLUSTER_DOMAIN): Service | undefined {
  const addresses = clusterAddresses(service);
  if (addresses.length === 0) return undefined;
  const namespace = service.metadata.namespace ?? 'default';
  const name = service.metadata.name ?? '';
  const ports: Port[] = (service.spec?.ports ?? []).filter(isTcp).map((p) => ({ servicePort: p.port, targetPort: numericTargetPort(p) }));
  return { name, namespace, hostname: serviceHostname(name, namespace, clusterDomain), addresses, ports };
}
