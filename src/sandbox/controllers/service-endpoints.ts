/**
 * What both endpoint controllers share: which pods back a Service and on which ports.
 *
 * - A Service selects pods through its `spec.selector` map; no selector (or ExternalName)
 *   means user-managed endpoints, which the controllers leave alone.
 * - A service port's `targetPort` is a number (used as is), a name (looked up among the pod's
 *   container ports with the same protocol; a pod without it is left out of that port, as
 *   `podutil.FindPort` does), or absent (the service port).
 * - Pods are grouped by their resolved port list: pods resolving a named port differently end
 *   up in different subsets / slices, exactly like Kubernetes' repacking.
 */
import type { ClusterStore, WatchEvent } from '../apiserver/types.js';
import { API, type EndpointPort, type Pod, type Service } from './kube-types.js';
import { matchesServiceSelector } from './label-selector.js';
import { objectKey } from './owner-references.js';
import { canonicalJson } from './template-hash.js';

export function isSelectorService(service: Service): boolean {
  return service.spec?.type !== 'ExternalName' && Object.keys(service.spec?.selector ?? {}).length > 0;
}

export function resolvePodPorts(service: Service, pod: Pod): EndpointPort[] {
  const resolved: EndpointPort[] = [];
  for (const servicePort of service.spec?.ports ?? []) {
    const protocol = servicePort.protocol ?? 'TCP';
    const target = servicePort.targetPort ?? servicePort.port;
    let port: number | undefined;
    if (typeof target === 'number') port = target;
    else if (/^\d+$/.test(target)) port = Number(target);
    else {
      for (const container of pod.spec?.containers ?? []) {
        const match = container.ports?.find((candidate) => candidate.name === target && (candidate.protocol ?? 'TCP') === protocol);
        if (match) {
          port = match.containerPort;
          break;
        }
      }
    }
    if (port === undefined) continue;
    resolved.push({ name: servicePort.name ?? '', port, protocol, ...(servicePort.appProtocol ? { appProtocol: servicePort.appProtocol } : {}) });
  }
  return resolved;
}

export function portsKey(ports: EndpointPort[] | null | undefined): string {
  return canonicalJson([...(ports ?? [])].sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '') || a.port - b.port));
}

/** Pods that can appear as endpoints at all: selected, have an IP, not finished. */
export function candidatePods(service: Service, namespacePods: Pod[]): Pod[] {
  return namespacePods
    .filter((pod) => matchesServiceSelector(service.spec?.selector, pod.metadata.labels))
    .filter((pod) => Boolean(pod.status?.podIP) && pod.status?.phase !== 'Failed' && pod.status?.phase !== 'Succeeded');
}

export function compareIp(a: string, b: string): number {
  const parts = (ip: string) => ip.split('.').map(Number);
  const pa = parts(a);
  const pb = parts(b);
  for (let index = 0; index < Math.max(pa.length, pb.length); index++) {
    const diff = (pa[index] ?? 0) - (pb[index] ?? 0);
    if (diff !== 0) return diff;
  }
  return a.localeCompare(b);
}

/**
 * Maps pod events to the Services they concern. It remembers which Services selected each pod
 * last time, so a pod whose labels changed also requeues the Service it just left.
 */
export function podToServiceKeys(store: ClusterStore): (event: WatchEvent) => string[] {
  const previous = new Map<string, Set<string>>();
  return (event) => {
    const pod = event.object as Pod;
    const podKey = objectKey(pod);
    const current = new Set<string>();
    if (event.type !== 'DELETED') {
      const namespace = pod.metadata.namespace ?? 'default';
      for (const service of store.list<Service>(API.service.apiVersion, API.service.kind, { namespace }).items) {
        if (matchesServiceSelector(service.spec?.selector, pod.metadata.labels)) current.add(objectKey(service));
      }
    }
    const keys = new Set([...(previous.get(podKey) ?? []), ...current]);
    if (current.size > 0) previous.set(podKey, current);
    else previous.delete(podKey);
    return [...keys];
  };
}
