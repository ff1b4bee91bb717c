/**
 * Policy routing that makes captured packets local: `ip rule fwmark <mark>/<mask> lookup
 * <table>` plus `local 0.0.0.0/0 dev lo` in that table (and the -6 twins). Without it the
 * kernel would forward packets the BPF program (or TPROXY) assigned to our listeners.
 * Idempotent in both directions.
 */
import type { CommandRunner } from '../../os/command.js';
import type { CaptureRepair } from './capture-backend.js';

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

/** True when the table routes every address of the family locally via lo. */
async function hasLocalRoute(cmd: CommandRunner, family: '-4' | '-6', spec: RoutingSpec): Promise<boolean> {
  // A table that does not exist yet fails (code 2) after printing "[".
  const { stdout, code } = await cmd.run('ip', ['-j', family, 'route', 'show', 'table', String(spec.table)], { allowFailure: true });
  const routes = code === 0 && stdout.trim() ? (JSON.parse(stdout) as Array<{ type?: string; dst?: string; dev?: string }>) : [];
  return routes.some((r) => r.type === 'local' && r.dev === 'lo' && (r.dst === 'default' || r.dst === '0.0.0.0/0' || r.dst === '::/0'));
}

/** What `installRouting` would have to add (nothing changed here). */
export async function inspectRouting(cmd: CommandRunner, spec: RoutingSpec, families: Array<4 | 6>): Promise<CaptureRepair[]> {
  const repairs: CaptureRepair[] = [];
  for (const f of families) {
    const family = f === 4 ? '-4' : '-6';
    if (!(await hasRule(cmd, family, spec))) {
      repairs.push({ kind: 'routing-rule', object: `ip ${family} rule fwmark ${hex(spec.mark)}/${hex(spec.mask)} lookup ${spec.table} priority ${spec.priority}`, problem: 'missing', action: 'added' });
    }
    if (!(await hasLocalRoute(cmd, family, spec))) {
      repairs.push({ kind: 'routing-route', object: `ip ${family} route local ${f === 4 ? '0.0.0.0/0' : '::/0'} dev lo table ${spec.table}`, problem: 'missing', action: 'added' });
    }
  }
  return repairs;
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
