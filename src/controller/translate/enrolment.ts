/**
 * Ambient enrolment, Istio's rule (DESIGN §7). Pure.
 * - a pod is enrolled when its namespace has `istio.io/dataplane-mode=ambient`, or the pod itself
 *   does; a pod label `istio.io/dataplane-mode=none` opts it out (whatever the namespace says);
 * - host-network pods are never enrolled: they share the node's address, so capturing their
 *   traffic would capture the node's.
 *
 * The object shapes here are the few fields the controller reads, as the API server sends them
 * (proto3 JSON, timestamps as strings); raw watch objects and the sandbox's store objects both fit.
 */
export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** The controller reference names the workload (translate/workload.ts `podWorkloadName`). */
  ownerReferences?: Array<{ kind?: string; name?: string; controller?: boolean }>;
  /** Pods made by a controller: `<owner>-`. */
  generateName?: string;
}

export interface NamespaceObject {
  metadata: ObjectMeta;
}

export interface ContainerPort {
  name?: string;
  containerPort?: number;
  protocol?: string;
}

export interface PodObject {
  metadata: ObjectMeta;
  spec?: {
    nodeName?: string;
    hostNetwork?: boolean;
    serviceAccountName?: string;
    containers?: Array<{ ports?: ContainerPort[] }>;
  };
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: Array<{ ip?: string }>;
    conditions?: Array<{ type: string; status: string }>;
  };
}

export type Enrolment = { enrolled: true; reason: 'namespace-label' | 'pod-label' } | { enrolled: false; reason: 'host-network' | 'pod-opt-out' | 'not-labelled' };

/** Whether the pod is enrolled and which label (or which exclusion) decided it. */
export function enrolmentOf(pod: PodObject, namespace: NamespaceObject | undefined): Enrolment {
  if (pod.spec?.hostNetwork) return { enrolled: false, reason: 'host-network' };
  const own = pod.metadata.labels?.[DATAPLANE_MODE_LABEL];
  if (own === 'none') return { enrolled: false, reason: 'pod-opt-out' };
  if (own === 'ambient') return { enrolled: true, reason: 'pod-label' };
  if (namespace?.metadata.labels?.[DATAPLANE_MODE_LABEL] === 'ambient') return { enrolled: true, reason: 'namespace-label' };
  return { enrolled: false, reason: 'not-labelled' };
}

export function isEnrolled(pod: PodObject, namespace: NamespaceObject | undefined): boolean {
  return enrolmentOf(pod, namespace).enrolled;
}
