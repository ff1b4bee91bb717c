/**
 * Waypoint lifecycle: every waypoint Gateway (class istio-waypoint or amesh-waypoint) becomes a
 * ServiceAccount, Deployment and Service (render.ts), server-side applied with field manager
 * `amesh-controller`, and gets its `Accepted` / `Programmed` conditions and `addresses`
 * (gateway-status.ts). Gateways of other classes are ignored.
 *
 * Invariants:
 * - An object is applied only when it changed: the live object (the Deployment and
 *   ServiceAccount informers, both selected by `app.kubernetes.io/managed-by=amesh`; Services
 *   from the mesh view) already carrying the rendered hash and our ownerReference is left alone.
 *   An object missing from the caches is read from the API first, so a cache that lags our own
 *   write costs a GET, not a write.
 * - An object of the waypoint's name that is not owned by the Gateway (a user's Service named
 *   `waypoint`) is never taken over: taking it would also hand it to garbage collection with the
 *   Gateway. The Gateway says so in Programmed=False/NoResources.
 * - Nothing is deleted here: the objects carry a controller ownerReference to the Gateway, and the
 *   API server's garbage collector removes them with it.
 * - Status is merge-patched through the status subresource only when it differs from the
 *   Gateway's (ignoring times), and not again while the cache still shows the Gateway as it was
 *   before our write.
 * - Work is serial and coalesced: a reconcile or informer event while a pass runs marks the state
 *   dirty, and one more pass runs over the newest view. A failed write is retried with backoff
 *   (1 s doubling to 30 s) as a new pass.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { Informer, RESOURCES, statusCodeOf, type InformerObject } from '../kube/informer.js';
import type { KubeObjectLike, MeshView } from '../mesh/compute-mesh-resources.js';
import { isWaypointGateway } from '../translate/waypoint-binding.js';
import { waypointAcceptance } from './acceptance.js';
import { mergeConditions, sameConditions, type Condition } from './conditions.js';
import { desiredGatewayStatus, GATEWAY_CONDITION_TYPES, type DeploymentLike, type GatewayAddressStatus, type PodLike } from './gateway-status.js';
import { apiErrorMessage, kubeWaypointClient, type WaypointKubeClient } from './kube-client.js';
import { GATEWAY_NAME_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RENDERED_HASH_ANNOTATION, renderWaypoint, type RenderableGateway, type RenderedObject, type RenderOptions } from './render.js';

const RETRY_INITIAL_MS = 1000;
const RETRY_MAX_MS = 30_000;

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
}

interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ uid?: string; kind?: string; name?: string; controller?: boolean }>;
}

type Cached = InformerObject & { metadata?: Meta };

interface GatewayStatusShape {
  conditions?: Condition[];
  addresses?: GatewayAddressStatus[];
}

function ownedBy(object: { metadata?: Meta }, uid: string): boolean {
  return (object.metadata?.ownerReferences ?? []).some((ref) => ref.uid === uid);
}

function sameAddresses(a: readonly GatewayAddressStatus[] | undefined, b: readonly GatewayAddressStatus[]): boolean {
  return JSON.stringify((a ?? []).map((x) => [x.type, x.value])) === JSON.stringify(b.map((x) => [x.type, x.value]));
}

export class WaypointDeployer {
  readonly #client: WaypointKubeClient;
  readonly #log: Logger;
  readonly #render: RenderOptions;
  readonly #clusterDomain: string;
  readonly #now: () => Date;
  readonly #deployments: Informer<Cached>;
  readonly #serviceAccounts: Informer<Cached>;
  readonly #unsubscribe: Array<() => void> = [];
  /** Per Gateway: the status we last wrote and the Gateway's resourceVersion when we decided. */
  readonly #statusWritten = new Map<string, { json: string; seenVersion: string | undefined }>();
  #view: MeshView | undefined;
  #dirty = false;
  #running: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = RETRY_INITIAL_MS;
  #stopped = false;

  constructor(opts: WaypointDeployerOptions) {
    this.#client = opts.client ?? kubeWaypointClient(opts.kubeConfig);
    this.#log = opts.log.child({ component: 'waypoint-deployer' });
    this.#render = {
      trustDomain: opts.trustDomain,
      ...(opts.caAddress ? { caAddress: opts.caAddress } : {}),
      ...(opts.image ? { image: opts.image } : {}),
      ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    };
    this.#clusterDomain = opts.clusterDomain ?? 'cluster.local';
    this.#now = opts.now ?? (() => new Date());
    const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;
    this.#deployments = new Informer<Cached>({ kubeConfig: opts.kubeConfig, resource: RESOURCES.deployments, log: opts.log, labelSelector, ...opts.informer });
    this.#serviceAccounts = new Informer<Cached>({ kubeConfig: opts.kubeConfig, resource: RESOURCES.serviceAccounts, log: opts.log, labelSelector, ...opts.informer });
  }

  /** Starts the Deployment and ServiceAccount informers; a change to either re-evaluates the last view. */
  async start(): Promise<void> {
    for (const informer of [this.#deployments, this.#serviceAccounts]) this.#unsubscribe.push(informer.onChange(() => this.#schedule()));
    await Promise.all([this.#deployments.start(), this.#serviceAccounts.start()]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    for (const off of this.#unsubscribe.splice(0)) off();
    await Promise.all([this.#deployments.stop(), this.#serviceAccounts.stop()]);
    await this.idle();
  }

  synced(): boolean {
    return this.#deployments.synced() && this.#serviceAccounts.synced();
  }

  /** Brings every waypoint Gateway of `view` up to date (asynchronously; see `idle`). */
  reconcile(view: MeshView): void {
    if (this.#stopped) return;
    this.#view = view;
    this.#schedule();
  }

  /** Resolves when no pass is running or pending (a scheduled retry does not count). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  #schedule(): void {
    if (this.#stopped || !this.#view) return;
    this.#dirty = true;
    this.#running ??= this.#drain().finally(() => (this.#running = undefined));
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#stopped) return;
    const delay = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#schedule();
    }, delay);
    this.#retryTimer.unref();
  }

  async #drain(): Promise<void> {
    while (this.#dirty && !this.#stopped) {
      this.#dirty = false;
      const view = this.#view;
      if (!view) return;
      let failed = false;
      const seen = new Set<string>();
      for (const object of view.gateways ?? []) {
        if (this.#stopped) return;
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
      for (const key of this.#statusWritten.keys()) if (!seen.has(key)) this.#statusWritten.delete(key);
      if (failed) this.#scheduleRetry();
      else this.#retryMs = RETRY_INITIAL_MS;
    }
  }

  /** Returns false when something failed and deserves a retry. */
  async #syncGateway(gateway: RenderableGateway & KubeObjectLike, view: MeshView): Promise<boolean> {
    const namespace = gateway.metadata.namespace ?? 'default';
    const name = gateway.metadata.name ?? '';
    const meta = gateway.metadata as Meta;
    if (meta.deletionTimestamp) return true; // going away; garbage collection takes the rest
    const acceptance = waypointAcceptance(gateway);
    let problem: string | undefined;
    let ok = true;
    if (acceptance.accepted) {
      const rendered = renderWaypoint(gateway, this.#render);
      const uid = meta.uid ?? '';
      for (const object of rendered.objects) {
        const outcome = await this.#ensure(object, uid, view);
        if (outcome) {
          problem = outcome.problem;
          ok = ok && !outcome.retry;
          break;
        }
      }
    }
    const deployment = this.#deployments.get(`${namespace}/${name}`) as (DeploymentLike & Cached) | undefined;
    const service = view.services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
    const pods = view.pods.filter((p) => p.metadata.namespace === namespace && p.metadata.labels?.[GATEWAY_NAME_LABEL] === name) as unknown as PodLike[];
    const ownedDeployment = deployment && ownedBy(deployment, meta.uid ?? '') ? deployment : undefined;
    const ownedService = service && ownedBy(service as { metadata?: Meta }, meta.uid ?? '') ? service : undefined;
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
    return (await this.#writeStatus(gateway, desired.conditions, desired.addresses)) && ok;
  }

  /** Applies `object` unless already applied; a problem to report on the Gateway, or undefined. */
  async #ensure(object: RenderedObject, gatewayUid: string, view: MeshView): Promise<{ problem: string; retry: boolean } | undefined> {
    const { namespace, name } = object.metadata;
    const ref = `${object.kind} ${namespace}/${name}`;
    const hash = object.metadata.annotations[RENDERED_HASH_ANNOTATION];
    let live: { metadata?: Meta } | undefined =
      object.kind === 'Deployment'
        ? this.#deployments.get(`${namespace}/${name}`)
        : object.kind === 'ServiceAccount'
          ? this.#serviceAccounts.get(`${namespace}/${name}`)
          : (view.services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name) as { metadata?: Meta } | undefined);
    try {
      live ??= (await this.#client.read(object.apiVersion, object.kind, namespace, name)) as { metadata?: Meta } | undefined;
      if (live && !ownedBy(live, gatewayUid)) {
        return { problem: `${ref} already exists and is not owned by this Gateway; delete or rename it (amesh does not take over objects it did not create)`, retry: false };
      }
      if (live?.metadata?.annotations?.[RENDERED_HASH_ANNOTATION] === hash) return undefined;
      await this.#client.apply(object as unknown as KubernetesObject);
      this.#log.info({ object: ref, created: !live }, live ? 'waypoint object updated' : 'waypoint object created');
      return undefined;
    } catch (err) {
      const status = statusCodeOf(err);
      const message = apiErrorMessage(err);
      this.#log.warn({ object: ref, status, err: message }, 'applying a waypoint object failed');
      // 4xx other than conflicts and throttling will not heal by retrying the same object.
      const retry = status === undefined || status === 409 || status === 429 || status >= 500;
      return { problem: `applying ${ref} failed: ${message}`, retry };
    }
  }

  async #writeStatus(gateway: RenderableGateway & KubeObjectLike, desiredConditions: ReturnType<typeof desiredGatewayStatus>['conditions'], addresses: GatewayAddressStatus[]): Promise<boolean> {
    const namespace = gateway.metadata.namespace ?? 'default';
    const name = gateway.metadata.name ?? '';
    const key = `${namespace}/${name}`;
    const current = (gateway.status ?? {}) as GatewayStatusShape;
    const conditions = mergeConditions(desiredConditions, current.conditions, GATEWAY_CONDITION_TYPES, gateway.metadata.generation, this.#now());
    if (sameConditions(current.conditions, conditions) && sameAddresses(current.addresses, addresses)) {
      this.#statusWritten.delete(key);
      return true;
    }
    const json = JSON.stringify([desiredConditions, addresses, gateway.metadata.generation]);
    const written = this.#statusWritten.get(key);
    if (written && written.json === json && written.seenVersion === gateway.metadata.resourceVersion) return true; // the cache has not caught up yet
    try {
      await this.#client.patchGatewayStatus(namespace, name, { conditions, addresses });
      this.#statusWritten.set(key, { json, seenVersion: gateway.metadata.resourceVersion });
      this.#log.debug({ gateway: key, conditions: conditions.map((c) => `${c.type}=${c.status}/${c.reason}`) }, 'waypoint status written');
      return true;
    } catch (err) {
      if (statusCodeOf(err) === 404) return true; // the Gateway is gone
      this.#log.warn({ gateway: key, status: statusCodeOf(err), err: apiErrorMessage(err) }, 'writing the waypoint Gateway status failed; retrying');
      return false;
    }
  }
}
