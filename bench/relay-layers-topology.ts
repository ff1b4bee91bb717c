/** What bench/relay-layers.ts and its child processes (relay-layers-roles.ts) share. */
export const RELAY_LAYERS = ['tcp', 'tls', 'h2', 'h2-framed', 'hbone'] as const;
export type RelayLayer = (typeof RELAY_LAYERS)[number];

export const STREAM_WINDOW = 4 * 1024 * 1024;
export const CONNECTION_WINDOW = 16 * 1024 * 1024;

/** Trust domain of the bench's CA; the `hbone` layer's SPIFFE identities live in it. */
export const TRUST_DOMAIN = 'relay-layers.bench';
export const NEAR_URI = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/near`;
export const FAR_URI = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/far`;

/** A self-signed CA (src/identity/pki.ts generateCa): the TLS layers' server certificate, and the issuer of the `hbone` layer's workload certificates. */
export interface CaPems {
  certPem: string;
  keyPem: string;
}
export interface FarOptions {
  layer: RelayLayer;
  backendPort: number;
  ca: CaPems;
}
export interface NearOptions {
  layer: RelayLayer;
  farPort: number;
  ca: CaPems;
}
export interface RelayLayersReady {
  type: 'ready';
  role: 'far' | 'near';
  port: number;
}
