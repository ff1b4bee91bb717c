/**
 * Kubernetes objects → the node agent's local configuration (the proto3-JSON shape of the
 * workload xDS API, DESIGN §6). Pure: the sandbox feeds it what the API server holds and writes
 * the result where the `amesh-node` DaemonSet reads it.
 *
 * This is the interim source of mesh state until the controller serves it over xDS (issue #5);
 * the translation is the controller's own (controller/mesh/compute-mesh-resources.ts), so both
 * paths agree. The enrolment rules are Istio's (DESIGN §7):
 * - a pod is enrolled when its namespace has `istio.io/dataplane-mode=ambient`, or the pod itself
 *   does; a pod label `istio.io/dataplane-mode=none` opts it out;
 * - host-network pods are never enrolled (they share the node's address).
 * Every running pod with an IP is listed (unenrolled ones with tunnelProtocol NONE), so agents
 * can tell an unenrolled peer from an unknown one.
 */
import type { KubeObject } from '../apiserver/types.js';
import type { Authorization } from '../../node-agent/state/types.js';
import type { AuthorizationPolicyObject } from '../../controller/translate/authorization-policy.js';
import { isEnrolled as isEnrolledPod, type NamespaceObject, type PodObject } from '../../controller/translate/enrolment.js';
import type { PeerAuthenticationObject } from '../../controller/translate/peer-authentication.js';
import type { ServiceObject } from '../../controller/translate/service.js';
import { computeMeshResources, sortedResources } from '../../controller/mesh/compute-mesh-resources.js';

export { DATAPLANE_MODE_LABEL } from '../../controller/translate/enrolment.js';

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
  /** Where mesh-wide policy lives (default `amesh-system`, as for the controller). */
  rootNamespace?: string;
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

/** Istio's enrolment rule (DESIGN §7; controller/translate/enrolment.ts). */
export function isEnrolled(pod: KubeObject, namespace: KubeObject | undefined): boolean {
  return isEnrolledPod(pod as PodObject, namespace as NamespaceObject | undefined);
}

/** The controller's translation (controller/mesh/compute-mesh-resources.ts), as sorted lists. */
export function renderNodeConfig(view: ClusterView, options: NodeConfigOptions): NodeConfigDoc {
  const resources = computeMeshResources(
    {
      namespaces: view.namespaces as NamespaceObject[],
      pods: view.pods as PodObject[],
      services: view.services as ServiceObject[],
      authorizationPolicies: (view.authorizationPolicies ?? []) as AuthorizationPolicyObject[],
      peerAuthentications: (view.peerAuthentications ?? []) as PeerAuthenticationObject[],
    },
    {
      trustDomain: options.trustDomain,
      ...(options.clusterDomain ? { clusterDomain: options.clusterDomain } : {}),
      ...(options.rootNamespace ? { rootNamespace: options.rootNamespace } : {}),
    },
  );
  const sorted = sortedResources(resources);
  return {
    node: options.node,
    trustDomain: options.trustDomain,
    ...(options.caCertFile && options.caKeyFile ? { ca: { certFile: options.caCertFile, keyFile: options.caKeyFile } } : {}),
    uplinks: options.uplinks,
    workloads: sorted.workloads,
    services: sorted.services,
    policies: sorted.authorizations,
  };
}
