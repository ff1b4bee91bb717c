/** Building a Pod from a controller's pod template (ReplicaSet, DaemonSet). */
import type { KubeObject } from '../apiserver/types.js';
import { API, type Pod, type PodSpec, type PodTemplateSpec } from './kube-types.js';
import { ownerReferenceTo } from './owner-references.js';

export function podFromTemplate(template: PodTemplateSpec | undefined, owner: KubeObject, specOverrides: Partial<PodSpec> = {}): Pod {
  const meta = template?.metadata ?? {};
  return {
    apiVersion: API.pod.apiVersion,
    kind: API.pod.kind,
    metadata: {
      generateName: `${owner.metadata.name ?? 'pod'}-`,
      namespace: owner.metadata.namespace ?? 'default',
      labels: { ...meta.labels },
      ...(meta.annotations ? { annotations: { ...meta.annotations } } : {}),
      ownerReferences: [ownerReferenceTo(owner)],
    },
    spec: { ...structuredClone(template?.spec ?? {}), ...specOverrides },
  };
}
