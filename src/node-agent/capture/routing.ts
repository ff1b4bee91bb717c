/**
 * Policy routing that makes captured packets local: `ip rule fwmark <mark>/<mask> lookup
 * <table>` plus `local 0.0.0.0/0 dev lo` in that table (and the -6 twins). Without it the
 * kernel would forward packets the BPF program (or TPROXY) assigned to our listeners.
 * Idempotent in both directions.
 */
import type { CommandRunner } from '../../os/command.js';

export interface RoutingSpec {
  mark: number;
  mask: number;
  table: number;
  priority: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

function ruleArgs(family: '-4' | '-6', spec: RoutingSpec): string[] {
  return [family, 'rule', 'add', 'fwmark', `${hex(spec.mark)}/${hex(spec.mask)}`, 'lookup', String(spec.table), 'priority', String(spec.priority)];
}

async function hasRule(cmd: CommandRunner, family: '-4' | '-6', spec: RoutingSpec): Promise<boolean> {
  const { stdout } = await cmd.run('ip', ['-j', family, 'rule', 'show', 'priority', String(spec.priority)], { allowFailure: true });
  const rules = stdout.trim() ? (JSON.parse(stdout) as Array<{ table?: string; fwmark?: string }>) : [];
  return rules.some((r) => r.table === String(spec.table));
}

export async function installRouting(cmd: CommandRunner, spec: RoutingSpec, families: Array<4 | 6>): Promise<void> {
  for (const f of families) {
    const family = f === 4 ? '-4' : '-6';
    if (!(await hasRule(cmd, family, spec))) await cmd.run('ip', ruleArgs(family, spec));
    const local = f === 4 ? '0.0.0.0/0' : '::/0';
    await cmd.run('ip', [family, 'route', 'replace', 'local', local, 'dev', 'lo', 'table', String(spec.table)]);
  }
}

export async function removeRouting(cmd: CommandRunner, spec: RoutingSpec): Promise<void> {
  for (const family of ['-4', '-6'] as const) {
    while (await hasRule(cmd, family, spec)) {
      const args = ruleArgs(family, spec);
      args[2] = 'del';
      const { code } = await cmd.run('ip', args, { allowFailure: true });
      if (code !== 0) break;
    }
    await cmd.run('ip', [family, 'route', 'flush', 'table', String(spec.table)], { allowFailure: true });
  }
}
