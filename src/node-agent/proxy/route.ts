/**
 * The outbound and inbound routing decisions, as pure functions over MeshState
 * (ztunnel's build_request). Sockets never decide; they carry out a Route.
 */
import type { MeshState } from '../state/mesh-state.js';
import type { Service, Workload } from '../state/types.js';

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
  | { kind: 'passthrough'; target: Destination; workload?: Workload; service?: Service }
  | { kind: 'reject'; reason: string; code: 'loop' | 'no-endpoints' | 'no-port' };

export interface RouteContext {
  state: MeshState;
  node: string;
  hbonePort: number;
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
    const key = `${service.namespace}/${service.hostname}`;
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
  if (workload) return viaWorkload(ctx, workload, destination.port, family);
  return { kind: 'passthrough', target: destination };
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
  if (workload.tunnelProtocol !== 'HBONE') return { ok: false, status: 503, reason: `workload ${workload.uid} is not in the mesh` };
  return { ok: true, workload, target };
}
