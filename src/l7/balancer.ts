/**
 * Endpoint choice within a cluster (DestinationRule `loadBalancer`), after Envoy:
 * - ROUND_ROBIN: smooth weighted round robin (nginx's): each pick adds every endpoint's weight to
 *   its running score, takes the highest and subtracts the total — weights are honoured exactly
 *   over every window of `total` picks, without bursts.
 * - LEAST_REQUEST: power of two choices — two distinct endpoints drawn (weighted), the one with
 *   fewer requests in flight per unit of weight wins; ties go to the first draw.
 * - RANDOM: one weighted draw.
 * - `hash` (consistentHash): a ring hash on the request's key (resilience/consistent-hash.ts);
 *   a request without a key falls back to `lb`.
 *
 * A pick narrows the endpoints in this order:
 * 1. passive health (resilience/outlier.ts): ejected endpoints are skipped, unless none is
 *    healthy or fewer than minHealthPercent are (panic: better to try than to refuse everything);
 * 2. `exclude` (a retry's previous hosts), ignored when it would leave nothing;
 * 3. locality (resilience/locality.ts): the nearest priority level that has an endpoint left;
 * 4. the policy (the ring walks past endpoints removed by 1–3, so their keys spread evenly).
 *
 * State (scores, in-flight counts, outlier state) lives in EndpointState objects. A config update
 * that keeps the cluster's endpoint set and policies keeps the whole ClusterBalancer
 * (`carryOver`); one that changes them builds a new balancer that reuses the EndpointState of
 * every endpoint still present, so in-flight counts (decremented on the object a request started
 * with) and ejections survive pod churn. Randomness and the clock are injected; decisions are
 * deterministic under test.
 */
import type { Cluster, Endpoint, HashPolicy, LoadBalancerPolicy, LocalityLb, OutlierDetection } from './config.js';
import { HashRing, hash32 } from './resilience/consistent-hash.js';
import { localityPriority, nearestLevel } from './resilience/locality.js';
import { DEFAULT_PASSIVE, initialOutlierState, outlierDetectorFor, type OutlierDetector, type OutlierState, type PassivePolicy, type UpstreamResult } from './resilience/outlier.js';

export type { LocalFailure, UpstreamResult } from './resilience/outlier.js';

export interface EndpointState extends OutlierState {
  endpoint: Endpoint;
  /** `address:port` (IPv6 bracketed). */
  key: string;
  weight: number;
  /** Smooth round robin score. */
  current: number;
  inFlight: number;
  requests: number;
  /** Connect failures so far. */
  failures: number;
}

/** The passive default's knobs (without outlierDetection). */
export type OutlierPolicy = PassivePolicy;

export const DEFAULT_OUTLIER: Readonly<OutlierPolicy> = DEFAULT_PASSIVE;

export interface PickContext {
  /** Clock (ms); default Date.now(). */
  now?: number;
  /** The request's consistent-hash key (from `requestHashKey`); used when the cluster has `hash`. */
  hashKey?: string;
  /** Endpoints to avoid (a retry's previous attempts); ignored when nothing else is eligible. */
  exclude?: ReadonlySet<EndpointState>;
}

export interface BalancerPolicies {
  hash?: HashPolicy;
  outlierDetection?: OutlierDetection;
  localityLb?: LocalityLb;
}

/** One endpoint as config dumps show it. */
export interface EndpointSnapshot {
  key: string;
  locality?: string;
  weight: number;
  ejected: boolean;
  /** When the current ejection ends (the sweep that re-admits); 0 = healthy. */
  ejectedUntil: number;
  consecutive5xx: number;
  consecutiveGatewayErrors: number;
  consecutiveFailures: number;
  /** Ejections so far. */
  timesEjected: number;
  ejectionMultiplier: number;
  inFlight: number;
  requests: number;
  failures: number;
  /** Locality priority (0 = nearest); present with localityLb. */
  priority?: number;
}

export function endpointKey(e: Pick<Endpoint, 'address' | 'port'>): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function endpointWeight(e: Endpoint): number {
  const w = e.weight ?? 1;
  return Number.isFinite(w) && w > 0 ? w : 0;
}

/** What makes an EndpointState reusable: same target, weight, transport, identity, locality. */
function endpointIdentity(e: Endpoint): string {
  return `${endpointKey(e)}/${endpointWeight(e)}/${e.hbone ? 'h' : 'p'}/${e.identity}/${e.locality ?? ''}`;
}

/** Identity of an endpoint set: a balancer is kept across configs only when this is equal. */
export function endpointSetSignature(policy: LoadBalancerPolicy, endpoints: readonly Endpoint[]): string {
  return `${policy}|${endpoints.map(endpointIdentity).sort().join(',')}`;
}

/** Identity of a cluster's balancing: endpoint set, lb, hash, outlier and locality settings. */
export function balancerSignature(policy: LoadBalancerPolicy, endpoints: readonly Endpoint[], policies: BalancerPolicies = {}): string {
  return `${endpointSetSignature(policy, endpoints)}|${stableJson(policies.hash)}|${stableJson(policies.outlierDetection)}|${stableJson(policies.localityLb)}`;
}

export class ClusterBalancer {
  readonly endpoints: EndpointState[];
  readonly signature: string;
  private readonly totalWeight: number;
  private readonly detector: OutlierDetector;
  private readonly priorities: Map<EndpointState, number> | undefined;
  private ring: HashRing<EndpointState> | undefined;

  constructor(
    readonly policy: LoadBalancerPolicy,
    endpoints: readonly Endpoint[],
    private readonly random: () => number = Math.random,
    passive: OutlierPolicy = DEFAULT_OUTLIER,
    readonly policies: BalancerPolicies = {},
    previous?: ClusterBalancer,
  ) {
    this.signature = balancerSignature(policy, endpoints, policies);
    const reusable = new Map<string, EndpointState>();
    for (const e of previous?.endpoints ?? []) reusable.set(endpointIdentity(e.endpoint), e);
    this.endpoints = [];
    for (const endpoint of endpoints) {
      const weight = endpointWeight(endpoint);
      if (weight <= 0) continue;
      const id = endpointIdentity(endpoint);
      const kept = reusable.get(id);
      reusable.delete(id); // a duplicate endpoint in the config gets its own state
      if (kept) kept.endpoint = endpoint; // equal in all that matters; the newer object for dumps
      this.endpoints.push(kept ?? { endpoint, key: endpointKey(endpoint), weight, current: 0, inFlight: 0, requests: 0, failures: 0, ...initialOutlierState() });
    }
    this.totalWeight = this.endpoints.reduce((n, e) => n + e.weight, 0);
    this.detector = outlierDetectorFor(policies.outlierDetection, passive);
    if (previous && stableJson(previous.policies.outlierDetection) === stableJson(policies.outlierDetection)) this.detector.inherit(previous.detector);
    const locality = policies.localityLb;
    this.priorities = locality ? new Map(this.endpoints.map((e) => [e, localityPriority(locality, e.endpoint.locality)])) : undefined;
  }

  /** The balancer for `cluster`: `previous` itself when nothing it depends on changed. */
  static carryOver(previous: ClusterBalancer | undefined, cluster: Cluster, random?: () => number, passive?: OutlierPolicy): ClusterBalancer {
    const policies = policiesOf(cluster);
    if (previous && previous.signature === balancerSignature(cluster.lb, cluster.endpoints, policies)) return previous;
    return new ClusterBalancer(cluster.lb, cluster.endpoints, random, passive, policies, previous);
  }

  /**
   * Chooses an endpoint; undefined when the cluster has none. Does not count it as started.
   * `pick(now)` (a number) is the older form of `pick({ now })`.
   */
  pick(ctx: number | PickContext = {}): EndpointState | undefined {
    const { now = Date.now(), hashKey, exclude } = typeof ctx === 'number' ? { now: ctx } : ctx;
    if (this.endpoints.length === 0) return undefined;
    this.detector.advance(this.endpoints, now);
    let candidates = this.eligible();
    if (exclude && exclude.size > 0) {
      const rest = candidates.filter((e) => !exclude.has(e));
      if (rest.length > 0) candidates = rest;
    }
    const priorities = this.priorities;
    if (priorities && candidates.length > 1) candidates = nearestLevel(candidates, (e) => priorities.get(e) ?? 0);
    if (this.policies.hash && hashKey !== undefined) {
      const allowed = new Set(candidates);
      const chosen = this.hashRing().lookup(hash32(hashKey), (e) => allowed.has(e));
      if (chosen) return chosen;
    }
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

  /** The healthy endpoints, or all of them in panic (none healthy, or fewer than minHealthPercent). */
  private eligible(): EndpointState[] {
    let anyEjected = false;
    for (const e of this.endpoints) if (e.ejected) anyEjected = true;
    if (!anyEjected) return this.endpoints; // the usual case, without a copy
    const healthy = this.endpoints.filter((e) => !e.ejected);
    if (healthy.length === 0) return this.endpoints;
    if ((100 * healthy.length) / this.endpoints.length < this.detector.minHealthPercent) return this.endpoints;
    return healthy;
  }

  private hashRing(): HashRing<EndpointState> {
    // Built on first use: most clusters never hash.
    this.ring ??= new HashRing(this.endpoints.map((e) => ({ item: e, key: e.key, weight: e.weight })));
    return this.ring;
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

  /**
   * The outcome of one attempt to `e`: a response status or a local failure. Feeds outlier
   * detection (an ejection takes effect for the next pick).
   */
  recordResult(e: EndpointState, result: UpstreamResult, now: number = Date.now()): void {
    if (result.failure === 'connect') e.failures++;
    this.detector.advance(this.endpoints, now);
    this.detector.record(e, result, this.endpoints, now);
  }

  /** A connect failure (older form of `recordResult(e, { failure: 'connect' })`). */
  connectFailed(e: EndpointState, now: number = Date.now()): void {
    this.recordResult(e, { failure: 'connect' }, now);
  }

  /** The connection was established (resets the passive default's streak; Envoy's detection ignores it). */
  connectSucceeded(e: EndpointState): void {
    this.detector.connected(e);
  }

  /** Per-endpoint state for config dumps, evaluated at `now`. */
  snapshot(now: number = Date.now()): EndpointSnapshot[] {
    this.detector.advance(this.endpoints, now);
    return this.endpoints.map((e) => ({
      key: e.key,
      ...(e.endpoint.locality !== undefined ? { locality: e.endpoint.locality } : {}),
      weight: e.weight,
      ejected: e.ejected,
      ejectedUntil: e.ejected ? e.ejectedUntil : 0,
      consecutive5xx: e.consecutive5xx,
      consecutiveGatewayErrors: e.consecutiveGatewayErrors,
      consecutiveFailures: e.consecutiveFailures,
      timesEjected: e.timesEjected,
      ejectionMultiplier: e.ejectionMultiplier,
      inFlight: e.inFlight,
      requests: e.requests,
      failures: e.failures,
      ...(this.priorities ? { priority: this.priorities.get(e) ?? 0 } : {}),
    }));
  }

  /** Total weight of the endpoints (for dumps). */
  weight(): number {
    return this.totalWeight;
  }
}

/** The balancing settings of a cluster. */
export function policiesOf(cluster: Cluster): BalancerPolicies {
  return {
    ...(cluster.hash ? { hash: cluster.hash } : {}),
    ...(cluster.outlierDetection ? { outlierDetection: cluster.outlierDetection } : {}),
    ...(cluster.localityLb ? { localityLb: cluster.localityLb } : {}),
  };
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

/** JSON with sorted object keys (config objects compared across updates). */
export function stableJson(value: unknown): string {
  if (value === undefined) return '';
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
