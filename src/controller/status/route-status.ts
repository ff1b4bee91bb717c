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
 *   conditions Accepted, ResolvedRefs (and Warning when fields were ignored). Entries of other
 *   controllers (an ingress implementation) are kept: a merge patch replaces the whole list, so
 *   it is rebuilt from theirs plus ours.
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

const KIND_RESOURCE: Record<RouteObjectKind, ResourceKind> = {
  VirtualService: RESOURCES.virtualServices,
  DestinationRule: RESOURCES.destinationRules,
  HTTPRoute: RESOURCES.httpRoutes,
  GRPCRoute: RESOURCES.grpcRoutes,
};

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

/** The next RouteStatus (`parents`), or undefined when ours already say the same. */
export function nextRouteParents(route: KubeObjectLike & { spec?: { parentRefs?: ParentRef[] } }, desired: readonly ConditionSpec[], waypoints: ReadonlySet<string>, now: Date, clusterDomain = 'cluster.local'): { parents: RouteParentStatus[] } | undefined {
  const current = ((route.status ?? {}) as { parents?: RouteParentStatus[] }).parents ?? [];
  const theirs = current.filter((p) => p.controllerName !== WAYPOINT_CONTROLLER_NAME);
  const oursBefore = current.filter((p) => p.controllerName === WAYPOINT_CONTROLLER_NAME);
  const ours = meshParentRefs(route, waypoints, clusterDomain).map((parentRef): RouteParentStatus => {
    const previous = oursBefore.find((p) => sameRef(p.parentRef, parentRef));
    return { parentRef, controllerName: WAYPOINT_CONTROLLER_NAME, conditions: withTimes(desired, previous?.conditions, route.metadata.generation, now) };
  });
  const norm = (list: readonly RouteParentStatus[]): string => JSON.stringify(list.map((p) => [p.parentRef, p.conditions.map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration ?? null])]));
  if (norm(oursBefore) === norm(ours)) return undefined;
  return { parents: [...theirs, ...ours] };
}

export interface RouteStatusWriterOptions {
  patch?: RouteStatusPatcher;
  kubeConfig?: KubeConfig;
  log: Logger;
  clusterDomain?: string;
  now?: () => Date;
}

interface Work {
  kind: RouteObjectKind;
  object: KubeObjectLike;
  desired: ConditionSpec[];
  /** `ns/name` of every waypoint Gateway in the view (for HTTPRoute parent statuses). */
  waypoints: ReadonlySet<string>;
}

export class RouteStatusWriter {
  readonly #patch: RouteStatusPatcher;
  readonly #log: Logger;
  readonly #clusterDomain: string;
  readonly #now: () => Date;
  readonly #unsupportedLogged = new Set<RouteObjectKind>();
  readonly #queue = new LatestWorkQueue<Work>((item) => this.#write(item));

  constructor(opts: RouteStatusWriterOptions) {
    if (opts.patch) this.#patch = opts.patch;
    else if (opts.kubeConfig) this.#patch = kubeRouteStatusPatcher(opts.kubeConfig);
    else throw new TypeError('RouteStatusWriter needs patch or kubeConfig');
    this.#log = opts.log.child({ component: 'route-status' });
    this.#clusterDomain = opts.clusterDomain ?? 'cluster.local';
    this.#now = opts.now ?? (() => new Date());
  }

  /** Brings every object named in `status` (by routeObjectKey) up to date. */
  reconcile(view: MeshView, status: ReadonlyMap<string, ConditionSpec[]>): void {
    if (this.#queue.stopped) return;
    const work: Work[] = [];
    const waypoints = new Set(((view.gateways ?? []) as GatewayObject[]).filter(isWaypointGateway).map((g) => `${g.metadata.namespace ?? 'default'}/${g.metadata.name ?? ''}`));
    const add = (kind: RouteObjectKind, objects: readonly KubeObjectLike[] | undefined): void => {
      for (const object of objects ?? []) {
        const desired = status.get(routeObjectKey(kind, object));
        if (desired) work.push({ kind, object, desired, waypoints });
      }
    };
    add('VirtualService', view.virtualServices);
    add('DestinationRule', view.destinationRules);
    add('HTTPRoute', view.httpRoutes);
    add('GRPCRoute', view.grpcRoutes);
    this.#queue.replace(work);
  }

  /** Resolves when no reconcile is running or queued. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  stop(): void {
    this.#queue.stop();
  }

  async #write({ kind, object, desired, waypoints }: Work): Promise<void> {
    const now = this.#now();
    const status = kind === 'HTTPRoute' || kind === 'GRPCRoute' ? nextRouteParents(object as HttpRouteObject, desired, waypoints, now, this.#clusterDomain) : nextIstioStatus(object, desired, now);
    if (!status) return;
    const namespace = object.metadata.namespace ?? '';
    const name = object.metadata.name ?? '';
    try {
      await this.#patch(KIND_RESOURCE[kind], namespace, name, status);
      this.#log.debug({ kind, object: `${namespace}/${name}`, conditions: desired.map((c) => `${c.type}=${c.status}`) }, 'route status written');
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
