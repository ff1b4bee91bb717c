/**
 * The whole routing picture → one WaypointConfig per waypoint, plus the status conditions of
 * every routing object (VirtualService, DestinationRule, HTTPRoute, GRPCRoute). Pure: the caller
 * passes the last valid translation of each object and gets this round's valid ones back.
 *
 * For each waypoint (listWaypoints), the services bound to it: `Service.waypoint` as computed in
 * compute-mesh-resources.ts (the waypoint's VIP, or its hostname), or — for a service without the
 * field — the binding rules of waypoint-binding.ts. Each bound service port gets:
 * - `protocol` from appProtocol, else the port name's prefix (`http`, `http2`, `grpc`, `tcp`),
 *   else AUTO; a TCP port carries no HTTP routes;
 * - `routes`: Gateway API routes attached to the service (directly, or through the waypoint
 *   Gateway) if there are any — GRPCRoutes then HTTPRoutes, each set in the spec's precedence
 *   order — else the rules of the VirtualService in effect for the host, in array order. When
 *   both exist, the Gateway API routes win and the VirtualService is told so in a Warning: Istio's
 *   ambient waypoints do the same, and mixing two first-match tables for one host has no good
 *   meaning. Among VirtualServices for one host: an exact host beats a wildcard, then the oldest.
 * - `defaultCluster`: the whole service on that port, so traffic of a port no route applies to
 *   still flows (and opaque TCP always goes there); a port with routes ends with NO_ROUTE_NAME,
 *   a 404 for requests none of them matches (Istio / Gateway API semantics).
 * Clusters are every (service, port, subset) a route names plus the defaults, with endpoints from
 * the mesh's workloads: healthy members of the service with a target port for it, filtered by the
 * subset's labels on the pods themselves (workloads carry no labels), identity
 * `spiffe://<td>/ns/<ns>/sa/<sa>`, HBONE when the workload is in the mesh, the locality of its pod
 * (Istio's `topology.istio.io/locality` / `istio-locality` pod labels, `.` for `/`), and `meta`
 * (workload name, namespace, canonical name / revision: the destination_* metric labels). The cluster's
 * traffic policy is the DestinationRule's in effect for (service, port, subset) — route-model.ts
 * effectivePolicy: load balancer or consistent hash (LEAST_REQUEST without one), connection pool,
 * outlier detection, and locality preference. As in Istio, locality preference needs outlier
 * detection; it is on by default (the mesh default) but the controller does not know the nodes'
 * topology, so without a `localityLbSetting` it is only emitted when the waypoint's own pods carry
 * a locality label (all the same one).
 *
 * Retries: a forwarding route without `retries` gets Istio's default policy (2 retries on
 * connect-failure, refused-stream, unavailable, cancelled), and so does the fallback to
 * `defaultCluster` (`defaultRetries`); `attempts: 0` removes them. Under consistent hashing a
 * retry stays on the same endpoint (`otherHost: false`), as Istio does.
 *
 * Bad input never breaks the waypoint: an object with any issue is left out as a whole and gets
 * Accepted=False naming each bad field; if an earlier version of it (same uid) was valid, that
 * translation keeps being served — traffic keeps the last valid config — and the message says so.
 */
import type { Cluster, Endpoint, EndpointMeta, HttpRoute, PortProtocol, WaypointConfig, WaypointPort, WaypointService } from '../../l7/config.js';
import { clusterName } from '../../l7/config.js';
import type { Service, Workload } from '../../node-agent/state/types.js';
import type { KubeObjectLike, MeshResources, MeshView } from '../mesh/compute-mesh-resources.js';
import type { ConditionSpec } from '../status/policy-status.js';
import { DEFAULT_LOAD_BALANCER, effectiveDestinationRules, translateDestinationRule, type DestinationRuleObject, type DestinationRuleTranslation, type RuleCandidate } from './destination-rule.js';
import { translateGrpcRoute, type GrpcRouteObject } from './grpc-route.js';
import { compareRouteEntries, routeParents, translateHttpRoute, type HttpRouteObject, type OrderedEntry, type RouteTarget } from './http-route.js';
import { clusterHashes, defaultRetryPolicy, effectivePolicy, type ClusterRef, type HostRule, type RouteContext, type RouteEntry, type RouteService, type TrafficPolicyLevel, type Translation } from './route-model.js';
import { DEFAULT_CLUSTER_DOMAIN, isTcp, serviceKey, type ServiceObject, type ServicePortSpec } from './service.js';
import { isMeshVirtualService, translateVirtualService, virtualServiceHosts, type VirtualServiceObject } from './virtual-service.js';
import { WAYPOINT_POD_GATEWAY_LABEL, waypointPolicies } from './waypoint-policies.js';
import { listWaypoints, serviceWaypoint, type GatewayObject, type WaypointInfo } from './waypoint-binding.js';
import { selectorMatches } from './workload.js';

/** The catch-all that answers 404 on a port whose routes matched nothing. */
export const NO_ROUTE_NAME = 'no-route';

export type RouteObjectKind = 'VirtualService' | 'DestinationRule' | 'HTTPRoute' | 'GRPCRoute';

/** `<Kind>/<namespace>/<name>`: the key of an object's status and last valid translation. */
export function routeObjectKey(kind: RouteObjectKind, object: KubeObjectLike): string {
  return `${kind}/${object.metadata.namespace ?? 'default'}/${object.metadata.name ?? ''}`;
}

/** A valid translation, remembered so a later invalid version of the object can fall back on it. */
export interface LastValid {
  uid?: string;
  generation?: number;
  routes?: Translation;
  destinationRule?: DestinationRuleTranslation;
}

export interface WaypointConfigOptions {
  trustDomain: string;
  clusterDomain?: string;
  /** Where mesh-wide (GatewayClass-targeted) waypoint policies live; default amesh-system. */
  rootNamespace?: string;
  /** Last valid translation per object key, from earlier rounds. */
  lastValid?: ReadonlyMap<string, LastValid>;
}

export interface WaypointConfigResult {
  /** By waypoint `namespace/name` (the xDS resource name). */
  configs: Map<string, WaypointConfig>;
  /** Our conditions per object key (see routeObjectKey). */
  status: Map<string, ConditionSpec[]>;
  /** Every object's translation in use this round: the caller's next `lastValid`. */
  valid: Map<string, LastValid>;
}

const waypointKey = (w: WaypointInfo): string => `${w.ref.namespace}/${w.ref.name}`;

/** The protocol of a Service port: appProtocol first, then Istio's port-name prefixes. */
export function portProtocol(port: ServicePortSpec): PortProtocol {
  const of = (value: string): PortProtocol | undefined => {
    const v = value.toLowerCase();
    if (v === 'http' || v === 'http1' || v === 'http11') return 'HTTP';
    if (v === 'http2' || v === 'h2c' || v === 'kubernetes.io/h2c') return 'HTTP2';
    if (v === 'grpc' || v === 'grpc-web') return 'GRPC';
    if (v === 'tcp' || v === 'https' || v === 'tls' || v === 'mongo' || v === 'mysql' || v === 'redis') return 'TCP';
    return undefined;
  };
  if (port.appProtocol) {
    const p = of(port.appProtocol);
    if (p) return p;
  }
  const prefix = (port.name ?? '').split('-')[0] ?? '';
  return of(prefix) ?? 'AUTO';
}

function sameWaypoint(address: Service['waypoint'], w: WaypointInfo): boolean {
  if (!address) return false;
  if (address.address) return address.address.address === w.address;
  return address.hostname?.hostname === w.hostname && address.hostname.namespace === w.ref.namespace;
}

/** Which waypoint (by key) serves each service key. */
function bindServices(view: MeshView, resources: MeshResources, waypoints: readonly WaypointInfo[], serviceObjects: ReadonlyMap<string, ServiceObject>): Map<string, string> {
  const namespaces = new Map(view.namespaces.map((n) => [n.metadata.name ?? '', n]));
  const accounts = new Map<string, Set<string>>();
  for (const w of resources.workloads.values()) {
    for (const key of Object.keys(w.services)) {
      const set = accounts.get(key) ?? new Set<string>();
      set.add(w.serviceAccount);
      accounts.set(key, set);
    }
  }
  const bound = new Map<string, string>();
  // A waypoint's own Service is never routed through a waypoint (that would loop).
  const own = new Set(waypoints.map((w) => serviceKey(w.ref.namespace, w.hostname)));
  for (const [key, service] of resources.services) {
    if (own.has(key)) continue;
    let waypoint: WaypointInfo | undefined;
    if (service.waypoint) waypoint = waypoints.find((w) => sameWaypoint(service.waypoint, w));
    else {
      // Until compute-mesh-resources sets Service.waypoint, apply the binding rules here.
      const object = serviceObjects.get(key);
      if (object) waypoint = serviceWaypoint(object, namespaces.get(service.namespace), waypoints, [...(accounts.get(key) ?? [])]).waypoint;
    }
    if (waypoint) bound.set(key, waypointKey(waypoint));
  }
  return bound;
}

/** Conditions bookkeeping for one object. */
interface ObjectReport {
  kind: RouteObjectKind;
  object: KubeObjectLike;
  issues: Translation['issues'];
  warnings: string[];
  /** Set when an earlier valid version is served instead. */
  fallback?: LastValid;
  /** Waypoints (keys) whose config uses this object. */
  usedBy: Set<string>;
  /** Service hostnames it routes in those waypoints. */
  hosts: Set<string>;
}

function usable(report: ObjectReport, translation: Translation): Translation | undefined {
  if (report.issues.length === 0) return translation;
  return report.fallback?.routes;
}

function lastValidFor(options: WaypointConfigOptions, key: string, object: KubeObjectLike): LastValid | undefined {
  const last = options.lastValid?.get(key);
  return last && last.uid === object.metadata.uid ? last : undefined;
}

function conditions(report: ObjectReport, gatewayApi: boolean): ConditionSpec[] {
  const out: ConditionSpec[] = [];
  const kindName = `${report.kind} ${report.object.metadata.namespace ?? 'default'}/${report.object.metadata.name ?? ''}`;
  if (report.issues.length) {
    const fallback = report.fallback
      ? `the waypoint keeps serving the last valid version of this ${report.kind}${report.fallback.generation !== undefined ? ` (generation ${report.fallback.generation})` : ''}`
      : `nothing of it is applied (no earlier valid version)`;
    out.push({ type: 'Accepted', status: 'False', reason: report.issues[0]?.reason ?? 'Invalid', message: `${report.issues.map((i) => i.message).join('; ')}; ${fallback}` });
  } else {
    const where = report.usedBy.size
      ? `applied by waypoint${report.usedBy.size > 1 ? 's' : ''} ${[...report.usedBy].sort().join(', ')}${report.hosts.size ? ` for ${[...report.hosts].sort().join(', ')}` : ''}`
      : report.kind === 'DestinationRule'
        ? 'valid; used by waypoints that route to its host'
        : 'valid; not in effect: no service it routes is bound to a waypoint (label the service or its namespace istio.io/use-waypoint)';
    out.push({ type: 'Accepted', status: 'True', reason: 'Accepted', message: `${kindName} ${where}` });
  }
  if (gatewayApi) {
    const unresolved = report.issues.filter((i) => i.reason === 'InvalidDestination');
    out.push(
      unresolved.length
        ? { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: unresolved.map((i) => i.message).join('; ') }
        : { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all references resolved' },
    );
  }
  if (report.warnings.length) out.push({ type: 'Warning', status: 'True', reason: 'IgnoredFields', message: [...new Set(report.warnings)].join('; ') });
  return out;
}

const byAge = (a: KubeObjectLike, b: KubeObjectLike): number =>
  (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
  `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`);

export function computeWaypointConfigs(view: MeshView, resources: MeshResources, options: WaypointConfigOptions): WaypointConfigResult {
  const clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const waypoints = listWaypoints((view.gateways ?? []) as GatewayObject[], view.services, { trustDomain: options.trustDomain, clusterDomain });
  const reports = new Map<string, ObjectReport>();
  const valid = new Map<string, LastValid>();
  const report = (kind: RouteObjectKind, object: KubeObjectLike, t: { issues: Translation['issues']; warnings: string[] }): ObjectReport => {
    const key = routeObjectKey(kind, object);
    const r: ObjectReport = { kind, object, issues: t.issues, warnings: [...t.warnings], usedBy: new Set(), hosts: new Set() };
    if (t.issues.length) {
      const last = lastValidFor(options, key, object);
      if (last) {
        r.fallback = last;
        valid.set(key, last);
      }
    }
    reports.set(key, r);
    return r;
  };

  // Services and their objects.
  const serviceObjects = new Map<string, ServiceObject>();
  for (const s of view.services) {
    const ns = s.metadata.namespace ?? 'default';
    const key = serviceKey(ns, `${s.metadata.name ?? ''}.${ns}.svc.${clusterDomain}`);
    if (resources.services.has(key)) serviceObjects.set(key, s);
  }
  const services = new Map<string, RouteService>();
  for (const [, s] of resources.services) services.set(s.hostname, { namespace: s.namespace, name: s.name, hostname: s.hostname, ports: [...new Set(s.ports.map((p) => p.servicePort))] });

  // DestinationRules → the rule in effect per host.
  const candidates: RuleCandidate[] = [];
  for (const dr of (view.destinationRules ?? []) as DestinationRuleObject[]) {
    const key = routeObjectKey('DestinationRule', dr);
    const t = translateDestinationRule(dr, clusterDomain);
    const r = report('DestinationRule', dr, t);
    const use = t.issues.length ? r.fallback?.destinationRule : t;
    if (!t.issues.length) valid.set(key, { uid: dr.metadata.uid, generation: dr.metadata.generation, destinationRule: t });
    if (use?.host) candidates.push({ key, namespace: dr.metadata.namespace ?? 'default', creationTimestamp: dr.metadata.creationTimestamp, host: use.host, rule: use.rule });
  }
  const { byHost: destinationRules, shadowed } = effectiveDestinationRules(candidates, [...services.values()]);
  for (const [key, warnings] of shadowed) reports.get(`DestinationRule/${key}`)?.warnings.push(...warnings);
  const ctx: RouteContext = { clusterDomain, services, destinationRules };

  const bound = bindServices(view, resources, waypoints, serviceObjects);
  const waypointByKey = new Map(waypoints.map((w) => [waypointKey(w), w]));
  const boundHostnames = (waypoint: string): RouteService[] =>
    [...bound.entries()]
      .filter(([, w]) => w === waypoint)
      .map(([key]) => services.get(resources.services.get(key)?.hostname ?? ''))
      .filter((s): s is RouteService => s !== undefined);

  // The translation each object contributes (its own, or its last valid one).
  const inUse = new Map<string, Translation>();
  // Gateway API routes: attached entries per service hostname.
  const gatewayEntries = new Map<string, Array<{ entry: OrderedEntry; group: number; key: string }>>();
  const translateAttached = <T extends HttpRouteObject | GrpcRouteObject>(kind: 'HTTPRoute' | 'GRPCRoute', group: number, objects: readonly T[], translate: (o: T, targets: RouteTarget[]) => Translation & { entries: OrderedEntry[] }): void => {
    for (const object of objects) {
      const key = routeObjectKey(kind, object);
      const { parents, issues: parentIssues } = routeParents(object, clusterDomain);
      const targets: RouteTarget[] = [];
      const warnings: string[] = [];
      let ours = parentIssues.length > 0;
      for (const p of parents) {
        if (p.kind === 'Service') {
          ours = true;
          const service = services.get(p.hostname);
          if (!service) warnings.push(`spec.parentRefs[${p.index}]: service ${p.namespace}/${p.name} not found`);
          else targets.push({ service, ...(p.port !== undefined ? { port: p.port } : {}) });
        } else if (waypointByKey.has(`${p.namespace}/${p.name}`)) {
          ours = true;
          for (const service of boundHostnames(`${p.namespace}/${p.name}`)) targets.push({ service });
        }
      }
      if (!ours) continue; // attached to ingress Gateways only: not ours
      const t = translate(object, targets);
      const r = report(kind, object, { issues: [...parentIssues, ...t.issues], warnings: [...warnings, ...t.warnings] });
      if (!r.issues.length) valid.set(key, { uid: object.metadata.uid, generation: object.metadata.generation, routes: t });
      const use = usable(r, t);
      if (use) inUse.set(key, use);
      for (const entry of (use?.entries ?? []) as OrderedEntry[]) {
        const list = gatewayEntries.get(entry.hostname) ?? [];
        list.push({ entry, group, key });
        gatewayEntries.set(entry.hostname, list);
      }
    }
  };
  translateAttached('GRPCRoute', 0, (view.grpcRoutes ?? []) as GrpcRouteObject[], (o, targets) => translateGrpcRoute(o, ctx, targets));
  translateAttached('HTTPRoute', 1, (view.httpRoutes ?? []) as HttpRouteObject[], (o, targets) => translateHttpRoute(o, ctx, targets));

  // VirtualServices: the one in effect per host.
  const vsByHost = new Map<string, { key: string; exact: boolean; object: KubeObjectLike }>();
  for (const vs of [...((view.virtualServices ?? []) as VirtualServiceObject[])].sort(byAge)) {
    if (!isMeshVirtualService(vs)) continue;
    const key = routeObjectKey('VirtualService', vs);
    const t = translateVirtualService(vs, ctx);
    const r = report('VirtualService', vs, t);
    if (!t.issues.length) valid.set(key, { uid: vs.metadata.uid, generation: vs.metadata.generation, routes: t });
    const use = usable(r, t);
    if (!use) continue;
    inUse.set(key, use);
    const hosts = virtualServiceHosts(vs, clusterDomain);
    for (const hostname of new Set(use.entries.map((e) => e.hostname))) {
      const exact = hosts.includes(hostname);
      const current = vsByHost.get(hostname);
      if (gatewayEntries.has(hostname)) {
        r.warnings.push(`spec.hosts: ${hostname} has Gateway API routes (HTTPRoute/GRPCRoute), which take precedence; this VirtualService is not used for it`);
      } else if (!current || (exact && !current.exact)) {
        if (current) reports.get(current.key)?.warnings.push(`spec.hosts: ${hostname} is routed by VirtualService ${key.slice('VirtualService/'.length)} (exact host); this one is not used for it`);
        vsByHost.set(hostname, { key, exact, object: vs });
      } else {
        r.warnings.push(`spec.hosts: ${hostname} is routed by ${current.key.replace('/', ' ')}, which takes precedence (${current.exact && !exact ? 'exact host' : 'older'}); this one is not used for it`);
      }
    }
  }

  // Assemble per waypoint.
  const podLabels = new Map(view.pods.map((p) => [p.metadata.uid ?? `${p.metadata.namespace ?? 'default'}/${p.metadata.name ?? ''}`, p.metadata.labels ?? {}]));
  const waypointLocality = (w: WaypointInfo): string | undefined => {
    const found = new Set(view.pods.filter((p) => p.metadata.namespace === w.ref.namespace && p.metadata.labels?.[GATEWAY_NAME_LABEL] === w.ref.name).map((p) => podLocality(p.metadata.labels)));
    const [only] = found;
    return found.size === 1 ? only : undefined;
  };
  const configs = new Map<string, WaypointConfig>();
  for (const waypoint of waypoints) {
    const wKey = waypointKey(waypoint);
    const refs = new Map<string, ClusterRef>();
    const wServices: WaypointService[] = [];
    for (const [sKey, boundTo] of [...bound.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      if (boundTo !== wKey) continue;
      const service = resources.services.get(sKey);
      const object = serviceObjects.get(sKey);
      if (!service || !object) continue;
      const hostname = service.hostname;
      const vs = vsByHost.get(hostname);
      const gateway = gatewayEntries.get(hostname);
      const ports: WaypointPort[] = [];
      for (const spec of (object.spec?.ports ?? []).filter(isTcp).sort((a, b) => a.port - b.port)) {
        if (ports.some((p) => p.port === spec.port)) continue;
        const protocol = portProtocol(spec);
        let entries: Array<{ route: HttpRoute; refs: ClusterRef[]; key: string }> = [];
        if (gateway) {
          entries = gateway
            .filter((g) => g.entry.port === spec.port)
            .sort((a, b) => a.group - b.group || compareRouteEntries(a.entry, b.entry))
            .map((g) => ({ route: g.entry.route, refs: inUse.get(g.key)?.clusters ?? [], key: g.key }));
        } else if (vs) {
          const t = inUse.get(vs.key);
          entries = (t?.entries ?? []).filter((e: RouteEntry) => e.hostname === hostname && e.port === spec.port).map((e) => ({ route: e.route, refs: t?.clusters ?? [], key: vs.key }));
        }
        const routes: HttpRoute[] = [];
        if (protocol !== 'TCP') {
          const names = new Set<string>();
          for (const e of entries) {
            if (names.has(e.route.name)) continue;
            names.add(e.route.name);
            const r = reports.get(e.key);
            r?.usedBy.add(wKey);
            r?.hosts.add(hostname);
            for (const name of clusterNamesOf(e.route)) {
              const ref = e.refs.find((c) => c.name === name);
              if (ref && !refs.has(name)) refs.set(name, ref);
            }
            routes.push(withRetries(e.route, (cluster) => {
              const ref = refs.get(cluster);
              return ref !== undefined && clusterHashes(destinationRules, ref);
            }));
          }
        }
        // Istio and the Gateway API: once routes apply to a port, a request none of them matches
        // is answered 404 (Envoy's NR), not sent to the whole service.
        if (routes.length > 0 && protocol !== 'TCP') routes.push({ name: NO_ROUTE_NAME, matches: [], action: { kind: 'direct-response', status: 404, body: 'no route matched\n' } });
        const defaultCluster = clusterName(hostname, spec.port);
        if (!refs.has(defaultCluster)) refs.set(defaultCluster, { name: defaultCluster, service: sKey, hostname, port: spec.port });
        const defaultRetries = protocol === 'TCP' ? undefined : defaultRetryPolicy(clusterHashes(destinationRules, { hostname, port: spec.port }));
        ports.push({ port: spec.port, protocol, routes, defaultCluster, ...(defaultRetries ? { defaultRetries } : {}) });
      }
      wServices.push({ key: sKey, namespace: service.namespace, hostname, addresses: [...service.addresses], ports });
    }
    // Which DestinationRules this waypoint's clusters use.
    for (const ref of refs.values()) {
      const rule = destinationRules.get(ref.hostname);
      if (rule) {
        const r = reports.get(`DestinationRule/${rule.rule}`);
        r?.usedBy.add(wKey);
        r?.hosts.add(ref.hostname);
      }
    }
    const local = waypointLocality(waypoint);
    const clusters = [...refs.values()].sort((a, b) => a.name.localeCompare(b.name)).map((ref) => materialise(ref, resources, podLabels, destinationRules.get(ref.hostname), options.trustDomain, local));
    const waypointPods = view.pods.find((p) => (p.metadata.namespace ?? 'default') === waypoint.ref.namespace && p.metadata.labels?.[WAYPOINT_POD_GATEWAY_LABEL] === waypoint.ref.name);
    const { policies, jwtRules } = waypointPolicies({
      waypoint: { namespace: waypoint.ref.namespace, name: waypoint.ref.name, ...(waypointPods?.metadata.labels ? { podLabels: waypointPods.metadata.labels } : {}) },
      services: wServices.map((s) => ({ key: s.key, namespace: s.namespace, name: resources.services.get(s.key)?.name ?? '' })),
      authorizationPolicies: view.authorizationPolicies ?? [],
      requestAuthentications: view.requestAuthentications ?? [],
      ...(options.rootNamespace ? { rootNamespace: options.rootNamespace } : {}),
    });
    configs.set(wKey, {
      namespace: waypoint.ref.namespace,
      name: waypoint.ref.name,
      identity: waypoint.identity,
      services: wServices,
      clusters,
      ...(policies.length > 0 ? { policies } : {}),
      ...(jwtRules.length > 0 ? { jwtRules } : {}),
    });
  }

  const status = new Map<string, ConditionSpec[]>();
  for (const [key, r] of reports) status.set(key, conditions(r, r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute'));
  return { configs, status, valid };
}

function clusterNamesOf(route: HttpRoute): string[] {
  const names = route.action.kind === 'forward' ? route.action.backends.map((b) => b.cluster) : [];
  for (const m of route.mirrors ?? []) names.push(m.cluster);
  return names;
}

/**
 * Istio's default retry policy for a forwarding route that sets none; none at all for
 * `attempts: 0` (RETRIES_OFF). `hashed` tells whether a cluster balances by consistent hash.
 */
export function withRetries(route: HttpRoute, hashed: (cluster: string) => boolean): HttpRoute {
  if (route.action.kind !== 'forward') return route;
  if (!route.retries) return { ...route, retries: defaultRetryPolicy(route.action.backends.some((b) => hashed(b.cluster))) };
  if (route.retries.attempts > 0) return route;
  const { retries: _off, ...rest } = route;
  return rest;
}

const LOCALITY_LABELS = ['topology.istio.io/locality', 'istio-locality'];
const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/**
 * A pod's `region/zone/subzone` from Istio's locality labels (label values cannot hold `/`, so
 * `.` separates; a value with `/` is taken as is); undefined without one.
 */
export function podLocality(labels: Readonly<Record<string, string>> | undefined): string | undefined {
  const value = LOCALITY_LABELS.map((l) => labels?.[l]).find((v) => v !== undefined && v.trim() !== '');
  if (value === undefined) return undefined;
  const parts = (value.includes('/') ? value.split('/') : value.split('.')).map((p) => p.trim());
  return [parts[0] ?? '', parts[1] ?? '', parts.slice(2).join('.')].join('/');
}

/** The contract fields of a cluster from the trafficPolicy in effect for it. */
export function clusterPolicy(level: TrafficPolicyLevel, local: string | undefined): Pick<Cluster, 'lb' | 'hash' | 'connectionPool' | 'outlierDetection' | 'localityLb'> {
  const lb = level.loadBalancer;
  const locality = lb?.locality;
  // Istio: locality failover only with outlier detection; on unless disabled. Unknown own
  // locality and no explicit setting = nothing to prefer, so left out.
  const preferLocal = level.outlierDetection !== undefined && (locality ? locality.enabled : local !== undefined);
  return {
    lb: lb?.simple ?? DEFAULT_LOAD_BALANCER,
    ...(lb?.hash ? { hash: lb.hash } : {}),
    ...(level.connectionPool && Object.keys(level.connectionPool).length ? { connectionPool: level.connectionPool } : {}),
    ...(level.outlierDetection ? { outlierDetection: level.outlierDetection } : {}),
    ...(preferLocal ? { localityLb: { local: local ?? '//', ...(locality?.failover ? { failover: locality.failover } : {}) } } : {}),
  };
}

/**
 * Who an endpoint is, for the proxies' `destination_*` labels: Istio's canonical service defaults
 * (`labels.CanonicalService`): the workload name when no canonical-name label, `latest` when no
 * revision label.
 */
export function endpointMeta(w: Pick<Workload, 'name' | 'namespace' | 'workloadName' | 'canonicalName' | 'canonicalRevision'>): EndpointMeta {
  const workloadName = w.workloadName || w.name;
  return { workloadName, namespace: w.namespace, canonicalName: w.canonicalName || workloadName, canonicalRevision: w.canonicalRevision || 'latest' };
}

export function materialise(ref: ClusterRef, resources: MeshResources, podLabels: ReadonlyMap<string, Record<string, string>>, rule: HostRule | undefined, trustDomain: string, local: string | undefined): Cluster {
  const subsetRule = ref.subset !== undefined ? rule?.subsets.get(ref.subset) : undefined;
  const labels = ref.subsetLabels ?? subsetRule?.labels;
  const endpoints: Endpoint[] = [];
  for (const w of resources.workloads.values()) {
    if (w.status !== 'HEALTHY') continue;
    const target = w.services[ref.service]?.ports.find((p) => p.servicePort === ref.port)?.targetPort;
    const address = w.addresses[0];
    if (!target || !address) continue;
    // Subset labels are pod labels; an empty selector selects every pod (Istio).
    const pod = podLabels.get(w.uid);
    if (labels && Object.keys(labels).length > 0 && !selectorMatches(labels, pod)) continue;
    const locality = podLocality(pod);
    endpoints.push({
      address,
      port: target,
      identity: `spiffe://${w.trustDomain ?? trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`,
      hbone: w.tunnelProtocol === 'HBONE',
      ...(w.capacity !== undefined && w.capacity !== 1 ? { weight: w.capacity } : {}),
      workload: w.uid,
      ...(locality !== undefined ? { locality } : {}),
      meta: endpointMeta(w),
    });
  }
  endpoints.sort((a, b) => a.address.localeCompare(b.address) || a.port - b.port);
  const policy = clusterPolicy(effectivePolicy(rule, ref.port, ref.subset), local);
  return { name: ref.name, service: ref.service, port: ref.port, ...(ref.subset !== undefined ? { subset: ref.subset } : {}), ...policy, endpoints };
}
