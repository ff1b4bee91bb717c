/**
 * Istio `networking.istio.io` Gateways and the VirtualServices bound to them → the plan of the
 * default ingress gateway (DEFAULT_INGRESS_NAME in the controller's namespace), their conditions
 * (`IstioGateway/<ns>/<name>`, `VirtualService/<ns>/<name>`). Pure.
 *
 * Gateways: a `selector` that DEFAULT_INGRESS_LABELS satisfies (the seeds' `istio: ingressgateway`)
 * is served by the default ingress gateway; any other selects nothing amesh runs
 * (Accepted=False/ReferencedResourceNotFound). Servers, oldest Gateway first:
 * - HTTP, HTTP2, GRPC → an HTTP port; `tls.httpsRedirect` → a 301 to https for the server's hosts,
 *   ahead of every route of the port.
 * - HTTPS with tls.mode SIMPLE and `credentialName` → an HTTPS port with the Secret's certificate
 *   for the server's hosts (Secret looked up in the Gateway's namespace, then the gateway
 *   deployment's); a missing or unusable Secret → that server is not served
 *   (Programmed=False/InvalidGatewayCredential naming it), the others are.
 * - HTTPS or TLS with PASSTHROUGH (Istio's default mode) → a TLS port: VirtualService `tls` routes
 *   by SNI. TCP → a TCP port: VirtualService `tcp` routes.
 * - MUTUAL, ISTIO_MUTUAL, OPTIONAL_MUTUAL, AUTO_PASSTHROUGH, TLS termination on a TLS server,
 *   other protocols → UnsupportedValue, not served. A server on a port another Gateway already
 *   uses with another protocol → ConflictingGateways (the older one keeps the port).
 *
 * VirtualServices with `gateways: [name | ns/name]` (`mesh` entries are the waypoint
 * translator's): `http` rules attach to HTTP/HTTPS servers of those Gateways for the hosts both
 * the VirtualService and the server name (server hosts `ns/host` limit the VirtualService
 * namespaces: `.` = the Gateway's, `*` = any); rules are translated by virtual-service.ts with the
 * server port as the request port (so `match.port` is the gateway port), and `match.gateways`
 * narrows a match to the Gateways it lists. Routing on a port is Envoy's: one virtual host per host
 * pattern, most specific first (exact, longer wildcard, `*`); a host's rules are the rules of
 * every VirtualService for it, oldest first; a request for a host none of them matches is 404 —
 * it does not fall through to a less specific host. `tls` entries (sniHosts, port) become
 * l4Routes of TLS ports, `tcp` entries (port) of TCP ports.
 */
import type { GatewayCertificate, HttpRoute, L4Route, PortProtocol, WeightedBackend } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import type { ConditionSpec } from '../status/policy-status.js';
import { ANY_HOST, compareHostSpecificity, intersectHosts, normaliseHost } from './ingress-hosts.js';
import { DEFAULT_INGRESS_LABELS, DEFAULT_INGRESS_NAME } from './ingress-model.js';
import { byAge, closeHost, hostRoutes, lastValidOf, newPortPlan, noteClusterUse, objectKey, RESERVED_GATEWAY_PORTS, type DeploymentPlan, type FrontEndContext, type ListenerProtocol, type PortPlan } from './ingress-plan.js';
import { certificateFrom } from './ingress-secrets.js';
import { contained, listOf } from './contain.js';
import { isIssue, issue, resolveDestination, resolveHost, type ClusterRef, type RouteIssue } from './route-model.js';
import { Collector, MESH_GATEWAY, translateRule, type IstioDestination, type IstioHttpRoute, type VirtualServiceObject } from './virtual-service.js';

interface IstioServerSpec {
  port?: { number?: number; name?: string; protocol?: string; targetPort?: number; [field: string]: unknown };
  hosts?: string[];
  tls?: { httpsRedirect?: boolean; mode?: string; credentialName?: string; [field: string]: unknown };
  name?: string;
  [field: string]: unknown;
}

export interface IstioGatewayObject extends KubeObjectLike {
  spec?: { selector?: Record<string, string>; servers?: IstioServerSpec[]; [field: string]: unknown };
}

interface IstioTcpRoute {
  match?: Array<{ port?: number; sniHosts?: string[]; gateways?: string[]; [field: string]: unknown }>;
  route?: Array<{ destination?: IstioDestination; weight?: number }>;
}

const SERVER_FIELDS = new Set(['port', 'hosts', 'tls', 'name']);
const TLS_FIELDS = new Set(['httpsRedirect', 'mode', 'credentialName']);
const UNSUPPORTED_MODES = new Set(['MUTUAL', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL', 'AUTO_PASSTHROUGH']);

/** A server host: the VirtualService namespaces it admits (`*` = any) and the host pattern. */
interface ServerHost {
  namespace: string;
  host: string;
}

interface ServerState {
  gatewayKey: string;
  gatewayNamespace: string;
  index: number;
  label: string;
  port: number;
  protocol: ListenerProtocol;
  httpProtocol: PortProtocol;
  hosts: ServerHost[];
  httpsRedirect: boolean;
  certificate?: GatewayCertificate;
}

interface GatewayState {
  object: IstioGatewayObject;
  key: string;
  selected: boolean;
  servers: ServerState[];
  problems: Array<{ reason: string; message: string }>;
  warnings: string[];
}

function parseServerHost(raw: string, gatewayNamespace: string): ServerHost {
  const slash = raw.indexOf('/');
  if (slash === -1) return { namespace: '*', host: normaliseHost(raw) };
  const ns = raw.slice(0, slash).trim();
  return { namespace: ns === '.' ? gatewayNamespace : ns, host: normaliseHost(raw.slice(slash + 1)) };
}

function describeServer(server: IstioServerSpec, index: number): string {
  const name = server.port?.name ? `${server.port.name} ` : '';
  return `spec.servers[${index}] (${name}${server.port?.protocol ?? '?'} ${server.port?.number ?? '?'})`;
}

/** planServer, a throw on a value of the wrong type contained to this object (contain.ts). */
function planServer(g: GatewayState, server: IstioServerSpec, index: number, ctx: FrontEndContext): ServerState | undefined {
  return contained(() => planServerUnchecked(g, server, index, ctx), (reason) => {
    g.problems.push({ reason: 'InvalidSpec', message: `spec.servers[${index}]: ${reason}` });
    return undefined;
  });
}

/** Validates one server; a ServerState when it can be served, else the problem is recorded on `g`. */
function planServerUnchecked(g: GatewayState, server: IstioServerSpec, index: number, ctx: FrontEndContext): ServerState | undefined {
  const at = `spec.servers[${index}]`;
  const label = describeServer(server, index);
  const problem = (reason: string, message: string): undefined => {
    g.problems.push({ reason, message: `${label}: ${message}` });
    return undefined;
  };
  for (const field of Object.keys(server)) if (!SERVER_FIELDS.has(field) && server[field] !== undefined) g.warnings.push(`${at}.${field}: not supported; ignored`);
  for (const field of Object.keys(server.port ?? {})) if (!['number', 'name', 'protocol'].includes(field)) g.warnings.push(`${at}.port.${field}: not supported; ignored`);
  const port = server.port?.number;
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return problem('InvalidSpec', `port.number ${JSON.stringify(port)} is not a port number`);
  if (RESERVED_GATEWAY_PORTS.has(port)) return problem('UnsupportedValue', `port ${port} is used by the gateway itself`);
  const hosts = (server.hosts ?? []).filter((h) => h.trim()).map((h) => parseServerHost(h, g.object.metadata.namespace ?? 'default'));
  if (hosts.length === 0) return problem('InvalidSpec', 'hosts: at least one host is required');
  const declared = String(server.port?.protocol ?? '').toUpperCase();
  const tls = server.tls;
  for (const field of Object.keys(tls ?? {})) if (!TLS_FIELDS.has(field) && tls?.[field] !== undefined) g.warnings.push(`${at}.tls.${field}: not supported by amesh gateways; ignored`);
  const mode = String(tls?.mode ?? 'PASSTHROUGH').toUpperCase();
  const base = { gatewayKey: g.key, gatewayNamespace: g.object.metadata.namespace ?? 'default', index, label, port, hosts, httpsRedirect: false, httpProtocol: 'HTTP' as PortProtocol };
  if (declared === 'HTTP' || declared === 'HTTP2' || declared === 'GRPC') {
    if (tls?.mode !== undefined || tls?.credentialName !== undefined) g.warnings.push(`${at}.tls: only httpsRedirect applies to a plaintext ${declared} server; the rest is ignored`);
    return { ...base, protocol: 'HTTP', httpProtocol: declared === 'HTTP' ? 'HTTP' : 'HTTP2', httpsRedirect: tls?.httpsRedirect === true };
  }
  if (declared === 'TCP') {
    if (tls !== undefined) g.warnings.push(`${at}.tls: ignored on a TCP server`);
    return { ...base, protocol: 'TCP' };
  }
  if (declared !== 'HTTPS' && declared !== 'TLS') return problem('UnsupportedValue', `protocol ${JSON.stringify(server.port?.protocol)} is not supported (HTTP, HTTP2, GRPC, HTTPS, TLS, TCP)`);
  if (tls?.httpsRedirect) g.warnings.push(`${at}.tls.httpsRedirect: only applies to plaintext servers; ignored`);
  if (UNSUPPORTED_MODES.has(mode)) return problem('UnsupportedValue', `tls.mode ${mode} is not supported by amesh gateways (SIMPLE, PASSTHROUGH)`);
  if (mode === 'PASSTHROUGH') {
    if (tls?.credentialName !== undefined) g.warnings.push(`${at}.tls.credentialName: unused with mode PASSTHROUGH`);
    return { ...base, protocol: 'TLS' };
  }
  if (mode !== 'SIMPLE') return problem('UnsupportedValue', `tls.mode ${JSON.stringify(tls?.mode)} is not a TLS mode (SIMPLE, PASSTHROUGH)`);
  if (declared === 'TLS') return problem('UnsupportedValue', 'TLS termination on a TLS server (then TCP) is not supported; use protocol HTTPS, or PASSTHROUGH');
  const credential = tls?.credentialName?.trim();
  if (!credential) return problem('InvalidGatewayCredential', 'tls.credentialName is required for mode SIMPLE (file-mounted serverCertificate/privateKey are not supported)');
  const names = hosts.map((h) => h.host);
  const certHosts = names.includes(ANY_HOST) ? [] : names;
  const namespaces = [...new Set([base.gatewayNamespace, ctx.controllerNamespace])];
  const problems: string[] = [];
  for (const ns of namespaces) {
    const result = certificateFrom(ctx.secrets, ns, credential, certHosts);
    if ('certificate' in result) return { ...base, protocol: 'HTTPS', certificate: result.certificate };
    problems.push(result.problem);
  }
  return problem('InvalidGatewayCredential', `tls.credentialName ${credential}: ${problems.join('; ')}`);
}

function gatewayConditions(g: GatewayState, deployment: string, served: ServerState[]): ConditionSpec[] {
  const conditions: ConditionSpec[] = [];
  if (!g.selected) {
    const selector = Object.entries(g.object.spec?.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    conditions.push({
      type: 'Accepted',
      status: 'False',
      reason: 'ReferencedResourceNotFound',
      message: `selector ${selector || '{}'} matches no gateway amesh runs; the default ingress gateway ${deployment} has labels ${Object.entries(DEFAULT_INGRESS_LABELS).map(([k, v]) => `${k}=${v}`).join(',')}`,
    });
  } else {
    const ports = [...new Set(served.map((s) => s.port))].sort((a, b) => a - b);
    conditions.push({ type: 'Accepted', status: 'True', reason: 'Accepted', message: `served by ${deployment}${ports.length ? ` on port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}` : ''}` });
    const [first] = g.problems;
    conditions.push(
      first
        ? { type: 'Programmed', status: 'False', reason: first.reason, message: `${g.problems.map((p) => p.message).join('; ')}${served.length ? '; the other servers are served' : '; no server is served'}` }
        : { type: 'Programmed', status: 'True', reason: 'Programmed', message: `all ${served.length} server${served.length === 1 ? '' : 's'} served` },
    );
  }
  if (g.warnings.length) conditions.push({ type: 'Warning', status: 'True', reason: 'IgnoredFields', message: [...new Set(g.warnings)].join('; ') });
  return conditions;
}

/** What a VirtualService contributes to the ports. */
type Contribution = { kind: 'http'; port: number; pattern: string; routes: HttpRoute[]; clusters: ClusterRef[] } | { kind: 'l4'; port: number; route: L4Route; clusters: ClusterRef[] };

interface Binding {
  contributions: Contribution[];
  issues: RouteIssue[];
  warnings: string[];
  /** `ns/name` of each bound Gateway, and the hosts bound. */
  gateways: Set<string>;
  hosts: Set<string>;
}

const VS_FIELDS = new Set(['hosts', 'gateways', 'http', 'tcp', 'tls', 'exportTo']);
const NOT_THIS_GATEWAY = '\u0000another-gateway';

/**
 * A VirtualService host as a gateway sees it (Istio's ResolveShortnameToFQDN): a short name
 * (`frontend`) is the service's FQDN in the VirtualService's namespace; anything with a dot is an
 * external name taken as written (`example.com` is not `example.com.svc.cluster.local`).
 */
function gatewayHost(host: string, namespace: string, clusterDomain: string): string {
  const h = normaliseHost(host);
  return h.includes('.') || h.startsWith('*') ? h : resolveHost(h, namespace, clusterDomain);
}

/** `gateways` entries → Gateway keys `ns/name` (mesh left out). */
function gatewayRefs(list: readonly string[] | undefined, namespace: string): string[] {
  return listOf(list)
    .filter((g) => typeof g === 'string' && g !== MESH_GATEWAY)
    .map((g) => (g.includes('/') ? g : `${namespace}/${g}`));
}

/** A rule with its match entries narrowed to `gatewayKey` (virtual-service.ts drops non-mesh `match.gateways` entries). */
function forGateway(rule: IstioHttpRoute, gatewayKey: string, namespace: string): IstioHttpRoute {
  if (!rule.match?.some((m) => m.gateways?.length)) return rule;
  return {
    ...rule,
    match: rule.match.map((m) => {
      if (!m.gateways?.length) return m;
      const { gateways, ...rest } = m;
      return gatewayRefs(gateways, namespace).includes(gatewayKey) ? rest : { ...rest, gateways: [NOT_THIS_GATEWAY] };
    }),
  };
}

function l4Backends(routes: IstioTcpRoute['route'], path: string, namespace: string, port: number, ctx: FrontEndContext, out: Collector): { backends: WeightedBackend[]; clusters: ClusterRef[] } | undefined {
  const list = routes ?? [];
  if (list.length === 0) return out.fail('InvalidDestination', `${path}.route`, 'at least one destination is required');
  const backends: WeightedBackend[] = [];
  const clusters: ClusterRef[] = [];
  list.forEach((r, k) => {
    const at = `${path}.route[${k}].destination`;
    const weight = r.weight ?? (list.length === 1 ? 100 : 0);
    if (!Number.isInteger(weight) || weight < 0) return out.fail('InvalidWeights', `${path}.route[${k}].weight`, `${weight} is not a non-negative integer`);
    if (!r.destination?.host?.trim()) return out.fail('InvalidDestination', `${at}.host`, 'required');
    const hostname = resolveHost(r.destination.host, namespace, ctx.clusterDomain);
    const ref = resolveDestination(ctx.routeCtx, { hostname, ...(r.destination.port?.number !== undefined ? { port: r.destination.port.number } : {}), ...(r.destination.subset ? { subset: r.destination.subset } : {}) }, port, at);
    if (isIssue(ref)) {
      out.issues.set(ref.message, ref);
      return undefined;
    }
    out.clusters.set(ref.name, ref);
    clusters.push(ref);
    backends.push({ cluster: ref.name, weight });
    return undefined;
  });
  if (backends.length !== list.length) return undefined;
  if (!backends.some((b) => b.weight > 0)) return out.fail('InvalidWeights', `${path}.route`, 'the weights total 0: no destination can be chosen');
  return { backends, clusters };
}

/** bindVirtualService, a throw on a value of the wrong type contained to this object (contain.ts). */
function bindVirtualService(vs: VirtualServiceObject, gateways: ReadonlyMap<string, GatewayState>, served: readonly ServerState[], ctx: FrontEndContext): Binding {
  return contained(() => bindVirtualServiceUnchecked(vs, gateways, served, ctx), (reason) => ({ contributions: [], issues: [issue('InvalidSpec', 'spec', reason)], warnings: [], gateways: new Set(), hosts: new Set() }));
}

/** Binds one VirtualService (as written, or an earlier spec) to the servers of the Gateways it names. */
function bindVirtualServiceUnchecked(vs: VirtualServiceObject, gateways: ReadonlyMap<string, GatewayState>, served: readonly ServerState[], ctx: FrontEndContext): Binding {
  const namespace = vs.metadata.namespace ?? 'default';
  const vsName = `${namespace}/${vs.metadata.name ?? ''}`;
  const spec = vs.spec ?? {};
  const out = new Collector();
  const binding: Binding = { contributions: [], issues: [], warnings: [], gateways: new Set(), hosts: new Set() };
  for (const field of Object.keys(spec)) if (!VS_FIELDS.has(field)) out.warnings.add(`spec.${field}: unknown field; ignored`);
  if (spec.exportTo && !spec.exportTo.every((e) => e === '*')) out.warnings.add('spec.exportTo: visibility is not enforced by amesh; ignored');
  const hosts = (spec.hosts ?? []).filter((h) => h.trim()).map((h) => gatewayHost(h, namespace, ctx.clusterDomain));
  if (hosts.length === 0) out.fail('InvalidSpec', 'spec.hosts', 'at least one host is required');
  for (const ref of gatewayRefs(spec.gateways, namespace)) {
    const g = gateways.get(ref);
    if (!g) out.warnings.add(`spec.gateways: Gateway ${ref} not found; ignored`);
    else if (!g.selected) out.warnings.add(`spec.gateways: Gateway ${ref} selects no gateway amesh runs; ignored`);
  }
  const bound = new Set(gatewayRefs(spec.gateways, namespace));
  let translated = false;
  for (const server of served) {
    if (!bound.has(server.gatewayKey)) continue;
    const admitted = server.hosts.filter((h) => h.namespace === '*' || h.namespace === namespace);
    if (server.protocol === 'HTTP' || server.protocol === 'HTTPS') {
      const patterns = [...new Set(hosts.flatMap((h) => admitted.map((s) => intersectHosts(h, s.host))).filter((p): p is string => p !== undefined))];
      if (patterns.length === 0) continue;
      translated = true;
      const routes: HttpRoute[] = [];
      (spec.http ?? []).forEach((rule, i) => routes.push(...translateRule(vsName, forGateway(rule, server.gatewayKey, namespace), i, ctx.routeCtx, namespace, server.port, out)));
      binding.gateways.add(server.gatewayKey);
      for (const pattern of patterns) {
        binding.hosts.add(pattern);
        binding.contributions.push({ kind: 'http', port: server.port, pattern, routes, clusters: [...out.clusters.values()] });
      }
    } else {
      const entries = (server.protocol === 'TLS' ? spec.tls : spec.tcp) as IstioTcpRoute[] | undefined;
      (entries ?? []).forEach((entry, i) => {
        const path = `spec.${server.protocol === 'TLS' ? 'tls' : 'tcp'}[${i}]`;
        const matches = (entry.match ?? []).filter((m) => (m.port === undefined || m.port === server.port) && (!m.gateways?.length || gatewayRefs(m.gateways, namespace).includes(server.gatewayKey)));
        if (entry.match?.length && matches.length === 0) return;
        (entry.match ?? []).forEach((m, k) => {
          for (const field of Object.keys(m)) if (!['port', 'sniHosts', 'gateways'].includes(field) && m[field] !== undefined) out.fail('UnsupportedValue', `${path}.match[${k}].${field}`, 'not supported by amesh gateways (ignoring it would widen the match)');
        });
        let hostnames: string[] = [];
        if (server.protocol === 'TLS') {
          const sni = matches.flatMap((m) => m.sniHosts ?? []).map(normaliseHost);
          if (sni.length === 0) {
            out.fail('InvalidSpec', `${path}.match`, 'sniHosts are required for a TLS route');
            return;
          }
          // SNI hosts within both the server's hosts and the VirtualService's (Istio validates sniHosts ⊆ hosts).
          const within = (h: string, patterns: readonly string[]): string[] => patterns.map((p) => intersectHosts(h, p)).filter((p): p is string => p !== undefined);
          hostnames = [...new Set(sni.flatMap((h) => within(h, admitted.map((s) => s.host)).flatMap((x) => within(x, hosts))))];
          if (hostnames.length === 0) return;
        }
        const result = l4Backends(entry.route, path, namespace, server.port, ctx, out);
        translated = true;
        if (!result) return;
        binding.gateways.add(server.gatewayKey);
        for (const h of hostnames) binding.hosts.add(h);
        const route: L4Route = { name: `VirtualService/${vsName}#${i}`, ...(hostnames.length && !hostnames.includes(ANY_HOST) ? { hostnames } : {}), backends: result.backends };
        binding.contributions.push({ kind: 'l4', port: server.port, route, clusters: result.clusters });
      });
    }
  }
  // Validate the http rules even when no server takes them, so a typo is reported either way.
  if (!translated) (spec.http ?? []).forEach((rule, i) => translateRule(vsName, rule, i, ctx.routeCtx, namespace, undefined, out));
  binding.issues = [...out.issues.values()];
  binding.warnings = [...out.warnings];
  if (binding.issues.length) binding.contributions = [];
  return binding;
}

function virtualServiceConditions(deployment: string, b: Binding, fallback: { generation?: number } | undefined, current: Binding): ConditionSpec[] {
  const conditions: ConditionSpec[] = [];
  if (current.issues.length) {
    const kept = fallback ? `the gateway keeps serving the last valid version of this VirtualService${fallback.generation !== undefined ? ` (generation ${fallback.generation})` : ''}` : 'nothing of it is applied at gateways (no earlier valid version)';
    conditions.push({ type: 'Accepted', status: 'False', reason: current.issues[0]?.reason ?? 'Invalid', message: `${current.issues.map((i) => i.message).join('; ')}; ${kept}` });
  } else if (b.gateways.size) {
    conditions.push({ type: 'Accepted', status: 'True', reason: 'Accepted', message: `applied by ingress gateway ${deployment} for Gateway${b.gateways.size > 1 ? 's' : ''} ${[...b.gateways].sort().join(', ')}, hosts ${[...b.hosts].sort().join(', ')}` });
  } else {
    conditions.push({ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'valid; not in effect at any ingress gateway: no server of the Gateways it names shares a host or protocol with it' });
  }
  const warnings = current.warnings;
  if (warnings.length) conditions.push({ type: 'Warning', status: 'True', reason: 'IgnoredFields', message: [...new Set(warnings)].join('; ') });
  return conditions;
}

/** The default ingress gateway's plan (undefined when no Istio Gateway selects it); statuses go to `ctx.status`. */
export function planIstioGateways(ctx: FrontEndContext): DeploymentPlan | undefined {
  const deploymentKey = `${ctx.controllerNamespace}/${DEFAULT_INGRESS_NAME}`;
  const states = new Map<string, GatewayState>();
  for (const object of ((ctx.view.istioGateways ?? []) as IstioGatewayObject[]).slice().sort(byAge)) {
    const key = `${object.metadata.namespace ?? 'default'}/${object.metadata.name ?? ''}`;
    const selector = object.spec?.selector ?? {};
    const selected = Object.entries(selector).every(([k, v]) => DEFAULT_INGRESS_LABELS[k] === v);
    const g: GatewayState = { object, key, selected, servers: [], problems: [], warnings: [] };
    for (const field of Object.keys(object.spec ?? {})) if (field !== 'selector' && field !== 'servers') g.warnings.push(`spec.${field}: not supported; ignored`);
    states.set(key, g);
  }

  // Servers, oldest Gateway first: the first protocol on a port keeps it.
  const ports = new Map<number, PortPlan>();
  const owners = new Map<number, string>();
  const served: ServerState[] = [];
  for (const g of states.values()) {
    if (!g.selected) continue;
    listOf(g.object.spec?.servers).forEach((server, index) => {
      const s = planServer(g, server, index, ctx);
      if (!s) return;
      const existing = ports.get(s.port);
      if (existing && existing.protocol !== s.protocol) {
        g.problems.push({ reason: 'ConflictingGateways', message: `${s.label}: port ${s.port} is already ${existing.protocol} for ${owners.get(s.port) ?? '?'}; a port has one protocol` });
        return;
      }
      const plan = existing ?? newPortPlan(s.port, s.protocol);
      if (!existing) {
        ports.set(s.port, plan);
        owners.set(s.port, `IstioGateway ${g.key} ${s.label}`);
        plan.httpProtocol = s.httpProtocol;
      } else if (plan.httpProtocol !== s.httpProtocol) plan.httpProtocol = 'HTTP';
      plan.names.push(`IstioGateway/${g.key}/${server.port?.name ?? `servers[${index}]`}`);
      if (s.certificate) plan.certificates.push(s.certificate);
      g.servers.push(s);
      served.push(s);
    });
  }

  // VirtualServices bound to those Gateways.
  const uses = { clusters: new Map<string, ClusterRef>(), clusterUsers: new Map<string, Set<string>>() };
  const vhosts = new Map<number, Map<string, HttpRoute[]>>();
  const gatewayVirtualServices = ((ctx.view.virtualServices ?? []) as VirtualServiceObject[]).filter((vs) => gatewayRefs(vs.spec?.gateways, vs.metadata.namespace ?? 'default').length > 0).sort(byAge);
  for (const vs of gatewayVirtualServices) {
    const key = objectKey('VirtualService', vs);
    const current = bindVirtualService(vs, states, served, ctx);
    let use = current;
    let fallback: { generation?: number } | undefined;
    if (current.issues.length === 0) ctx.valid.set(key, { uid: vs.metadata.uid, generation: vs.metadata.generation, spec: vs.spec });
    else {
      const last = lastValidOf(ctx, key, vs);
      const previous = last ? bindVirtualService({ ...vs, spec: last.spec as VirtualServiceObject['spec'] }, states, served, ctx) : undefined;
      if (last && previous && previous.issues.length === 0) {
        use = previous;
        fallback = { ...(last.generation !== undefined ? { generation: last.generation } : {}) };
        ctx.valid.set(key, last);
      }
    }
    ctx.status.set(key, virtualServiceConditions(deploymentKey, use, fallback, current));
    for (const c of use.contributions) {
      for (const ref of c.clusters) noteClusterUse(uses, ref, key);
      if (c.kind === 'l4') {
        const plan = ports.get(c.port);
        if (plan && !plan.l4Routes.some((r) => r.name === c.route.name)) plan.l4Routes.push(c.route);
        continue;
      }
      const byHost = vhosts.get(c.port) ?? new Map<string, HttpRoute[]>();
      byHost.set(c.pattern, [...(byHost.get(c.pattern) ?? []), ...c.routes]);
      vhosts.set(c.port, byHost);
    }
  }

  // HTTP(S) ports: redirects first, then one closed virtual host per pattern, most specific first.
  for (const plan of ports.values()) {
    if (plan.protocol !== 'HTTP' && plan.protocol !== 'HTTPS') continue;
    const names = new Set<string>();
    const push = (r: HttpRoute): void => {
      if (names.has(r.name)) return;
      names.add(r.name);
      plan.routes.push(r);
    };
    for (const s of served) {
      if (s.port !== plan.port || !s.httpsRedirect) continue;
      const redirect: HttpRoute = { name: `IstioGateway/${s.gatewayKey}#servers[${s.index}].httpsRedirect`, matches: [], action: { kind: 'redirect', redirect: { scheme: 'https', statusCode: 301 } } };
      for (const h of [...new Set(s.hosts.map((x) => x.host))].sort(compareHostSpecificity)) for (const r of hostRoutes([redirect], h)) push(r);
    }
    const byHost = vhosts.get(plan.port) ?? new Map<string, HttpRoute[]>();
    for (const pattern of [...byHost.keys()].sort(compareHostSpecificity)) {
      for (const r of hostRoutes(byHost.get(pattern) ?? [], pattern)) push(r);
      const close = closeHost(pattern);
      if (close) push(close);
    }
  }

  for (const g of states.values()) ctx.status.set(`IstioGateway/${g.key}`, gatewayConditions(g, deploymentKey, g.servers));
  if (![...states.values()].some((g) => g.selected)) return undefined;
  return {
    deployment: {
      namespace: ctx.controllerNamespace,
      name: DEFAULT_INGRESS_NAME,
      source: { kind: 'default' },
      ports: [],
      labels: { ...DEFAULT_INGRESS_LABELS },
      annotations: {},
    },
    identity: `spiffe://${ctx.trustDomain}/ns/${ctx.controllerNamespace}/sa/${DEFAULT_INGRESS_NAME}`,
    ports,
    ...uses,
  };
}
