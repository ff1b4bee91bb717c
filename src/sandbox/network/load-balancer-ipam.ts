/**
 * LoadBalancer address management for the sandbox (what MetalLB or a cloud controller does in a
 * real cluster), as pure decisions: which address of the sandbox-only pool a `type:
 * LoadBalancer` Service gets.
 *
 * Invariants:
 * - The pool (10.252.0.0/24 by default) collides with nothing else the sandbox uses: pods
 *   10.244.0.0/16, nodes and the fabric 10.250.0.0/24, Services 10.96.0.0/16.
 * - No state of its own: the addresses in use are the `status.loadBalancer.ingress[].ip` values
 *   of the stored LoadBalancer Services, so allocations survive daemon restarts (the snapshot
 *   keeps the status) and a deleted Service or a type change releases its address.
 * - A Service keeps the address it has while it is valid; `spec.loadBalancerIP` is honoured when
 *   it is inside the pool and free, otherwise the Service gets (or keeps) a pool address and a
 *   warning says why. Two Services claiming one address (a hand-edited status): the older one
 *   (creationTimestamp, then namespace/name) keeps it.
 * - Allocation is lowest-free so addresses are predictable in tests and docs; the network and
 *   broadcast addresses are never handed out.
 */
import { cidrContains, intToIpv4, ipv4ToInt, parseIpv4Cidr, type Ipv4Cidr } from './ipam.js';

/** The sandbox's LoadBalancer pool; only the outside client namespace and the cluster route it. */
export const LOAD_BALANCER_CIDR = '10.252.0.0/24';

/** The parts of a Service the allocator looks at. */
export interface LoadBalancerServiceView {
  /** `namespace/name`. */
  key: string;
  type: string | undefined;
  /** `spec.loadBalancerIP` (deprecated in Kubernetes but still honoured by most providers). */
  requestedIp: string | undefined;
  /** `status.loadBalancer.ingress[].ip`, as stored. */
  ingressIps: string[];
  creationTimestamp: string | undefined;
  deleting: boolean;
}

export type LoadBalancerDecision =
  /** Not (or no longer) a LoadBalancer: its pool addresses, if any, are to be released. */
  | { kind: 'none' }
  | { kind: 'assign'; ip: string; warning?: string }
  /** A LoadBalancer without an address: the pool is full. */
  | { kind: 'pending'; warning: string };

/** Plain JSON → view. */
export function loadBalancerView(service: { metadata: { namespace?: string; name?: string; creationTimestamp?: string; deletionTimestamp?: string }; spec?: unknown; status?: unknown }): LoadBalancerServiceView {
  const spec = (service.spec ?? {}) as { type?: string; loadBalancerIP?: string };
  const status = (service.status ?? {}) as { loadBalancer?: { ingress?: Array<{ ip?: unknown }> } };
  const ingress = Array.isArray(status.loadBalancer?.ingress) ? status.loadBalancer.ingress : [];
  return {
    key: `${service.metadata.namespace ?? ''}/${service.metadata.name ?? ''}`,
    type: spec.type,
    requestedIp: typeof spec.loadBalancerIP === 'string' && spec.loadBalancerIP !== '' ? spec.loadBalancerIP : undefined,
    ingressIps: ingress.map((i) => i.ip).filter((ip): ip is string => typeof ip === 'string'),
    creationTimestamp: service.metadata.creationTimestamp,
    deleting: service.metadata.deletionTimestamp !== undefined,
  };
}

export class LoadBalancerPool {
  readonly cidr: string;
  private readonly parsed: Ipv4Cidr;
  private readonly first: number;
  private readonly last: number;

  constructor(cidr: string = LOAD_BALANCER_CIDR) {
    this.cidr = cidr;
    this.parsed = parseIpv4Cidr(cidr, 'LoadBalancer pool');
    const size = 2 ** (32 - this.parsed.length);
    // A /31 or /32 pool has no network/broadcast address to skip.
    this.first = size <= 2 ? this.parsed.base : this.parsed.base + 1;
    this.last = size <= 2 ? this.parsed.base + size - 1 : this.parsed.base + size - 2;
  }

  contains(ip: string): boolean {
    if (!cidrContains(this.parsed, ip)) return false;
    const value = ipv4ToInt(ip);
    return value >= this.first && value <= this.last;
  }

  /** Number of addresses the pool can hand out. */
  get size(): number {
    return this.last - this.first + 1;
  }

  /**
   * The address `service` should have, given every stored Service (it may be among them).
   * Pure: the caller writes the status and records the warning.
   */
  decide(service: LoadBalancerServiceView, all: readonly LoadBalancerServiceView[]): LoadBalancerDecision {
    if (service.type !== 'LoadBalancer' || service.deleting) return { kind: 'none' };
    const taken = this.takenBy(service, all);
    const mine = service.ingressIps.find((ip) => this.contains(ip) && !taken.has(ip));
    let warning: string | undefined;
    if (service.requestedIp !== undefined) {
      const requested = service.requestedIp;
      if (!this.contains(requested)) warning = `spec.loadBalancerIP ${requested} is not in the sandbox LoadBalancer pool ${this.cidr}`;
      else if (taken.has(requested)) warning = `spec.loadBalancerIP ${requested} is already assigned to Service ${taken.get(requested)}`;
      else return { kind: 'assign', ip: requested };
    }
    const ip = mine ?? this.lowestFree(taken);
    if (ip === undefined) return { kind: 'pending', warning: `the sandbox LoadBalancer pool ${this.cidr} has no free address (${this.size} in use); delete a LoadBalancer Service` };
    return warning ? { kind: 'assign', ip, warning: `${warning}; assigned ${ip} instead` } : { kind: 'assign', ip };
  }

  /** Pool addresses held by other live LoadBalancer Services senior to `service`, by address. */
  private takenBy(service: LoadBalancerServiceView, all: readonly LoadBalancerServiceView[]): Map<string, string> {
    const taken = new Map<string, string>();
    for (const other of all) {
      if (other.key === service.key || other.type !== 'LoadBalancer') continue;
      for (const ip of other.ingressIps) {
        if (!this.contains(ip)) continue;
        // A shared address stays with the senior Service; the junior one moves on its reconcile.
        if (service.ingressIps.includes(ip) && isSenior(service, other)) continue;
        if (!taken.has(ip)) taken.set(ip, other.key);
      }
    }
    return taken;
  }

  private lowestFree(taken: ReadonlyMap<string, string>): string | undefined {
    for (let value = this.first; value <= this.last; value++) {
      const ip = intToIpv4(value);
      if (!taken.has(ip)) return ip;
    }
    return undefined;
  }
}

function isSenior(a: LoadBalancerServiceView, b: LoadBalancerServiceView): boolean {
  const at = a.creationTimestamp ?? '';
  const bt = b.creationTimestamp ?? '';
  if (at !== bt) return at !== '' && (bt === '' || at < bt);
  return a.key < b.key;
}
