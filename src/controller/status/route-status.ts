/**
 * Status of the routing objects waypoints serve (DESIGN §7: every rejected or ignored field gets
 * a condition naming it): the conditions computeWaypointConfigs decided, written through the
 * status subresource.
 *
 * - VirtualService, DestinationRule (Istio's IstioStatus shape): `status.conditions` — ours are
 *   Accepted and Warning, others' kept (policy-status.ts' nextConditions) — and
 *   `status.validationMessages`, one per problem with Istio's level and analyzer code where one
 *   fits (IST0101 ReferencedResourceNotFound for a missing destination, IST0106
 *   SchemaValidationError for the rest), plus a `description` carrying our message.
 * - HTTPRoute, GRPCRoute (Gateway API RouteStatus): one `status.parents[]` entry per mesh parent
 *   (a Service, or a waypoint Gateway) with `controllerName: amesh.io/waypoint-controller` and
 *   conditions Accepted, ResolvedRefs (and Warning when fields were ignored), and one per parentRef
 *   naming an amesh ingress Gateway (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute) with `controllerName: amesh.io/gateway-controller` and the
 *   ingress translator's conditions for that Gateway. Entries of other controllers are kept: a
 *   merge patch replaces the whole list, so it is rebuilt from theirs plus both of ours (one write
 *   for both, so the two never undo each other).
 * - Ingress (IngressResult.status): networking.istio.io Gateways get IstioStatus like
 *   VirtualServices; a VirtualService both the waypoint and the ingress translators judged gets
 *   the two verdicts merged (mergeConditionSpecs).
 * Writes happen only when something differs (times aside) and are sequential; a newer reconcile
 * replaces the queued one. 404/405 are logged once per kind (object gone, or no status
 * subresource) — status never stops routing.
 */
import { LatestWorkQueue } from './latest-work-queue.js';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { RESOURCES, statusCodeOf, type ResourceKind } from '../kube/informer.js';
import type { KubeObjectLike, MeshView } from '../mesh/compute-mesh-resources.js';
import { routeParents, type HttpRouteObject, type ParentRef } from '../translate/http-route.js';
import { routeObjectKey, type RouteObjectKind } from '../translate/waypoint-config.js';
import { isWaypointGateway, type GatewayObject } from '../translate/waypoint-binding.js';
import { INGRESS_CONTROLLER_NAME } from '../translate/ingress-model.js';
import { conditionsEqual, nextConditions, type Condition, type ConditionSpec } from './policy-status.js';

export const WAYPOINT_CONTROLLER_NAME = 'amesh.io/waypoint-controller';

export interface ValidationMessage {
  level: 'ERROR' | 'WARNING';
  type: { code?: string; name: string };
  description: string;
}

export interface RouteParentStatus {
  parentRef: ParentRef;
  controllerName: string;
  conditions: Condition[];
}

/** Writes `status` of one object through the status subresource (merge patch). */
export type RouteStatusPatcher = (resource: ResourceKind, namespace: string, name: string, status: Record<string, unknown>) => Promise<void>;

export function kubeRouteStatusPatcher(kubeConfig: KubeConfig): RouteStatusPatcher {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  return async (resource, namespace, name, status) => {
    await api.patchNamespacedCustomObjectStatus(
      { group: resource.group, version: resource.version, namespace, plural: resource.plural, name, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  };
}

/** Gateway API routes only ingress Gateways take (TLS passthrough and TCP listeners). */
export type L4RouteKind = 'TLSRoute' | 'TCPRoute';

/** The kinds whose status this writer owns: the routing objects and Istio ingress Gateways. */
export type StatusObjectKind = RouteObjectKind | L4RouteKind | 'IstioGateway';

const KIND_RESOURCE: Record<StatusObjectKind, ResourceKind> = {
  IstioGateway: RESOURCES.istioGateways,
  VirtualService: RESOURCES.virtualServices,
  DestinationRule: RESOURCES.destinationRules,
  HTTPRoute: RESOURCES.httpRoutes,
  GRPCRoute: RESOURCES.grpcRoutes,
  TLSRoute: RESOURCES.tlsRoutesV1alpha2,
  TCPRoute: RESOURCES.tcpRoutes,
};

/** Gateway API kinds whose status is a RouteStatus (`parents`). */
const GATEWAY_ROUTE_KINDS: ReadonlySet<StatusObjectKind> = new Set(['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute']);

/**
 * Where the status of `object` is written: its kind's resource, at the API version the object was
 * read with when that is a version of the same group (TLSRoute is watched as v1 and v1alpha2).
 */
export function statusResource(kind: StatusObjectKind, object: KubeObjectLike): ResourceKind {
  const base = KIND_RESOURCE[kind];
  const slash = object.apiVersion?.indexOf('/') ?? -1;
  if (!object.apiVersion || slash < 0 || object.apiVersion.slice(0, slash) !== base.group) return base;
  return { ...base, version: object.apiVersion.slice(slash + 1) };
}

const ISTIO_CODES: Record<string, string> = { InvalidDestination: 'IST0101' };

/** Istio validationMessages for our conditions: the Accepted=False problems, then the warnings. */
export function validationMessages(desired: readonly ConditionSpec[]): ValidationMessage[] {
  const out: ValidationMessage[] = [];
  const accepted = desired.find((c) => c.type === 'Accepted');
  if (accepted?.status === 'False') out.push({ level: 'ERROR', type: { code: ISTIO_CODES[accepted.reason] ?? 'IST0106', name: accepted.reason }, description: accepted.message });
  const warning = desired.find((c) => c.type === 'Warning' && c.status === 'True');
  if (warning) out.push({ level: 'WARNING', type: { name: warning.reason }, description: warning.message });
  return out;
}

interface IstioStatusShape {
  conditions?: Condition[];
  validationMessages?: ValidationMessage[];
}

/** The next IstioStatus, or undefined when the object's already says the same. */
export function nextIstioStatus(object: KubeObjectLike, desired: readonly ConditionSpec[], now: Date): { conditions: Condition[]; validationMessages: ValidationMessage[] } | undefined {
  const current = (object.status ?? {}) as IstioStatusShape;
  const conditions = nextConditions(desired, current.conditions, object.metadata.generation, now);
  const messages = validationMessages(desired);
  if (conditionsEqual(current.conditions, conditions) && JSON.stringify(current.validationMessages ?? []) === JSON.stringify(messages)) return undefined;
  return { conditions, validationMessages: messages };
}

const SEVERITY: Record<string, number> = { False: 2, Unknown: 1, True: 0 };

/**
 * One object judged by two translators (a VirtualService bound to `mesh` and to a gateway): per
 * condition type, a False wins over True (a problem must stay visible) — for `Warning` True wins;
 * equal statuses keep the first reason and join both messages.
 */
export function mergeConditionSpecs(a: readonly ConditionSpec[] | undefined, b: readonly ConditionSpec[] | undefined): ConditionSpec[] | undefined {
  if (!a) return b ? [...b] : undefined;
  if (!b) return [...a];
  const out: ConditionSpec[] = [];
  for (const type of [...new Set([...a.map((c) => c.type), ...b.map((c) => c.type)])]) {
    const x = a.find((c) => c.type === type);
    const y = b.find((c) => c.type === type);
    if (!x || !y) {
      out.push((x ?? y) as ConditionSpec);
      continue;
    }
    const worse = (c: ConditionSpec): number => (type === 'Warning' ? -(SEVERITY[c.status] ?? 0) : (SEVERITY[c.status] ?? 0));
    if (x.status === y.status) out.push({ ...x, message: x.message === y.message ? x.message : `${x.message}; ${y.message}` });
    else out.push(worse(x) >= worse(y) ? x : y);
  }
  return out;
}

/** `HTTPRoute|GRPCRoute|TLSRoute|TCPRoute/<ns>/<name>@<gateway ns>/<gateway name>` keys of IngressResult.status, per route key. */
export function ingressParentsByRoute(ingress: ReadonlyMap<string, ConditionSpec[]> | undefined): Map<string, Map<string, ConditionSpec[]>> {
  const out = new Map<string, Map<string, ConditionSpec[]>>();
  for (const [key, conditions] of ingress ?? []) {
    const at = key.indexOf('@');
    if (at < 0 || !GATEWAY_ROUTE_KINDS.has(key.slice(0, key.indexOf('/')) as StatusObjectKind)) continue;
    const route = key.slice(0, at);
    const byGateway = out.get(route) ?? new Map<string, ConditionSpec[]>();
    byGateway.set(key.slice(at + 1), conditions);
    out.set(route, byGateway);
  }
  return out;
}

/** The route's parentRefs naming Gateway `<ns>/<name>` (as written); one synthesised ref when none does. */
function refsToGateway(route: KubeObjectLike & { spec?: { parentRefs?: ParentRef[] } }, gateway: string): ParentRef[] {
  const ns = route.metadata.namespace ?? 'default';
  const [gwNamespace = '', gwName = ''] = gateway.split('/');
  const refs = (route.spec?.parentRefs ?? []).filter(
    (ref) => (ref.group ?? 'gateway.networking.k8s.io') === 'gateway.networking.k8s.io' && (ref.kind ?? 'Gateway') === 'Gateway' && (ref.namespace ?? ns) === gwNamespace && ref.name === gwName,
  );
  return refs.length ? refs : [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: gwNamespace, name: gwName }];
}

/** Our mesh parents of a Gateway API route: Service parentRefs and waypoint Gateways. */
function meshParentRefs(route: KubeObjectLike & { spec?: { parentRefs?: ParentRef[] } }, waypoints: ReadonlySet<string>, clusterDomain: string): ParentRef[] {
  const ns = route.metadata.namespace ?? 'default';
  const { parents, issues } = routeParents(route, clusterDomain);
  const refs = parents.filter((p) => p.kind === 'Service' || waypoints.has(`${p.namespace}/${p.name}`)).map((p) => p.ref);
  // A consumer route's Service parent is ours too: it is where the refusal is explained.
  if (issues.length) for (const ref of route.spec?.parentRefs ?? []) if ((ref.kind ?? 'Gateway') === 'Service' && (ref.namespace ?? ns) !== ns && !refs.includes(ref)) refs.push(ref);
  return refs;
}

function withTimes(desired: readonly ConditionSpec[], previous: readonly Condition[] | undefined, generation: number | undefined, now: Date): Condition[] {
  return desired.map((d) => {
    const before = previous?.find((c) => c.type === d.type);
    return {
      ...d,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: before && before.status === d.status && before.lastTransitionTime ? before.lastTransitionTime : now.toISOString(),
    };
  });
}

const sameRef = (a: ParentRef, b: ParentRef): boolean =>
  (a.group ?? 'gateway.networking.k8s.io') === (b.group ?? 'gateway.networking.k8s.io') &&
  (a.kind ?? 'Gateway') === (b.kind ?? 'Gateway') &&
  (a.namespace ?? '') === (b.namespace ?? '') &&
  a.name === b.name &&
  (a.sectionName ?? '') === (b.sectionName ?? '') &&
  (a.port ?? 0) === (b.port ?? 0);

/**
 * The next RouteStatus (`parents`), or undefined when ours already say the same. `desired`
 * undefined leaves the mesh entries as they are; `ingress` (conditions per ingress Gateway
 * `<ns>/<name>`) undefined leaves the ingress entries as they are, an empty map removes them.
 */
export function nextRouteParents(
  route: KubeObjectLike & { spec?: { parentRefs?: ParentRef[] } },
  desired: readonly ConditionSpec[] | undefined,
  waypoints: ReadonlySet<string>,
  now: Date,
  clusterDomain = 'cluster.local',
  ingress?: ReadonlyMap<string, readonly ConditionSpec[]>,
): { parents: RouteParentStatus[] } | undefined {
  const current = ((route.status ?? {}) as { parents?: RouteParentStatus[] }).parents ?? [];
  const theirs = current.filter((p) => p.controllerName !== WAYPOINT_CONTROLLER_NAME && p.controllerName !== INGRESS_CONTROLLER_NAME);
  const meshBefore = current.filter((p) => p.controllerName === WAYPOINT_CONTROLLER_NAME);
  const ingressBefore = current.filter((p) => p.controllerName === INGRESS_CONTROLLER_NAME);
  const entry = (parentRef: ParentRef, controllerName: string, conditions: readonly ConditionSpec[], before: readonly RouteParentStatus[]): RouteParentStatus => {
    const previous = before.find((p) => sameRef(p.parentRef, parentRef));
    return { parentRef, controllerName, conditions: withTimes(conditions, previous?.conditions, route.metadata.generation, now) };
  };
  const mesh = desired ? meshParentRefs(route, waypoints, clusterDomain).map((ref) => entry(ref, WAYPOINT_CONTROLLER_NAME, desired, meshBefore)) : meshBefore;
  const edge = ingress
    ? [...ingress.entries()].sort(([a], [b]) => a.localeCompare(b)).flatMap(([gateway, conditions]) => refsToGateway(route, gateway).map((ref) => entry(ref, INGRESS_CONTROLLER_NAME, conditions, ingressBefore)))
    : ingressBefore;
  const norm = (list: readonly RouteParentStatus[]): string => JSON.stringify(list.map((p) => [p.parentRef, p.conditions.map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration ?? null])]));
  if (norm(meshBefore) === norm(mesh) && norm(ingressBefore) === norm(edge)) return undefined;
  return { parents: [...theirs, ...mesh, ...edge] };
}

export interface RouteStatusWriterOptions {
  patch?: RouteStatusPatcher;
  kubeConfig?: KubeConfig;
  log: Logger;
  clusterDomain?: string;
  now?: () => Date;
}

interface Work {
  kind: StatusObjectKind;
  object: KubeObjectLike;
  /** Undefined for a route only ingress Gateways concern (its mesh entries are left alone). */
  desired: ConditionSpec[] | undefined;
  /** `ns/name` of every waypoint Gateway in the view (for HTTPRoute parent statuses). */
  waypoints: ReadonlySet<string>;
  /** HTTPRoutes: conditions per ingress Gateway parent (undefined: ingress entries left alone). */
  ingress?: ReadonlyMap<string, ConditionSpec[]>;
}

export class RouteStatusWriter {
  readonly #patch: RouteStatusPatcher;
  readonly #log: Logger;
  readonly #clusterDomain: string;
  readonly #now: () => Date;
  readonly #unsupportedLogged = new Set<StatusObjectKind>();
  readonly #queue = new LatestWorkQueue<Work>((item) => this.#write(item));

  constructor(opts: RouteStatusWriterOptions) {
    if (opts.patch) this.#patch = opts.patch;
    else if (opts.kubeConfig) this.#patch = kubeRouteStatusPatcher(opts.kubeConfig);
    else throw new TypeError('RouteStatusWriter needs patch or kubeConfig');
    this.#log = opts.log.child({ component: 'route-status' });
    this.#clusterDomain = opts.clusterDomain ?? 'cluster.local';
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * Brings every object named in `status` (by routeObjectKey) up to date; with `ingress`
   * (IngressResult.status) also Istio Gateways, gateway-bound VirtualServices and the ingress
   * parents of HTTPRoutes (and removes our ingress parent entries no longer called for).
   */
  reconcile(view: MeshView, status: ReadonlyMap<string, ConditionSpec[]>, ingress?: ReadonlyMap<string, ConditionSpec[]>): void {
    if (this.#queue.stopped) return;
    const work: Work[] = [];
    const waypoints = new Set(((view.gateways ?? []) as GatewayObject[]).filter(isWaypointGateway).map((g) => `${g.metadata.namespace ?? 'default'}/${g.metadata.name ?? ''}`));
    const key = (kind: StatusObjectKind, object: KubeObjectLike): string => `${kind}/${object.metadata.namespace ?? 'default'}/${object.metadata.name ?? ''}`;
    const add = (kind: RouteObjectKind, objects: readonly KubeObjectLike[] | undefined): void => {
      for (const object of objects ?? []) {
        const desired = status.get(routeObjectKey(kind, object));
        if (desired) work.push({ kind, object, desired, waypoints });
      }
    };
    if (ingress) {
      for (const object of view.istioGateways ?? []) {
        const desired = ingress.get(key('IstioGateway', object));
        if (desired) work.push({ kind: 'IstioGateway', object, desired, waypoints });
      }
      for (const object of view.virtualServices ?? []) {
        const desired = mergeConditionSpecs(status.get(key('VirtualService', object)), ingress.get(key('VirtualService', object)));
        if (desired) work.push({ kind: 'VirtualService', object, desired, waypoints });
      }
    } else add('VirtualService', view.virtualServices);
    add('DestinationRule', view.destinationRules);
    if (ingress) {
      const parents = ingressParentsByRoute(ingress);
      const routes = (kind: 'HTTPRoute' | 'GRPCRoute' | L4RouteKind, objects: readonly KubeObjectLike[] | undefined): void => {
        for (const object of objects ?? []) {
          const k = key(kind, object);
          const desired = status.get(k);
          const edge = parents.get(k);
          const hadEdge = (((object.status ?? {}) as { parents?: RouteParentStatus[] }).parents ?? []).some((p) => p.controllerName === INGRESS_CONTROLLER_NAME);
          if (desired || edge || hadEdge) work.push({ kind, object, desired, waypoints, ingress: edge ?? new Map() });
        }
      };
      routes('HTTPRoute', view.httpRoutes);
      routes('GRPCRoute', view.grpcRoutes);
      routes('TLSRoute', view.tlsRoutes);
      routes('TCPRoute', view.tcpRoutes);
    } else {
      add('HTTPRoute', view.httpRoutes);
      add('GRPCRoute', view.grpcRoutes);
    }
    this.#queue.replace(work);
  }

  /** Resolves when no reconcile is running or queued. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  stop(): void {
    this.#queue.stop();
  }

  async #write({ kind, object, desired, waypoints, ingress }: Work): Promise<void> {
    const now = this.#now();
    const status = GATEWAY_ROUTE_KINDS.has(kind) ? nextRouteParents(object as HttpRouteObject, desired, waypoints, now, this.#clusterDomain, ingress) : desired && nextIstioStatus(object, desired, now);
    if (!status) return;
    const namespace = object.metadata.namespace ?? '';
    const name = object.metadata.name ?? '';
    try {
      await this.#patch(statusResource(kind, object), namespace, name, status);
      this.#log.debug({ kind, object: `${namespace}/${name}`, conditions: (desired ?? []).map((c) => `${c.type}=${c.status}`) }, 'route status written');
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 404 || code === 405) {
        if (!this.#unsupportedLogged.has(kind)) {
          this.#unsupportedLogged.add(kind);
          this.#log.warn({ kind, object: `${namespace}/${name}`, status: code }, `cannot write ${kind} status (object gone, or the API server does not serve its status subresource); continuing without it`);
        }
        return;
      }
      this.#log.warn({ kind, object: `${namespace}/${name}`, status: code, err: err instanceof Error ? err.message : String(err) }, 'writing route status failed; retried on the next change');
    }
  }
}
