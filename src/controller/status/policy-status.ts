/**
 * Status conditions on AuthorizationPolicy, PeerAuthentication and RequestAuthentication
 * (DESIGN §7: every rejected or ignored field gets a condition naming the field and the reason).
 *
 * Conditions we own (others' conditions on the same object are kept as they are):
 * - `Accepted`: where the policy is enforced. True/`Accepted` "enforced by node agents (L4) …"
 *   or "enforced by waypoint demo/waypoint for service demo/backend (L7)" (perhaps partly, see
 *   Warning); False when nothing enforces it: `UnsupportedValue` (e.g. CUSTOM), `TargetNotFound`
 *   (its targetRefs name no waypoint, or a Service no waypoint is bound to), `NotEnforced` (a
 *   RequestAuthentication not attached to a waypoint: node agents do not check JWTs).
 * - `Warning`: present, True/`IgnoredFields`, only when something was ignored, dropped or invalid;
 *   its message lists every such field (the translators' warnings, joined by "; ").
 * Waypoint policies (`targetRefs`, or a selector selecting a waypoint's pods) are judged by
 * l7-authorization-policy.ts / request-authentication.ts and placed by waypoint-policies.ts.
 *
 * `lastTransitionTime` changes only when a condition's status changes (Kubernetes convention);
 * the status subresource is merge-patched only when the conditions differ from the object's. A
 * 404/405 from `/status` (object gone, or a server without the subresource) is logged once per
 * kind and skipped — status is a courtesy, never a reason to stop serving the mesh.
 */
import { LatestWorkQueue } from './latest-work-queue.js';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { RESOURCES, statusCodeOf, type ResourceKind } from '../kube/informer.js';
import { MESH_ROOT_NAMESPACE, waypointBindingKey, type MeshResources, type MeshView } from '../mesh/compute-mesh-resources.js';
import { translateAuthorizationPolicy, type AuthorizationPolicyObject } from '../translate/authorization-policy.js';
import { hasTargetRefs, translateL7AuthorizationPolicy } from '../translate/l7-authorization-policy.js';
import { effectiveMtls, type PeerAuthenticationObject } from '../translate/peer-authentication.js';
import { translateRequestAuthentication, type RequestAuthenticationObject } from '../translate/request-authentication.js';
import { DEFAULT_CLUSTER_DOMAIN } from '../translate/service.js';
import { listWaypoints, serviceWaypoint, type GatewayObject } from '../translate/waypoint-binding.js';
import { placement, WAYPOINT_POD_GATEWAY_LABEL, type Placement, type PlacementContext, type WaypointRef } from '../translate/waypoint-policies.js';
import { waypointAcceptance } from '../waypoint/acceptance.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

/** A condition before it gets its times. */
export type ConditionSpec = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

export const OWNED_CONDITION_TYPES = ['Accepted', 'Warning'] as const;

export type PolicyKind = 'AuthorizationPolicy' | 'PeerAuthentication' | 'RequestAuthentication';

interface StatusShape {
  metadata: { name?: string; namespace?: string; generation?: number };
  status?: { conditions?: Condition[] } | null;
}

function fromWarnings(warnings: readonly string[], accepted: ConditionSpec): ConditionSpec[] {
  if (warnings.length === 0) return [accepted];
  return [accepted, { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: warnings.join('; ') }];
}

/** No waypoint known: targetRefs resolve to nothing (status says so until the view is given). */
const NO_PLACEMENT: PlacementContext = { waypoints: [], serviceBinding: () => ({ reason: 'waypoint bindings unknown' }) };

/** Conditions of a waypoint policy from where it is placed and what its translation warned about. */
function waypointConditions(place: Placement, warnings: readonly string[], enforced: boolean, notEnforcedMessage: string): ConditionSpec[] {
  if (!enforced) return [{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: warnings.join('; ') || notEnforcedMessage }];
  if (place.enforcedBy.length === 0) {
    const why = place.unresolved.length ? place.unresolved.join('; ') : 'no usable target';
    return fromWarnings(warnings, { type: 'Accepted', status: 'False', reason: 'TargetNotFound', message: `not enforced: ${why}` });
  }
  return fromWarnings([...place.unresolved, ...warnings], { type: 'Accepted', status: 'True', reason: 'Accepted', message: `enforced by ${place.enforcedBy.join(', ')} (L7)` });
}

/**
 * Our conditions for an AuthorizationPolicy. Waypoint policies (targetRefs, or a selector that
 * selects a waypoint's pods, per `placementContext`) are placed on waypoints; the rest are the
 * node agents'.
 */
export function authorizationPolicyConditions(policy: AuthorizationPolicyObject, rootNamespace = MESH_ROOT_NAMESPACE, ctx: PlacementContext = NO_PLACEMENT): ConditionSpec[] {
  const l7 = translateL7AuthorizationPolicy(policy, rootNamespace);
  const place = placement(l7.targets, ctx);
  if (hasTargetRefs(policy.spec) || place.selectsWaypoint) {
    return waypointConditions(place, l7.warnings, l7.policy !== undefined, 'not enforced at waypoints');
  }
  const { authorization, warnings } = translateAuthorizationPolicy(policy, rootNamespace);
  if (!authorization) return [{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: warnings.join('; ') || 'not enforced by node agents' }];
  const scope = authorization.scope === 'GLOBAL' ? 'mesh-wide' : authorization.scope === 'NAMESPACE' ? 'namespace-wide' : 'on the selected workloads';
  return fromWarnings(warnings, { type: 'Accepted', status: 'True', reason: 'Accepted', message: `enforced by node agents (L4), ${scope}` });
}

/** Our conditions for a RequestAuthentication: JWTs are checked by waypoints only. */
export function requestAuthenticationConditions(policy: RequestAuthenticationObject, rootNamespace = MESH_ROOT_NAMESPACE, ctx: PlacementContext = NO_PLACEMENT): ConditionSpec[] {
  const t = translateRequestAuthentication(policy, rootNamespace);
  const place = placement(t.targets, ctx);
  if (!hasTargetRefs(policy.spec) && !place.selectsWaypoint) {
    return fromWarnings(t.warnings, {
      type: 'Accepted',
      status: 'False',
      reason: 'NotEnforced',
      message: 'not enforced: node agents do not check JWTs; attach it to a waypoint with spec.targetRefs (its Gateway, or a Service bound to it)',
    });
  }
  if ((policy.spec?.jwtRules?.length ?? 0) > 0 && t.rules.length === 0) {
    return [{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: `no usable jwtRules: ${t.warnings.join('; ')}` }];
  }
  return waypointConditions(place, t.warnings, true, '');
}

/**
 * Where waypoint policies can attach, from the controller's view: the accepted waypoints (with
 * their pods' labels, for selector policies) and the waypoint of each Service — from the mesh's
 * binding records when given, else from the binding rules on the view's objects.
 */
export function placementContext(view: Pick<MeshView, 'gateways' | 'services' | 'namespaces' | 'pods'>, resources?: Pick<MeshResources, 'waypointBindings'>, clusterDomain = DEFAULT_CLUSTER_DOMAIN): PlacementContext {
  const gateways = ((view.gateways ?? []) as GatewayObject[]).filter((g) => waypointAcceptance(g).accepted);
  const infos = listWaypoints(gateways, view.services, { trustDomain: 'cluster.local', clusterDomain });
  const waypoints: WaypointRef[] = infos.map((w) => {
    const pod = view.pods.find((p) => (p.metadata.namespace ?? 'default') === w.ref.namespace && p.metadata.labels?.[WAYPOINT_POD_GATEWAY_LABEL] === w.ref.name);
    return { namespace: w.ref.namespace, name: w.ref.name, ...(pod?.metadata.labels ? { podLabels: pod.metadata.labels } : {}) };
  });
  return {
    waypoints,
    serviceBinding(namespace, name) {
      const record = resources?.waypointBindings.get(waypointBindingKey('Service', namespace, name));
      if (record) return record.binding.waypoint ? { waypoint: `${record.binding.waypoint.ref.namespace}/${record.binding.waypoint.ref.name}` } : { reason: record.detail };
      const service = view.services.find((s) => (s.metadata.namespace ?? 'default') === namespace && s.metadata.name === name);
      if (!service) return { reason: `service ${namespace}/${name} not found` };
      const binding = serviceWaypoint(service, view.namespaces.find((n) => n.metadata.name === namespace), infos);
      return binding.waypoint ? { waypoint: `${binding.waypoint.ref.namespace}/${binding.waypoint.ref.name}` } : { reason: binding.reason };
    },
  };
}

/** Our conditions for a PeerAuthentication, judged on its own (as the only policy of its scope). */
export function peerAuthenticationConditions(policy: PeerAuthenticationObject, rootNamespace = MESH_ROOT_NAMESPACE): ConditionSpec[] {
  const namespace = policy.metadata.namespace ?? '';
  const labels = policy.spec?.selector?.matchLabels ?? {};
  const { warnings } = effectiveMtls([policy], { namespace, labels }, rootNamespace);
  const hasSelector = Object.keys(labels).length > 0;
  const scope = hasSelector ? 'on the selected workloads' : namespace === rootNamespace ? 'mesh-wide' : 'namespace-wide';
  // effectiveMtls prefixes each warning with the policy's name; on the object itself that is noise.
  const prefix = `PeerAuthentication ${namespace}/${policy.metadata.name ?? ''} `;
  const own = warnings.map((w) => (w.startsWith(prefix) ? w.slice(prefix.length) : w));
  return fromWarnings(own, { type: 'Accepted', status: 'True', reason: 'Accepted', message: `enforced by node agents, ${scope}` });
}

/**
 * The full condition list to write: ours with times (a condition keeps its lastTransitionTime
 * while its status is unchanged), after the conditions of other types, which are kept.
 */
export function nextConditions(desired: readonly ConditionSpec[], current: readonly Condition[] | undefined, generation: number | undefined, now: Date): Condition[] {
  const owned = new Set<string>(OWNED_CONDITION_TYPES);
  const others = (current ?? []).filter((c) => !owned.has(c.type));
  const ours = desired.map((d): Condition => {
    const previous = current?.find((c) => c.type === d.type);
    return {
      ...d,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: previous && previous.status === d.status && previous.lastTransitionTime ? previous.lastTransitionTime : now.toISOString(),
    };
  });
  return [...others, ...ours];
}

/** Same conditions, ignoring order of other writers' and the times. */
export function conditionsEqual(a: readonly Condition[] | undefined, b: readonly Condition[]): boolean {
  const norm = (list: readonly Condition[]): string =>
    JSON.stringify(
      list
        .map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration ?? null])
        .sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
  return norm(a ?? []) === norm(b);
}

/** Writes `status` of one object through the status subresource (merge patch). */
export type StatusPatcher = (resource: ResourceKind, namespace: string, name: string, status: { conditions: Condition[] }) => Promise<void>;

export function kubeStatusPatcher(kubeConfig: KubeConfig): StatusPatcher {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  return async (resource, namespace, name, status) => {
    await api.patchNamespacedCustomObjectStatus(
      { group: resource.group, version: resource.version, namespace, plural: resource.plural, name, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  };
}

export interface PolicyStatusWriterOptions {
  patch?: StatusPatcher;
  kubeConfig?: KubeConfig;
  log: Logger;
  rootNamespace?: string;
  /** For the hostnames of targeted Services (default cluster.local). */
  clusterDomain?: string;
  now?: () => Date;
}

/** What the writer reads: the policies, and the objects that say where waypoint policies land. */
export interface PolicyStatusView {
  authorizationPolicies?: readonly AuthorizationPolicyObject[];
  peerAuthentications?: readonly PeerAuthenticationObject[];
  requestAuthentications?: readonly RequestAuthenticationObject[];
  gateways?: MeshView['gateways'];
  services?: MeshView['services'];
  namespaces?: MeshView['namespaces'];
  pods?: MeshView['pods'];
}

const KIND_RESOURCE: Record<PolicyKind, ResourceKind> = {
  AuthorizationPolicy: RESOURCES.authorizationPolicies,
  PeerAuthentication: RESOURCES.peerAuthentications,
  RequestAuthentication: RESOURCES.requestAuthentications,
};

/**
 * Brings the status of every given policy up to date. Writes are sequential (policies are few
 * and change rarely); a reconcile while one runs is queued and replaces any earlier queued one.
 */
export class PolicyStatusWriter {
  readonly #patch: StatusPatcher;
  readonly #log: Logger;
  readonly #rootNamespace: string;
  readonly #clusterDomain: string;
  readonly #now: () => Date;
  readonly #unsupportedLogged = new Set<PolicyKind>();
  readonly #queue = new LatestWorkQueue<{ kind: PolicyKind; object: StatusShape; desired: ConditionSpec[] }>((item) => this.#write(item.kind, item.object, item.desired));

  constructor(opts: PolicyStatusWriterOptions) {
    if (opts.patch) this.#patch = opts.patch;
    else if (opts.kubeConfig) this.#patch = kubeStatusPatcher(opts.kubeConfig);
    else throw new TypeError('PolicyStatusWriter needs patch or kubeConfig');
    this.#log = opts.log.child({ component: 'policy-status' });
    this.#rootNamespace = opts.rootNamespace ?? MESH_ROOT_NAMESPACE;
    this.#clusterDomain = opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * `resources` (the mesh's waypoint bindings) places Service-targeted waypoint policies exactly;
   * without it the binding rules are applied to the view's objects (per-service-account
   * waypoints then go unseen).
   */
  reconcile(view: PolicyStatusView, resources?: Pick<MeshResources, 'waypointBindings'>): void {
    if (this.#queue.stopped) return;
    const work: Array<{ kind: PolicyKind; object: StatusShape; desired: ConditionSpec[] }> = [];
    const waypointPolicies = (view.authorizationPolicies ?? []).some((ap) => hasTargetRefs(ap.spec) || ap.spec?.selector) || (view.requestAuthentications ?? []).length > 0;
    const ctx = waypointPolicies && view.services && view.pods && view.namespaces ? placementContext(view as Pick<MeshView, 'gateways' | 'services' | 'namespaces' | 'pods'>, resources, this.#clusterDomain) : NO_PLACEMENT;
    for (const ap of view.authorizationPolicies ?? []) work.push({ kind: 'AuthorizationPolicy', object: ap as StatusShape, desired: authorizationPolicyConditions(ap, this.#rootNamespace, ctx) });
    for (const pa of view.peerAuthentications ?? []) work.push({ kind: 'PeerAuthentication', object: pa as StatusShape, desired: peerAuthenticationConditions(pa, this.#rootNamespace) });
    for (const ra of view.requestAuthentications ?? []) work.push({ kind: 'RequestAuthentication', object: ra as StatusShape, desired: requestAuthenticationConditions(ra, this.#rootNamespace, ctx) });
    this.#queue.replace(work);
  }

  /** Resolves when no reconcile is running or queued. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  stop(): void {
    this.#queue.stop();
  }

  async #write(kind: PolicyKind, object: StatusShape, desired: ConditionSpec[]): Promise<void> {
    const current = object.status?.conditions;
    const next = nextConditions(desired, current, object.metadata.generation, this.#now());
    if (conditionsEqual(current, next)) return;
    const namespace = object.metadata.namespace ?? '';
    const name = object.metadata.name ?? '';
    try {
      await this.#patch(KIND_RESOURCE[kind], namespace, name, { conditions: next });
      this.#log.debug({ kind, policy: `${namespace}/${name}`, conditions: next.map((c) => `${c.type}=${c.status}`) }, 'policy status written');
    } catch (err) {
      const status = statusCodeOf(err);
      if (status === 404 || status === 405) {
        if (!this.#unsupportedLogged.has(kind)) {
          this.#unsupportedLogged.add(kind);
          this.#log.warn({ kind, policy: `${namespace}/${name}`, status }, `cannot write ${kind} status (object gone, or the API server does not serve its status subresource); continuing without it`);
        }
        return;
      }
      this.#log.warn({ kind, policy: `${namespace}/${name}`, status, err: err instanceof Error ? err.message : String(err) }, 'writing policy status failed; retried on the next change');
    }
  }
}
