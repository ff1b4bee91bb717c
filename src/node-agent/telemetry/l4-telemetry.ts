/**
 * One place for what the node agent's proxies report per L4 connection: the Istio metrics
 * (l4-metrics.ts), one JSON access-log line (Istio/ztunnel field names, DESIGN §8), and the
 * denial ring (denials.ts).
 *
 * Flow: a proxy opens an `L4Connection` when it accepts a connection, fills in the facts as it
 * learns them (source, destination, service, mTLS), then ends it exactly once with `refused`
 * (nothing relayed: counted opened + closed with response_flags, logged with the reason, a policy
 * denial or route refusal recorded) or `established` … `finished` (metered while it lives).
 *
 * Access log:
 * - `bytes_sent` / `bytes_recv` are from the local pod's view, as ztunnel logs them: outbound
 *   `bytes_sent` = what the source pod sent (request), inbound `bytes_sent` = what the destination
 *   pod sent (response).
 * - `src.workload` / `dst.workload` carry the workload uid (`Kubernetes//Pod/<ns>/<pod>`), with
 *   `src.namespace` / `dst.namespace`; denials add `policy` and `rule`, refusals `response_flags`
 *   and `reason`.
 * - Each line passes `accessLogGate(telemetryFor(...).accessLogging)` for the local pod (the source
 *   outbound, the destination inbound; the root namespace's settings when unknown). Gates are
 *   compiled once per settings object (the xDS source replaces objects on change), so a filter is
 *   never compiled per connection. Local-file mode has no Telemetry: DEFAULT_TELEMETRY (all logged).
 */
import type { Registry } from 'prom-client';
import type { LabelSet, TcpLabel } from '../../telemetry/istio-labels.js';
import { accessLogGate, ALWAYS, NEVER, type FilterAttributes, type LogFilter } from '../../telemetry/log-filter.js';
import type { Logger } from '../../telemetry/logger.js';
import { telemetryFor, type AccessLogSettings, type NamespaceTelemetry } from '../../telemetry/telemetry-config.js';
import type { Service, Workload } from '../state/types.js';
import { DenialLog, type DenialRecord } from './denials.js';
import { L4LabelCache, RESPONSE_FLAGS, spiffeIdentity, type Reporter, type ResponseFlag } from './l4-labels.js';
import { L4Metrics, type L4Bytes, type L4Meter } from './l4-metrics.js';

/** One JSON access-log line per connection, Istio's field names (DESIGN §8). */
export interface AccessLogEntry {
  direction: 'outbound' | 'inbound';
  'src.addr': string;
  'src.workload'?: string;
  'src.namespace'?: string;
  'src.identity'?: string;
  'dst.addr': string;
  'dst.hbone_addr'?: string;
  'dst.service'?: string;
  'dst.workload'?: string;
  'dst.namespace'?: string;
  'dst.identity'?: string;
  bytes_sent: number;
  bytes_recv: number;
  duration: string;
  error?: string;
  reason?: string;
  response_flags?: string;
  policy?: string;
  rule?: string;
}

/** The Root namespace whose Telemetry is mesh-wide, when the agent is not told otherwise (the controller's default). */
export const DEFAULT_TELEMETRY_ROOT_NAMESPACE = 'amesh-system';

const NO_TELEMETRY: ReadonlyMap<string, NamespaceTelemetry> = new Map();

export interface L4TelemetryOptions {
  registry: Registry;
  /** The agent's cluster id (workloads without one are labelled with it). */
  clusterId: string;
  /** The Telemetry per namespace from xDS; absent (local-file mode) = none = DEFAULT_TELEMETRY. */
  telemetry?: () => ReadonlyMap<string, NamespaceTelemetry>;
  rootNamespace?: string;
  maxSeries?: number;
  denialCapacity?: number;
  /** Warnings (an invalid access-log filter); default none. */
  logger?: Logger;
}

export class L4Telemetry {
  readonly metrics: L4Metrics;
  readonly denials: DenialLog;
  readonly clusterId: string;
  private readonly rootNamespace: string;
  private readonly telemetry: () => ReadonlyMap<string, NamespaceTelemetry>;
  private readonly gates = new WeakMap<AccessLogSettings, LogFilter>();
  /** Per trust domain (the state's; one in practice). */
  private readonly labelCaches = new Map<string, L4LabelCache>();

  constructor(private readonly o: L4TelemetryOptions) {
    this.metrics = new L4Metrics(o.registry, o.maxSeries !== undefined ? { maxSeries: o.maxSeries } : {});
    this.denials = new DenialLog(o.denialCapacity);
    this.clusterId = o.clusterId;
    this.rootNamespace = o.rootNamespace ?? DEFAULT_TELEMETRY_ROOT_NAMESPACE;
    this.telemetry = o.telemetry ?? (() => NO_TELEMETRY);
  }

  /** The access-log gate of `local` (the pod the agent serves on this connection). */
  gate(local: { uid: string; namespace: string } | undefined): LogFilter {
    const settings = telemetryFor(this.telemetry(), this.rootNamespace, local).accessLogging;
    let gate = this.gates.get(settings);
    if (!gate) {
      gate = accessLogGate(settings, (err) => this.o.logger?.warn({ err: err.describe(), filter: settings.filter }, 'access log: invalid Telemetry filter; logging every connection'));
      this.gates.set(settings, gate);
    }
    return gate;
  }

  /** The label sets of connections under `trustDomain` (memoized per connection shape). */
  labelCache(trustDomain: string): L4LabelCache {
    let cache = this.labelCaches.get(trustDomain);
    if (!cache) this.labelCaches.set(trustDomain, (cache = new L4LabelCache({ trustDomain, clusterId: this.clusterId })));
    return cache;
  }

  /** Begins one connection's telemetry; `log` is the access logger to write its line to. */
  connection(log: Logger, reporter: Reporter, trustDomain: string, entry: AccessLogEntry): L4Connection {
    return new L4Connection(this, log, reporter, trustDomain, entry);
  }
}

/** A refusal's reason; `denial` when a policy decided (its name and rule go to the log and the ring). */
export interface Refusal {
  flags: ResponseFlag;
  /** The access-log `error` (kept short: `refused`, `401`, …). */
  error: string;
  reason: string;
  denial?: { policy: string; rule: string };
  /** The log message; default `connection complete`. */
  msg?: string;
  /** false: not recorded in the denial ring (the other side of a same-node connection already was). */
  record?: boolean;
}

export class L4Connection {
  private readonly start = process.hrtime.bigint();
  private ended = false;
  private meter: L4Meter | undefined;
  private closeError: string | undefined;
  source: Workload | undefined;
  sourceIdentity: string | null | undefined;
  destination: Workload | undefined;
  destinationIdentity: string | undefined;
  service: Service | undefined;
  destinationPort: number | undefined;
  mtls = false;

  constructor(
    private readonly t: L4Telemetry,
    private readonly log: Logger,
    readonly reporter: Reporter,
    private readonly trustDomain: string,
    readonly entry: AccessLogEntry,
  ) {}

  /** The source pod (and its identity: the peer certificate's inbound, the state's outbound). */
  setSource(w: Workload | undefined, identity: string | null | undefined): void {
    this.source = w;
    this.sourceIdentity = identity;
    if (w) {
      this.entry['src.workload'] = w.uid;
      this.entry['src.namespace'] = w.namespace;
    }
    if (identity) this.entry['src.identity'] = identity;
  }

  /** The destination pod (the mTLS peer for tunnels: a waypoint pod through a waypoint). */
  setDestination(w: Workload | undefined, identity?: string): void {
    this.destination = w;
    this.destinationIdentity = identity;
    if (w) {
      this.entry['dst.workload'] = w.uid;
      this.entry['dst.namespace'] = w.namespace;
    }
    if (identity) this.entry['dst.identity'] = identity;
  }

  setService(s: Service | undefined): void {
    this.service = s;
    if (s) this.entry['dst.service'] = s.hostname;
  }

  /** The pod whose Telemetry decides the access log: the source outbound, the destination inbound. */
  private get local(): Workload | undefined {
    return this.reporter === 'source' ? this.source : this.destination;
  }

  /**
   * Looked up once, at the outcome (refused or established), and not kept: a held connection
   * carrying its own (two dozen strings in a dictionary-mode object, ~1 KB) was the largest
   * JavaScript object per connection. The cache shares one frozen set per connection shape.
   */
  private labelSet(flags: ResponseFlag): LabelSet<TcpLabel> {
    return this.t.labelCache(this.trustDomain).labels({
      reporter: this.reporter,
      source: this.source,
      sourceIdentity: this.sourceIdentity,
      destination: this.destination,
      destinationIdentity: this.destinationIdentity,
      service: this.service,
      mtls: this.mtls,
      responseFlags: flags,
    });
  }

  /** Nothing was relayed: counted opened + closed with `flags`, logged, a denial / route refusal recorded. */
  refused(r: Refusal): void {
    if (this.ended) return;
    this.ended = true;
    this.t.metrics.refused(this.labelSet(r.flags));
    const e = this.entry;
    e.error = r.error;
    e.reason = r.reason;
    e.response_flags = r.flags;
    if (r.denial) {
      e.policy = r.denial.policy;
      e.rule = r.denial.rule;
    }
    if (r.record !== false && (r.denial || (this.reporter === 'source' && r.flags !== RESPONSE_FLAGS.connectFailure))) {
      this.t.denials.record(denialRecord(this, r));
    }
    this.write(r.msg ?? 'connection complete', r.flags);
  }

  /** Relaying starts: opened now, bytes metered while it lives (`read` = the socket counters). */
  established(read: () => L4Bytes): void {
    if (this.ended || this.meter) return;
    this.meter = this.t.metrics.open(this.labelSet(RESPONSE_FLAGS.none), read);
  }

  /** A policy change is closing the live connection: its line says so. */
  closedBy(reason: string): void {
    this.closeError = `closed by a policy change: ${reason}`;
  }

  /** The relay ended: closed with the exact totals, one log line. */
  finished(bytes: L4Bytes, error?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.meter?.close(bytes);
    const e = this.entry;
    // The local pod's view: outbound it sent the request, inbound the response.
    e.bytes_sent = this.reporter === 'source' ? bytes.received : bytes.sent;
    e.bytes_recv = this.reporter === 'source' ? bytes.sent : bytes.received;
    const why = this.closeError ?? error;
    if (why) e.error = why;
    this.write('connection complete', RESPONSE_FLAGS.none);
  }

  /** The source's SPIFFE URI: the one it proved, else (outbound) the state's; none for plaintext peers. */
  private principal(): string | undefined {
    if (this.sourceIdentity !== undefined) return this.sourceIdentity ?? undefined;
    return this.source ? spiffeIdentity(this.source, this.trustDomain) : undefined;
  }

  private write(msg: string, flags: ResponseFlag): void {
    const gate = this.t.gate(this.local);
    if (gate === NEVER) return;
    const ms = Number((process.hrtime.bigint() - this.start) / 1_000_000n);
    const e = this.entry;
    e.duration = `${ms}ms`;
    // Without a filter (the default) nothing reads the attributes: not built per connection.
    if (gate !== ALWAYS && !gate(this.attributes(flags, ms))) return;
    if (e.error) this.log.warn(e, msg);
    else this.log.info(e, msg);
  }

  /** What a Telemetry access-log filter sees of this connection. */
  private attributes(flags: ResponseFlag, ms: number): FilterAttributes {
    const principal = this.principal();
    const error = this.entry.error;
    return {
      'response.flags': flags,
      'response.duration': ms,
      'connection.mtls': this.mtls,
      ...(error ? { 'connection.error': error } : {}),
      ...(principal ? { 'source.principal': principal } : {}),
      ...(this.destinationPort !== undefined ? { 'destination.port': this.destinationPort } : {}),
      ...(this.service ? { 'destination.service': this.service.hostname } : {}),
    };
  }
}

function denialRecord(c: L4Connection, r: Refusal): Omit<DenialRecord, 'time'> {
  const e = c.entry;
  return {
    direction: e.direction,
    src: e['src.addr'],
    dst: e['dst.addr'],
    sourceIdentity: c.sourceIdentity ?? null,
    ...(c.destination ? { destinationWorkload: c.destination.uid } : {}),
    policy: r.denial?.policy ?? '(none)',
    rule: r.denial?.rule ?? '(none)',
    reason: r.reason,
  };
}
