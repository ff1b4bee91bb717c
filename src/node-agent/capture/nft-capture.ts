/**
 * nftables side of capture, one `table inet amesh` rendered by a pure function and swapped
 * atomically with one `nft -f` transaction. Two scopes share the same sets and rule text:
 *
 * - `all` (the fallback when eBPF cannot be loaded or attached here): TPROXY before any DNAT
 *   (chain `prerouting`, priority mangle) with the same listeners, mark and routing table as
 *   the eBPF path, plus the post-DNAT chain below.
 * - `service-dnat` (next to the eBPF program): only the post-DNAT chain.
 *
 * Post-DNAT chains (`service-dnat`, prerouting priority dstnat + 10): a packet whose destination
 * a Service DNAT in this netns rewrote to a local enrolled pod was seen by the tc hook (or the
 * mangle chain) with the Service address and passed; without this chain the node would forward
 * it straight to the pod's veth, where nothing captures. Such a SYN is TPROXYed to the inbound
 * listener (HBONE when the rewritten port is the HBONE port, plaintext otherwise), so the agent
 * sees the pod IP:port as the original destination, exactly as for direct pod-IP traffic; later
 * packets of the flow find the agent's transparent socket. Replies leave from that socket and
 * conntrack undoes the DNAT on the way out. Packets already captured before the DNAT (capture
 * mark) and reply-direction packets are left alone.
 *
 * Captured flows are remembered in conntrack: the SYN a tproxy rule hands to a listener, and
 * (in the fallback) the agent's own new connections, which carry its socket mark, set the
 * capture mark's bits of the ct mark. Every later segment of such a flow (SYNs excepted) is
 * marked for the local stack before anything else, so one that arrives after the agent closed
 * its socket (the client's data crossing the reset of a refused connection) is answered with a
 * reset there instead of being forwarded, in plaintext, towards the original destination. Flows
 * without that ct mark (opened before the pod was enrolled) are not touched.
 *
 * Fail closed: a SYN that a tproxy rule could not hand to a listener falls through to a drop.
 */
import { isIP } from 'node:net';
import type { CommandRunner } from '../../os/command.js';
import type { Logger } from '../../telemetry/logger.js';
import type { CaptureBackend, CapturePorts, CaptureRepair, CaptureStatus, CaptureTargets, InspectOptions } from './capture-backend.js';

export const NFT_TABLE = 'amesh';

/** `all`: the whole nftables capture (fallback mode); `service-dnat`: only what eBPF cannot see. */
export type NftCaptureScope = 'all' | 'service-dnat';

export interface NftRulesetOptions {
  captureMark: number;
  /** Bits of the mark that routing and kube-proxy compare (AgentConfig.captureMask). */
  captureMask: number;
  /** SO_MARK of the agent's own sockets (AgentConfig.socketMark). */
  socketMark: number;
  failOpen: boolean;
  ports: CapturePorts;
  listenAddress4: string;
  listenAddress6: string;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const quoted = (names: string[]): string => names.map((n) => JSON.stringify(n)).join(', ');
const elements = (items: string[]): string => (items.length ? ` elements = { ${items.join(', ')} }` : '');

type Family = readonly ['ip' | 'ip6', string, 'enrolled4' | 'enrolled6'];

function families(o: NftRulesetOptions): Family[] {
  return [
    ['ip', o.listenAddress4, 'enrolled4'],
    ['ip6', `[${o.listenAddress6}]`, 'enrolled6'],
  ];
}

/** `ct mark set …`: the capture mark's bits of the ct mark, the other bits kept. */
function rememberFlow(o: NftRulesetOptions): string {
  return `ct mark set ct mark & ${hex(~o.captureMask >>> 0)} | ${hex(o.captureMark & o.captureMask)}`;
}

/**
 * Rules shared by both chains: flows remembered as captured, established flows of our
 * transparent sockets, then SYNs only.
 */
function flowRules(o: NftRulesetOptions): string[] {
  const mark = hex(o.captureMark);
  return [
    // Not SYNs: a SYN reusing the tuple of a closed flow reopens its conntrack entry, ct mark
    // and all, and must still reach a listener through the rules below.
    `    tcp flags & syn == 0 ct mark & ${hex(o.captureMask)} == ${hex(o.captureMark & o.captureMask)} meta mark set ${mark} accept`,
    // Not pure SYNs either: one reusing the tuple of our TIME_WAIT socket (we closed towards the
    // client first) must reach the tproxy rules, whose TIME_WAIT handling retires the entry and
    // gives the SYN to the listener. Given to the TIME_WAIT socket it is answered with an ACK,
    // and the client connects only after a reset and a retransmission, 8-16 ms later.
    `    meta l4proto tcp tcp flags & (syn | ack) != syn socket transparent 1 meta mark set ${mark} accept`,
    `    meta l4proto tcp tcp flags & (syn | ack) != syn return`,
    `    ip daddr @exempt4 return`,
    `    ip6 daddr @exempt6 return`,
  ];
}

/** A SYN to an enrolled pod: HBONE listener for the HBONE port, else inbound plaintext. */
function inboundRules([fam, to, set]: Family, o: NftRulesetOptions, drop: string): string[] {
  const mark = `meta mark set ${hex(o.captureMark)} ${rememberFlow(o)}`;
  return [
    `    ${fam} daddr @${set} tcp dport ${o.ports.hbone} ${mark} tproxy ${fam} to ${to}:${o.ports.hbone} accept`,
    `    ${fam} daddr @${set} meta l4proto tcp ${mark} tproxy ${fam} to ${to}:${o.ports.inboundPlaintext} accept`,
    `    ${fam} daddr @${set} meta l4proto tcp${drop}`,
  ];
}

/** The agent's own new connections (its socket mark): their replies are delivered here, whatever comes late. */
function outputChain(o: NftRulesetOptions): string[] {
  return [
    `  chain output {`,
    `    type filter hook output priority mangle; policy accept;`,
    `    meta l4proto tcp meta mark & ${hex(o.captureMask)} == ${hex(o.socketMark & o.captureMask)} ct state new ${rememberFlow(o)}`,
    '  }',
  ];
}

function preDnatChain(targets: CaptureTargets, o: NftRulesetOptions, drop: string): string[] {
  const lines = [`  chain prerouting {`, `    type filter hook prerouting priority mangle; policy accept;`];
  if (targets.interfaces.length === 0) {
    lines.push('    return');
  } else {
    lines.push(`    iifname != { ${quoted(targets.interfaces)} } return`, ...flowRules(o));
    for (const f of families(o)) {
      const [fam, to, set] = f;
      lines.push(
        `    ${fam} saddr @${set} meta l4proto tcp meta mark set ${hex(o.captureMark)} ${rememberFlow(o)} tproxy ${fam} to ${to}:${o.ports.outbound} accept`,
        `    ${fam} saddr @${set} meta l4proto tcp${drop}`,
        ...inboundRules(f, o, drop),
      );
    }
  }
  lines.push('  }');
  return lines;
}

function postDnatChain(o: NftRulesetOptions, drop: string): string[] {
  return [
    `  chain service-dnat {`,
    `    type filter hook prerouting priority dstnat + 10; policy accept;`,
    `    ct direction reply return`,
    `    ct status & dnat == 0 return`,
    `    meta mark & ${hex(o.captureMask)} == ${hex(o.captureMark & o.captureMask)} return`,
    // Only flows to local enrolled pods pay for the socket lookup below.
    ...families(o).map(([fam, , set]) => `    ${fam} daddr @${set} meta l4proto tcp goto service-dnat-to-pod`),
    '  }',
    `  chain service-dnat-to-pod {`,
    ...flowRules(o),
    ...families(o).flatMap((f) => inboundRules(f, o, drop)),
    '  }',
  ];
}

/** The whole `table inet amesh`, replacing any previous one in the same transaction. */
export function renderNftRuleset(targets: CaptureTargets, o: NftRulesetOptions, scope: NftCaptureScope = 'all'): string {
  const v4 = targets.enrolledIps.filter((ip) => isIP(ip) === 4);
  const v6 = targets.enrolledIps.filter((ip) => isIP(ip) === 6);
  const ex4 = targets.exemptCidrs.filter((c) => isIP(c.split('/')[0] ?? '') === 4);
  const ex6 = targets.exemptCidrs.filter((c) => isIP(c.split('/')[0] ?? '') === 6);
  const drop = o.failOpen ? '' : ' drop';
  const lines = [
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    `  set enrolled4 { type ipv4_addr;${elements(v4)} }`,
    `  set enrolled6 { type ipv6_addr;${elements(v6)} }`,
    `  set exempt4 { type ipv4_addr; flags interval; auto-merge;${elements(ex4)} }`,
    `  set exempt6 { type ipv6_addr; flags interval; auto-merge;${elements(ex6)} }`,
    ...(scope === 'all' ? [...preDnatChain(targets, o, drop), ...outputChain(o)] : []),
    ...postDnatChain(o, drop),
    '}',
    '',
  ];
  return lines.filter((l) => !l.endsWith('tcp')).join('\n');
}

/** Pure: chain name → number of rules in a rendered ruleset (the `type … hook` line is not a rule). */
export function renderedChainRules(ruleset: string): Map<string, number> {
  const chains = new Map<string, number>();
  let current: string | undefined;
  for (const line of ruleset.split('\n')) {
    const open = /^ {2}chain (\S+) \{$/.exec(line);
    if (open?.[1]) {
      current = open[1];
      chains.set(current, 0);
    } else if (line === '  }') current = undefined;
    else if (current && line.startsWith('    ') && !line.trimStart().startsWith('type ')) chains.set(current, (chains.get(current) ?? 0) + 1);
  }
  return chains;
}

interface NftJsonItem {
  chain?: { table?: string; name?: string };
  rule?: { table?: string; chain?: string };
  set?: { table?: string; name?: string; elem?: unknown[] };
}

/**
 * Pure: what differs between `nft -j list table inet amesh` output (undefined: no such table) and
 * the ruleset `apply` would load: the table, each chain and its rule count, the enrolled sets.
 */
export function diffNftTable(listed: string | undefined, ruleset: string, enrolledIps: string[]): CaptureRepair[] {
  const table = `nftables table inet ${NFT_TABLE}`;
  if (listed === undefined) return [{ kind: 'nft-table', object: table, problem: 'missing', action: 'created (one nft -f transaction)' }];
  const items = ((JSON.parse(listed) as { nftables?: NftJsonItem[] }).nftables ?? []).filter((i) => (i.chain ?? i.rule ?? i.set)?.table === NFT_TABLE);
  const repairs: CaptureRepair[] = [];
  const rules = new Map<string, number>();
  for (const item of items) {
    if (item.chain?.name) rules.set(item.chain.name, rules.get(item.chain.name) ?? 0);
    if (item.rule?.chain) rules.set(item.rule.chain, (rules.get(item.rule.chain) ?? 0) + 1);
  }
  for (const [chain, want] of renderedChainRules(ruleset)) {
    const have = rules.get(chain);
    if (have === undefined) repairs.push({ kind: 'nft-chain', object: `${table} chain ${chain}`, problem: 'missing', action: 'table replaced' });
    else if (have !== want) repairs.push({ kind: 'nft-chain', object: `${table} chain ${chain}`, problem: `${have} rules instead of ${want}`, action: 'table replaced' });
  }
  for (const [name, family] of [['enrolled4', 4], ['enrolled6', 6]] as const) {
    const set = items.find((i) => i.set?.name === name)?.set;
    const have = new Set((set?.elem ?? []).filter((e): e is string => typeof e === 'string'));
    const want = enrolledIps.filter((ip) => isIP(ip) === family);
    const missing = want.filter((ip) => !have.has(ip));
    const stale = [...have].filter((ip) => !want.includes(ip));
    if (!set) repairs.push({ kind: 'nft-set', object: `${table} set ${name}`, problem: 'missing', action: 'table replaced' });
    else if (missing.length || stale.length) {
      repairs.push({ kind: 'nft-set', object: `${table} set ${name}`, problem: [missing.length ? `lacks ${missing.join(', ')}` : '', stale.length ? `has stale ${stale.join(', ')}` : ''].filter(Boolean).join('; '), action: 'table replaced' });
    }
  }
  return repairs;
}

export class NftCapture implements CaptureBackend {
  readonly mode = 'nftables' as const;
  private last: CaptureTargets = { enrolledIps: [], interfaces: [], exemptCidrs: [] };

  constructor(
    private readonly commands: CommandRunner,
    private readonly logger: Logger,
    private readonly options: NftRulesetOptions,
    private readonly scope: NftCaptureScope = 'all',
  ) {}

  async apply(targets: CaptureTargets): Promise<void> {
    await this.commands.run('nft', ['-f', '-'], { input: renderNftRuleset(targets, this.options, this.scope) });
    if (this.scope === 'all' && targets.interfaces.join() !== this.last.interfaces.join()) this.logger.info({ interfaces: targets.interfaces }, 'capture: nftables TPROXY rules applied');
    this.last = targets;
  }

  async inspect(targets: CaptureTargets, options: InspectOptions = {}): Promise<CaptureRepair[]> {
    if (options.nftables === false) return [];
    const { stdout, code } = await this.commands.run('nft', ['-j', 'list', 'table', 'inet', NFT_TABLE], { allowFailure: true });
    return diffNftTable(code === 0 ? stdout : undefined, renderNftRuleset(targets, this.options, this.scope), targets.enrolledIps);
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
