/**
 * The sandbox's on-disk state: one directory (default /var/lib/amesh/sandbox, or
 * $AMESH_SANDBOX_DIR, or --dir) holding everything `sandbox up` made, so that `down` can remove
 * exactly that and `up` after `down --keep` resumes it.
 *
 *   state.json           name, nodes, API port, daemon pid (+ its start time, so a recycled pid
 *                        is never mistaken for ours)
 *   kubeconfig           what `amesh sandbox kubeconfig` prints
 *   pki/                 cluster CA, API server serving cert, service-account signing key, admin token
 *   mesh-ca/             the mesh CA the node agents sign workload certificates with
 *   store.json           API server snapshot
 *   kubelet/             pods' directories and logs, recorded pids
 *   daemon.log           the daemon's log (JSON lines)
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AmeshError } from '../errors/amesh-error.js';

export const DEFAULT_SANDBOX_DIR = '/var/lib/amesh/sandbox';
export const DEFAULT_SANDBOX_NAME = 'amesh';
/** Fabric addresses (DESIGN §9): everything lives inside namespaces the sandbox created. */
export const FABRIC_IP = '10.250.0.254';
export const API_SERVER_PORT = 6443;
export const CLUSTER_DNS_PORT = 53;
/**
 * `sandbox up` hands the daemon a handle of the host's network namespace as this fd and names it
 * in HOST_NETNS_FD_ENV: the daemon opens the LoadBalancer host loopback ports through it.
 */
export const HOST_NETNS_FD = 4;
export const HOST_NETNS_FD_ENV = 'AMESH_SANDBOX_HOST_NETNS_FD';

export interface SandboxState {
  version: 1;
  /** Sandbox (cluster) name; prefix of every netns and of node names. */
  name: string;
  nodes: string[];
  /** Host loopback port of the API server relay. */
  apiPort: number;
  daemonPid?: number;
  /** Field 22 of /proc/<pid>/stat when the daemon started. */
  daemonStartTicks?: string;
  createdAt: string;
  /**
   * Writes the API server remembers for watches to resume from (default 10 000, as the store's
   * own default). Small values force watchers to re-list (410 Gone): the fault tests set it.
   */
  eventLogSize?: number;
}

export interface SandboxPaths {
  dir: string;
  state: string;
  kubeconfig: string;
  pki: string;
  clusterCaCert: string;
  apiServerCert: string;
  apiServerKey: string;
  serviceAccountKey: string;
  adminToken: string;
  snapshot: string;
  kubelet: string;
  daemonLog: string;
}

export function sandboxDir(explicit?: string): string {
  return explicit ?? process.env.AMESH_SANDBOX_DIR ?? DEFAULT_SANDBOX_DIR;
}

export function sandboxPaths(dir: string): SandboxPaths {
  const pki = join(dir, 'pki');
  return {
    dir,
    state: join(dir, 'state.json'),
    kubeconfig: join(dir, 'kubeconfig'),
    pki,
    clusterCaCert: join(pki, 'ca.crt'),
    apiServerCert: join(pki, 'apiserver.crt'),
    apiServerKey: join(pki, 'apiserver.key'),
    serviceAccountKey: join(pki, 'sa.key'),
    adminToken: join(pki, 'admin.token'),
    snapshot: join(dir, 'store.json'),
    kubelet: join(dir, 'kubelet'),
    daemonLog: join(dir, 'daemon.log'),
  };
}

/** Node names, kind-style: `<name>-worker`, `<name>-worker2`, ... */
export function nodeNames(name: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${name}-worker${i === 0 ? '' : i + 1}`);
}

export async function readState(dir: string): Promise<SandboxState | undefined> {
  let text: string;
  try {
    text = await readFile(sandboxPaths(dir).state, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AmeshError('AMESH_SANDBOX_FAILED', `cannot read sandbox state in ${dir}`, { cause: err });
  }
  try {
    const state = JSON.parse(text) as SandboxState;
    if (state.version !== 1 || typeof state.name !== 'string' || !Array.isArray(state.nodes)) throw new Error('unexpected shape');
    if (state.eventLogSize !== undefined && !(Number.isInteger(state.eventLogSize) && state.eventLogSize >= 1)) throw new Error(`eventLogSize ${JSON.stringify(state.eventLogSize)} is not a whole number ≥ 1`);
    return state;
  } catch (err) {
    throw new AmeshError('AMESH_SANDBOX_FAILED', `sandbox state ${sandboxPaths(dir).state} is corrupt`, {
      cause: err,
      hint: 'run `amesh sandbox down` to remove the sandbox, then `amesh sandbox up`',
    });
  }
}

export async function writeState(dir: string, state: SandboxState): Promise<void> {
  const path = sandboxPaths(dir).state;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

/**
 * Field 22 (starttime) of /proc/<pid>/stat, or undefined when the process does not exist or has
 * already exited (a zombie not yet reaped, or one being torn down).
 */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

/** True when the recorded daemon is still the process we started (pid and start time agree). */
export function daemonAlive(state: SandboxState): boolean {
  if (!state.daemonPid || !state.daemonStartTicks) return false;
  return processStartTicks(state.daemonPid) === state.daemonStartTicks;
}
