/**
 * The haproxy comparator of the waypoint bench (BENCHMARKS.md scenario 6): `mode http` doing the
 * waypoint's routing — `x-user: beta` → v2, else v1/v2 weighted 90/10 (one backend, two weighted
 * servers; haproxy balances every request of a keep-alive connection) — with `http-reuse always`
 * upstream pools and one thread, as the waypoint has one.
 *
 * Two variants: plain HTTP on both sides (`haproxyConfig`), and the closer match to the waypoint's
 * hop (`haproxyConfig` with `tls`, fed by `haproxyTlsClientConfig`): the routing haproxy terminates mutual TLS 1.3 (`ssl crt … ca-file …
 * verify required`) from a second, client-side haproxy in `mode tcp` that originates it — as the
 * client agent originates HBONE — with plain HTTP to the backends, as amesh-plain.
 */
import { ROUTE_HEADER, ROUTE_HEADER_VALUE, WEIGHTS, type BackendPorts } from '../waypoint-topology.js';

export interface HaproxySpec {
  listenPort: number;
  backends: BackendPorts;
}

export interface HaproxyTls {
  /** PEM: leaf certificate chain then private key (haproxy's `crt` format). */
  crtFile: string;
  /** PEM: the mesh root. */
  caFile: string;
}

export function haproxyConfig(spec: HaproxySpec, tls?: HaproxyTls): string {
  const { v1, v2 } = spec.backends;
  const bindTls = tls ? ` ssl crt ${tls.crtFile} ca-file ${tls.caFile} verify required ssl-min-ver TLSv1.3` : '';
  return `# written by amesh bench:waypoint; run in the foreground (-db) so its pid is ours to measure
global
  nbthread 1
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always

frontend fe
  bind 127.0.0.1:${spec.listenPort}${bindTls}
  acl beta req.hdr(${ROUTE_HEADER}) -m str ${ROUTE_HEADER_VALUE}
  use_backend be_v2 if beta
  default_backend be_weighted

backend be_weighted
  balance roundrobin
  server v1 127.0.0.1:${v1} weight ${WEIGHTS.v1}
  server v2 127.0.0.1:${v2} weight ${WEIGHTS.v2}

backend be_v2
  server v2 127.0.0.1:${v2}
`;
}

/**
 * The client side of the mTLS variant: `mode tcp`, one thread, every accepted connection becomes
 * one mutual-TLS 1.3 connection to the routing haproxy at `targetPort` (chain verified against
 * the root; no host check, as the mesh checks SPIFFE identities, which haproxy cannot).
 */
export function haproxyTlsClientConfig(spec: { listenPort: number; targetPort: number; tls: HaproxyTls }): string {
  return `# written by amesh bench:waypoint: the client side of the mTLS haproxy variant
global
  nbthread 1
  maxconn 4096

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend fe
  bind 127.0.0.1:${spec.listenPort}
  default_backend be

backend be
  server l7 127.0.0.1:${spec.targetPort} ssl crt ${spec.tls.crtFile} ca-file ${spec.tls.caFile} verify required ssl-min-ver TLSv1.3
`;
}

/** "2.6.12-1+deb12u4" from `haproxy -v` ("HAProxy version 2.6.12-1+deb12u4 2025/…"). */
export function parseHaproxyVersion(text: string): string | undefined {
  return /HA-?Proxy version (\S+)/i.exec(text)?.[1];
}
