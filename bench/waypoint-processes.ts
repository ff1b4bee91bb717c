/**
 * Child processes of the waypoint and gateway benches: started, awaited and killed by pid. Every wait is bounded;
 * `stopAll` sends SIGTERM to each pid it started, then SIGKILL to whatever is still alive after a
 * grace period, so nothing outlives the bench whether it ends normally or on an error.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../src/sandbox/install.js';
import type { RoleName, RoleReady } from './waypoint-roles.js';

export const ROLES_ENTRY = join(REPO_ROOT, 'dist', 'bench', 'waypoint-roles.js');
export const GATEWAY_ROLES_ENTRY = join(REPO_ROOT, 'dist', 'bench', 'gateway-roles.js');
export const OPEN_LOOP_ENTRY = join(REPO_ROOT, 'dist', 'bench', 'load', 'open-loop-client.js');

export interface Started {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
}

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export class ProcessGroup {
  private readonly started: Started[] = [];
  private readonly logs: WriteStream[] = [];

  constructor(private readonly dir: string) {}

  /** Spawns `command` with stdout/stderr appended to `<dir>/<name>.log`. */
  spawn(name: string, command: string, args: string[], ipc = false): Started {
    const logFile = join(this.dir, `${name}.log`);
    const log = createWriteStream(logFile, { flags: 'a' });
    this.logs.push(log);
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])] });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    if (child.pid === undefined) throw new Error(`cannot start ${command}: ${name}`);
    const started = { name, child, pid: child.pid, logFile };
    this.started.push(started);
    return started;
  }

  /** Starts a bench role (waypoint-roles.ts) and waits for its ready message. */
  role<R extends RoleName>(name: string, role: R, options: unknown, timeoutMs: number, nodeArgs: readonly string[] = []): Promise<{ started: Started; ready: Extract<RoleReady, { role: R }> }> {
    return this.roleAt<Extract<RoleReady, { role: R }>>(ROLES_ENTRY, name, role, options, timeoutMs, nodeArgs);
  }

  /**
   * Starts `node <entry> <role> '<json options>'` (a roles script: waypoint-roles.ts,
   * gateway-roles.ts) and waits for its `{type: 'ready', role}` IPC message. `node` is the runtime
   * to start it with (default: the one running the bench).
   */
  async roleAt<M extends { type: 'ready'; role: string }>(entry: string, name: string, role: string, options: unknown, timeoutMs: number, nodeArgs: readonly string[] = [], node = process.execPath): Promise<{ started: Started; ready: M }> {
    const started = this.spawn(name, node, [...nodeArgs, entry, role, JSON.stringify(options)], true);
    const ready = await new Promise<M>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${timeoutMs} ms (log: ${started.logFile})`)), timeoutMs);
      started.child.on('message', (m: M) => {
        if (m?.type !== 'ready' || m.role !== role) return;
        clearTimeout(timer);
        resolve(m);
      });
      started.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before it was ready (log: ${started.logFile})`));
      });
    });
    return { started, ready };
  }

  /** SIGTERM, then SIGKILL after `graceMs` to every process of this group still alive. */
  async stop(started: Started, graceMs = 2000): Promise<void> {
    if (!isAlive(started.child)) return;
    const exited = new Promise<void>((resolve) => started.child.once('exit', () => resolve()));
    started.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
    clearTimeout(timer);
    if (timedOut && isAlive(started.child)) {
      started.child.kill('SIGKILL');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, graceMs))]);
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.started.map((s) => this.stop(s)));
    for (const log of this.logs) log.end();
  }

  /** Synchronous last resort (process 'exit' hook): SIGKILL every process still alive. */
  killNow(): void {
    for (const s of this.started) if (isAlive(s.child)) s.child.kill('SIGKILL');
  }

  /** Every process this group started (alive or not). */
  list(): Array<{ name: string; pid: number }> {
    return this.started.map((s) => ({ name: s.name, pid: s.pid }));
  }
}

/** A port nothing listens on right now (bind 0, close): for programs that want a fixed port in their config. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls until 127.0.0.1:port accepts a connection, at most `timeoutMs` (every 50 ms). */
export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 10_000 && Date.now() < deadline; attempt++) {
    if (!alive()) throw new Error(`the process meant to listen on port ${port} exited`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export function isRunning(started: Started): boolean {
  return isAlive(started.child);
}

/** What `command args` printed (stdout + stderr, also on a non-zero exit; '' when it is not installed): version banners. */
export async function commandOutput(command: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { timeout: 5000 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: unknown };
    if (e.code === 'ENOENT') return '';
    return `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
}
