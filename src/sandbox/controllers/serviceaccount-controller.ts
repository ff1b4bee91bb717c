/**
 * Gives every Namespace a `default` ServiceAccount (recreated if deleted), like
 * kube-controller-manager's serviceaccount controller. Namespaces being deleted are skipped.
 * Queue keys are bare namespace names.
 */
import type { Logger } from 'pino';
import type { ClusterStore } from '../apiserver/types.js';
import type { ControllerDefinition } from './controller-runner.js';
import { API } from './kube-types.js';
import { isActiveNamespace } from './owner-references.js';

export const DEFAULT_SERVICE_ACCOUNT = 'default';

export function serviceAccountController({ store, log }: { store: ClusterStore; log: Logger }): ControllerDefinition {
  return {
    name: 'serviceaccount-controller',
    watches: [
      { ...API.namespace, keys: (event) => (event.type === 'DELETED' ? [] : [event.object.metadata.name ?? '']) },
      {
        ...API.serviceAccount,
        options: { fieldSelector: `metadata.name=${DEFAULT_SERVICE_ACCOUNT}` },
        keys: (event) => (event.type === 'DELETED' ? [event.object.metadata.namespace ?? ''] : []),
      },
    ],
    reconcile(namespace) {
      if (!isActiveNamespace(store.get(API.namespace.apiVersion, API.namespace.kind, undefined, namespace))) return;
      if (store.get(API.serviceAccount.apiVersion, API.serviceAccount.kind, namespace, DEFAULT_SERVICE_ACCOUNT)) return;
      store.create({ apiVersion: API.serviceAccount.apiVersion, kind: API.serviceAccount.kind, metadata: { name: DEFAULT_SERVICE_ACCOUNT, namespace } }, { fieldManager: 'serviceaccount-controller' });
      log.debug({ namespace }, 'created default service account');
    },
  };
}
