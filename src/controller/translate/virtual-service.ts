/**
 * Istio VirtualService (networking.istio.io v1, v1beta1, v1alpha3: one schema) for mesh hosts →
 * ordered waypoint routes (src/l7/config.ts). Pure.
 *
 * Scope: a VirtualService applies to the mesh when `gateways` is absent or lists `mesh`; others
 * belong to ingress gateways and are not ours (`isMeshVirtualService`). Each `hosts` entry is
 * resolved with Istio's rules relative to the VirtualService's namespace (route-model.ts) and
 * matched against the known services; the rules are translated for every port of each.
 *
 * Semantics kept from Istio:
 * - `http[]` in order, first match wins; within a rule the `match[]` entries are ORed and each
 *   entry's fields ANDed; `match[].port` limits an entry to that service port.
 * - route weights: one destination without a weight takes everything; with several a missing
 *   weight is 0; a total of 0 is invalid. A destination without a port takes the service's only
 *   port, else the request's port.
 * - `rewrite.uri` replaces the matched prefix after a `uri.prefix` match, else the whole path (a
 *   rule mixing both is split into one route per match, named `#<rule>.<match>`).
 * - `redirect.uri` replaces the whole path; `redirectCode` 301 (default), 302, 303, 307, 308.
 * - `timeout` "1.5s" (also `500ms`, `1m`); 0 means none. Mirror percentage defaults to 100.
 * - `retries` (Istio's ConvertPolicy): `attempts` retries after the first try, 0 or unset = none;
 *   `retryOn` a comma list of Envoy conditions where a number is a status code for
 *   `retriable-status-codes` (unset = Istio's default conditions); `perTryTimeout`; `backoff`;
 *   `retryIgnorePreviousHosts` (default: retry elsewhere, except under consistent hashing). A
 *   rule without `retries` gets Istio's default policy from waypoint-config.ts.
 * - `fault`: `delay.fixedDelay` and `abort.httpStatus` / `abort.grpcStatus` (a code name like
 *   UNAVAILABLE), each on `percentage.value` (or the old integer `percent`) of requests;
 *   neither set = 100, as Istio documents (FAULT_DEFAULT_PERCENT).
 * Rejected (the whole object, see route-model.ts): bad references, regexes, weights, redirect
 * codes, durations, retry attempts, fault statuses and percentages, and match fields we cannot
 * evaluate (dropping a match field would widen the match: sourceLabels, sourceNamespace, scheme,
 * ignoreUriCase; method prefix/regex), `delegate` and `rewrite.uriRegexRewrite`.
 * Warned and ignored: unknown `retryOn` conditions, `retryRemoteLocalities`, fault
 * `exponentialDelay` and `http2Error`, `corsPolicy`, `tcp`, `tls`, `exportTo`.
 */
import type { FaultPolicy, HeaderMatch, HeaderMutation, HttpRoute, Mirror, QueryParamMatch, Redirect, RequestMatch, RetryPolicy, RouteAction, StringMatch, UrlRewrite, WeightedBackend } from '../../l7/config.js';
import { REDIRECT_STATUS_CODES } from '../../l7/config-schema.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import {
  clusterHashes,
  emptyTranslation,
  GRPC_STATUS_CODES,
  hostMatches,
  ISTIO_DEFAULT_RETRY_ON,
  isIssue,
  issue,
  parseDurationMs,
  parseRetryOn,
  regexCompiles,
  resolveDestination,
  resolveHost,
  RETRIES_OFF,
  type ClusterRef,
  type RouteContext,
  type RouteService,
  type Translation,
} from './route-model.js';
import { contained, listOf } from './contain.js';

type Json = Record<string, unknown>;

export interface IstioStringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}

export interface IstioDestination {
  host?: string;
  subset?: string;
  port?: { number?: number };
}

export interface IstioHeaderOperations {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

export interface IstioHeaders {
  request?: IstioHeaderOperations;
  response?: IstioHeaderOperations;
}

export interface IstioHttpMatch {
  name?: string;
  uri?: IstioStringMatch;
  method?: IstioStringMatch;
  authority?: IstioStringMatch;
  headers?: Record<string, IstioStringMatch>;
  withoutHeaders?: Record<string, IstioStringMatch>;
  queryParams?: Record<string, IstioStringMatch>;
  port?: number;
  gateways?: string[];
  [field: string]: unknown;
}

export interface IstioHttpRoute {
  name?: string;
  match?: IstioHttpMatch[];
  route?: Array<{ destination?: IstioDestination; weight?: number; headers?: IstioHeaders }>;
  redirect?: { uri?: string; authority?: string; port?: number; derivePort?: string; scheme?: string; redirectCode?: number };
  directResponse?: { status?: number; body?: { string?: string; bytes?: string } };
  rewrite?: { uri?: string; authority?: string; uriRegexRewrite?: unknown };
  timeout?: string;
  headers?: IstioHeaders;
  mirror?: IstioDestination;
  mirrorPercentage?: { value?: number };
  mirrorPercent?: number;
  mirrors?: Array<{ destination?: IstioDestination; percentage?: { value?: number } }>;
  retries?: IstioHttpRetry;
  fault?: IstioFaultInjection;
  [field: string]: unknown;
}

export interface IstioHttpRetry {
  attempts?: number;
  perTryTimeout?: string;
  retryOn?: string;
  retryRemoteLocalities?: boolean;
  retryIgnorePreviousHosts?: boolean;
  backoff?: string;
  [field: string]: unknown;
}

export interface IstioFaultInjection {
  delay?: { fixedDelay?: string; exponentialDelay?: string; percentage?: { value?: number }; percent?: number; [field: string]: unknown };
  abort?: { httpStatus?: number; grpcStatus?: string; http2Error?: string; percentage?: { value?: number }; percent?: number; [field: string]: unknown };
  [field: string]: unknown;
}

export interface VirtualServiceSpec {
  hosts?: string[];
  gateways?: string[];
  http?: IstioHttpRoute[];
  tcp?: unknown[];
  tls?: unknown[];
  exportTo?: string[];
}

export interface VirtualServiceObject extends KubeObjectLike {
  spec?: VirtualServiceSpec;
}

export const MESH_GATEWAY = 'mesh';

export function isMeshVirtualService(vs: VirtualServiceObject): boolean {
  const gateways = vs.spec?.gateways;
  // Not a list (a CRD keeps any value): read as absent, so the mesh translation reports the object.
  return !Array.isArray(gateways) || gateways.length === 0 || gateways.includes(MESH_GATEWAY);
}

/** The resolved `hosts` (hostnames or wildcard patterns), in order. */
export function virtualServiceHosts(vs: VirtualServiceObject, clusterDomain: string): string[] {
  const ns = vs.metadata.namespace ?? 'default';
  return listOf(vs.spec?.hosts)
    .filter((h) => typeof h === 'string' && h.trim())
    .map((h) => resolveHost(h, ns, clusterDomain));
}

const MATCH_FIELDS = new Set(['name', 'uri', 'method', 'authority', 'headers', 'withoutHeaders', 'queryParams', 'port', 'gateways', 'statPrefix']);
const RULE_FIELDS = new Set(['name', 'match', 'route', 'redirect', 'directResponse', 'rewrite', 'timeout', 'headers', 'mirror', 'mirrorPercentage', 'mirrorPercent', 'mirrors', 'retries', 'fault']);
const RULE_WARNINGS: Record<string, string> = {
  corsPolicy: 'not supported by amesh waypoints; ignored',
};
const RETRY_FIELDS = ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'retryIgnorePreviousHosts', 'backoff'];

/**
 * The share of requests a fault applies to when it names none. Istio documents 100 ("if not
 * specified, all requests are aborted"); its Envoy translation has applied 0 (istio/istio#36303).
 * We follow the documentation: a fault that never fires is never what was meant.
 */
export const FAULT_DEFAULT_PERCENT = 100;

/** Per-object state while translating: issues and warnings deduplicated across ports. */
export class Collector {
  readonly issues = new Map<string, Translation['issues'][number]>();
  readonly warnings = new Set<string>();
  readonly clusters = new Map<string, ClusterRef>();

  fail(reason: Translation['issues'][number]['reason'], path: string, problem: string): undefined {
    const i = issue(reason, path, problem);
    this.issues.set(i.message, i);
    return undefined;
  }
}

function stringMatch(m: IstioStringMatch | undefined, path: string, out: Collector): StringMatch | undefined | null {
  if (!m) return undefined;
  const kinds = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
  if (kinds.length === 0) return null; // `{}`: presence
  if (kinds.length > 1) return out.fail('InvalidSpec', path, `set only one of exact, prefix, regex (got ${kinds.join(', ')})`);
  const kind = kinds[0] ?? 'exact';
  const value = String(m[kind]);
  if (kind === 'regex' && !regexCompiles(value)) return out.fail('InvalidRegex', `${path}.regex`, `${JSON.stringify(value)} is not a valid regular expression`);
  return { kind, value };
}

function headerMatches(headers: Record<string, IstioStringMatch> | undefined, invert: boolean, path: string, out: Collector): HeaderMatch[] {
  const result: HeaderMatch[] = [];
  for (const [name, m] of Object.entries(headers ?? {})) {
    const match = stringMatch(m, `${path}.${name}`, out);
    result.push({ name: name.toLowerCase(), ...(match ? { match } : {}), ...(invert ? { invert: true } : {}) });
  }
  return result;
}

function queryMatches(params: Record<string, IstioStringMatch> | undefined, path: string, out: Collector): QueryParamMatch[] {
  const result: QueryParamMatch[] = [];
  for (const [name, m] of Object.entries(params ?? {})) {
    const match = stringMatch(m, `${path}.${name}`, out);
    result.push({ name, ...(match ? { match } : {}) });
  }
  return result;
}

/** A match entry → RequestMatch; undefined when it does not apply to `port` (or to the mesh). */
function requestMatch(m: IstioHttpMatch, path: string, port: number | undefined, out: Collector): RequestMatch | undefined {
  for (const field of Object.keys(m)) {
    if (MATCH_FIELDS.has(field) || m[field] === undefined || m[field] === null) continue;
    out.fail('UnsupportedValue', `${path}.${field}`, 'not supported by amesh waypoints (ignoring it would widen the match)');
  }
  if (m.statPrefix !== undefined) out.warnings.add(`${path}.statPrefix: ignored`);
  const result: RequestMatch = {};
  const uri = stringMatch(m.uri, `${path}.uri`, out);
  if (uri) result.path = uri;
  const method = stringMatch(m.method, `${path}.method`, out);
  if (method) {
    if (method.kind === 'exact') result.method = method.value.toUpperCase();
    else out.fail('UnsupportedValue', `${path}.method.${method.kind}`, 'only exact method matches are supported');
  }
  const authority = stringMatch(m.authority, `${path}.authority`, out);
  if (authority) result.authority = authority;
  const headers = [...headerMatches(m.headers, false, `${path}.headers`, out), ...headerMatches(m.withoutHeaders, true, `${path}.withoutHeaders`, out)];
  if (headers.length) result.headers = headers;
  const query = queryMatches(m.queryParams, `${path}.queryParams`, out);
  if (query.length) result.queryParams = query;
  if (m.gateways && m.gateways.length > 0 && !m.gateways.includes(MESH_GATEWAY)) return undefined;
  if (m.port !== undefined && port !== undefined && m.port !== port) return undefined;
  return result;
}

function headerMutation(ops: IstioHeaderOperations | undefined): HeaderMutation | undefined {
  if (!ops) return undefined;
  // Header names are case-insensitive; lower case is what HTTP/2 sends and what the engine compares.
  const lower = (record: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]));
  const result: HeaderMutation = {};
  if (ops.set && Object.keys(ops.set).length) result.set = lower(ops.set);
  if (ops.add && Object.keys(ops.add).length) result.add = lower(ops.add);
  if (ops.remove?.length) result.remove = ops.remove.map((h) => h.toLowerCase());
  return Object.keys(result).length ? result : undefined;
}

function destination(d: IstioDestination | undefined, path: string, ctx: RouteContext, namespace: string, port: number | undefined, out: Collector): ClusterRef | undefined {
  if (!d?.host?.trim()) return out.fail('InvalidDestination', `${path}.host`, 'required');
  const hostname = resolveHost(d.host, namespace, ctx.clusterDomain);
  const ref = resolveDestination(ctx, { hostname, ...(d.port?.number !== undefined ? { port: d.port.number } : {}), ...(d.subset ? { subset: d.subset } : {}) }, port, path);
  if (isIssue(ref)) {
    out.issues.set(ref.message, ref);
    return undefined;
  }
  out.clusters.set(ref.name, ref);
  return ref;
}

function action(rule: IstioHttpRoute, path: string, ctx: RouteContext, namespace: string, port: number | undefined, out: Collector): RouteAction | undefined {
  const kinds = (['route', 'redirect', 'directResponse', 'delegate'] as const).filter((k) => rule[k] !== undefined && rule[k] !== null);
  if (kinds.length !== 1) return out.fail('InvalidSpec', path, kinds.length ? `set only one of route, redirect, directResponse (got ${kinds.join(', ')})` : 'one of route, redirect or directResponse is required');
  if (kinds[0] === 'delegate') return out.fail('UnsupportedValue', `${path}.delegate`, 'delegation is not supported by amesh waypoints');
  if (rule.redirect) {
    const r = rule.redirect;
    const statusCode = r.redirectCode ?? 301;
    if (!REDIRECT_STATUS_CODES.includes(statusCode)) return out.fail('InvalidRedirect', `${path}.redirect.redirectCode`, `${statusCode} is not a redirect code (${REDIRECT_STATUS_CODES.join(', ')})`);
    const redirect: Redirect = { statusCode };
    if (r.scheme !== undefined) {
      if (r.scheme !== 'http' && r.scheme !== 'https') return out.fail('InvalidRedirect', `${path}.redirect.scheme`, `${JSON.stringify(r.scheme)} is not http or https`);
      redirect.scheme = r.scheme;
    }
    if (r.authority) redirect.hostname = r.authority;
    if (r.port !== undefined) {
      if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) return out.fail('InvalidRedirect', `${path}.redirect.port`, `${r.port} is not a port`);
      redirect.port = r.port;
    }
    if (r.derivePort !== undefined) out.warnings.add(`${path}.redirect.derivePort: not supported; ignored`);
    if (r.uri) redirect.path = { kind: 'full', value: r.uri };
    return { kind: 'redirect', redirect };
  }
  if (rule.directResponse) {
    const status = rule.directResponse.status;
    if (status === undefined || !Number.isInteger(status) || status < 200 || status > 599) return out.fail('InvalidSpec', `${path}.directResponse.status`, `${String(status)} is not an HTTP status (200-599)`);
    const body = rule.directResponse.body?.string ?? (rule.directResponse.body?.bytes !== undefined ? Buffer.from(rule.directResponse.body.bytes, 'base64').toString('utf8') : undefined);
    return { kind: 'direct-response', status, ...(body !== undefined ? { body } : {}) };
  }
  const routes = rule.route ?? [];
  if (routes.length === 0) return out.fail('InvalidDestination', `${path}.route`, 'at least one destination is required');
  const backends: WeightedBackend[] = [];
  let total = 0;
  routes.forEach((r, k) => {
    const at = `${path}.route[${k}]`;
    const weight = r.weight ?? (routes.length === 1 ? 100 : 0);
    if (!Number.isInteger(weight) || weight < 0) {
      out.fail('InvalidWeights', `${at}.weight`, `${weight} is not a non-negative integer`);
      return;
    }
    total += weight;
    const ref = destination(r.destination, `${at}.destination`, ctx, namespace, port, out);
    if (!ref) return;
    const requestHeaders = headerMutation(r.headers?.request);
    const responseHeaders = headerMutation(r.headers?.response);
    backends.push({ cluster: ref.name, weight, ...(requestHeaders ? { requestHeaders } : {}), ...(responseHeaders ? { responseHeaders } : {}) });
  });
  if (total === 0 && routes.every((r) => r.weight === undefined || (Number.isInteger(r.weight) && r.weight >= 0))) return out.fail('InvalidWeights', `${path}.route`, 'the weights total 0: no destination can be chosen');
  return backends.length === routes.length ? { kind: 'forward', backends } : undefined;
}

function mirrors(rule: IstioHttpRoute, path: string, ctx: RouteContext, namespace: string, port: number | undefined, out: Collector): Mirror[] {
  const result: Mirror[] = [];
  const percent = (value: number | undefined, at: string): number | undefined => {
    if (value === undefined) return undefined;
    if (!(value >= 0 && value <= 100)) {
      out.fail('InvalidSpec', at, `${value} is not a percentage (0-100)`);
      return undefined;
    }
    return value;
  };
  if (rule.mirror) {
    const ref = destination(rule.mirror, `${path}.mirror`, ctx, namespace, port, out);
    const p = percent(rule.mirrorPercentage?.value ?? rule.mirrorPercent, rule.mirrorPercentage ? `${path}.mirrorPercentage.value` : `${path}.mirrorPercent`);
    if (ref) result.push({ cluster: ref.name, ...(p !== undefined ? { percent: p } : {}) });
  }
  (rule.mirrors ?? []).forEach((m, k) => {
    const ref = destination(m.destination, `${path}.mirrors[${k}].destination`, ctx, namespace, port, out);
    const p = percent(m.percentage?.value, `${path}.mirrors[${k}].percentage.value`);
    if (ref) result.push({ cluster: ref.name, ...(p !== undefined ? { percent: p } : {}) });
  });
  return result;
}

const present = (v: unknown): boolean => v !== undefined && v !== null;

/** A duration of at least 1 ms (Istio's validation); undefined when absent or bad. */
function duration(value: unknown, path: string, out: Collector): number | undefined {
  if (!present(value)) return undefined;
  const ms = parseDurationMs(String(value));
  if (ms === undefined) return out.fail('InvalidDuration', path, `${JSON.stringify(value)} is not a duration (e.g. "1.5s")`);
  if (ms < 1) return out.fail('InvalidDuration', path, `${JSON.stringify(value)} is shorter than 1ms`);
  return ms;
}

/** `retries` → RetryPolicy (RETRIES_OFF for attempts 0); undefined when unset (the default applies) or bad. */
function retryPolicy(r: IstioHttpRetry | undefined, path: string, hashed: boolean, out: Collector): RetryPolicy | undefined {
  if (!present(r)) return undefined;
  if (typeof r !== 'object' || Array.isArray(r)) return out.fail('InvalidSpec', path, 'an object is required');
  for (const field of Object.keys(r)) if (!RETRY_FIELDS.includes(field) && present(r[field])) out.warnings.add(`${path}.${field}: unknown field; ignored`);
  const attempts = r.attempts ?? 0;
  if (!Number.isInteger(attempts) || attempts < 0) return out.fail('InvalidSpec', `${path}.attempts`, `${JSON.stringify(r.attempts)} is not a non-negative integer`);
  if (attempts === 0) {
    const rest = RETRY_FIELDS.filter((f) => f !== 'attempts' && present(r[f]));
    if (rest.length) out.warnings.add(`${path}.attempts: ${r.attempts === undefined ? 'unset' : '0'}, so retries are off (Istio) and ${rest.map((f) => `${path}.${f}`).join(', ')} ignored`);
    return RETRIES_OFF;
  }
  const policy: RetryPolicy = { attempts, retryOn: [...ISTIO_DEFAULT_RETRY_ON], otherHost: !hashed };
  if (typeof r.retryOn === 'string' && r.retryOn.trim()) {
    const parsed = parseRetryOn(r.retryOn);
    if (parsed.unknown.length) out.warnings.add(`${path}.retryOn: ${parsed.unknown.map((u) => JSON.stringify(u)).join(', ')} not supported (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or an HTTP status); ignored`);
    policy.retryOn = parsed.retryOn;
    if (parsed.codes.length) policy.retriableStatusCodes = parsed.codes;
  } else if (present(r.retryOn) && typeof r.retryOn !== 'string') {
    return out.fail('InvalidSpec', `${path}.retryOn`, `${JSON.stringify(r.retryOn)} is not a comma-separated list`);
  }
  const perTry = duration(r.perTryTimeout, `${path}.perTryTimeout`, out);
  if (perTry !== undefined) policy.perTryTimeoutMs = perTry;
  const backoff = duration(r.backoff, `${path}.backoff`, out);
  if (backoff !== undefined) policy.backoffBaseMs = backoff;
  if (r.retryRemoteLocalities === true) out.warnings.add(`${path}.retryRemoteLocalities: retries do not prefer other localities in amesh waypoints; ignored`);
  if (typeof r.retryIgnorePreviousHosts === 'boolean') policy.otherHost = r.retryIgnorePreviousHosts;
  return policy;
}

/** `percentage.value` (0-100, fractions allowed), else the deprecated integer `percent`, else the default. */
function faultPercent(f: { percentage?: { value?: number }; percent?: number }, path: string, out: Collector): number | undefined {
  if (present(f.percentage)) {
    const v = f.percentage?.value ?? 0;
    if (typeof v !== 'number' || !(v >= 0 && v <= 100)) return out.fail('InvalidSpec', `${path}.percentage.value`, `${JSON.stringify(v)} is not a percentage (0-100)`);
    return v;
  }
  if (present(f.percent)) {
    const v = f.percent;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 100) return out.fail('InvalidSpec', `${path}.percent`, `${JSON.stringify(v)} is not an integer percentage (0-100)`);
    return v;
  }
  return FAULT_DEFAULT_PERCENT;
}

function grpcStatus(value: unknown, path: string, out: Collector): number | undefined {
  const text = String(value).trim().toUpperCase();
  const code = /^\d+$/.test(text) ? Number(text) : GRPC_STATUS_CODES[text];
  if (code === undefined || code > 16) return out.fail('InvalidSpec', path, `${JSON.stringify(value)} is not a gRPC status (e.g. UNAVAILABLE)`);
  return code;
}

/** `fault` → FaultPolicy; undefined when unset, empty after ignored parts, or bad. */
function faultPolicy(spec: IstioFaultInjection | undefined, path: string, out: Collector): FaultPolicy | undefined {
  if (!present(spec)) return undefined;
  if (typeof spec !== 'object' || Array.isArray(spec)) return out.fail('InvalidSpec', path, 'an object is required');
  for (const field of Object.keys(spec)) if (field !== 'delay' && field !== 'abort' && present(spec[field])) out.warnings.add(`${path}.${field}: unknown field; ignored`);
  if (!present(spec.delay) && !present(spec.abort)) return out.fail('InvalidSpec', path, 'one of delay or abort is required');
  const fault: FaultPolicy = {};
  const d = spec.delay;
  if (d) {
    const at = `${path}.delay`;
    for (const field of Object.keys(d)) if (!['fixedDelay', 'exponentialDelay', 'percentage', 'percent'].includes(field) && present(d[field])) out.warnings.add(`${at}.${field}: unknown field; ignored`);
    const percent = faultPercent(d, at, out);
    if (present(d.exponentialDelay)) out.warnings.add(`${at}.exponentialDelay: not supported (as in Istio); no delay is injected`);
    else if (!present(d.fixedDelay)) out.fail('InvalidSpec', `${at}.fixedDelay`, 'required');
    else {
      const delayMs = duration(d.fixedDelay, `${at}.fixedDelay`, out);
      if (delayMs !== undefined && percent !== undefined) fault.delay = { percent, delayMs };
    }
  }
  const a = spec.abort;
  if (a) {
    const at = `${path}.abort`;
    for (const field of Object.keys(a)) if (!['httpStatus', 'grpcStatus', 'http2Error', 'percentage', 'percent'].includes(field) && present(a[field])) out.warnings.add(`${at}.${field}: unknown field; ignored`);
    const percent = faultPercent(a, at, out);
    const kinds = (['httpStatus', 'grpcStatus', 'http2Error'] as const).filter((k) => present(a[k]));
    if (kinds.length !== 1) out.fail('InvalidSpec', at, kinds.length ? `set only one of httpStatus, grpcStatus, http2Error (got ${kinds.join(', ')})` : 'one of httpStatus, grpcStatus is required');
    else if (kinds[0] === 'http2Error') out.warnings.add(`${at}.http2Error: not supported by amesh waypoints; no abort is injected`);
    else if (kinds[0] === 'httpStatus') {
      const status = a.httpStatus;
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) out.fail('InvalidSpec', `${at}.httpStatus`, `${JSON.stringify(status)} is not an HTTP status (200-599)`);
      else if (percent !== undefined) fault.abort = { percent, httpStatus: status };
    } else {
      const code = grpcStatus(a.grpcStatus, `${at}.grpcStatus`, out);
      if (code !== undefined && percent !== undefined) fault.abort = { percent, grpcStatus: code };
    }
  }
  return fault.delay || fault.abort ? fault : undefined;
}

/** Routes of rule `i` on `port` (undefined port: validation only); [] when it does not apply there. */
export function translateRule(vsName: string, rule: IstioHttpRoute, i: number, ctx: RouteContext, namespace: string, port: number | undefined, out: Collector): HttpRoute[] {
  const path = `spec.http[${i}]`;
  for (const [field, problem] of Object.entries(RULE_WARNINGS)) if (rule[field] !== undefined && rule[field] !== null) out.warnings.add(`${path}.${field}: ${problem}`);
  for (const field of Object.keys(rule)) {
    if (RULE_FIELDS.has(field) || field in RULE_WARNINGS || field === 'delegate' || rule[field] === undefined) continue;
    out.warnings.add(`${path}.${field}: unknown field; ignored`);
  }
  const declared = rule.match ?? [];
  const matches: Array<{ match: RequestMatch; index: number }> = [];
  declared.forEach((m, j) => {
    const match = requestMatch(m, `${path}.match[${j}]`, port, out);
    if (match) matches.push({ match, index: j });
  });
  if (declared.length > 0 && matches.length === 0) return [];

  const routeAction = action(rule, path, ctx, namespace, port, out);
  const requestHeaders = headerMutation(rule.headers?.request);
  const responseHeaders = headerMutation(rule.headers?.response);
  const mirrorList = mirrors(rule, path, ctx, namespace, port, out);
  let timeoutMs: number | undefined;
  if (rule.timeout !== undefined) {
    timeoutMs = parseDurationMs(String(rule.timeout));
    if (timeoutMs === undefined) out.fail('InvalidDuration', `${path}.timeout`, `${JSON.stringify(rule.timeout)} is not a duration (e.g. "1.5s")`);
  }
  if (rule.rewrite?.uriRegexRewrite !== undefined) out.fail('UnsupportedValue', `${path}.rewrite.uriRegexRewrite`, 'not supported by amesh waypoints');
  const fault = faultPolicy(rule.fault, `${path}.fault`, out);
  // Retries stay on the chosen endpoint when any destination balances by consistent hash (Istio).
  const hashed = routeAction?.kind === 'forward' && routeAction.backends.some((b) => {
    const ref = out.clusters.get(b.cluster);
    return ref !== undefined && clusterHashes(ctx.destinationRules, ref);
  });
  const retries = retryPolicy(rule.retries, `${path}.retries`, hashed, out);
  if (retries && retries.attempts > 0 && routeAction && routeAction.kind !== 'forward') out.warnings.add(`${path}.retries: ignored, the rule answers itself (${routeAction.kind})`);
  if (!routeAction) return [];

  const base = (name: string, ms: RequestMatch[], rewrite: UrlRewrite | undefined): HttpRoute => ({
    name,
    matches: ms,
    action: routeAction,
    ...(requestHeaders ? { requestHeaders } : {}),
    ...(responseHeaders ? { responseHeaders } : {}),
    ...(rewrite ? { rewrite } : {}),
    ...(mirrorList.length ? { mirrors: mirrorList } : {}),
    ...(timeoutMs ? { timeoutMs } : {}),
    ...(retries && routeAction.kind === 'forward' ? { retries } : {}),
    ...(fault ? { fault } : {}),
  });
  const name = `VirtualService/${vsName}#${i}`;
  const uri = rule.rewrite?.uri;
  const hostname = rule.rewrite?.authority;
  if (uri === undefined) return [base(name, matches.map((m) => m.match), hostname ? { hostname } : undefined)];
  // A uri rewrite replaces the matched prefix after a prefix match, else the whole path.
  const rewriteFor = (m: RequestMatch | undefined): UrlRewrite => ({ ...(hostname ? { hostname } : {}), path: { kind: !m?.path || m.path.kind === 'prefix' ? 'prefix' : 'full', value: uri } });
  // Prefix rewrites name the prefix they replace: "/" when the match has no uri condition.
  const withPrefix = (m: RequestMatch): RequestMatch => (m.path ? m : { ...m, path: { kind: 'prefix', value: '/' } });
  if (matches.length === 0) return [base(name, [{ path: { kind: 'prefix', value: '/' } }], rewriteFor(undefined))];
  const kinds = new Set(matches.map((m) => rewriteFor(m.match).path?.kind));
  if (kinds.size === 1) return [base(name, matches.map((m) => withPrefix(m.match)), rewriteFor(matches[0]?.match))];
  return matches.map((m) => base(`${name}.${m.index}`, [withPrefix(m.match)], rewriteFor(m.match)));
}

/** translateVirtualService, a throw on a value of the wrong type contained to this object (contain.ts). */
export function translateVirtualService(vs: VirtualServiceObject, ctx: RouteContext): Translation & { services: RouteService[] } {
  return contained(() => translateVirtualServiceUnchecked(vs, ctx), (reason) => ({ ...emptyTranslation(), services: [], issues: [issue('InvalidSpec', 'spec', reason)] }));
}

/**
 * Translate for every service `hosts` covers (from `ctx.services`), every port of each. The
 * caller decides which of these services the VirtualService is in effect for.
 */
function translateVirtualServiceUnchecked(vs: VirtualServiceObject, ctx: RouteContext): Translation & { services: RouteService[] } {
  const namespace = vs.metadata.namespace ?? 'default';
  const vsName = `${namespace}/${vs.metadata.name ?? ''}`;
  const spec = vs.spec ?? {};
  const out = new Collector();
  const result = { ...emptyTranslation(), services: [] as RouteService[] };
  const hosts = virtualServiceHosts(vs, ctx.clusterDomain);
  if (hosts.length === 0) out.fail('InvalidSpec', 'spec.hosts', 'at least one host is required');
  if (spec.tcp?.length) out.warnings.add('spec.tcp: not supported by amesh waypoints; TCP traffic goes to the service as addressed');
  if (spec.tls?.length) out.warnings.add('spec.tls: not supported by amesh waypoints; TLS traffic goes to the service as addressed');
  if (spec.exportTo && !spec.exportTo.every((e) => e === '*')) out.warnings.add('spec.exportTo: visibility is not enforced by amesh waypoints; ignored');
  for (const field of Object.keys(spec as Json)) {
    if (!['hosts', 'gateways', 'http', 'tcp', 'tls', 'exportTo'].includes(field)) out.warnings.add(`spec.${field}: unknown field; ignored`);
  }

  const seen = new Set<string>();
  hosts.forEach((host, h) => {
    const covered = [...ctx.services.values()].filter((s) => hostMatches(host, s.hostname)).sort((a, b) => a.hostname.localeCompare(b.hostname));
    if (covered.length === 0) out.warnings.add(`spec.hosts[${h}]: ${host} matches no service; ignored`);
    for (const service of covered) {
      if (seen.has(service.hostname)) continue;
      seen.add(service.hostname);
      result.services.push(service);
      for (const port of service.ports) {
        (spec.http ?? []).forEach((rule, i) => {
          for (const route of translateRule(vsName, rule, i, ctx, namespace, port, out)) result.entries.push({ hostname: service.hostname, port, route });
        });
      }
    }
  });
  // Validate the rules even when no service is covered, so a typo is reported either way.
  if (result.services.length === 0) (spec.http ?? []).forEach((rule, i) => translateRule(vsName, rule, i, ctx, namespace, undefined, out));

  result.issues = [...out.issues.values()];
  result.warnings = [...out.warnings];
  result.clusters = [...out.clusters.values()];
  if (result.issues.length) {
    result.entries = [];
    result.clusters = [];
  }
  return result;
}
