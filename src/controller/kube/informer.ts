/**
 * A resilient informer over client-node's ListWatch: a typed cache of one resource kind across
 * all namespaces, one `onChange` stream of add/update/delete, and the recovery client-node leaves
 * to its caller.
 *
 * Invariants:
 * - The cache holds exactly what the API server listed plus every watch event since; each change
 *   is reported once (an add or update only when the resourceVersion differs, a delete only for a
 *   cached object). A re-list is diffed against the cache, so objects deleted while we were not
 *   watching are reported deleted.
 * - `synced()` turns true after the first complete list and stays true across restarts (the cache
 *   is kept meanwhile: serving slightly old state beats serving none).
 * - Errors restart the watch with capped exponential backoff (100 ms → 10 s by default), resuming
 *   from the last resourceVersion (ListWatch re-lists by itself on 410 Gone, which is logged).
 *   Each failure is logged with the resource and the reason.
 * - Stall detector: a watch whose connection looks open yet has delivered nothing — no event, no
 *   bookmark (we ask for bookmarks, which kube-apiserver sends about once a minute) — for
 *   `stallWindowMs` is abandoned and replaced by a fresh list + watch. This catches half-open
 *   connections (a NAT or load balancer that dropped state) which TCP alone may never report.
 * - A resource the server does not serve (404 on list: its CRD is not installed) is not fatal: it
 *   is logged once with a hint, treated as empty (and synced), and retried slowly.
 * - Events from an abandoned ListWatch are ignored: each (re)start with a list gets a new
 *   ListWatch and a new generation number, and every callback checks it.
 *
 * Lists are read as raw JSON (not through the generated typed clients) so that listed objects and
 * watched objects have the same shape — the typed clients turn timestamps into Date objects and
 * drop unknown fields, while watch events arrive as plain JSON.
 */
import http from 'node:http';
import https from 'node:https';
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';

/** A resource kind as the API addresses it. */
export interface ResourceKind {
  /** '' for the core group. */
  group: string;
  version: string;
  plural: string;
}

export const RESOURCES = {
  namespaces: { group: '', version: 'v1', plural: 'namespaces' },
  pods: { group: '', version: 'v1', plural: 'pods' },
  services: { group: '', version: 'v1', plural: 'services' },
  serviceAccounts: { group: '', version: 'v1', plural: 'serviceaccounts' },
  nodes: { group: '', version: 'v1', plural: 'nodes' },
  endpointSlices: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' },
  peerAuthentications: { group: 'security.istio.io', version: 'v1', plural: 'peerauthentications' },
  authorizationPolicies: { group: 'security.istio.io', version: 'v1', plural: 'authorizationpolicies' },
  requestAuthentications: { group: 'security.istio.io', version: 'v1', plural: 'requestauthentications' },
  gateways: { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways' },
  httpRoutes: { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes' },
  grpcRoutes: { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'grpcroutes' },
  /** TLSRoute is v1 in recent Gateway API releases and v1alpha2 before: both are watched (mesh-index merges them). */
  tlsRoutes: { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'tlsroutes' },
  tlsRoutesV1alpha2: { group: 'gateway.networking.k8s.io', version: 'v1alpha2', plural: 'tlsroutes' },
  tcpRoutes: { group: 'gateway.networking.k8s.io', version: 'v1alpha2', plural: 'tcproutes' },
  gatewayClasses: { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gatewayclasses' },
  virtualServices: { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices' },
  istioGateways: { group: 'networking.istio.io', version: 'v1', plural: 'gateways' },
  secrets: { group: '', version: 'v1', plural: 'secrets' },
  destinationRules: { group: 'networking.istio.io', version: 'v1', plural: 'destinationrules' },
  deployments: { group: 'apps', version: 'v1', plural: 'deployments' },
  telemetries: { group: 'telemetry.istio.io', version: 'v1', plural: 'telemetries' },
  configMaps: { group: '', version: 'v1', plural: 'configmaps' },
} as const satisfies Record<string, ResourceKind>;

export const DEFAULT_BACKOFF_INITIAL_MS = 100;
export const DEFAULT_BACKOFF_MAX_MS = 10_000;
/** Several bookmark intervals of kube-apiserver (about 1 min), so a healthy quiet watch never trips it. */
export const DEFAULT_STALL_WINDOW_MS = 5 * 60_000;
export const DEFAULT_MISSING_RETRY_MS = 30_000;
const LIST_PAGE_SIZE = 500;
const LIST_MAX_PAGES = 10_000;
const LIST_TIMEOUT_MS = 60_000;

/** The fields the informer itself reads. */
export interface InformerObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface InformerChange<T> {
  type: 'add' | 'update' | 'delete';
  object: T;
  /** The cached object an update or delete replaced. */
  previous?: T;
}

export interface RawList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface InformerOptions<T> {
  kubeConfig: KubeConfig;
  resource: ResourceKind;
  log: Logger;
  labelSelector?: string;
  fieldSelector?: string;
  /** Replaces the HTTP list (tests inject failures here). */
  list?: () => Promise<RawList<T>>;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Abandon a watch silent for this long; 0 disables the detector. */
  stallWindowMs?: number;
  /** Retry period while the resource is not served (CRD missing). */
  missingRetryMs?: number;
}

export interface InformerStats {
  /** Lists attempted (successful or not). */
  lists: number;
  /** Restarts after an error. */
  restarts: number;
  /** Watches abandoned by the stall detector. */
  stalls: number;
  /** Watch lines received (events and bookmarks). */
  watchEvents: number;
  /** Watches answered 410 Gone (re-listed by ListWatch). */
  expired: number;
}

export function resourcePath(resource: ResourceKind): string {
  return resource.group ? `/apis/${resource.group}/${resource.version}/${resource.plural}` : `/api/${resource.version}/${resource.plural}`;
}

export function resourceName(resource: ResourceKind): string {
  return resource.group ? `${resource.plural}.${resource.group}/${resource.version}` : `${resource.plural}/${resource.version}`;
}

/** `namespace/name`, or `name` for a cluster-scoped object. */
export function objectKey(object: InformerObject): string {
  const ns = object.metadata?.namespace;
  return ns ? `${ns}/${object.metadata?.name ?? ''}` : (object.metadata?.name ?? '');
}

export class ApiRequestError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }
}

/** The HTTP status of a client-node or list error, when it has one. */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

async function getJson(kubeConfig: KubeConfig, url: URL): Promise<unknown> {
  const options: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  await kubeConfig.applyToHTTPSOptions(options);
  const transport = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const req = transport.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          let message = text.slice(0, 300);
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? message;
          } catch {
            // not a Status object: keep the text
          }
          reject(new ApiRequestError(`GET ${url.pathname}: ${status} ${message}`, status));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (err) {
          reject(new Error(`GET ${url.pathname}: invalid JSON`, { cause: err }));
        }
      });
    });
    req.setTimeout(LIST_TIMEOUT_MS, () => req.destroy(new Error(`GET ${url.pathname} timed out after ${LIST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Lists every object of a kind (all namespaces) as raw JSON, following `continue` pages. */
export async function listRaw<T>(kubeConfig: KubeConfig, resource: ResourceKind, selectors: { labelSelector?: string; fieldSelector?: string } = {}): Promise<RawList<T>> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const items: T[] = [];
  let resourceVersion = '';
  let next: string | undefined;
  for (let page = 0; page < LIST_MAX_PAGES; page++) {
    const url = new URL(cluster.server.replace(/\/+$/, '') + resourcePath(resource));
    url.searchParams.set('limit', String(LIST_PAGE_SIZE));
    if (selectors.labelSelector) url.searchParams.set('labelSelector', selectors.labelSelector);
    if (selectors.fieldSelector) url.searchParams.set('fieldSelector', selectors.fieldSelector);
    if (next) url.searchParams.set('continue', next);
    const body = (await getJson(kubeConfig, url)) as RawList<T>;
    items.push(...(body.items ?? []));
    resourceVersion = body.metadata?.resourceVersion ?? resourceVersion;
    next = body.metadata?.continue || undefined;
    if (!next) return { metadata: { resourceVersion }, items };
  }
  throw new Error(`listing ${resourceName(resource)}: more than ${LIST_MAX_PAGES} pages`);
}

interface WatchObserver {
  activity(): void;
  opened(): void;
  closed(): void;
  /** The server no longer has the resourceVersion we resumed from (410 Gone): ListWatch re-lists. */
  expired(message: string): void;
}

/** client-node's Watch, asking for bookmarks and telling the stall detector what it sees. */
class ObservedWatch extends Watch {
  constructor(
    kubeConfig: KubeConfig,
    private readonly observer: WatchObserver,
  ) {
    super(kubeConfig);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    // client-node's own signature: watch objects are untyped JSON.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    done: (err: any) => void,
  ): Promise<AbortController> {
    // Open from the moment we connect: a request that never gets its response headers is as
    // stuck as a connection that never delivers a line.
    this.observer.opened();
    return super.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true },
      (phase, apiObj, watchObj) => {
        this.observer.activity();
        const status = apiObj as { code?: unknown; message?: unknown } | undefined;
        if (phase === 'ERROR' && status?.code === 410) this.observer.expired(typeof status.message === 'string' ? status.message : 'Gone');
        callback(phase, apiObj, watchObj);
      },
      (err) => {
        this.observer.closed();
        done(err);
      },
    );
  }
}

/** Marks a list that failed because the resource is not served; already logged. */
class MissingResourceError extends Error {}

export class Informer<T extends InformerObject> {
  readonly resource: ResourceKind;
  readonly #opts: InformerOptions<T>;
  readonly #log: Logger;
  readonly #cache = new Map<string, T>();
  readonly #listeners = new Set<(change: InformerChange<T>) => void>();
  readonly #syncWaiters: Array<() => void> = [];
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #stallWindowMs: number;
  #listWatch: ListWatch<KubernetesObject> | undefined;
  #generation = 0;
  #running = false;
  #synced = false;
  #missingLogged = false;
  #backoffMs: number;
  #restartTimer: NodeJS.Timeout | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  #watchOpen = false;
  #lastActivity = 0;
  readonly #stats: InformerStats = { lists: 0, restarts: 0, stalls: 0, watchEvents: 0, expired: 0 };

  constructor(opts: InformerOptions<T>) {
    this.#opts = opts;
    this.resource = opts.resource;
    this.#log = opts.log.child({ component: 'informer', resource: resourceName(opts.resource) });
    this.#backoffInitialMs = opts.backoffInitialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
    this.#backoffMaxMs = opts.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS;
    this.#stallWindowMs = opts.stallWindowMs ?? DEFAULT_STALL_WINDOW_MS;
    this.#backoffMs = this.#backoffInitialMs;
  }

  /** Starts listing and watching; resolves after the first attempt (synced or not: see `synced()`). */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    if (this.#stallWindowMs > 0) {
      const tick = Math.max(10, Math.min(this.#stallWindowMs / 4, 30_000));
      this.#stallTimer = setInterval(() => this.#checkStall(), tick);
      this.#stallTimer.unref();
    }
    await this.#restartWithList();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    clearInterval(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#generation++;
    const current = this.#listWatch;
    this.#listWatch = undefined;
    this.#watchOpen = false;
    await current?.stop();
  }

  synced(): boolean {
    return this.#synced;
  }

  /** Resolves once the first list has completed (immediately if it has). */
  whenSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /** Subscribes to every change; returns the unsubscribe function. */
  onChange(listener: (change: InformerChange<T>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  get size(): number {
    return this.#cache.size;
  }

  stats(): Readonly<InformerStats> {
    return { ...this.#stats };
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** A fresh ListWatch (so a fresh list), abandoning the current one. */
  async #restartWithList(): Promise<void> {
    const generation = ++this.#generation;
    const previous = this.#listWatch;
    this.#watchOpen = false;
    const watch = new ObservedWatch(this.#opts.kubeConfig, {
      activity: () => {
        if (generation !== this.#generation) return;
        this.#stats.watchEvents++;
        this.#lastActivity = Date.now();
        this.#backoffMs = this.#backoffInitialMs;
      },
      opened: () => {
        if (generation !== this.#generation) return;
        this.#watchOpen = true;
        this.#lastActivity = Date.now();
      },
      closed: () => {
        if (generation === this.#generation) this.#watchOpen = false;
      },
      expired: (message) => {
        if (generation !== this.#generation) return;
        this.#stats.expired++;
        this.#log.info({ reason: message }, 'watch expired (410 Gone: the API server no longer holds our resourceVersion); re-listing');
      },
    });
    const listWatch = new ListWatch<KubernetesObject>(resourcePath(this.resource), watch, () => this.#list(generation), false, this.#opts.labelSelector, this.#opts.fieldSelector);
    listWatch.on('add', (o) => this.#fromWatch(generation, () => this.#upsert(o as unknown as T)));
    listWatch.on('update', (o) => this.#fromWatch(generation, () => this.#upsert(o as unknown as T)));
    listWatch.on('delete', (o) => this.#fromWatch(generation, () => this.#remove(objectKey(o as InformerObject))));
    listWatch.on('error', (err) => this.#failed(generation, err));
    this.#listWatch = listWatch;
    if (previous) await previous.stop();
    await this.#run(generation, listWatch);
  }

  /** Resumes the current ListWatch from its resourceVersion. */
  async #resume(): Promise<void> {
    const listWatch = this.#listWatch;
    if (!listWatch) return;
    await this.#run(this.#generation, listWatch);
  }

  async #run(generation: number, listWatch: ListWatch<KubernetesObject>): Promise<void> {
    try {
      // client-node reports list and watch failures through 'error' and resolves anyway.
      await listWatch.start();
    } catch (err) {
      this.#failed(generation, err);
    }
    // stop() (or a newer restart) may have landed while start() was in flight; client-node only
    // checks for a stop before its list, so the watch it opened afterwards would outlive us.
    if (!this.#running || generation !== this.#generation) await listWatch.stop();
  }

  async #list(generation: number): Promise<KubernetesListObject<KubernetesObject>> {
    this.#stats.lists++;
    let list: RawList<T>;
    try {
      list = this.#opts.list ? await this.#opts.list() : await listRaw<T>(this.#opts.kubeConfig, this.resource, this.#opts);
    } catch (err) {
      if (statusCodeOf(err) === 404 && generation === this.#generation && this.#running) {
        this.#missing(err);
        throw new MissingResourceError(reasonOf(err), { cause: err });
      }
      throw err;
    }
    if (generation === this.#generation && this.#running) {
      if (this.#missingLogged) this.#log.info('resource is served now');
      this.#missingLogged = false;
      this.#reconcile(list.items ?? []);
      this.#backoffMs = this.#backoffInitialMs;
    }
    return { metadata: { resourceVersion: list.metadata?.resourceVersion ?? '' }, items: (list.items ?? []) as unknown as KubernetesObject[] };
  }

  #missing(err: unknown): void {
    if (!this.#missingLogged) {
      this.#log.warn(
        { reason: reasonOf(err), retryInMs: this.#opts.missingRetryMs ?? DEFAULT_MISSING_RETRY_MS },
        'resource not served by the API server; treating it as empty (hint: install its CRD — e.g. Istio security or Gateway API CRDs — if you use it)',
      );
      this.#missingLogged = true;
    }
    this.#reconcile([]);
  }

  #failed(generation: number, err: unknown): void {
    if (!this.#running || generation !== this.#generation || this.#restartTimer) return;
    this.#watchOpen = false;
    if (err instanceof MissingResourceError) {
      this.#schedule(this.#opts.missingRetryMs ?? DEFAULT_MISSING_RETRY_MS, () => this.#restartWithList());
      return;
    }
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#backoffMaxMs);
    this.#stats.restarts++;
    const status = statusCodeOf(err);
    // A 404 from the watch means the resource went away after we listed it: re-list (which
    // then takes the missing-resource path) rather than resume a watch that cannot succeed.
    const relist = status === 404;
    this.#log.warn({ reason: reasonOf(err), ...(status ? { status } : {}), retryInMs: delay, relist }, status === 403 ? 'informer failed; restarting (hint: check the controller RBAC for this resource)' : 'informer failed; restarting');
    this.#schedule(delay, () => (relist ? this.#restartWithList() : this.#resume()));
  }

  #schedule(delayMs: number, action: () => Promise<void>): void {
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#running) void action();
    }, delayMs);
    this.#restartTimer.unref();
  }

  #checkStall(): void {
    if (!this.#running || !this.#watchOpen || this.#restartTimer) return;
    const silentMs = Date.now() - this.#lastActivity;
    if (silentMs < this.#stallWindowMs) return;
    this.#stats.stalls++;
    this.#log.warn({ silentForMs: silentMs, stallWindowMs: this.#stallWindowMs }, 'watch delivered nothing (no event, no bookmark) while open; restarting it with a list');
    void this.#restartWithList();
  }

  // ---- cache ---------------------------------------------------------------------------------

  #fromWatch(generation: number, apply: () => void): void {
    if (generation === this.#generation && this.#running) apply();
  }

  #reconcile(items: readonly T[]): void {
    const listed = new Set<string>();
    for (const item of items) {
      listed.add(objectKey(item));
      this.#upsert(item);
    }
    for (const key of [...this.#cache.keys()]) if (!listed.has(key)) this.#remove(key);
    if (!this.#synced) {
      this.#synced = true;
      this.#log.info({ objects: this.#cache.size }, 'informer synced');
      for (const resolve of this.#syncWaiters.splice(0)) resolve();
    }
  }

  #upsert(object: T): void {
    const key = objectKey(object);
    const previous = this.#cache.get(key);
    const version = object.metadata?.resourceVersion;
    if (previous && version !== undefined && previous.metadata?.resourceVersion === version) return;
    this.#cache.set(key, object);
    this.#emit(previous ? { type: 'update', object, previous } : { type: 'add', object });
  }

  #remove(key: string): void {
    const previous = this.#cache.get(key);
    if (!previous) return;
    this.#cache.delete(key);
    this.#emit({ type: 'delete', object: previous, previous });
  }

  #emit(change: InformerChange<T>): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#log.error({ err: reasonOf(err) }, 'informer listener threw');
      }
    }
  }
}
