import type { PeerLabels } from '../l7-metrics.js';

/** Who is on the other end of one tunnelled connection, and what it dialled. */
export interface DownstreamConnection {
  /** The service VIP (or address) and port from the CONNECT `:authority`. */
  host: string;
  port: number;
  /** The HBONE peer's SPIFFE URI. */
  peerIdentity: string;
  /** The original client (HBONE `forwarded`), else the HBONE peer. */
  clientAddress: string;
  /**
   * Set by an ingress gateway (the edge): the scheme the client spoke to it. It overwrites
   * `x-forwarded-proto` upstream and is the scheme of redirects, as Envoy does at the edge.
   * Absent (waypoints): the request's own `x-forwarded-proto` / `:scheme` is trusted.
   */
  scheme?: 'http' | 'https';
  /**
   * The source_* metric labels, built once per connection: at a waypoint from the peer's
   * identity and the CONNECT `baggage`; at a gateway the gateway's own. Absent → `unknown`.
   */
  peer?: PeerLabels;
}
