/**
 * What a proxy's spans are called and what they carry — pure, so the naming is table-tested
 * without a tracer.
 *
 * Names and tags follow Envoy's HTTP tracer as Istio shows it (what Jaeger/Zipkin users of Istio
 * expect to read):
 *   - SERVER span, one per downstream request: `<authority><path>` with the query dropped
 *     (Envoy's default operation name, e.g. `reviews.default.svc.cluster.local:9080/reviews/0`);
 *   - CLIENT span, one per upstream try: `router <cluster> egress`;
 *   - tags `http.method`, `http.url`, `http.protocol`, `http.status_code`, `response_flags`,
 *     `upstream_cluster`, `upstream_address`, `peer.address`, `user_agent`, `guid:x-request-id`,
 *     `node_id`, `component: proxy`, `istio.namespace`; ours: `source.principal` (the peer's
 *     SPIFFE identity, as Istio's attribute vocabulary names it) and `amesh.role`.
 *   - Telemetry `customTags` (literal values) go on every span; the proxy's own tags win a clash,
 *     so a tag cannot forge a status code.
 * Error status: an explicit error, or a 5xx (Envoy marks those `error=true`).
 */
import { SpanStatusCode, type Attributes, type SpanStatus } from '@opentelemetry/api';

export interface ServerSpanInput {
  method: string;
  authority: string;
  path: string;
  /** `HTTP/1.1`, `HTTP/2`, … */
  protocol: string;
  /** SPIFFE URI of the downstream peer; empty when unknown. */
  peerIdentity: string;
  clientAddress: string;
  role: 'waypoint' | 'gateway';
  userAgent?: string;
  requestId?: string;
}

export interface ProxyIdentity {
  serviceName: string;
  serviceNamespace?: string;
}

/** Query and fragment dropped: ids in query strings would make every span name unique. */
export function pathWithoutQuery(path: string): string {
  const q = path.search(/[?#]/);
  return q < 0 ? path : path.slice(0, q);
}

export function serverSpanName(a: Pick<ServerSpanInput, 'authority' | 'path'>): string {
  const path = pathWithoutQuery(a.path);
  return `${a.authority}${path.startsWith('/') || path === '' ? path : `/${path}`}`;
}

export function clientSpanName(cluster: string): string {
  return `router ${cluster} egress`;
}

function httpUrl(authority: string, path: string): string {
  return `http://${authority}${path.startsWith('/') ? path : `/${path}`}`;
}

export function serverSpanAttributes(a: ServerSpanInput, proxy: ProxyIdentity, customTags: Readonly<Attributes>): Attributes {
  const out: Attributes = { ...customTags };
  out.component = 'proxy';
  out.node_id = proxy.serviceName;
  out['amesh.role'] = a.role;
  if (proxy.serviceNamespace) out['istio.namespace'] = proxy.serviceNamespace;
  out['http.method'] = a.method;
  out['http.url'] = httpUrl(a.authority, a.path);
  out['http.protocol'] = a.protocol;
  out['peer.address'] = a.clientAddress;
  if (a.peerIdentity) out['source.principal'] = a.peerIdentity;
  if (a.userAgent) out.user_agent = a.userAgent;
  if (a.requestId) out['guid:x-request-id'] = a.requestId;
  return out;
}

export function clientSpanAttributes(a: { cluster: string; endpoint: string; method: string; authority: string; path: string }, proxy: ProxyIdentity, customTags: Readonly<Attributes>): Attributes {
  const out: Attributes = { ...customTags };
  out.component = 'proxy';
  out.node_id = proxy.serviceName;
  out['http.method'] = a.method;
  out['http.url'] = httpUrl(a.authority, a.path);
  out.upstream_cluster = a.cluster;
  out.upstream_address = a.endpoint;
  return out;
}

/** Attributes set when a span ends. */
export function endAttributes(a: { status?: number; responseFlags?: string; route?: string; error?: string }): Attributes {
  const out: Attributes = {};
  if (a.status !== undefined) out['http.status_code'] = a.status;
  if (a.responseFlags !== undefined) out.response_flags = a.responseFlags === '' ? '-' : a.responseFlags;
  if (a.route) out['http.route'] = a.route;
  if (a.error) out['error.message'] = a.error;
  return out;
}

/** UNSET unless something failed: OpenTelemetry reserves OK for an explicit success claim. */
export function spanStatus(status: number | undefined, error: string | undefined): SpanStatus | undefined {
  if (error) return { code: SpanStatusCode.ERROR, message: error };
  if (status !== undefined && status >= 500) return { code: SpanStatusCode.ERROR, message: `HTTP ${status}` };
  return undefined;
}
