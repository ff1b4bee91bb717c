/**
 * The Endpoints controller: for every Service with a selector, an `Endpoints` object of the
 * same name listing ready pods in `addresses` and the rest in `notReadyAddresses`
 * (`publishNotReadyAddresses` puts all in `addresses`). Terminating pods are left out. Services
 * without selector keep their user-managed Endpoints untouched; when a Service goes, so do its
 * Endpoints (Kubernetes' endpoints controller deletes them; they carry no owner reference).
 */
import type { Logger } from 'pino';
import { ApiError, type ClusterStore } from '../apiserver/types.js';
import type { ControllerDefinition } from './controller-runner.js';
import { API, type EndpointAddress, type EndpointSubset, type Endpoints, type Pod, type Service } from './kube-types.js';
import { isDeleting, objectKey, splitKey } from './owner-references.js';
import { isPodReady } from './pod-state.js';
import { candidatePods, compareIp, isSelectorService, podToServiceKeys, portsKey, resolvePodPorts } from './service-endpoints.js';
import { sameJson } from './template-hash.js';

export const HEADLESS_LABEL = 'service.kubernetes.io/headless';

export function computeEndpointSubsets(service: Service, namespacePods: Pod[]): EndpointSubset[] {
  const groups = new Map<string, Required<EndpointSubset>>();
  for (const pod of candidatePods(service, namespacePods)) {
    if (isDeleting(pod)) continue;
    const ports = resolvePodPorts(service, pod);
    if ((service.spec?.ports?.length ?? 0) > 0 && ports.length === 0) continue;
    const key = portsKey(ports);
    const group = groups.get(key) ?? { addresses: [], notReadyAddresses: [], ports };
    groups.set(key, group);
    const address: EndpointAddress = {
      ip: pod.status?.podIP ?? '',
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
      targetRef: { kind: 'Pod', namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name ?? '', uid: pod.metadata.uid ?? '' },
    };
    if (isPodReady(pod) || service.spec?.publishNotReadyAddresses) group.addresses.push(address);
    else group.notReadyAddresses.push(address);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, group]) => {
      const subset: EndpointSubset = {};
      if (group.addresses.length) subset.addresses = group.addresses.sort((a, b) => compareIp(a.ip, b.ip));
      if (group.notReadyAddresses.length) subset.notReadyAddresses = group.notReadyAddresses.sort((a, b) => compareIp(a.ip, b.ip));
      if (group.ports.length) subset.ports = group.ports;
      return subset;
    });
}

export function endpointsLabels(service: Service): Record<string, string> {
  const labels: Record<string, string> = { ...service.metadata.labels };
  if (service.spec?.clusterIP === 'None') labels[HEADLESS_LABEL] = '';
  return labels;
}

export interface EndpointsControllerOptions {
  store: ClusterStore;
  log: Logger;
}

export function endpointsController({ store, log }: EndpointsControllerOptions): ControllerDefinition {
  return {
    name: 'endpoints-controller',
    watches: [
      { ...API.service, keys: (event) => [objectKey(event.object)] },
      { ...API.pod, keys: podToServiceKeys(store) },
      // Someone deleted or edited our Endpoints: put them back.
      // Only for Services that exist and have a selector: Endpoints created ahead of their
      // (selectorless) Service are the user's and must not be deleted as orphans.
      {
        ...API.endpoints,
        keys: (event) => {
          if (event.type === 'ADDED') return [];
          const service = store.get<Service>(API.service.apiVersion, API.service.kind, event.object.metadata.namespace, event.object.metadata.name ?? '');
          return service && isSelectorService(service) ? [objectKey(event.object)] : [];
        },
      },
    ],
    reconcile(key) {
      const { namespace, name } = splitKey(key);
      const service = store.get<Service>(API.service.apiVersion, API.service.kind, namespace, name);
      const existing = store.get<Endpoints>(API.endpoints.apiVersion, API.endpoints.kind, namespace, name);
      if (!service) {
        if (existing) {
          try {
            store.delete(API.endpoints.apiVersion, API.endpoints.kind, namespace, name);
          } catch (err) {
            if (!(err instanceof ApiError && err.code === 404)) throw err;
          }
          log.debug({ service: key }, 'deleted endpoints of a deleted service');
        }
        return;
      }
      if (!isSelectorService(service) || isDeleting(service)) return;
      const pods = store.list<Pod>(API.pod.apiVersion, API.pod.kind, { namespace }).items;
      const subsets = computeEndpointSubsets(service, pods);
      const labels = endpointsLabels(service);
      if (!existing) {
        store.create<Endpoints>({ apiVersion: API.endpoints.apiVersion, kind: API.endpoints.kind, metadata: { name, namespace, labels }, subsets }, { fieldManager: 'endpoints-controller' });
        log.debug({ service: key, subsets }, 'created endpoints');
        return;
      }
      if (sameJson(existing.subsets ?? [], subsets) && sameJson(existing.metadata.labels ?? {}, labels)) return;
      existing.subsets = subsets;
      existing.metadata.labels = labels;
      store.update(existing, { fieldManager: 'endpoints-controller' });
      log.debug({ service: key, subsets }, 'updated endpoints');
    },
  };
}
