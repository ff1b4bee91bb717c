/**
 * Endpoint choice within a cluster (DestinationRule `loadBalancer.simple`), after Envoy:
 * - ROUND_ROBIN: smooth weighted round robin (nginx's): each pick adds every endpoint's weight to
 *   its running score, takes the highest and subtracts the total — weights are honoured exactly
 *   over every window of `total` picks, without bursts.
 * - LEAST_REQUEST: power of two choices — two distinct endpoints drawn (weighted), the one with
 *   fewer requests in flight per unit of weight wins; ties go to the first draw.
 * - RANDOM: one weighted draw.
 * Passive health (Envoy's outlier detection, simplified): `consecutiveFailures` connect failures
 * eject an endpoint for `ejectionMs`; ejected endpoints are skipped unless every endpoint is
 * ejected (Envoy's panic mode: better to try than to refuse everything).
 *
 * State (scores, in-flight counts, ejections) lives in a ClusterBalancer and survives config
 * updates that keep the cluster's endpoint set (addresses, ports, weights) and policy: see
 * `carryOver`. Randomness and the clock are injected; decisions are deterministic under test.
 */
import type { Cluster, Endpoint, LoadBalancerPolicy } from './config.js';

export interface EndpointState {
  endpoint: Endpoint;
  /** `address:port` (IPv6 bracketed). */
  key: string;
  weight: number;
  /** Smooth round robin score. */
  current: number;
  inFlight: number;
  consecutiveFailures: number;
  /** Ejected until this time (ms); 0 = healthy. */
  ejectedUntil: number;
  requests: number;
  failures: number;
}

export interface OutlierPolicy {
  consecutiveFailures: number;
  ejectionMs: number;
}

export const DEFAULT_OUTLIER: Readonly<OutlierPolicy> = Object.freeze({ consecutiveFailures: 5, ejectionMs: 10_000 });

export function endpointKey(e: Pick<Endpoint, 'address' | 'port'>): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function endpointWeight(e: Endpoint): number {
  const w = e.weight ?? 1;
  return Number.isFinite(w) && w > 0 ? w : 0;
}

/** Identity of an endpoint set: a balancer is kept across configs only when this is equal. */
export function endpointSetSignature(policy: LoadBalancerPolicy, endpoints: readonly Endpoint[]): string {
  return `${policy}|${endpoints
    .map((e) => `${endpointKey(e)}/${endpointWeight(e)}/${e.hbone ? 'h' : 'p'}/${e.identity}`)
    .sort()
    .join(',')}`;
}

export class ClusterBalancer {
  readonly endpoints: EndpointState[];
  readonly signature: string;
  private readonly totalWeight: number;

  constructor(
    readonly policy: LoadBalancerPolicy,
    endpoints: readonly Endpoint[],
    private readonly random: () => number = Math.random,
    private readonly outlier: OutlierPolicy = DEFAULT_OUTLIER,
  ) {
    this.signature = endpointSetSignature(policy, endpoints);
    this.endpoints = endpoints
      .map((endpoint) => ({ endpoint, key: endpointKey(endpoint), weight: endpointWeight(endpoint), current: 0, inFlight: 0, consecutiveFailures: 0, ejectedUntil: 0, requests: 0, failures: 0 }))
      .filter((e) => e.weight > 0);
    this.totalWeight = this.endpoints.reduce((n, e) => n + e.weight, 0);
  }

  /** The balancer for `cluster`: `previous` itself when its endpoint set and policy are unchanged. */
  static carryOver(previous: ClusterBalancer | undefined, cluster: Cluster, random?: () => number, outlier?: OutlierPolicy): ClusterBalancer {
    if (previous && previous.signature === endpointSetSignature(cluster.lb, cluster.endpoints)) return previous;
    return new ClusterBalancer(cluster.lb, cluster.endpoints, random, outlier);
  }

  /** The endpoints eligible now: the healthy ones, or all when none is (panic mode). */
  private eligible(now: number): EndpointState[] {
    const healthy = this.endpoints.filter((e) => e.ejectedUntil <= now);
    return healthy.length > 0 ? healthy : this.endpoints;
  }

  /** Chooses an endpoint; undefined when the cluster has none. Does not count it as started. */
  pick(now: number = Date.now()): EndpointState | undefined {
    if (this.endpoints.length === 0) return undefined;
    const candidates = this.endpoints.length === 1 ? this.endpoints : this.eligible(now);
    if (candidates.length === 1) return candidates[0];
    switch (this.policy) {
      case 'LEAST_REQUEST':
        return this.leastRequest(candidates);
      case 'RANDOM':
        return weightedDraw(candidates, this.random);
      default:
        return this.smoothRoundRobin(candidates);
    }
  }

  private smoothRoundRobin(candidates: EndpointState[]): EndpointState {
    let total = 0;
    let best: EndpointState | undefined;
    for (const e of candidates) {
      e.current += e.weight;
      total += e.weight;
      if (!best || e.current > best.current) best = e;
    }
    const chosen = best as EndpointState;
    chosen.current -= total;
    return chosen;
  }

  private leastRequest(candidates: EndpointState[]): EndpointState {
    const a = weightedDraw(candidates, this.random);
    const rest = candidates.filter((e) => e !== a);
    const b = weightedDraw(rest, this.random);
    return b.inFlight / b.weight < a.inFlight / a.weight ? b : a;
  }

  started(e: EndpointState): void {
    e.inFlight++;
    e.requests++;
  }

  finished(e: EndpointState): void {
    e.inFlight = Math.max(0, e.inFlight - 1);
  }

  /** A connect failure: counts towards ejection. */
  connectFailed(e: EndpointState, now: number = Date.now()): void {
    e.failures++;
    e.consecutiveFailures++;
    if (e.consecutiveFailures >= this.outlier.consecutiveFailures) {
      e.ejectedUntil = now + this.outlier.ejectionMs;
      e.consecutiveFailures = 0;
    }
  }

  connectSucceeded(e: EndpointState): void {
    e.consecutiveFailures = 0;
  }

  /** Total weight of the endpoints (for dumps). */
  weight(): number {
    return this.totalWeight;
  }
}

/** One weighted draw; `candidates` non-empty. */
export function weightedDraw(candidates: readonly EndpointState[], random: () => number): EndpointState {
  let total = 0;
  for (const e of candidates) total += e.weight;
  let r = random() * total;
  for (const e of candidates) {
    r -= e.weight;
    if (r < 0) return e;
  }
  return candidates[candidates.length - 1] as EndpointState;
}
