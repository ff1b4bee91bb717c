/**
 * The measured world: two simulated nodes (network namespaces joined by an uplink) and four pods,
 * the backends in the server pods, and the proxies of each path:
 *
 *   path     client pod (node1)         server pod (node2)        proxies
 *   direct   cplain 10.244.1.3   ──▶   splain 10.244.2.3         none
 *   stunnel  cplain → 127.0.0.1 stunnel ══ TLS ══▶ stunnel in splain → 127.0.0.1   2 × stunnel
 *   amesh    cmesh 10.244.1.2    ──▶   smesh 10.244.2.2          2 × node agent (eBPF capture, HBONE)
 *
 * The direct and stunnel pods are unenrolled (`tunnelProtocol: NONE`), so the agents, which run
 * for the whole benchmark, never capture their traffic. Every resource is registered with the
 * CleanupStack the moment it exists.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { createTopology, type SpawnedProcess, type Topology } from '../src/sandbox/network/topology.js';
import type { CleanupStack } from './cleanup.js';
import { negotiatedTls, startStunnelPair, type StunnelPair } from './comparators/stunnel.js';
import type { RunSettings } from './options.js';
import type { Progress } from './progress.js';
import type { PathName } from './results.js';

/** dist/bench when compiled; the child programs are compiled next to this file. */
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** The repository: two levels up from dist/bench, one from bench/ (tests import the sources). */
export const REPO_DIR = ((up: string) => (basename(up) === 'dist' ? dirname(up) : up))(resolve(BENCH_DIR, '..'));
export const AMESH_CLI = join(REPO_DIR, 'bin', 'amesh.js');
export const HTTP_SERVER = join(BENCH_DIR, 'http-server.js');
export const LOAD_CLIENT = join(BENCH_DIR, 'load', 'open-loop-client.js');

export const IPERF_PORT = 5201;
export const HTTP_PORT = 8080;
/** stunnel client listens on 127.0.0.1:<client>; the server on <server> and forwards to the backend. */
const STUNNEL_TUNNELS = [
  { name: 'iperf3', clientPort: 25201, serverPort: 35201, targetPort: IPERF_PORT },
  { name: 'http', clientPort: 28080, serverPort: 38080, targetPort: HTTP_PORT },
] as const;

const NODES = [
  { name: 'node1', uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' },
  { name: 'node2', uplinkIp: '10.250.0.2', podCidr: '10.244.2.0/24' },
] as const;
const PODS = [
  { name: 'cmesh', node: 'node1', ip: '10.244.1.2', enrolled: true, serviceAccount: 'client' },
  { name: 'smesh', node: 'node2', ip: '10.244.2.2', enrolled: true, serviceAccount: 'server' },
  { name: 'cplain', node: 'node1', ip: '10.244.1.3', enrolled: false, serviceAccount: 'plain-client' },
  { name: 'splain', node: 'node2', ip: '10.244.2.3', enrolled: false, serviceAccount: 'plain-server' },
] as const;

/** Where a path's traffic starts and ends. */
export interface PathEndpoints {
  clientPod: string;
  serverPod: string;
  /** Address and ports the client dials. */
  host: string;
  iperfPort: number;
  httpPort: number;
}

const ENDPOINTS: Record<PathName, PathEndpoints> = {
  direct: { clientPod: 'cplain', serverPod: 'splain', host: '10.244.2.3', iperfPort: IPERF_PORT, httpPort: HTTP_PORT },
  stunnel: { clientPod: 'cplain', serverPod: 'splain', host: '127.0.0.1', iperfPort: STUNNEL_TUNNELS[0].clientPort, httpPort: STUNNEL_TUNNELS[1].clientPort },
  amesh: { clientPod: 'cmesh', serverPod: 'smesh', host: '10.244.2.2', iperfPort: IPERF_PORT, httpPort: HTTP_PORT },
};

export class TestbedError extends Error {
  readonly code = 'BENCH_TESTBED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestbedError';
  }
}

/** Polls `probe` every 100 ms until it returns a value, or fails after `timeoutMs` with the last error. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, alive?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const dead = alive?.();
    if (dead) throw new TestbedError(`${what}: ${dead}`);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await delay(100);
  }
  throw new TestbedError(`timed out after ${timeoutMs / 1000} s waiting for ${what}`, { cause: last });
}

async function tail(file: string, lines = 15): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const exited = (p: SpawnedProcess): string | undefined => {
  const status = p.exitStatus();
  return status ? `pid ${p.pid} exited (${status.signal ?? `code ${status.code}`})` : undefined;
};

export class Testbed {
  private stunnel: StunnelPair | undefined;
  private readonly agents: SpawnedProcess[] = [];
  /** Reported by the agents' readiness endpoint. */
  captureMode = 'n/a';
  stunnelTls = 'n/a';

  private constructor(
    readonly topology: Topology,
    readonly dir: string,
    readonly prefix: string,
  ) {}

  endpoints(path: PathName): PathEndpoints {
    return ENDPOINTS[path];
  }

  /** Pids of the proxy processes of a path (their whole process trees are measured). */
  proxyPids(path: PathName): number[] {
    if (path === 'stunnel') return this.stunnel ? [this.stunnel.client.pid, this.stunnel.server.pid] : [];
    if (path === 'amesh') return this.agents.map((a) => a.pid);
    return [];
  }

  /** Waits until something listens on TCP `port` inside `pod`. */
  async waitForListener(pod: string, port: number, timeoutMs = 10_000, process?: SpawnedProcess): Promise<void> {
    await until(
      `a listener on port ${port} in ${pod}`,
      timeoutMs,
      async () => {
        const { stdout } = await this.topology.exec(pod, ['ss', '-Hltn', 'sport', '=', `:${port}`], { timeoutMs: 5000 });
        return stdout.trim() ? true : undefined;
      },
      process ? () => exited(process) : undefined,
    );
  }

  /**
   * Builds everything the selected paths need. `step` is called before each counted setup step;
   * `setupSteps(settings)` says how many there are.
   */
  static async start(settings: RunSettings, progress: Progress, cleanup: CleanupStack): Promise<Testbed> {
    const dir = await mkdtemp(join(tmpdir(), 'amesh-bench-'));
    cleanup.push(`remove ${dir}`, async () => {
      if (settings.keepTemp) progress.info(`kept ${dir} (configs, certificates, logs)`);
      else await rm(dir, { recursive: true, force: true });
    });
    const uses = (p: PathName): boolean => settings.paths.includes(p);

    const prefix = await freePrefix();
    progress.step(`creating network namespaces ${prefix}-{node1,node2,cmesh,smesh,cplain,splain}`);
    const topology = await createTopology({
      prefix,
      nodes: NODES.map((n) => ({ ...n })),
      pods: PODS.map(({ name, node, ip }) => ({ name, node, ip })),
    });
    cleanup.push(`delete namespaces ${prefix}-*`, () => topology.destroy());
    const bed = new Testbed(topology, dir, prefix);

    if (uses('stunnel') || uses('amesh')) {
      progress.step('creating the mesh CA and stunnel certificates (amesh ca create / issue, ECDSA P-256)');
      await bed.createCertificates(uses('stunnel'));
    }

    progress.step('starting the HTTP backends (1 KB responses) in the server pods');
    await bed.startBackends(settings);

    if (uses('stunnel')) {
      progress.step('starting the stunnel pair (mutual TLS 1.3, verifyChain + verifyPeer)');
      await bed.startStunnel(cleanup);
    }
    if (uses('amesh')) {
      progress.step(`starting two amesh node agents${settings.captureMode ? ` (capture mode ${settings.captureMode})` : ''}`);
      await bed.startAgents(settings, cleanup, progress);
      progress.step('checking that the amesh path is captured and tunnelled (HBONE on :15008)');
      await bed.checkMeshPath();
    }
    return bed;
  }

  static setupSteps(settings: Pick<RunSettings, 'paths'>): number {
    const uses = (p: PathName): boolean => settings.paths.includes(p);
    return 2 + (uses('stunnel') || uses('amesh') ? 1 : 0) + (uses('stunnel') ? 1 : 0) + (uses('amesh') ? 2 : 0);
  }

  private async amesh(args: string[]): Promise<void> {
    try {
      await promisify(execFile)(process.execPath, [AMESH_CLI, ...args], { timeout: 30_000 });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new TestbedError(`\`amesh ${args.join(' ')}\` failed${stderr ? `: ${stderr}` : ''}`, { cause: err });
    }
  }

  private async createCertificates(forStunnel: boolean): Promise<void> {
    await this.amesh(['ca', 'create', '--dir', join(this.dir, 'ca')]);
    if (!forStunnel) return;
    for (const role of ['client', 'server']) {
      await this.amesh(['ca', 'issue', '--ca-dir', join(this.dir, 'ca'), '--spiffe-id', `spiffe://cluster.local/ns/bench/sa/stunnel-${role}`, '--out', join(this.dir, `stunnel-${role}-id`)]);
    }
  }

  private async startBackends(settings: RunSettings): Promise<void> {
    const servers = new Set(settings.paths.map((p) => ENDPOINTS[p].serverPod));
    for (const pod of servers) {
      const log = join(this.dir, `http-server-${pod}.log`);
      const server = this.topology.spawn(pod, [process.execPath, HTTP_SERVER, '--port', String(HTTP_PORT), '--bytes', String(settings.responseBytes)], { stdoutFile: log, stderrFile: log });
      await this.waitForListener(pod, HTTP_PORT, 10_000, server).catch(async (err: unknown) => {
        throw new TestbedError(`the HTTP backend in ${pod} did not start:\n${await tail(log)}`, { cause: err });
      });
    }
  }

  private async startStunnel(cleanup: CleanupStack): Promise<void> {
    const { clientPod, serverPod } = ENDPOINTS.stunnel;
    const pair = await startStunnelPair({
      topology: this.topology,
      dir: this.dir,
      clientNs: clientPod,
      serverNs: serverPod,
      serverIp: this.topology.podIp(serverPod),
      client: { dir: join(this.dir, 'stunnel-client-id') },
      server: { dir: join(this.dir, 'stunnel-server-id') },
      tunnels: STUNNEL_TUNNELS,
    });
    this.stunnel = pair;
    cleanup.push('stop the stunnel pair', () => Promise.all([pair.client.stop(), pair.server.stop()]));
    const why = async (err: unknown): Promise<never> => {
      throw new TestbedError(`the stunnel pair did not start:\n${await tail(join(this.dir, 'stunnel-server.out'))}\n${await tail(join(this.dir, 'stunnel-client.out'))}`, { cause: err });
    };
    for (const t of STUNNEL_TUNNELS) {
      await this.waitForListener(serverPod, t.serverPort, 10_000, pair.server).catch(why);
      await this.waitForListener(clientPod, t.clientPort, 10_000, pair.client).catch(why);
    }
    // One request through the whole pair proves the mutual TLS setup before anything is measured.
    const { stdout } = await this.topology.exec(clientPod, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://127.0.0.1:${ENDPOINTS.stunnel.httpPort}/`], {
      timeoutMs: 10_000,
      allowFailure: true,
    });
    if (stdout.trim() !== '200') await why(new Error(`a request through the stunnel pair returned ${stdout.trim() || 'nothing'}`));
    this.stunnelTls = negotiatedTls(await readFile(pair.clientLog, 'utf8').catch(() => '')) ?? 'unknown';
  }

  private meshConfig(node: string): Record<string, unknown> {
    return {
      node,
      trustDomain: 'cluster.local',
      ca: { certFile: join(this.dir, 'ca', 'ca.pem'), keyFile: join(this.dir, 'ca', 'ca-key.pem') },
      uplinks: ['up0'],
      workloads: PODS.map((p) => ({
        uid: `bench/${p.name}`,
        name: p.name,
        namespace: 'bench',
        serviceAccount: p.serviceAccount,
        node: p.node,
        addresses: [p.ip],
        tunnelProtocol: p.enrolled ? 'HBONE' : 'NONE',
      })),
      services: [],
      policies: [],
    };
  }

  private pinRoot(node: string): string {
    return `/sys/fs/bpf/amesh/v1/${this.prefix}-${node}`;
  }

  private async startAgents(settings: RunSettings, cleanup: CleanupStack, progress: Progress): Promise<void> {
    for (const { name: node } of NODES) {
      const config = join(this.dir, `mesh-${node}.yaml`);
      await writeFile(config, stringify(this.meshConfig(node)));
      const pinRoot = this.pinRoot(node);
      const env: Record<string, string> = {
        AMESH_BPF_PIN_ROOT: pinRoot,
        // Stop promptly at cleanup; the default (20 s) is for Kubernetes' grace period.
        AMESH_DRAIN_TIMEOUT_MS: '2000',
        ...(settings.captureMode ? { AMESH_CAPTURE_MODE: settings.captureMode } : {}),
      };
      cleanup.push(`remove pinned BPF maps ${pinRoot}`, () => rm(pinRoot, { recursive: true, force: true }));
      cleanup.push(`uninstall capture on ${node}`, async () => {
        await this.topology.exec(node, ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, AMESH_CLI, 'node-agent', '--local-config', config, '--uninstall'], {
          timeoutMs: 30_000,
        });
      });
      const log = join(this.dir, `agent-${node}.log`);
      const agent = this.topology.spawn(node, [process.execPath, AMESH_CLI, 'node-agent', '--local-config', config], { env, stdoutFile: log, stderrFile: log });
      this.agents.push(agent);
      cleanup.push(`stop the node agent on ${node}`, () => agent.stop(5_000));
    }
    for (const [i, { name: node }] of NODES.entries()) {
      const agent = this.agents[i]!;
      const ready = await until(
        `the node agent on ${node} to be ready (GET :15021/healthz/ready)`,
        30_000,
        async () => {
          const { stdout } = await this.topology.exec(node, ['curl', '-s', '--max-time', '1', 'http://127.0.0.1:15021/healthz/ready'], { timeoutMs: 3000, allowFailure: true });
          const body = JSON.parse(stdout) as { ready?: boolean; captureMode?: string };
          return body.ready === true ? body : undefined;
        },
        () => exited(agent),
      ).catch(async (err: unknown) => {
        throw new TestbedError(`${err instanceof Error ? err.message : String(err)}\nlast lines of ${node}'s agent log:\n${await tail(join(this.dir, `agent-${node}.log`))}`);
      });
      progress.info(`${node}: ready, capture mode ${ready.captureMode ?? 'unknown'}`);
      this.captureMode = ready.captureMode ?? 'unknown';
    }
  }

  /** Without this check a broken capture would silently benchmark plain routing as "amesh". */
  private async checkMeshPath(): Promise<void> {
    const { clientPod, host, httpPort } = ENDPOINTS.amesh;
    const { stdout } = await this.topology.exec(clientPod, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://${host}:${httpPort}/`], {
      timeoutMs: 10_000,
      allowFailure: true,
    });
    if (stdout.trim() !== '200') {
      const logs = await Promise.all(NODES.map(async ({ name }) => `${name}:\n${await tail(join(this.dir, `agent-${name}.log`), 4)}`));
      throw new TestbedError(`a request from the enrolled client pod to ${host}:${httpPort} through amesh returned ${stdout.trim() || 'nothing'} (curl); last agent log lines:\n${logs.join('\n')}`);
    }
    const tunnels = await this.topology.exec('node1', ['ss', '-Htn', 'state', 'established', 'dport', '=', ':15008'], { timeoutMs: 5000 });
    if (!tunnels.stdout.trim()) {
      throw new TestbedError('the enrolled client reached the server, but node1 holds no HBONE connection to :15008 — the traffic was not captured; amesh numbers would be plain routing');
    }
  }
}

/** A namespace prefix not in use (names must stay within 15 characters: `amb1a2b-splain`). */
async function freePrefix(): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const prefix = `amb${Math.floor(Math.random() * 0xffff).toString(16).padStart(4, '0')}`;
    if (!existsSync(`/run/netns/${prefix}-node1`)) return prefix;
  }
  throw new TestbedError('could not find a free namespace prefix amb*');
}
