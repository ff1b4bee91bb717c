/**
 * Where a finished request or L4 stream goes, once: the Istio metrics (l7-metrics.ts), the access
 * log (access-log.ts, gated by the config's Telemetry `accessLogging`), and — for requests — the
 * end of its trace (the caller ends it; tracing is reached through `tracing`).
 *
 * Roles: a waypoint reports `reporter="waypoint"`, its downstream is always HBONE mTLS; an ingress
 * gateway reports `reporter="source"` with itself as the source, its connection security being
 * that of the upstream connection (HBONE endpoint → `mutual_tls`, plain TCP → `none`), and the
 * edge connection is not mTLS (`connection.mtls` false for log filters).
 *
 * Destination labels are built once per endpoint object (a config's endpoints live as long as the
 * config) or per service key when no endpoint was chosen, so the metrics' per-request work is
 * lookups only (see l7-metrics.ts).
 */
import type { Logger } from '../../telemetry/logger.js';
import type { FilterAttributes } from '../../telemetry/log-filter.js';
import { accessLogPolicy, admitted, writeAccessLog, type AccessRecord } from '../access-log.js';
import type { Endpoint, WaypointConfig } from '../config.js';
import { destinationOf, UNKNOWN_PEER, type DestinationLabels, type L7Metrics, type PeerLabels } from '../l7-metrics.js';
import type { TracingHook } from './trace-hook.js';

export type ProxyRole = 'waypoint' | 'gateway';

export interface ProxyTelemetryOptions {
  role: ProxyRole;
  accessLog: Logger;
  /** Where an invalid access-log filter is reported (once per config). */
  logger: Logger;
  /** Absent: no metrics (tests that build the engine alone). */
  metrics?: L7Metrics;
  /** Absent: no tracing; trace headers pass through. */
  tracing?: TracingHook;
  /** The mesh's cluster id (`destination_cluster`). */
  clusterId?: string;
}

/** What a finished HTTP request adds to its access record for metrics and filters. */
export interface RequestFacts {
  config: WaypointConfig | undefined;
  peer: PeerLabels | undefined;
  /** `namespace/hostname` of the service (the cluster's, else the dialled port's). */
  serviceKey: string | undefined;
  /** The endpoint of the last try, if one started. */
  endpoint: Endpoint | undefined;
  grpc: boolean;
  grpcStatus: number | undefined;
  /** The service port the client dialled. */
  port: number;
}

/** The same for an L4 stream. */
export interface StreamFacts {
  config: WaypointConfig | undefined;
  peer: PeerLabels | undefined;
  serviceKey: string | undefined;
  endpoint: Endpoint | undefined;
  port: number;
}

export class ProxyTelemetry {
  readonly role: ProxyRole;
  readonly tracing: TracingHook | undefined;
  private readonly metrics: L7Metrics | undefined;
  private readonly byEndpoint = new WeakMap<Endpoint, DestinationLabels>();
  private readonly byService = new Map<string, DestinationLabels>();

  constructor(private readonly o: ProxyTelemetryOptions) {
    this.role = o.role;
    this.tracing = o.tracing;
    this.metrics = o.metrics;
  }

  /** A finished HTTP request (its record complete): metrics, then the access log if admitted. */
  request(r: AccessRecord, f: RequestFacts): void {
    const destination = this.destination(f.serviceKey, f.endpoint);
    if (destination.destination_service !== 'unknown') r.service = destination.destination_service;
    if (f.grpcStatus !== undefined) r.grpcStatus = f.grpcStatus;
    this.metrics?.request({
      peer: f.peer ?? UNKNOWN_PEER,
      destination,
      security: this.security(f.endpoint),
      protocol: f.grpc ? 'grpc' : 'http',
      status: r.status,
      flags: r.responseFlags,
      grpcStatus: f.grpcStatus,
      durationMs: r.durationMs,
      requestBytes: r.bytesReceived ?? 0,
      responseBytes: r.bytesSent ?? 0,
    });
    this.log(r, f.config, () => ({
      'response.code': r.status ?? 0,
      'response.flags': r.responseFlags,
      'response.duration': r.durationMs,
      ...(r.method !== undefined ? { 'request.method': r.method } : {}),
      ...(r.path !== undefined ? { 'request.path': r.path } : {}),
      ...(r.authority !== undefined ? { 'request.host': r.authority } : {}),
      'request.protocol': r.protocol,
      'connection.mtls': this.role === 'waypoint',
      ...(r.error !== undefined ? { 'connection.error': r.error } : {}),
      ...(r.sourceIdentity ? { 'source.principal': r.sourceIdentity } : {}),
      'destination.port': f.port,
      ...(r.service !== undefined ? { 'destination.service': r.service } : {}),
    }));
  }

  /** An L4 stream was established (count it as opened). */
  streamOpened(f: StreamFacts): void {
    this.metrics?.tcpOpened({ peer: f.peer ?? UNKNOWN_PEER, destination: this.destination(f.serviceKey, f.endpoint), security: this.security(f.endpoint), flags: '-' });
  }

  /**
   * An L4 stream ended (`opened`: streamOpened was called for it) or was refused (not opened: it is
   * counted as opened and closed at once, with its flags). Bytes are the record's.
   */
  streamClosed(r: AccessRecord, f: StreamFacts, opened: boolean): void {
    const destination = this.destination(f.serviceKey, f.endpoint);
    if (destination.destination_service !== 'unknown') r.service = destination.destination_service;
    if (this.metrics) {
      const outcome = { peer: f.peer ?? UNKNOWN_PEER, destination, security: this.security(f.endpoint), flags: opened ? '-' : r.responseFlags };
      if (!opened) this.metrics.tcpOpened(outcome);
      this.metrics.tcpClosed(outcome, r.bytesReceived ?? 0, r.bytesSent ?? 0);
    }
    this.log(r, f.config, () => ({
      'response.flags': r.responseFlags,
      'response.duration': r.durationMs,
      'request.protocol': 'TCP',
      'connection.mtls': this.role === 'waypoint',
      ...(r.error !== undefined ? { 'connection.error': r.error } : {}),
      ...(r.sourceIdentity ? { 'source.principal': r.sourceIdentity } : {}),
      'destination.port': f.port,
      ...(r.service !== undefined ? { 'destination.service': r.service } : {}),
    }));
  }

  private log(r: AccessRecord, config: WaypointConfig | undefined, attributes: () => FilterAttributes): void {
    const accessLog = this.o.accessLog;
    if (!accessLog.isLevelEnabled('info')) return;
    const policy = accessLogPolicy(config, (filter, message) => this.o.logger.warn({ filter, err: message }, 'access log filter invalid; logging every entry'));
    if (admitted(policy, attributes)) writeAccessLog(accessLog, r);
  }

  /** `mutual_tls` / `none` (see the file comment). */
  private security(endpoint: Endpoint | undefined): string {
    if (this.role === 'waypoint') return 'mutual_tls';
    return endpoint?.hbone ? 'mutual_tls' : 'none';
  }

  private destination(serviceKey: string | undefined, endpoint: Endpoint | undefined): DestinationLabels {
    if (endpoint) {
      let d = this.byEndpoint.get(endpoint);
      if (!d) this.byEndpoint.set(endpoint, (d = destinationOf(serviceKey, endpoint, this.o.clusterId)));
      return d;
    }
    const key = serviceKey ?? '';
    let d = this.byService.get(key);
    if (!d) this.byService.set(key, (d = destinationOf(serviceKey, undefined, this.o.clusterId)));
    return d;
  }
}
