/**
 * Istio's standard metrics for the L7 proxies (DESIGN §8), on the proxy's Prometheus registry
 * (AdminServers.registry, `/metrics` on 15020):
 *   istio_requests_total (counter), istio_request_duration_milliseconds, istio_request_bytes,
 *   istio_response_bytes (histograms) with HTTP_LABELS, for every HTTP / gRPC request;
 *   istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
 *   istio_tcp_received_bytes_total, istio_tcp_sent_bytes_total with TCP_LABELS, for L4 streams
 *   (waypoint passthrough, gateway TLS / TCP routes).
 *
 * Labels: `reporter` is `waypoint` at a waypoint and `source` at an ingress gateway (Istio's);
 * source_* describe the downstream peer (per connection: its certificate's SPIFFE identity and
 * the HBONE CONNECT `baggage` the node agent sends — `peerFromBaggage`; at the gateway, the
 * gateway itself), destination_* the service of the cluster and the chosen endpoint's `meta`
 * (`destinationOf`). Anything unknown is `unknown`; SeriesGuard bounds the label sets per metric.
 *
 * Cost per request: the four HTTP metrics are one series object found through two map lookups
 * cached per (peer labels, destination) — both objects are built once per connection / per
 * endpoint of a config — then by code, flags, gRPC status and protocol (no key string). A series
 * keeps its counts in plain numbers and typed arrays; Prometheus text is made only on a scrape.
 * prom-client's own Counter / Histogram hash and validate the whole label object on every
 * observation (25 labels × 4 metrics per request), a visible share of the proxy's CPU: they are
 * still the registry and the exposition format here, fed by collectors that read our series.
 *
 * Buckets: Istio sets no histogram_bucket_settings in its bootstrap, so every istio_* histogram —
 * durations and byte sizes alike — has Envoy's default bounds (HISTOGRAM_BUCKETS).
 */
import type { Metric, Registry } from 'prom-client';
import { parseBaggage } from '../hbone/headers.js';
import { parseSpiffeUri } from '../identity/spiffe.js';
import { DESTINATION_LABELS, fillLabels, HTTP_LABELS, SeriesGuard, SOURCE_LABELS, TCP_LABELS, type DestinationLabel, type HttpLabel, type LabelSet, type SourceLabel, type TcpLabel } from '../telemetry/istio-labels.js';
import type { Endpoint } from './config.js';

/** Envoy's default histogram bounds (source/common/stats/histogram_impl.cc), Istio's for all istio_* histograms. */
export const HISTOGRAM_BUCKETS: readonly number[] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

export type Reporter = 'waypoint' | 'source';

/** The source_* labels of one downstream peer (one object per connection, or the gateway's one). */
export type PeerLabels = Readonly<Record<SourceLabel, string>>;
/** The destination_* labels of one (cluster, endpoint), or of a service when no endpoint was chosen. */
export type DestinationLabels = Readonly<Record<DestinationLabel, string>>;

export const UNKNOWN_PEER: PeerLabels = Object.freeze(peerLabels({}));
export const UNKNOWN_DESTINATION: DestinationLabels = Object.freeze(destinationLabels({}));

function peerLabels(p: Partial<Record<SourceLabel, string | undefined>>): PeerLabels {
  return fillLabels(SOURCE_LABELS, p);
}

function destinationLabels(p: Partial<Record<DestinationLabel, string | undefined>>): DestinationLabels {
  return fillLabels(DESTINATION_LABELS, p);
}

/** Baggage keys that are not the workload's own `k8s.<type>.name`. */
const NOT_WORKLOAD_KEYS = new Set(['k8s.cluster.name', 'k8s.namespace.name', 'k8s.node.name']);

/**
 * The source_* labels of an HBONE peer: its SPIFFE identity (principal, and the namespace when
 * the baggage has none) and the CONNECT `baggage` (hbone/headers.ts buildBaggage: cluster,
 * namespace, `k8s.<type>.name`, service.name / service.version = canonical service / revision).
 */
export function peerFromBaggage(principal: string, baggage: string | undefined): PeerLabels {
  const b = parseBaggage(baggage);
  let workload: string | undefined;
  for (const [key, value] of b) {
    if (key.startsWith('k8s.') && key.endsWith('.name') && !NOT_WORKLOAD_KEYS.has(key)) {
      workload = value;
      break;
    }
  }
  const identityNamespace = principal ? parseSpiffeUri(principal)?.namespace : undefined;
  const service = b.get('service.name');
  const version = b.get('service.version');
  return peerLabels({
    source_workload: workload,
    source_workload_namespace: b.get('k8s.namespace.name') ?? identityNamespace,
    source_principal: principal,
    source_app: service,
    source_version: version,
    source_canonical_service: service,
    source_canonical_revision: version,
    source_cluster: b.get('k8s.cluster.name'),
  });
}

/** The proxy itself as the source (an ingress gateway reports `reporter="source"` for its own requests). */
export function selfPeer(o: { principal: string; workload: string; namespace: string; cluster: string }): PeerLabels {
  return peerLabels({
    source_workload: o.workload,
    source_workload_namespace: o.namespace,
    source_principal: o.principal,
    source_app: o.workload,
    source_version: 'latest',
    source_canonical_service: o.workload,
    source_canonical_revision: 'latest',
    source_cluster: o.cluster,
  });
}

/** `namespace/hostname` → [namespace, hostname]. */
function splitServiceKey(key: string): [string | undefined, string | undefined] {
  const slash = key.indexOf('/');
  return slash < 0 ? [undefined, key || undefined] : [key.slice(0, slash), key.slice(slash + 1)];
}

/**
 * The destination_* labels: the service (`namespace/hostname` of the cluster, or of the service
 * port when no cluster was reached), the endpoint's identity and `meta` (absent → unknown).
 */
export function destinationOf(serviceKey: string | undefined, endpoint: Endpoint | undefined, clusterId: string | undefined): DestinationLabels {
  const [namespace, hostname] = splitServiceKey(serviceKey ?? '');
  const meta = endpoint?.meta;
  return destinationLabels({
    destination_service: hostname,
    destination_service_namespace: namespace,
    destination_service_name: hostname?.split('.')[0],
    destination_workload: meta?.workloadName,
    destination_workload_namespace: meta?.namespace,
    destination_principal: endpoint?.identity,
    destination_app: meta?.canonicalName,
    destination_version: meta?.canonicalRevision,
    destination_canonical_service: meta?.canonicalName,
    destination_canonical_revision: meta?.canonicalRevision,
    destination_cluster: endpoint ? clusterId : undefined,
  });
}

/** Counts per bucket (not cumulative; the +Inf overflow last), sum and count of one series. */
class HistogramData {
  readonly counts = new Float64Array(HISTOGRAM_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(value: number): void {
    let i = 0;
    while (i < HISTOGRAM_BUCKETS.length && value > HISTOGRAM_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

class HttpSeries {
  requests = 0;
  readonly duration = new HistogramData();
  readonly requestBytes = new HistogramData();
  readonly responseBytes = new HistogramData();
  constructor(readonly labels: LabelSet<HttpLabel>) {}
}

class TcpSeries {
  opened = 0;
  closed = 0;
  received = 0;
  sent = 0;
  constructor(readonly labels: LabelSet<TcpLabel>) {}
}

/** One request as the metrics see it. */
export interface RequestOutcome {
  peer: PeerLabels;
  /** Identity of the destination labels, cached per object: an Endpoint, a Cluster or a service key holder. */
  destination: DestinationLabels;
  /** `mutual_tls` or `none`. */
  security: string;
  /** `http` or `grpc`. */
  protocol: string;
  /** Undefined: no response (the downstream went away first) → `0`, as Envoy reports. */
  status: number | undefined;
  /** Envoy flags, comma separated, `-` when none. */
  flags: string;
  grpcStatus: number | undefined;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

/** One L4 stream as the metrics see it. */
export interface TcpOutcome {
  peer: PeerLabels;
  destination: DestinationLabels;
  security: string;
  flags: string;
}

/**
 * The series of one (peer, destination), by response code, then flags, then the few
 * (gRPC status, protocol, security) combinations seen — no string key to build and hash per
 * request (a template-string key was ~1 µs of the request's metrics work).
 */
type TailCache = Map<number, Map<string, Array<{ grpcStatus: number | undefined; protocol: string; security: string; series: HttpSeries }>>>;

type ValueWithName = { value: number; labels: Record<string, string | number>; metricName?: string };

/** A prom-client metric whose values come from our series at scrape time (see the file comment). */
class SeriesCollector {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly values: () => ValueWithName[],
  ) {}

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ValueWithName[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values() });
  }

  reset(): void {
    // Counts live in the series; a registry reset is not supported (Prometheus counters only grow).
  }
}

function histogramValues(name: string, series: Iterable<HttpSeries>, pick: (s: HttpSeries) => HistogramData): ValueWithName[] {
  const out: ValueWithName[] = [];
  for (const s of series) {
    const h = pick(s);
    if (h.count === 0) continue;
    let cumulative = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS.length; i++) {
      cumulative += h.counts[i]!;
      out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: HISTOGRAM_BUCKETS[i]! }, value: cumulative });
    }
    out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: h.count });
    out.push({ metricName: `${name}_sum`, labels: s.labels, value: h.sum });
    out.push({ metricName: `${name}_count`, labels: s.labels, value: h.count });
  }
  return out;
}

export interface L7MetricsOptions {
  reporter: Reporter;
  /** Max distinct label sets per metric (SeriesGuard); default DEFAULT_MAX_SERIES. */
  maxSeries?: number;
}

export class L7Metrics {
  readonly reporter: Reporter;
  private readonly guard: SeriesGuard;
  /** Every label set → its series (shared by all cache entries that produce the same labels). */
  private readonly http = new Map<string, HttpSeries>();
  private readonly tcp = new Map<string, TcpSeries>();
  /** peer → destination → code → flags → (gRPC status, protocol, security) → series. Weak: dies with its connection / config. */
  private readonly httpCache = new WeakMap<PeerLabels, WeakMap<DestinationLabels, TailCache>>();

  constructor(registry: Registry, o: L7MetricsOptions) {
    this.reporter = o.reporter;
    this.guard = new SeriesGuard(o.maxSeries);
    const http = (): Iterable<HttpSeries> => this.http.values();
    const tcp = (): TcpSeries[] => [...this.tcp.values()];
    const collectors = [
      new SeriesCollector('istio_requests_total', 'Requests handled by the proxy (Istio standard metric).', 'counter', () => [...http()].map((s) => ({ labels: s.labels, value: s.requests }))),
      new SeriesCollector('istio_request_duration_milliseconds', 'Request duration in milliseconds, first request byte to last response byte.', 'histogram', () =>
        histogramValues('istio_request_duration_milliseconds', http(), (s) => s.duration),
      ),
      new SeriesCollector('istio_request_bytes', 'HTTP request body sizes in bytes.', 'histogram', () => histogramValues('istio_request_bytes', http(), (s) => s.requestBytes)),
      new SeriesCollector('istio_response_bytes', 'HTTP response body sizes in bytes.', 'histogram', () => histogramValues('istio_response_bytes', http(), (s) => s.responseBytes)),
      new SeriesCollector('istio_tcp_connections_opened_total', 'L4 connections opened (Istio standard metric).', 'counter', () => tcp().map((s) => ({ labels: s.labels, value: s.opened }))),
      new SeriesCollector('istio_tcp_connections_closed_total', 'L4 connections closed.', 'counter', () => tcp().map((s) => ({ labels: s.labels, value: s.closed }))),
      new SeriesCollector('istio_tcp_received_bytes_total', 'Bytes received from the downstream on L4 connections.', 'counter', () => tcp().map((s) => ({ labels: s.labels, value: s.received }))),
      new SeriesCollector('istio_tcp_sent_bytes_total', 'Bytes sent to the downstream on L4 connections.', 'counter', () => tcp().map((s) => ({ labels: s.labels, value: s.sent }))),
    ];
    // prom-client's registry takes any object with name/help/type/get(); its TS type names only its own classes.
    for (const c of collectors) registry.registerMetric(c as unknown as Metric);
  }

  /** Label sets folded into `overflow`, per metric (for dumps). */
  get folded(): ReadonlyMap<string, number> {
    return this.guard.folded;
  }

  /** Records one finished request in all four HTTP metrics. */
  request(o: RequestOutcome): void {
    const series = this.httpSeries(o);
    series.requests++;
    series.duration.observe(o.durationMs);
    series.requestBytes.observe(o.requestBytes);
    series.responseBytes.observe(o.responseBytes);
  }

  /** An L4 stream opened (or was refused: opened and closed at once, with its flags). */
  tcpOpened(o: TcpOutcome): void {
    this.tcpSeries(o).opened++;
  }

  /** An L4 stream closed after `received` bytes from and `sent` bytes to the downstream. */
  tcpClosed(o: TcpOutcome, received: number, sent: number): void {
    const s = this.tcpSeries(o);
    s.closed++;
    s.received += received;
    s.sent += sent;
  }

  private httpSeries(o: RequestOutcome): HttpSeries {
    let byDestination = this.httpCache.get(o.peer);
    if (!byDestination) this.httpCache.set(o.peer, (byDestination = new WeakMap()));
    let byStatus = byDestination.get(o.destination);
    if (!byStatus) byDestination.set(o.destination, (byStatus = new Map()));
    const status = o.status ?? 0;
    let byFlags = byStatus.get(status);
    if (!byFlags) byStatus.set(status, (byFlags = new Map()));
    let tails = byFlags.get(o.flags);
    if (!tails) byFlags.set(o.flags, (tails = []));
    for (const t of tails) if (t.grpcStatus === o.grpcStatus && t.protocol === o.protocol && t.security === o.security) return t.series;
    const series = this.newHttpSeries(o);
    tails.push({ grpcStatus: o.grpcStatus, protocol: o.protocol, security: o.security, series });
    return series;
  }

  private newHttpSeries(o: RequestOutcome): HttpSeries {
    const labels = fillLabels(HTTP_LABELS, {
      reporter: this.reporter,
      ...o.peer,
      ...o.destination,
      request_protocol: o.protocol,
      response_flags: o.flags,
      connection_security_policy: o.security,
      response_code: o.status ?? 0,
      grpc_response_status: o.grpcStatus,
    });
    const admitted = this.guard.admit('istio_requests_total', labels);
    const key = JSON.stringify(admitted);
    let series = this.http.get(key);
    if (!series) this.http.set(key, (series = new HttpSeries(admitted)));
    return series;
  }

  private tcpSeries(o: TcpOutcome): TcpSeries {
    const labels = fillLabels(TCP_LABELS, {
      reporter: this.reporter,
      ...o.peer,
      ...o.destination,
      request_protocol: 'tcp',
      response_flags: o.flags,
      connection_security_policy: o.security,
    });
    const admitted = this.guard.admit('istio_tcp_connections_opened_total', labels);
    const key = JSON.stringify(admitted);
    let series = this.tcp.get(key);
    if (!series) this.tcp.set(key, (series = new TcpSeries(admitted)));
    return series;
  }
}

