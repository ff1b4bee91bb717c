/**
 * The soak's world (`npm run soak`, bench/soak-run.ts): three simulated nodes (network namespaces
 * joined by an uplink, src/sandbox/network/topology.ts, as the bench's testbed), two node agents
 * with eBPF capture (as `npm run bench`'s amesh path, bench/testbed.ts) and one waypoint:
 *
 *   client pod 10.244.1.2 (node1) ── requests to the backend VIP 10.96.0.10:80 ──▶ node1 agent
 *        ══ HBONE ══▶ waypoint pod 10.244.3.2:15008 (node3, real WaypointProxy, bench/soak-waypoint.ts)
 *        ══ HBONE ══▶ node2 agent ──▶ server pod 10.244.2.2:8080 (nginx, 1 worker, 1 KiB: bench/soak-backend.ts)
 *   client pod ── held connections to 10.244.2.2:9090 ──▶ node1 agent ══ HBONE ══▶ node2 agent
 *        ──▶ server pod :9090 (bench/hold-server.ts)
 *
 * The agents learn the service and its waypoint from their local config (the `waypoint` field of
 * the service, what the controller sends from `istio.io/use-waypoint`). The waypoint pod is not
 * enrolled (as Istio's waypoints): it speaks HBONE itself. Every resource is registered with the
 * CleanupStack the moment it exists.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTopology, type SpawnedProcess, type Topology } from '../src/sandbox/network/topology.js';
import type { CleanupStack } from './cleanup.js';
import { soakBackendConfig } from './soak-backend.js';
import type { SoakWaypointOptions } from './soak-waypoint.js';
import { BENCH_DIR, freeNamespacePrefix, runAmesh, startNodeAgents, tail, until, waitForListener } from './mesh-setup.js';
import { HOLD_PORT, HTTP_PORT } from './testbed.js';
import { heapAfterOf } from './scenarios/memory.js';
import type { ProcessSample } from './soak-verdict.js';

export const SOAK_WAYPOINT = join(BENCH_DIR, 'soak-waypoint.js');
export const HOLD_SERVER = join(BENCH_DIR, 'hold-server.js');
export const SOAK_LOAD_CLIENT = join(BENCH_DIR, 'load', 'soak-load-client.js');
export const HOLD_CLIENT = join(BENCH_DIR, 'load', 'hold-client.js');

const NODES = [
  { name: 'node1', uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' },
  { name: 'node2', uplinkIp: '10.250.0.2', podCidr: '10.244.2.0/24' },
  { name: 'node3', uplinkIp: '10.250.0.3', podCidr: '10.244.3.0/24' },
] as const;
export const CLIENT_POD = { name: 'client', node: 'node1', ip: '10.244.1.2', namespace: 'bench', serviceAccount: 'client' } as const;
export const SERVER_POD = { name: 'server', node: 'node2', ip: '10.244.2.2', namespace: 'bench', serviceAccount: 'server' } as const;
export const WAYPOINT_POD = { name: 'waypoint', node: 'node3', ip: '10.244.3.2', namespace: 'bench', serviceAccount: 'waypoint' } as const;
/** The nodes whose agents carry the traffic (client's first). */
export const AGENT_NODES = ['node1', 'node2'] as const;
export const SERVICE = { name: 'backend', namespace: 'bench', hostname: 'backend.bench.svc.cluster.local', vip: '10.96.0.10', port: 80 } as const;
const HBONE_PORT = 15008;
/** The agents' and the waypoint's admin port (each in its own namespace). */
const ADMIN_PORT = 15000;

export class SoakTopologyError extends Error {
  readonly code = 'BENCH_SOAK_TOPOLOGY';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SoakTopologyError';
  }
}

export interface SoakTopologyOptions {
  /** Test-only leak injected into the waypoint (see bench/soak-waypoint.ts); 0 = none. */
  leakKibPerSecond?: number;
  leakFdsPerMinute?: number;
  keepTemp?: boolean;
  log: (line: string) => void;
}

/** A namespace prefix not in use (names stay within 15 characters: `aso1a2-waypoint`). */
const freePrefix = (): string => freeNamespacePrefix(SoakTopologyError, 'aso', 3);

export class SoakTopology {
  /** The measured processes: both node agents and the waypoint, with the namespace each runs in. */
  readonly measured: Array<{ name: string; ns: string; process: SpawnedProcess }> = [];
  /** The HTTP backend (nginx master; its worker is a child) — its CPU is reported, not judged. */
  httpBackend: SpawnedProcess | undefined;

  private constructor(
    readonly topology: Topology,
    readonly dir: string,
    readonly prefix: string,
  ) {}

  /** Builds the namespaces, CA, backends, agents and waypoint, and checks both paths end to end. */
  static async start(o: SoakTopologyOptions, cleanup: CleanupStack): Promise<SoakTopology> {
    const dir = await mkdtemp(join(tmpdir(), 'amesh-soak-'));
    cleanup.push(`remove ${dir}`, async () => {
      if (o.keepTemp) o.log(`kept ${dir} (configs, certificates, logs)`);
      else await rm(dir, { recursive: true, force: true });
    });
    const prefix = freePrefix();
    o.log(`creating network namespaces ${prefix}-{node1,node2,node3,client,server,waypoint}`);
    const topology = await createTopology({
      prefix,
      nodes: NODES.map((n) => ({ ...n })),
      pods: [CLIENT_POD, SERVER_POD, WAYPOINT_POD].map(({ name, node, ip }) => ({ name, node, ip })),
    });
    cleanup.push(`delete namespaces ${prefix}-*`, () => topology.destroy());
    const bed = new SoakTopology(topology, dir, prefix);

    o.log('creating the mesh CA (amesh ca create)');
    await bed.amesh(['ca', 'create', '--dir', join(dir, 'ca')]);
    o.log(`starting the backends in the server pod (HTTP :${HTTP_PORT}, hold :${HOLD_PORT})`);
    await bed.startBackends(cleanup);
    o.log('starting the node agents on node1 and node2 (eBPF capture, HBONE)');
    await bed.startAgents(cleanup, o.log);
    o.log(`starting the waypoint in ${prefix}-waypoint (${WAYPOINT_POD.ip}:${HBONE_PORT})`);
    await bed.startWaypoint(cleanup, o.leakKibPerSecond ?? 0, o.leakFdsPerMinute ?? 0);
    o.log('checking both paths: VIP → agent → waypoint → agent → server, and pod → agent → agent → server');
    await bed.checkPaths();
    return bed;
  }

  private async amesh(args: string[]): Promise<void> {
    await runAmesh(SoakTopologyError, args);
  }

  private async waitForListener(ns: string, port: number, process: SpawnedProcess, log: string): Promise<void> {
    await waitForListener(SoakTopologyError, this.topology, ns, port, 20_000, process).catch(async (err: unknown) => {
      throw new SoakTopologyError(`${err instanceof Error ? err.message : String(err)}\nlast lines of ${log}:\n${await tail(log)}`);
    });
  }

  private async startBackends(cleanup: CleanupStack): Promise<void> {
    const nginxDir = join(this.dir, 'nginx');
    await mkdir(nginxDir, { recursive: true });
    const nginxConfig = join(nginxDir, 'nginx.conf');
    await writeFile(nginxConfig, soakBackendConfig({ dir: nginxDir, port: HTTP_PORT, bytes: 1024 }));
    for (const [name, argv, port] of [
      ['http-server', ['nginx', '-p', nginxDir, '-e', join(nginxDir, 'nginx-error.log'), '-c', nginxConfig], HTTP_PORT],
      ['hold-server', [process.execPath, HOLD_SERVER, '--port', String(HOLD_PORT)], HOLD_PORT],
    ] as const) {
      const log = join(this.dir, `${name}.log`);
      const proc = this.topology.spawn(SERVER_POD.name, [...argv], { stdoutFile: log, stderrFile: log });
      cleanup.push(`stop the ${name}`, () => proc.stop(3_000));
      if (name === 'http-server') this.httpBackend = proc;
      await this.waitForListener(SERVER_POD.name, port, proc, log);
    }
  }

  private meshConfig(node: string): Record<string, unknown> {
    const workload = (p: typeof CLIENT_POD | typeof SERVER_POD | typeof WAYPOINT_POD, enrolled: boolean, services: Record<string, unknown> = {}): Record<string, unknown> => ({
      uid: `${p.namespace}/${p.name}`,
      name: p.name,
      namespace: p.namespace,
      serviceAccount: p.serviceAccount,
      node: p.node,
      addresses: [p.ip],
      tunnelProtocol: enrolled ? 'HBONE' : 'NONE',
      services,
    });
    const ports = [{ servicePort: SERVICE.port, targetPort: HTTP_PORT }];
    return {
      node,
      trustDomain: 'cluster.local',
      ca: { certFile: join(this.dir, 'ca', 'ca.pem'), keyFile: join(this.dir, 'ca', 'ca-key.pem') },
      uplinks: ['up0'],
      workloads: [
        workload(CLIENT_POD, true),
        workload(SERVER_POD, true, { [`${SERVICE.namespace}/${SERVICE.hostname}`]: { ports } }),
        // Not enrolled, as Istio's waypoints: it speaks HBONE itself.
        workload(WAYPOINT_POD, false),
      ],
      services: [
        {
          name: SERVICE.name,
          namespace: SERVICE.namespace,
          hostname: SERVICE.hostname,
          addresses: [SERVICE.vip],
          ports,
          waypoint: { address: { address: WAYPOINT_POD.ip }, hboneMtlsPort: HBONE_PORT },
        },
      ],
      policies: [],
    };
  }

  private async startAgents(cleanup: CleanupStack, log: (line: string) => void): Promise<void> {
    const started = await startNodeAgents({ ErrorClass: SoakTopologyError, topology: this.topology, dir: this.dir, prefix: this.prefix, nodes: AGENT_NODES, config: (node) => this.meshConfig(node), cleanup, log });
    for (const a of started) this.measured.push({ name: `agent-${a.node}`, ns: a.node, process: a.process });
  }

  private async startWaypoint(cleanup: CleanupStack, leakKibPerSecond: number, leakFdsPerMinute: number): Promise<void> {
    const options: SoakWaypointOptions = {
      caCertFile: join(this.dir, 'ca', 'ca.pem'),
      caKeyFile: join(this.dir, 'ca', 'ca-key.pem'),
      namespace: WAYPOINT_POD.namespace,
      name: WAYPOINT_POD.serviceAccount,
      listenIp: WAYPOINT_POD.ip,
      hbonePort: HBONE_PORT,
      service: { namespace: SERVICE.namespace, hostname: SERVICE.hostname, vip: SERVICE.vip, port: SERVICE.port },
      endpoint: { ip: SERVER_POD.ip, port: HTTP_PORT, identity: `spiffe://cluster.local/ns/${SERVER_POD.namespace}/sa/${SERVER_POD.serviceAccount}` },
      leakKibPerSecond,
      leakFdsPerMinute,
    };
    const log = join(this.dir, 'waypoint.log');
    const proc = this.topology.spawn(WAYPOINT_POD.name, [process.execPath, '--expose-gc', SOAK_WAYPOINT, JSON.stringify(options)], { stdoutFile: log, stderrFile: log });
    cleanup.push('stop the waypoint', () => proc.stop(3_000));
    this.measured.push({ name: 'waypoint', ns: WAYPOINT_POD.name, process: proc });
    await this.waitForListener(WAYPOINT_POD.name, HBONE_PORT, proc, log);
  }

  /** Without this a broken capture or waypoint hand-off would soak plain routing. */
  private async checkPaths(): Promise<void> {
    const curl = async (url: string): Promise<string> => {
      const { stdout } = await this.topology.exec(CLIENT_POD.name, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', url], { timeoutMs: 10_000, allowFailure: true });
      return stdout.trim();
    };
    const logs = async (): Promise<string> => (await Promise.all(['agent-node1', 'agent-node2', 'waypoint'].map(async (n) => `${n}:\n${await tail(join(this.dir, `${n}.log`), 5)}`))).join('\n');
    const viaWaypoint = await until(SoakTopologyError, 'a 200 through the waypoint', 15_000, async () => ((await curl(`http://${SERVICE.vip}:${SERVICE.port}/`)) === '200' ? true : undefined)).catch(async (err: unknown) => {
      throw new SoakTopologyError(`${err instanceof Error ? err.message : String(err)}: GET http://${SERVICE.vip}:${SERVICE.port}/ from the client pod failed; last log lines:\n${await logs()}`);
    });
    void viaWaypoint;
    const { stdout: toWaypoint } = await this.topology.exec('node1', ['ss', '-Htn', 'state', 'established', 'dst', `${WAYPOINT_POD.ip}:${HBONE_PORT}`], { timeoutMs: 5000 });
    if (!toWaypoint.trim()) throw new SoakTopologyError(`the VIP answered, but node1's agent holds no HBONE connection to the waypoint ${WAYPOINT_POD.ip}:${HBONE_PORT} — the waypoint hop was skipped`);
    const { stdout: toServer } = await this.topology.exec(WAYPOINT_POD.name, ['ss', '-Htn', 'state', 'established', 'dst', `${SERVER_POD.ip}:${HBONE_PORT}`], { timeoutMs: 5000 });
    if (!toServer.trim()) throw new SoakTopologyError(`the VIP answered, but the waypoint holds no HBONE connection to ${SERVER_POD.ip}:${HBONE_PORT} — the waypoint did not tunnel to the server's agent`);
    const { stdout: tunnels } = await this.topology.exec('node1', ['ss', '-Htn', 'state', 'established', 'dst', `${SERVER_POD.ip}:${HBONE_PORT}`], { timeoutMs: 5000 });
    const probe = `const s=require('net').connect(${HOLD_PORT},'${SERVER_POD.ip}',()=>s.write('hold'));s.once('data',(d)=>{process.stdout.write(d);s.destroy()});s.on('error',()=>{});setTimeout(()=>process.exit(1),5000).unref()`;
    const direct = await this.topology.exec(CLIENT_POD.name, [process.execPath, '-e', probe], { timeoutMs: 10_000, allowFailure: true });
    if (direct.stdout !== 'k') throw new SoakTopologyError(`the hold server ${SERVER_POD.ip}:${HOLD_PORT} did not answer through the agents (got ${JSON.stringify(direct.stdout)}); last log lines:\n${await logs()}`);
    const { stdout: after } = await this.topology.exec('node1', ['ss', '-Htn', 'state', 'established', 'dst', `${SERVER_POD.ip}:${HBONE_PORT}`], { timeoutMs: 5000 });
    if (!after.trim() && !tunnels.trim()) throw new SoakTopologyError(`the hold server answered, but node1 holds no HBONE connection to ${SERVER_POD.ip}:${HBONE_PORT} — not captured`);
  }

  /**
   * A full garbage collection in a measured process (POST /debug/gc on its admin port, loopback
   * of its namespace), so the next RSS sample holds no collectable garbage: without it RSS swings
   * by tens of MiB with the collector's cycle and a short window cannot tell a leak from a
   * sawtooth. Returns V8's figures after the collection (KiB), or undefined when it could not be run.
   */
  async collectGarbage(m: { ns: string }): Promise<ProcessSample['v8'] | undefined> {
    const { stdout } = await this.topology.exec(m.ns, ['curl', '-s', '--max-time', '5', '-X', 'POST', `http://127.0.0.1:${ADMIN_PORT}/debug/gc`], { timeoutMs: 10_000, allowFailure: true });
    if (!stdout.includes('"collected": true')) return undefined;
    const after = heapAfterOf(stdout);
    const kib = (bytes: number | undefined): number => Math.round((bytes ?? 0) / 1024);
    return {
      heapUsedKib: kib(after?.used),
      heapTotalKib: kib(after?.total),
      ...(after?.external === undefined ? {} : { externalKib: kib(after.external) }),
      ...(after?.newSpace === undefined ? {} : { newSpaceKib: kib(after.newSpace) }),
    };
  }

  /** Spawns a program in the client pod with its stdout as a pipe (the load clients print JSON lines). */
  spawnClient(argv: string[], name: string): SpawnedProcess {
    const log = join(this.dir, `${name}.log`);
    return this.topology.spawn(CLIENT_POD.name, argv, { stderrFile: log });
  }

  /** Spawns a program in the server pod, output to `<name>.log`. */
  spawnServer(argv: string[], name: string): SpawnedProcess {
    const log = join(this.dir, `${name}.log`);
    return this.topology.spawn(SERVER_POD.name, argv, { stdoutFile: log, stderrFile: log });
  }
}
