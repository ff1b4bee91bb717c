/**
 * Publishes the cluster CA to every Namespace as ConfigMap `kube-root-ca.crt` (key `ca.crt`),
 * like kube-controller-manager's root-ca-cert-publisher: pods verify the API server with it.
 * A deleted or edited ConfigMap is put back.
 */
import type { Logger } from 'pino';
import type { ClusterStore } from '../apiserver/types.js';
import type { ControllerDefinition } from './controller-runner.js';
import { API, type ConfigMap } from './kube-types.js';
import { isActiveNamespace } from './owner-references.js';

export const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';

export function rootCaController({ store, log, caPem }: { store: ClusterStore; log: Logger; caPem: string }): ControllerDefinition {
  return {
    name: 'root-ca-controller',
    watches: [
      { ...API.namespace, keys: (event) => (event.type === 'DELETED' ? [] : [event.object.metadata.name ?? '']) },
      {
        ...API.configMap,
        options: { fieldSelector: `metadata.name=${ROOT_CA_CONFIGMAP}` },
        keys: (event) => (event.type === 'ADDED' ? [] : [event.object.metadata.namespace ?? '']),
      },
    ],
    reconcile(namespace) {
      if (!isActiveNamespace(store.get(API.namespace.apiVersion, API.namespace.kind, undefined, namespace))) return;
      const existing = store.get<ConfigMap>(API.configMap.apiVersion, API.configMap.kind, namespace, ROOT_CA_CONFIGMAP);
      const data = { 'ca.crt': caPem };
      if (!existing) {
        store.create<ConfigMap>({ apiVersion: API.configMap.apiVersion, kind: API.configMap.kind, metadata: { name: ROOT_CA_CONFIGMAP, namespace }, data }, { fieldManager: 'root-ca-controller' });
        log.debug({ namespace }, 'published cluster CA');
        return;
      }
      if (existing.data?.['ca.crt'] === caPem && Object.keys(existing.data).length === 1) return;
      existing.data = data;
      store.update(existing, { fieldManager: 'root-ca-controller' });
      log.debug({ namespace }, 'restored cluster CA config map');
    },
  };
}
