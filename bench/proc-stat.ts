/**
 * CPU time of the proxy processes, from /proc/<pid>/stat (proc(5)): the sum of utime + stime
 * (and cutime + cstime of reaped children) over a process and all its descendants, in clock
 * ticks. A process's stat line already includes every thread, so Node's worker threads and
 * stunnel's per-connection threads are counted.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Clock ticks in user mode, kernel mode, and of waited-for children. */
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

/**
 * Parses one /proc/<pid>/stat line. `comm` may contain spaces and parentheses, so fields are
 * counted from the last `)`. Returns undefined for a line that is not a stat line.
 */
export function parseProcStat(line: string): ProcStat | undefined {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(line.slice(0, open).trim());
  // After ") ": field 3 (state) is rest[0], so field N is rest[N - 3].
  const rest = line.slice(close + 2).trim().split(/\s+/);
  const field = (n: number): number => Number(rest[n - 3]);
  const stat: ProcStat = {
    pid,
    comm: line.slice(open + 1, close),
    state: rest[0] ?? '',
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
  };
  const numbers = [stat.pid, stat.ppid, stat.utime, stat.stime, stat.cutime, stat.cstime];
  return Number.isInteger(pid) && pid > 0 && numbers.every((n) => Number.isInteger(n) && n >= 0) ? stat : undefined;
}

/** Total CPU ticks of `roots` and all their descendants in a snapshot of the process table. */
export function treeCpuTicks(table: readonly ProcStat[], roots: readonly number[]): number {
  const children = new Map<number, ProcStat[]>();
  for (const p of table) {
    const siblings = children.get(p.ppid);
    if (siblings) siblings.push(p);
    else children.set(p.ppid, [p]);
  }
  const byPid = new Map(table.map((p) => [p.pid, p]));
  const seen = new Set<number>();
  const queue = roots.filter((pid) => byPid.has(pid));
  let ticks = 0;
  while (queue.length > 0) {
    const pid = queue.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    const p = byPid.get(pid)!;
    ticks += p.utime + p.stime + p.cutime + p.cstime;
    for (const child of children.get(pid) ?? []) queue.push(child.pid);
  }
  return ticks;
}

/** A snapshot of every process's stat line (processes that exit while we read are skipped). */
export async function readProcessTable(procRoot = '/proc'): Promise<ProcStat[]> {
  const entries = (await readdir(procRoot)).filter((name) => /^\d+$/.test(name));
  const stats = await Promise.all(
    entries.map(async (pid) => {
      try {
        return parseProcStat(await readFile(`${procRoot}/${pid}/stat`, 'utf8'));
      } catch {
        return undefined;
      }
    }),
  );
  return stats.filter((s): s is ProcStat => s !== undefined);
}

/** Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on). */
export async function clockTicksPerSecond(): Promise<number> {
  const { stdout } = await promisify(execFile)('getconf', ['CLK_TCK']);
  const hz = Number(stdout.trim());
  if (!Number.isInteger(hz) || hz <= 0) throw new Error(`getconf CLK_TCK printed ${JSON.stringify(stdout)}`);
  return hz;
}

/** Measures the CPU seconds a set of process trees spends while `work` runs. */
export class CpuMeter {
  constructor(
    readonly hz: number,
    private readonly readTable: () => Promise<ProcStat[]> = readProcessTable,
  ) {}

  async measure<T>(roots: readonly number[], work: () => Promise<T>): Promise<{ result: T; cpuSeconds: number }> {
    const before = treeCpuTicks(await this.readTable(), roots);
    const result = await work();
    const after = treeCpuTicks(await this.readTable(), roots);
    return { result, cpuSeconds: Math.max(0, after - before) / this.hz };
  }

  /** As `measure`, for several named groups of process trees read from the same two snapshots. */
  async measureGroups<T, K extends string>(groups: Readonly<Record<K, readonly number[]>>, work: () => Promise<T>): Promise<{ result: T; cpuSeconds: Record<K, number> }> {
    const names = Object.keys(groups) as K[];
    const ticks = (table: readonly ProcStat[]): number[] => names.map((name) => treeCpuTicks(table, groups[name]));
    const before = ticks(await this.readTable());
    const result = await work();
    const after = ticks(await this.readTable());
    const cpuSeconds = Object.fromEntries(names.map((name, i) => [name, Math.max(0, after[i]! - before[i]!) / this.hz])) as Record<K, number>;
    return { result, cpuSeconds };
  }
}

/** The whole machine's CPU time from /proc/stat's `cpu` line (all CPUs), in clock ticks. */
export interface MachineCpu {
  /** user + nice + system + irq + softirq (guest time is inside user). */
  busy: number;
  /** idle + iowait. */
  idle: number;
  /** Time the hypervisor ran someone else while this VM wanted a CPU. */
  steal: number;
}

export function parseMachineCpu(procStat: string): MachineCpu | undefined {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const fields = [user, nice, system, idle, iowait, irq, softirq, steal];
  if (!fields.every((n) => Number.isInteger(n) && (n as number) >= 0)) return undefined;
  const [u, n, s, i, w, q, sq, st] = fields as number[];
  return { busy: u! + n! + s! + q! + sq!, idle: i! + w!, steal: st! };
}

export async function readMachineCpu(): Promise<MachineCpu | undefined> {
  return parseMachineCpu(await readFile('/proc/stat', 'utf8').catch(() => ''));
}

/** Shares of the machine's CPU time between two readings, in percent (undefined without time). */
export function machineCpuShares(from: MachineCpu, to: MachineCpu): { busyPercent: number; idlePercent: number; stealPercent: number } | undefined {
  const busy = to.busy - from.busy;
  const idle = to.idle - from.idle;
  const steal = to.steal - from.steal;
  const total = busy + idle + steal;
  if (total <= 0) return undefined;
  return { busyPercent: (100 * busy) / total, idlePercent: (100 * idle) / total, stealPercent: (100 * steal) / total };
}
