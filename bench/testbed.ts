/**
 * The measured world: simulated nodes (network namespaces joined by an uplink) and pods, the
 * backends in the server pods, and the proxies of each path:
 *
 *   path       client pod                        server pod                 proxies
 *   direct     cplain 10.244.5.2   ──▶           splain 10.244.6.2          none
 *   stunnel    cplain → 127.0.0.1 stunnel ══ mTLS ══▶ stunnel in splain → 127.0.0.1   2 × stunnel
 *   haproxy    cplain → 127.0.0.1 haproxy ══ mTLS ══▶ haproxy in splain → 127.0.0.1   2 × haproxy (mode tcp, nbthread 1)
 *   nginx      cplain → 127.0.0.1 nginx   ══ mTLS ══▶ nginx in splain → 127.0.0.1     2 × nginx stream (1 worker)
 *   amesh      cmesh 10.244.1.2 (node1) ──▶ smesh 10.244.2.2 (node2)       2 × node agent (eBPF capture, HBONE)
 *   amesh-nft  cnft 10.244.3.2 (node3)  ──▶ snft 10.244.4.2 (node4)        2 × node agent (nftables capture, HBONE)
 *
 * Each pair of pods has two nodes of its own: cmesh and smesh on node1 and node2 (eBPF capture),
 * cnft and snft on node3 and node4 (nftables capture), cplain and splain on node5 and node6 (no
 * agent). So both capture modes run side by side in one benchmark, and neither carries the other
 * paths' segments through its capture program, conntrack or TIME_WAIT table: when the plain pods
 * shared node1 and node2, the direct path's 70 000–80 000 connections per connection-rate run
 * crossed the eBPF nodes only (docs/performance.md). The plain pods are unenrolled
 * (`tunnelProtocol: NONE`) as well. Every resource is registered with the CleanupStack the moment it exists.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTopology, type SpawnedProcess, type Topology } from '../src/sandbox/network/topology.js';
import type { CleanupStack } from './cleanup.js';
import { haproxyPairConfig, type PairTunnel } from './comparators/haproxy-pair.js';
import { nginxPairConfig } from './comparators/nginx-pair.js';
import { negotiatedTls, startStunnelPair, type StunnelPair } from './comparators/stunnel.js';
import type { RunSettings } from './options.js';
import type { Progress } from './progress.js';
import { AMESH_CLI, BENCH_DIR, freeNamespacePrefix, REPO_DIR, runAmesh, startNodeAgents, tail, waitForListener } from './mesh-setup.js';
import type { PathName } from './results.js';
import { parseSnmpTcp } from './proc-net-snmp.js';

export { AMESH_CLI, BENCH_DIR, REPO_DIR };
export const HTTP_SERVER = join(BENCH_DIR, 'http-server.js');
export const LOAD_CLIENT = join(BENCH_DIR, 'load', 'open-loop-client.js');

export const IPERF_PORT = 5201;
export const HTTP_PORT = 8080;
/** Scenario 5's connection-holding server in the server pods (= HOLD_PORT of scenarios/memory.ts); proxied like the others. */
export const HOLD_PORT = 9090;

type ComparatorPath = 'stunnel' | 'haproxy' | 'nginx';
type MeshPath = 'amesh' | 'amesh-nft';

/** Each comparator's client listens on 127.0.0.1:<client>; its server on <server> and forwards to the backend. */
function tunnels(offset: number): PairTunnel[] {
  return [
    { name: 'iperf3', clientPort: 25201 + offset, serverPort: 35201 + offset, targetPort: IPERF_PORT },
    { name: 'http', clientPort: 28080 + offset, serverPort: 38080 + offset, targetPort: HTTP_PORT },
    { name: 'hold', clientPort: 29090 + offset, serverPort: 39090 + offset, targetPort: HOLD_PORT },
  ];
}
const TUNNELS: Readonly<Record<ComparatorPath, PairTunnel[]>> = { stunnel: tunnels(0), haproxy: tunnels(1), nginx: tunnels(2) };
/**
 * haproxy's maxconn and nginx's worker_connections: each proxied connection takes two sockets, and
 * neither may raise its descriptor limit past the hard limit it inherits (containers often cap it
 * at 20 000, so scenario 5's 10 000 held connections may not fit there — the run says so).
 */
async function maxProxiedConnections(): Promise<number> {
  let hard = 1_048_576;
  try {
    const { stdout } = await promisify(execFile)('sh', ['-c', 'ulimit -Hn']);
    if (/^\d+$/.test(stdout.trim())) hard = Number(stdout.trim());
  } catch {
    // keep the kernel's default ceiling
  }
  return Math.max(100, Math.min(22_000, Math.floor((hard - 200) / 2)));
}

const ALL_NODES = [
  { name: 'node1', uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' },
  { name: 'node2', uplinkIp: '10.250.0.2', podCidr: '10.244.2.0/24' },
  { name: 'node3', uplinkIp: '10.250.0.3', podCidr: '10.244.3.0/24' },
  { name: 'node4', uplinkIp: '10.250.0.4', podCidr: '10.244.4.0/24' },
  { name: 'node5', uplinkIp: '10.250.0.5', podCidr: '10.244.5.0/24' },
  { name: 'node6', uplinkIp: '10.250.0.6', podCidr: '10.244.6.0/24' },
] as const;
const ALL_PODS = [
  { name: 'cmesh', node: 'node1', ip: '10.244.1.2', enrolled: true, serviceAccount: 'client' },
  { name: 'smesh', node: 'node2', ip: '10.244.2.2', enrolled: true, serviceAccount: 'server' },
  { name: 'cplain', node: 'node5', ip: '10.244.5.2', enrolled: false, serviceAccount: 'plain-client' },
  { name: 'splain', node: 'node6', ip: '10.244.6.2', enrolled: false, serviceAccount: 'plain-server' },
  { name: 'cnft', node: 'node3', ip: '10.244.3.2', enrolled: true, serviceAccount: 'client' },
  { name: 'snft', node: 'node4', ip: '10.244.4.2', enrolled: true, serviceAccount: 'server' },
] as const;
/** The nodes (client's first) whose agents carry each amesh path. */
const MESH_NODES: Readonly<Record<MeshPath, readonly [string, string]>> = { amesh: ['node1', 'node2'], 'amesh-nft': ['node3', 'node4'] };

/** Where a path's traffic starts and ends. */
export interface PathEndpoints {
  clientPod: string;
  serverPod: string;
  /** Address and ports the client dials. */
  host: string;
  iperfPort: number;
  httpPort: number;
  /** Reaches HOLD_PORT in the server pod. */
  holdPort: number;
}

const plain = (host: string, clientPod: string, serverPod: string): PathEndpoints => ({ clientPod, serverPod, host, iperfPort: IPERF_PORT, httpPort: HTTP_PORT, holdPort: HOLD_PORT });
const paired = (path: ComparatorPath): PathEndpoints => {
  const [iperf, http, hold] = TUNNELS[path];
  return { clientPod: 'cplain', serverPod: 'splain', host: '127.0.0.1', iperfPort: iperf!.clientPort, httpPort: http!.clientPort, holdPort: hold!.clientPort };
};
const ENDPOINTS: Readonly<Record<PathName, PathEndpoints>> = {
  direct: plain('10.244.6.2', 'cplain', 'splain'),
  stunnel: paired('stunnel'),
  haproxy: paired('haproxy'),
  nginx: paired('nginx'),
  amesh: plain('10.244.2.2', 'cmesh', 'smesh'),
  'amesh-nft': plain('10.244.4.2', 'cnft', 'snft'),
};

/** Nodes and pods the selected paths need: the pods at either end of each path, and their nodes. */
export function topologyFor(paths: readonly PathName[]): { nodes: (typeof ALL_NODES)[number][]; pods: (typeof ALL_PODS)[number][] } {
  const needed = new Set(paths.flatMap((p) => [ENDPOINTS[p].clientPod, ENDPOINTS[p].serverPod]));
  const pods = ALL_PODS.filter((p) => needed.has(p.name));
  const nodes = new Set<string>(pods.map((p) => p.node));
  return { nodes: ALL_NODES.filter((n) => nodes.has(n.name)), pods };
}

export class TestbedError extends Error {
  readonly code = 'BENCH_TESTBED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestbedError';
  }
}

export class Testbed {
  private stunnel: StunnelPair | undefined;
  private readonly pairs = new Map<'haproxy' | 'nginx', SpawnedProcess[]>();
  private readonly agents = new Map<MeshPath, SpawnedProcess[]>();
  /** How each amesh path's agents were started, so restartAgents can start them again the same way. */
  private readonly agentStarts = new Map<MeshPath, { captureMode: string | undefined; cleanup: CleanupStack; progress: Progress }>();
  /** Reported by the agents' readiness endpoints, per amesh path. */
  readonly captureModes: Partial<Record<MeshPath, string>> = {};
  stunnelTls = 'n/a';
  /** The connection limit the haproxy and nginx pairs were configured with (bounded by the descriptor limit). */
  readonly maxConnections: Partial<Record<'haproxy' | 'nginx', number>> = {};

  private constructor(
    readonly topology: Topology,
    readonly dir: string,
    readonly prefix: string,
    private readonly pods: readonly (typeof ALL_PODS)[number][],
  ) {}

  /** The amesh (eBPF) path's capture mode, as its agents report it. */
  get captureMode(): string {
    return this.captureModes.amesh ?? 'n/a';
  }

  endpoints(path: PathName): PathEndpoints {
    return ENDPOINTS[path];
  }

  /** Pids of the proxy processes of a path (their whole process trees are measured). */
  proxyPids(path: PathName): number[] {
    if (path === 'stunnel') return this.stunnel ? [this.stunnel.client.pid, this.stunnel.server.pid] : [];
    if (path === 'haproxy' || path === 'nginx') return (this.pairs.get(path) ?? []).map((p) => p.pid);
    if (path === 'amesh' || path === 'amesh-nft') return (this.agents.get(path) ?? []).map((a) => a.pid);
    return [];
  }

  /** The node namespaces whose agents carry an amesh path (client's node first); empty for the others. */
  agentNodes(path: PathName): string[] {
    return path === 'amesh' || path === 'amesh-nft' ? [...MESH_NODES[path]] : [];
  }

  /** Waits until something listens on TCP `port` inside `pod`. */
  async waitForListener(pod: string, port: number, timeoutMs = 10_000, process?: SpawnedProcess): Promise<void> {
    await waitForListener(TestbedError, this.topology, pod, port, timeoutMs, process);
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
    const { nodes, pods } = topologyFor(settings.paths);

    const prefix = await freePrefix();
    progress.step(`creating network namespaces ${prefix}-{${[...nodes, ...pods].map((n) => n.name).join(',')}}`);
    const topology = await createTopology({
      prefix,
      nodes: nodes.map((n) => ({ ...n })),
      pods: pods.map(({ name, node, ip }) => ({ name, node, ip })),
    });
    cleanup.push(`delete namespaces ${prefix}-*`, () => topology.destroy());
    const bed = new Testbed(topology, dir, prefix, pods);
    await bed.reuseClientTimeWait();

    const comparators = (['stunnel', 'haproxy', 'nginx'] as const).filter(uses);
    if (settings.paths.some((p) => p !== 'direct')) {
      progress.step('creating the mesh CA and the comparators\' certificates (amesh ca create / issue, ECDSA P-256)');
      await bed.createCertificates(comparators.length > 0);
    }

    progress.step('starting the HTTP backends (1 KB responses) in the server pods');
    await bed.startBackends(settings);

    if (uses('stunnel')) {
      progress.step('starting the stunnel pair (mutual TLS 1.3, verifyChain + verifyPeer)');
      await bed.startStunnel(cleanup);
    }
    for (const path of ['haproxy', 'nginx'] as const) {
      if (!uses(path)) continue;
      progress.step(path === 'haproxy' ? 'starting the haproxy pair (mode tcp, mutual TLS 1.3, nbthread 1)' : 'starting the nginx stream pair (proxy_ssl + ssl_verify_client, TLS 1.3, 1 worker)');
      await bed.startPair(path, cleanup);
    }
    for (const path of ['amesh', 'amesh-nft'] as const) {
      if (!uses(path)) continue;
      const mode = path === 'amesh-nft' ? 'nftables' : settings.captureMode;
      progress.step(`starting the amesh node agents on ${MESH_NODES[path].join(' and ')}${mode ? ` (capture mode ${mode})` : ''}`);
      await bed.startAgents(path, mode, cleanup, progress);
      progress.step(`checking that the ${path} path is captured and tunnelled (HBONE on :15008)`);
      await bed.checkMeshPath(path);
    }
    return bed;
  }

  static setupSteps(settings: Pick<RunSettings, 'paths'>): number {
    const uses = (p: PathName): boolean => settings.paths.includes(p);
    const count = (paths: PathName[]): number => paths.filter(uses).length;
    return 2 + (settings.paths.some((p) => p !== 'direct') ? 1 : 0) + count(['stunnel', 'haproxy', 'nginx']) + 2 * count(['amesh', 'amesh-nft']);
  }

  /**
   * The load generators may reuse their own TIME_WAIT ports (`net.ipv4.tcp_tw_reuse=1` in each
   * client pod), as load-test set-ups do. Without it a client that closes first piles up TIME_WAIT
   * entries; after about 14 000 connections to one destination (the half of the port range
   * connect() tries first) every connect() scans it in the kernel, and the connection rate of
   * direct and amesh fell from ~900 to ~320/s within a run. The comparator pairs were spared:
   * their clients dial 127.0.0.1, where the default (2) already allows reuse.
   */
  private async reuseClientTimeWait(): Promise<void> {
    const clients = new Set(Object.values(ENDPOINTS).map((e) => e.clientPod));
    for (const pod of this.pods.filter((p) => clients.has(p.name))) {
      await this.topology.exec(pod.name, ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1'], { timeoutMs: 5000 });
    }
  }

  private async amesh(args: string[]): Promise<void> {
    await runAmesh(TestbedError, args);
  }

  /** The comparators share one client and one server identity (stunnel-{client,server}-id). */
  private async createCertificates(forComparators: boolean): Promise<void> {
    await this.amesh(['ca', 'create', '--dir', join(this.dir, 'ca')]);
    if (!forComparators) return;
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

  /** One request through the whole path proves its (mutual TLS) setup before anything is measured. */
  private async probe(path: PathName): Promise<string> {
    const { clientPod, host, httpPort } = ENDPOINTS[path];
    const { stdout } = await this.topology.exec(clientPod, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://${host}:${httpPort}/`], {
      timeoutMs: 10_000,
      allowFailure: true,
    });
    return stdout.trim();
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
      tunnels: TUNNELS.stunnel,
    });
    this.stunnel = pair;
    cleanup.push('stop the stunnel pair', () => Promise.all([pair.client.stop(), pair.server.stop()]));
    const why = async (err: unknown): Promise<never> => {
      throw new TestbedError(`the stunnel pair did not start:\n${await tail(join(this.dir, 'stunnel-server.out'))}\n${await tail(join(this.dir, 'stunnel-client.out'))}`, { cause: err });
    };
    for (const t of TUNNELS.stunnel) {
      await this.waitForListener(serverPod, t.serverPort, 10_000, pair.server).catch(why);
      await this.waitForListener(clientPod, t.clientPort, 10_000, pair.client).catch(why);
    }
    const code = await this.probe('stunnel');
    if (code !== '200') await why(new Error(`a request through the stunnel pair returned ${code || 'nothing'}`));
    this.stunnelTls = negotiatedTls(await readFile(pair.clientLog, 'utf8').catch(() => '')) ?? 'unknown';
  }

  /** The haproxy or nginx pair: configs from comparators/{haproxy,nginx}-pair.ts, same identities as stunnel. */
  private async startPair(path: 'haproxy' | 'nginx', cleanup: CleanupStack): Promise<void> {
    const { clientPod, serverPod } = ENDPOINTS[path];
    const serverIp = this.topology.podIp(serverPod);
    const started: SpawnedProcess[] = [];
    this.pairs.set(path, started);
    const logs: string[] = [];
    const maxConnections = await maxProxiedConnections();
    for (const role of ['server', 'client'] as const) {
      const id = join(this.dir, `stunnel-${role}-id`);
      const workDir = join(this.dir, `${path}-${role}`);
      await mkdir(workDir, { recursive: true });
      const log = join(workDir, 'out.log');
      logs.push(log);
      let argv: string[];
      if (path === 'haproxy') {
        const crtFile = join(workDir, 'crt.pem');
        await writeFile(crtFile, `${await readFile(join(id, 'cert.pem'), 'utf8')}\n${await readFile(join(id, 'key.pem'), 'utf8')}`);
        const config = join(workDir, 'haproxy.cfg');
        await writeFile(config, haproxyPairConfig({ role, crtFile, caFile: join(id, 'root.pem'), serverIp, tunnels: TUNNELS.haproxy, maxConnections }));
        argv = ['haproxy', '-db', '-f', config];
      } else {
        const config = join(workDir, 'nginx.conf');
        await writeFile(
          config,
          nginxPairConfig({ role, dir: workDir, certFile: join(id, 'cert.pem'), keyFile: join(id, 'key.pem'), caFile: join(id, 'root.pem'), serverIp, tunnels: TUNNELS.nginx, maxConnections }),
        );
        argv = ['nginx', '-p', workDir, '-e', join(workDir, 'nginx-error.log'), '-c', config];
      }
      const proc = this.topology.spawn(role === 'server' ? serverPod : clientPod, argv, { stdoutFile: log, stderrFile: log });
      started.push(proc);
      cleanup.push(`stop the ${path} ${role}`, () => proc.stop(3_000));
    }
    const [server, client] = started as [SpawnedProcess, SpawnedProcess];
    this.maxConnections[path] = maxConnections;
    const why = async (err: unknown): Promise<never> => {
      const errorLogs = path === 'nginx' ? ['server', 'client'].map((r) => join(this.dir, `nginx-${r}`, 'nginx-error.log')) : [];
      const text = await Promise.all([...logs, ...errorLogs].map(async (l) => `${l}:\n${await tail(l)}`));
      throw new TestbedError(`the ${path} pair did not start: ${err instanceof Error ? err.message : String(err)}\n${text.join('\n')}`, { cause: err });
    };
    for (const t of TUNNELS[path]) {
      await this.waitForListener(serverPod, t.serverPort, 10_000, server).catch(why);
      await this.waitForListener(clientPod, t.clientPort, 10_000, client).catch(why);
    }
    const code = await this.probe(path);
    if (code !== '200') await why(new Error(`a request through the ${path} pair returned ${code || 'nothing'}`));
  }

  private meshConfig(node: string): Record<string, unknown> {
    return {
      node,
      trustDomain: 'cluster.local',
      ca: { certFile: join(this.dir, 'ca', 'ca.pem'), keyFile: join(this.dir, 'ca', 'ca-key.pem') },
      uplinks: ['up0'],
      workloads: this.pods.map((p) => ({
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

  /**
   * Stops a mesh path's node agents and starts fresh ones from the same configs, then checks the
   * path again. The memory scenario measures every run from fresh processes: after a release V8
   * and the allocator keep their pages mapped, and a later run that reuses them would read fewer
   * KB per connection than a node carries on its first burst. Capture stays in place across the
   * restart (pinned maps), as it does for an agent upgrade. `extraEnv`: agent settings for these
   * processes only (the handshake scenario turns the HBONE pool off); a restart without it
   * starts agents with the defaults again.
   */
  async restartAgents(path: PathName, extraEnv?: Readonly<Record<string, string>>): Promise<void> {
    if (path !== 'amesh' && path !== 'amesh-nft') return;
    const start = this.agentStarts.get(path);
    if (!start) throw new TestbedError(`the ${path} agents were never started, so they cannot be restarted`);
    for (const agent of this.agents.get(path) ?? []) await agent.stop(5_000);
    await this.startAgents(path, start.captureMode, start.cleanup, start.progress, extraEnv);
    await this.checkMeshPath(path);
  }

  private async startAgents(path: MeshPath, captureMode: string | undefined, cleanup: CleanupStack, progress: Progress, extraEnv?: Readonly<Record<string, string>>): Promise<void> {
    this.agentStarts.set(path, { captureMode, cleanup, progress });
    const started = await startNodeAgents({
      ErrorClass: TestbedError,
      topology: this.topology,
      dir: this.dir,
      prefix: this.prefix,
      nodes: MESH_NODES[path],
      config: (node) => this.meshConfig(node),
      ...(captureMode ? { captureMode } : {}),
      ...(extraEnv ? { extraEnv } : {}),
      cleanup,
      log: (line) => progress.info(line),
    });
    this.agents.set(
      path,
      started.map((a) => a.process),
    );
    this.captureModes[path] = started.at(-1)?.captureMode ?? 'unknown';
    if (captureMode && captureMode !== 'auto' && this.captureModes[path] !== captureMode) {
      throw new TestbedError(`the ${path} agents report capture mode ${this.captureModes[path]}, not the ${captureMode} they were started with`);
    }
  }

  /** Without this check a broken capture would silently benchmark plain routing as "amesh". */
  private async checkMeshPath(path: MeshPath): Promise<void> {
    const { host, httpPort } = ENDPOINTS[path];
    const [clientNode, serverNode] = MESH_NODES[path];
    // Connections the client node opened itself: only its agent dials from there (a pod's traffic
    // is routed through the node, not opened by it). An agent whose pool keeps no connection
    // (AMESH_HBONE_POOL_IDLE_TIMEOUT_MS=0) has closed the probe's tunnel before it can be seen.
    const activeOpens = async (): Promise<number> => parseSnmpTcp((await this.topology.exec(clientNode, ['cat', '/proc/net/snmp'], { timeoutMs: 5000 })).stdout).ActiveOpens ?? 0;
    const opensBefore = await activeOpens();
    const code = await this.probe(path);
    if (code !== '200') {
      const logs = await Promise.all(MESH_NODES[path].map(async (name) => `${name}:\n${await tail(join(this.dir, `agent-${name}.log`), 4)}`));
      throw new TestbedError(`a request from the enrolled client pod to ${host}:${httpPort} through ${path} returned ${code || 'nothing'} (curl); last agent log lines:\n${logs.join('\n')}`);
    }
    const tunnels = await this.topology.exec(clientNode, ['ss', '-Htn', 'state', 'established', 'dport', '=', ':15008'], { timeoutMs: 5000 });
    const dialled = (await activeOpens()) > opensBefore;
    if (!tunnels.stdout.trim() && !dialled) {
      throw new TestbedError(`the enrolled client reached the server, but ${clientNode} neither holds nor opened an HBONE connection to ${serverNode}:15008 — the traffic was not captured; ${path} numbers would be plain routing`);
    }
  }
}

/** A namespace prefix not in use (names must stay within 15 characters: `amb1a2b-splain`). */
async function freePrefix(): Promise<string> {
  return freeNamespacePrefix(TestbedError, 'amb', 4);
}
