/**
 * The dashboard's model: successive scrapes of the proxies' Prometheus metrics → a service graph
 * (nodes = workloads and services, edges = traffic with rate, error %, p99 and mTLS) and golden
 * signals per service with a short history for charts. Pure: no I/O and no clock (every scrape
 * carries its time), so tests drive it with fixtures.
 *
 * Invariants and choices:
 * - Rates are over a window: the current scrape of a target against its oldest kept scrape no
 *   older than `windowMs` (at least the previous one). A counter that went down was reset (the
 *   proxy restarted): its whole current value is the increase, as Prometheus' rate() assumes. A
 *   series that is new in a target scraped before counts from 0 (prom-client creates a series at
 *   its first increment, so its first requests would otherwise be lost).
 * - One reporter per flow, so traffic seen by several proxies is not counted twice: a flow is
 *   (protocol, source workload, destination service, destination workload); the reporter is
 *   `waypoint` if it reported the flow, else `destination`, else `source` (L4: the destination's
 *   node agent, falling back to the source's when the destination is outside the mesh or its
 *   agent was not scraped).
 * - L7 beats L4: a TCP flow is dropped when an HTTP flow has the same endpoints (or the same
 *   source and destination workloads: a gateway dials endpoints, so its L4 side names no service), and the L4 hops
 *   to and from a waypoint that reports L7 metrics itself are folded into its HTTP edges
 *   (edge.via names the waypoint) — Kiali does the same.
 * - Edges go source → service → destination workload when the destination service is known
 *   (Kiali's versioned-app graph: the canary split shows on the service's outgoing edges), else
 *   straight from workload to workload. An unknown source is one node, `unknown`.
 * - Errors: HTTP responses ≥ 400 or 0 (no response); TCP connections whose response_flags is
 *   not `-`. mTLS: the share of traffic with connection_security_policy="mutual_tls"; an edge has
 *   a padlock only when all of it is.
 * - An edge that carried traffic while the dashboard watched stays, at rate 0, for `idleMs`
 *   (default 5 min) after its last traffic, so the graph does not flicker between scrapes; traffic
 *   older than the dashboard (counters that never move) draws nothing — Kiali hides idle edges too.
 */
import { histogramQuantile, histogramSeries, labelKey, type HistogramBucket, type Labels, type MetricFamily } from './prometheus-text.js';

export type TargetRole = 'agent' | 'waypoint' | 'gateway' | 'unknown';

export interface WorkloadRef {
  namespace: string;
  name: string;
}

export interface ScrapeTarget {
  /** Stable id: `pod:<ns>/<name>` or the URL. */
  id: string;
  role: TargetRole;
  /** The workload the proxy is (a waypoint's or gateway's Deployment), when known. */
  workload?: WorkloadRef;
}

export interface ScrapeResult {
  target: ScrapeTarget;
  timeMs: number;
  /** Absent when the scrape failed. */
  families?: Map<string, MetricFamily>;
  error?: string;
  /** Parse problems (the rest of the scrape was used). */
  problems?: number;
}

export type Protocol = 'http' | 'tcp';
export type NodeKind = 'workload' | 'service' | 'waypoint' | 'gateway' | 'unknown';
export type MtlsState = 'mutual_tls' | 'partial' | 'none' | 'unknown';

export interface GraphNode {
  id: string;
  kind: NodeKind;
  name: string;
  namespace: string;
  app?: string;
  version?: string;
  label: string;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  protocol: Protocol;
  /** Requests (http) or opened connections (tcp) per second. */
  rate: number;
  /** 0..1; undefined without traffic. */
  errorRate: number | undefined;
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  /** Request + response bytes per second. */
  bytesPerSecond: number;
  mtls: MtlsState;
  reporter: string;
  /** The waypoint an HTTP edge went through (`ns/name`), when known. */
  via?: string;
  /** Response codes (http) or response flags (tcp) → per second. */
  codes: Record<string, number>;
  label: string;
}

export interface TargetStatus {
  id: string;
  role: TargetRole;
  workload?: string;
  ok: boolean;
  lastScrapeMs: number;
  error?: string;
  series: number;
  problems: number;
}

export interface GraphSnapshot {
  timeMs: number;
  /** Length of the rate window actually used (longest among targets), seconds. */
  windowSeconds: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
  targets: TargetStatus[];
}

export interface SignalPoint {
  /** Unix seconds (uPlot's x axis). */
  t: number;
  rps: number | null;
  errorPct: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** TCP connections opened per second. */
  cps: number | null;
  bytesInPerSecond: number | null;
  bytesOutPerSecond: number | null;
}

export interface ServiceSignals {
  id: string;
  /** Hostname, or `ns/workload` for pod-addressed traffic. */
  name: string;
  namespace: string;
  protocol: Protocol;
  latest: SignalPoint;
  history: SignalPoint[];
}

export interface GraphModelOptions {
  /** Rate window (default 30 s). */
  windowMs?: number;
  /** Points of history per service (default 360: 30 min at 5 s). */
  historyPoints?: number;
  /** Waypoint workloads known from Kubernetes (Gateways of class istio-waypoint), `ns/name`. */
  waypoints?: Iterable<string>;
  /** How long an edge stays after its last traffic (default 5 min). */
  idleMs?: number;
}

const REQUESTS = 'istio_requests_total';
const DURATION = 'istio_request_duration_milliseconds';
const REQUEST_BYTES = 'istio_request_bytes';
const RESPONSE_BYTES = 'istio_response_bytes';
const TCP_OPENED = 'istio_tcp_connections_opened_total';
const TCP_RECEIVED = 'istio_tcp_received_bytes_total';
const TCP_SENT = 'istio_tcp_sent_bytes_total';

const REPORTER_PRIORITY: Record<string, number> = { waypoint: 3, destination: 2, source: 1 };
const UNKNOWN = 'unknown';

// ---- pure helpers ---------------------------------------------------------------------------

export function formatRate(rate: number, unit: string): string {
  const digits = rate >= 100 ? 0 : rate > 0 && rate < 0.1 ? 2 : 1;
  return `${rate.toFixed(digits)} ${unit}`;
}

export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s`;
  if (ms < 1) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

export function formatPercent(fraction: number): string {
  const pct = fraction * 100;
  if (pct === 0) return '0%';
  if (pct < 1) return `${pct.toFixed(1)}%`;
  return `${Math.round(pct)}%`;
}

export function formatBytes(perSecond: number): string {
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
  let value = perSecond;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** "12.0 rps · 0% err · p99 4 ms 🔒" (http) or "0.4 conn/s · 12 kB/s 🔒" (tcp). */
export function edgeLabel(e: Pick<GraphEdge, 'protocol' | 'rate' | 'errorRate' | 'p99Ms' | 'bytesPerSecond' | 'mtls'>): string {
  const parts: string[] = [];
  if (e.protocol === 'http') {
    parts.push(formatRate(e.rate, 'rps'));
    if (e.errorRate !== undefined) parts.push(`${formatPercent(e.errorRate)} err`);
    if (e.p99Ms !== undefined) parts.push(`p99 ${formatMs(e.p99Ms)}`);
  } else {
    parts.push(formatRate(e.rate, 'conn/s'));
    if (e.bytesPerSecond > 0) parts.push(formatBytes(e.bytesPerSecond));
    if (e.errorRate !== undefined && e.errorRate > 0) parts.push(`${formatPercent(e.errorRate)} err`);
  }
  return parts.join(' · ') + (e.mtls === 'mutual_tls' ? ' 🔒' : '');
}

/** The role a target plays, from what it reports (for plain URLs). */
export function inferRole(families: Map<string, MetricFamily>): TargetRole {
  const reporters = new Set<string>();
  for (const s of families.get(REQUESTS)?.samples ?? []) reporters.add(s.labels.reporter ?? '');
  if (reporters.has('waypoint')) return 'waypoint';
  if (reporters.size > 0) return 'gateway';
  if (families.has(TCP_OPENED)) return 'agent';
  return 'unknown';
}

const workloadId = (namespace: string, name: string): string => `${namespace}/${name}`;

function isKnown(value: string | undefined): value is string {
  return value !== undefined && value !== '' && value !== UNKNOWN;
}

// ---- windows: per-target increases -----------------------------------------------------------

/** Flat sample values of one scrape: `sampleName|labelKey` → value. */
type Values = Map<string, number>;

interface Kept {
  timeMs: number;
  values: Values;
}

const INTERESTING = [REQUESTS, DURATION, REQUEST_BYTES, RESPONSE_BYTES, TCP_OPENED, TCP_RECEIVED, TCP_SENT];

function flatten(families: Map<string, MetricFamily>): Values {
  const values: Values = new Map();
  for (const name of INTERESTING) {
    for (const s of families.get(name)?.samples ?? []) values.set(`${s.name}|${labelKey(s.labels)}`, s.value);
  }
  return values;
}

/** Increase of one counter between two scrapes, with reset handling. */
export function increase(current: number, previous: number | undefined): number {
  if (previous === undefined) return current;
  return current >= previous ? current - previous : current;
}

/** A family of the current scrape with each value replaced by its increase since `reference`. */
function increases(family: MetricFamily | undefined, reference: Values): MetricFamily | undefined {
  if (!family) return undefined;
  return { ...family, samples: family.samples.map((s) => ({ ...s, value: increase(s.value, reference.get(`${s.name}|${labelKey(s.labels)}`)) })) };
}

// ---- flows -------------------------------------------------------------------------------------

interface Flow {
  protocol: Protocol;
  reporter: string;
  sourceNs: string;
  sourceName: string;
  sourceApp?: string;
  sourceVersion?: string;
  service: string;
  serviceName: string;
  serviceNs: string;
  destNs: string;
  destName: string;
  destApp?: string;
  destVersion?: string;
  via?: string;
  /** Per second. */
  rate: number;
  errors: number;
  /** Traffic (connections or requests, plus bytes) with and without mutual TLS in the window. */
  mtls: number;
  plaintext: number;
  /** Whether any series of the flow, busy or idle, carries mutual_tls / something else. */
  mtlsSeries: boolean;
  plaintextSeries: boolean;
  bytesIn: number;
  bytesOut: number;
  codes: Record<string, number>;
  /** Bucket increases (not per second: quantiles need counts only). */
  buckets: Map<number, number>;
}

/** Identity of a flow without its reporter. */
const flowIdentity = (f: Pick<Flow, 'protocol' | 'sourceNs' | 'sourceName' | 'service' | 'destNs' | 'destName'>): string =>
  [f.protocol, f.sourceNs, f.sourceName, f.service, f.destNs, f.destName].join('\u0000');

function flowOf(protocol: Protocol, labels: Labels, via: string | undefined): Flow {
  const l = (k: string): string => labels[k] ?? UNKNOWN;
  const flow: Flow = {
    protocol,
    reporter: l('reporter'),
    sourceNs: l('source_workload_namespace'),
    sourceName: l('source_workload'),
    service: l('destination_service'),
    serviceName: isKnown(labels.destination_service_name) ? labels.destination_service_name : l('destination_service').split('.')[0] ?? UNKNOWN,
    serviceNs: l('destination_service_namespace'),
    destNs: l('destination_workload_namespace'),
    destName: l('destination_workload'),
    rate: 0,
    errors: 0,
    mtls: 0,
    plaintext: 0,
    mtlsSeries: false,
    plaintextSeries: false,
    bytesIn: 0,
    bytesOut: 0,
    codes: {},
    buckets: new Map(),
  };
  if (isKnown(labels.source_app)) flow.sourceApp = labels.source_app;
  if (isKnown(labels.source_version)) flow.sourceVersion = labels.source_version;
  if (isKnown(labels.destination_app)) flow.destApp = labels.destination_app;
  if (isKnown(labels.destination_version)) flow.destVersion = labels.destination_version;
  if (via !== undefined) flow.via = via;
  return flow;
}

/** The flows one target reported in a window of `seconds`. */
function targetFlows(target: ScrapeTarget, families: Map<string, MetricFamily>, reference: Values, seconds: number): Flow[] {
  const flows = new Map<string, Flow>();
  const via = target.role === 'waypoint' && target.workload ? workloadId(target.workload.namespace, target.workload.name) : undefined;
  const get = (protocol: Protocol, labels: Labels): Flow => {
    const probe = flowOf(protocol, labels, protocol === 'http' ? via : undefined);
    const key = `${probe.reporter}\u0000${flowIdentity(probe)}`;
    const existing = flows.get(key);
    if (existing) return existing;
    flows.set(key, probe);
    return probe;
  };
  const security = (f: Flow, labels: Labels, amount: number): void => {
    if (labels.connection_security_policy === 'mutual_tls') {
      f.mtls += amount;
      f.mtlsSeries = true;
    } else {
      f.plaintext += amount;
      f.plaintextSeries = true;
    }
  };

  for (const s of increases(families.get(REQUESTS), reference)?.samples ?? []) {
    const f = get('http', s.labels);
    const perSecond = s.value / seconds;
    const code = s.labels.response_code ?? UNKNOWN;
    f.rate += perSecond;
    f.codes[code] = (f.codes[code] ?? 0) + perSecond;
    const numeric = Number(code);
    if (!Number.isFinite(numeric) || numeric === 0 || numeric >= 400) f.errors += perSecond;
    security(f, s.labels, perSecond);
  }
  const duration = increases(families.get(DURATION), reference);
  if (duration) {
    for (const h of histogramSeries(duration)) {
      const f = get('http', h.labels);
      for (const b of h.buckets) f.buckets.set(b.le, (f.buckets.get(b.le) ?? 0) + b.count);
    }
  }
  for (const [name, field] of [
    [REQUEST_BYTES, 'bytesIn'],
    [RESPONSE_BYTES, 'bytesOut'],
  ] as const) {
    const family = increases(families.get(name), reference);
    if (family) for (const h of histogramSeries(family)) get('http', h.labels)[field] += h.sum / seconds;
  }
  for (const s of increases(families.get(TCP_OPENED), reference)?.samples ?? []) {
    const f = get('tcp', s.labels);
    const perSecond = s.value / seconds;
    const flag = s.labels.response_flags ?? '-';
    f.rate += perSecond;
    f.codes[flag] = (f.codes[flag] ?? 0) + perSecond;
    if (flag !== '-' && flag !== '' && flag !== UNKNOWN) f.errors += perSecond;
    security(f, s.labels, perSecond);
  }
  for (const [name, field] of [
    [TCP_RECEIVED, 'bytesIn'],
    [TCP_SENT, 'bytesOut'],
  ] as const) {
    for (const s of increases(families.get(name), reference)?.samples ?? []) {
      const f = get('tcp', s.labels);
      f[field] += s.value / seconds;
      // Bytes on a long-lived connection count towards its security in windows without new connections.
      security(f, s.labels, s.value / seconds);
    }
  }
  return [...flows.values()];
}

/** Keeps, per flow identity, the flows of the best reporter present. */
export function chooseReporters<F extends Pick<Flow, 'protocol' | 'reporter' | 'sourceNs' | 'sourceName' | 'service' | 'destNs' | 'destName'>>(flows: readonly F[]): F[] {
  const best = new Map<string, number>();
  for (const f of flows) {
    const id = flowIdentity(f);
    best.set(id, Math.max(best.get(id) ?? 0, REPORTER_PRIORITY[f.reporter] ?? 0));
  }
  return flows.filter((f) => (REPORTER_PRIORITY[f.reporter] ?? 0) === best.get(flowIdentity(f)));
}

// ---- the model ----------------------------------------------------------------------------------

interface TargetState {
  target: ScrapeTarget;
  kept: Kept[];
  status: TargetStatus;
}

interface EdgeAccumulator {
  source: string;
  target: string;
  protocol: Protocol;
  rate: number;
  errors: number;
  mtls: number;
  plaintext: number;
  mtlsSeries: boolean;
  plaintextSeries: boolean;
  bytes: number;
  codes: Record<string, number>;
  buckets: Map<number, number>;
  reporters: Set<string>;
  via: Set<string>;
}

interface ServiceAccumulator {
  id: string;
  name: string;
  namespace: string;
  http: boolean;
  rps: number;
  errors: number;
  cps: number;
  bytesIn: number;
  bytesOut: number;
  buckets: Map<number, number>;
}

/** By the window's traffic; an idle edge by the labels of its series. */
function mtlsState(e: Pick<EdgeAccumulator, 'mtls' | 'plaintext' | 'mtlsSeries' | 'plaintextSeries'>): MtlsState {
  if (e.mtls + e.plaintext > 0) return e.plaintext === 0 ? 'mutual_tls' : e.mtls === 0 ? 'none' : 'partial';
  if (e.mtlsSeries && e.plaintextSeries) return 'partial';
  if (e.mtlsSeries) return 'mutual_tls';
  if (e.plaintextSeries) return 'none';
  return 'unknown';
}

function bucketsOf(map: Map<number, number>): HistogramBucket[] {
  return [...map.entries()].map(([le, count]) => ({ le, count }));
}

export class GraphModel {
  private readonly windowMs: number;
  private readonly historyPoints: number;
  private readonly idleMs: number;
  /** Flow identity → time of its last traffic. */
  private readonly lastActive = new Map<string, number>();
  private waypoints: Set<string>;
  private readonly targets = new Map<string, TargetState>();
  private readonly history = new Map<string, SignalPoint[]>();
  private readonly serviceMeta = new Map<string, Omit<ServiceSignals, 'latest' | 'history'>>();
  private snapshot: GraphSnapshot = { timeMs: 0, windowSeconds: 0, nodes: [], edges: [], targets: [] };

  constructor(o: GraphModelOptions = {}) {
    this.windowMs = o.windowMs ?? 30_000;
    this.historyPoints = o.historyPoints ?? 360;
    this.idleMs = o.idleMs ?? 300_000;
    this.waypoints = new Set(o.waypoints ?? []);
  }

  /** Waypoint workloads known from Kubernetes (`ns/name`); replaces the previous set. */
  setKnownWaypoints(waypoints: Iterable<string>): void {
    this.waypoints = new Set(waypoints);
  }

  /** One scrape round (every target, scraped at about the same time). */
  ingest(results: readonly ScrapeResult[]): GraphSnapshot {
    const flows: Flow[] = [];
    let windowSeconds = 0;
    let roundTime = 0;
    const l7Waypoints = new Set<string>();
    for (const r of results) {
      roundTime = Math.max(roundTime, r.timeMs);
      let state = this.targets.get(r.target.id);
      if (!state) {
        state = { target: r.target, kept: [], status: { id: r.target.id, role: r.target.role, ok: false, lastScrapeMs: r.timeMs, series: 0, problems: 0 } };
        this.targets.set(r.target.id, state);
      }
      const role = r.target.role === 'unknown' && r.families ? inferRole(r.families) : r.target.role;
      state.target = { ...r.target, role };
      state.status = {
        id: r.target.id,
        role,
        ...(r.target.workload ? { workload: workloadId(r.target.workload.namespace, r.target.workload.name) } : {}),
        ok: r.families !== undefined,
        lastScrapeMs: r.timeMs,
        ...(r.error !== undefined ? { error: r.error } : {}),
        series: r.families ? [...r.families.values()].reduce((n, f) => n + f.samples.length, 0) : 0,
        problems: r.problems ?? 0,
      };
      if (!r.families) continue;
      const values = flatten(r.families);
      const reference = state.kept.find((k) => r.timeMs - k.timeMs <= this.windowMs && k.timeMs < r.timeMs) ?? state.kept.filter((k) => k.timeMs < r.timeMs).at(-1);
      state.kept.push({ timeMs: r.timeMs, values });
      while (state.kept.length > 2 && r.timeMs - state.kept[0]!.timeMs > this.windowMs) state.kept.shift();
      if (!reference) continue;
      const seconds = (r.timeMs - reference.timeMs) / 1000;
      windowSeconds = Math.max(windowSeconds, seconds);
      const targetFlowList = targetFlows(state.target, r.families, reference.values, seconds);
      flows.push(...targetFlowList);
      if (role === 'waypoint' && state.target.workload && r.families.has(REQUESTS)) l7Waypoints.add(workloadId(state.target.workload.namespace, state.target.workload.name));
    }
    this.snapshot = this.build(flows, l7Waypoints, roundTime || this.snapshot.timeMs, windowSeconds);
    return this.snapshot;
  }

  graph(): GraphSnapshot {
    return this.snapshot;
  }

  services(): ServiceSignals[] {
    const out: ServiceSignals[] = [];
    for (const [id, meta] of this.serviceMeta) {
      const history = this.history.get(id) ?? [];
      const latest = history.at(-1);
      if (latest) out.push({ ...meta, latest, history: [...history] });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  private build(all: Flow[], l7Waypoints: Set<string>, timeMs: number, windowSeconds: number): GraphSnapshot {
    let flows = chooseReporters(all);
    const http = flows.filter((f) => f.protocol === 'http');
    const httpEnds = new Set(http.map((f) => flowIdentity({ ...f, protocol: 'tcp' })));
    // The same workloads with the service unknown on the L4 side (a gateway dials endpoints itself).
    const httpPairs = new Set(http.filter((f) => isKnown(f.destName)).map((f) => `${f.sourceNs}/${f.sourceName}\u0000${f.destNs}/${f.destName}`));
    flows = flows.filter((f) => {
      if (f.protocol === 'http') return true;
      if (httpEnds.has(flowIdentity(f)) || httpPairs.has(`${f.sourceNs}/${f.sourceName}\u0000${f.destNs}/${f.destName}`)) return false;
      return !l7Waypoints.has(workloadId(f.sourceNs, f.sourceName)) && !l7Waypoints.has(workloadId(f.destNs, f.destName));
    });
    flows = flows.filter((f) => {
      const id = `${f.reporter}\u0000${flowIdentity(f)}`;
      if (f.rate > 0 || f.bytesIn > 0 || f.bytesOut > 0) this.lastActive.set(id, timeMs);
      const last = this.lastActive.get(id);
      return last !== undefined && timeMs - last <= this.idleMs;
    });

    const gateways = new Set<string>();
    for (const s of this.targets.values()) if (s.target.role === 'gateway' && s.target.workload) gateways.add(workloadId(s.target.workload.namespace, s.target.workload.name));
    const waypoints = new Set([...this.waypoints, ...[...this.targets.values()].filter((s) => s.target.role === 'waypoint' && s.target.workload).map((s) => workloadId(s.target.workload!.namespace, s.target.workload!.name))]);

    const nodes = new Map<string, GraphNode>();
    const workloadNode = (namespace: string, name: string, app: string | undefined, version: string | undefined): string => {
      if (!isKnown(name)) {
        nodes.set(UNKNOWN, { id: UNKNOWN, kind: 'unknown', name: UNKNOWN, namespace: '', label: UNKNOWN });
        return UNKNOWN;
      }
      const ref = workloadId(namespace, name);
      const id = `workload:${ref}`;
      const existing = nodes.get(id);
      const kind: NodeKind = waypoints.has(ref) ? 'waypoint' : gateways.has(ref) ? 'gateway' : 'workload';
      const node: GraphNode = existing ?? { id, kind, name, namespace, label: name };
      if (app !== undefined && node.app === undefined) node.app = app;
      if (version !== undefined && node.version === undefined) node.version = version;
      nodes.set(id, node);
      return id;
    };
    const serviceNode = (f: Flow): string => {
      const id = `service:${f.service}`;
      if (!nodes.has(id)) nodes.set(id, { id, kind: 'service', name: f.serviceName, namespace: isKnown(f.serviceNs) ? f.serviceNs : '', label: f.serviceName });
      return id;
    };

    const edges = new Map<string, EdgeAccumulator>();
    const addEdge = (source: string, target: string, f: Flow): void => {
      const id = `${f.protocol}:${source}->${target}`;
      let e = edges.get(id);
      if (!e) {
        e = { source, target, protocol: f.protocol, rate: 0, errors: 0, mtls: 0, plaintext: 0, mtlsSeries: false, plaintextSeries: false, bytes: 0, codes: {}, buckets: new Map(), reporters: new Set(), via: new Set() };
        edges.set(id, e);
      }
      e.rate += f.rate;
      e.errors += f.errors;
      e.mtls += f.mtls;
      e.plaintext += f.plaintext;
      e.mtlsSeries ||= f.mtlsSeries;
      e.plaintextSeries ||= f.plaintextSeries;
      e.bytes += f.bytesIn + f.bytesOut;
      for (const [code, rate] of Object.entries(f.codes)) e.codes[code] = (e.codes[code] ?? 0) + rate;
      for (const [le, count] of f.buckets) e.buckets.set(le, (e.buckets.get(le) ?? 0) + count);
      e.reporters.add(f.reporter);
      if (f.via !== undefined) e.via.add(f.via);
    };

    const services = new Map<string, ServiceAccumulator>();
    for (const f of flows) {
      const source = workloadNode(f.sourceNs, f.sourceName, f.sourceApp, f.sourceVersion);
      const hasService = isKnown(f.service);
      const hasDest = isKnown(f.destName);
      if (hasService) {
        const svc = serviceNode(f);
        addEdge(source, svc, f);
        if (hasDest) addEdge(svc, workloadNode(f.destNs, f.destName, f.destApp, f.destVersion), f);
      } else {
        addEdge(source, workloadNode(f.destNs, f.destName, f.destApp, f.destVersion), f);
      }
      if (!hasService && !hasDest) continue;
      const id = hasService ? `service:${f.service}` : `workload:${workloadId(f.destNs, f.destName)}`;
      let s = services.get(id);
      if (!s) {
        s = {
          id,
          name: hasService ? f.service : workloadId(f.destNs, f.destName),
          namespace: hasService ? (isKnown(f.serviceNs) ? f.serviceNs : '') : f.destNs,
          http: false,
          rps: 0,
          errors: 0,
          cps: 0,
          bytesIn: 0,
          bytesOut: 0,
          buckets: new Map(),
        };
        services.set(id, s);
      }
      if (f.protocol === 'http') {
        s.http = true;
        s.rps += f.rate;
        s.errors += f.errors;
        for (const [le, count] of f.buckets) s.buckets.set(le, (s.buckets.get(le) ?? 0) + count);
      } else s.cps += f.rate;
      s.bytesIn += f.bytesIn;
      s.bytesOut += f.bytesOut;
    }

    const edgeList: GraphEdge[] = [...edges.entries()].map(([id, e]) => {
      const buckets = bucketsOf(e.buckets);
      const edge: GraphEdge = {
        id,
        source: e.source,
        target: e.target,
        protocol: e.protocol,
        rate: e.rate,
        errorRate: e.rate > 0 ? e.errors / e.rate : undefined,
        p50Ms: histogramQuantile(0.5, buckets),
        p99Ms: histogramQuantile(0.99, buckets),
        bytesPerSecond: e.bytes,
        mtls: mtlsState(e),
        reporter: [...e.reporters].sort().join(','),
        codes: e.codes,
        label: '',
      };
      if (e.via.size > 0) edge.via = [...e.via].sort().join(',');
      edge.label = edgeLabel(edge);
      return edge;
    });

    if (windowSeconds > 0) {
      const t = Math.round(timeMs / 1000);
      for (const s of services.values()) {
        this.serviceMeta.set(s.id, { id: s.id, name: s.name, namespace: s.namespace, protocol: s.http ? 'http' : 'tcp' });
        const buckets = bucketsOf(s.buckets);
        const point: SignalPoint = {
          t,
          rps: s.http ? s.rps : null,
          errorPct: s.http && s.rps > 0 ? (100 * s.errors) / s.rps : null,
          p50Ms: histogramQuantile(0.5, buckets) ?? null,
          p99Ms: histogramQuantile(0.99, buckets) ?? null,
          cps: s.cps,
          bytesInPerSecond: s.bytesIn,
          bytesOutPerSecond: s.bytesOut,
        };
        const history = this.history.get(s.id) ?? [];
        history.push(point);
        if (history.length > this.historyPoints) history.splice(0, history.length - this.historyPoints);
        this.history.set(s.id, history);
      }
    }

    return {
      timeMs,
      windowSeconds,
      nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)),
      edges: edgeList.sort((a, b) => a.id.localeCompare(b.id)),
      targets: [...this.targets.values()].map((s) => s.status).sort((a, b) => a.id.localeCompare(b.id)),
    };
  }
}
