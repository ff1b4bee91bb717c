/**
 * The sandbox kubelet: one per simulated node, inside the sandbox daemon. It registers its Node
 * (and keeps its Lease fresh), watches the pods bound to it and hands each to a PodWorker, which
 * runs the pod's containers as host processes in the pod's network namespace.
 *
 * Lifecycle: start() → (pods come and go) → stop(): every container is stopped with its grace
 * period; pod objects stay in the store, and the next start() recreates their processes (the
 * sandbox never leaves pods running without a daemon). Leftovers of a crashed run, recorded in
 * `pids-<node>.json`, are killed at start.
 */
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ApiError, type ClusterStore, type KubeObject, type WatchEvent } from '../apiserver/types.js';
import type { ImagePlan } from '../images/catalog.js';
import { systemClock, type Clock } from './clock.js';
import { processStartTicks, type ContainerRuntime } from './container-runtime.js';
import { leaseObject, LEASE_RENEW_MS, nodeLabels, nodeObject, nodeStatus } from './node-object.js';
import { PidRecord, readRecordedPids } from './pid-record.js';
import type { PodNetworkProvider } from './pod-network.js';
import type { Pod } from './pod-types.js';
import { PodWorker } from './pod-worker.js';
import { modify, replaceStatus } from './store-writes.js';
import { nsenterProbeRunner, type ProbeRunner } from './probe-runner.js';

export { readRecordedPids, type RecordedPid } from './pid-record.js';
export { containerLogPath, readContainerRecord, podDirectory, type ContainerRecord } from './pod-paths.js';
export type { PodNetworkProvider } from './pod-network.js';

export interface KubeletOptions {
  store: ClusterStore;
  nodeName: string;
  network: PodNetworkProvider;
  /** Shared by every kubelet of the sandbox: pods live under `<stateDir>/pods/<uid>/`. */
  stateDir: string;
  log: Logger;
  now?: () => number;
  clock?: Clock;
  /** Issues the projected service-account token of a pod. */
  issueToken?: (pod: KubeObject, o?: { audience?: string; expirationSeconds?: number }) => Promise<string>;
  /** The cluster CA, for `ca.crt` in the service-account volume when kube-root-ca.crt is missing. */
  clusterCaPem?: string;
  clusterDomain?: string;
  /** Substitute probe runner (tests). */
  probeRunner?: ProbeRunner;
  /** Substitute image resolution (tests). */
  resolveImage?: (image: string) => ImagePlan | { error: string };
  /** Substitute process operations (tests). */
  runtime?: ContainerRuntime;
}

/** Lease times are MicroTime: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class Kubelet {
  private readonly workers = new Map<string, PodWorker>();
  private readonly clock: Clock;
  private readonly pids: PidRecord;
  private unwatch: (() => void) | undefined;
  private leaseTimer: { cancel(): void } | undefined;
  private stopped = false;

  constructor(private readonly o: KubeletOptions) {
    const now = o.now;
    this.clock = o.clock ?? (now ? { ...systemClock, now } : systemClock);
    this.pids = new PidRecord(o.stateDir, o.nodeName);
  }

  async start(): Promise<void> {
    await mkdir(this.o.stateDir, { recursive: true });
    await this.killLeftovers();
    this.registerNode();
    this.renewLease();
    const unwatchPods = this.o.store.watch<Pod>('v1', 'Pod', { fieldSelector: `spec.nodeName=${this.o.nodeName}` }, (event) => this.onPodEvent(event));
    // ConfigMap and Secret volumes follow their objects (the real kubelet does within its sync
    // period; here at once): e.g. a rotated trust bundle reaches the node agents in seconds.
    const unwatchSources = (['ConfigMap', 'Secret'] as const).map((kind) =>
      this.o.store.watch('v1', kind, {}, (event) => {
        if (this.stopped || (event.type !== 'ADDED' && event.type !== 'MODIFIED')) return;
        const { namespace, name } = event.object.metadata;
        for (const worker of this.workers.values()) if (worker.mountsObject(kind, namespace ?? '', name ?? '')) worker.refreshVolumes();
      }),
    );
    this.unwatch = () => {
      unwatchPods();
      for (const stop of unwatchSources) stop();
    };
    this.o.log.info({ node: this.o.nodeName }, 'kubelet started');
  }

  /** Stops every pod's processes (the pod objects stay) and the node's heartbeat. */
  async stop(_o: { keepPods?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.unwatch?.();
    this.unwatch = undefined;
    this.leaseTimer?.cancel();
    await Promise.allSettled([...this.workers.values()].map((w) => w.terminate({ keepNetwork: true })));
    this.workers.clear();
    this.o.log.info({ node: this.o.nodeName }, 'kubelet stopped');
  }

  /** The worker of a pod on this node (tests, diagnostics). */
  worker(uid: string): PodWorker | undefined {
    return this.workers.get(uid);
  }

  private async killLeftovers(): Promise<void> {
    const mine = (await readRecordedPids(this.o.stateDir)).filter((r) => r.node === this.o.nodeName);
    for (const r of mine) {
      const ticks = await processStartTicks(r.pid);
      if (ticks === undefined || (r.startTicks !== undefined && ticks !== r.startTicks)) continue;
      this.o.log.warn({ pid: r.pid, pod: r.pod, container: r.container }, 'killing a container left over from a previous run');
      try {
        process.kill(-r.pid, 'SIGKILL');
      } catch {
        try {
          process.kill(r.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
  }

  private registerNode(): void {
    const { store, nodeName, network } = this.o;
    const info = network.node(nodeName);
    const facts = { name: nodeName, ip: info.ip, podCidr: info.podCidr, now: isoSeconds(this.clock.now()) };
    const existing = store.get('v1', 'Node', undefined, nodeName);
    if (!existing) {
      store.create(nodeObject(facts), { fieldManager: 'amesh-kubelet' });
    } else {
      modify(
        store,
        'v1',
        'Node',
        undefined,
        nodeName,
        (node) => ({ ...node, metadata: { ...node.metadata, labels: { ...node.metadata.labels, ...nodeLabels(nodeName) } }, spec: { ...(node.spec as object), podCIDR: info.podCidr, podCIDRs: [info.podCidr] } }),
        'amesh-kubelet',
      );
    }
    // Status goes through its subresource: a create ignores it when the kind has one.
    const previous = (store.get('v1', 'Node', undefined, nodeName)?.status ?? {}) as Parameters<typeof nodeStatus>[1];
    replaceStatus(store, 'v1', 'Node', undefined, nodeName, nodeStatus(facts, previous), 'amesh-kubelet');
  }

  private renewLease(): void {
    if (this.stopped) return;
    const { store, nodeName, log } = this.o;
    try {
      const now = microTime(this.clock.now());
      const lease = store.get('coordination.k8s.io/v1', 'Lease', 'kube-node-lease', nodeName);
      if (lease) {
        modify(store, 'coordination.k8s.io/v1', 'Lease', 'kube-node-lease', nodeName, (l) => ({ ...l, spec: { ...(l.spec as object), holderIdentity: nodeName, renewTime: now } }), 'amesh-kubelet');
      } else {
        const node = store.get('v1', 'Node', undefined, nodeName);
        store.create(leaseObject({ name: nodeName, ...(node?.metadata.uid ? { uid: node.metadata.uid } : {}) }, now), { fieldManager: 'amesh-kubelet' });
      }
    } catch (err) {
      log.warn({ err }, 'could not renew the node lease');
    }
    this.leaseTimer = this.clock.setTimeout(() => this.renewLease(), LEASE_RENEW_MS);
  }

  private workerContext(): ConstructorParameters<typeof PodWorker>[0] {
    const { store } = this.o;
    const data = (kind: 'ConfigMap' | 'Secret', namespace: string, name: string): Record<string, string> | undefined => {
      const object = store.get(`v1`, kind, namespace, name);
      return object ? ((object.data ?? {}) as Record<string, string>) : undefined;
    };
    return {
      store,
      nodeName: this.o.nodeName,
      network: this.o.network,
      stateDir: this.o.stateDir,
      log: this.o.log,
      clock: this.clock,
      pids: this.pids,
      probeRunner: this.o.probeRunner ?? nsenterProbeRunner,
      clusterDomain: this.o.clusterDomain ?? 'cluster.local',
      ...(this.o.resolveImage ? { resolveImage: this.o.resolveImage } : {}),
      ...(this.o.runtime ? { runtime: this.o.runtime } : {}),
      sources: {
        configMap: (ns, name) => data('ConfigMap', ns, name),
        secret: (ns, name) => data('Secret', ns, name),
        ...(this.o.issueToken ? { issueToken: this.o.issueToken } : {}),
        ...(this.o.clusterCaPem ? { clusterCaPem: this.o.clusterCaPem } : {}),
      },
    };
  }

  private onPodEvent(event: WatchEvent<Pod>): void {
    if (this.stopped) return;
    const pod = event.object;
    const uid = pod.metadata.uid ?? '';
    const worker = this.workers.get(uid);
    if (event.type === 'DELETED') {
      if (!worker) return;
      this.workers.delete(uid);
      void worker.terminate({ graceSeconds: pod.metadata.deletionGracePeriodSeconds });
      return;
    }
    if (event.type !== 'ADDED' && event.type !== 'MODIFIED') return;
    if (worker) {
      worker.update(pod);
      return;
    }
    if (pod.metadata.deletionTimestamp) {
      // Nothing of it runs here (e.g. deleted while the daemon was down): just finish the deletion.
      this.finishDeletion(pod);
      return;
    }
    // Terminal pods never run again, as in Kubernetes.
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    const created = new PodWorker(this.workerContext(), pod);
    this.workers.set(uid, created);
    void created.start();
  }

  private finishDeletion(pod: Pod): void {
    try {
      this.o.store.delete('v1', 'Pod', pod.metadata.namespace, pod.metadata.name ?? '', { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid ?? '' } });
    } catch (err) {
      if (!(err instanceof ApiError && (err.code === 404 || err.code === 409))) this.o.log.warn({ err }, 'could not finish deleting a pod');
    }
  }
}
