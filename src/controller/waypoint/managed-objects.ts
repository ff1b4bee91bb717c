/**
 * The objects amesh deploys for Gateways (waypoints and ingress gateways): caches of the
 * ServiceAccounts, Deployments and Services labelled `app.kubernetes.io/managed-by=amesh`, and
 * the apply / delete calls over them. Shared by the waypoint and ingress deployers (one set of
 * watches in the controller).
 *
 * Invariants:
 * - `ensure` applies (server-side, field manager amesh-controller) only when the live object does
 *   not already carry the rendered hash. An object missing from the caches is read from the API
 *   first, so a cache that lags our own write costs a GET, not a write.
 * - An object of that name the caller does not recognise as its own (`ours`) is never taken
 *   over — a user's Service named like a waypoint stays theirs; the caller reports the problem.
 * - `remove` deletes by name; a 404 is success.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { Informer, RESOURCES, statusCodeOf, type InformerObject } from '../kube/informer.js';
import { apiErrorMessage, kubeWaypointClient, type WaypointKubeClient } from './kube-client.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, RENDERED_HASH_ANNOTATION, type RenderedObject } from './render.js';

export type ManagedKind = 'ServiceAccount' | 'Deployment' | 'Service';

export interface ManagedMeta {
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

export type ManagedObject = InformerObject & { metadata?: ManagedMeta; spec?: unknown; status?: unknown };

/** Why an object could not be applied; `retry` when trying again may help. */
export interface EnsureProblem {
  problem: string;
  retry: boolean;
}

export interface ManagedObjectsOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Replaces the API client (tests). */
  client?: WaypointKubeClient;
  /** Passed to the informers (tests shorten the stall window). */
  informer?: { stallWindowMs?: number };
}

const API_VERSION: Record<ManagedKind, string> = { ServiceAccount: 'v1', Deployment: 'apps/v1', Service: 'v1' };

export function ownedBy(object: { metadata?: ManagedMeta }, uid: string): boolean {
  return (object.metadata?.ownerReferences ?? []).some((ref) => ref.uid === uid);
}

export class ManagedObjects {
  readonly client: WaypointKubeClient;
  readonly #log: Logger;
  readonly #informers: Record<ManagedKind, Informer<ManagedObject>>;
  #started: Promise<void> | undefined;

  constructor(opts: ManagedObjectsOptions) {
    this.client = opts.client ?? kubeWaypointClient(opts.kubeConfig);
    this.#log = opts.log.child({ component: 'managed-objects' });
    const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;
    const make = (resource: (typeof RESOURCES)[keyof typeof RESOURCES]): Informer<ManagedObject> => new Informer<ManagedObject>({ kubeConfig: opts.kubeConfig, resource, log: opts.log, labelSelector, ...opts.informer });
    this.#informers = { ServiceAccount: make(RESOURCES.serviceAccounts), Deployment: make(RESOURCES.deployments), Service: make(RESOURCES.services) };
  }

  /** Starts the informers once, however many deployers share them. */
  start(): Promise<void> {
    this.#started ??= Promise.all(Object.values(this.#informers).map((i) => i.start())).then(() => undefined);
    return this.#started;
  }

  async stop(): Promise<void> {
    await Promise.all(Object.values(this.#informers).map((i) => i.stop()));
  }

  synced(): boolean {
    return Object.values(this.#informers).every((i) => i.synced());
  }

  /** Called after any change to a managed object (a Deployment's available replicas, a Service's load-balancer address). */
  onChange(listener: () => void): () => void {
    const offs = Object.values(this.#informers).map((i) => i.onChange(() => listener()));
    return () => offs.forEach((off) => off());
  }

  get(kind: ManagedKind, namespace: string, name: string): ManagedObject | undefined {
    return this.#informers[kind].get(`${namespace}/${name}`);
  }

  list(kind: ManagedKind): ManagedObject[] {
    return this.#informers[kind].list();
  }

  /**
   * Applies `object` unless already applied. `ours` recognises a live object as the caller's
   * (else `notOurs` says whose it should be, in the problem). Returns the problem, or undefined.
   */
  async ensure(object: RenderedObject, ours: (live: ManagedObject) => boolean, notOurs: string): Promise<EnsureProblem | undefined> {
    const { namespace, name } = object.metadata;
    const ref = `${object.kind} ${namespace}/${name}`;
    const hash = object.metadata.annotations[RENDERED_HASH_ANNOTATION];
    let live: ManagedObject | undefined = this.#informers[object.kind as ManagedKind]?.get(`${namespace}/${name}`);
    try {
      live ??= (await this.client.read(object.apiVersion, object.kind, namespace, name)) as ManagedObject | undefined;
      if (live && !ours(live)) {
        return { problem: `${ref} already exists and is not owned by ${notOurs}; delete or rename it (amesh does not take over objects it did not create)`, retry: false };
      }
      if (live?.metadata?.annotations?.[RENDERED_HASH_ANNOTATION] === hash) return undefined;
      await this.client.apply(object as unknown as KubernetesObject);
      this.#log.info({ object: ref, created: !live }, live ? 'object updated' : 'object created');
      return undefined;
    } catch (err) {
      const status = statusCodeOf(err);
      const message = apiErrorMessage(err);
      this.#log.warn({ object: ref, status, err: message }, 'applying an object failed');
      // 4xx other than conflicts and throttling will not heal by retrying the same object.
      const retry = status === undefined || status === 409 || status === 429 || status >= 500;
      return { problem: `applying ${ref} failed: ${message}`, retry };
    }
  }

  /** Deletes one object; false (logged) when the API refused. */
  async remove(kind: ManagedKind, namespace: string, name: string): Promise<boolean> {
    try {
      await this.client.remove(API_VERSION[kind], kind, namespace, name);
      this.#log.info({ object: `${kind} ${namespace}/${name}` }, 'object deleted');
      return true;
    } catch (err) {
      if (statusCodeOf(err) === 404) return true;
      this.#log.warn({ object: `${kind} ${namespace}/${name}`, status: statusCodeOf(err), err: apiErrorMessage(err) }, 'deleting an object failed');
      return false;
    }
  }
}
