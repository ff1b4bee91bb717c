/**
 * Gateway API GRPCRoute → waypoint routes (the same model as HTTPRoute: a gRPC call is an HTTP/2
 * POST to `/<service>/<method>`). Pure. Attachment, backendRefs and header filters as in
 * http-route.ts.
 *
 * A method match becomes a path match: service and method → exact `/<service>/<method>`;
 * service only → prefix `/<service>/`; method only → regex `/[^/]+/<method>`; type
 * RegularExpression → regex `/<service or [^/]+>/<method or [^/]+>`. Precedence across
 * GRPCRoutes follows the spec: longer service, then longer method, then more header matches; ties
 * as for HTTPRoute (older route, namespace/name, rule and match order).
 * Filters: RequestHeaderModifier, ResponseHeaderModifier, RequestMirror; others are rejected.
 */
import type { HeaderMutation, HttpRoute, Mirror, RequestMatch, StringMatch } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import {
  GatewayCollector,
  headerMatchesOf,
  headerModifier,
  mirrorOf,
  tieBreak,
  weightedBackends,
  type BackendRef,
  type HttpRouteMatchSpec,
  type OrderedEntry,
  type ParentRef,
  type RouteFilter,
  type RouteOrder,
  type RouteTarget,
} from './http-route.js';
import { emptyTranslation, issue, regexCompiles, type RouteContext, type Translation } from './route-model.js';
import { contained } from './contain.js';

export interface GrpcRouteMatchSpec {
  method?: { type?: string; service?: string; method?: string };
  headers?: HttpRouteMatchSpec['headers'];
}

export interface GrpcRouteRuleSpec {
  name?: string;
  matches?: GrpcRouteMatchSpec[];
  filters?: RouteFilter[];
  backendRefs?: BackendRef[];
  sessionPersistence?: unknown;
}

export interface GrpcRouteObject extends KubeObjectLike {
  spec?: { parentRefs?: ParentRef[]; hostnames?: string[]; rules?: GrpcRouteRuleSpec[] };
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The path match of a gRPC method match; undefined = any path. */
export function grpcPathMatch(method: GrpcRouteMatchSpec['method'], path: string, out: GatewayCollector): StringMatch | undefined | null {
  if (!method) return undefined;
  const type = method.type ?? 'Exact';
  const { service, method: name } = method;
  if (!service && !name) return out.fail('InvalidSpec', path, 'one of service or method is required') ?? null;
  if (type === 'Exact') {
    if ((service && service.includes('/')) || (name && name.includes('/'))) return out.fail('InvalidSpec', path, 'service and method must not contain "/"') ?? null;
    if (service && name) return { kind: 'exact', value: `/${service}/${name}` };
    if (service) return { kind: 'prefix', value: `/${service}/` };
    return { kind: 'regex', value: `/[^/]+/${escape(name ?? '')}` };
  }
  if (type === 'RegularExpression') {
    for (const [field, value] of [['service', service], ['method', name]] as const) {
      if (value && !regexCompiles(value)) return out.fail('InvalidRegex', `${path}.${field}`, `${JSON.stringify(value)} is not a valid regular expression`) ?? null;
    }
    return { kind: 'regex', value: `/${service || '[^/]+'}/${name || '[^/]+'}` };
  }
  return out.fail('UnsupportedValue', `${path}.type`, `${type} is not supported (Exact, RegularExpression)`) ?? null;
}

interface RuleParts {
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  mirrors: Mirror[];
}

function ruleParts(rule: GrpcRouteRuleSpec, path: string, namespace: string, ctx: RouteContext, out: GatewayCollector): RuleParts {
  const parts: RuleParts = { mirrors: [] };
  (rule.filters ?? []).forEach((f, i) => {
    const at = `${path}.filters[${i}]`;
    if (f.type === 'RequestHeaderModifier') {
      const m = headerModifier(f.requestHeaderModifier);
      if (m) parts.requestHeaders = m;
    } else if (f.type === 'ResponseHeaderModifier') {
      const m = headerModifier(f.responseHeaderModifier);
      if (m) parts.responseHeaders = m;
    } else if (f.type === 'RequestMirror') {
      const mirror = mirrorOf(f.requestMirror, `${at}.requestMirror`, namespace, ctx, out);
      if (mirror) parts.mirrors.push(mirror);
    } else out.fail('UnsupportedValue', `${at}.type`, `${String(f.type)} is not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror)`);
  });
  if (rule.sessionPersistence !== undefined) out.warnings.add(`${path}.sessionPersistence: not supported by amesh waypoints; ignored`);
  return parts;
}

/** translateGrpcRoute, a throw on a value of the wrong type contained to this object (contain.ts). */
export function translateGrpcRoute(route: GrpcRouteObject, ctx: RouteContext, targets: readonly RouteTarget[]): Translation & { entries: OrderedEntry[] } {
  return contained(() => translateGrpcRouteUnchecked(route, ctx, targets), (reason) => ({ ...emptyTranslation(), entries: [], issues: [issue('InvalidSpec', 'spec', reason)] }));
}

function translateGrpcRouteUnchecked(route: GrpcRouteObject, ctx: RouteContext, targets: readonly RouteTarget[]): Translation & { entries: OrderedEntry[] } {
  const namespace = route.metadata.namespace ?? 'default';
  const routeName = `GRPCRoute/${namespace}/${route.metadata.name ?? ''}`;
  const out = new GatewayCollector();
  if (route.spec?.hostnames?.length) out.warnings.add('spec.hostnames: ignored for mesh routes (GAMMA): the parent service decides');
  const routes: Array<{ route: HttpRoute; order: RouteOrder }> = [];
  (route.spec?.rules ?? []).forEach((rule, r) => {
    const path = `spec.rules[${r}]`;
    const parts = ruleParts(rule, path, namespace, ctx, out);
    const backends = weightedBackends(rule.backendRefs ?? [], `${path}.backendRefs`, namespace, ctx, out);
    const declared = rule.matches?.length ? rule.matches : [{}];
    declared.forEach((m, k) => {
      const at = `${path}.matches[${k}]`;
      const pathMatch = grpcPathMatch(m.method, `${at}.method`, out);
      const headers = headerMatchesOf(m.headers, `${at}.headers`, out);
      if (pathMatch === null || !backends) return;
      const match: RequestMatch = { ...(pathMatch ? { path: pathMatch } : {}), ...(headers.length ? { headers } : {}) };
      const name = declared.length > 1 ? `${routeName}#${r}.${k}` : `${routeName}#${r}`;
      routes.push({
        route: {
          name,
          matches: [match],
          action: backends.length ? { kind: 'forward', backends } : { kind: 'direct-response', status: 500 },
          ...(parts.requestHeaders ? { requestHeaders: parts.requestHeaders } : {}),
          ...(parts.responseHeaders ? { responseHeaders: parts.responseHeaders } : {}),
          ...(parts.mirrors.length ? { mirrors: parts.mirrors } : {}),
        },
        order: { rank: [m.method?.service?.length ?? 0, m.method?.method?.length ?? 0, headers.length], tie: tieBreak(route, r, k) },
      });
    });
  });
  const entries: OrderedEntry[] = [];
  for (const target of targets) {
    const ports = target.port !== undefined ? target.service.ports.filter((p) => p === target.port) : target.service.ports;
    for (const port of ports) for (const r of routes) entries.push({ hostname: target.service.hostname, port, route: r.route, order: r.order });
  }
  const result = out.result(entries);
  return { ...result, entries: result.entries as OrderedEntry[] };
}
