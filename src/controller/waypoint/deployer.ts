/**
 * Waypoint lifecycle: every waypoint Gateway (class istio-waypoint or amesh-waypoint) becomes a
 * ServiceAccount, Deployment and Service (render.ts), server-side applied with field manager
 * `amesh-controller`, and gets its `Accepted` / `Programmed` conditions and `addresses`
 * (gateway-status.ts). Gateways of other classes are ignored.
 *
 * Invariants:
 * - An object is applied only when it changed (managed-objects.ts: the ServiceAccount,
 *   Deployment and Service caches, selected by `app.kubernetes.io/managed-by=amesh` and shared
 *   with the ingress deployer, or one GET when the cache does not have it yet).
 * - An object of the waypoint's name that is not owned by the Gateway (a user's Service named
 *   `waypoint`) is never taken over: taking it would also hand it to garbage collection with the
 *   Gateway. The Gateway says so in Programmed=False/NoResources.
 * - Nothing is deleted here: the objects carry a controller ownerReference to the Gateway, and the
 *   API server's garbage collector removes them with it.
 * - Status is merge-patched through the status subresource only when it differs from the
 *   Gateway's (ignoring times), and not again while the cache still shows the Gateway as it was
 *   before our write (gateway-status-writer.ts).
 * - Work is serial and coalesced (serial-reconciler.ts): a reconcile or informer event while a
 *   pass runs marks the state dirty, and one more pass runs over the newest view. A failed write
 *   is retried with backoff (1 s doubling to 30 s) as a new pass.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import type { KubeObjectLike, MeshView } from '../mesh/compute-mesh-resources.js';
import { isWaypointGateway } from '../translate/waypoint-binding.js';
import { waypointAcceptance } from './acceptance.js';
import { desiredGatewayStatus, GATEWAY_CONDITION_TYPES, type DeploymentLike, type PodLike, type ServiceLike } from './gateway-status.js';
import { GatewayStatusWriter } from './gateway-status-writer.js';
import { apiErrorMessage, type WaypointKubeClient } from './kube-client.js';
import { ManagedObjects, ownedBy, type ManagedMeta } from './managed-objects.js';
import { GATEWAY_NAME_LABEL, renderWaypoint, type RenderableGateway, type RenderOptions } from './render.js';
import { SerialReconciler } from './serial-reconciler.js';

export interface WaypointDeployerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  trustDomain: string;
  /** host:port of the mesh CA and xDS server the waypoints use (default amesh-controller.amesh-system.svc:15012). */
  caAddress?: string;
  clusterDomain?: string;
  image?: string;
  logLevel?: string;
  /** Replaces the API client (tests). */
  client?: WaypointKubeClient;
  now?: () => Date;
  /** Passed to the informers (tests shorten the stall window). */
  informer?: { stallWindowMs?: number };
  /** The managed-object caches, when shared with the ingress deployer (started and stopped by their owner). */
  objects?: ManagedObjects;
}

export class WaypointDeployer {
  readonly #objects: ManagedObjects;
  readonly #ownsObjects: boolean;
  readonly #log: Logger;
  readonly #render: RenderOptions;
  readonly #clusterDomain: string;
  readonly #status: GatewayStatusWriter;
  readonly #loop: SerialReconciler;
  readonly #unsubscribe: Array<() => void> = [];
  #view: MeshView | undefined;

  constructor(opts: WaypointDeployerOptions) {
    this.#ownsObjects = !opts.objects;
    this.#objects = opts.objects ?? new ManagedObjects({ kubeConfig: opts.kubeConfig, log: opts.log, ...(opts.client ? { client: opts.client } : {}), ...(opts.informer ? { informer: opts.informer } : {}) });
    this.#log = opts.log.child({ component: 'waypoint-deployer' });
    this.#render = {
      trustDomain: opts.trustDomain,
      ...(opts.caAddress ? { caAddress: opts.caAddress } : {}),
      ...(opts.image ? { image: opts.image } : {}),
      ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    };
    this.#clusterDomain = opts.clusterDomain ?? 'cluster.local';
    this.#status = new GatewayStatusWriter(this.#objects.client, this.#log, opts.now ?? (() => new Date()));
    this.#loop = new SerialReconciler(() => this.#pass());
  }

  /** Starts the managed-object caches (unless shared); a change to them re-evaluates the last view. */
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

  /** Brings every waypoint Gateway of `view` up to date (asynchronously; see `idle`). */
  reconcile(view: MeshView): void {
    if (this.#loop.stopped) return;
    this.#view = view;
    this.#schedule();
  }

  /** Resolves when no pass is running or pending (a scheduled retry does not count). */
  idle(): Promise<void> {
    return this.#loop.idle();
  }

  #schedule(): void {
    if (this.#view) this.#loop.schedule();
  }

  async #pass(): Promise<boolean> {
    const view = this.#view;
    if (!view) return true;
    let failed = false;
    const seen = new Set<string>();
    for (const object of view.gateways ?? []) {
      if (this.#loop.stopped) return true;
      const gateway = object as RenderableGateway & KubeObjectLike;
      if (!isWaypointGateway(gateway)) continue;
      const key = `${gateway.metadata.namespace ?? 'default'}/${gateway.metadata.name ?? ''}`;
      seen.add(key);
      try {
        if (!(await this.#syncGateway(gateway, view))) failed = true;
      } catch (err) {
        failed = true;
        this.#log.warn({ gateway: key, err: apiErrorMessage(err) }, 'reconciling the waypoint failed; retrying');
      }
    }
    this.#status.retain(seen);
    return !failed;
  }

  /** Returns false when something failed and deserves a retry. */
  async #syncGateway(gateway: RenderableGateway & KubeObjectLike, view: MeshView): Promise<boolean> {
    const namespace = gateway.metadata.namespace ?? 'default';
    const name = gateway.metadata.name ?? '';
    const meta = gateway.metadata as ManagedMeta;
    if (meta.deletionTimestamp) return true; // going away; garbage collection takes the rest
    const acceptance = waypointAcceptance(gateway);
    const uid = meta.uid ?? '';
    let problem: string | undefined;
    let ok = true;
    if (acceptance.accepted) {
      const rendered = renderWaypoint(gateway, this.#render);
      for (const object of rendered.objects) {
        const outcome = await this.#objects.ensure(object, (live) => ownedBy(live, uid), 'this Gateway');
        if (outcome) {
          problem = outcome.problem;
          ok = ok && !outcome.retry;
          break;
        }
      }
    }
    const deployment = this.#objects.get('Deployment', namespace, name);
    const service = this.#objects.get('Service', namespace, name);
    const pods = view.pods.filter((p) => p.metadata.namespace === namespace && p.metadata.labels?.[GATEWAY_NAME_LABEL] === name) as unknown as PodLike[];
    const ownedDeployment = deployment && ownedBy(deployment, uid) ? (deployment as DeploymentLike) : undefined;
    const ownedService = service && ownedBy(service, uid) ? (service as ServiceLike) : undefined;
    const desired = desiredGatewayStatus({
      name,
      namespace,
      acceptance,
      ...(problem ? { problem } : {}),
      ...(ownedDeployment ? { deployment: ownedDeployment } : {}),
      ...(ownedService ? { service: ownedService } : {}),
      pods,
      clusterDomain: this.#clusterDomain,
    });
    return (await this.#status.write(gateway, { conditions: desired.conditions, owned: GATEWAY_CONDITION_TYPES, addresses: desired.addresses })) && ok;
  }
}
