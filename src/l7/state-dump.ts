/**
 * The clusters of an applied config as a proxy's `/config_dump` shows them (waypoint and
 * gateway): balancing policy, circuit-breaker settings and counts, outlier detection, and every
 * endpoint with its health and balancer state.
 */
import type { WaypointState } from './waypoint-state.js';

export function dumpClusters(state: WaypointState | undefined): unknown[] {
  if (!state) return [];
  return [...state.clusters.values()].map(({ cluster, balancer, breaker }) => ({
    name: cluster.name,
    lb: cluster.hash ? { consistentHash: cluster.hash } : cluster.lb,
    ...(cluster.connectionPool ? { connectionPool: cluster.connectionPool, breaker: breaker.stats() } : {}),
    ...(cluster.outlierDetection ? { outlierDetection: cluster.outlierDetection } : {}),
    endpoints: balancer.snapshot().map((e) => {
      const endpoint = balancer.endpoints.find((x) => x.key === e.key)?.endpoint;
      return { address: e.key, hbone: endpoint?.hbone, identity: endpoint?.identity, ...(endpoint?.waypoint ? { waypoint: endpoint.waypoint } : {}), health: e.ejected ? 'EJECTED' : 'HEALTHY', ...e };
    }),
  }));
}
