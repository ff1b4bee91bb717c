/**
 * Publishes the mesh's trust bundle as ConfigMap `istio-ca-root-cert` (key `root-cert.pem`, every
 * root PEM concatenated, label `istio.io/config: "true"`) in every namespace — Istio's name and
 * shape, so workloads and tools that mount it keep working.
 *
 * Invariants: every namespace that is not being deleted holds exactly the current bundle. The
 * ConfigMap is (re)written on start, for each new Namespace, when the bundle changes
 * (`bundleChanged()`), and when someone edits or deletes it (reconciled back). Two informers feed
 * a queue of namespace names: Namespaces, and ConfigMaps in all namespaces selected by
 * `metadata.name=istio-ca-root-cert` (so a cluster's other ConfigMaps never reach our cache).
 * Decisions come from the informer caches; writes read the object fresh and use create/replace
 * with its resourceVersion (a 409 re-queues). One worker drains the queue: simple, ordered, and a
 * namespace is never written twice at once. Failed writes are retried after `retryMs`; a periodic
 * resync from the caches catches anything missed. client-node stops an informer on error;
 * restarting it is ours.
 */
import { CoreV1Api, ListWatch, Watch, type KubeConfig, type V1ConfigMap, type V1Namespace } from '@kubernetes/client-node';
import { silentLogger, type Logger } from '../../telemetry/logger.js';

export const TRUST_BUNDLE_CONFIGMAP = 'istio-ca-root-cert';
export const TRUST_BUNDLE_KEY = 'root-cert.pem';
export const ISTIO_CONFIG_LABEL = 'istio.io/config';
const DEFAULT_RETRY_MS = 1000;
const DEFAULT_RESYNC_MS = 60_000;
const RESTART_MAX_MS = 30_000;

export interface TrustBundlePublisherOptions {
  kubeConfig: KubeConfig;
  /** The roots to publish now (RootStore: `() => store.current().trustBundlePem`). */
  bundle: () => string[];
  log?: Logger;
  /** Delay before retrying a namespace whose write failed. */
  retryMs?: number;
  /** Period of the full pass over the caches; 0 disables it. */
  resyncMs?: number;
}

// ---- pure decisions ----------------------------------------------------------------------

export function bundleText(bundle: string[]): string {
  return bundle.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)).join('');
}

/** A Namespace being deleted gets nothing new (the API server would refuse it anyway). */
export function isTerminating(namespace: V1Namespace): boolean {
  return Boolean(namespace.metadata?.deletionTimestamp) || namespace.status?.phase === 'Terminating';
}

/** Does this ConfigMap already publish `text` as we would? */
export function isUpToDate(configMap: V1ConfigMap | undefined, text: string): boolean {
  return configMap !== undefined && configMap.data?.[TRUST_BUNDLE_KEY] === text && configMap.metadata?.labels?.[ISTIO_CONFIG_LABEL] === 'true';
}

/** The ConfigMap to write: the existing one's other metadata kept, data and our label set. */
export function desiredConfigMap(namespace: string, text: string, existing?: V1ConfigMap): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      ...(existing?.metadata ?? {}),
      name: TRUST_BUNDLE_CONFIGMAP,
      namespace,
      labels: { ...(existing?.metadata?.labels ?? {}), [ISTIO_CONFIG_LABEL]: 'true' },
    },
    data: { [TRUST_BUNDLE_KEY]: text },
  };
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

// ---- the publisher -----------------------------------------------------------------------

export class TrustBundlePublisher {
  readonly #core: CoreV1Api;
  readonly #bundle: () => string[];
  readonly #log: Logger;
  readonly #retryMs: number;
  readonly #resyncMs: number;
  readonly #namespaces: ListWatch<V1Namespace>;
  readonly #configMaps: ListWatch<V1ConfigMap>;
  readonly #queue = new Set<string>();
  readonly #retryTimers = new Map<string, NodeJS.Timeout>();
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  #idleWaiters: (() => void)[] = [];
  #draining = false;
  #running = false;
  #started = false;
  #resyncTimer: NodeJS.Timeout | undefined;
  #restartDelayMs: number;
  /** Writes done, for logs and tests. */
  #writes = 0;

  constructor(opts: TrustBundlePublisherOptions) {
    this.#core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.#bundle = opts.bundle;
    this.#log = (opts.log ?? silentLogger).child({ component: 'trust-bundle-publisher' });
    this.#retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
    this.#resyncMs = opts.resyncMs ?? DEFAULT_RESYNC_MS;
    this.#restartDelayMs = this.#retryMs;
    const core = this.#core;
    this.#namespaces = new ListWatch<V1Namespace>('/api/v1/namespaces', new Watch(opts.kubeConfig), () => core.listNamespace(), false);
    const selector = `metadata.name=${TRUST_BUNDLE_CONFIGMAP}`;
    this.#configMaps = new ListWatch<V1ConfigMap>('/api/v1/configmaps', new Watch(opts.kubeConfig), () => core.listConfigMapForAllNamespaces({ fieldSelector: selector }), false, undefined, selector);

    const onNamespace = (ns: V1Namespace): void => {
      const name = ns.metadata?.name;
      if (name && !isTerminating(ns) && !this.#cachedUpToDate(name)) this.#enqueue(name);
    };
    this.#namespaces.on('add', onNamespace);
    this.#namespaces.on('update', onNamespace);
    this.#namespaces.on('delete', (ns) => {
      const name = ns.metadata?.name;
      if (name) this.#forget(name);
    });
    const onConfigMap = (cm: V1ConfigMap): void => {
      const name = cm.metadata?.namespace;
      if (name && !this.#cachedUpToDate(name)) this.#enqueue(name);
    };
    this.#configMaps.on('add', onConfigMap);
    this.#configMaps.on('update', onConfigMap);
    this.#configMaps.on('delete', (cm) => {
      if (cm.metadata?.namespace) this.#enqueue(cm.metadata.namespace);
    });
    for (const informer of [this.#namespaces, this.#configMaps] as ListWatch<never>[]) {
      informer.on('error', (err: unknown) => this.#restart(informer, err));
      informer.on('connect', () => {
        this.#restartDelayMs = this.#retryMs;
      });
    }
  }

  /** Lists, then publishes to every namespace once; resolves when that first pass is done. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await Promise.all([this.#configMaps.start(), this.#namespaces.start()]);
    this.bundleChanged();
    await this.idle();
    this.#started = true;
    this.#log.info({ namespaces: this.#namespaces.list().length, writes: this.#writes }, 'trust bundle published to every namespace');
    this.#scheduleResync();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#resyncTimer);
    for (const t of this.#retryTimers.values()) clearTimeout(t);
    this.#retryTimers.clear();
    for (const t of this.#restartTimers) clearTimeout(t);
    this.#restartTimers.clear();
    this.#queue.clear();
    await Promise.all([this.#namespaces.stop(), this.#configMaps.stop()]);
    this.#wakeIdle();
  }

  /**
   * True after the first pass over the namespaces. client-node resolves start() even when its
   * first list failed (it reports through 'error'); the restarted informer's adds publish then.
   */
  synced(): boolean {
    return this.#started;
  }

  writes(): number {
    return this.#writes;
  }

  /** The bundle changed: every namespace not yet holding it is queued. */
  bundleChanged(): void {
    for (const ns of this.#namespaces.list()) {
      const name = ns.metadata?.name;
      if (name && !isTerminating(ns) && !this.#cachedUpToDate(name)) this.#enqueue(name);
    }
  }

  /** Resolves once the queue is empty and no write is running (retries may still be pending). */
  idle(): Promise<void> {
    if (!this.#draining && this.#queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  // ---- internals -------------------------------------------------------------------------

  #text(): string {
    return bundleText(this.#bundle());
  }

  #cachedUpToDate(namespace: string): boolean {
    return isUpToDate(this.#configMaps.get(TRUST_BUNDLE_CONFIGMAP, namespace), this.#text());
  }

  #enqueue(namespace: string): void {
    if (!this.#running) return;
    const retry = this.#retryTimers.get(namespace);
    if (retry) {
      clearTimeout(retry);
      this.#retryTimers.delete(namespace);
    }
    this.#queue.add(namespace);
    void this.#drain();
  }

  #forget(namespace: string): void {
    this.#queue.delete(namespace);
    clearTimeout(this.#retryTimers.get(namespace));
    this.#retryTimers.delete(namespace);
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#running && this.#queue.size > 0) {
        const namespace = this.#queue.values().next().value as string;
        this.#queue.delete(namespace);
        try {
          await this.#reconcile(namespace);
        } catch (err) {
          this.#log.warn({ err, namespace }, `cannot publish ${TRUST_BUNDLE_CONFIGMAP}; retrying`);
          this.#scheduleRetry(namespace);
        }
      }
    } finally {
      this.#draining = false;
      this.#wakeIdle();
    }
  }

  #wakeIdle(): void {
    if (this.#draining || (this.#queue.size > 0 && this.#running)) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Makes one namespace's ConfigMap match the bundle; throws to be retried. */
  async #reconcile(namespace: string): Promise<void> {
    const ns = this.#namespaces.get(namespace);
    if (!ns || isTerminating(ns)) return;
    const text = this.#text();
    let existing: V1ConfigMap | undefined;
    try {
      existing = await this.#core.readNamespacedConfigMap({ name: TRUST_BUNDLE_CONFIGMAP, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    if (isUpToDate(existing, text)) return;
    try {
      if (existing) {
        await this.#core.replaceNamespacedConfigMap({ name: TRUST_BUNDLE_CONFIGMAP, namespace, body: desiredConfigMap(namespace, text, existing) });
      } else {
        await this.#core.createNamespacedConfigMap({ namespace, body: desiredConfigMap(namespace, text) });
      }
    } catch (err) {
      // Someone wrote in between: look again with the fresh object.
      if (statusOf(err) === 409) {
        this.#queue.add(namespace);
        return;
      }
      // The namespace went away or started terminating under us: nothing to publish.
      const now = this.#namespaces.get(namespace);
      if (!now || isTerminating(now)) return;
      throw err;
    }
    this.#writes++;
    this.#log.debug({ namespace, roots: (text.match(/BEGIN CERTIFICATE/g) ?? []).length, created: !existing }, `published ${TRUST_BUNDLE_CONFIGMAP}`);
  }

  #scheduleRetry(namespace: string): void {
    if (!this.#running || this.#retryTimers.has(namespace)) return;
    const timer = setTimeout(() => {
      this.#retryTimers.delete(namespace);
      this.#enqueue(namespace);
    }, this.#retryMs);
    timer.unref();
    this.#retryTimers.set(namespace, timer);
  }

  #scheduleResync(): void {
    if (!this.#running || this.#resyncMs <= 0) return;
    this.#resyncTimer = setTimeout(() => {
      this.bundleChanged();
      this.#scheduleResync();
    }, this.#resyncMs);
    this.#resyncTimer.unref();
  }

  #restart(informer: ListWatch<never>, err: unknown): void {
    if (!this.#running) return;
    const delay = this.#restartDelayMs;
    this.#restartDelayMs = Math.min(delay * 2, RESTART_MAX_MS);
    this.#log.warn({ err, retryInMs: delay }, 'watch failed; restarting it');
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (!this.#running) return;
      informer.start().catch((e: unknown) => this.#restart(informer, e));
    }, delay);
    timer.unref();
    this.#restartTimers.add(timer);
  }
}
