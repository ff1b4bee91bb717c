/**
 * A PodLocator over a client-node informer on Pods in all namespaces: the CA asks "does a pod of
 * namespace/serviceAccount run on node N?" for every impersonation, so the answer comes from an
 * index (node → `namespace/serviceAccount` → count), never from the API server.
 *
 * Invariants: only live pods count — a pod in phase Succeeded/Failed, or with a
 * deletionTimestamp, is no reason to sign for its identity; the index is updated per event, and
 * each pod's contribution is remembered so an update moves it exactly once. `synced()` turns true
 * after the first complete list and stays true across re-lists (the cache is kept meanwhile).
 * client-node stops its informer on an error; restarting it is ours (as its docs say), with
 * exponential backoff.
 */
import { CoreV1Api, makeInformer, type Informer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import type { PodLocator, PodRef } from '../ca/types.js';

const RESTART_INITIAL_MS = 500;
const RESTART_MAX_MS = 30_000;

export interface KubePodLocatorOptions {
  /** Builds the informer from a kubeconfig… */
  kubeConfig?: KubeConfig;
  /** …or uses this one (tests). Its list function must list Pods in all namespaces. */
  informer?: Informer<V1Pod>;
  log: Logger;
}

/** What a pod adds to the node index; undefined for a pod that does not count. */
function livePod(pod: V1Pod): PodRef | undefined {
  const namespace = pod.metadata?.namespace;
  const name = pod.metadata?.name;
  if (!namespace || !name) return undefined;
  if (pod.metadata?.deletionTimestamp) return undefined;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  const serviceAccount = pod.spec?.serviceAccountName || 'default';
  const nodeName = pod.spec?.nodeName;
  const uid = pod.metadata?.uid;
  return { namespace, name, serviceAccount, ...(uid ? { uid } : {}), ...(nodeName ? { nodeName } : {}) };
}

export class KubePodLocator implements PodLocator {
  private readonly pods = new Map<string, PodRef>();
  /** node → `namespace/serviceAccount` → number of live pods. */
  private readonly byNode = new Map<string, Map<string, number>>();
  private readonly informer: Informer<V1Pod>;
  private readonly log: Logger;
  private isSynced = false;
  private running = false;
  private restartDelayMs = RESTART_INITIAL_MS;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(opts: KubePodLocatorOptions) {
    this.log = opts.log.child({ component: 'pod-locator' });
    if (opts.informer) this.informer = opts.informer;
    else if (opts.kubeConfig) {
      const api = opts.kubeConfig.makeApiClient(CoreV1Api);
      this.informer = makeInformer(opts.kubeConfig, '/api/v1/pods', () => api.listPodForAllNamespaces());
    } else throw new TypeError('KubePodLocator needs kubeConfig or informer');
    this.informer.on('add', (pod) => this.upsert(pod));
    this.informer.on('update', (pod) => this.upsert(pod));
    this.informer.on('delete', (pod) => this.remove(pod));
    this.informer.on('error', (err) => this.onError(err));
  }

  /** Starts watching; resolves after the first attempt (synced or not — see `synced()`). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.attempt();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.informer.stop();
  }

  pod(namespace: string, name: string): PodRef | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }

  hasPodOnNode(node: string, namespace: string, serviceAccount: string): boolean {
    return (this.byNode.get(node)?.get(`${namespace}/${serviceAccount}`) ?? 0) > 0;
  }

  synced(): boolean {
    return this.isSynced;
  }

  private async attempt(): Promise<void> {
    let failed = false;
    const onFailure = (): void => {
      failed = true;
    };
    this.informer.on('error', onFailure);
    try {
      // client-node reports list failures through 'error' and resolves anyway.
      await this.informer.start();
    } catch (err) {
      failed = true;
      this.onError(err);
    } finally {
      this.informer.off('error', onFailure);
    }
    // stop() may have landed while start() was in flight; client-node only checks for a stop
    // before its list, so the watch it opened afterwards would outlive us.
    if (!this.running) {
      await this.informer.stop();
      return;
    }
    if (!failed) {
      if (!this.isSynced) this.log.info({ pods: this.pods.size }, 'pod cache synced');
      this.isSynced = true;
      this.restartDelayMs = RESTART_INITIAL_MS;
    }
  }

  private onError(err: unknown): void {
    if (!this.running || this.restartTimer) return;
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, RESTART_MAX_MS);
    this.log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: delay }, 'pod informer failed; restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.running) void this.attempt();
    }, delay);
    this.restartTimer.unref();
  }

  private upsert(pod: V1Pod): void {
    this.remove(pod);
    const ref = livePod(pod);
    if (!ref) return;
    this.pods.set(`${ref.namespace}/${ref.name}`, ref);
    if (!ref.nodeName) return;
    let counts = this.byNode.get(ref.nodeName);
    if (!counts) this.byNode.set(ref.nodeName, (counts = new Map()));
    const key = `${ref.namespace}/${ref.serviceAccount}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }

  private remove(pod: V1Pod): void {
    const key = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
    const old = this.pods.get(key);
    if (!old) return;
    this.pods.delete(key);
    if (!old.nodeName) return;
    const counts = this.byNode.get(old.nodeName);
    const saKey = `${old.namespace}/${old.serviceAccount}`;
    const n = (counts?.get(saKey) ?? 0) - 1;
    if (n > 0) counts?.set(saKey, n);
    else counts?.delete(saKey);
    if (counts?.size === 0) this.byNode.delete(old.nodeName);
  }
}
