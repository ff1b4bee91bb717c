/**
 * The waypoint's routing decision, pure (STYLE: decide, then do): a RouteTable compiled once per
 * WaypointConfig, and `routeRequest(port, request, random)` → what to do with one HTTP request.
 *
 * Semantics (Envoy's, as Istio and Gateway API configure it):
 * - A port's routes are tried in order; the first route with a matching entry in `matches`
 *   wins (an empty `matches` matches everything). Every present field of a RequestMatch must hold.
 * - A request no route matches (a port without routes included) goes to the port's
 *   `defaultCluster`, as the WaypointConfig contract says (config.ts: "unrouted traffic still
 *   flows"), under the route name `default`. Only a port without a default cluster answers 404
 *   (Envoy's `NR`). (Istio and Gateway API would 404 unmatched requests; the translator can say
 *   so with a final direct-response route.)
 * - String matches: `exact`, `prefix` (plain string prefix, Envoy's `prefix`), `regex` (the whole
 *   value must match, like Envoy's RE2 `safe_regex`). Regexes are compiled when the table is
 *   built; an invalid one fails the build with the field path, so the config is NACKed whole.
 * - `authority` matches the Host / :authority without its port, case-insensitively.
 * - Weighted backends: one is drawn with `random()` in [0, 1) over the weights; weight 0 is never
 *   chosen; all weights 0 → `no-backend` (503).
 * The table is cached per config object, so routing on a hot path never recompiles.
 */
import { AmeshError } from '../errors/amesh-error.js';
import type { FaultPolicy, HeaderMutation, HttpRoute, RetryPolicy, Mirror, Redirect, RequestMatch, StringMatch, UrlRewrite, WaypointConfig, WaypointPort, WaypointService, WeightedBackend } from './config.js';
import { rewritePath } from './filters/url-rewrite.js';

export interface RouteRequest {
  method: string;
  /** The path without the query. */
  path: string;
  /** The raw query without `?`; '' when none. */
  query: string;
  /** Lower-case names, as Node gives them. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Host / :authority as sent (may carry a port). */
  authority: string;
}

type Matcher = (value: string) => boolean;

interface CompiledMatch {
  path?: Matcher;
  /** The literal prefix a `prefix` path match consumed (for prefix rewrites); '' otherwise. */
  pathPrefix?: string;
  pathKind?: StringMatch['kind'];
  method?: string;
  headers: Array<{ name: string; test?: Matcher; invert: boolean }>;
  queryParams: Array<{ name: string; test?: Matcher }>;
  authority?: Matcher;
}

export interface CompiledRoute {
  name: string;
  route: HttpRoute;
  matches: CompiledMatch[];
  /** Cumulative weights of forward backends (same order), for the weighted draw. */
  cumulative: number[];
  totalWeight: number;
}

export interface CompiledPort {
  service: WaypointService;
  port: WaypointPort;
  routes: CompiledRoute[];
}

export interface RouteTable {
  config: WaypointConfig;
  /**
   * port → vip (IPv6 bare, no brackets) → the port's routes; read with `lookupPort`. Two lookups
   * and no key string: building and hashing `<vip>:<port>` for every request cost more.
   */
  byPort: ReadonlyMap<number, ReadonlyMap<string, CompiledPort>>;
}

export type RouteDecision =
  | {
      kind: 'forward';
      route: string;
      backend: WeightedBackend;
      cluster: string;
      /** The upstream request target: the (rewritten) path plus the original query. */
      path: string;
      /** The upstream Host / :authority (rewritten or as received). */
      authority: string;
      /** Route mutations first, then the chosen backend's. */
      requestHeaders: HeaderMutation[];
      responseHeaders: HeaderMutation[];
      mirrors: Mirror[];
      timeoutMs?: number;
      retries?: RetryPolicy;
      fault?: FaultPolicy;
    }
  | { kind: 'redirect'; route: string; redirect: Redirect; matchedPrefix: string; responseHeaders: HeaderMutation[] }
  | { kind: 'direct-response'; route: string; status: number; body?: string; responseHeaders: HeaderMutation[] }
  | { kind: 'no-backend'; route: string }
  | { kind: 'no-route' };

const invalid = (path: string, problem: string): AmeshError => new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${path}: ${problem}`);

function compileString(m: StringMatch, path: string, caseInsensitive = false): Matcher {
  const value = caseInsensitive ? m.value.toLowerCase() : m.value;
  switch (m.kind) {
    case 'exact':
      return (v) => v === value;
    case 'prefix':
      return (v) => v.startsWith(value);
    case 'regex': {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${m.value})$`, caseInsensitive ? 'i' : '');
      } catch (err) {
        throw invalid(path, `invalid regex ${JSON.stringify(m.value)}: ${(err as Error).message}`);
      }
      return (v) => re.test(v);
    }
    default:
      throw invalid(path, `unknown match kind ${JSON.stringify((m as { kind: unknown }).kind)}`);
  }
}

function compileMatch(m: RequestMatch, path: string): CompiledMatch {
  return {
    ...(m.path ? { path: compileString(m.path, `${path}.path`), pathKind: m.path.kind, pathPrefix: m.path.kind === 'prefix' ? m.path.value : '' } : {}),
    ...(m.method ? { method: m.method.toUpperCase() } : {}),
    headers: (m.headers ?? []).map((h, i) => ({ name: h.name.toLowerCase(), ...(h.match ? { test: compileString(h.match, `${path}.headers[${i}]`) } : {}), invert: h.invert === true })),
    queryParams: (m.queryParams ?? []).map((q, i) => ({ name: q.name, ...(q.match ? { test: compileString(q.match, `${path}.queryParams[${i}]`) } : {}) })),
    ...(m.authority ? { authority: compileString(m.authority, `${path}.authority`, true) } : {}),
  };
}

function compileRoute(route: HttpRoute, path: string): CompiledRoute {
  const cumulative: number[] = [];
  let total = 0;
  if (route.action.kind === 'forward') {
    for (const [i, b] of route.action.backends.entries()) {
      if (!(Number.isFinite(b.weight) && b.weight >= 0)) throw invalid(`${path}.action.backends[${i}].weight`, `expected a weight >= 0, got ${b.weight}`);
      total += b.weight;
      cumulative.push(total);
    }
  }
  return { name: route.name, route, matches: route.matches.map((m, i) => compileMatch(m, `${path}.matches[${i}]`)), cumulative, totalWeight: total };
}

/** Compiles every service port; throws AMESH_XDS_INVALID_RESOURCE naming the bad field. */
export function buildRouteTable(config: WaypointConfig): RouteTable {
  const byPort = new Map<number, Map<string, CompiledPort>>();
  for (const [si, service] of config.services.entries()) {
    for (const [pi, port] of service.ports.entries()) {
      const path = `services[${si}].ports[${pi}]`;
      const compiled: CompiledPort = { service, port, routes: port.routes.map((r, ri) => compileRoute(r, `${path}.routes[${ri}]`)) };
      let byVip = byPort.get(port.port);
      if (!byVip) byPort.set(port.port, (byVip = new Map()));
      for (const vip of service.addresses) byVip.set(vip, compiled);
    }
  }
  return { config, byPort };
}

/** The routes of `<vip>:<port>`, if a service of this table has that address and port. */
export function lookupPort(table: RouteTable, vip: string, port: number): CompiledPort | undefined {
  return table.byPort.get(port)?.get(vip);
}

const tables = new WeakMap<WaypointConfig, RouteTable>();

/** The table of `config`, compiled on first use and cached for the config's lifetime. */
export function routeTableFor(config: WaypointConfig): RouteTable {
  let table = tables.get(config);
  if (!table) {
    table = buildRouteTable(config);
    tables.set(config, table);
  }
  return table;
}

/** `host` of `host:port`, `[v6]:port` or a bare host; lower case. */
export function authorityHost(authority: string): string {
  const a = authority.trim();
  if (a.startsWith('[')) {
    const close = a.indexOf(']');
    return (close === -1 ? a : a.slice(0, close + 1)).toLowerCase();
  }
  const colon = a.indexOf(':');
  return (colon === -1 ? a : a.slice(0, colon)).toLowerCase();
}

function headerValue(headers: RouteRequest['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function matches(m: CompiledMatch, req: RouteRequest, query: () => URLSearchParams): boolean {
  if (m.method !== undefined && req.method.toUpperCase() !== m.method) return false;
  if (m.path && !m.path(req.path)) return false;
  if (m.authority && !m.authority(authorityHost(req.authority))) return false;
  for (const h of m.headers) {
    const v = headerValue(req.headers, h.name);
    const holds = v !== undefined && (h.test ? h.test(v) : true);
    if (holds === h.invert) return false;
  }
  for (const q of m.queryParams) {
    const v = query().get(q.name);
    if (v === null || (q.test && !q.test(v))) return false;
  }
  return true;
}

/** Which match of `route` holds, or undefined. */
function matching(route: CompiledRoute, req: RouteRequest, query: () => URLSearchParams): CompiledMatch | undefined {
  if (route.matches.length === 0) return EVERYTHING;
  return route.matches.find((m) => matches(m, req, query));
}

const EVERYTHING: CompiledMatch = { headers: [], queryParams: [] };

/** Index into `cumulative` for a draw `r` in [0, total). */
export function pickWeightedIndex(cumulative: readonly number[], total: number, random: () => number): number {
  if (!(total > 0)) return -1;
  const r = random() * total;
  for (let i = 0; i < cumulative.length; i++) if (r < (cumulative[i] as number)) return i;
  // random() just below 1 with rounding: the last backend with weight.
  for (let i = cumulative.length - 1; i >= 0; i--) if ((cumulative[i] as number) > (i > 0 ? (cumulative[i - 1] as number) : 0)) return i;
  return -1;
}

/** The matched prefix a prefix rewrite / redirect replaces: the literal prefix, the whole path for exact/regex, '/' with no path match. */
function matchedPrefixOf(m: CompiledMatch, path: string): string {
  if (m.pathKind === 'prefix') return m.pathPrefix ?? '';
  if (m.pathKind === 'exact' || m.pathKind === 'regex') return path;
  return '/';
}

function withQuery(path: string, query: string): string {
  return query ? `${path}?${query}` : path;
}

function applyRewrite(rewrite: UrlRewrite | undefined, req: RouteRequest, matchedPrefix: string): { path: string; authority: string } {
  const path = rewrite?.path ? rewritePath(req.path, matchedPrefix, rewrite.path) : req.path;
  return { path: withQuery(path, req.query), authority: rewrite?.hostname ?? req.authority };
}

export function routeRequest(port: CompiledPort, req: RouteRequest, random: () => number): RouteDecision {
  let parsedQuery: URLSearchParams | undefined;
  const query = (): URLSearchParams => (parsedQuery ??= new URLSearchParams(req.query));
  for (const compiled of port.routes) {
    const m = matching(compiled, req, query);
    if (!m) continue;
    const route = compiled.route;
    const matchedPrefix = matchedPrefixOf(m, req.path);
    const responseHeaders = route.responseHeaders ? [route.responseHeaders] : [];
    const action = route.action;
    if (action.kind === 'redirect') return { kind: 'redirect', route: route.name, redirect: action.redirect, matchedPrefix, responseHeaders };
    if (action.kind === 'direct-response') return { kind: 'direct-response', route: route.name, status: action.status, ...(action.body !== undefined ? { body: action.body } : {}), responseHeaders };
    const i = pickWeightedIndex(compiled.cumulative, compiled.totalWeight, random);
    const backend = action.backends[i];
    if (!backend) return { kind: 'no-backend', route: route.name };
    const target = applyRewrite(route.rewrite, req, matchedPrefix);
    return {
      kind: 'forward',
      route: route.name,
      backend,
      cluster: backend.cluster,
      path: target.path,
      authority: target.authority,
      requestHeaders: [...(route.requestHeaders ? [route.requestHeaders] : []), ...(backend.requestHeaders ? [backend.requestHeaders] : [])],
      responseHeaders: [...responseHeaders, ...(backend.responseHeaders ? [backend.responseHeaders] : [])],
      mirrors: route.mirrors ?? [],
      ...(route.timeoutMs !== undefined && route.timeoutMs > 0 ? { timeoutMs: route.timeoutMs } : {}),
      ...(route.retries && route.retries.attempts > 0 ? { retries: route.retries } : {}),
      ...(route.fault ? { fault: route.fault } : {}),
    };
  }
  const fallback = port.port.defaultCluster;
  if (!fallback) return { kind: 'no-route' };
  return {
    kind: 'forward',
    route: 'default',
    backend: { cluster: fallback, weight: 1 },
    cluster: fallback,
    path: withQuery(req.path, req.query),
    authority: req.authority,
    requestHeaders: [],
    responseHeaders: [],
    mirrors: [],
    ...(port.port.defaultRetries && port.port.defaultRetries.attempts > 0 ? { retries: port.port.defaultRetries } : {}),
  };
}

/** Splits a request target into path and raw query. */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q === -1 ? { path: target || '/', query: '' } : { path: target.slice(0, q) || '/', query: target.slice(q + 1) };
}
