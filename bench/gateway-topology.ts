/**
 * What every path of the gateway bench serves, in one place: one host name on an HTTPS port,
 * every request to the one backend (v1 of the waypoint bench's backends process). The amesh
 * gateway's WaypointConfig (kind 'gateway') and nginx's edge config (bench/comparators/nginx.ts)
 * both derive from these constants and the same certificate, so the paths cannot drift apart.
 *
 * Into the mesh: the gateway's only cluster has one HBONE endpoint (the backend's identity), so
 * every request crosses the HBONE hop to the destination agent (waypoint-roles.ts `dest-agent`),
 * which opens plain TCP to the backend on 127.0.0.1 — as a node agent does for a captured pod.
 */
import { GATEWAY_LISTENER_ADDRESS, type Cluster, type HttpRoute, type WaypointConfig } from '../src/l7/config.js';
import { BACKEND_URI } from './waypoint-topology.js';

/** The host clients ask for (SNI, Host header) and the edge certificate's DNS name. */
export const EDGE_HOST = 'bench.example.com';
/** The listener port in the gateway's config (the bench binds an ephemeral port for it). */
export const EDGE_PORT = 443;
export const GATEWAY_NAMESPACE = 'amesh-system';
export const GATEWAY_NAME = 'amesh-ingressgateway';
export const GATEWAY_URI = `spiffe://cluster.local/ns/${GATEWAY_NAMESPACE}/sa/${GATEWAY_NAME}`;
/** The in-mesh service behind the gateway. */
export const BACKEND_SERVICE = { namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', port: 80 } as const;

export interface EdgeCertificate {
  /** PEM chain, leaf first, and its key. */
  certChain: string;
  privateKey: string;
}

/** How the gateway reaches the backend: HBONE into the mesh (the measured path) or plain TCP (to isolate the HBONE hop's cost). */
export type GatewayUpstream = 'hbone' | 'plain';

/**
 * The gateway's config: an HTTPS listener on EDGE_PORT with the edge certificate for EDGE_HOST,
 * and one route (authority EDGE_HOST, as a VirtualService `hosts` entry becomes) to the backend
 * over HBONE (or plain TCP); any other host gets the gateway's 404.
 */
export function gatewayBenchConfig(backendPort: number, certificate: EdgeCertificate, upstream: GatewayUpstream = 'hbone'): WaypointConfig {
  const { namespace, hostname, port } = BACKEND_SERVICE;
  const cluster: Cluster = {
    name: `outbound|${port}||${hostname}`,
    service: `${namespace}/${hostname}`,
    port,
    lb: 'ROUND_ROBIN',
    endpoints: [{ address: '127.0.0.1', port: backendPort, identity: BACKEND_URI, hbone: upstream === 'hbone' }],
  };
  const route: HttpRoute = {
    name: `VirtualService/${namespace}/backend#0`,
    matches: [{ authority: { kind: 'exact', value: EDGE_HOST } }],
    action: { kind: 'forward', backends: [{ cluster: cluster.name, weight: 100 }] },
  };
  return {
    kind: 'gateway',
    namespace: GATEWAY_NAMESPACE,
    name: GATEWAY_NAME,
    identity: GATEWAY_URI,
    listeners: [
      {
        name: `Gateway/${GATEWAY_NAMESPACE}/${GATEWAY_NAME}/https`,
        port: EDGE_PORT,
        protocol: 'HTTPS',
        certificates: [{ name: `${GATEWAY_NAMESPACE}/edge-cert`, hostnames: [EDGE_HOST], ...certificate }],
      },
    ],
    services: [
      {
        key: `${GATEWAY_NAMESPACE}/${GATEWAY_NAME}:${EDGE_PORT}`,
        namespace: GATEWAY_NAMESPACE,
        hostname: GATEWAY_NAME,
        addresses: [GATEWAY_LISTENER_ADDRESS],
        ports: [{ port: EDGE_PORT, protocol: 'HTTP', routes: [route], defaultCluster: '' }],
      },
    ],
    clusters: [cluster],
  };
}
