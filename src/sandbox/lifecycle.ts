/**
 * `sandbox up` and `sandbox down` as functions (the CLI, the demo and the tests call these).
 *
 * up:   host checks → PKI → network (fabric, nodes, outside client) → daemon inside the fabric
 *       netns, handed the host-loopback listener as fd 3 and a host netns handle as fd 4 (for
 *       LoadBalancer host ports) → API ready → nodes Ready → amesh installed through
 *       `installAmesh` (src/install/install.ts, what `amesh install` runs) → controller and node
 *       agents rolled out. Idempotent: a running sandbox is only checked.
 * down: daemon SIGTERM (it stops every pod with its grace period) → leftover processes we
 *       recorded (by pid + start time) → network namespaces, /etc/netns entries, pinned BPF
 *       objects and mesh config files of our nodes → the state directory (unless --keep).
 */
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { AmeshError } from '../errors/amesh-error.js';
import { createServingCertificates } from './apiserver/serving-cert.js';
import { installAmesh, type InstallOptions, type InstallResult } from '../install/install.js';
import { DEFAULT_VALUES, type InstallValues } from '../install/render.js';
import { REPO_ROOT } from './install.js';
import { readRecordedPids } from './kubelet/kubelet.js';
import { ClusterNetwork, planClusterNetwork, removeClusterNetwork } from './network/cluster-network.js';
import {
  daemonAlive,
  DEFAULT_SANDBOX_NAME,
  FABRIC_IP,
  HOST_NETNS_FD,
  HOST_NETNS_FD_ENV,
  nodeNames,
  processStartTicks,
  readState,
  sandboxPaths,
  writeState,
  type SandboxState,
} from './state.js';

const AMESH_BIN = join(REPO_ROOT, 'bin', 'amesh.js');
const REQUIRED_TOOLS = ['ip', 'nsenter', 'nft', 'unshare', 'sysctl'];
/** The daemon stops pods with their grace period (the node agent drains); allow for it. */
const DAEMON_STOP_TIMEOUT_MS = 45_000;
const READY_TIMEOUT_MS = 120_000;
/** Node names are `<name>-worker…` (RFC 1123 labels) and pod netns names `<name>-p<hash>` fit in 15 characters. */
const SANDBOX_NAME = /^[a-z]([a-z0-9-]{0,5}[a-z0-9])?$/;

export type Progress = (message: string) => void;

export interface UpOptions {
  dir: string;
  name?: string;
  nodes?: number;
  /** Host loopback port for the API server; 0 = any free port (kept across restarts). */
  apiPort?: number;
  /** Skip installing amesh (the API server, kubelets and network only). */
  install?: boolean;
  /** Install values (`--set`); default DEFAULT_VALUES (daemonset/ as written). */
  values?: Readonly<InstallValues>;
  /**
   * Writes the API server keeps for watches to resume from (default 10 000); kept in the state
   * across restarts. Small values make watchers re-list after 410 Gone (the fault tests).
   */
  eventLogSize?: number;
  progress?: Progress;
}

export interface UpResult {
  state: SandboxState;
  kubeconfig: string;
  alreadyRunning: boolean;
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new AmeshError('AMESH_SANDBOX_FAILED', 'the sandbox creates network namespaces and loads eBPF programs: run it as root (sudo)');
  }
}

function missingTools(): string[] {
  return REQUIRED_TOOLS.filter((tool) => {
    try {
      execFileSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

export function kubeConfigFor(dir: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(sandboxPaths(dir).kubeconfig);
  return kc;
}

function renderKubeconfig(name: string, port: number, caPem: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: ${name}
  cluster:
    server: https://127.0.0.1:${port}
    certificate-authority-data: ${ca}
users:
- name: ${name}-admin
  user:
    token: ${token}
contexts:
- name: ${name}
  context:
    cluster: ${name}
    user: ${name}-admin
current-context: ${name}
preferences: {}
`;
}

async function ensurePki(dir: string, progress: Progress): Promise<void> {
  const paths = sandboxPaths(dir);
  await mkdir(paths.pki, { recursive: true, mode: 0o700 });
  if (!existsSync(paths.apiServerCert) || !existsSync(paths.clusterCaCert) || !existsSync(paths.apiServerKey)) {
    progress('creating the cluster CA and the API server certificate');
    const certs = await createServingCertificates({
      ipAddresses: ['127.0.0.1', FABRIC_IP, '10.96.0.1'],
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    });
    await writeFile(paths.clusterCaCert, certs.caCertPem);
    await writeFile(paths.apiServerCert, certs.certPem);
    await writeFile(paths.apiServerKey, certs.keyPem, { mode: 0o600 });
  }
  if (!existsSync(paths.adminToken)) await writeFile(paths.adminToken, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
}

/** A listening socket on host loopback whose fd the daemon inherits (the "loopback relay"). */
async function loopbackListener(port: number): Promise<{ server: net.Server; fd: number; port: number }> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new AmeshError('AMESH_SANDBOX_FAILED', `cannot listen on 127.0.0.1:${port} for the API server`, {
          cause: err,
          hint: (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? `port ${port} is taken; free it or run \`amesh sandbox down\` and up again (a new port is chosen)` : undefined,
        }),
      ),
    );
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve());
  });
  // libuv exposes the listening socket's fd on POSIX; the daemon gets it as fd 3.
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    server.close();
    throw new AmeshError('AMESH_SANDBOX_FAILED', 'cannot obtain the loopback listener file descriptor to hand to the sandbox daemon');
  }
  return { server, fd, port: (server.address() as net.AddressInfo).port };
}

/**
 * Polls `probe` until it returns a value. Errors from the probe are retried (the API server may
 * not be up yet) and reported as the cause on timeout; `fatal` is checked first on every tick and
 * ends the wait at once (e.g. the daemon process is gone).
 */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, fatal?: () => AmeshError | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const stop = fatal?.();
    if (stop) throw stop;
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await delay(250);
  }
  throw new AmeshError('AMESH_SANDBOX_FAILED', `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`, { cause: last });
}

async function tail(path: string, lines: number): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-lines).join('\n');
}

export async function sandboxUp(options: UpOptions): Promise<UpResult> {
  const progress = options.progress ?? (() => {});
  requireRoot();
  const missing = missingTools();
  if (missing.length) throw new AmeshError('AMESH_SANDBOX_FAILED', `missing host tools: ${missing.join(', ')}`, { hint: 'run scripts/setup.sh (installs iproute2, util-linux, nftables, procps)' });
  const { dir } = options;
  const paths = sandboxPaths(dir);
  const existing = await readState(dir);
  if (existing && options.nodes !== undefined && existing.nodes.length !== options.nodes) {
    throw new AmeshError('AMESH_SANDBOX_FAILED', `the sandbox in ${dir} has ${existing.nodes.length} nodes, not ${options.nodes}`, {
      hint: 'run `amesh sandbox down` first to start over with a different node count',
    });
  }
  if (existing && options.name !== undefined && existing.name !== options.name) {
    throw new AmeshError('AMESH_SANDBOX_FAILED', `the sandbox in ${dir} is named ${existing.name}, not ${options.name}`, { hint: 'use another --dir, or `amesh sandbox down` first' });
  }
  if (existing && daemonAlive(existing)) {
    progress(`sandbox ${existing.name} is already running (daemon pid ${existing.daemonPid}); checking it`);
    const kc = kubeConfigFor(dir);
    await waitReady(kc, existing, options.install !== false, progress, { dir, daemonLog: paths.daemonLog }, options.values ?? DEFAULT_VALUES);
    return { state: existing, kubeconfig: paths.kubeconfig, alreadyRunning: true };
  }

  const name = existing?.name ?? options.name ?? DEFAULT_SANDBOX_NAME;
  if (!SANDBOX_NAME.test(name)) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `sandbox name ${JSON.stringify(name)} is not valid: it prefixes node names, so it must be a lowercase DNS label of at most 7 characters`, {
      hint: 'use lowercase letters, digits and "-", starting with a letter, e.g. --name demo1',
    });
  }
  const nodes = existing?.nodes ?? nodeNames(name, options.nodes ?? 2);
  planClusterNetwork({ prefix: name, nodes }); // validates names before anything is created
  await mkdir(dir, { recursive: true, mode: 0o700 });
  progress(existing ? `resuming sandbox ${name} from ${dir}` : `creating sandbox ${name} in ${dir} (${nodes.length} nodes)`);
  await ensurePki(dir, progress);

  progress(`creating the network: fabric namespace ${name}-net and ${nodes.length} node namespaces`);
  await ClusterNetwork.create({ prefix: name, nodes, fabricIp: FABRIC_IP }, { log: (m: string) => progress(`  ${m}`) });

  const listener = await loopbackListener(options.apiPort ?? existing?.apiPort ?? 0);
  const eventLogSize = options.eventLogSize ?? existing?.eventLogSize;
  if (eventLogSize !== undefined && !(Number.isInteger(eventLogSize) && eventLogSize >= 1)) throw new AmeshError('AMESH_CONFIG_INVALID', `eventLogSize ${eventLogSize}: expected a whole number ≥ 1`);
  const state: SandboxState = { version: 1, name, nodes, apiPort: listener.port, createdAt: existing?.createdAt ?? new Date().toISOString(), ...(eventLogSize !== undefined ? { eventLogSize } : {}) };
  const caPem = await readFile(paths.clusterCaCert, 'utf8');
  const token = (await readFile(paths.adminToken, 'utf8')).trim();
  await writeFile(paths.kubeconfig, renderKubeconfig(name, listener.port, caPem, token), { mode: 0o600 });

  progress('starting the sandbox daemon (API server, controllers, kubelets, DNS) in the fabric namespace');
  const plan = planClusterNetwork({ prefix: name, nodes });
  const logFd = openSync(paths.daemonLog, 'a');
  // The daemon lives in the fabric; this handle lets it open LoadBalancer ports on our loopback.
  const hostNetns = openSync('/proc/self/ns/net', 'r');
  let child;
  try {
    child = spawn('nsenter', [`--net=/run/netns/${plan.fabricNetns}`, '--', process.execPath, AMESH_BIN, 'sandbox', 'daemon', '--dir', dir], {
      detached: true,
      // fd 3: the API server's loopback listener; fd 4 (HOST_NETNS_FD): the host netns handle.
      stdio: ['ignore', logFd, logFd, listener.fd, hostNetns],
      env: { ...process.env, AMESH_SANDBOX_DIR: dir, [HOST_NETNS_FD_ENV]: String(HOST_NETNS_FD) },
    });
  } finally {
    closeSync(logFd);
    closeSync(hostNetns);
  }
  const pid = child.pid;
  child.unref();
  listener.server.close();
  if (pid === undefined) throw new AmeshError('AMESH_SANDBOX_FAILED', 'could not start the sandbox daemon (nsenter failed to spawn)');
  const ticks = await until('the daemon process to appear', 5_000, async () => processStartTicks(pid));
  state.daemonPid = pid;
  state.daemonStartTicks = ticks;
  await writeState(dir, state);

  const kc = kubeConfigFor(dir);
  try {
    await waitReady(kc, state, options.install !== false, progress, { dir, daemonLog: paths.daemonLog }, options.values ?? DEFAULT_VALUES);
  } catch (err) {
    const log = await tail(paths.daemonLog, 20);
    throw new AmeshError('AMESH_SANDBOX_FAILED', `the sandbox did not become ready${log ? `; last daemon log lines:\n${log}` : ''}`, {
      cause: err,
      hint: `full log: ${paths.daemonLog}; remove everything with \`amesh sandbox down\``,
    });
  }
  return { state, kubeconfig: paths.kubeconfig, alreadyRunning: false };
}

async function waitReady(kc: KubeConfig, state: SandboxState, install: boolean, progress: Progress, paths: { dir: string; daemonLog: string }, values: Readonly<InstallValues>): Promise<void> {
  const { dir, daemonLog } = paths;
  const core = kc.makeApiClient(CoreV1Api);
  const daemonGone = (): AmeshError | undefined =>
    daemonAlive(state) ? undefined : new AmeshError('AMESH_SANDBOX_FAILED', `the sandbox daemon (pid ${state.daemonPid}) exited; see ${daemonLog}`);
  await until(
    'the API server',
    30_000,
    async () => {
      await core.listNamespace();
      return true;
    },
    daemonGone,
  );
  progress(`API server ready on https://127.0.0.1:${state.apiPort}`);
  let shown = '';
  await until(`${state.nodes.length} nodes to be Ready`, READY_TIMEOUT_MS, async () => {
    const list = await core.listNode();
    const ready = list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    const line = `nodes Ready: ${ready.length}/${state.nodes.length}`;
    if (line !== shown) progress((shown = line));
    return ready.length >= state.nodes.length ? true : undefined;
  }, daemonGone);
  if (!install) return;
  progress('installing amesh through its manifests (daemonset/, as `amesh install` applies them)');
  await installIntoSandbox(kc, values, progress, { timeoutMs: 2 * READY_TIMEOUT_MS, sandboxDir: dir, fatal: daemonGone });
}

/**
 * amesh into a sandbox: `installAmesh` — the same function `amesh install` runs, so the sandbox
 * proves the manifests a real cluster gets. `amesh install` against a sandbox calls this.
 */
export async function installIntoSandbox(kc: KubeConfig, values: Readonly<InstallValues>, progress: Progress, options: InstallOptions): Promise<InstallResult> {
  return installAmesh(kc, values, progress, options);
}

export interface DownOptions {
  dir: string;
  keep?: boolean;
  progress?: Progress;
}

function killRecorded(pid: number, ticks: string | undefined, signal: NodeJS.Signals): boolean {
  if (ticks !== undefined && processStartTicks(pid) !== ticks) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Pids of processes inside a network namespace (`ip netns pids`); only our namespaces are asked. */
function netnsPids(netns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
  } catch {
    return [];
  }
}

function ourNamespaces(prefix: string): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(`${prefix}-`));
  } catch {
    return [];
  }
}

export async function sandboxDown(options: DownOptions): Promise<{ removed: boolean }> {
  const progress = options.progress ?? (() => {});
  requireRoot();
  const { dir } = options;
  const paths = sandboxPaths(dir);
  const state = await readState(dir);
  if (!state) {
    progress(`no sandbox in ${dir}; nothing to do`);
    return { removed: false };
  }
  if (daemonAlive(state) && state.daemonPid) {
    progress(`stopping the sandbox daemon (pid ${state.daemonPid}); pods get their termination grace period`);
    killRecorded(state.daemonPid, state.daemonStartTicks, 'SIGTERM');
    const deadline = Date.now() + DAEMON_STOP_TIMEOUT_MS;
    while (daemonAlive(state) && Date.now() < deadline) await delay(100);
    if (daemonAlive(state)) {
      progress('the daemon did not stop in time; killing it');
      killRecorded(state.daemonPid, state.daemonStartTicks, 'SIGKILL');
    }
  }
  // Leftovers after a crash: processes the kubelets recorded, then anything still inside our namespaces.
  const recorded = await readRecordedPids(paths.kubelet).catch(() => []);
  let killed = 0;
  for (const r of recorded) if (killRecorded(r.pid, r.startTicks, 'SIGKILL')) killed++;
  for (const ns of ourNamespaces(state.name)) {
    for (const pid of netnsPids(ns)) if (killRecorded(pid, undefined, 'SIGKILL')) killed++;
  }
  if (killed) {
    progress(`killed ${killed} leftover process(es)`);
    await delay(200);
  }
  progress('removing network namespaces');
  const removed = await removeClusterNetwork(state.name, (m: string) => progress(`  ${m}`));
  if (removed.length) progress(`  removed ${removed.length} namespace(s)`);
  for (const node of state.nodes) {
    await rm(join('/sys/fs/bpf/amesh/v1', node), { recursive: true, force: true }).catch((err: unknown) => progress(`  could not remove pinned BPF objects of ${node}: ${(err as Error).message}`));
  }
  if (options.keep) {
    delete state.daemonPid;
    delete state.daemonStartTicks;
    await writeState(dir, state);
    await rm(paths.kubelet, { recursive: true, force: true });
    progress(`kept the API server state in ${dir}; \`amesh sandbox up\` resumes it`);
  } else {
    await rm(dir, { recursive: true, force: true });
    progress(`removed ${dir}`);
  }
  return { removed: true };
}
