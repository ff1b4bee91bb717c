/**
 * Opens listening sockets on the host's 127.0.0.1 from the sandbox daemon, which runs in the
 * fabric namespace: host-listener-child.js is started in the host namespace (`nsenter
 * --net=/proc/self/fd/3`, fd 3 being the host netns handle `sandbox up` passed the daemon) and
 * sends each listening socket back over IPC. The returned servers accept in the daemon; the
 * helper has exited (or is killed) by the time this resolves.
 *
 * Invariants: the helper is killed by pid if it does not finish within HELPER_TIMEOUT_MS; a
 * request the helper could not serve comes back as an error entry, never as a missing one.
 */
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { AmeshError } from '../../errors/amesh-error.js';

const HELPER = fileURLToPath(new URL('./host-listener-child.js', import.meta.url));
const HELPER_TIMEOUT_MS = 20_000;

export type HostListenResult = { server: net.Server; port: number } | { error: string };

/** Opens one listener per request (candidate ports in order, then ephemeral). */
export type HostListen = (requests: ReadonlyArray<{ candidates: number[] }>) => Promise<HostListenResult[]>;

/**
 * The inherited host netns handle, checked: it must be an open network namespace fd other than
 * our own namespace. Undefined (with the reason) when it is not usable.
 */
export function checkHostNetnsFd(fd: number): { ok: true } | { ok: false; reason: string } {
  let target: string;
  let own: string;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
    own = readlinkSync('/proc/self/ns/net');
  } catch (err) {
    return { ok: false, reason: `fd ${fd} is not open (${(err as Error).message})` };
  }
  if (!/^net:\[\d+\]$/.test(target)) return { ok: false, reason: `fd ${fd} is ${target}, not a network namespace` };
  if (target === own) return { ok: false, reason: `fd ${fd} is the daemon's own network namespace` };
  return { ok: true };
}

/** A HostListen that opens the sockets in the namespace of `hostNetnsFd`. */
export function hostNetnsListen(hostNetnsFd: number): HostListen {
  return (requests) =>
    new Promise((resolve, reject) => {
      const results: Array<HostListenResult | undefined> = requests.map(() => undefined);
      if (requests.length === 0) {
        resolve([]);
        return;
      }
      const child = spawn('nsenter', ['--net=/proc/self/fd/3', '--', process.execPath, HELPER, JSON.stringify({ requests: requests.map((r) => ({ candidates: r.candidates })) })], {
        stdio: ['ignore', 'ignore', 'pipe', hostNetnsFd, 'ipc'],
      });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString('utf8')).slice(-2000);
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
      }, HELPER_TIMEOUT_MS);
      const finish = (): void => {
        if (child.connected) child.disconnect();
      };
      child.on('message', (message: { type?: string; index?: number; port?: number; message?: string }, handle: unknown) => {
        const index = message.index;
        if (typeof index !== 'number' || index < 0 || index >= results.length) return;
        if (message.type === 'listener' && handle && typeof message.port === 'number') results[index] = { server: handle as net.Server, port: message.port };
        else results[index] = { error: message.message ?? 'the helper sent no listener' };
        if (results.every((r) => r !== undefined)) finish();
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new AmeshError('AMESH_SANDBOX_FAILED', 'cannot start the host loopback listener helper (nsenter)', { cause: err }));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        const why = signal ? `killed by ${signal}` : `exited with ${code}`;
        resolve(results.map((r) => r ?? { error: `the host listener helper ${why} before answering${stderr.trim() ? `: ${stderr.trim()}` : ''}` }));
      });
    });
}
