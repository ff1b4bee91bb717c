/**
 * The outbound and inbound routing decisions, as pure functions over MeshState
 * (ztunnel's build_request). Sockets never decide; they carry out a Route.
 *
 * Waypoint hand-off (DESIGN §4, §7): traffic addressed to a Service VIP whose `waypoint` is set,
 * or to a workload IP whose `waypoint` is set, goes by HBONE to one of the waypoint's pods with
 * the original destination as `:authority`. A service's waypoint only applies to traffic
 * addressed to the service, a workload's only to traffic addressed to the workload (Istio's
 * waypoint-for service / workload). An unresolvable waypoint fails closed; traffic from the
 * waypoint's own pods never goes back to it.
 */
import { serviceKey, type MeshState } from '../state/mesh-state.js';
import type { GatewayAddress, Service, Workload } from '../state/types.js';

/** Destination ports that are never valid targets of a tunnelled connection. */
export const LOOP_PORTS: ReadonlySet<number> = new Set([15001, 15006, 15008]);

export interface Destination {
  ip: string;
  port: number;
}

export type OutboundRoute =
  | {
      kind: 'hbone';
      /** The workload the tunnel ends at. */
      workload: Workload;
      /** Where the HBONE connection goes (the workload's IP, port 15008). */
      nextHop: Destination;
      /** The CONNECT :authority — the workload address and target port. */
      target: Destination;
      expectedIdentities: string[];
      service?: Service;
      /** The destination runs on this node: serve in-process. */
      sameNode: boolean;
    }
  | {
      /**
       * HBONE to a waypoint pod. Never served in-process, even when the waypoint pod runs on
       * this node: it is a normal pod listening on its own HBONE port and not enrolled, so the
       * agent dials it over the network like any remote peer.
       */
      kind: 'waypoint';
      waypoint: WaypointHop;
      /** Where the HBONE connection goes: the waypoint pod's IP, the GatewayAddress's HBONE port. */
      nextHop: Destination;
      /** The CONNECT :authority — the original destination as dialled (VIP:port or pod IP:port). */
      target: Destination;
      /** The waypoint pod's identity. */
      expectedIdentities: string[];
      /** The service the client addressed (service-addressed traffic). */
      service?: Service;
      /** The workload the client addressed (workload-addressed traffic). */
      workload?: Workload;
    }
  | { kind: 'passthrough'; target: Destination; workload?: Workload; service?: Service }
  | { kind: 'reject'; reason: string; code: 'loop' | 'no-endpoints' | 'no-port' | 'no-waypoint' | 'leaving-mesh' };

export interface WaypointHop {
  /** For logs: the waypoint Service's `namespace/hostname`, or the waypoint workload's uid when addressed by pod IP. */
  name: string;
  /** The waypoint pod chosen. */
  pod: Workload;
}

export interface RouteContext {
  state: MeshState;
  node: string;
  hbonePort: number;
  /**
   * The workload the connection comes from (the captured source). Traffic from one of a
   * waypoint's own pods is never sent back to that waypoint (loop protection).
   */
  source?: Workload;
  /** Uniform random number in [0, 1) for endpoint choice; injected so tests are deterministic. */
  random?: () => number;
}

/** A workload's load-balancing weight: its `capacity`, absent = 1 (ztunnel), 0 = never chosen. */
export function endpointWeight(w: Workload): number {
  return w.capacity ?? 1;
}

/**
 * Weighted random choice, as ztunnel's `choose_weighted` over workload capacity: item i is
 * chosen with probability weight(i) / Σ weights. Undefined when no item has a positive weight.
 */
export function pickWeighted<T>(items: readonly T[], weight: (item: T) => number, random: () => number): T | undefined {
  const weights = items.map((item) => Math.max(0, weight(item)));
  const total = weights.reduce((sum, w) => sum + w, 0);
  if (!(total > 0)) return undefined;
  let point = random() * total;
  for (const [i, item] of items.entries()) {
    const w = weights[i]!;
    if (w === 0) continue;
    if (point < w) return item;
    point -= w;
  }
  // Floating-point rounding at the top end: the last item with weight.
  return items[weights.findLastIndex((w) => w > 0)];
}

function firstAddress(w: Workload, family: 4 | 6): string | undefined {
  return w.addresses.find((a) => (family === 6) === a.includes(':')) ?? w.addresses[0];
}

function viaWorkload(ctx: RouteContext, workload: Workload, port: number, family: 4 | 6, service?: Service): OutboundRoute {
  const ip = firstAddress(workload, family)!;
  const target = { ip, port };
  if (workload.tunnelProtocol !== 'HBONE') return { kind: 'passthrough', target, workload, ...(service ? { service } : {}) };
  const expectedIdentities = [ctx.state.identityOf(workload)];
  return {
    kind: 'hbone',
    workload,
    nextHop: { ip, port: ctx.hbonePort },
    target,
    expectedIdentities,
    ...(service ? { service } : {}),
    sameNode: workload.node === ctx.node,
  };
}

/** A waypoint's pods, as far as the mesh state knows them. */
interface WaypointPods {
  name: string;
  /** Every pod of the waypoint, healthy or not: loop protection must not depend on health. */
  isMember(w: Workload): boolean;
  /** The pods to choose from: healthy, with an address. */
  candidates: Workload[];
}

function describeGateway(gw: GatewayAddress): string {
  if (gw.address) return gw.address.address;
  if (gw.hostname) return `${gw.hostname.namespace}/${gw.hostname.hostname}`;
  return '(empty address)';
}

/**
 * GatewayAddress → the waypoint's pods. Address form: a service VIP (the waypoint Service's
 * ClusterIP, what the controller sends) → that service's endpoints; a workload IP → that
 * workload. Hostname form: the service `namespace/hostname`. The `network` is not checked:
 * amesh has one network.
 */
function waypointPods(state: MeshState, gw: GatewayAddress): WaypointPods | undefined {
  const dialable = (w: Workload): boolean => w.addresses.length > 0;
  const ofService = (svc: Service): WaypointPods => {
    const key = serviceKey(svc);
    return { name: key, isMember: (w) => w.services[key] !== undefined, candidates: state.endpoints(svc).filter(dialable) };
  };
  if (gw.address) {
    const svc = state.serviceByIp(gw.address.address);
    if (svc) return ofService(svc);
    const pod = state.workloadByIp(gw.address.address);
    if (pod) return { name: pod.uid, isMember: (w) => w.uid === pod.uid, candidates: pod.status !== 'UNHEALTHY' && dialable(pod) ? [pod] : [] };
    return undefined;
  }
  if (gw.hostname) {
    const svc = state.serviceByKey(`${gw.hostname.namespace}/${gw.hostname.hostname}`);
    return svc ? ofService(svc) : undefined;
  }
  return undefined;
}

/**
 * The route through `gw` for traffic addressed to `destination`, undefined when the source is
 * one of the waypoint's own pods (then the caller routes directly). Fails closed: a waypoint
 * that cannot be resolved or has no healthy pod is a reject, never a bypass (as Istio).
 */
function viaWaypoint(
  ctx: RouteContext,
  gw: GatewayAddress,
  destination: Destination,
  family: 4 | 6,
  addressed: { service: Service } | { workload: Workload },
): OutboundRoute | undefined {
  const what = 'service' in addressed ? `service ${serviceKey(addressed.service)}` : `workload ${addressed.workload.uid}`;
  const pods = waypointPods(ctx.state, gw);
  if (!pods) return { kind: 'reject', code: 'no-waypoint', reason: `${what} uses waypoint ${describeGateway(gw)}, which is neither a known service nor a workload` };
  if (ctx.source && pods.isMember(ctx.source)) return undefined;
  const pod = pickWeighted(pods.candidates, endpointWeight, ctx.random ?? Math.random);
  if (!pod) return { kind: 'reject', code: 'no-waypoint', reason: `${what} uses waypoint ${pods.name}, which has no healthy pod` };
  return {
    kind: 'waypoint',
    waypoint: { name: pods.name, pod },
    nextHop: { ip: firstAddress(pod, family)!, port: gw.hboneMtlsPort },
    target: destination,
    expectedIdentities: [ctx.state.identityOf(pod)],
    ...addressed,
  };
}

export function decideOutbound(ctx: RouteContext, destination: Destination): OutboundRoute {
  if (LOOP_PORTS.has(destination.port)) {
    return { kind: 'reject', code: 'loop', reason: `destination port ${destination.port} is a mesh port (loop protection)` };
  }
  const family = destination.ip.includes(':') ? 6 : 4;
  const service = ctx.state.serviceByIp(destination.ip);
  if (service) {
    const port = service.ports.find((p) => p.servicePort === destination.port);
    if (!port) {
      return { kind: 'reject', code: 'no-port', reason: `service ${service.namespace}/${service.hostname} has no port ${destination.port}` };
    }
    // After the port check: the waypoint routes by VIP:port and has no route for a port the service lacks.
    if (service.waypoint) {
      const route = viaWaypoint(ctx, service.waypoint, destination, family, { service });
      if (route) return route;
    }
    const key = serviceKey(service);
    // A workload's own port list for this service wins over the service's (named target ports).
    // A workload without an address (xDS allows hostname-only ones) cannot be dialled.
    const candidates = ctx.state.endpoints(service).filter((w) => w.addresses.length > 0).flatMap((w) => {
      const own = w.services[key]?.ports.find((p) => p.servicePort === destination.port);
      const targetPort = own?.targetPort || port.targetPort || destination.port;
      return [{ w, targetPort }];
    });
    if (candidates.length === 0) {
      return { kind: 'reject', code: 'no-endpoints', reason: `service ${key} has no healthy endpoints` };
    }
    const chosen = pickWeighted(candidates, (c) => endpointWeight(c.w), ctx.random ?? Math.random);
    if (!chosen) return { kind: 'reject', code: 'no-endpoints', reason: `service ${key} has no endpoint with capacity above 0` };
    return viaWorkload(ctx, chosen.w, chosen.targetPort, family, service);
  }
  const workload = ctx.state.workloadByIp(destination.ip);
  if (workload?.waypoint) {
    const route = viaWaypoint(ctx, workload.waypoint, destination, family, { workload });
    if (route) return route;
  }
  if (workload) return viaWorkload(ctx, workload, destination.port, family);
  return { kind: 'passthrough', target: destination };
}

/**
 * The route of a connection the capture handed the outbound listener from local pod
 * `ctx.source`, which the state already counts out of the mesh: an unenrolment reaches the state
 * a moment before the capture's pod map, and refusing reset a request in flight. It goes on as
 * if it had not been captured at the source — plaintext, with no identity — to where
 * decideOutbound resolves the destination: a pod on this node is admitted in-process as the
 * destination's plaintext capture (15006) would admit it, policies checked without a peer
 * identity (the caller passes none); anything else leaves as plain TCP, and a mesh pod on another
 * node is captured there as plaintext. Never through a waypoint: its HBONE needs an identity.
 */
export function decideLeavingSource(ctx: RouteContext & { source: Workload }, destination: Destination): OutboundRoute {
  const route = decideOutbound(ctx, destination);
  switch (route.kind) {
    case 'reject':
    case 'passthrough':
      return route;
    case 'hbone':
      if (route.sameNode) return route;
      return { kind: 'passthrough', target: route.target, workload: route.workload, ...(route.service ? { service: route.service } : {}) };
    case 'waypoint':
      return { kind: 'reject', code: 'leaving-mesh', reason: `source ${ctx.source.uid} is leaving the mesh and ${route.waypoint.name} is a waypoint's (HBONE only)` };
  }
}

export type InboundDecision =
  | { ok: true; workload: Workload; target: Destination }
  | { ok: false; status: 400 | 503; reason: string };

/**
 * An HBONE CONNECT (or captured plaintext connection) arriving for `target`, on a connection
 * that was dialled at `dialled` (for HBONE: the pod IP :15008).
 */
export function decideInbound(state: MeshState, node: string, target: Destination, dialledIp: string): InboundDecision {
  if (LOOP_PORTS.has(target.port)) return { ok: false, status: 400, reason: `target port ${target.port} is a mesh port (loop protection)` };
  if (target.ip !== dialledIp) {
    return { ok: false, status: 400, reason: `CONNECT target ${target.ip} does not match the address dialled (${dialledIp})` };
  }
  const workload = state.workloadByIp(target.ip);
  if (!workload) return { ok: false, status: 503, reason: `no workload has address ${target.ip}` };
  if (workload.node !== node) return { ok: false, status: 503, reason: `workload ${workload.uid} is not on node ${node}` };
  // A local workload out of the mesh (tunnelProtocol NONE) is delivered to, not refused: this
  // happens while it is being unenrolled — the capture's pod map still sends its connections here
  // a moment after the state changed, or a peer's state is behind ours — and the pod takes
  // plaintext from anyone once unenrolled, so delivering (after the policy check) is never less
  // than it would get; refusing reset a request in flight at every unenrolment.
  return { ok: true, workload, target };
}
