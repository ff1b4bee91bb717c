/**
 * Pod → istio.workload.Workload (DESIGN §6). Pure.
 *
 * Which pods: every Running pod with an IP that is not being deleted and not on the host network
 * (`isListedPod`). Unenrolled pods are listed too, with tunnelProtocol NONE, so node agents can
 * tell an unenrolled peer (send plaintext) from an unknown address (passthrough).
 *
 * Service membership is by label selector over the Services of the pod's namespace, as istiod
 * does for Kubernetes Services, rather than from EndpointSlices: the selector is what a user
 * writes, it is known as soon as the pod exists (EndpointSlices lag behind the endpoints
 * controller and omit not-ready pods, yet a not-ready pod must still be listed UNHEALTHY so
 * agents do not balance to it but do recognise it), and readiness is the pod's own Ready
 * condition — the same bit the endpoints controller copies into `endpoints[].conditions.ready`.
 * Selector-less Services (manually managed EndpointSlices) take their members from those slices
 * (translate/endpoint-slice.ts): a slice address a pod holds puts that pod's Workload in the
 * Service (`WorkloadContext.sliceServices`), with the port numbers the slice states.
 *
 * Locality: the pod's `topology.istio.io/locality` label, else its node's topology labels
 * (translate/locality.ts).
 */
import type { PortList, Workload } from '../../node-agent/state/types.js';
import { isEnrolled, type NamespaceObject, type PodObject } from './enrolment.js';
import { workloadLocality, type NodeObject } from './locality.js';
import { DEFAULT_CLUSTER_DOMAIN, isTcp, serviceHostname, serviceKey, type ServiceObject, type ServicePortSpec } from './service.js';

export const CANONICAL_NAME_LABELS = ['service.istio.io/canonical-name', 'app.kubernetes.io/name', 'app'] as const;
export const CANONICAL_REVISION_LABELS = ['service.istio.io/canonical-revision', 'app.kubernetes.io/version', 'version'] as const;

/** A pod's Workload always has these (the node agents' local config requires them). */
export type PodWorkload = Workload & Required<Pick<Workload, 'node' | 'trustDomain' | 'status'>> & { workloadType: 'POD' };

export interface WorkloadContext {
  /** The pod's Namespace (undefined when not (yet) known: then only the pod's own label enrols it). */
  namespace: NamespaceObject | undefined;
  /** Services of the pod's namespace (others are ignored anyway; passing only these keeps it fast). */
  services: readonly ServiceObject[];
  trustDomain: string;
  clusterDomain?: string;
  /** `namespace/name` of the WORKLOAD_SELECTOR authorizations that apply to the pod. */
  authorizationPolicies?: readonly string[];
  /** The pod's Node (`spec.nodeName`), when known: its topology labels give the locality. */
  node?: NodeObject;
  /** Selector-less Services whose EndpointSlices list one of the pod's addresses (endpoint-slice.ts), ports resolved. */
  sliceServices?: Readonly<Record<string, PortList>>;
}

export function isListedPod(pod: PodObject): boolean {
  return !pod.spec?.hostNetwork && Boolean(pod.status?.podIP) && pod.status?.phase === 'Running' && !pod.metadata.deletionTimestamp;
}

export function podReady(pod: PodObject): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** podIP first, then any other family from podIPs. */
export function podAddresses(pod: PodObject): string[] {
  const out: string[] = [];
  for (const ip of [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((p) => p.ip)]) if (ip && !out.includes(ip)) out.push(ip);
  return out;
}

/** Equality-based selection; an empty or absent selector selects nothing (as for Services). */
export function selectorMatches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

/** A Service port's target on one pod: a number, or a container port name resolved on the pod (0 = unresolved). */
export function resolveTargetPort(port: ServicePortSpec, pod: PodObject): number {
  const target = port.targetPort;
  if (target === undefined) return port.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) if (p.name === target && p.containerPort && (p.protocol ?? 'TCP') === 'TCP') return p.containerPort;
  }
  return 0;
}

const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';
/** A Job made by a CronJob is named `<cronjob>-<scheduled time in minutes>`. */
const CRONJOB_JOB_NAME = /^(.+)-\d{8,10}$/;

/**
 * Istio's workload name (`workloadNameAndType` over `GetDeployMetaFromPod`): a pod from a
 * ReplicaSet `<deployment>-<pod-template-hash>` belongs to that Deployment, a Job's pod to the Job
 * (or to its CronJob when the Job is named like one); any other pod is its own workload. It is
 * `workload_name` in the Workload, the `destination_workload` / `source_workload` metric label.
 */
export function podWorkloadName(pod: PodObject): string {
  const name = pod.metadata.name ?? '';
  const owner = (pod.metadata.ownerReferences ?? []).find((r) => r.controller);
  if (!owner?.name) return name;
  if (owner.kind === 'ReplicaSet') {
    const hash = pod.metadata.labels?.[POD_TEMPLATE_HASH_LABEL];
    return hash && owner.name.endsWith(`-${hash}`) ? owner.name.slice(0, -(hash.length + 1)) : name;
  }
  if (owner.kind === 'Job') return CRONJOB_JOB_NAME.exec(owner.name)?.[1] ?? owner.name;
  return name;
}

function firstLabel(labels: Record<string, string>, keys: readonly string[]): string | undefined {
  for (const k of keys) if (labels[k]) return labels[k];
  return undefined;
}

/**
 * The Services selecting the pod, keyed `namespace/hostname`, with their TCP ports resolved on
 * it. A port whose named target the pod does not declare is left out (no endpoint for it).
 * Headless services are skipped: they are not published (translate/service.ts), so a membership
 * key naming one would point node agents at nothing.
 */
export function serviceMembership(pod: PodObject, services: readonly ServiceObject[], clusterDomain = DEFAULT_CLUSTER_DOMAIN): Record<string, PortList> {
  const namespace = pod.metadata.namespace ?? 'default';
  const labels = pod.metadata.labels ?? {};
  const memberOf: Record<string, PortList> = {};
  for (const s of services) {
    if ((s.metadata.namespace ?? 'default') !== namespace || !selectorMatches(s.spec?.selector, labels)) continue;
    const clusterIP = s.spec?.clusterIP;
    if (!clusterIP || clusterIP === 'None') continue;
    const ports = (s.spec?.ports ?? [])
      .filter(isTcp)
      .map((p) => ({ servicePort: p.port, targetPort: resolveTargetPort(p, pod) }))
      .filter((p) => p.targetPort > 0);
    memberOf[serviceKey(namespace, serviceHostname(s.metadata.name ?? '', namespace, clusterDomain))] = { ports };
  }
  return memberOf;
}

/** The Workload for a listed pod (see `isListedPod`). */
export function translateWorkload(pod: PodObject, context: WorkloadContext): PodWorkload {
  const namespace = pod.metadata.namespace ?? 'default';
  const name = pod.metadata.name ?? '';
  const labels = pod.metadata.labels ?? {};
  const canonicalName = firstLabel(labels, CANONICAL_NAME_LABELS);
  const canonicalRevision = firstLabel(labels, CANONICAL_REVISION_LABELS);
  const policies = [...(context.authorizationPolicies ?? [])].sort();
  const locality = workloadLocality(pod, context.node);
  const services = serviceMembership(pod, context.services, context.clusterDomain);
  if (context.sliceServices) {
    for (const key of Object.keys(context.sliceServices).sort()) services[key] ??= { ports: [...(context.sliceServices[key]?.ports ?? [])] };
  }
  return {
    uid: pod.metadata.uid ?? `${namespace}/${name}`,
    name,
    namespace,
    addresses: podAddresses(pod),
    serviceAccount: pod.spec?.serviceAccountName || 'default',
    node: pod.spec?.nodeName ?? '',
    tunnelProtocol: isEnrolled(pod, context.namespace) ? 'HBONE' : 'NONE',
    trustDomain: context.trustDomain,
    workloadType: 'POD',
    workloadName: podWorkloadName(pod),
    ...(canonicalName ? { canonicalName } : {}),
    ...(canonicalRevision ? { canonicalRevision } : {}),
    status: podReady(pod) ? 'HEALTHY' : 'UNHEALTHY',
    services,
    ...(policies.length ? { authorizationPolicies: policies } : {}),
    ...(locality ? { locality } : {}),
  };
}
