/**
 * The EndpointSlice controller: for every Service with a selector, EndpointSlices named
 * `<service>-<random>` labelled `kubernetes.io/service-name` and managed-by
 * `endpointslice-controller.k8s.io`, owned by the Service (so garbage collection removes them
 * with it). One slice per distinct port list — normally exactly one; a Service with no
 * endpoints keeps one empty placeholder slice, as Kubernetes does. Terminating pods stay in
 * the slice with `ready: false, terminating: true`; slices are updated in place.
 */
import type { Logger } from 'pino';
import { ApiError, type ClusterStore } from '../apiserver/types.js';
import type { ControllerDefinition } from './controller-runner.js';
import { endpointsLabels } from './endpoints-controller.js';
import { API, type EndpointPort, type EndpointSlice, type Pod, type Service, type SliceEndpoint } from './kube-types.js';
import { isDeleting, objectKey, ownerReferenceTo, splitKey } from './owner-references.js';
import { isPodReady } from './pod-state.js';
import { candidatePods, compareIp, isSelectorService, podToServiceKeys, portsKey, resolvePodPorts } from './service-endpoints.js';
import { sameJson } from './template-hash.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'endpointslice-controller.k8s.io';

export interface DesiredSlice {
  ports: EndpointPort[];
  endpoints: SliceEndpoint[];
}

export function computeEndpointSlices(service: Service, namespacePods: Pod[]): DesiredSlice[] {
  const groups = new Map<string, DesiredSlice>();
  for (const pod of candidatePods(service, namespacePods)) {
    const ports = resolvePodPorts(service, pod);
    if ((service.spec?.ports?.length ?? 0) > 0 && ports.length === 0) continue;
    const key = portsKey(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    groups.set(key, group);
    const terminating = isDeleting(pod);
    const ready = isPodReady(pod) || service.spec?.publishNotReadyAddresses === true;
    group.endpoints.push({
      addresses: [pod.status?.podIP ?? ''],
      conditions: { ready: ready && !terminating, serving: ready, terminating },
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
      targetRef: { kind: 'Pod', namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name ?? '', uid: pod.metadata.uid ?? '' },
    });
  }
  const slices = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, group]) => group);
  for (const slice of slices) slice.endpoints.sort((a, b) => compareIp(a.addresses[0] ?? '', b.addresses[0] ?? ''));
  return slices.length > 0 ? slices : [{ ports: [], endpoints: [] }];
}

export function sliceLabels(service: Service): Record<string, string> {
  return { ...endpointsLabels(service), [SERVICE_NAME_LABEL]: service.metadata.name ?? '', [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
}

export interface EndpointSliceControllerOptions {
  store: ClusterStore;
  log: Logger;
}

export function endpointSliceController({ store, log }: EndpointSliceControllerOptions): ControllerDefinition {
  const deleteSlice = (namespace: string, name: string) => {
    try {
      store.delete(API.endpointSlice.apiVersion, API.endpointSlice.kind, namespace, name);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
  };
  return {
    name: 'endpointslice-controller',
    watches: [
      { ...API.service, keys: (event) => [objectKey(event.object)] },
      { ...API.pod, keys: podToServiceKeys(store) },
      {
        ...API.endpointSlice,
        keys: (event) => {
          const labels = event.object.metadata.labels ?? {};
          const service = labels[SERVICE_NAME_LABEL];
          return event.type !== 'ADDED' && service && labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE ? [`${event.object.metadata.namespace ?? 'default'}/${service}`] : [];
        },
      },
    ],
    reconcile(key) {
      const { namespace, name } = splitKey(key);
      const service = store.get<Service>(API.service.apiVersion, API.service.kind, namespace, name);
      const existing = store.list<EndpointSlice>(API.endpointSlice.apiVersion, API.endpointSlice.kind, {
        namespace,
        labelSelector: `${SERVICE_NAME_LABEL}=${name},${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
      }).items;
      if (!service || !isSelectorService(service) || isDeleting(service)) {
        // Garbage collection removes owned slices with the Service; this covers a Service that lost its selector.
        if (service && !isDeleting(service)) {
          for (const slice of existing) deleteSlice(namespace, slice.metadata.name ?? '');
        }
        return;
      }
      const pods = store.list<Pod>(API.pod.apiVersion, API.pod.kind, { namespace }).items;
      const labels = sliceLabels(service);
      const owner = [ownerReferenceTo(service)];
      const unused = new Map(existing.map((slice) => [portsKey(slice.ports), slice]));
      const desiredSlices = computeEndpointSlices(service, pods);
      // Pair each desired slice with the existing one of the same port list, then recycle any
      // leftover slice (e.g. the empty placeholder) before creating new ones.
      const paired = desiredSlices.map((desired) => {
        const key = portsKey(desired.ports);
        const match = unused.get(key);
        unused.delete(key);
        return { desired, current: match };
      });
      for (const pair of paired) {
        if (pair.current) continue;
        const [leftoverKey, leftover] = unused.entries().next().value ?? [];
        if (leftoverKey === undefined || !leftover) break;
        unused.delete(leftoverKey);
        pair.current = leftover;
      }
      for (const { desired, current } of paired) {
        if (!current) {
          const created = store.create<EndpointSlice>(
            {
              apiVersion: API.endpointSlice.apiVersion,
              kind: API.endpointSlice.kind,
              metadata: { generateName: `${name}-`, namespace, labels, ownerReferences: owner },
              addressType: 'IPv4',
              endpoints: desired.endpoints,
              ports: desired.ports,
            },
            { fieldManager: 'endpointslice-controller' },
          );
          log.debug({ service: `${namespace}/${name}`, slice: created.metadata.name, endpoints: desired.endpoints.length }, 'created endpoint slice');
          continue;
        }
        if (sameJson(current.endpoints ?? [], desired.endpoints) && sameJson(current.ports ?? [], desired.ports) && sameJson(current.metadata.labels ?? {}, labels) && sameJson(current.metadata.ownerReferences ?? [], owner)) continue;
        current.endpoints = desired.endpoints;
        current.ports = desired.ports;
        current.metadata.labels = labels;
        current.metadata.ownerReferences = owner;
        store.update(current, { fieldManager: 'endpointslice-controller' });
        log.debug({ service: `${namespace}/${name}`, slice: current.metadata.name, endpoints: desired.endpoints.length }, 'updated endpoint slice');
      }
      for (const slice of unused.values()) {
        deleteSlice(namespace, slice.metadata.name ?? '');
        log.debug({ service: `${namespace}/${name}`, slice: slice.metadata.name }, 'deleted endpoint slice with a stale port list');
      }
    },
  };
}
