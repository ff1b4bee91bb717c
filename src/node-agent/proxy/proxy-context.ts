/**
 * What every proxy role needs, handed in by the app (no globals): current state, sockets,
 * certificates, the HBONE pool, logging and connection tracking.
 */
import type { AgentConfig } from '../../config/agent-config.js';
import type { HbonePool } from '../../hbone/pool.js';
import type { CertificateManager } from '../../identity/certificate-manager.js';
import type { Logger } from '../../telemetry/logger.js';
import type { MeshState } from '../state/mesh-state.js';
import type { ConnectionTracker } from './connection-tracker.js';
import type { SocketFactory } from './socket-factory.js';

export interface ProxyContext {
  node: string;
  config: Readonly<AgentConfig>;
  state(): MeshState;
  sockets: SocketFactory;
  certificates: CertificateManager;
  pool: HbonePool;
  logger: Logger;
  accessLog: Logger;
  connections: ConnectionTracker;
}

/** One JSON access-log line per connection, Istio's field names (DESIGN §8). */
export interface AccessLogEntry {
  direction: 'outbound' | 'inbound';
  'src.addr': string;
  'src.workload'?: string;
  'src.identity'?: string;
  'dst.addr': string;
  'dst.hbone_addr'?: string;
  'dst.service'?: string;
  'dst.workload'?: string;
  'dst.identity'?: string;
  bytes_sent: number;
  bytes_recv: number;
  duration: string;
  error?: string;
  reason?: string;
}

export function logConnection(ctx: ProxyContext, entry: AccessLogEntry): void {
  if (entry.error) ctx.accessLog.warn(entry, 'connection complete');
  else ctx.accessLog.info(entry, 'connection complete');
}

export function elapsed(startNs: bigint): string {
  return `${Number((process.hrtime.bigint() - startNs) / 1_000_000n)}ms`;
}
