/**
 * One JSON access-log line per request (or per L4 stream), through the logger. The line has the
 * fields Istio's JSON access log (Envoy command operators) and ztunnel use — `response_code`,
 * `response_flags`, `method`, `path`, `protocol`, `authority`, `upstream_host`,
 * `upstream_cluster`, `route_name`, `duration` (ms), `bytes_received`, `bytes_sent`,
 * `request_id`, `src.addr`, `src.identity`, `dst.addr`, `dst.service`, plus `authz_policy` (the
 * AuthorizationPolicy and rule that decided a denial) and `trace_id` when the request was traced —
 * and keeps the camelCase fields this log had before (`status`, `responseFlags`, `cluster`,
 * `upstreamHost`, `durationMs`, `sourceIdentity`, `clientAddress`, `destination`, `requestId`,
 * `authz`, …), which tests and tools read.
 *
 * Which entries are written is the Telemetry's `accessLogging` (WaypointConfig.telemetry):
 * `accessLogPolicy` compiles it once per config object (disabled → nothing, a filter →
 * log-filter.ts; an invalid filter logs everything and is reported once per config).
 */
import type { WaypointConfig } from './config.js';
import type { Logger } from '../telemetry/logger.js';
import { accessLogGate, type FilterAttributes, type LogFilter } from '../telemetry/log-filter.js';
import type { AccessLogSettings } from '../telemetry/telemetry-config.js';

export interface AccessRecord {
  protocol: 'HTTP/1.1' | 'HTTP/2' | 'TCP' | 'upgrade';
  method?: string;
  authority?: string;
  path?: string;
  status?: number;
  route?: string;
  cluster?: string;
  /** `address:port` of the chosen endpoint. */
  upstreamHost?: string;
  durationMs: number;
  /** Envoy response flags, comma separated; '-' when none. */
  responseFlags: string;
  /** The client's SPIFFE identity (the HBONE peer). */
  sourceIdentity: string;
  clientAddress: string;
  /** The service address the client dialled (`vip:port`). */
  destination: string;
  requestId?: string;
  error?: string;
  /** Tries made (1 + retries) when more than one. */
  attempts?: number;
  /** The AuthorizationPolicy (and rule) that decided: `ns/name rule N`, or why none allowed. */
  authz?: string;
  /** AUDIT policies that matched. */
  audit?: string[];
  /** The verified JWT principal (`iss/sub`). */
  requestPrincipal?: string;
  /** Request body bytes from the downstream (L4: bytes from the downstream). */
  bytesReceived?: number;
  /** Response body bytes to the downstream (L4: bytes to the downstream). */
  bytesSent?: number;
  /** The destination service's hostname. */
  service?: string;
  /** Set when the request was traced (32 hex). */
  traceId?: string;
  /** gRPC requests: the grpc-status answered. */
  grpcStatus?: number;
}

/** The line as written: the record's own fields plus Istio's names for them. */
export function accessLine(r: AccessRecord): Record<string, unknown> {
  const line: Record<string, unknown> = { ...r };
  line.response_code = r.status ?? 0;
  line.response_flags = r.responseFlags;
  if (r.route !== undefined) line.route_name = r.route;
  if (r.upstreamHost !== undefined) line.upstream_host = r.upstreamHost;
  if (r.cluster !== undefined) line.upstream_cluster = r.cluster;
  line.duration = Math.round(r.durationMs);
  line.bytes_received = r.bytesReceived ?? 0;
  line.bytes_sent = r.bytesSent ?? 0;
  if (r.requestId !== undefined) line.request_id = r.requestId;
  line['src.addr'] = r.clientAddress;
  if (r.sourceIdentity) line['src.identity'] = r.sourceIdentity;
  line['dst.addr'] = r.destination;
  if (r.service !== undefined) line['dst.service'] = r.service;
  if (r.authz !== undefined && (r.status === 403 || r.status === 401 || r.responseFlags.split(',').includes('RBAC'))) line.authz_policy = r.authz;
  if (r.traceId !== undefined) line.trace_id = r.traceId;
  if (r.grpcStatus !== undefined) line.grpc_status = r.grpcStatus;
  return line;
}

export function writeAccessLog(log: Logger, record: AccessRecord): void {
  log.info(accessLine(record), 'access');
}

/** What the Telemetry says about access logs for one config, compiled. */
export interface AccessLogPolicy {
  enabled: boolean;
  /** Absent: every entry (no attributes need to be built). */
  filter?: LogFilter;
}

const LOG_ALL: AccessLogPolicy = Object.freeze({ enabled: true });
const LOG_NONE: AccessLogPolicy = Object.freeze({ enabled: false });
const compiled = new WeakMap<object, AccessLogPolicy>();

/** The policy of `config` (cached per config object); `onInvalid` hears of a bad filter once per config. */
export function accessLogPolicy(config: WaypointConfig | undefined, onInvalid: (filter: string, message: string) => void): AccessLogPolicy {
  const settings: AccessLogSettings | undefined = config?.telemetry?.accessLogging;
  if (!config || !settings || (settings.enabled && settings.filter === undefined)) return settings?.enabled === false ? LOG_NONE : LOG_ALL;
  if (!settings.enabled) return LOG_NONE;
  let policy = compiled.get(config);
  if (!policy) {
    const filter = accessLogGate(settings, (err) => onInvalid(settings.filter ?? '', err.message));
    policy = { enabled: true, filter };
    compiled.set(config, policy);
  }
  return policy;
}

/** Should `record` be written under `policy`? `attributes` is only called when a filter needs them. */
export function admitted(policy: AccessLogPolicy, attributes: () => FilterAttributes): boolean {
  if (!policy.enabled) return false;
  return policy.filter === undefined || policy.filter(attributes());
}
