/**
 * Gateway API L4 routes at ingress gateways, pure: TLSRoute (gateway.networking.k8s.io v1 and
 * v1alpha2; passthrough by SNI on TLS listeners) and TCPRoute (v1alpha2; TCP listeners) → one
 * L4 rule per `spec.rules[]` entry with its weighted backends and the clusters they name.
 *
 * - backendRefs resolve exactly as HTTPRoute backendRefs (http-route.ts weightedBackends: Service
 *   in the route's namespace, port required, weights non-negative and not all 0), so the clusters
 *   are the same clusters an HTTPRoute to that Service:port gets. A rule without backendRefs, or a
 *   backendRef with `filters` (L4 routes have none), makes the route invalid.
 * - TLSRoute `hostnames` are SNI patterns (exact or `*.suffix`); an invalid one matches nothing
 *   (as for HTTPRoutes: ignoring it would widen the route). TCPRoutes have no hostnames.
 * - A TCP listener forwards every connection to its first route: a TCPRoute's rules after the first
 *   are named in a warning, never silently dropped.
 * - An invalid route keeps being served from its last valid spec (same uid), as HTTPRoutes are.
 */
import type { WeightedBackend } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import { GatewayCollector, weightedBackends, type BackendRef, type ParentRef } from './http-route.js';
import { normaliseHost } from './ingress-hosts.js';
import { lastValidOf, objectKey, type FrontEndContext } from './ingress-plan.js';
import { issue, type ClusterRef, type RouteIssue } from './route-model.js';
import { contained } from './contain.js';

export type L4RouteKind = 'TLSRoute' | 'TCPRoute';

export interface L4RouteObject extends KubeObjectLike {
  spec?: {
    parentRefs?: ParentRef[];
    /** TLSRoute only. */
    hostnames?: string[];
    rules?: Array<{ name?: string; backendRefs?: BackendRef[]; [field: string]: unknown }>;
    [field: string]: unknown;
  };
}

/** One rule: its index in `spec.rules` and where it sends connections. */
export interface L4Rule {
  index: number;
  backends: WeightedBackend[];
}

export interface L4RouteTranslation {
  kind: L4RouteKind;
  rules: L4Rule[];
  clusters: ClusterRef[];
  /** Non-empty: the route as written is rejected (served from `fallback` if there is one). */
  issues: RouteIssue[];
  warnings: string[];
  fallback?: { generation?: number };
  /** TLSRoute `hostnames`, normalised; the invalid ones apart. */
  hostnames: string[];
  badHostnames: string[];
}

const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SPEC_FIELDS: Record<L4RouteKind, ReadonlySet<string>> = { TLSRoute: new Set(['parentRefs', 'hostnames', 'rules']), TCPRoute: new Set(['parentRefs', 'rules']) };
const RULE_FIELDS = new Set(['name', 'backendRefs']);

/** translate, a throw on a value of the wrong type contained to this object (contain.ts). */
function translate(kind: L4RouteKind, route: L4RouteObject, ctx: FrontEndContext): Omit<L4RouteTranslation, 'fallback'> {
  return contained(() => translateUnchecked(kind, route, ctx), (reason) => ({ kind, rules: [], clusters: [], issues: [issue('InvalidSpec', 'spec', reason)], warnings: [], hostnames: [], badHostnames: [] }));
}

function translateUnchecked(kind: L4RouteKind, route: L4RouteObject, ctx: FrontEndContext): Omit<L4RouteTranslation, 'fallback'> {
  const namespace = route.metadata.namespace ?? 'default';
  const spec = route.spec ?? {};
  const out = new GatewayCollector();
  for (const field of Object.keys(spec)) if (!SPEC_FIELDS[kind].has(field) && spec[field] !== undefined) out.warnings.add(`spec.${field}: not a ${kind} field amesh reads; ignored`);
  const rules: L4Rule[] = [];
  const list = spec.rules ?? [];
  if (list.length === 0) out.fail('InvalidSpec', 'spec.rules', 'at least one rule is required');
  list.forEach((rule, index) => {
    const path = `spec.rules[${index}]`;
    for (const field of Object.keys(rule)) if (!RULE_FIELDS.has(field) && rule[field] !== undefined) out.warnings.add(`${path}.${field}: not supported; ignored`);
    const refs = rule.backendRefs ?? [];
    if (refs.length === 0) {
      out.fail('InvalidDestination', `${path}.backendRefs`, 'at least one backendRef is required');
      return;
    }
    const filtered = refs.findIndex((r) => r.filters !== undefined);
    if (filtered >= 0) {
      out.fail('UnsupportedValue', `${path}.backendRefs[${filtered}].filters`, `a ${kind} backendRef has no filters`);
      return;
    }
    const backends = weightedBackends(refs, `${path}.backendRefs`, namespace, ctx.routeCtx, out);
    if (backends) rules.push({ index, backends });
  });
  if (kind === 'TCPRoute' && list.length > 1) out.warnings.add(`spec.rules[1..${list.length - 1}]: a TCP listener sends every connection to its first rule; the others are not used`);
  const hostnames: string[] = [];
  const badHostnames: string[] = [];
  if (kind === 'TLSRoute') {
    for (const h of spec.hostnames ?? []) {
      const host = normaliseHost(h);
      if (HOSTNAME.test(host)) hostnames.push(host);
      else badHostnames.push(h);
    }
  }
  const issues = [...out.issues.values()];
  return { kind, rules: issues.length ? [] : rules, clusters: issues.length ? [] : [...out.clusters.values()], issues, warnings: [...out.warnings], hostnames, badHostnames };
}

/** `route` translated for ingress use; records its spec in `ctx.valid` when valid, else falls back to the last valid one. */
export function translateL4Route(kind: L4RouteKind, route: L4RouteObject, ctx: FrontEndContext): L4RouteTranslation {
  const key = objectKey(kind, route);
  const current = translate(kind, route, ctx);
  if (current.issues.length === 0) {
    ctx.valid.set(key, { uid: route.metadata.uid, generation: route.metadata.generation, spec: route.spec });
    return current;
  }
  const last = lastValidOf(ctx, key, route);
  if (last) {
    const previous = translate(kind, { ...route, spec: last.spec as L4RouteObject['spec'] }, ctx);
    if (previous.issues.length === 0) {
      ctx.valid.set(key, last);
      return { ...previous, issues: current.issues, warnings: current.warnings, fallback: { ...(last.generation !== undefined ? { generation: last.generation } : {}) } };
    }
  }
  return current;
}
