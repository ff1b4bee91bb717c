/**
 * The sandbox's kube-proxy: watches Services and EndpointSlices in the store and keeps one
 * nftables table (`ip amesh-kube-proxy`) in every node namespace and in the fabric namespace (the
 * daemon's own clients dial ClusterIPs too, and LoadBalancer traffic from the outside client
 * enters there) equal to `renderKubeProxyRules(...)`.
 *
 * Invariants: every apply is one atomic `nft -f -` transaction; a burst of watch events is
 * coalesced into one sync (debounce); syncs never overlap; a namespace is rewritten only when
 * its rendered text changed; a failed apply is retried on a back-off timer until it succeeds or
 * the proxy stops. `stop()` removes the tables again.
 */
import type { ClusterStore, KubeObject } from '../apiserver/types.js';
import type { Logger } from '../../telemetry/logger.js';
import type { ClusterNetworkPlan } from './cluster-network.js';
import { buildServiceRoutes, defaultFixedRoutes, renderKubeProxyRemoval, renderKubeProxyRules } from './kube-proxy-rules.js';
import { run } from './run.js';

const DEFAULT_DEBOUNCE_MS = 20;
const RETRY_MS = 1_000;
const NFT_TIMEOUT_MS = 15_000;

/** Applies an nft transaction inside the namespace at `netnsPath`. */
export type NftApplier = (netnsPath: string, transaction: string) => Promise<void>;

/** The real applier: `nsenter --net=<path> nft -f -` (path-based: the daemon is not in the host netns). */
export const applyNftInNetns: NftApplier = async (netnsPath, transaction) => {
  await run(['nsenter', `--net=${netnsPath}`, '--', 'nft', '-f', '-'], { input: transaction, where: `netns ${netnsPath}`, timeoutMs: NFT_TIMEOUT_MS });
};

export interface KubeProxyOptions {
  store: ClusterStore;
  /** Only the plan is needed: the namespaces to program and the fabric address. */
  network: { readonly plan: ClusterNetworkPlan };
  log: Logger;
  /** amesh's capture mark (default 0x111); marked packets bypass the DNAT. */
  captureMark?: number;
  debounceMs?: number;
  /** Injected in tests; defaults to `applyNftInNetns`. */
  apply?: NftApplier;
}

export class KubeProxy {
  private readonly store: ClusterStore;
  private readonly plan: ClusterNetworkPlan;
  private readonly log: Logger;
  private readonly captureMark: number | undefined;
  private readonly debounceMs: number;
  private readonly apply: NftApplier;
  /** Last text successfully applied per namespace path. */
  private readonly applied = new Map<string, string>();
  private unsubscribe: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private again = false;
  private running = false;

  constructor(options: KubeProxyOptions) {
    this.store = options.store;
    this.plan = options.network.plan;
    this.log = options.log;
    this.captureMark = options.captureMark;
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.apply = options.apply ?? applyNftInNetns;
  }

  /** Subscribe to Services and EndpointSlices and apply the rules once before resolving. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const onEvent = (): void => this.schedule(this.debounceMs);
    this.unsubscribe = [this.store.watch('v1', 'Service', {}, onEvent), this.store.watch('discovery.k8s.io/v1', 'EndpointSlice', {}, onEvent)];
    await this.syncNow();
  }

  /** Stop watching and remove the table from every namespace. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const stop of this.unsubscribe) stop();
    this.unsubscribe = [];
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.syncing?.catch(() => undefined);
    await this.removeRules();
  }

  /** The namespaces kube-proxy programs: every node, then the fabric. */
  targets(): string[] {
    return [...this.plan.nodes.map((n) => n.netnsPath), this.plan.fabricNetnsPath];
  }

  /** The ruleset for the current store contents (pure apart from reading the store). */
  render(): string {
    const services = this.store.list<KubeObject>('v1', 'Service').items;
    const slices = this.store.list<KubeObject>('discovery.k8s.io/v1', 'EndpointSlice').items;
    const routes = buildServiceRoutes(services, slices, defaultFixedRoutes(this.plan.fabricIp));
    return renderKubeProxyRules(routes, {
      ...(this.captureMark === undefined ? {} : { captureMark: this.captureMark }),
      loadBalancerCidr: this.plan.loadBalancerCidr,
    });
  }

  /** Render and apply now; concurrent callers share one run, and a call during a run queues one more. */
  syncNow(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.again = false;
          await this.syncOnce();
        } while (this.again);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  /** Delete the table everywhere. Never throws; logs what it could not remove. */
  async removeRules(): Promise<void> {
    for (const target of this.targets()) {
      try {
        await this.apply(target, renderKubeProxyRemoval());
      } catch (err) {
        this.log.warn({ err, netns: target }, 'could not remove the kube-proxy table');
      }
      this.applied.delete(target);
    }
  }

  private schedule(delayMs: number): void {
    if (!this.running || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.syncNow().catch((err: unknown) => this.log.error({ err }, 'kube-proxy sync failed'));
    }, delayMs);
    this.timer.unref();
  }

  private async syncOnce(): Promise<void> {
    const text = this.render();
    let failed = false;
    for (const target of this.targets()) {
      if (this.applied.get(target) === text) continue;
      try {
        await this.apply(target, text);
        this.applied.set(target, text);
      } catch (err) {
        failed = true;
        this.applied.delete(target);
        this.log.error({ err, netns: target }, `could not apply the kube-proxy rules; retrying in ${RETRY_MS} ms`);
      }
    }
    if (failed) this.schedule(RETRY_MS);
    else this.log.debug({ bytes: text.length }, 'kube-proxy rules in sync');
  }
}
