/**
 * The routing every path of the waypoint bench (BENCHMARKS.md scenario 6) does, in one place:
 * header `x-user: beta` → v2, everything else weighted 90/10 over v1/v2. The waypoint's
 * WaypointConfig, the haproxy and nginx configs (bench/comparators/) and the correctness probe
 * all derive from these constants, so the paths cannot drift apart.
 */
import type { Cluster, Endpoint, HttpRoute, WaypointConfig } from '../src/l7/config.js';

export const ROUTE_HEADER = 'x-user';
export const ROUTE_HEADER_VALUE = 'beta';
/** Weights of the default route, v1 then v2. */
export const WEIGHTS = { v1: 90, v2: 10 } as const;
/** The response header naming the backend that answered. */
export const BACKEND_HEADER = 'x-backend';

export const WAYPOINT_NAMESPACE = 'demo';
export const WAYPOINT_NAME = 'waypoint';
export const WAYPOINT_URI = `spiffe://cluster.local/ns/${WAYPOINT_NAMESPACE}/sa/${WAYPOINT_NAME}`;
export const BACKEND_URI = 'spiffe://cluster.local/ns/demo/sa/backend';
export const CLIENT_URI = 'spiffe://cluster.local/ns/demo/sa/client';
/** The service port every VIP is dialled on (the HBONE `:authority` is `<vip>:80`). */
export const SERVICE_PORT = 80;

/** How the waypoint reaches the backends: HBONE to a destination node agent, or plain TCP. */
export type UpstreamMode = 'hbone' | 'plain';
export const UPSTREAM_MODES: readonly UpstreamMode[] = ['hbone', 'plain'];

/** One service per upstream mode, so one waypoint process serves both amesh paths. */
export const SERVICES: Readonly<Record<UpstreamMode, { vip: string; hostname: string }>> = {
  hbone: { vip: '10.96.0.10', hostname: 'backend.demo.svc.cluster.local' },
  plain: { vip: '10.96.0.11', hostname: 'backend-plain.demo.svc.cluster.local' },
};

export interface BackendPorts {
  v1: number;
  v2: number;
}

/** The waypoint's config: for each upstream mode a service with the header route and the weighted default. */
export function waypointBenchConfig(backends: BackendPorts): WaypointConfig {
  const services: WaypointConfig['services'] = [];
  const clusters: Cluster[] = [];
  for (const mode of UPSTREAM_MODES) {
    const { vip, hostname } = SERVICES[mode];
    const ep = (port: number): Endpoint => ({ address: '127.0.0.1', port, identity: BACKEND_URI, hbone: mode === 'hbone' });
    const c = (subset: string): string => `outbound|${SERVICE_PORT}|${subset}|${hostname}`;
    const routes: HttpRoute[] = [
      {
        name: `VirtualService/demo/${hostname}#0`,
        matches: [{ headers: [{ name: ROUTE_HEADER, match: { kind: 'exact', value: ROUTE_HEADER_VALUE } }] }],
        action: { kind: 'forward', backends: [{ cluster: c('v2'), weight: 100 }] },
      },
      {
        name: `VirtualService/demo/${hostname}#1`,
        matches: [],
        action: { kind: 'forward', backends: [{ cluster: c('v1'), weight: WEIGHTS.v1 }, { cluster: c('v2'), weight: WEIGHTS.v2 }] },
      },
    ];
    services.push({ key: `demo/${hostname}`, namespace: 'demo', hostname, addresses: [vip], ports: [{ port: SERVICE_PORT, protocol: 'HTTP', routes, defaultCluster: c('') }] });
    const cluster = (subset: string, endpoints: Endpoint[]): Cluster => ({ name: c(subset), service: `demo/${hostname}`, port: SERVICE_PORT, ...(subset ? { subset } : {}), lb: 'ROUND_ROBIN', endpoints });
    clusters.push(cluster('', [ep(backends.v1), ep(backends.v2)]), cluster('v1', [ep(backends.v1)]), cluster('v2', [ep(backends.v2)]));
  }
  return { namespace: WAYPOINT_NAMESPACE, name: WAYPOINT_NAME, identity: WAYPOINT_URI, services, clusters };
}

/** What the correctness probe saw: which backend answered each request. */
export interface ProbeCounts {
  /** Requests with `x-user: beta`. */
  beta: { v1: number; v2: number; other: number };
  /** Requests without the header. */
  plain: { v1: number; v2: number; other: number };
}

/**
 * Whether a path routes as configured: every beta request on v2; without the header, v2's share
 * within [2 %, 22 %] (10 % ± about 4 binomial standard deviations at 200 requests — a wrong
 * split such as 50/50 or 100/0 falls far outside). Returns the problems; empty = correct.
 */
export function judgeProbe(counts: ProbeCounts): string[] {
  const problems: string[] = [];
  const betaTotal = counts.beta.v1 + counts.beta.v2 + counts.beta.other;
  if (betaTotal === 0) problems.push('no request with the header was answered');
  else if (counts.beta.v2 !== betaTotal) problems.push(`with ${ROUTE_HEADER}: ${ROUTE_HEADER_VALUE}: ${counts.beta.v2}/${betaTotal} on v2 (expected all)`);
  const plainTotal = counts.plain.v1 + counts.plain.v2 + counts.plain.other;
  if (plainTotal === 0) problems.push('no request without the header was answered');
  else {
    if (counts.plain.other > 0) problems.push(`without the header: ${counts.plain.other}/${plainTotal} answered by neither v1 nor v2`);
    const share = counts.plain.v2 / plainTotal;
    if (share < 0.02 || share > 0.22) problems.push(`without the header: v2 took ${(share * 100).toFixed(1)} % (expected ${WEIGHTS.v2} %, accepted 2–22 %)`);
  }
  return problems;
}
