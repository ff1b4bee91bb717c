/**
 * What every proxy role needs, handed in by the app (no globals): current state, sockets,
 * certificates, the HBONE pool, logging, L4 telemetry and connection tracking.
 */
import { Registry } from 'prom-client';
import type { AgentConfig } from '../../config/agent-config.js';
import type { HbonePool } from '../../hbone/pool.js';
import type { CertificateManager } from '../../identity/certificate-manager.js';
import type { Logger } from '../../telemetry/logger.js';
import type { MeshState } from '../state/mesh-state.js';
import { L4Telemetry, type AccessLogEntry, type L4Connection } from '../telemetry/l4-telemetry.js';
import type { Reporter } from '../telemetry/l4-labels.js';
import type { ConnectionTracker } from './connection-tracker.js';
import { ConnectionLimiter, OverloadLog } from './overload.js';
import type { SocketFactory } from './socket-factory.js';

export type { AccessLogEntry };

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
  /**
   * Metrics, access-log gating and the denial ring (the app's, on its admin registry). Absent
   * (contexts built by hand, e.g. tests): a private instance on a registry nobody scrapes, with
   * the default Telemetry (every line logged).
   */
  telemetry?: L4Telemetry;
  /** Resource caps and their refusals (overload.ts). Absent: one per context, made on first use. */
  overload?: Overload;
}

export interface Overload {
  log: OverloadLog;
  /** Connections per source pod (outbound). */
  outbound: ConnectionLimiter;
  /** Connections per destination pod (inbound, HBONE and in-process). */
  inbound: ConnectionLimiter;
}

export function createOverload(config: Pick<AgentConfig, 'maxConnectionsPerWorkload'>, logger: Logger): Overload {
  return { log: new OverloadLog(logger), outbound: new ConnectionLimiter(config.maxConnectionsPerWorkload), inbound: new ConnectionLimiter(config.maxConnectionsPerWorkload) };
}

export function overloadOf(ctx: ProxyContext): Overload {
  ctx.overload ??= createOverload(ctx.config, ctx.logger);
  return ctx.overload;
}

const fallbacks = new WeakMap<ProxyContext, L4Telemetry>();

export function l4Telemetry(ctx: ProxyContext): L4Telemetry {
  if (ctx.telemetry) return ctx.telemetry;
  let t = fallbacks.get(ctx);
  if (!t) fallbacks.set(ctx, (t = new L4Telemetry({ registry: new Registry(), clusterId: ctx.config.clusterId, logger: ctx.logger })));
  return t;
}

/** Begins one connection's telemetry (metrics, access-log line, denial record). */
export function beginConnection(ctx: ProxyContext, reporter: Reporter, trustDomain: string, entry: AccessLogEntry): L4Connection {
  return l4Telemetry(ctx).connection(ctx.accessLog, reporter, trustDomain, entry);
}
