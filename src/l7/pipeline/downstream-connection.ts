/** Who is on the other end of one tunnelled connection, and what it dialled. */
export interface DownstreamConnection {
  /** The service VIP (or address) and port from the CONNECT `:authority`. */
  host: string;
  port: number;
  /** The HBONE peer's SPIFFE URI. */
  peerIdentity: string;
  /** The original client (HBONE `forwarded`), else the HBONE peer. */
  clientAddress: string;
}
