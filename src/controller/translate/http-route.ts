/**
 * Gateway API HTTPRoute (gateway.networking.k8s.io v1, GAMMA mesh attachment) → waypoint routes.
 * Pure.
 *
 * Attachment (`routeParents`): a parentRef to a Service (`group: ""`/`core`, `kind: Service`) in
 * the route's own namespace (a "producer" route; consumer routes in other namespaces are not
 * supported), optionally limited to one `port`; or to a waypoint Gateway, which applies it to
 * every service bound to that waypoint. Other parents (ingress Gateways) are not ours.
 *
 * Each (rule, match) pair is one route entry, so routes from every HTTPRoute of a service can be
 * ordered by the spec's precedence rather than array order (`order`, see compareRouteEntries):
 * Exact path > PathPrefix (longer first) > RegularExpression (Istio's ranking of regex), then a
 * method match, then more header matches, then more query matches; ties go to the older route
 * (creationTimestamp), then by namespace/name, then rule and match order.
 *
 * PathPrefix is per path element (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`), so it
 * becomes two matches: exact `/foo` and prefix `/foo/`. With a ReplacePrefixMatch rewrite they
 * need different rewrites, so the pair becomes two routes (`…:exact`, `…:prefix`).
 *
 * Deviations, named in conditions rather than hidden: backendRefs whose weights total 0 are
 * rejected (InvalidWeights) instead of answering 500, matching the Istio side; a rule without
 * backendRefs (and no redirect) answers 500 as the spec says. `sessionPersistence`, CORS filters
 * and `hostnames` are warned about and ignored; ExtensionRef filters and cross-namespace backends
 * (ReferenceGrant) are rejected.
 *
 * Resilience as Istio converts it (pilot/pkg/config/kube/gateway/conversion.go):
 * - `timeouts.request` is the route timeout; `timeouts.backendRequest` the per-try timeout when a
 *   `retry` stanza is set, else the route timeout too (one try = one backend request). "0s" is
 *   no timeout.
 * - `retry` (GEP-1731): `attempts` (default 2, 0 = none), retrying on connection failures
 *   (connect-failure, refused-stream, and gRPC unavailable / cancelled, as the spec asks: "SHOULD
 *   retry on connection errors") and on the listed `codes`; `backoff` is the base interval.
 * - A rule without `retry` gets Istio's default policy from waypoint-config.ts.
 */
import type { HeaderMatch, HeaderMutation, HttpRoute, Mirror, QueryParamMatch, Redirect, RequestMatch, RetryOn, RetryPolicy, RouteAction, StringMatch, UrlRewrite, WeightedBackend } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import { serviceHostname } from './service.js';
import {
  clusterHashes,
  isIssue,
  issue,
  parseDurationMs,
  RETRIES_OFF,
  regexCompiles,
  resolveDestination,
  type ClusterRef,
  type RouteContext,
  type RouteEntry,
  type RouteIssue,
  type RouteService,
  type Translation,
  emptyTranslation,
} from './route-model.js';
import { contained } from './contain.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface ParentRef {
  group?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  sectionName?: string;
  port?: number;
}

export interface BackendRef {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  port?: number;
  weight?: number;
  filters?: RouteFilter[];
}

export interface HeaderModifier {
  set?: Array<{ name: string; value: string }>;
  add?: Array<{ name: string; value: string }>;
  remove?: string[];
}

export interface PathModifier {
  type?: 'ReplaceFullPath' | 'ReplacePrefixMatch' | string;
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface RouteFilter {
  type?: string;
  requestHeaderModifier?: HeaderModifier;
  responseHeaderModifier?: HeaderModifier;
  requestRedirect?: { scheme?: string; hostname?: string; path?: PathModifier; port?: number; statusCode?: number };
  urlRewrite?: { hostname?: string; path?: PathModifier };
  requestMirror?: { backendRef?: BackendRef; percent?: number; fraction?: { numerator?: number; denominator?: number } };
  extensionRef?: unknown;
  cors?: unknown;
}

export interface HttpRouteMatchSpec {
  path?: { type?: string; value?: string };
  headers?: Array<{ type?: string; name?: string; value?: string }>;
  queryParams?: Array<{ type?: string; name?: string; value?: string }>;
  method?: string;
}

export interface HttpRouteRuleSpec {
  name?: string;
  matches?: HttpRouteMatchSpec[];
  filters?: RouteFilter[];
  backendRefs?: BackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: HttpRouteRetrySpec;
  sessionPersistence?: unknown;
}

/** GEP-1731 (experimental channel). */
export interface HttpRouteRetrySpec {
  codes?: number[];
  attempts?: number;
  backoff?: string;
  [field: string]: unknown;
}

export interface HttpRouteObject extends KubeObjectLike {
  spec?: { parentRefs?: ParentRef[]; hostnames?: string[]; rules?: HttpRouteRuleSpec[] };
}

/** A parent this route attaches to in the mesh. */
export type RouteParent =
  | { kind: 'Service'; index: number; ref: ParentRef; namespace: string; name: string; hostname: string; port?: number }
  | { kind: 'Gateway'; index: number; ref: ParentRef; namespace: string; name: string };

/** routeParents, a throw on a value of the wrong type contained to this object (contain.ts). */
export function routeParents(route: KubeObjectLike & { spec?: { parentRefs?: ParentRef[] } }, clusterDomain: string): { parents: RouteParent[]; issues: RouteIssue[] } {
  return contained(() => routeParentsUnchecked(route, clusterDomain), (reason) => ({ parents: [], issues: [issue('InvalidSpec', 'spec.parentRefs', reason)] }));
}

/** Which mesh parents a route names; `issues` name refs we understand but cannot honour. */
function routeParentsUnchecked(route: KubeObjectLike & { spec?: { parentRefs?: ParentRef[] } }, clusterDomain: string): { parents: RouteParent[]; issues: RouteIssue[] } {
  const own = route.metadata.namespace ?? 'default';
  const parents: RouteParent[] = [];
  const issues: RouteIssue[] = [];
  (route.spec?.parentRefs ?? []).forEach((ref, index) => {
    const namespace = ref.namespace ?? own;
    const name = ref.name ?? '';
    const group = ref.group ?? GATEWAY_GROUP;
    const kind = ref.kind ?? 'Gateway';
    if ((group === '' || group === 'core') && kind === 'Service') {
      if (namespace !== own) {
        issues.push(issue('UnsupportedValue', `spec.parentRefs[${index}].namespace`, `consumer routes (a Service in another namespace, ${namespace}) are not supported; attach the route in ${namespace}`));
        return;
      }
      parents.push({ kind: 'Service', index, ref, namespace, name, hostname: serviceHostname(name, namespace, clusterDomain), ...(ref.port !== undefined ? { port: ref.port } : {}) });
    } else if (group === GATEWAY_GROUP && kind === 'Gateway') {
      parents.push({ kind: 'Gateway', index, ref, namespace, name });
    }
  });
  return { parents, issues };
}

/** Where a route applies: a service, optionally one port of it. */
export interface RouteTarget {
  service: RouteService;
  port?: number;
}

/** Per-object collection of issues, warnings and clusters (deduplicated). */
export class GatewayCollector {
  readonly issues = new Map<string, RouteIssue>();
  readonly warnings = new Set<string>();
  readonly clusters = new Map<string, ClusterRef>();

  fail(reason: RouteIssue['reason'], path: string, problem: string): undefined {
    const i = issue(reason, path, problem);
    this.issues.set(i.message, i);
    return undefined;
  }

  result(entries: RouteEntry[]): Translation {
    const issues = [...this.issues.values()];
    return { entries: issues.length ? [] : entries, clusters: issues.length ? [] : [...this.clusters.values()], issues, warnings: [...this.warnings] };
  }
}

export function headerModifier(m: HeaderModifier | undefined): HeaderMutation | undefined {
  if (!m) return undefined;
  const result: HeaderMutation = {};
  if (m.set?.length) result.set = Object.fromEntries(m.set.map((h) => [h.name.toLowerCase(), h.value]));
  if (m.add?.length) result.add = Object.fromEntries(m.add.map((h) => [h.name.toLowerCase(), h.value]));
  if (m.remove?.length) result.remove = m.remove.map((h) => h.toLowerCase());
  return Object.keys(result).length ? result : undefined;
}

/** A Service backendRef → its cluster; port is required (Gateway API), namespace must be the route's. */
export function backendCluster(ref: BackendRef | undefined, path: string, routeNamespace: string, ctx: RouteContext, out: GatewayCollector): ClusterRef | undefined {
  if (!ref?.name) return out.fail('InvalidDestination', `${path}.name`, 'required');
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  if (!((group === '' || group === 'core') && kind === 'Service')) return out.fail('InvalidDestination', `${path}.kind`, `${group ? `${group}/` : ''}${kind} is not supported; only Services`);
  const namespace = ref.namespace ?? routeNamespace;
  if (namespace !== routeNamespace) return out.fail('InvalidDestination', `${path}.namespace`, `cross-namespace backend ${namespace}/${ref.name} needs a ReferenceGrant, which amesh does not support yet`);
  if (ref.port === undefined) return out.fail('InvalidDestination', `${path}.port`, 'required for a Service backend');
  const resolved = resolveDestination(ctx, { hostname: serviceHostname(ref.name, namespace, ctx.clusterDomain), port: ref.port }, ref.port, path);
  if (isIssue(resolved)) {
    out.issues.set(resolved.message, resolved);
    return undefined;
  }
  out.clusters.set(resolved.name, resolved);
  return resolved;
}

/** Weighted backends; undefined after an issue. An empty list means "answer 500". */
export function weightedBackends(refs: readonly BackendRef[], path: string, routeNamespace: string, ctx: RouteContext, out: GatewayCollector): WeightedBackend[] | undefined {
  const backends: WeightedBackend[] = [];
  let total = 0;
  let ok = true;
  refs.forEach((ref, k) => {
    const at = `${path}[${k}]`;
    const weight = ref.weight ?? 1;
    if (!Number.isInteger(weight) || weight < 0) {
      out.fail('InvalidWeights', `${at}.weight`, `${weight} is not a non-negative integer`);
      ok = false;
      return;
    }
    total += weight;
    const cluster = backendCluster(ref, at, routeNamespace, ctx, out);
    let requestHeaders: HeaderMutation | undefined;
    let responseHeaders: HeaderMutation | undefined;
    (ref.filters ?? []).forEach((f, i) => {
      if (f.type === 'RequestHeaderModifier') requestHeaders = headerModifier(f.requestHeaderModifier);
      else if (f.type === 'ResponseHeaderModifier') responseHeaders = headerModifier(f.responseHeaderModifier);
      else {
        out.fail('UnsupportedValue', `${at}.filters[${i}].type`, `${String(f.type)} is not supported on a backendRef (RequestHeaderModifier, ResponseHeaderModifier)`);
        ok = false;
      }
    });
    if (!cluster) {
      ok = false;
      return;
    }
    backends.push({ cluster: cluster.name, weight, ...(requestHeaders ? { requestHeaders } : {}), ...(responseHeaders ? { responseHeaders } : {}) });
  });
  if (refs.length > 0 && total === 0 && ok) return out.fail('InvalidWeights', path, 'the weights total 0: no backend can be chosen');
  return ok ? backends : undefined;
}

export function mirrorOf(filter: RouteFilter['requestMirror'], path: string, routeNamespace: string, ctx: RouteContext, out: GatewayCollector): Mirror | undefined {
  const cluster = backendCluster(filter?.backendRef, `${path}.backendRef`, routeNamespace, ctx, out);
  let percent: number | undefined;
  if (filter?.percent !== undefined) percent = filter.percent;
  else if (filter?.fraction?.numerator !== undefined) percent = (100 * filter.fraction.numerator) / (filter.fraction.denominator ?? 100);
  if (percent !== undefined && !(percent >= 0 && percent <= 100)) return out.fail('InvalidSpec', `${path}.percent`, `${percent} is not a percentage (0-100)`);
  return cluster ? { cluster: cluster.name, ...(percent !== undefined ? { percent } : {}) } : undefined;
}

export function stringMatchOf(type: string | undefined, value: string | undefined, path: string, out: GatewayCollector, exactName = 'Exact'): StringMatch | undefined {
  const v = value ?? '';
  const t = type ?? exactName;
  if (t === exactName) return { kind: 'exact', value: v };
  if (t === 'RegularExpression') {
    if (!regexCompiles(v)) return out.fail('InvalidRegex', `${path}.value`, `${JSON.stringify(v)} is not a valid regular expression`);
    return { kind: 'regex', value: v };
  }
  return out.fail('UnsupportedValue', `${path}.type`, `${t} is not supported (${exactName}, RegularExpression)`);
}

export function headerMatchesOf(headers: HttpRouteMatchSpec['headers'], path: string, out: GatewayCollector): HeaderMatch[] {
  const result: HeaderMatch[] = [];
  (headers ?? []).forEach((h, k) => {
    const match = stringMatchOf(h.type, h.value, `${path}[${k}]`, out);
    if (!h.name) out.fail('InvalidSpec', `${path}[${k}].name`, 'required');
    else if (match) result.push({ name: h.name.toLowerCase(), match });
  });
  return result;
}

/** Precedence key: `rank` compared larger-first, then `tie` smaller-first. */
export interface RouteOrder {
  rank: number[];
  tie: string[];
}

export function compareOrder(a: RouteOrder, b: RouteOrder): number {
  for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
    const d = (b.rank[i] ?? 0) - (a.rank[i] ?? 0);
    if (d) return d;
  }
  for (let i = 0; i < Math.max(a.tie.length, b.tie.length); i++) {
    const d = (a.tie[i] ?? '').localeCompare(b.tie[i] ?? '');
    if (d) return d;
  }
  return 0;
}

export type OrderedEntry = RouteEntry & { order: RouteOrder };

export function compareRouteEntries(a: OrderedEntry, b: OrderedEntry): number {
  return compareOrder(a.order, b.order);
}

const pad = (n: number): string => String(n).padStart(6, '0');

export function tieBreak(route: KubeObjectLike, rule: number, match: number, split = 0): string[] {
  return [route.metadata.creationTimestamp ?? '', `${route.metadata.namespace ?? 'default'}/${route.metadata.name ?? ''}`, pad(rule), pad(match), pad(split)];
}

const PATH_RANK = { exact: 3, prefix: 2, regex: 1 } as const;

interface MatchPlan {
  /** The match(es) one route entry carries, with the rewrite it needs. */
  matches: RequestMatch[];
  suffix: string;
  rewritePath?: UrlRewrite['path'];
}

/** A Gateway API match → RequestMatch parts and its precedence rank. */
function translateMatch(m: HttpRouteMatchSpec, path: string, out: GatewayCollector): { base: RequestMatch; pathType: 'Exact' | 'PathPrefix' | 'RegularExpression'; pathValue: string; rank: number[] } | undefined {
  const pathType = (m.path?.type ?? 'PathPrefix') as 'Exact' | 'PathPrefix' | 'RegularExpression';
  let pathValue = m.path?.value ?? '/';
  if (pathType === 'PathPrefix' || pathType === 'Exact') {
    if (!pathValue.startsWith('/')) return out.fail('InvalidSpec', `${path}.path.value`, `${JSON.stringify(pathValue)} must start with "/"`);
  } else if (pathType === 'RegularExpression') {
    if (!regexCompiles(pathValue)) return out.fail('InvalidRegex', `${path}.path.value`, `${JSON.stringify(pathValue)} is not a valid regular expression`);
  } else return out.fail('UnsupportedValue', `${path}.path.type`, `${String(pathType)} is not supported (Exact, PathPrefix, RegularExpression)`);
  // The spec ignores a trailing "/" of a prefix: /abc/ matches /abc, /abc/ and /abc/def.
  if (pathType === 'PathPrefix' && pathValue.length > 1) pathValue = pathValue.replace(/\/+$/, '') || '/';
  const base: RequestMatch = {};
  if (m.method) base.method = m.method.toUpperCase();
  const headers = headerMatchesOf(m.headers, `${path}.headers`, out);
  if (headers.length) base.headers = headers;
  const query: QueryParamMatch[] = [];
  (m.queryParams ?? []).forEach((q, k) => {
    const match = stringMatchOf(q.type, q.value, `${path}.queryParams[${k}]`, out);
    if (!q.name) out.fail('InvalidSpec', `${path}.queryParams[${k}].name`, 'required');
    else if (match) query.push({ name: q.name, match });
  });
  if (query.length) base.queryParams = query;
  const kind = pathType === 'Exact' ? 'exact' : pathType === 'PathPrefix' ? 'prefix' : 'regex';
  return { base, pathType, pathValue, rank: [PATH_RANK[kind], pathValue.length, m.method ? 1 : 0, headers.length, query.length] };
}

/** How one match becomes route entries, given the rule's path rewrite (if any). */
function plan(t: { base: RequestMatch; pathType: string; pathValue: string }, rewrite: { type: 'full' | 'prefix'; value: string } | undefined): MatchPlan[] {
  const { base, pathType, pathValue } = t;
  // (ReplacePrefixMatch needs a PathPrefix match; the caller refused it for the others.)
  if (pathType === 'Exact' || pathType === 'RegularExpression') {
    return [{ matches: [{ ...base, path: { kind: pathType === 'Exact' ? 'exact' : 'regex', value: pathValue } }], suffix: '', ...(rewrite ? { rewritePath: { kind: 'full', value: rewrite.value } } : {}) }];
  }
  const root = pathValue === '/';
  if (!rewrite || rewrite.type === 'full') {
    const matches: RequestMatch[] = root ? [{ ...base, path: { kind: 'prefix', value: '/' } }] : [{ ...base, path: { kind: 'exact', value: pathValue } }, { ...base, path: { kind: 'prefix', value: `${pathValue}/` } }];
    return [{ matches, suffix: '', ...(rewrite ? { rewritePath: { kind: 'full', value: rewrite.value } } : {}) }];
  }
  // ReplacePrefixMatch: /foo → /bar turns /foo into /bar and /foo/x into /bar/x.
  if (root) return [{ matches: [{ ...base, path: { kind: 'prefix', value: '/' } }], suffix: '', rewritePath: { kind: 'prefix', value: rewrite.value.endsWith('/') ? rewrite.value : `${rewrite.value}/` } }];
  const withSlash = rewrite.value.endsWith('/') ? rewrite.value : `${rewrite.value}/`;
  return [
    { matches: [{ ...base, path: { kind: 'exact', value: pathValue } }], suffix: ':exact', rewritePath: { kind: 'full', value: rewrite.value } },
    { matches: [{ ...base, path: { kind: 'prefix', value: `${pathValue}/` } }], suffix: ':prefix', rewritePath: { kind: 'prefix', value: withSlash } },
  ];
}

/** The rule-level parts shared by every match of the rule. */
interface RuleParts {
  action: RouteAction;
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  hostname?: string;
  rewrite?: { type: 'full' | 'prefix'; value: string };
  mirrors: Mirror[];
  timeoutMs?: number;
  retries?: RetryPolicy;
}

/** What Istio retries on for a `retry` stanza, before the codes ("SHOULD retry on connection errors"). */
export const GATEWAY_RETRY_ON: readonly RetryOn[] = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled'];
/** Istio's attempts when the stanza leaves them to the implementation. */
export const GATEWAY_DEFAULT_ATTEMPTS = 2;

/** A `retry` stanza → RetryPolicy (RETRIES_OFF for 0 attempts, `otherHost` filled in later); undefined when unset or bad. */
function retryOf(retry: HttpRouteRetrySpec | undefined, path: string, out: GatewayCollector): RetryPolicy | undefined {
  if (retry === undefined || retry === null) return undefined;
  for (const field of Object.keys(retry)) if (!['codes', 'attempts', 'backoff'].includes(field) && retry[field] !== undefined) out.warnings.add(`${path}.${field}: unknown field; ignored`);
  const attempts = retry.attempts ?? GATEWAY_DEFAULT_ATTEMPTS;
  if (!Number.isInteger(attempts) || attempts < 0) return out.fail('InvalidSpec', `${path}.attempts`, `${JSON.stringify(retry.attempts)} is not a non-negative integer`);
  const codes: number[] = [];
  let ok = true;
  (retry.codes ?? []).forEach((code, i) => {
    if (!Number.isInteger(code) || code < 400 || code > 599) {
      out.fail('InvalidSpec', `${path}.codes[${i}]`, `${JSON.stringify(code)} is not a retriable status (400-599)`);
      ok = false;
    } else if (!codes.includes(code)) codes.push(code);
  });
  let backoffMs: number | undefined;
  if (retry.backoff !== undefined) {
    backoffMs = parseDurationMs(String(retry.backoff));
    if (backoffMs === undefined) return out.fail('InvalidDuration', `${path}.backoff`, `${JSON.stringify(retry.backoff)} is not a duration (e.g. "100ms")`);
  }
  if (!ok) return undefined;
  if (attempts === 0) return RETRIES_OFF;
  return {
    attempts,
    retryOn: codes.length ? [...GATEWAY_RETRY_ON, 'retriable-status-codes'] : [...GATEWAY_RETRY_ON],
    ...(codes.length ? { retriableStatusCodes: codes } : {}),
    otherHost: true,
    ...(backoffMs ? { backoffBaseMs: backoffMs } : {}),
  };
}

/** `timeouts` and `retry` of a rule: route timeout and retry policy (per-try timeout folded in). */
function resilience(rule: HttpRouteRuleSpec, path: string, out: GatewayCollector): { timeoutMs?: number; retries?: RetryPolicy } {
  const duration = (value: string, at: string): number | undefined => {
    const ms = parseDurationMs(value);
    return ms === undefined ? out.fail('InvalidDuration', at, `${JSON.stringify(value)} is not a duration (e.g. "10s", "500ms")`) : ms;
  };
  const request = rule.timeouts?.request !== undefined ? duration(rule.timeouts.request, `${path}.timeouts.request`) : undefined;
  const backend = rule.timeouts?.backendRequest !== undefined ? duration(rule.timeouts.backendRequest, `${path}.timeouts.backendRequest`) : undefined;
  if (request && backend && backend > request) out.fail('InvalidSpec', `${path}.timeouts.backendRequest`, `${rule.timeouts?.backendRequest ?? ''} must not be longer than timeouts.request (${rule.timeouts?.request ?? ''})`);
  let retries = retryOf(rule.retry, `${path}.retry`, out);
  let timeoutMs = request || undefined;
  if (backend) {
    if (retries && retries.attempts > 0) retries = { ...retries, perTryTimeoutMs: backend };
    else timeoutMs = timeoutMs ? Math.min(timeoutMs, backend) : backend;
  }
  return { ...(timeoutMs ? { timeoutMs } : {}), ...(retries ? { retries } : {}) };
}

function pathModifier(p: PathModifier | undefined, path: string, out: GatewayCollector): { type: 'full' | 'prefix'; value: string } | undefined {
  if (!p) return undefined;
  if (p.type === 'ReplaceFullPath') return { type: 'full', value: p.replaceFullPath ?? '/' };
  if (p.type === 'ReplacePrefixMatch') return { type: 'prefix', value: p.replacePrefixMatch ?? '/' };
  return out.fail('UnsupportedValue', `${path}.type`, `${String(p.type)} is not supported (ReplaceFullPath, ReplacePrefixMatch)`);
}

const REDIRECT_CODES = [301, 302, 303, 307, 308];

function ruleParts(rule: HttpRouteRuleSpec, path: string, routeNamespace: string, ctx: RouteContext, out: GatewayCollector): RuleParts | undefined {
  const parts: Partial<RuleParts> & { mirrors: Mirror[] } = { mirrors: [] };
  let redirect: Redirect | undefined;
  let redirectPath: { type: 'full' | 'prefix'; value: string } | undefined;
  (rule.filters ?? []).forEach((f, i) => {
    const at = `${path}.filters[${i}]`;
    switch (f.type) {
      case 'RequestHeaderModifier':
        parts.requestHeaders = headerModifier(f.requestHeaderModifier);
        break;
      case 'ResponseHeaderModifier':
        parts.responseHeaders = headerModifier(f.responseHeaderModifier);
        break;
      case 'RequestRedirect': {
        const r = f.requestRedirect ?? {};
        const statusCode = r.statusCode ?? 302;
        if (!REDIRECT_CODES.includes(statusCode)) {
          out.fail('InvalidRedirect', `${at}.requestRedirect.statusCode`, `${statusCode} is not a redirect code (${REDIRECT_CODES.join(', ')})`);
          break;
        }
        if (r.scheme !== undefined && r.scheme !== 'http' && r.scheme !== 'https') {
          out.fail('InvalidRedirect', `${at}.requestRedirect.scheme`, `${JSON.stringify(r.scheme)} is not http or https`);
          break;
        }
        redirect = { statusCode, ...(r.scheme ? { scheme: r.scheme } : {}), ...(r.hostname ? { hostname: r.hostname } : {}), ...(r.port !== undefined ? { port: r.port } : {}) };
        redirectPath = pathModifier(r.path, `${at}.requestRedirect.path`, out);
        break;
      }
      case 'URLRewrite': {
        if (f.urlRewrite?.hostname) parts.hostname = f.urlRewrite.hostname;
        const rewrite = pathModifier(f.urlRewrite?.path, `${at}.urlRewrite.path`, out);
        if (rewrite) parts.rewrite = rewrite;
        break;
      }
      case 'RequestMirror': {
        const mirror = mirrorOf(f.requestMirror, `${at}.requestMirror`, routeNamespace, ctx, out);
        if (mirror) parts.mirrors.push(mirror);
        break;
      }
      case 'CORS':
        out.warnings.add(`${at}: CORS is not supported by amesh waypoints; ignored`);
        break;
      default:
        out.fail('UnsupportedValue', `${at}.type`, `${String(f.type)} is not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror)`);
    }
  });
  if (redirect && (parts.rewrite || parts.hostname)) out.fail('InvalidSpec', `${path}.filters`, 'RequestRedirect and URLRewrite cannot be used together');
  const { timeoutMs, retries } = resilience(rule, path, out);
  if (timeoutMs) parts.timeoutMs = timeoutMs;
  if (rule.sessionPersistence !== undefined) out.warnings.add(`${path}.sessionPersistence: not supported by amesh waypoints; ignored`);
  if (redirect) {
    if (rule.backendRefs?.length) out.warnings.add(`${path}.backendRefs: ignored, the rule redirects`);
    if (rule.retry !== undefined) out.warnings.add(`${path}.retry: ignored, the rule redirects`);
    if (redirectPath) parts.rewrite = redirectPath;
    parts.action = { kind: 'redirect', redirect };
    return parts as RuleParts;
  }
  const backends = weightedBackends(rule.backendRefs ?? [], `${path}.backendRefs`, routeNamespace, ctx, out);
  if (!backends) return undefined;
  parts.action = backends.length ? { kind: 'forward', backends } : { kind: 'direct-response', status: 500 };
  if (retries && backends.length) {
    // Under consistent hashing a retry stays on the chosen endpoint (Istio).
    const hashed = backends.some((b) => {
      const ref = out.clusters.get(b.cluster);
      return ref !== undefined && clusterHashes(ctx.destinationRules, ref);
    });
    parts.retries = retries.attempts > 0 ? { ...retries, otherHost: !hashed } : retries;
  }
  return parts as RuleParts;
}

function buildRoute(name: string, parts: RuleParts, matchPlan: MatchPlan): HttpRoute {
  let action = parts.action;
  let rewrite: UrlRewrite | undefined;
  if (action.kind === 'redirect') {
    // A redirect's path modifier applies to the Location, with the same prefix semantics.
    if (matchPlan.rewritePath) action = { kind: 'redirect', redirect: { ...action.redirect, path: matchPlan.rewritePath } };
  } else if (parts.hostname || matchPlan.rewritePath) {
    rewrite = { ...(parts.hostname ? { hostname: parts.hostname } : {}), ...(matchPlan.rewritePath ? { path: matchPlan.rewritePath } : {}) };
  }
  return {
    name,
    matches: matchPlan.matches,
    action,
    ...(parts.requestHeaders ? { requestHeaders: parts.requestHeaders } : {}),
    ...(parts.responseHeaders ? { responseHeaders: parts.responseHeaders } : {}),
    ...(rewrite ? { rewrite } : {}),
    ...(parts.mirrors.length ? { mirrors: parts.mirrors } : {}),
    ...(parts.timeoutMs ? { timeoutMs: parts.timeoutMs } : {}),
    ...(parts.retries && action.kind === 'forward' ? { retries: parts.retries } : {}),
  };
}

/** translateHttpRoute, a throw on a value of the wrong type contained to this object (contain.ts). */
export function translateHttpRoute(route: HttpRouteObject, ctx: RouteContext, targets: readonly RouteTarget[]): Translation & { entries: OrderedEntry[] } {
  return contained(() => translateHttpRouteUnchecked(route, ctx, targets), (reason) => ({ ...emptyTranslation(), entries: [], issues: [issue('InvalidSpec', 'spec', reason)] }));
}

/**
 * Route entries for each target (every port of the service, or the parentRef's port), each with
 * its precedence `order`. With no targets the route is only validated.
 */
function translateHttpRouteUnchecked(route: HttpRouteObject, ctx: RouteContext, targets: readonly RouteTarget[]): Translation & { entries: OrderedEntry[] } {
  const namespace = route.metadata.namespace ?? 'default';
  const routeName = `HTTPRoute/${namespace}/${route.metadata.name ?? ''}`;
  const out = new GatewayCollector();
  if (route.spec?.hostnames?.length) out.warnings.add('spec.hostnames: ignored for mesh routes (GAMMA): the parent service decides');
  const routes: Array<{ route: HttpRoute; order: RouteOrder }> = [];
  const rules = route.spec?.rules ?? [];
  rules.forEach((rule, r) => {
    const path = `spec.rules[${r}]`;
    const parts = ruleParts(rule, path, namespace, ctx, out);
    const declared = rule.matches?.length ? rule.matches : [{}];
    declared.forEach((m, k) => {
      const t = translateMatch(m, `${path}.matches[${k}]`, out);
      if (!t || !parts) return;
      if (parts.rewrite?.type === 'prefix' && t.pathType !== 'PathPrefix') {
        out.fail('InvalidSpec', `${path}.filters`, `ReplacePrefixMatch needs a PathPrefix match (${path}.matches[${k}] is ${t.pathType})`);
        return;
      }
      const name = declared.length > 1 ? `${routeName}#${r}.${k}` : `${routeName}#${r}`;
      plan(t, parts.rewrite).forEach((p, s) => routes.push({ route: buildRoute(`${name}${p.suffix}`, parts, p), order: { rank: t.rank, tie: tieBreak(route, r, k, s) } }));
    });
  });
  const entries: OrderedEntry[] = [];
  for (const target of targets) {
    const ports = target.port !== undefined ? target.service.ports.filter((p) => p === target.port) : target.service.ports;
    if (target.port !== undefined && ports.length === 0) out.warnings.add(`parentRef port ${target.port}: service ${target.service.hostname} has no such port`);
    for (const port of ports) for (const r of routes) entries.push({ hostname: target.service.hostname, port, route: r.route, order: r.order });
  }
  const result = out.result(entries);
  return { ...result, entries: result.entries as OrderedEntry[] };
}
