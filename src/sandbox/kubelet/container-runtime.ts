/**
 * Starts and stops container processes. A container is one host process tree:
 *
 *   pod network       ip netns exec <pod netns> [unshare --mount …  sh -c '<bind mounts>; exec "$@"'] <program>
 *   hostNetwork pod   nsenter --net=<node netns path> [same] <program>
 *
 * `ip netns exec` bind-mounts /etc/netns/<netns>/{resolv.conf,hosts}, which is how cluster DNS
 * reaches the pod; host-network pods use nsenter because `ip netns exec` remounts /sys and would
 * hide /sys/fs/bpf from the node agent. Volumes are bind-mounted inside a private mount
 * namespace, so the host never sees them. Every wrapper `exec`s, so the pid we get is the
 * program's; it leads its own process group, so signals reach a `sh -c` child too.
 *
 * Output (stdout and stderr) is appended to a log file the caller names.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AmeshError } from '../../errors/amesh-error.js';

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
}

export type NetworkNamespace = { kind: 'pod'; netns: string } | { kind: 'host'; netnsPath: string };

export interface ContainerLaunchSpec {
  argv: string[];
  env: Record<string, string>;
  network: NetworkNamespace;
  mounts: BindMount[];
  logFile: string;
  cwd?: string;
}

export interface ContainerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningProcess {
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks after boot, as text), to recognise the pid later. */
  startTicks: string | undefined;
  exited: Promise<ContainerExit>;
}

/** The process operations the kubelet needs; tests substitute fakes. */
export interface ContainerRuntime {
  start(spec: ContainerLaunchSpec): Promise<RunningProcess>;
  stop(p: Pick<RunningProcess, 'pid' | 'exited'>, graceMs: number): Promise<ContainerExit>;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The full command line for a container (pure). */
export function containerCommandLine(spec: Pick<ContainerLaunchSpec, 'argv' | 'network' | 'mounts'>): string[] {
  const enter = spec.network.kind === 'pod' ? ['ip', 'netns', 'exec', spec.network.netns] : ['nsenter', `--net=${spec.network.netnsPath}`];
  if (spec.mounts.length === 0) return [...enter, ...spec.argv];
  const script = spec.mounts
    .map((m) => {
      const bind = `mount --bind ${shellQuote(m.source)} ${shellQuote(m.target)}`;
      return m.readOnly ? `${bind} && mount -o remount,bind,ro ${shellQuote(m.target)}` : bind;
    })
    .join(' && ');
  return [...enter, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', `set -e; ${script}; exec "$@"`, 'sh', ...spec.argv];
}

/** Field 22 of /proc/<pid>/stat; undefined when the process is gone. */
export async function processStartTicks(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

export async function startProcess(spec: ContainerLaunchSpec): Promise<RunningProcess> {
  const [command, ...args] = containerCommandLine(spec);
  if (!command) throw new AmeshError('AMESH_SANDBOX_FAILED', 'empty container command');
  const log = openSync(spec.logFile, 'a');
  try {
    const child = spawn(command, args, { cwd: spec.cwd ?? '/', env: spec.env, stdio: ['ignore', log, log], detached: true });
    const exited = new Promise<ContainerExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: 127, signal: null }));
    });
    const pid = child.pid;
    if (pid === undefined) {
      await exited;
      throw new AmeshError('AMESH_SANDBOX_FAILED', `cannot start \`${[command, ...args].join(' ')}\``, { hint: 'is iproute2 / util-linux installed?' });
    }
    child.unref();
    return { pid, startTicks: await processStartTicks(pid), exited };
  } finally {
    closeSync(log);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once the leader exited. */
export async function stopProcess(p: Pick<RunningProcess, 'pid' | 'exited'>, graceMs: number): Promise<ContainerExit> {
  signalGroup(p.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      signalGroup(p.pid, 'SIGKILL');
      resolve();
    }, graceMs);
  });
  const exit = await Promise.race([p.exited, killed.then(() => p.exited)]);
  clearTimeout(timer);
  // Children left in the group (a `sh -c` pipeline) go with their leader.
  signalGroup(p.pid, 'SIGKILL');
  return exit;
}

export const hostContainerRuntime: ContainerRuntime = { start: startProcess, stop: stopProcess };
