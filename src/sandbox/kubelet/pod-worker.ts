/**
 * One pod on one node, from the moment the kubelet sees it until it is gone: network, DNS,
 * sysctls, volumes, containers (start, restart with back-off, probes), status, and teardown.
 *
 * Not honoured: `securityContext.runAsUser` and the other identity settings — every container
 * runs as root (the sandbox's processes need root for namespaces); a pod asking for sysctls it
 * cannot have is rejected like the kubelet does (phase Failed, reason SysctlForbidden).
 *
 * Invariants:
 * - Every change of a container's state ends in one status write; writes are coalesced and
 *   serialised (the last one always reflects the latest state).
 * - After `terminate()` starts, nothing is started or restarted and no timer fires; it waits for
 *   a volume rewrite in flight, so nothing writes into the pod's directory once it has returned.
 * - Every started pid is in the PidRecord until its exit has been seen.
 */
import { mkdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { ApiError, type ClusterStore } from '../apiserver/types.js';
import { containerLaunch, resolveImage, type ImagePlan } from '../images/catalog.js';
import type { Clock } from './clock.js';
import { hostContainerRuntime, type BindMount, type ContainerExit, type ContainerRuntime, type NetworkNamespace, type RunningProcess } from './container-runtime.js';
import { expandVariables, resolveContainerEnv, type EnvSources } from './pod-env.js';
import { containerLogDirectory, containerRecordPath, podDirectory, type ContainerRecord } from './pod-paths.js';
import type { PodNetworkProvider } from './pod-network.js';
import { renderNsswitch, renderResolvConf } from '../network/cluster-network.js';
import { computePodStatus } from './pod-status.js';
import { podSysctls, SYSCTL_FORBIDDEN } from './pod-sysctls.js';
import type { PidRecord } from './pid-record.js';
import { replaceStatus } from './store-writes.js';
import { probePlan, type ProbeKind } from './probe-plan.js';
import type { ProbeRunner } from './probe-runner.js';
import { Prober } from './prober.js';
import { INITIAL_BACKOFF, restartBackoff, shouldRestart, type BackoffState } from './restart-backoff.js';
import type { Container, ContainerState, ContainerStatus, Pod, PodStatus } from './pod-types.js';
import { claimMountPoints, containerMounts, prepareVolumes, releaseMountPoints, withServiceAccountVolume, type PreparedVolumes, type VolumeSources } from './volumes.js';

/**
 * How long a container waits before a configuration (env, volume) is looked up again. Short:
 * a ConfigMap that another component publishes moments later (the controller's
 * istio-ca-root-cert for the node agents) should not hold a pod back for long.
 */
export const CONFIG_RETRY_MS = 2_000;
/** ErrImagePull turns into ImagePullBackOff after this long, like the real kubelet's first retry. */
export const IMAGE_BACKOFF_MS = 5_000;
const DEFAULT_GRACE_SECONDS = 30;
/**
 * Generated volumes are rewritten this often: service-account tokens live an hour, and
 * ConfigMap/Secret volumes follow their objects, as in Kubernetes (subPath mounts do not).
 */
export const VOLUME_REFRESH_MS = 10 * 60_000;

export interface PodWorkerContext {
  store: ClusterStore;
  nodeName: string;
  network: PodNetworkProvider;
  stateDir: string;
  log: Logger;
  clock: Clock;
  pids: PidRecord;
  probeRunner: ProbeRunner;
  sources: EnvSources & VolumeSources;
  clusterDomain: string;
  /** Image resolution (the catalog by default; tests substitute programs). */
  resolveImage?: (image: string) => ImagePlan | { error: string };
  /** Process operations (host processes by default; tests substitute fakes). */
  runtime?: ContainerRuntime;
}

interface Instance {
  process: RunningProcess;
  startedAtMs: number;
  env: Record<string, string>;
  probers: Prober[];
  livenessKill: boolean;
}

interface ContainerSlot {
  spec: Container;
  status: ContainerStatus;
  instance?: Instance;
  backoff: BackoffState;
  timer?: { cancel(): void };
  mountPoints: string[];
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

/** A process exit as a container exit code: 128 + signal number when it was killed. */
export function exitCode(exit: ContainerExit): number {
  if (exit.code !== null) return exit.code;
  return 128 + (exit.signal ? (SIGNALS[exit.signal] ?? 9) : 9);
}

export class PodWorker {
  readonly uid: string;
  private pod: Pod;
  private readonly slots: ContainerSlot[];
  private readonly podDir: string;
  private network: NetworkNamespace | undefined;
  private podIP: string | undefined;
  private hostIP: string | undefined;
  private startTime: string | undefined;
  private volumes: PreparedVolumes | undefined;
  private terminating = false;
  /** Set when the pod cannot run here (a forbidden sysctl): it ends Failed with this reason. */
  private rejection: { reason: string; message: string } | undefined;
  private refreshTimer: { cancel(): void } | undefined;
  private starting: Promise<void> = Promise.resolve();
  /** The volume rewrite in flight (on demand or periodic); `terminate()` waits for it. */
  private volumeRefresh: Promise<void> | undefined;
  /** A rewrite was asked for while one ran: it may have read the old objects, so run once more. */
  private volumeRefreshAgain = false;
  /** Cluster DNS files for host-network pods with dnsPolicy ClusterFirstWithHostNet. */
  private dnsMounts: BindMount[] = [];
  private terminated: Promise<void> | undefined;
  private statusDirty = false;
  private statusWriting: Promise<void> | undefined;
  private lastStatus: PodStatus | undefined;
  private readonly log: Logger;

  constructor(
    private readonly ctx: PodWorkerContext,
    pod: Pod,
  ) {
    this.pod = withServiceAccountVolume(pod);
    this.uid = pod.metadata.uid ?? '';
    this.podDir = podDirectory(ctx.stateDir, this.uid);
    this.log = ctx.log.child({ pod: `${pod.metadata.namespace}/${pod.metadata.name}` });
    this.lastStatus = pod.status;
    const previous = new Map((pod.status?.containerStatuses ?? []).map((c) => [c.name, c]));
    this.slots = this.pod.spec.containers.map((spec) => ({
      spec,
      backoff: INITIAL_BACKOFF,
      mountPoints: [],
      status: {
        name: spec.name,
        image: spec.image ?? '',
        imageID: '',
        started: false,
        ready: false,
        // A pod recreated after a daemon restart keeps counting its restarts.
        restartCount: previous.get(spec.name)?.restartCount ?? 0,
        state: { waiting: { reason: 'ContainerCreating' } },
        lastState: {},
      },
    }));
  }

  private get runtime(): ContainerRuntime {
    return this.ctx.runtime ?? hostContainerRuntime;
  }

  private get name(): string {
    return this.pod.metadata.name ?? '';
  }
  private get namespace(): string {
    return this.pod.metadata.namespace ?? 'default';
  }

  /** Sets the pod up and starts its containers; failures end in the pod's status, not a throw. */
  start(): Promise<void> {
    this.starting = this.setUp().catch((err: unknown) => {
      this.log.error({ err }, 'pod setup failed; retrying');
      for (const slot of this.slots) this.setState(slot, { waiting: { reason: 'CreateContainerError', message: (err as Error).message } });
      const first = this.slots[0];
      if (first) this.retryLater(first, CONFIG_RETRY_MS, () => void this.start());
    });
    return this.starting;
  }

  /** A newer version of the pod object (only deletion matters: the spec is immutable). */
  update(pod: Pod): void {
    if (pod.metadata.uid !== this.uid) return;
    if (pod.metadata.deletionTimestamp) void this.terminate({ deleteObject: true, graceSeconds: pod.metadata.deletionGracePeriodSeconds });
  }

  private async setUp(): Promise<void> {
    await mkdir(this.podDir, { recursive: true });
    const node = this.ctx.network.node(this.ctx.nodeName);
    this.hostIP = node.ip;
    const sysctls = podSysctls(this.pod);
    if ('reason' in sysctls) return this.reject(sysctls);
    if (this.pod.spec.hostNetwork) {
      this.network = { kind: 'host', netnsPath: node.netnsPath };
      this.podIP = node.ip;
      if (this.pod.spec.dnsPolicy === 'ClusterFirstWithHostNet') await this.hostNetworkClusterDns();
    } else {
      const requested = this.pod.status?.podIP;
      const net = await this.ctx.network.addPod({ uid: this.uid, node: this.ctx.nodeName, ...(requested ? { ip: requested } : {}) });
      this.network = { kind: 'pod', netns: net.netns };
      this.podIP = net.ip;
      const domain = this.ctx.clusterDomain;
      await this.ctx.network.setPodDns(this.uid, {
        nameserver: this.ctx.network.plan.clusterDnsIp,
        searches: [`${this.namespace}.svc.${domain}`, `svc.${domain}`, domain],
        ndots: 5,
        hostname: this.pod.spec.hostname ?? this.name,
      });
      if (sysctls.sysctls.length) {
        try {
          if (!this.ctx.network.setPodSysctls) throw new Error('this sandbox network cannot set sysctls');
          await this.ctx.network.setPodSysctls(this.uid, sysctls.sysctls);
        } catch (err) {
          return this.reject({ reason: SYSCTL_FORBIDDEN, message: `Pod forbidden sysctl: could not set ${sysctls.sysctls.map((x) => x.name).join(', ')} in the pod network namespace: ${(err as Error).message}` });
        }
      }
    }
    if (this.terminating) return;
    this.startTime = this.pod.status?.startTime ?? iso(this.ctx.clock.now());
    this.writeStatus();
    await this.prepareVolumesOnce();
    this.scheduleVolumeRefresh();
    for (const slot of this.slots) await this.launch(slot);
  }

  /** The pod cannot run on this node: no container starts and its status says why. */
  private reject(why: { reason: string; message: string }): void {
    this.rejection = why;
    this.log.warn(why, 'pod rejected');
    this.writeStatus();
  }

  /**
   * `dnsPolicy: ClusterFirstWithHostNet`: a host-network pod still resolves cluster names. Its
   * containers get a resolv.conf naming the cluster DNS Service (reached through the node's
   * kube-proxy rules) and `hosts: files dns`, bind-mounted in their private mount namespace.
   */
  private async hostNetworkClusterDns(): Promise<void> {
    const dir = join(this.podDir, 'etc');
    await mkdir(dir, { recursive: true });
    const domain = this.ctx.clusterDomain;
    const resolvConf = join(dir, 'resolv.conf');
    const nsswitch = join(dir, 'nsswitch.conf');
    await writeFile(resolvConf, renderResolvConf({ nameserver: this.ctx.network.plan.clusterDnsIp, searches: [`${this.namespace}.svc.${domain}`, `svc.${domain}`, domain], ndots: 5 }));
    await writeFile(nsswitch, renderNsswitch(await readFile('/etc/nsswitch.conf', 'utf8').catch(() => '')));
    this.dnsMounts = [
      { source: resolvConf, target: '/etc/resolv.conf', readOnly: true },
      { source: nsswitch, target: '/etc/nsswitch.conf', readOnly: true },
    ];
  }

  /** Does a volume of this pod show ConfigMap (or Secret) `name`? Then its changes must reach the files. */
  mountsObject(kind: 'ConfigMap' | 'Secret', namespace: string, name: string): boolean {
    if (namespace !== this.namespace) return false;
    for (const volume of this.pod.spec.volumes ?? []) {
      if (kind === 'ConfigMap' && volume.configMap?.name === name) return true;
      if (kind === 'Secret' && volume.secret?.secretName === name) return true;
      for (const source of volume.projected?.sources ?? []) {
        if (kind === 'ConfigMap' && source.configMap?.name === name) return true;
        if (kind === 'Secret' && source.secret?.name === name) return true;
      }
    }
    return false;
  }

  /**
   * Rewrites the pod's volumes now (a ConfigMap or Secret it mounts changed). The periodic
   * refresh still runs, for projected token rotation; a missing object keeps the old files.
   */
  refreshVolumes(): void {
    if (this.terminating || !this.volumes) return;
    void this.rewriteVolumes();
  }

  /** One rewrite at a time; never rejects (a failure is logged and the old files stay). */
  private rewriteVolumes(): Promise<void> {
    if (this.volumeRefresh) {
      this.volumeRefreshAgain = true;
      return this.volumeRefresh;
    }
    const run = async (): Promise<void> => {
      do {
        this.volumeRefreshAgain = false;
        if (this.terminating) return;
        try {
          this.volumes = await prepareVolumes(this.pod, this.podDir, this.ctx.sources, this.facts());
        } catch (err) {
          this.log.warn({ err }, 'could not refresh the pod volumes');
        }
      } while (this.volumeRefreshAgain);
    };
    this.volumeRefresh = run().finally(() => {
      this.volumeRefresh = undefined;
    });
    return this.volumeRefresh;
  }

  private scheduleVolumeRefresh(): void {
    this.refreshTimer?.cancel();
    if (this.terminating) return;
    this.refreshTimer = this.ctx.clock.setTimeout(() => {
      if (this.terminating) return;
      void this.rewriteVolumes().finally(() => this.scheduleVolumeRefresh());
    }, VOLUME_REFRESH_MS);
  }

  private async prepareVolumesOnce(): Promise<boolean> {
    if (this.volumes) return true;
    try {
      this.volumes = await prepareVolumes(this.pod, this.podDir, this.ctx.sources, this.facts());
      return true;
    } catch (err) {
      this.log.warn({ err }, 'volumes not ready');
      return false;
    }
  }

  private facts(): { podIP?: string; hostIP?: string } {
    return { ...(this.podIP ? { podIP: this.podIP } : {}), ...(this.hostIP ? { hostIP: this.hostIP } : {}) };
  }

  private setState(slot: ContainerSlot, state: ContainerState, changes: Partial<ContainerStatus> = {}): void {
    slot.status = { ...slot.status, ...changes, state };
    this.writeStatus();
  }

  private retryLater(slot: ContainerSlot, ms: number, action: () => void): void {
    slot.timer?.cancel();
    slot.timer = this.ctx.clock.setTimeout(() => {
      slot.timer = undefined;
      if (!this.terminating) action();
    }, ms);
  }

  /** Starts (or restarts) one container; any failure ends in its waiting state and a retry. */
  private async launch(slot: ContainerSlot): Promise<void> {
    try {
      await this.launchOnce(slot);
    } catch (err) {
      this.log.warn({ err, container: slot.spec.name }, 'container could not start; retrying');
      this.setState(slot, { waiting: { reason: 'RunContainerError', message: (err as Error).message } });
      this.retryLater(slot, CONFIG_RETRY_MS, () => void this.launch(slot));
    }
  }

  private async launchOnce(slot: ContainerSlot): Promise<void> {
    if (this.terminating || !this.network) return;
    const { spec } = slot;
    const resolved = (this.ctx.resolveImage ?? resolveImage)(spec.image ?? '');
    if ('error' in resolved) {
      this.setState(slot, { waiting: { reason: 'ErrImagePull', message: resolved.error } });
      this.retryLater(slot, IMAGE_BACKOFF_MS, () => this.setState(slot, { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${spec.image}": ${resolved.error}` } }));
      return;
    }
    const configError = (message: string): void => {
      this.setState(slot, { waiting: { reason: 'CreateContainerConfigError', message } });
      this.retryLater(slot, CONFIG_RETRY_MS, () => void this.launch(slot));
    };
    if (!(await this.prepareVolumesOnce()) || !this.volumes) return configError('a volume of the pod is not available yet (see the kubelet log)');
    const envResult = resolveContainerEnv(this.pod, spec, this.ctx.sources, this.facts());
    if ('error' in envResult) return configError(envResult.error);
    const env = envResult.env;
    let mounts;
    try {
      mounts = [...this.dnsMounts, ...containerMounts(spec, this.volumes)];
    } catch (err) {
      return configError((err as Error).message);
    }
    const containerDir = join(this.podDir, 'containers', spec.name);
    const launch = containerLaunch(
      resolved,
      {
        ...(spec.command ? { command: spec.command.map((a) => expandVariables(a, env)) } : {}),
        ...(spec.args ? { args: spec.args.map((a) => expandVariables(a, env)) } : {}),
        ...(spec.ports ? { ports: spec.ports } : {}),
      },
      containerDir,
    );
    await mkdir(containerDir, { recursive: true });
    for (const file of launch.files) {
      await mkdir(dirname(join(containerDir, file.path)), { recursive: true });
      await writeFile(join(containerDir, file.path), file.content);
    }
    const logDir = containerLogDirectory(this.ctx.stateDir, this.uid, spec.name);
    await mkdir(logDir, { recursive: true });
    const logFile = join(logDir, `${slot.status.restartCount}.log`);
    await unlink(join(logDir, 'current.log')).catch(() => undefined);
    await symlink(`${slot.status.restartCount}.log`, join(logDir, 'current.log')).catch(() => undefined);
    if (slot.mountPoints.length === 0) slot.mountPoints = await claimMountPoints(mounts);
    if (this.terminating) return;
    const process = await this.runtime.start({ argv: launch.argv, env, network: this.network, mounts, logFile, ...(spec.workingDir ? { cwd: spec.workingDir } : {}) });
    const startedAtMs = this.ctx.clock.now();
    const instance: Instance = { process, startedAtMs, env, probers: [], livenessKill: false };
    slot.instance = instance;
    await this.ctx.pids.add({ pid: process.pid, ...(process.startTicks !== undefined ? { startTicks: process.startTicks } : {}), pod: `${this.namespace}/${this.name}`, container: spec.name });
    const record: ContainerRecord = { pid: process.pid, argv: launch.argv, env, network: this.network, restartCount: slot.status.restartCount };
    await writeFile(containerRecordPath(this.ctx.stateDir, this.uid, spec.name), JSON.stringify(record, null, 1)).catch(() => undefined);
    this.log.info({ container: spec.name, pid: process.pid, argv: launch.argv }, 'container started');
    void process.exited.then((exit) => this.onExit(slot, instance, exit));
    const hasStartup = Boolean(spec.startupProbe);
    this.setState(slot, { running: { startedAt: iso(startedAtMs) } }, { imageID: resolved.imageId, containerID: `amesh://${process.pid}`, started: !hasStartup, ready: !hasStartup && !spec.readinessProbe });
    if (hasStartup) this.startProbe(slot, instance, 'startup');
    else this.startRunningProbes(slot, instance);
  }

  private startRunningProbes(slot: ContainerSlot, instance: Instance): void {
    if (slot.spec.livenessProbe) this.startProbe(slot, instance, 'liveness');
    if (slot.spec.readinessProbe) this.startProbe(slot, instance, 'readiness');
  }

  private startProbe(slot: ContainerSlot, instance: Instance, kind: ProbeKind): void {
    const probe = kind === 'startup' ? slot.spec.startupProbe : kind === 'liveness' ? slot.spec.livenessProbe : slot.spec.readinessProbe;
    if (!probe) return;
    const plan = probePlan(kind, probe, slot.spec, this.podIP ?? '127.0.0.1');
    if ('error' in plan) {
      this.log.warn({ container: slot.spec.name }, plan.error);
      return;
    }
    const prober = new Prober({
      plan,
      clock: this.ctx.clock,
      attempt: () => this.ctx.probeRunner(plan.action, { pid: instance.process.pid, env: instance.env, timeoutMs: plan.timing.timeoutMs }),
      onChange: (healthy) => this.onProbeChange(slot, instance, prober, kind, healthy),
    });
    instance.probers.push(prober);
    prober.start();
  }

  private onProbeChange(slot: ContainerSlot, instance: Instance, prober: Prober, kind: ProbeKind, healthy: boolean): void {
    if (slot.instance !== instance || this.terminating) return;
    if (kind === 'readiness') {
      this.setState(slot, slot.status.state, { ready: healthy });
      return;
    }
    if (kind === 'startup' && healthy) {
      prober.stop();
      this.setState(slot, slot.status.state, { started: true, ready: !slot.spec.readinessProbe });
      this.startRunningProbes(slot, instance);
      return;
    }
    if (!healthy) {
      this.log.info({ container: slot.spec.name, probe: kind }, 'probe failed: restarting the container');
      instance.livenessKill = true;
      const grace = (this.pod.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000;
      void this.runtime.stop(instance.process, grace);
    }
  }

  private onExit(slot: ContainerSlot, instance: Instance, exit: ContainerExit): void {
    for (const prober of instance.probers) prober.stop();
    void this.ctx.pids.remove(instance.process.pid).catch(() => undefined);
    if (slot.instance !== instance) return;
    slot.instance = undefined;
    if (this.terminating) return;
    const now = this.ctx.clock.now();
    const code = exitCode(exit);
    const terminated: ContainerState = {
      terminated: {
        exitCode: code,
        ...(exit.signal ? { signal: SIGNALS[exit.signal] ?? 9 } : {}),
        reason: code === 0 ? 'Completed' : 'Error',
        startedAt: iso(instance.startedAtMs),
        finishedAt: iso(now),
        containerID: `amesh://${instance.process.pid}`,
      },
    };
    this.log.info({ container: slot.spec.name, exitCode: code, signal: exit.signal, liveness: instance.livenessKill }, 'container exited');
    if (!shouldRestart(this.pod.spec.restartPolicy, code)) {
      this.setState(slot, terminated, { ready: false, started: false });
      return;
    }
    const { delayMs, state } = restartBackoff(slot.backoff, now - instance.startedAtMs);
    slot.backoff = state;
    const restart = (): void => {
      slot.status = { ...slot.status, restartCount: slot.status.restartCount + 1 };
      void this.launch(slot);
    };
    if (delayMs === 0) {
      slot.status = { ...slot.status, lastState: terminated, ready: false, started: false };
      restart();
      return;
    }
    const message = `back-off ${Math.round(delayMs / 1000)}s restarting failed container=${slot.spec.name} pod=${this.name}_${this.namespace}(${this.uid})`;
    this.setState(slot, { waiting: { reason: 'CrashLoopBackOff', message } }, { lastState: terminated, ready: false, started: false });
    this.retryLater(slot, delayMs, restart);
  }

  /** The status this worker would report now (pure computation over its state). */
  currentStatus(): PodStatus {
    if (this.rejection) {
      const { containerStatuses: _containers, ...rest } = computePodStatus({
        restartPolicy: 'Never',
        containers: [],
        ...(this.hostIP ? { hostIP: this.hostIP } : {}),
        ...(this.lastStatus ? { previous: this.lastStatus } : {}),
        now: iso(this.ctx.clock.now()),
      });
      return { ...rest, phase: 'Failed', reason: this.rejection.reason, message: this.rejection.message };
    }
    return computePodStatus({
      restartPolicy: this.pod.spec.restartPolicy,
      containers: this.slots.map((s) => s.status),
      ...(this.podIP ? { podIP: this.podIP } : {}),
      ...(this.hostIP ? { hostIP: this.hostIP } : {}),
      ...(this.startTime ? { startTime: this.startTime } : {}),
      ...(this.lastStatus ? { previous: this.lastStatus } : {}),
      now: iso(this.ctx.clock.now()),
    });
  }

  private writeStatus(): void {
    if (this.terminating) return;
    this.statusDirty = true;
    this.statusWriting ??= this.flushStatus().finally(() => {
      this.statusWriting = undefined;
    });
  }

  /** Resolves once every status change so far is written. */
  async statusSettled(): Promise<void> {
    while (this.statusWriting) await this.statusWriting;
  }

  private async flushStatus(): Promise<void> {
    // Let changes made in the same turn (several containers starting) coalesce into one write.
    await Promise.resolve();
    while (this.statusDirty && !this.terminating) {
      this.statusDirty = false;
      const status = this.currentStatus();
      this.lastStatus = status;
      try {
        replaceStatus(this.ctx.store, 'v1', 'Pod', this.namespace, this.name, status, 'amesh-kubelet');
      } catch (err) {
        if (err instanceof ApiError && err.code === 404) return;
        this.log.warn({ err }, 'could not write the pod status');
      }
      await Promise.resolve();
    }
  }

  /**
   * Stops every container (SIGTERM, grace period, SIGKILL), removes the pod's network and
   * directory; with `deleteObject`, finishes a graceful deletion in the store. Idempotent.
   */
  terminate(o: { deleteObject?: boolean; graceSeconds?: number | undefined; keepNetwork?: boolean } = {}): Promise<void> {
    this.terminated ??= (async () => {
      this.terminating = true;
      this.refreshTimer?.cancel();
      await this.starting.catch(() => undefined);
      this.refreshTimer?.cancel();
      // A rewrite racing the directory's removal below failed it with ENOTEMPTY.
      await this.volumeRefresh;
      const graceMs = (o.graceSeconds ?? this.pod.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000;
      await Promise.all(
        this.slots.map(async (slot) => {
          slot.timer?.cancel();
          const instance = slot.instance;
          if (!instance) return;
          for (const prober of instance.probers) prober.stop();
          await this.runtime.stop(instance.process, graceMs);
          await this.ctx.pids.remove(instance.process.pid).catch(() => undefined);
        }),
      );
      for (const slot of this.slots) await releaseMountPoints(slot.mountPoints);
      if (!o.keepNetwork) {
        if (!this.pod.spec.hostNetwork) await this.ctx.network.removePod(this.uid).catch((err: unknown) => this.log.warn({ err }, 'could not remove the pod network'));
        await rm(this.podDir, { recursive: true, force: true });
      }
      this.log.info('pod stopped');
      if (o.deleteObject) {
        const current = this.ctx.store.get('v1', 'Pod', this.namespace, this.name);
        if (current?.metadata.uid === this.uid && current.metadata.deletionTimestamp) {
          try {
            this.ctx.store.delete('v1', 'Pod', this.namespace, this.name, { gracePeriodSeconds: 0, preconditions: { uid: this.uid } });
          } catch (err) {
            if (!(err instanceof ApiError && (err.code === 404 || err.code === 409))) this.log.warn({ err }, 'could not finish deleting the pod');
          }
        }
      }
    })();
    return this.terminated;
  }
}
