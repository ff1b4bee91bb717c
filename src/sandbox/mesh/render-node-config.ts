/**
 * Kubernetes objects → the node agent's local configuration (the proto3-JSON shape of the
 * workload xDS API, DESIGN §6). Pure: the sandbox feeds it what the API server holds and writes
 * the result where the `amesh-node` DaemonSet reads it.
 *
 * This is the interim source of mesh state until the controller serves it over xDS (issue #5);
 * the enrolment rules are already Istio's (DESIGN §7):
 * - a pod is enrolled when its namespace has `istio.io/dataplane-mode=ambient`, or the pod itself
 *   does; a pod label `istio.io/dataplane-mode=none` opts it out;
 * - host-network pods are never enrolled (they share the node's address).
 * Every running pod with an IP is listed (unenrolled ones with tunnelProtocol NONE), so agents
 * can tell an unenrolled peer from an unknown one.
 */
import type { KubeObject } from '../apiserver/types.js';
import type { Authorization } from '../../node-agent/state/types.js';
import { DEFAULT_ROOT_NAMESPACE, translateAuthorizationPolicy, type AuthorizationPolicyObject } from '../../controller/translate/authorization-policy.js';
import { effectiveMtls, peerAuthenticationAuthorization, type PeerAuthenticationObject } from '../../controller/translate/peer-authentication.js';

export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';

interface ContainerPort {
  name?: string;
  containerPort?: number;
}

interface PodShape extends KubeObject {
  spec?: {
    nodeName?: string;
    hostNetwork?: boolean;
    serviceAccountName?: string;
    containers?: Array<{ ports?: ContainerPort[] }>;
  };
  status?: { phase?: string; podIP?: string; conditions?: Array<{ type: string; status: string }> };
}

interface ServiceShape extends KubeObject {
  spec?: {
    clusterIP?: string;
    selector?: Record<string, string>;
    ports?: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string; appProtocol?: string }>;
  };
}

export interface ClusterView {
  namespaces: KubeObject[];
  pods: KubeObject[];
  services: KubeObject[];
  /** security.istio.io AuthorizationPolicy objects (default none). */
  authorizationPolicies?: KubeObject[];
  /** security.istio.io PeerAuthentication objects (default none). */
  peerAuthentications?: KubeObject[];
}

export interface NodeConfigOptions {
  node: string;
  trustDomain: string;
  /** A local CA for the agent to sign with; absent when certificates come from the controller's CA. */
  caCertFile?: string;
  caKeyFile?: string;
  /** The node's uplink interfaces (inbound capture). */
  uplinks: string[];
  clusterDomain?: string;
}

export interface PortDoc {
  servicePort: number;
  targetPort: number;
}

export interface WorkloadDoc {
  uid: string;
  name: string;
  namespace: string;
  addresses: string[];
  serviceAccount: string;
  node: string;
  tunnelProtocol: 'HBONE' | 'NONE';
  trustDomain: string;
  workloadType: 'POD';
  canonicalName?: string;
  canonicalRevision?: string;
  status: 'HEALTHY' | 'UNHEALTHY';
  services: Record<string, { ports: PortDoc[] }>;
  /** `namespace/name` of the WORKLOAD_SELECTOR policies that apply to it. */
  authorizationPolicies?: string[];
}

export interface ServiceDoc {
  name: string;
  namespace: string;
  hostname: string;
  addresses: string[];
  ports: PortDoc[];
}

export interface NodeConfigDoc {
  node: string;
  trustDomain: string;
  ca?: { certFile: string; keyFile: string };
  uplinks: string[];
  workloads: WorkloadDoc[];
  services: ServiceDoc[];
  policies: Authorization[];
}

/** Istio's enrolment rule (DESIGN §7). */
export function isEnrolled(pod: KubeObject, namespace: KubeObject | undefined): boolean {
  const p = pod as PodShape;
  if (p.spec?.hostNetwork) return false;
  const own = pod.metadata.labels?.[DATAPLANE_MODE_LABEL];
  if (own === 'none') return false;
  if (own === 'ambient') return true;
  return namespace?.metadata.labels?.[DATAPLANE_MODE_LABEL] === 'ambient';
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** A Service's targetPort for one pod: a number, or a container port name resolved on that pod (0 = unresolved). */
function resolveTargetPort(target: number | string | undefined, servicePort: number, pod: PodShape): number {
  if (target === undefined) return servicePort;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) if (p.name === target && p.containerPort) return p.containerPort;
  }
  return 0;
}

function podReady(pod: PodShape): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

export function renderNodeConfig(view: ClusterView, options: NodeConfigOptions): NodeConfigDoc {
  const domain = options.clusterDomain ?? 'cluster.local';
  const namespaces = new Map(view.namespaces.map((n) => [n.metadata.name ?? '', n]));
  const services = (view.services as ServiceShape[])
    .filter((s) => s.spec?.clusterIP && s.spec.clusterIP !== 'None')
    .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  const serviceDocs: ServiceDoc[] = services.map((s) => ({
    name: s.metadata.name ?? '',
    namespace: s.metadata.namespace ?? 'default',
    hostname: `${s.metadata.name}.${s.metadata.namespace ?? 'default'}.svc.${domain}`,
    addresses: [s.spec?.clusterIP ?? ''],
    ports: (s.spec?.ports ?? [])
      .filter((p) => (p.protocol ?? 'TCP') === 'TCP')
      .map((p) => ({ servicePort: p.port, targetPort: typeof p.targetPort === 'number' ? p.targetPort : /^\d+$/.test(String(p.targetPort ?? p.port)) ? Number(p.targetPort ?? p.port) : 0 })),
  }));

  // L4 policies (issue #5's translation, until the controller serves them over xDS): every
  // AuthorizationPolicy node agents enforce, plus one DENY-without-principal policy per effective
  // PeerAuthentication mode, listed on the workloads they select.
  const policies = new Map<string, Authorization>();
  const selectorPolicies: Array<{ namespace: string; matchLabels: Record<string, string>; key: string }> = [];
  for (const object of view.authorizationPolicies ?? []) {
    const ap = object as AuthorizationPolicyObject;
    const { authorization } = translateAuthorizationPolicy(ap);
    if (!authorization) continue;
    const key = `${authorization.namespace}/${authorization.name}`;
    policies.set(key, authorization);
    const matchLabels = ap.spec?.selector?.matchLabels ?? {};
    if (authorization.scope === 'WORKLOAD_SELECTOR') selectorPolicies.push({ namespace: authorization.namespace, matchLabels, key });
  }
  const peerAuthentications = (view.peerAuthentications ?? []) as PeerAuthenticationObject[];

  const workloads: WorkloadDoc[] = [];
  const seen = new Set<string>();
  const pods = (view.pods as PodShape[])
    .filter((p) => !p.spec?.hostNetwork && p.status?.podIP && p.status.phase === 'Running' && !p.metadata.deletionTimestamp)
    .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  for (const pod of pods) {
    const ip = pod.status?.podIP ?? '';
    if (seen.has(ip)) continue; // a stale pod still holding a reused IP: first (by name) wins
    seen.add(ip);
    const ns = pod.metadata.namespace ?? 'default';
    const labels = pod.metadata.labels ?? {};
    const memberOf: WorkloadDoc['services'] = {};
    for (const s of services) {
      if (s.metadata.namespace !== ns || !selects(s.spec?.selector, labels)) continue;
      const ports = (s.spec?.ports ?? [])
        .filter((p) => (p.protocol ?? 'TCP') === 'TCP')
        .map((p) => ({ servicePort: p.port, targetPort: resolveTargetPort(p.targetPort, p.port, pod) }))
        .filter((p) => p.targetPort > 0);
      memberOf[`${ns}/${s.metadata.name}.${ns}.svc.${domain}`] = { ports };
    }
    const applied = selectorPolicies.filter((p) => p.namespace === ns && selects(p.matchLabels, labels)).map((p) => p.key);
    const peer = peerAuthenticationAuthorization(ns, effectiveMtls(peerAuthentications, { namespace: ns, labels }, DEFAULT_ROOT_NAMESPACE));
    if (peer) {
      policies.set(`${ns}/${peer.name}`, peer);
      applied.push(`${ns}/${peer.name}`);
    }
    const canonicalName = labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app;
    const canonicalRevision = labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels.version;
    workloads.push({
      uid: pod.metadata.uid ?? `${ns}/${pod.metadata.name}`,
      name: pod.metadata.name ?? '',
      namespace: ns,
      addresses: [ip],
      serviceAccount: pod.spec?.serviceAccountName ?? 'default',
      node: pod.spec?.nodeName ?? '',
      tunnelProtocol: isEnrolled(pod, namespaces.get(ns)) ? 'HBONE' : 'NONE',
      trustDomain: options.trustDomain,
      workloadType: 'POD',
      ...(canonicalName ? { canonicalName } : {}),
      ...(canonicalRevision ? { canonicalRevision } : {}),
      status: podReady(pod) ? 'HEALTHY' : 'UNHEALTHY',
      services: memberOf,
      ...(applied.length ? { authorizationPolicies: applied.sort() } : {}),
    });
  }
  return {
    node: options.node,
    trustDomain: options.trustDomain,
    ...(options.caCertFile && options.caKeyFile ? { ca: { certFile: options.caCertFile, keyFile: options.caKeyFile } } : {}),
    uplinks: options.uplinks,
    workloads,
    services: serviceDocs,
    policies: [...policies.values()].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`)),
  };
}
