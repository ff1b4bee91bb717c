/**
 * Gateway API ingress Gateways (class in INGRESS_GATEWAY_CLASSES) → one deployment plan each,
 * the Gateway's status (listeners included) and the parent status of every HTTPRoute, GRPCRoute,
 * TLSRoute and TCPRoute attached to it (key `<Kind>/<ns>/<name>@<gateway ns>/<gateway name>`). Pure.
 *
 * Listeners (gateway.networking.k8s.io v1 semantics):
 * - protocols HTTP, HTTPS (tls.mode Terminate, certificateRefs to Secrets in the Gateway's
 *   namespace), TLS (tls.mode Passthrough only: amesh terminates TLS on HTTPS listeners, so
 *   Terminate — the Gateway API default — on a TLS listener is Accepted=False/UnsupportedProtocol
 *   saying so) and TCP (`hostname` and `tls` ignored with a warning); anything else is
 *   Accepted=False/UnsupportedProtocol. Ports the gateway uses itself are PortUnavailable.
 * - distinctness: listeners on one port with different protocols are all Conflicted=True /
 *   ProtocolConflict; same port, protocol and hostname → HostnameConflict. Conflicted listeners
 *   are not programmed; the others are.
 * - certificateRefs: a missing Secret, one without a usable tls.crt/tls.key, or a kind other than
 *   Secret → ResolvedRefs=False/InvalidCertificateRef naming it; another namespace →
 *   RefNotPermitted (ReferenceGrant is not read). An HTTPS listener without one usable certificate
 *   is Programmed=False; the Gateway's other listeners are unaffected.
 * - allowedRoutes: namespaces from Same (default) | All | Selector (matchLabels and
 *   matchExpressions on the route's namespace); kinds HTTPRoute and GRPCRoute on HTTP/HTTPS,
 *   TLSRoute on TLS, TCPRoute on TCP (the defaults; others → ResolvedRefs=False/InvalidRouteKinds).
 *
 * HTTPRoutes and GRPCRoutes (translated by http-route.ts / grpc-route.ts): a parentRef to the Gateway (optionally `sectionName` and/or `port`) attaches the
 * route to each listener it selects that allows it and whose hostname intersects the route's
 * `hostnames` (none = the listener's). `attachedRoutes` counts them. The parent status is
 * Accepted=True, or False with NotAllowedByListeners / NoMatchingListenerHostname /
 * NoMatchingParent; ResolvedRefs as the waypoint translator decides it (BackendNotFound).
 *
 * Routing on a port: the listeners on it, most specific hostname first; within a listener its
 * routes by Gateway API precedence — the most specific matching hostname, then GRPCRoutes before
 * HTTPRoutes (as at waypoints), then each kind's rule order (http-route.ts: path, method, headers,
 * query; grpc-route.ts: service, method, headers; then the oldest route). A listener with a hostname ends with
 * a 404 for that hostname, so a request is only ever routed by the listener it belongs to.
 *
 * TLSRoutes and TCPRoutes (translated by ingress-l4-routes.ts) attach the same way (a TLSRoute's
 * `hostnames` intersect the TLS listener's hostname; TCP listeners have none) and become the
 * port's `l4Routes`: one per rule and host pattern, most specific pattern first, then the oldest
 * route, then rule order — the gateway takes the first whose SNI pattern matches. A TCP listener
 * sends every connection to its first route: a later TCPRoute on it is Accepted with a warning
 * saying it gets no traffic.
 */
import type { GatewayCertificate, HttpRoute, L4Route, WeightedBackend } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import type { ConditionSpec } from '../status/policy-status.js';
import { translateGrpcRoute, type GrpcRouteObject } from './grpc-route.js';
import { compareOrder, GATEWAY_GROUP, translateHttpRoute, type HttpRouteObject, type OrderedEntry, type ParentRef, type RouteOrder, type RouteTarget } from './http-route.js';
import { ANY_HOST, compareHostSpecificity, intersectHosts, normaliseHost } from './ingress-hosts.js';
import { INGRESS_GATEWAY_CLASSES, type IngressGatewayStatus, type ListenerStatusSpec } from './ingress-model.js';
import { byAge, closeHost, hostRoutes, hostScopedName, lastValidOf, newPortPlan, noteClusterUse, objectKey, RESERVED_GATEWAY_PORTS, type DeploymentPlan, type FrontEndContext, type ListenerProtocol } from './ingress-plan.js';
import { translateL4Route, type L4RouteKind, type L4RouteObject, type L4Rule } from './ingress-l4-routes.js';
import { certificateFrom } from './ingress-secrets.js';
import { contained, listOf } from './contain.js';
import { issue, type ClusterRef, type RouteIssue } from './route-model.js';

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key?: string; operator?: string; values?: string[] }>;
}

interface CertificateRef {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

export interface ListenerSpec {
  name?: string;
  port?: number;
  protocol?: string;
  hostname?: string;
  tls?: { mode?: string; certificateRefs?: CertificateRef[]; [field: string]: unknown };
  allowedRoutes?: { namespaces?: { from?: string; selector?: LabelSelector }; kinds?: Array<{ group?: string; kind?: string }> };
  [field: string]: unknown;
}

export interface IngressGatewayObject extends KubeObjectLike {
  spec?: {
    gatewayClassName?: string;
    listeners?: ListenerSpec[];
    infrastructure?: { labels?: Record<string, string>; annotations?: Record<string, string>; [field: string]: unknown };
    [field: string]: unknown;
  };
}

export function isIngressGateway(gateway: KubeObjectLike): boolean {
  return INGRESS_GATEWAY_CLASSES.includes((gateway as IngressGatewayObject).spec?.gatewayClassName ?? '');
}

/** `<gateway>-<class>`: the deployment, ServiceAccount and Service of a Gateway API ingress Gateway. */
export function ingressDeploymentName(gateway: IngressGatewayObject): string {
  return `${gateway.metadata.name ?? ''}-${gateway.spec?.gatewayClassName ?? ''}`;
}

/** What an HTTP / HTTPS listener takes; GRPCRoutes are ordered before HTTPRoutes on a host, as at waypoints. */
const ROUTE_KINDS = ['GRPCRoute', 'HTTPRoute'] as const;
type IngressRouteKind = (typeof ROUTE_KINDS)[number];
type RouteKind = IngressRouteKind | L4RouteKind;
/** The route kinds each listener protocol takes (and defaults to). */
const KINDS_BY_PROTOCOL: Readonly<Record<string, readonly RouteKind[]>> = { HTTP: ROUTE_KINDS, HTTPS: ROUTE_KINDS, TLS: ['TLSRoute'], TCP: ['TCPRoute'] };
const kindsOf = (protocol: string): readonly RouteKind[] => KINDS_BY_PROTOCOL[protocol] ?? [];
const supportedKindsOf = (protocol: string): Array<{ group: string; kind: string }> => kindsOf(protocol).map((kind) => ({ group: GATEWAY_GROUP, kind }));
const isL4 = (protocol: string): boolean => protocol === 'TLS' || protocol === 'TCP';
const LISTENER_FIELDS = new Set(['name', 'port', 'protocol', 'hostname', 'tls', 'allowedRoutes']);
const SPEC_FIELDS = new Set(['gatewayClassName', 'listeners', 'infrastructure']);

interface ListenerState {
  spec: ListenerSpec;
  index: number;
  name: string;
  port: number;
  protocol: string;
  /** The listener's hostname pattern, `*` when it has none. */
  hostname: string;
  accepted?: { reason: string; message: string };
  conflict?: { reason: 'ProtocolConflict' | 'HostnameConflict'; message: string };
  refs: Array<{ reason: string; message: string }>;
  certificates: GatewayCertificate[];
  supportedKinds: Array<{ group: string; kind: string }>;
  /** Route keys attached to it. */
  attached: Set<string>;
  /** Route entries for it: route, precedence, and the host pattern it is confined to. */
  entries: Array<{ route: HttpRoute; order: RouteOrder; group: number; pattern: string; clusters: ClusterRef[]; statusKey: string }>;
  /** TLS / TCP listeners: L4 rules, with the host pattern, the route's age rank and its route key. */
  l4Entries: Array<{ routeKey: string; rule: number; backends: WeightedBackend[]; pattern: string; age: number; clusters: ClusterRef[]; statusKey: string }>;
}

const usable = (l: ListenerState): boolean => l.accepted === undefined && l.conflict === undefined;
const programmed = (l: ListenerState): boolean => usable(l) && (l.protocol !== 'HTTPS' || l.certificates.length > 0);

function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key !== undefined && e.key in labels;
    const value = e.key !== undefined ? labels[e.key] : undefined;
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(value ?? ''))) return false;
    if (e.operator === 'NotIn' && has && values.includes(value ?? '')) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function validateListener(l: ListenerState, gatewayNamespace: string, ctx: FrontEndContext, warnings: string[]): void {
  const at = `spec.listeners[${l.index}]`;
  for (const field of Object.keys(l.spec)) if (!LISTENER_FIELDS.has(field) && l.spec[field] !== undefined) warnings.push(`${at}.${field}: unknown field; ignored`);
  if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) {
    l.accepted = { reason: 'PortUnavailable', message: `port ${String(l.spec.port)} is not a port number` };
    return;
  }
  if (RESERVED_GATEWAY_PORTS.has(l.port)) {
    l.accepted = { reason: 'PortUnavailable', message: `port ${l.port} is used by the gateway itself (${[...RESERVED_GATEWAY_PORTS].join(', ')} are reserved)` };
    return;
  }
  const allowed = kindsOf(l.protocol);
  if (allowed.length === 0) {
    l.accepted = { reason: 'UnsupportedProtocol', message: `protocol ${JSON.stringify(l.spec.protocol)} is not supported (HTTP, HTTPS, TLS, TCP)` };
    return;
  }
  // Kinds.
  const kinds = l.spec.allowedRoutes?.kinds;
  if (kinds && kinds.length > 0) {
    const ok = (k: { group?: string; kind?: string }): boolean => (k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && (allowed as readonly string[]).includes(k.kind ?? '');
    const bad = kinds.filter((k) => !ok(k));
    l.supportedKinds = supportedKindsOf(l.protocol).filter((s) => kinds.some((k) => ok(k) && k.kind === s.kind));
    if (bad.length) l.refs.push({ reason: 'InvalidRouteKinds', message: `${at}.allowedRoutes.kinds: ${bad.map((k) => `${k.group ?? GATEWAY_GROUP}/${k.kind ?? '?'}`).join(', ')} not supported on ${l.protocol} (${allowed.join(', ')})` });
  }
  const from = l.spec.allowedRoutes?.namespaces?.from;
  if (from !== undefined && !['Same', 'All', 'Selector'].includes(from)) warnings.push(`${at}.allowedRoutes.namespaces.from: ${JSON.stringify(from)} is not Same, All or Selector; treated as Same`);
  if (l.protocol === 'HTTP' || l.protocol === 'TCP') {
    if (l.spec.tls !== undefined) warnings.push(`${at}.tls: ignored on an ${l.protocol} listener`);
    if (l.protocol === 'TCP' && l.spec.hostname !== undefined) warnings.push(`${at}.hostname: ignored on a TCP listener (TCP carries no host name)`);
    return;
  }
  const tls = l.spec.tls ?? {};
  if (l.protocol === 'TLS') {
    // Passthrough by SNI; the gateway never sees the certificates.
    if (tls.mode !== 'Passthrough') {
      l.accepted = {
        reason: 'UnsupportedProtocol',
        message: `${at}.tls.mode ${tls.mode === undefined ? '(unset: Terminate)' : JSON.stringify(tls.mode)}: amesh gateways pass TLS listeners through by SNI (mode Passthrough, routed by TLSRoutes) and terminate TLS only on HTTPS listeners; use protocol HTTPS to terminate`,
      };
      return;
    }
    for (const field of Object.keys(tls)) if (field !== 'mode' && tls[field] !== undefined) warnings.push(`${at}.tls.${field}: unused with mode Passthrough; ignored`);
    return;
  }
  // HTTPS: terminate with the certificateRefs.
  for (const field of Object.keys(tls)) if (!['mode', 'certificateRefs'].includes(field) && tls[field] !== undefined) warnings.push(`${at}.tls.${field}: not supported; ignored`);
  if ((tls.mode ?? 'Terminate') !== 'Terminate') {
    l.accepted = { reason: 'UnsupportedProtocol', message: `${at}.tls.mode ${JSON.stringify(tls.mode)}: an HTTPS listener terminates TLS (Terminate); for passthrough use protocol TLS with tls.mode Passthrough and a TLSRoute` };
    return;
  }
  const refs = tls.certificateRefs ?? [];
  if (refs.length === 0) l.refs.push({ reason: 'InvalidCertificateRef', message: `${at}.tls.certificateRefs: an HTTPS listener needs a certificate Secret` });
  refs.forEach((ref, k) => {
    const path = `${at}.tls.certificateRefs[${k}]`;
    const namespace = ref.namespace ?? gatewayNamespace;
    const name = ref.name ?? '';
    if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') {
      l.refs.push({ reason: 'InvalidCertificateRef', message: `${path}: ${ref.group ? `${ref.group}/` : ''}${ref.kind ?? ''} ${namespace}/${name} is not a Secret` });
      return;
    }
    if (namespace !== gatewayNamespace) {
      l.refs.push({ reason: 'RefNotPermitted', message: `${path}: Secret ${namespace}/${name} is in another namespace; amesh does not read ReferenceGrants, so only Secrets in ${gatewayNamespace} can be used` });
      return;
    }
    const result = certificateFrom(ctx.secrets, namespace, name, l.hostname === ANY_HOST ? [] : [l.hostname]);
    if ('problem' in result) l.refs.push({ reason: 'InvalidCertificateRef', message: `${path}: ${result.problem}` });
    else l.certificates.push(result.certificate);
  });
}

function findConflicts(listeners: ListenerState[]): void {
  const byPort = new Map<number, ListenerState[]>();
  for (const l of listeners.filter((x) => x.accepted === undefined)) byPort.set(l.port, [...(byPort.get(l.port) ?? []), l]);
  for (const [port, group] of byPort) {
    const protocols = [...new Set(group.map((l) => l.protocol))];
    if (protocols.length > 1) {
      for (const l of group) l.conflict = { reason: 'ProtocolConflict', message: `port ${port} is used with protocols ${protocols.join(' and ')} (listeners ${group.map((g) => g.name).join(', ')}); a port has one protocol` };
      continue;
    }
    const byHost = new Map<string, ListenerState[]>();
    for (const l of group) byHost.set(l.hostname, [...(byHost.get(l.hostname) ?? []), l]);
    for (const [host, same] of byHost) {
      if (same.length < 2) continue;
      for (const l of same) l.conflict = { reason: 'HostnameConflict', message: `listeners ${same.map((g) => g.name).join(', ')} all use port ${port}/${l.protocol} with ${host === ANY_HOST ? 'no hostname' : `hostname ${host}`}` };
    }
  }
}

function listenerStatus(l: ListenerState): ListenerStatusSpec {
  const conditions: ConditionSpec[] = [];
  conditions.push(l.accepted ? { type: 'Accepted', status: 'False', reason: l.accepted.reason, message: l.accepted.message } : { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'listener accepted' });
  let why: string | undefined;
  if (l.accepted) why = 'not accepted';
  else if (l.conflict) why = 'conflicted';
  else if (l.protocol === 'HTTPS' && l.certificates.length === 0) why = `no usable certificate (${l.refs.map((r) => r.message).join('; ')})`;
  conditions.push(why ? { type: 'Programmed', status: 'False', reason: 'Invalid', message: `not served: ${why}` } : { type: 'Programmed', status: 'True', reason: 'Programmed', message: `served on port ${l.port}` });
  const [firstRef] = l.refs;
  conditions.push(firstRef ? { type: 'ResolvedRefs', status: 'False', reason: firstRef.reason, message: l.refs.map((r) => r.message).join('; ') } : { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all references resolved' });
  conditions.push(l.conflict ? { type: 'Conflicted', status: 'True', reason: l.conflict.reason, message: l.conflict.message } : { type: 'Conflicted', status: 'False', reason: 'NoConflicts', message: 'no conflicts' });
  return { name: l.name, supportedKinds: l.accepted ? [] : l.supportedKinds, attachedRoutes: l.attached.size, conditions };
}

/** One HTTPRoute / GRPCRoute / TLSRoute / TCPRoute translated for ingress use (once, whatever the number of Gateways). */
interface IngressRouteTranslation {
  kind: RouteKind;
  entries: Array<{ route: HttpRoute; order: RouteOrder }>;
  /** TLSRoute / TCPRoute: its rules. */
  l4Rules: L4Rule[];
  clusters: ClusterRef[];
  issues: RouteIssue[];
  warnings: string[];
  /** Served from the last valid spec. */
  fallback?: { generation?: number };
  hostnames: string[];
  badHostnames: string[];
}

const GAMMA_HOSTNAMES_WARNING = 'spec.hostnames: ignored for mesh routes (GAMMA): the parent service decides';
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type GatewayRouteObject = HttpRouteObject | GrpcRouteObject;

function translateForIngress(kind: IngressRouteKind, route: GatewayRouteObject, ctx: FrontEndContext): IngressRouteTranslation {
  const key = objectKey(kind, route);
  const run = (object: GatewayRouteObject): Omit<IngressRouteTranslation, 'fallback'> => {
    // One synthetic target: the rules' routes with their precedence, independent of any service.
    const target: RouteTarget = { service: { namespace: object.metadata.namespace ?? 'default', name: 'ingress', hostname: 'ingress', ports: [0] } };
    const t = kind === 'HTTPRoute' ? translateHttpRoute(object as HttpRouteObject, ctx.routeCtx, [target]) : translateGrpcRoute(object as GrpcRouteObject, ctx.routeCtx, [target]);
    const hostnames: string[] = [];
    const badHostnames: string[] = [];
    for (const h of object.spec?.hostnames ?? []) {
      const host = normaliseHost(h);
      if (HOSTNAME.test(host)) hostnames.push(host);
      else badHostnames.push(h);
    }
    return { kind, entries: (t.entries as OrderedEntry[]).map((e) => ({ route: e.route, order: e.order })), l4Rules: [], clusters: t.clusters, issues: t.issues, warnings: t.warnings.filter((w) => w !== GAMMA_HOSTNAMES_WARNING), hostnames, badHostnames };
  };
  const current = run(route);
  if (current.issues.length === 0) {
    ctx.valid.set(key, { uid: route.metadata.uid, generation: route.metadata.generation, spec: route.spec });
    return current;
  }
  const last = lastValidOf(ctx, key, route);
  if (last) {
    const previous = run({ ...route, spec: last.spec } as GatewayRouteObject);
    if (previous.issues.length === 0) {
      ctx.valid.set(key, last);
      return { ...previous, issues: current.issues, warnings: current.warnings, fallback: { ...(last.generation !== undefined ? { generation: last.generation } : {}) } };
    }
  }
  return { ...current, entries: [], clusters: [] };
}

interface ParentOutcome {
  accepted: boolean;
  /** Attached, but with a caveat (a TCPRoute behind another on a TCP listener). */
  warnings: string[];
  /** Why not (first failure), for Accepted=False. */
  reason?: string;
  messages: string[];
  listeners: Set<string>;
}

/**
 * Attaches `route` (via its parentRefs to `gateway`) to the listeners; the parent's outcome, or
 * undefined when it names no parent here. `age`: the route's rank among its kind, oldest first.
 */
function attachRoute(route: GatewayRouteObject | L4RouteObject, t: IngressRouteTranslation, age: number, gateway: IngressGatewayObject, listeners: ListenerState[], ctx: FrontEndContext): ParentOutcome | undefined {
  const routeNamespace = route.metadata.namespace ?? 'default';
  const gwNamespace = gateway.metadata.namespace ?? 'default';
  const key = objectKey(t.kind, route);
  const refs = (route.spec?.parentRefs ?? []).map((ref, index) => ({ ref, index })).filter(({ ref }: { ref: ParentRef }) => (ref.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && (ref.kind ?? 'Gateway') === 'Gateway' && (ref.namespace ?? routeNamespace) === gwNamespace && ref.name === gateway.metadata.name);
  if (refs.length === 0) return undefined;
  const outcome: ParentOutcome = { accepted: false, warnings: [], messages: [], listeners: new Set() };
  const fail = (reason: string, message: string): void => {
    outcome.reason ??= reason;
    outcome.messages.push(message);
  };
  const namespaceLabels = ctx.view.namespaces.find((n) => n.metadata.name === routeNamespace)?.metadata.labels ?? {};
  for (const { ref, index } of refs) {
    const at = `spec.parentRefs[${index}]`;
    const candidates = listeners.filter((l) => (ref.sectionName === undefined || l.name === ref.sectionName) && (ref.port === undefined || l.port === ref.port));
    if (candidates.length === 0) {
      fail('NoMatchingParent', `${at}: Gateway ${gwNamespace}/${gateway.metadata.name ?? ''} has no listener${ref.sectionName !== undefined ? ` named ${ref.sectionName}` : ''}${ref.port !== undefined ? ` on port ${ref.port}` : ''}`);
      continue;
    }
    let attachedHere = false;
    for (const l of candidates) {
      if (!usable(l)) {
        fail('NotAllowedByListeners', `${at}: listener ${l.name} is ${l.accepted ? 'not accepted' : 'conflicted'}`);
        continue;
      }
      if (!l.supportedKinds.some((k) => k.kind === t.kind)) {
        fail('NotAllowedByListeners', `${at}: listener ${l.name} does not allow ${t.kind}s`);
        continue;
      }
      const from = l.spec.allowedRoutes?.namespaces?.from ?? 'Same';
      const allowed = from === 'All' || (from === 'Selector' ? selectorMatches(l.spec.allowedRoutes?.namespaces?.selector, namespaceLabels) : routeNamespace === gwNamespace);
      if (!allowed) {
        fail('NotAllowedByListeners', `${at}: listener ${l.name} allows routes from ${from === 'Selector' ? 'namespaces matching its selector' : 'its own namespace'} only`);
        continue;
      }
      // No hostnames = any; hostnames that are all invalid = none (ignoring them would widen the route).
      const wanted = t.hostnames.length || t.badHostnames.length ? t.hostnames : [ANY_HOST];
      const patterns = [...new Set(wanted.map((h) => intersectHosts(l.hostname, h)).filter((h): h is string => h !== undefined))];
      if (patterns.length === 0) {
        fail('NoMatchingListenerHostname', `${at}: listener ${l.name} (hostname ${l.hostname}) matches none of the route's hostnames ${[...t.hostnames, ...t.badHostnames].join(', ')}`);
        continue;
      }
      attachedHere = true;
      l.attached.add(key);
      outcome.listeners.add(l.name);
      const statusKey = `${key}@${gwNamespace}/${gateway.metadata.name ?? ''}`;
      if (t.kind === 'TLSRoute' || t.kind === 'TCPRoute') {
        const ahead = l.protocol === 'TCP' ? l.l4Entries.find((e) => e.routeKey !== key && e.backends.length > 0) : undefined;
        if (ahead) outcome.warnings.push(`${at}: listener ${l.name} already sends its connections to ${ahead.routeKey} (the oldest TCPRoute attached); a TCP listener uses one route, so this one gets no traffic there`);
        for (const pattern of patterns) for (const r of t.l4Rules) l.l4Entries.push({ routeKey: key, rule: r.index, backends: r.backends, pattern, age, clusters: t.clusters, statusKey });
        continue;
      }
      const group = ROUTE_KINDS.indexOf(t.kind);
      for (const pattern of patterns) for (const e of t.entries) l.entries.push({ ...e, group, pattern, clusters: t.clusters, statusKey });
    }
    if (attachedHere) outcome.accepted = true;
  }
  return outcome;
}

function routeParentConditions(gateway: IngressGatewayObject, t: IngressRouteTranslation, outcome: ParentOutcome): ConditionSpec[] {
  const gw = `${gateway.metadata.namespace ?? 'default'}/${gateway.metadata.name ?? ''}`;
  const conditions: ConditionSpec[] = [];
  if (t.issues.length) {
    const fallback = t.fallback ? `the gateway keeps serving the last valid version of this ${t.kind}${t.fallback.generation !== undefined ? ` (generation ${t.fallback.generation})` : ''}` : 'nothing of it is applied (no earlier valid version)';
    conditions.push({ type: 'Accepted', status: 'False', reason: t.issues[0]?.reason ?? 'Invalid', message: `${t.issues.map((i) => i.message).join('; ')}; ${fallback}` });
  } else if (!outcome.accepted) {
    conditions.push({ type: 'Accepted', status: 'False', reason: outcome.reason ?? 'NoMatchingParent', message: outcome.messages.join('; ') });
  } else {
    const partly = outcome.messages.length ? `; ${outcome.messages.join('; ')}` : '';
    conditions.push({ type: 'Accepted', status: 'True', reason: 'Accepted', message: `attached to Gateway ${gw} listener${outcome.listeners.size > 1 ? 's' : ''} ${[...outcome.listeners].sort().join(', ')}${partly}` });
  }
  const unresolved = t.issues.filter((i) => i.reason === 'InvalidDestination');
  conditions.push(unresolved.length ? { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: unresolved.map((i) => i.message).join('; ') } : { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all references resolved' });
  const warnings = [...t.warnings, ...outcome.warnings, ...t.badHostnames.map((h) => `spec.hostnames: ${JSON.stringify(h)} is not a hostname (a DNS name, optionally *.-prefixed); it matches nothing`)];
  if (warnings.length) conditions.push({ type: 'Warning', status: 'True', reason: 'IgnoredFields', message: [...new Set(warnings)].join('; ') });
  return conditions;
}

export interface GatewayApiPlan {
  plan: DeploymentPlan;
  status: IngressGatewayStatus;
}

/** Every Gateway API ingress Gateway of the view, planned; route parent statuses go to `ctx.status`. */
export function planGatewayApiGateways(ctx: FrontEndContext): Map<string, GatewayApiPlan> {
  const gateways = ((ctx.view.gateways ?? []) as IngressGatewayObject[]).filter(isIngressGateway).sort(byAge);
  const ranked = <T extends KubeObjectLike>(objects: readonly KubeObjectLike[] | undefined): Array<{ route: T; age: number }> => (objects ?? []).slice().sort(byAge).map((route, age) => ({ route: route as T, age }));
  const routes: Array<{ kind: RouteKind; route: GatewayRouteObject | L4RouteObject; age: number }> = [
    ...ranked<GrpcRouteObject>(ctx.view.grpcRoutes).map((r) => ({ kind: 'GRPCRoute' as const, ...r })),
    ...ranked<HttpRouteObject>(ctx.view.httpRoutes).map((r) => ({ kind: 'HTTPRoute' as const, ...r })),
    ...ranked<L4RouteObject>(ctx.view.tlsRoutes).map((r) => ({ kind: 'TLSRoute' as const, ...r })),
    ...ranked<L4RouteObject>(ctx.view.tcpRoutes).map((r) => ({ kind: 'TCPRoute' as const, ...r })),
  ];
  const translations = new Map<string, IngressRouteTranslation>();
  const translationOf = (kind: RouteKind, route: GatewayRouteObject | L4RouteObject): IngressRouteTranslation => {
    const key = objectKey(kind, route);
    let t = translations.get(key);
    if (!t) {
      if (kind === 'TLSRoute' || kind === 'TCPRoute') {
        const l4 = translateL4Route(kind, route as L4RouteObject, ctx);
        t = { ...l4, entries: [], l4Rules: l4.rules };
      } else {
        const r = route as GatewayRouteObject;
        t = contained(
          () => translateForIngress(kind, r, ctx),
          (reason): IngressRouteTranslation => ({ kind, entries: [], l4Rules: [], clusters: [], issues: [issue('InvalidSpec', 'spec', reason)], warnings: [], hostnames: [], badHostnames: [] }),
        );
      }
      translations.set(key, t);
    }
    return t;
  };
  const out = new Map<string, GatewayApiPlan>();
  for (const gateway of gateways) {
    const namespace = gateway.metadata.namespace ?? 'default';
    const name = gateway.metadata.name ?? '';
    const warnings: string[] = [];
    for (const field of Object.keys(gateway.spec ?? {})) {
      if (SPEC_FIELDS.has(field) || gateway.spec?.[field] === undefined) continue;
      warnings.push(field === 'addresses' ? 'spec.addresses: requested addresses are not supported (the LoadBalancer Service assigns one); ignored' : `spec.${field}: not supported; ignored`);
    }
    for (const field of Object.keys(gateway.spec?.infrastructure ?? {})) if (field !== 'labels' && field !== 'annotations') warnings.push(`spec.infrastructure.${field}: not supported; ignored`);
    const listeners: ListenerState[] = listOf(gateway.spec?.listeners).filter((spec) => typeof spec === 'object' && spec !== null).map((spec, index) => {
      const protocol = String(spec.protocol ?? '').toUpperCase();
      return {
        spec,
        index,
        name: spec.name ?? `listener-${index}`,
        port: spec.port ?? 0,
        protocol,
        hostname: spec.hostname && protocol !== 'TCP' ? normaliseHost(String(spec.hostname)) : ANY_HOST,
        refs: [],
        certificates: [],
        supportedKinds: supportedKindsOf(protocol),
        attached: new Set(),
        entries: [],
        l4Entries: [],
      };
    });
    for (const l of listeners) {
      contained(
        () => validateListener(l, namespace, ctx, warnings),
        (reason) => {
          l.accepted = { reason: 'UnsupportedValue', message: `spec.listeners[${l.index}]: ${reason}` };
        },
      );
    }
    findConflicts(listeners);

    for (const { kind, route, age } of routes) {
      if (!listOf(route.spec?.parentRefs).some((ref) => ref?.name === name)) continue;
      const t = translationOf(kind, route);
      const outcome = attachRoute(route, t, age, gateway, listeners, ctx);
      if (outcome) ctx.status.set(`${objectKey(kind, route)}@${namespace}/${name}`, routeParentConditions(gateway, t, outcome));
    }

    const deploymentName = ingressDeploymentName(gateway);
    const plan: DeploymentPlan = {
      deployment: {
        namespace,
        name: deploymentName,
        source: { kind: 'Gateway', namespace, name, uid: gateway.metadata.uid ?? '' },
        ports: [],
        labels: { ...(gateway.spec?.infrastructure?.labels ?? {}) },
        annotations: { ...(gateway.spec?.infrastructure?.annotations ?? {}) },
      },
      identity: `spiffe://${ctx.trustDomain}/ns/${namespace}/sa/${deploymentName}`,
      ports: new Map(),
      clusters: new Map(),
      clusterUsers: new Map(),
    };
    const served = listeners.filter(programmed).sort((a, b) => a.port - b.port || compareHostSpecificity(a.hostname, b.hostname));
    const l4ByPort = new Map<number, ListenerState['l4Entries']>();
    for (const l of served) {
      let port = plan.ports.get(l.port);
      if (!port) {
        port = newPortPlan(l.port, l.protocol as ListenerProtocol);
        plan.ports.set(l.port, port);
      }
      port.names.push(`Gateway/${namespace}/${name}/${l.name}`);
      if (isL4(l.protocol)) {
        l4ByPort.set(l.port, [...(l4ByPort.get(l.port) ?? []), ...l.l4Entries]);
        continue;
      }
      port.certificates.push(...l.certificates);
      const names = new Set(port.routes.map((r) => r.name));
      const ordered = l.entries.slice().sort((a, b) => compareHostSpecificity(a.pattern, b.pattern) || a.group - b.group || compareOrder(a.order, b.order));
      for (const e of ordered) {
        for (const r of hostRoutes([e.route], e.pattern)) {
          if (names.has(r.name)) continue;
          names.add(r.name);
          port.routes.push(r);
          for (const c of e.clusters) if (clusterNamed(r, c.name)) noteClusterUse(plan, c, e.statusKey);
        }
      }
      const close = closeHost(l.hostname);
      if (close && !names.has(close.name)) port.routes.push(close);
    }
    // L4 routes of a port, across its listeners: most specific SNI pattern first, then the oldest route, then rule order.
    for (const [number, entries] of l4ByPort) {
      const port = plan.ports.get(number);
      if (!port) continue;
      const ordered = entries.slice().sort((a, b) => compareHostSpecificity(a.pattern, b.pattern) || a.age - b.age || a.routeKey.localeCompare(b.routeKey) || a.rule - b.rule);
      for (const e of ordered) {
        const routeName = hostScopedName(`${e.routeKey}#${e.rule}`, e.pattern);
        if (port.l4Routes.some((r) => r.name === routeName)) continue;
        const route: L4Route = { name: routeName, ...(e.pattern !== ANY_HOST ? { hostnames: [e.pattern] } : {}), backends: e.backends };
        port.l4Routes.push(route);
        for (const c of e.clusters) if (e.backends.some((b) => b.cluster === c.name)) noteClusterUse(plan, c, e.statusKey);
      }
    }

    const statuses = listeners.map(listenerStatus);
    const invalid = listeners.filter((l) => !programmed(l));
    const conditions: ConditionSpec[] = [];
    if (listeners.length === 0) conditions.push({ type: 'Accepted', status: 'False', reason: 'ListenersNotValid', message: 'the Gateway has no listeners' });
    else if (invalid.length === listeners.length) conditions.push({ type: 'Accepted', status: 'False', reason: 'ListenersNotValid', message: `no listener can be served: ${invalid.map((l) => l.name).join(', ')} (see status.listeners)` });
    else if (invalid.length) conditions.push({ type: 'Accepted', status: 'True', reason: 'ListenersNotValid', message: `accepted; listener${invalid.length > 1 ? 's' : ''} ${invalid.map((l) => l.name).join(', ')} not served (see status.listeners), the others are` });
    else conditions.push({ type: 'Accepted', status: 'True', reason: 'Accepted', message: `accepted: served by deployment ${namespace}/${deploymentName}` });
    if (warnings.length) conditions.push({ type: 'Warning', status: 'True', reason: 'IgnoredFields', message: [...new Set(warnings)].join('; ') });
    out.set(`${namespace}/${name}`, { plan, status: { conditions, listeners: statuses } });
  }
  return out;
}

function clusterNamed(route: HttpRoute, name: string): boolean {
  if (route.action.kind === 'forward' && route.action.backends.some((b) => b.cluster === name)) return true;
  return (route.mirrors ?? []).some((m) => m.cluster === name);
}
