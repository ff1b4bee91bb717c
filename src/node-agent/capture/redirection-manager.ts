/**
 * Owns traffic capture on this node: picks eBPF or the nftables fallback at start (and says
 * which, with the reason), installs policy routing, and keeps the kernel in step with the
 * mesh state. Order invariant (DESIGN §2): listeners are up before `start`; enrolment map
 * entries are written last on apply and removed first on uninstall.
 *
 * Reconcile (issue #10): capture outlives the agent process (pinned maps, tc filters, routing,
 * the nft table), so a start finds an earlier run's state — possibly damaged while no agent ran.
 * `start` and the first `apply` compare the kernel with the desired state before changing it and
 * log every difference as a repair (`capture: repaired …`: the object, what was wrong, what was
 * done), then end with one `capture: start-up reconcile done` line with the count; `repairs()`
 * counts them by trigger and kind. On a node where nothing of amesh was found (no routing rule,
 * no pinned maps, no nft table) the start is an install, not a repair, and is logged as such.
 * After the first apply a link watcher (link-watcher.ts: `ip monitor`, polling as a fallback)
 * re-runs the same pass with the last state whenever links or routes change, so a recreated pod
 * veth (new ifindex) is captured again within a second; passes are serialized with `apply`.
 */
import { isIP } from 'node:net';
import type { AgentConfig } from '../../config/agent-config.js';
import { AmeshError, describeError } from '../../errors/amesh-error.js';
import type { NativeBinding } from '../../native/types.js';
import type { CommandRunner } from '../../os/command.js';
import { ensureBpffs } from '../../os/bpffs.js';
import type { Logger } from '../../telemetry/logger.js';
import type { MeshState } from '../state/mesh-state.js';
import { bpfObjectPath } from './bpf-contract.js';
import { existsSync } from 'node:fs';
import type { CaptureBackend, CaptureListener, CaptureRepair, CaptureStatus, CaptureTargets } from './capture-backend.js';
import { EbpfCapture, uninstallEbpfLeftovers } from './ebpf-capture.js';
import { ipv6Available, listLinks, nodeAddresses, routeDevices } from './interfaces.js';
import { NFT_TABLE, NftCapture, uninstallNftLeftovers, type NftRulesetOptions } from './nft-capture.js';
import { watchLinks, type LinkWatcher, type LinkWatcherOptions } from './link-watcher.js';
import { inspectRouting, installRouting, removeRouting, type RoutingSpec } from './routing.js';

const LINK_LOCAL = ['169.254.0.0/16', 'fe80::/10'];

export interface RedirectionDeps {
  config: Readonly<AgentConfig>;
  node: string;
  /** Interfaces named in the local config; otherwise every non-pod, non-loopback link. */
  uplinks: string[] | undefined;
  commands: CommandRunner;
  logger: Logger;
  /** Lazily loaded: nftables mode must not need the addon. */
  native: () => NativeBinding;
  /** Injected for tests; default `watchLinks` (ip monitor, polling fallback). */
  watchLinks?: (opts: LinkWatcherOptions) => LinkWatcher;
  /** Quiet time after a link event before the pass runs (coalesces a veth's burst of events). */
  linkDebounceMs?: number;
}

/** What started a reconcile pass: the agent's start, or a link/route change afterwards. */
export type ReconcileTrigger = 'start' | 'link';

const LINK_DEBOUNCE_MS = 20;
/** A failed link pass (an interface vanished mid-pass) is retried once after this long. */
const LINK_RETRY_MS = 300;

export function routingSpec(config: Readonly<AgentConfig>): RoutingSpec {
  return { mark: config.captureMark, mask: config.captureMask, table: config.routeTable, priority: config.routeRulePriority };
}

/** Pure: what the nftables rules (fallback or post-DNAT) need from the agent config. */
export function nftOptions(config: Readonly<AgentConfig>): NftRulesetOptions {
  return {
    captureMark: config.captureMark,
    captureMask: config.captureMask,
    socketMark: config.socketMark,
    failOpen: config.failOpen,
    ports: { outbound: config.outboundPort, inboundPlaintext: config.inboundPlaintextPort, hbone: config.hbonePort },
    listenAddress4: config.listenAddress4,
    listenAddress6: config.listenAddress6,
  };
}

async function nftTableExists(commands: CommandRunner): Promise<boolean> {
  try {
    const { code } = await commands.run('nft', ['list', 'table', 'inet', NFT_TABLE], { allowFailure: true });
    return code === 0;
  } catch {
    return false; // no nft binary: no table of ours either
  }
}

/** Pure: the exempt list for a node. */
export function exemptCidrs(nodeIps: string[], extra: string[]): string[] {
  const own = nodeIps.map((ip) => `${ip}/${isIP(ip) === 6 ? 128 : 32}`);
  return [...new Set([...own, ...LINK_LOCAL, ...extra])];
}

export class RedirectionManager {
  private backend: CaptureBackend | undefined;
  private fallbackReason: string | undefined;
  private lastState: MeshState | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** Found something of an earlier run at start: differences are repairs, not a fresh install. */
  private earlierRun = false;
  private startupRepairs: CaptureRepair[] = [];
  private reconciled = false;
  private watcher: LinkWatcher | undefined;
  private linkTimer: NodeJS.Timeout | undefined;
  /** When the first not-yet-handled link event of the current batch arrived. */
  private linkEventAt: number | undefined;
  private closed = false;
  private readonly repairCounts = new Map<string, { trigger: ReconcileTrigger; kind: string; count: number }>();
  private linkPasses = 0;
  private lastLinkPassMs: number | undefined;

  constructor(private readonly deps: RedirectionDeps) {}

  get mode(): string {
    return this.backend?.mode ?? 'none';
  }

  async start(): Promise<void> {
    const { config, logger, commands } = this.deps;
    if (config.captureMode === 'none') {
      logger.warn('capture: disabled (AMESH_CAPTURE_MODE=none); traffic is only proxied when sent to the listeners directly');
      return;
    }
    const families: Array<4 | 6> = (await ipv6Available(commands)) ? [4, 6] : [4];
    const routingRepairs = await inspectRouting(commands, routingSpec(config), families);
    this.earlierRun = routingRepairs.length < families.length * 2 || existsSync(config.bpfPinRoot) || (await nftTableExists(commands));
    if (this.earlierRun) this.report('start', routingRepairs);
    else logger.info({ pinRoot: config.bpfPinRoot }, 'capture: no state of an earlier run on this node (fresh install)');
    await installRouting(commands, routingSpec(config), families);

    if (config.captureMode === 'ebpf' || config.captureMode === 'auto') {
      try {
        this.backend = await this.loadEbpf();
      } catch (err) {
        if (config.captureMode === 'ebpf') {
          throw new AmeshError('AMESH_BPF_UNAVAILABLE', 'eBPF capture was required (AMESH_CAPTURE_MODE=ebpf) but cannot be used', {
            cause: err,
            hint: 'check the kernel has BPF and tc clsact, and that the agent runs privileged; or use AMESH_CAPTURE_MODE=nftables',
          });
        }
        this.fallbackReason = describeError(err).split('\n').join('; ');
        logger.warn({ reason: this.fallbackReason }, 'capture: eBPF unavailable, falling back to nftables TPROXY');
      }
    }
    if (!this.backend) {
      // Drop eBPF leftovers of an earlier run so the two modes never capture twice.
      try {
        await uninstallEbpfLeftovers(this.deps.native(), commands, config.bpfPinRoot);
      } catch {
        // without the addon there can be no leftovers of ours
      }
      this.backend = new NftCapture(commands, logger, nftOptions(config), 'all');
    }
    // In eBPF mode `table inet amesh` is not removed here: the first apply replaces it atomically
    // (dropping a fallback run's pre-DNAT chain), and until then the post-DNAT capture of the
    // previous run keeps Service traffic to enrolled pods captured (fail closed across restarts).
    logger.info({ mode: this.backend.mode, ...(this.fallbackReason ? { fallbackReason: this.fallbackReason } : {}) }, `capture mode: ${this.backend.mode}`);
  }

  /** See CaptureBackend.useListeners; a no-op without capture or with nftables. */
  useListeners(listeners: readonly CaptureListener[]): void {
    this.backend?.useListeners?.(listeners);
  }

  private async loadEbpf(): Promise<CaptureBackend> {
    const { config, logger, commands } = this.deps;
    if (config.bpfPinRoot.startsWith('/sys/fs/bpf/') && (await ensureBpffs(commands))) {
      logger.info('capture: mounted the BPF filesystem on /sys/fs/bpf');
    }
    const capture = EbpfCapture.load({
      native: this.deps.native(),
      commands,
      logger,
      objectPath: config.bpfObjectPath ?? bpfObjectPath(),
      pinRoot: config.bpfPinRoot,
      captureMark: config.captureMark,
      listenerMark: config.socketMark,
      failOpen: config.failOpen,
      ports: { outbound: config.outboundPort, inboundPlaintext: config.inboundPlaintextPort, hbone: config.hbonePort },
      serviceDnat: new NftCapture(commands, logger, nftOptions(config), 'service-dnat'),
    });
    // libbpf's feature probes can lie; attaching for real is the only proof (DESIGN §2).
    const uplinks = await this.uplinks(new Set());
    if (uplinks[0]) capture.attach(uplinks[0]);
    return capture;
  }

  private async uplinks(podInterfaces: Set<string>): Promise<string[]> {
    if (this.deps.uplinks) return this.deps.uplinks;
    const links = await listLinks(this.deps.commands);
    return links.filter((l) => l.name !== 'lo' && !podInterfaces.has(l.name)).map((l) => l.name);
  }

  /**
   * Compute what to capture from the mesh state and make the kernel match. The first call after
   * `start` is the start-up reconcile (differences logged as repairs) and starts the link watcher.
   */
  apply(state: MeshState): Promise<CaptureTargets | undefined> {
    this.lastState = state;
    return this.serialized(() => this.pass(state, this.reconciled ? undefined : 'start'));
  }

  private serialized<T>(run: () => Promise<T>): Promise<T> {
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async pass(state: MeshState, trigger: ReconcileTrigger | undefined, eventAt?: number): Promise<CaptureTargets | undefined> {
    const backend = this.backend;
    if (!backend || this.closed) return undefined;
    const targets = await this.targets(state);
    const repairs = trigger && backend.inspect ? await backend.inspect(targets, { nftables: trigger === 'start' }) : [];
    await backend.apply(targets, { linkPass: trigger === 'link' });
    if (trigger === 'start') {
      const all = [...this.startupRepairs, ...repairs];
      if (this.earlierRun) this.report('start', repairs);
      this.deps.logger.info(
        { repairs: this.earlierRun ? all.length : 0, ...(this.earlierRun ? {} : { installed: all.length }), interfaces: targets.interfaces.length, enrolled: targets.enrolledIps.length },
        this.earlierRun ? `capture: start-up reconcile done, ${all.length} repair(s)` : 'capture: start-up reconcile done (fresh install)',
      );
      this.reconciled = true;
      this.startWatcher();
    } else if (trigger === 'link') {
      this.report('link', repairs, eventAt);
    }
    return targets;
  }

  /** Log each repair and count it by trigger and kind. */
  private report(trigger: ReconcileTrigger, repairs: CaptureRepair[], eventAt?: number): void {
    for (const r of repairs) {
      if (trigger === 'start') this.startupRepairs.push(r);
      const key = `${trigger}/${r.kind}`;
      const entry = this.repairCounts.get(key) ?? { trigger, kind: r.kind, count: 0 };
      entry.count++;
      this.repairCounts.set(key, entry);
      const fields = { trigger, kind: r.kind, object: r.object, problem: r.problem, action: r.action };
      if (trigger === 'start') this.deps.logger.warn(fields, `capture: repaired ${r.object}: ${r.problem}; ${r.action}`);
      else this.deps.logger.info({ ...fields, ...(eventAt !== undefined ? { sinceEventMs: Date.now() - eventAt } : {}) }, `capture: after a link change, ${r.object}: ${r.problem}; ${r.action}`);
    }
  }

  private startWatcher(): void {
    if (this.watcher || this.closed) return;
    const { commands, logger } = this.deps;
    this.watcher = (this.deps.watchLinks ?? watchLinks)({ commands, logger, onChange: (what) => this.linkChanged(what) });
  }

  private linkChanged(what: string): void {
    if (this.closed) return;
    this.linkEventAt ??= Date.now();
    this.deps.logger.debug({ event: what }, 'capture: link or route change');
    if (this.linkTimer) return;
    this.linkTimer = setTimeout(() => this.runLinkPass(), this.deps.linkDebounceMs ?? LINK_DEBOUNCE_MS);
  }

  private runLinkPass(retry = true, retryEventAt?: number): void {
    const eventAt = retryEventAt ?? this.linkEventAt;
    void this.serialized(async () => {
      // Events from here on start a new batch (and a new pass after this one).
      if (retryEventAt === undefined) {
        this.linkTimer = undefined;
        this.linkEventAt = undefined;
      }
      const state = this.lastState;
      if (!state || this.closed) return;
      try {
        await this.pass(state, 'link', eventAt);
        this.linkPasses++;
        this.lastLinkPassMs = eventAt !== undefined ? Date.now() - eventAt : undefined;
        this.deps.logger.debug({ ms: this.lastLinkPassMs }, 'capture: re-applied after a link change');
      } catch (err) {
        this.deps.logger.warn({ err: describeError(err), retry }, 'capture: re-apply after a link change failed');
        if (retry && !this.closed) setTimeout(() => this.runLinkPass(false, eventAt ?? Date.now()), LINK_RETRY_MS).unref();
      }
    });
  }

  /** Repairs so far by trigger and kind (for a counter metric), plus the link passes run. */
  repairs(): { repairs: Array<{ trigger: ReconcileTrigger; kind: string; count: number }>; linkPasses: number; lastLinkPassMs?: number; watcher?: 'monitor' | 'poll' } {
    return {
      repairs: [...this.repairCounts.values()].map((e) => ({ ...e })),
      linkPasses: this.linkPasses,
      ...(this.lastLinkPassMs !== undefined ? { lastLinkPassMs: this.lastLinkPassMs } : {}),
      ...(this.watcher ? { watcher: this.watcher.kind } : {}),
    };
  }

  private async targets(state: MeshState): Promise<CaptureTargets> {
    const { node, commands, config, logger } = this.deps;
    const local = state.workloadsOnNode(node);
    const podInterfaces = new Set<string>();
    const devices = await routeDevices(commands, local.flatMap((w) => w.addresses));
    for (const w of local) {
      for (const ip of w.addresses) {
        const dev = devices.get(ip);
        if (dev) podInterfaces.add(dev);
        else logger.warn({ workload: w.uid, ip }, 'capture: no route to local pod; it is not captured until its veth appears');
      }
    }
    const targets: CaptureTargets = {
      enrolledIps: state.enrolledOnNode(node).flatMap((w) => w.addresses),
      interfaces: [...new Set([...podInterfaces, ...(await this.uplinks(podInterfaces))])],
      exemptCidrs: exemptCidrs(await nodeAddresses(commands), config.extraExemptCidrs),
    };
    return targets;
  }

  /** What /config_dump shows as `capture`: the backend's status, the fallback reason, and (once capture runs) the reconcile counts. */
  status(): CaptureStatus & { fallbackReason?: string; reconcile?: ReturnType<RedirectionManager['repairs']> } {
    const base = this.backend?.status() ?? { mode: 'none' as const, interfaces: [], enrolled: 0 };
    return { ...base, ...(this.fallbackReason ? { fallbackReason: this.fallbackReason } : {}), ...(this.backend ? { reconcile: this.repairs() } : {}) };
  }

  /** Packets per reason from the capture program (eBPF); undefined in nftables mode or without capture. */
  reasonCounters(): Record<string, number> | undefined {
    return this.backend?.reasonCounters?.();
  }

  /** Release handles; capture stays installed so pods stay captured (and fail closed). */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.linkTimer) clearTimeout(this.linkTimer);
    this.linkTimer = undefined;
    await this.chain;
    await this.backend?.close();
  }

  /** Remove everything capture installed on this node, whatever mode put it there. */
  static async uninstall(deps: RedirectionDeps): Promise<void> {
    const { commands, config } = deps;
    // Enrolment goes first: removing the pinned maps (with the filters) stops capture.
    let ebpfFailure: unknown;
    try {
      await uninstallEbpfLeftovers(deps.native(), commands, config.bpfPinRoot);
    } catch (err) {
      ebpfFailure = err;
      deps.logger.warn({ err: describeError(err) }, 'uninstall: eBPF cleanup incomplete');
    }
    await uninstallNftLeftovers(commands);
    await removeRouting(commands, routingSpec(config));
    // The rest is done; still fail, so `amesh uninstall` (its cleanup DaemonSet) names this node.
    if (ebpfFailure !== undefined) {
      throw new AmeshError('AMESH_CAPTURE_FAILED', `eBPF cleanup incomplete: ${describeError(ebpfFailure)}`, {
        cause: ebpfFailure,
        hint: `tc filters or pins under ${config.bpfPinRoot} may remain; check \`tc filter show dev <if> ingress\` and remove them, then run \`amesh node-agent --uninstall\` again`,
      });
    }
  }
}
