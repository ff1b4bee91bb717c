/**
 * The ingress GatewayClasses (`amesh`, `istio`: INGRESS_GATEWAY_CLASSES), as Istio keeps its own:
 * each is created when absent (spec.controllerName amesh.io/gateway-controller, server-side
 * applied) and gets `Accepted=True` in its status. A class of that name that already exists — a
 * user's, or one made for Istio — is never modified beyond our `Accepted` condition: amesh serves
 * Gateways of these class names whatever the class says, and the condition says so.
 *
 * Invariants:
 * - Nothing happens before the GatewayClass cache has synced (an empty cache is not "absent").
 * - A class is created at most once per absence seen (a failed create is retried on the next
 *   change or pass); its status is merge-patched only when our condition differs (times aside).
 * - Classes are never deleted by amesh (Gateways may outlive the controller).
 */
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { Informer, RESOURCES, statusCodeOf, type InformerObject } from '../kube/informer.js';
import { INGRESS_CONTROLLER_NAME, INGRESS_GATEWAY_CLASSES } from '../translate/ingress-model.js';
import { mergeConditions, sameConditions, type Condition, type ConditionSpec } from '../waypoint/conditions.js';
import { apiErrorMessage, kubeWaypointClient, type WaypointKubeClient } from '../waypoint/kube-client.js';
import { GATEWAY_API_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../waypoint/render.js';
import { SerialReconciler } from '../waypoint/serial-reconciler.js';

export interface GatewayClassObject extends InformerObject {
  metadata?: { name?: string; generation?: number; resourceVersion?: string };
  spec?: { controllerName?: string };
  status?: { conditions?: Condition[] };
}

/** The class we create when it is missing. */
export function gatewayClassManifest(name: string): KubernetesObject {
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: 'GatewayClass',
    metadata: { name, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    spec: { controllerName: INGRESS_CONTROLLER_NAME, description: 'amesh ingress gateways (Deployment + LoadBalancer Service per Gateway)' },
  } as KubernetesObject;
}

/** Our condition on an ingress class. */
export function gatewayClassAccepted(cls: GatewayClassObject): ConditionSpec {
  const controller = cls.spec?.controllerName;
  const note = controller && controller !== INGRESS_CONTROLLER_NAME ? ` (its controllerName ${controller} is not amesh's; amesh serves the class by name)` : '';
  return { type: 'Accepted', status: 'True', reason: 'Accepted', message: `amesh deploys an ingress gateway for each Gateway of class ${cls.metadata?.name ?? ''}${note}` };
}

/** The status conditions to write, or undefined when the class already carries ours. */
export function nextGatewayClassConditions(cls: GatewayClassObject, now: Date): Condition[] | undefined {
  const current = cls.status?.conditions;
  const next = mergeConditions([gatewayClassAccepted(cls)], current, ['Accepted'], cls.metadata?.generation, now);
  return sameConditions(current, next) ? undefined : next;
}

export type GatewayClassStatusPatcher = (name: string, status: { conditions: Condition[] }) => Promise<void>;

export interface GatewayClassesOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  client?: Pick<WaypointKubeClient, 'apply'>;
  patchStatus?: GatewayClassStatusPatcher;
  now?: () => Date;
  informer?: { stallWindowMs?: number };
  /** Create missing classes (default true). */
  create?: boolean;
}

export class GatewayClasses {
  readonly #informer: Informer<GatewayClassObject>;
  readonly #client: Pick<WaypointKubeClient, 'apply'>;
  readonly #patch: GatewayClassStatusPatcher;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #create: boolean;
  readonly #loop: SerialReconciler;
  /** Per class: the resourceVersion we last patched the status at (the cache may lag our write). */
  readonly #written = new Map<string, string | undefined>();
  #off: (() => void) | undefined;

  constructor(opts: GatewayClassesOptions) {
    this.#informer = new Informer<GatewayClassObject>({ kubeConfig: opts.kubeConfig, resource: RESOURCES.gatewayClasses, log: opts.log, ...opts.informer });
    this.#client = opts.client ?? kubeWaypointClient(opts.kubeConfig);
    const custom = opts.patchStatus ? undefined : opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#patch =
      opts.patchStatus ??
      (async (name, status) => {
        await custom?.patchClusterCustomObjectStatus({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gatewayclasses', name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      });
    this.#log = opts.log.child({ component: 'gateway-classes' });
    this.#now = opts.now ?? (() => new Date());
    this.#create = opts.create ?? true;
    this.#loop = new SerialReconciler(() => this.#pass());
  }

  async start(): Promise<void> {
    this.#off = this.#informer.onChange(() => this.#loop.schedule());
    await this.#informer.start();
    this.#loop.schedule();
  }

  async stop(): Promise<void> {
    this.#off?.();
    await this.#loop.stop();
    await this.#informer.stop();
  }

  idle(): Promise<void> {
    return this.#loop.idle();
  }

  async #pass(): Promise<boolean> {
    if (!this.#informer.synced()) return true; // start() schedules again; so does the first list's events
    let ok = true;
    for (const name of INGRESS_GATEWAY_CLASSES) {
      if (this.#loop.stopped) return true;
      const cls = this.#informer.get(name);
      try {
        if (!cls) {
          if (this.#create) {
            await this.#client.apply(gatewayClassManifest(name));
            this.#log.info({ gatewayClass: name }, 'GatewayClass created');
          }
          continue;
        }
        const next = nextGatewayClassConditions(cls, this.#now());
        if (!next) {
          this.#written.delete(name);
          continue;
        }
        if (this.#written.has(name) && this.#written.get(name) === cls.metadata?.resourceVersion) continue; // the cache has not caught up yet
        await this.#patch(name, { conditions: next });
        this.#written.set(name, cls.metadata?.resourceVersion);
      } catch (err) {
        if (statusCodeOf(err) === 404) continue;
        ok = false;
        this.#log.warn({ gatewayClass: name, status: statusCodeOf(err), err: apiErrorMessage(err) }, 'reconciling the GatewayClass failed; retrying');
      }
    }
    return ok;
  }
}
