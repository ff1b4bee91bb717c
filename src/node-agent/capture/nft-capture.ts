/**
 * Fallback capture with nftables TPROXY, used when eBPF cannot be loaded or attached here.
 * Same listeners, same mark and routing table as the eBPF path; the ruleset is rendered by a
 * pure function and swapped atomically with one `nft -f` transaction.
 *
 * Fail closed: a SYN that a tproxy rule could not hand to a listener falls through to a drop.
 */
import { isIP } from 'node:net';
import type { CommandRunner } from '../../os/command.js';
import type { Logger } from '../../telemetry/logger.js';
import type { CaptureBackend, CapturePorts, CaptureStatus, CaptureTargets } from './capture-backend.js';

export const NFT_TABLE = 'amesh';

export interface NftRulesetOptions {
  captureMark: number;
  failOpen: boolean;
  ports: CapturePorts;
  listenAddress4: string;
  listenAddress6: string;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const quoted = (names: string[]): string => names.map((n) => JSON.stringify(n)).join(', ');
const elements = (items: string[]): string => (items.length ? ` elements = { ${items.join(', ')} }` : '');

/** The whole `table inet amesh`, replacing any previous one in the same transaction. */
export function renderNftRuleset(targets: CaptureTargets, o: NftRulesetOptions): string {
  const v4 = targets.enrolledIps.filter((ip) => isIP(ip) === 4);
  const v6 = targets.enrolledIps.filter((ip) => isIP(ip) === 6);
  const ex4 = targets.exemptCidrs.filter((c) => isIP(c.split('/')[0] ?? '') === 4);
  const ex6 = targets.exemptCidrs.filter((c) => isIP(c.split('/')[0] ?? '') === 6);
  const mark = hex(o.captureMark);
  const drop = o.failOpen ? '' : ' drop';
  const lines = [
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    `  set enrolled4 { type ipv4_addr;${elements(v4)} }`,
    `  set enrolled6 { type ipv6_addr;${elements(v6)} }`,
    `  set exempt4 { type ipv4_addr; flags interval; auto-merge;${elements(ex4)} }`,
    `  set exempt6 { type ipv6_addr; flags interval; auto-merge;${elements(ex6)} }`,
    `  chain prerouting {`,
    `    type filter hook prerouting priority mangle; policy accept;`,
  ];
  if (targets.interfaces.length === 0) {
    lines.push('    return');
  } else {
    lines.push(
      `    iifname != { ${quoted(targets.interfaces)} } return`,
      `    meta l4proto tcp socket transparent 1 meta mark set ${mark} accept`,
      `    meta l4proto tcp tcp flags & (syn | ack) != syn return`,
      `    ip daddr @exempt4 return`,
      `    ip6 daddr @exempt6 return`,
    );
    for (const [fam, addr, set] of [['ip', o.listenAddress4, 'enrolled4'], ['ip6', o.listenAddress6, 'enrolled6']] as const) {
      const to = fam === 'ip' ? `${addr}` : `[${addr}]`;
      lines.push(
        `    ${fam} saddr @${set} meta l4proto tcp meta mark set ${mark} tproxy ${fam} to ${to}:${o.ports.outbound} accept`,
        `    ${fam} saddr @${set} meta l4proto tcp${drop}`,
        `    ${fam} daddr @${set} tcp dport ${o.ports.hbone} meta mark set ${mark} tproxy ${fam} to ${to}:${o.ports.hbone} accept`,
        `    ${fam} daddr @${set} meta l4proto tcp meta mark set ${mark} tproxy ${fam} to ${to}:${o.ports.inboundPlaintext} accept`,
        `    ${fam} daddr @${set} meta l4proto tcp${drop}`,
      );
    }
  }
  lines.push('  }', '}', '');
  return lines.filter((l) => !l.endsWith('tcp')).join('\n');
}

export class NftCapture implements CaptureBackend {
  readonly mode = 'nftables' as const;
  private last: CaptureTargets = { enrolledIps: [], interfaces: [], exemptCidrs: [] };

  constructor(
    private readonly commands: CommandRunner,
    private readonly logger: Logger,
    private readonly options: NftRulesetOptions,
  ) {}

  async apply(targets: CaptureTargets): Promise<void> {
    await this.commands.run('nft', ['-f', '-'], { input: renderNftRuleset(targets, this.options) });
    if (targets.interfaces.join() !== this.last.interfaces.join()) this.logger.info({ interfaces: targets.interfaces }, 'capture: nftables TPROXY rules applied');
    this.last = targets;
  }

  status(): CaptureStatus {
    return { mode: this.mode, interfaces: [...this.last.interfaces].sort(), enrolled: this.last.enrolledIps.length };
  }

  async close(): Promise<void> {
    // Rules stay: the pods remain captured (and fail closed) while the agent restarts.
  }

  async uninstall(): Promise<void> {
    await uninstallNftLeftovers(this.commands);
  }
}

export async function uninstallNftLeftovers(commands: CommandRunner): Promise<void> {
  await commands.run('nft', ['delete', 'table', 'inet', NFT_TABLE], { allowFailure: true });
}
