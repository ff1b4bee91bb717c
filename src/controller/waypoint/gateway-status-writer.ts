/**
 * Writing a Gateway API Gateway's status (waypoints and ingress gateways): our conditions merged
 * into the Gateway's (others' kept, times kept while a status is unchanged), `addresses`, and for
 * ingress gateways `listeners` (the whole list is ours; each listener's conditions get times the
 * same way).
 *
 * Invariants:
 * - The status subresource is merge-patched only when something differs from the Gateway's
 *   (times aside), and not again while the cache still shows the Gateway as it was before our
 *   write (same resourceVersion) — a lagging informer never causes a second identical write.
 * - A 404 (the Gateway is gone) is success; other failures return false (the caller retries).
 */
import type { Logger } from '../../telemetry/logger.js';
import { statusCodeOf } from '../kube/informer.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import { mergeConditions, sameConditions, type Condition, type ConditionSpec } from './conditions.js';
import type { GatewayAddressStatus } from './gateway-status.js';
import { apiErrorMessage, type WaypointKubeClient } from './kube-client.js';

/** A Gateway API `status.listeners[]` entry as decided (no times). */
export interface ListenerStatusDesired {
  name: string;
  supportedKinds: Array<{ group: string; kind: string }>;
  attachedRoutes: number;
  conditions: ConditionSpec[];
}

interface ListenerStatus extends Omit<ListenerStatusDesired, 'conditions'> {
  conditions: Condition[];
}

export interface GatewayStatusDesired {
  conditions: ConditionSpec[];
  /** Condition types we own on the Gateway (others' are kept). */
  owned: readonly string[];
  addresses: GatewayAddressStatus[];
  /** Set for ingress gateways; absent leaves `status.listeners` alone. */
  listeners?: ListenerStatusDesired[];
}

interface GatewayStatusShape {
  conditions?: Condition[];
  addresses?: GatewayAddressStatus[];
  listeners?: ListenerStatus[];
}

function sameAddresses(a: readonly GatewayAddressStatus[] | undefined, b: readonly GatewayAddressStatus[]): boolean {
  return JSON.stringify((a ?? []).map((x) => [x.type, x.value])) === JSON.stringify(b.map((x) => [x.type, x.value]));
}

function listenerKey(list: readonly ListenerStatus[] | undefined): string {
  return JSON.stringify(
    (list ?? []).map((l) => [
      l.name,
      l.supportedKinds,
      l.attachedRoutes,
      l.conditions.map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration ?? null]).sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    ]),
  );
}

/** The listener statuses to write: desired ones with times carried over from the current ones of the same name. */
export function nextListeners(desired: readonly ListenerStatusDesired[], current: readonly ListenerStatus[] | undefined, generation: number | undefined, now: Date): ListenerStatus[] {
  return desired.map((l) => {
    const before = current?.find((c) => c.name === l.name)?.conditions;
    const owned = [...new Set([...l.conditions.map((c) => c.type), ...(before ?? []).map((c) => c.type)])];
    return { name: l.name, supportedKinds: l.supportedKinds, attachedRoutes: l.attachedRoutes, conditions: mergeConditions(l.conditions, before, owned, generation, now) };
  });
}

export class GatewayStatusWriter {
  readonly #client: Pick<WaypointKubeClient, 'patchGatewayStatus'>;
  readonly #log: Logger;
  readonly #now: () => Date;
  /** Per Gateway: the status we last wrote and the Gateway's resourceVersion when we decided. */
  readonly #written = new Map<string, { json: string; seenVersion: string | undefined }>();

  constructor(client: Pick<WaypointKubeClient, 'patchGatewayStatus'>, log: Logger, now: () => Date) {
    this.#client = client;
    this.#log = log;
    this.#now = now;
  }

  /** Forgets the Gateways not in `keys` (`<ns>/<name>`). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.#written.keys()) if (!keys.has(key)) this.#written.delete(key);
  }

  /** Returns false when the write failed and deserves a retry. */
  async write(gateway: KubeObjectLike, desired: GatewayStatusDesired): Promise<boolean> {
    const namespace = gateway.metadata.namespace ?? 'default';
    const name = gateway.metadata.name ?? '';
    const key = `${namespace}/${name}`;
    const current = (gateway.status ?? {}) as GatewayStatusShape;
    const now = this.#now();
    const generation = gateway.metadata.generation;
    const conditions = mergeConditions(desired.conditions, current.conditions, desired.owned, generation, now);
    const listeners = desired.listeners ? nextListeners(desired.listeners, current.listeners, generation, now) : undefined;
    if (sameConditions(current.conditions, conditions) && sameAddresses(current.addresses, desired.addresses) && (!listeners || listenerKey(current.listeners) === listenerKey(listeners))) {
      this.#written.delete(key);
      return true;
    }
    const json = JSON.stringify([desired.conditions, desired.addresses, desired.listeners ?? null, generation]);
    const written = this.#written.get(key);
    if (written && written.json === json && written.seenVersion === gateway.metadata.resourceVersion) return true; // the cache has not caught up yet
    try {
      await this.#client.patchGatewayStatus(namespace, name, { conditions, addresses: desired.addresses, ...(listeners ? { listeners } : {}) });
      this.#written.set(key, { json, seenVersion: gateway.metadata.resourceVersion });
      this.#log.debug({ gateway: key, conditions: conditions.map((c) => `${c.type}=${c.status}/${c.reason}`) }, 'Gateway status written');
      return true;
    } catch (err) {
      if (statusCodeOf(err) === 404) return true; // the Gateway is gone
      this.#log.warn({ gateway: key, status: statusCodeOf(err), err: apiErrorMessage(err) }, 'writing the Gateway status failed; retrying');
      return false;
    }
  }
}
