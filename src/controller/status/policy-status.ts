/**
 * Status conditions on AuthorizationPolicy and PeerAuthentication (DESIGN §7: every rejected or
 * ignored field gets a condition naming the field and the reason).
 *
 * Conditions we own (others' conditions on the same object are kept as they are):
 * - `Accepted`: True/`Accepted` when node agents enforce the policy (perhaps partly, see Warning);
 *   False/`UnsupportedValue` when they enforce nothing of it (e.g. action AUDIT or CUSTOM).
 * - `Warning`: present, True/`IgnoredFields`, only when something was ignored, dropped or invalid;
 *   its message lists every such field (the translators' warnings, joined by "; ").
 * AuthorizationPolicies bound to a waypoint (`targetRefs`) are not ours: the waypoint side writes
 * their status, so they are skipped here.
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
import { MESH_ROOT_NAMESPACE } from '../mesh/compute-mesh-resources.js';
import { translateAuthorizationPolicy, type AuthorizationPolicyObject } from '../translate/authorization-policy.js';
import { effectiveMtls, type PeerAuthenticationObject } from '../translate/peer-authentication.js';

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

export type PolicyKind = 'AuthorizationPolicy' | 'PeerAuthentication';

interface StatusShape {
  metadata: { name?: string; namespace?: string; generation?: number };
  status?: { conditions?: Condition[] } | null;
}

function fromWarnings(warnings: readonly string[], accepted: ConditionSpec): ConditionSpec[] {
  if (warnings.length === 0) return [accepted];
  return [accepted, { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: warnings.join('; ') }];
}

/** Our conditions for an AuthorizationPolicy; undefined when its status is not ours (waypoint policy). */
export function authorizationPolicyConditions(policy: AuthorizationPolicyObject, rootNamespace = MESH_ROOT_NAMESPACE): ConditionSpec[] | undefined {
  const spec = policy.spec ?? {};
  if (spec.targetRef || (spec.targetRefs && spec.targetRefs.length > 0)) return undefined;
  const { authorization, warnings } = translateAuthorizationPolicy(policy, rootNamespace);
  if (!authorization) return [{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: warnings.join('; ') || 'not enforced by node agents' }];
  const scope = authorization.scope === 'GLOBAL' ? 'mesh-wide' : authorization.scope === 'NAMESPACE' ? 'namespace-wide' : 'on the selected workloads';
  return fromWarnings(warnings, { type: 'Accepted', status: 'True', reason: 'Accepted', message: `enforced by node agents (L4), ${scope}` });
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
  now?: () => Date;
}

const KIND_RESOURCE: Record<PolicyKind, ResourceKind> = {
  AuthorizationPolicy: RESOURCES.authorizationPolicies,
  PeerAuthentication: RESOURCES.peerAuthentications,
};

/**
 * Brings the status of every given policy up to date. Writes are sequential (policies are few
 * and change rarely); a reconcile while one runs is queued and replaces any earlier queued one.
 */
export class PolicyStatusWriter {
  readonly #patch: StatusPatcher;
  readonly #log: Logger;
  readonly #rootNamespace: string;
  readonly #now: () => Date;
  readonly #unsupportedLogged = new Set<PolicyKind>();
  readonly #queue = new LatestWorkQueue<{ kind: PolicyKind; object: StatusShape; desired: ConditionSpec[] }>((item) => this.#write(item.kind, item.object, item.desired));

  constructor(opts: PolicyStatusWriterOptions) {
    if (opts.patch) this.#patch = opts.patch;
    else if (opts.kubeConfig) this.#patch = kubeStatusPatcher(opts.kubeConfig);
    else throw new TypeError('PolicyStatusWriter needs patch or kubeConfig');
    this.#log = opts.log.child({ component: 'policy-status' });
    this.#rootNamespace = opts.rootNamespace ?? MESH_ROOT_NAMESPACE;
    this.#now = opts.now ?? (() => new Date());
  }

  reconcile(view: { authorizationPolicies?: readonly AuthorizationPolicyObject[]; peerAuthentications?: readonly PeerAuthenticationObject[] }): void {
    if (this.#queue.stopped) return;
    const work: Array<{ kind: PolicyKind; object: StatusShape; desired: ConditionSpec[] }> = [];
    for (const ap of view.authorizationPolicies ?? []) {
      const desired = authorizationPolicyConditions(ap, this.#rootNamespace);
      if (desired) work.push({ kind: 'AuthorizationPolicy', object: ap as StatusShape, desired });
    }
    for (const pa of view.peerAuthentications ?? []) work.push({ kind: 'PeerAuthentication', object: pa as StatusShape, desired: peerAuthenticationConditions(pa, this.#rootNamespace) });
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
