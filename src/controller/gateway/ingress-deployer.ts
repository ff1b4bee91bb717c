/**
 * Ingress gateway lifecycle: every IngressDeployment the translator asks for (IngressResult)
 * becomes a ServiceAccount, Deployment and LoadBalancer Service (ingress-render.ts over
 * waypoint/gateway.yaml), server-side applied with field manager `amesh-controller`; Gateway API
 * ingress Gateways get `Accepted`, `Programmed`, `addresses` and `listeners` (ingress-status.ts).
 *
 * Invariants:
 * - Objects are applied only when their rendered hash changed, and never taken over when they are
 *   not ours (managed-objects.ts): a Gateway API deployment's objects must be owned by its
 *   Gateway; the default ingress gateway's must be unowned amesh ingress objects named
 *   `amesh-ingressgateway`.
 * - Gateway API deployments are never deleted here: their controller ownerReference to the
 *   Gateway hands them to the API server's garbage collector. The default ingress gateway has no
 *   owner: its objects are deleted once the translator no longer asks for it (no Istio Gateway
 *   selects it any more) — only after the managed-object caches have synced, and only objects
 *   that carry its name, our labels and no owner.
 * - Work is serial and coalesced (serial-reconciler.ts); failures are retried with backoff.
 *   Gateway status is written only when it differs (gateway-status-writer.ts).
 * - A Gateway being deleted is left alone (garbage collection takes the rest).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import type { KubeObjectLike, MeshView } from '../mesh/compute-mesh-resources.js';
import type { IngressDeployment, IngressResult } from '../translate/ingress-model.js';
import type { DeploymentLike, PodLike } from '../waypoint/gateway-status.js';
import { GatewayStatusWriter } from '../waypoint/gateway-status-writer.js';
import { apiErrorMessage, type WaypointKubeClient } from '../waypoint/kube-client.js';
import { ManagedObjects, ownedBy, type ManagedKind, type ManagedMeta, type ManagedObject } from '../waypoint/managed-objects.js';
import { GATEWAY_NAME_LABEL, type RenderOptions } from '../waypoint/render.js';
import { SerialReconciler } from '../waypoint/serial-reconciler.js';
import { gatewayNameOf, isDefaultIngressObject, renderIngress, reservedPortsIn } from './ingress-render.js';
import { desiredIngressStatus, INGRESS_CONDITION_TYPES, type LoadBalancerServiceLike } from './ingress-status.js';

export interface IngressDeployerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  trustDomain: string;
  /** host:port of the mesh CA and xDS server the gateways use (default amesh-controller.amesh-system.svc:15012). */
  caAddress?: string;
  image?: string;
  logLevel?: string;
  /** Replaces the API client (tests). */
  client?: WaypointKubeClient;
  now?: () => Date;
  informer?: { stallWindowMs?: number };
  /** The managed-object caches, when shared with the waypoint deployer (started and stopped by their owner). */
  objects?: ManagedObjects;
}

/** Delete order: nothing new is scheduled once the Deployment is gone; the ServiceAccount last. */
const DELETE_ORDER: readonly ManagedKind[] = ['Deployment', 'Service', 'ServiceAccount'];

export class IngressDeployer {
  readonly #objects: ManagedObjects;
  readonly #ownsObjects: boolean;
  readonly #log: Logger;
  readonly #render: RenderOptions;
  readonly #status: GatewayStatusWriter;
  readonly #loop: SerialReconciler;
  readonly #unsubscribe: Array<() => void> = [];
  #state: { view: MeshView; ingress: IngressResult } | undefined;

  constructor(opts: IngressDeployerOptions) {
    this.#ownsObjects = !opts.objects;
    this.#objects = opts.objects ?? new ManagedObjects({ kubeConfig: opts.kubeConfig, log: opts.log, ...(opts.client ? { client: opts.client } : {}), ...(opts.informer ? { informer: opts.informer } : {}) });
    this.#log = opts.log.child({ component: 'ingress-deployer' });
    this.#render = {
      trustDomain: opts.trustDomain,
      ...(opts.caAddress ? { caAddress: opts.caAddress } : {}),
      ...(opts.image ? { image: opts.image } : {}),
      ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    };
    this.#status = new GatewayStatusWriter(this.#objects.client, this.#log, opts.now ?? (() => new Date()));
    this.#loop = new SerialReconciler(() => this.#pass());
  }

  /** Starts the managed-object caches (unless shared); a change to them (replicas, LB address) re-evaluates the last state. */
  async start(): Promise<void> {
    this.#unsubscribe.push(this.#objects.onChange(() => this.#schedule()));
    if (this.#ownsObjects) await this.#objects.start();
  }

  async stop(): Promise<void> {
    for (const off of this.#unsubscribe.splice(0)) off();
    await this.#loop.stop();
    if (this.#ownsObjects) await this.#objects.stop();
  }

  synced(): boolean {
    return this.#objects.synced();
  }

  /** Brings every ingress deployment and Gateway status in line with `ingress` (asynchronously; see `idle`). */
  reconcile(view: MeshView, ingress: IngressResult): void {
    if (this.#loop.stopped) return;
    this.#state = { view, ingress };
    this.#schedule();
  }

  idle(): Promise<void> {
    return this.#loop.idle();
  }

  #schedule(): void {
    if (this.#state) this.#loop.schedule();
  }

  async #pass(): Promise<boolean> {
    const state = this.#state;
    if (!state) return true;
    const { view, ingress } = state;
    let ok = true;
    const problems = new Map<string, string>();
    const gateways = new Map((view.gateways ?? []).map((g) => [`${g.metadata.namespace ?? 'default'}/${g.metadata.name ?? ''}`, g]));
    for (const [key, deployment] of [...ingress.deployments].sort(([a], [b]) => a.localeCompare(b))) {
      if (this.#loop.stopped) return true;
      try {
        const outcome = await this.#syncDeployment(deployment, gateways);
        if (outcome) {
          problems.set(key, outcome.problem);
          ok = ok && !outcome.retry;
        }
      } catch (err) {
        ok = false;
        problems.set(key, `rendering or applying failed: ${apiErrorMessage(err)}`);
        this.#log.warn({ deployment: key, err: apiErrorMessage(err) }, 'reconciling the ingress gateway failed; retrying');
      }
    }
    if (!(await this.#removeStaleDefault(ingress))) ok = false;
    if (!(await this.#writeStatuses(view, ingress, gateways, problems))) ok = false;
    return ok;
  }

  /** Applies the deployment's objects; the first problem, if any. */
  async #syncDeployment(deployment: IngressDeployment, gateways: ReadonlyMap<string, KubeObjectLike>): Promise<{ problem: string; retry: boolean } | undefined> {
    const { source } = deployment;
    let ours: (live: ManagedObject) => boolean;
    let owner: string;
    if (source.kind === 'Gateway') {
      const gateway = gateways.get(`${source.namespace}/${source.name}`);
      if ((gateway?.metadata as ManagedMeta | undefined)?.deletionTimestamp) return undefined; // going away; garbage collection takes the rest
      ours = (live) => ownedBy(live, source.uid);
      owner = `Gateway ${source.namespace}/${source.name}`;
    } else {
      ours = isDefaultIngressObject;
      owner = 'the amesh controller (the default ingress gateway)';
    }
    for (const object of renderIngress(deployment, this.#render).objects) {
      const outcome = await this.#objects.ensure(object, ours, owner);
      if (outcome) return outcome;
    }
    return undefined;
  }

  /** Deletes the default ingress gateway's objects when the translator no longer asks for them. */
  async #removeStaleDefault(ingress: IngressResult): Promise<boolean> {
    if (!this.#objects.synced()) return true; // an empty cache must not look like "nothing to keep"
    let ok = true;
    for (const kind of DELETE_ORDER) {
      for (const live of this.#objects.list(kind)) {
        const namespace = live.metadata?.namespace ?? 'default';
        const name = live.metadata?.name ?? '';
        if (!isDefaultIngressObject(live) || live.metadata?.deletionTimestamp || ingress.deployments.has(`${namespace}/${name}`)) continue;
        if (!(await this.#objects.remove(kind, namespace, name))) ok = false;
      }
    }
    return ok;
  }

  async #writeStatuses(view: MeshView, ingress: IngressResult, gateways: ReadonlyMap<string, KubeObjectLike>, problems: ReadonlyMap<string, string>): Promise<boolean> {
    const byGateway = new Map<string, IngressDeployment>();
    for (const d of ingress.deployments.values()) if (d.source.kind === 'Gateway') byGateway.set(`${d.source.namespace}/${d.source.name}`, d);
    let ok = true;
    const seen = new Set<string>();
    for (const [key, translated] of ingress.gateways) {
      const gateway = gateways.get(key);
      if (!gateway || (gateway.metadata as ManagedMeta).deletionTimestamp) continue;
      seen.add(key);
      const d = byGateway.get(key);
      const uid = gateway.metadata.uid ?? '';
      const deployment = d ? this.#objects.get('Deployment', d.namespace, d.name) : undefined;
      const service = d ? this.#objects.get('Service', d.namespace, d.name) : undefined;
      const dKey = d ? `${d.namespace}/${d.name}` : undefined;
      const problem = dKey ? problems.get(dKey) : undefined;
      const pods = d ? (view.pods.filter((p) => p.metadata.namespace === d.namespace && p.metadata.labels?.[GATEWAY_NAME_LABEL] === gatewayNameOf(d)) as unknown as PodLike[]) : [];
      const reserved = d ? reservedPortsIn(d) : [];
      const desired = desiredIngressStatus({
        translated,
        ...(dKey ? { deploymentRef: dKey } : {}),
        ...(problem ? { problem } : {}),
        ...(deployment && ownedBy(deployment, uid) ? { deployment: deployment as DeploymentLike } : {}),
        ...(service && ownedBy(service, uid) ? { service: service as LoadBalancerServiceLike } : {}),
        pods,
        ...(reserved.length ? { reservedPorts: reserved } : {}),
      });
      const owned = [...new Set([...INGRESS_CONDITION_TYPES, ...desired.conditions.map((c) => c.type)])];
      if (!(await this.#status.write(gateway, { conditions: desired.conditions, owned, addresses: desired.addresses, listeners: desired.listeners }))) ok = false;
    }
    this.#status.retain(seen);
    return ok;
  }
}
