/**
 * One applied WaypointConfig, ready to execute: the compiled route table, one balancer per
 * cluster, and lookups by the addresses clients dial. Built by `buildWaypointState`, which throws
 * (AMESH_XDS_INVALID_RESOURCE with the field path) for a config that cannot be executed, so the
 * caller keeps its last good state and NACKs.
 *
 * Swapped atomically on every update: a request looks the state up once and keeps using the
 * objects it found, so an update never changes a request half way. Per cluster, the balancer is
 * carried over from the previous state when the endpoint set and the lb / hash / outlier /
 * locality settings did not change (smooth round robin keeps its position; a changed balancer
 * still reuses the state of the endpoints that stayed, see ClusterBalancer), and the circuit
 * breaker when the connectionPool did not change (its in-flight counts and waiters stay; when it
 * is replaced, requests admitted by the old one release into the old one).
 */
import { AmeshError } from '../errors/amesh-error.js';
import { compileAuthz, type AuthzDeps, type CompiledAuthz } from './authz/engine.js';
import { ClusterBalancer, endpointKey, stableJson, type OutlierPolicy } from './balancer.js';
import type { Cluster, Endpoint, WaypointConfig } from './config.js';
import { CircuitBreaker } from './resilience/circuit-breaker.js';
import { lookupPort, routeTableFor, type CompiledPort, type RouteTable } from './router.js';
import type { PoolTarget } from './upstream.js';

export interface ClusterRuntime {
  cluster: Cluster;
  balancer: ClusterBalancer;
  /** The cluster's connectionPool limits, shared by all its requests. */
  breaker: CircuitBreaker;
}

export interface WaypointState {
  version: number;
  config: WaypointConfig;
  table: RouteTable;
  clusters: ReadonlyMap<string, ClusterRuntime>;
  /** `<endpoint address>:<port>` → endpoint, for workload-addressed traffic. */
  endpoints: ReadonlyMap<string, Endpoint>;
  /** AuthorizationPolicies and RequestAuthentications of this config, compiled. */
  authz: CompiledAuthz;
}

export interface BuildStateOptions {
  random?: () => number;
  outlier?: OutlierPolicy;
  /** Shared across states (JWKS fetching and its cache live here). */
  authz?: AuthzDeps;
}

export function buildWaypointState(config: WaypointConfig, version: number, previous: WaypointState | undefined, opts: BuildStateOptions = {}): WaypointState {
  const table = routeTableFor(config);
  const clusters = new Map<string, ClusterRuntime>();
  const endpoints = new Map<string, Endpoint>();
  for (const [i, cluster] of config.clusters.entries()) {
    if (clusters.has(cluster.name)) throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `clusters[${i}].name: duplicate cluster ${cluster.name}`);
    const before = previous?.clusters.get(cluster.name);
    const balancer = ClusterBalancer.carryOver(before?.balancer, cluster, opts.random, opts.outlier);
    const breaker = before && stableJson(before.breaker.settings) === stableJson(cluster.connectionPool ?? {}) ? before.breaker : new CircuitBreaker(cluster.connectionPool ?? {});
    clusters.set(cluster.name, { cluster, balancer, breaker });
    for (const e of cluster.endpoints) endpoints.set(endpointKey(e), e);
  }
  const authz = compileAuthz(config, opts.authz);
  return { version, config, table, clusters, endpoints, authz };
}

/** The service port a CONNECT `:authority` (`<vip>:<port>`) names, if this waypoint serves it. */
export function portFor(state: WaypointState, host: string, port: number): CompiledPort | undefined {
  return lookupPort(state.table, host, port);
}

/** Every endpoint of every cluster (to keep their upstream pools). */
export function allEndpoints(state: WaypointState): Endpoint[] {
  return [...state.endpoints.values()];
}

/** Every endpoint with its cluster's pool settings (`UpstreamPools.retain` retires the rest exactly). */
export function poolTargets(state: WaypointState): PoolTarget[] {
  const targets: PoolTarget[] = [];
  for (const { cluster } of state.clusters.values()) {
    for (const endpoint of cluster.endpoints) targets.push(cluster.connectionPool ? { endpoint, settings: cluster.connectionPool } : { endpoint });
  }
  return targets;
}
