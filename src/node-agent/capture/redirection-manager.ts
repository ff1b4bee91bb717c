/**
 * Owns traffic capture on this node: picks eBPF or the nftables fallback at start (and says
 * which, with the reason), installs policy routing, and keeps the kernel in step with the
 * mesh state. Order invariant (DESIGN §2): listeners are up before `start`; enrolment map
 * entries are written last on apply and removed first on uninstall.
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
import type { CaptureBackend, CaptureStatus, CaptureTargets } from './capture-backend.js';
import { EbpfCapture, uninstallEbpfLeftovers } from './ebpf-capture.js';
import { ipv6Available, listLinks, nodeAddresses, routeDevice } from './interfaces.js';
import { NftCapture, uninstallNftLeftovers, type NftRulesetOptions } from './nft-capture.js';
import { installRouting, removeRouting, type RoutingSpec } from './routing.js';

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
}

export function routingSpec(config: Readonly<AgentConfig>): RoutingSpec {
  return { mark: config.captureMark, mask: config.captureMask, table: config.routeTable, priority: config.routeRulePriority };
}

/** Pure: what the nftables rules (fallback or post-DNAT) need from the agent config. */
export function nftOptions(config: Readonly<AgentConfig>): NftRulesetOptions {
  return {
    captureMark: config.captureMark,
    captureMask: config.captureMask,
    failOpen: config.failOpen,
    ports: { outbound: config.outboundPort, inboundPlaintext: config.inboundPlaintextPort, hbone: config.hbonePort },
    listenAddress4: config.listenAddress4,
    listenAddress6: config.listenAddress6,
  };
}

/** Pure: the exempt list for a node. */
export function exemptCidrs(nodeIps: string[], extra: string[]): string[] {
  const own = nodeIps.map((ip) => `${ip}/${isIP(ip) === 6 ? 128 : 32}`);
  return [...new Set([...own, ...LINK_LOCAL, ...extra])];
}

export class RedirectionManager {
  private backend: CaptureBackend | undefined;
  private fallbackReason: string | undefined;

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

  /** Compute what to capture from the mesh state and make the kernel match. */
  async apply(state: MeshState): Promise<CaptureTargets | undefined> {
    if (!this.backend) return undefined;
    const { node, commands, config, logger } = this.deps;
    const local = state.workloadsOnNode(node);
    const podInterfaces = new Set<string>();
    for (const w of local) {
      for (const ip of w.addresses) {
        const dev = await routeDevice(commands, ip);
        if (dev) podInterfaces.add(dev);
        else logger.warn({ workload: w.uid, ip }, 'capture: no route to local pod; it is not captured until its veth appears');
      }
    }
    const targets: CaptureTargets = {
      enrolledIps: state.enrolledOnNode(node).flatMap((w) => w.addresses),
      interfaces: [...new Set([...podInterfaces, ...(await this.uplinks(podInterfaces))])],
      exemptCidrs: exemptCidrs(await nodeAddresses(commands), config.extraExemptCidrs),
    };
    await this.backend.apply(targets);
    return targets;
  }

  status(): CaptureStatus & { fallbackReason?: string } {
    const base = this.backend?.status() ?? { mode: 'none' as const, interfaces: [], enrolled: 0 };
    return this.fallbackReason ? { ...base, fallbackReason: this.fallbackReason } : base;
  }

  /** Packets per reason from the capture program (eBPF); undefined in nftables mode or without capture. */
  reasonCounters(): Record<string, number> | undefined {
    return this.backend?.reasonCounters?.();
  }

  /** Release handles; capture stays installed so pods stay captured (and fail closed). */
  async close(): Promise<void> {
    await this.backend?.close();
  }

  /** Remove everything capture installed on this node, whatever mode put it there. */
  static async uninstall(deps: RedirectionDeps): Promise<void> {
    const { commands, config } = deps;
    // Enrolment goes first: removing the pinned maps (with the filters) stops capture.
    try {
      await uninstallEbpfLeftovers(deps.native(), commands, config.bpfPinRoot);
    } catch (err) {
      deps.logger.warn({ err: describeError(err) }, 'uninstall: eBPF cleanup incomplete');
    }
    await uninstallNftLeftovers(commands);
    await removeRouting(commands, routingSpec(config));
  }
}
