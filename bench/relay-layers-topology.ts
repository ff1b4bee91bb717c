/** What bench/relay-layers.ts and its child processes (relay-layers-roles.ts) share. */
export const RELAY_LAYERS = ['tcp', 'tls', 'h2', 'h2-framed'] as const;
export type RelayLayer = (typeof RELAY_LAYERS)[number];

export const STREAM_WINDOW = 4 * 1024 * 1024;
export const CONNECTION_WINDOW = 16 * 1024 * 1024;

export interface FarOptions {
  layer: RelayLayer;
  backendPort: number;
  certPem: string;
  keyPem: string;
}
export interface NearOptions {
  layer: RelayLayer;
  farPort: number;
}
export interface RelayLayersReady {
  type: 'ready';
  role: 'far' | 'near';
  port: number;
}
