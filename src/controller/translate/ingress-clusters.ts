/**
 * Clusters of an ingress gateway, pure: the same clusters a waypoint gets (waypoint-config.ts
 * `materialise`: healthy members of the service with a target port, HBONE to mesh pods with the
 * pod's identity, plain TCP to pods outside the mesh, subset labels, the DestinationRule's
 * policy), with one difference Istio makes at the edge:
 *
 * A Service labelled `istio.io/ingress-use-waypoint=true` (or in a namespace so labelled) whose
 * traffic is bound to a waypoint is reached through that waypoint: the cluster has one endpoint,
 * the service VIP and port (the HBONE CONNECT authority), `waypoint` = the waypoint's VIP (the
 * HBONE next hop) and the waypoint's identity; the waypoint then applies its own routes and
 * policies; the endpoint's `meta` names the waypoint (its Deployment shares the Gateway's name),
 * the peer the gateway's `destination_*` labels describe. Without the label the gateway goes
 * straight to the pods, as Istio does. A waypoint
 * without a VIP yet cannot be dialled: the pods are used, and `notes` says why.
 */
import type { Cluster, Endpoint } from '../../l7/config.js';
import type { MeshResources, MeshView } from '../mesh/compute-mesh-resources.js';
import type { ClusterRef, HostRule } from './route-model.js';
import { clusterPolicy, endpointMeta, materialise } from './waypoint-config.js';
import { effectivePolicy } from './route-model.js';
import { listWaypoints, WAYPOINT_HBONE_PORT, type GatewayObject, type WaypointInfo } from './waypoint-binding.js';

export const INGRESS_USE_WAYPOINT_LABEL = 'istio.io/ingress-use-waypoint';

export interface ClusterContext {
  view: MeshView;
  resources: MeshResources;
  destinationRules: ReadonlyMap<string, HostRule>;
  trustDomain: string;
  clusterDomain: string;
}

function usesWaypointAtIngress(view: MeshView, namespace: string, name: string): boolean {
  const service = view.services.find((s) => (s.metadata.namespace ?? 'default') === namespace && s.metadata.name === name);
  const own = service?.metadata.labels?.[INGRESS_USE_WAYPOINT_LABEL];
  if (own !== undefined) return own === 'true';
  const ns = view.namespaces.find((n) => n.metadata.name === namespace);
  return ns?.metadata.labels?.[INGRESS_USE_WAYPOINT_LABEL] === 'true';
}

/** Materialised clusters (sorted by name) and, per cluster name, a note when the waypoint could not be used. */
export function ingressClusters(refs: Iterable<ClusterRef>, ctx: ClusterContext): { clusters: Cluster[]; notes: Map<string, string> } {
  const podLabels = new Map(ctx.view.pods.map((p) => [p.metadata.uid ?? `${p.metadata.namespace ?? 'default'}/${p.metadata.name ?? ''}`, p.metadata.labels ?? {}]));
  let waypoints: WaypointInfo[] | undefined;
  const notes = new Map<string, string>();
  const clusters: Cluster[] = [];
  for (const ref of [...refs].sort((a, b) => a.name.localeCompare(b.name))) {
    const rule = ctx.destinationRules.get(ref.hostname);
    const service = ctx.resources.services.get(ref.service);
    if (service?.waypoint && usesWaypointAtIngress(ctx.view, service.namespace, service.name)) {
      waypoints ??= listWaypoints((ctx.view.gateways ?? []) as GatewayObject[], ctx.view.services, { trustDomain: ctx.trustDomain, clusterDomain: ctx.clusterDomain });
      const bound = service.waypoint;
      const waypoint = waypoints.find((w) => (bound.address ? bound.address.address === w.address : bound.hostname?.hostname === w.hostname && bound.hostname.namespace === w.ref.namespace));
      const vip = service.addresses[0];
      if (waypoint?.address && vip) {
        // The gateway's peer is the waypoint: its destination_* labels name the waypoint.
        const meta = endpointMeta({ name: waypoint.ref.name, namespace: waypoint.ref.namespace });
        const endpoint: Endpoint = { address: vip, port: ref.port, identity: waypoint.identity, hbone: true, waypoint: waypoint.address, meta };
        const policy = clusterPolicy(effectivePolicy(rule, ref.port, ref.subset), undefined);
        clusters.push({ name: ref.name, service: ref.service, port: ref.port, ...(ref.subset !== undefined ? { subset: ref.subset } : {}), ...policy, endpoints: [endpoint] });
        if (ref.subset !== undefined) notes.set(ref.name, `${ref.name}: through waypoint ${waypoint.ref.namespace}/${waypoint.ref.name} (${INGRESS_USE_WAYPOINT_LABEL}); subset ${ref.subset} is chosen by the waypoint's own routes, not here`);
        continue;
      }
      notes.set(ref.name, `${ref.name}: ${INGRESS_USE_WAYPOINT_LABEL}=true but the service's waypoint has no address yet (port ${WAYPOINT_HBONE_PORT}); sent straight to the pods`);
    }
    clusters.push(materialise(ref, ctx.resources, podLabels, rule, ctx.trustDomain, undefined));
  }
  return { clusters, notes };
}
