/**
 * Status conditions on Telemetry objects (telemetry.istio.io): `Accepted` (where it applies, or
 * why nowhere) and `Warning` (every ignored field and a bad filter expression), as computed by
 * translate/telemetry.ts — the same condition rules as policy-status.ts (others' conditions kept,
 * lastTransitionTime only on a status change, a patch only when something differs, 404/405 logged
 * once and skipped: status never stops the mesh).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { RESOURCES, statusCodeOf } from '../kube/informer.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import { LatestWorkQueue } from './latest-work-queue.js';
import { conditionsEqual, kubeStatusPatcher, nextConditions, type Condition, type ConditionSpec, type StatusPatcher } from './policy-status.js';

export interface TelemetryStatusWriterOptions {
  patch?: StatusPatcher;
  kubeConfig?: KubeConfig;
  log: Logger;
  now?: () => Date;
}

interface Work {
  object: KubeObjectLike;
  desired: ConditionSpec[];
}

export class TelemetryStatusWriter {
  readonly #patch: StatusPatcher;
  readonly #log: Logger;
  readonly #now: () => Date;
  #unsupportedLogged = false;
  readonly #queue = new LatestWorkQueue<Work>((item) => this.#write(item));

  constructor(opts: TelemetryStatusWriterOptions) {
    if (opts.patch) this.#patch = opts.patch;
    else if (opts.kubeConfig) this.#patch = kubeStatusPatcher(opts.kubeConfig);
    else throw new TypeError('TelemetryStatusWriter needs patch or kubeConfig');
    this.#log = opts.log.child({ component: 'telemetry-status' });
    this.#now = opts.now ?? (() => new Date());
  }

  /** `status`: our conditions by Telemetry `namespace/name` (objects without an entry are left alone). */
  reconcile(telemetries: readonly KubeObjectLike[], status: ReadonlyMap<string, ConditionSpec[]>): void {
    if (this.#queue.stopped) return;
    const work: Work[] = [];
    for (const object of telemetries) {
      const desired = status.get(`${object.metadata.namespace ?? 'default'}/${object.metadata.name ?? ''}`);
      if (desired) work.push({ object, desired });
    }
    this.#queue.replace(work);
  }

  idle(): Promise<void> {
    return this.#queue.idle();
  }

  stop(): void {
    this.#queue.stop();
  }

  async #write({ object, desired }: Work): Promise<void> {
    const current = (object.status as { conditions?: Condition[] } | null | undefined)?.conditions;
    const next = nextConditions(desired, current, object.metadata.generation, this.#now());
    if (conditionsEqual(current, next)) return;
    const namespace = object.metadata.namespace ?? '';
    const name = object.metadata.name ?? '';
    try {
      await this.#patch(RESOURCES.telemetries, namespace, name, { conditions: next });
      this.#log.debug({ telemetry: `${namespace}/${name}`, conditions: next.map((c) => `${c.type}=${c.status}`) }, 'Telemetry status written');
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 404 || code === 405) {
        if (!this.#unsupportedLogged) this.#log.warn({ telemetry: `${namespace}/${name}`, status: code }, 'cannot write Telemetry status (object gone, or no status subresource); continuing without it');
        this.#unsupportedLogged = true;
        return;
      }
      this.#log.warn({ telemetry: `${namespace}/${name}`, status: code, err: err instanceof Error ? err.message : String(err) }, 'writing Telemetry status failed; retried on the next change');
    }
  }
}
