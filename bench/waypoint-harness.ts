/**
 * BENCHMARKS.md scenario 6 (issue #6's performance target): the same routing — `x-user: beta` →
 * v2, else v1/v2 90/10 — through one L7 hop, on loopback, every proxy a child process of its own:
 *
 *   direct       wrk / open-loop client → backend v1
 *   amesh-hbone  client → client agent ─HBONE mTLS→ waypoint ─HBONE mTLS→ dest agent → v1|v2
 *   amesh-plain  client → client agent ─HBONE mTLS→ waypoint ─plain TCP→ v1|v2
 *   haproxy      client → haproxy (mode http, nbthread 1, http-reuse always) → v1|v2, plain HTTP
 *   haproxy-mtls client → haproxy (mode tcp) ─mTLS 1.3→ haproxy (mode http, as above) → v1|v2
 *   nginx        client → nginx (1 worker, map + split_clients, keepalive 32) → v1|v2, plain HTTP
 *
 * Per path: a routing probe (refuses to measure a path that routes wrongly), a warm-up, scenario 3
 * (closed loop, wrk -t1 -c<connections>, `maxRateSeconds`: requests/s, proxy CPU-seconds from
 * /proc, requests per proxy CPU-second = requests/s per core) and scenario 2 (open loop at
 * `rate` over `connections` for `latencySeconds`: p50/p99, added p99 = path − direct, proxy cores
 * per 1000 req/s; a direct run is repeated right before each path's so the pair shares the
 * background load of a shared machine). "Proxy" is the waypoint process alone for amesh (the
 * routing haproxy alone for haproxy-mtls); the rest of the path — the node agents for amesh, the
 * tcp-mode haproxy originating mTLS for haproxy-mtls — is reported beside it.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCaProvider } from '../src/identity/certificate-provider.js';
import { generateCa } from '../src/identity/pki.js';
import type { WorkloadIdentity } from '../src/identity/spiffe.js';
import { haproxyConfig, haproxyTlsClientConfig, parseHaproxyVersion, type HaproxyTls } from './comparators/haproxy.js';
import { nginxConfig, parseNginxVersion } from './comparators/nginx.js';
import { clockTicksPerSecond, readProcessTable, treeCpuTicks } from './proc-stat.js';
import { openLoop, probeRouting, wrk, wrkVersion } from './waypoint-load.js';
import { commandOutput, freePort, isRunning, ProcessGroup, waitForPort, type Started } from './waypoint-processes.js';
import { judgeProbe, SERVICES, type BackendPorts, type ProbeCounts } from './waypoint-topology.js';

export type WaypointPathId = 'direct' | 'amesh-hbone' | 'amesh-plain' | 'haproxy' | 'haproxy-mtls' | 'nginx';
export const WAYPOINT_PATHS: readonly WaypointPathId[] = ['direct', 'amesh-hbone', 'amesh-plain', 'haproxy', 'haproxy-mtls', 'nginx'];
export const WAYPOINT_PATH_LABELS: Readonly<Record<WaypointPathId, string>> = {
  direct: 'direct (no proxy)',
  'amesh-hbone': 'amesh waypoint, HBONE both hops',
  'amesh-plain': 'amesh waypoint, HBONE in / plain TCP upstream',
  haproxy: 'haproxy (plain HTTP)',
  'haproxy-mtls': 'haproxy, mTLS in (from a tcp-mode haproxy) / plain upstream',
  nginx: 'nginx (plain HTTP)',
};

export interface ProgressLike {
  step(text: string): void;
  info(text: string): void;
}

export interface WaypointBenchOptions {
  paths?: readonly WaypointPathId[];
  /** Scenario 3: closed-loop seconds per path. */
  maxRateSeconds: number;
  /** Scenario 2: open-loop measured seconds per path. */
  latencySeconds: number;
  /** Before each measurement (closed-loop warm-up; open-loop warm-up requests). */
  warmupSeconds: number;
  rate: number;
  connections: number;
  responseBytes: number;
  /** Probe requests per kind (with / without the header). */
  probeRequests: number;
  /** The waypoint's buffered access log on (production default) or off (as haproxy / nginx here). */
  waypointAccessLog: boolean;
  /** Bound of every start-up wait. */
  timeoutMs: number;
  /** Extra node flags for the waypoint process, for profiling (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`). */
  waypointNodeArgs?: readonly string[];
  progress: ProgressLike;
}

export interface MaxRateResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  errors: number;
  /** CPU-seconds of the proxy process (the waypoint alone for amesh) during the run. */
  proxyCpuSeconds?: number;
  /** requests ÷ proxy CPU-seconds. */
  requestsPerCoreSecond?: number;
  /** amesh: CPU-seconds of the client agent and the destination agent. */
  clientAgentCpuSeconds?: number;
  destAgentCpuSeconds?: number;
  /** requests ÷ (waypoint + agents) CPU-seconds. */
  requestsPerCoreSecondWithAgents?: number;
  /** ÷ haproxy's requests per core-second (filled in after every path ran). */
  ratioToHaproxy?: number;
  /** direct: CPU-seconds of the backend process, and requests ÷ that — a bare node:http server's rate per core, a ceiling for any Node proxy (which parses every request twice). */
  backendCpuSeconds?: number;
  backendRequestsPerCoreSecond?: number;
}

export interface LatencyResult {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  achievedRate: number;
  completed: number;
  errors: number;
  errorKinds: Record<string, number>;
  sendLagP99Ms: number;
  proxyCpuSeconds?: number;
  coresPer1000Rps?: number;
  clientAgentCpuSeconds?: number;
  destAgentCpuSeconds?: number;
  /**
   * A direct run (client → v1) of the same length measured right before this path's, so both
   * see the same background load on a shared machine; added latency is against it.
   */
  pairedDirectP50Ms?: number;
  pairedDirectP99Ms?: number;
  /** p99 − the paired direct run's p99. */
  addedP99Ms?: number;
  addedP50Ms?: number;
}

export interface WaypointPathResult {
  path: WaypointPathId;
  label: string;
  /** Why the path was not measured (tool missing, probe failed, start failed). */
  skipped?: string;
  probe?: ProbeCounts;
  maxRate?: MaxRateResult;
  latency?: LatencyResult;
  error?: string;
}

export interface WaypointBenchResult {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  settings: Omit<WaypointBenchOptions, 'progress'> & { paths: WaypointPathId[] };
  environment: { node: string; openssl: string; cpus: number; haproxy?: string; nginx?: string; wrk?: string; clockTicksPerSecond: number; loadAverageStart: number[]; loadAverageEnd: number[] };
  paths: WaypointPathResult[];
  /** Every child process the bench started (all stopped by pid before the result is returned). */
  processes: Array<{ name: string; pid: number }>;
  targets: { rpsPerCoreVsHaproxy: { target: number; hbone?: number; plain?: number }; addedP99Ms: { target: number; hbone?: number; plain?: number } };
  notes: string[];
}

/** Steps the progress counter will show for `paths`. */
export function waypointBenchSteps(paths: readonly WaypointPathId[]): number {
  return 1 + paths.length;
}

interface CpuRoots {
  proxy: number[];
  /** direct only: the backends process, measured in the proxy's place. */
  backendOnly?: boolean;
  clientAgent?: number[];
  destAgent?: number[];
}

interface CpuSpent {
  proxy: number;
  clientAgent?: number;
  destAgent?: number;
}

async function measureCpu<T>(hz: number, roots: CpuRoots, work: () => Promise<T>): Promise<{ result: T; cpu: CpuSpent }> {
  const ticks = (table: Awaited<ReturnType<typeof readProcessTable>>): CpuSpent => ({
    proxy: treeCpuTicks(table, roots.proxy),
    ...(roots.clientAgent ? { clientAgent: treeCpuTicks(table, roots.clientAgent) } : {}),
    ...(roots.destAgent ? { destAgent: treeCpuTicks(table, roots.destAgent) } : {}),
  });
  const before = ticks(await readProcessTable());
  const result = await work();
  const after = ticks(await readProcessTable());
  const diff = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : Math.max(0, a - b) / hz);
  return {
    result,
    cpu: {
      proxy: diff(after.proxy, before.proxy) ?? 0,
      ...(roots.clientAgent ? { clientAgent: diff(after.clientAgent, before.clientAgent) } : {}),
      ...(roots.destAgent ? { destAgent: diff(after.destAgent, before.destAgent) } : {}),
    } as CpuSpent,
  };
}

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

/** Probe, warm up, scenario 3 and scenario 2 on one path listening on `port`. */
async function measurePath(o: WaypointBenchOptions, hz: number, path: WaypointPathId, port: number, roots: CpuRoots | undefined, directPort: number): Promise<Omit<WaypointPathResult, 'path' | 'label'>> {
  const out: Omit<WaypointPathResult, 'path' | 'label'> = {};
  if (path !== 'direct') {
    const probe = await probeRouting(port, o.probeRequests, 5000);
    out.probe = probe;
    const problems = judgeProbe(probe);
    o.progress.info(`probe: beta → v1 ${probe.beta.v1} / v2 ${probe.beta.v2} / other ${probe.beta.other}; no header → v1 ${probe.plain.v1} / v2 ${probe.plain.v2} / other ${probe.plain.other}`);
    if (problems.length > 0) {
      out.skipped = `routing probe failed: ${problems.join('; ')}`;
      return out;
    }
  }
  const wrkAvailable = (await wrkVersion()) !== undefined;
  if (!wrkAvailable) {
    o.progress.info('wrk not installed: scenario 3 (max rate) skipped — apt-get install wrk (scripts/setup.sh)');
  } else {
    if (o.warmupSeconds > 0) await wrk(port, o.connections, o.warmupSeconds);
    const { result, cpu } = await measureCpu(hz, roots ?? { proxy: [] }, () => wrk(port, o.connections, o.maxRateSeconds));
    const m: MaxRateResult = { requests: result.requests, seconds: round(result.seconds), requestsPerSecond: round(result.requestsPerSecond, 1), errors: result.errors };
    if (roots?.backendOnly) {
      m.backendCpuSeconds = round(cpu.proxy, 2);
      if (cpu.proxy > 0) m.backendRequestsPerCoreSecond = Math.round(result.requests / cpu.proxy);
    } else if (roots) {
      m.proxyCpuSeconds = round(cpu.proxy, 2);
      if (cpu.proxy > 0) m.requestsPerCoreSecond = Math.round(result.requests / cpu.proxy);
      if (cpu.clientAgent !== undefined) m.clientAgentCpuSeconds = round(cpu.clientAgent, 2);
      if (cpu.destAgent !== undefined) m.destAgentCpuSeconds = round(cpu.destAgent, 2);
      const all = cpu.proxy + (cpu.clientAgent ?? 0) + (cpu.destAgent ?? 0);
      if (roots.clientAgent && all > 0) m.requestsPerCoreSecondWithAgents = Math.round(result.requests / all);
    }
    out.maxRate = m;
    o.progress.info(
      `max rate: ${m.requestsPerSecond} req/s, ${m.errors} errors` +
        (m.backendCpuSeconds !== undefined ? `, backend process ${m.backendCpuSeconds} CPU-s → ${m.backendRequestsPerCoreSecond ?? '—'} req/s per core` : '') +
        (m.proxyCpuSeconds !== undefined ? `, proxy ${m.proxyCpuSeconds} CPU-s → ${m.requestsPerCoreSecond ?? '—'} req/s per core` : '') +
        (m.clientAgentCpuSeconds !== undefined ? `; client agent ${m.clientAgentCpuSeconds} CPU-s` : '') +
        (m.destAgentCpuSeconds !== undefined ? `, dest agent ${m.destAgentCpuSeconds} CPU-s` : ''),
    );
  }
  const loop = { rate: o.rate, connections: o.connections, seconds: o.latencySeconds, warmup: o.warmupSeconds };
  const paired = path === 'direct' ? undefined : await openLoop(directPort, loop);
  const { result: r, cpu } = await measureCpu(hz, roots ?? { proxy: [] }, () => openLoop(port, loop));
  const l: LatencyResult = {
    p50Ms: round(r.latencyMs.p50),
    p90Ms: round(r.latencyMs.p90),
    p99Ms: round(r.latencyMs.p99),
    p999Ms: round(r.latencyMs.p999),
    achievedRate: round(r.achievedRate, 1),
    completed: r.completed,
    errors: r.errors,
    errorKinds: r.errorKinds,
    sendLagP99Ms: round(r.sendLagMs.p99),
  };
  if (paired) {
    l.pairedDirectP50Ms = round(paired.latencyMs.p50);
    l.pairedDirectP99Ms = round(paired.latencyMs.p99);
    l.addedP50Ms = round(l.p50Ms - l.pairedDirectP50Ms);
    l.addedP99Ms = round(l.p99Ms - l.pairedDirectP99Ms);
  }
  if (roots && !roots.backendOnly) {
    l.proxyCpuSeconds = round(cpu.proxy, 2);
    if (r.completed > 0) l.coresPer1000Rps = round((cpu.proxy / r.completed) * 1000);
    if (cpu.clientAgent !== undefined) l.clientAgentCpuSeconds = round(cpu.clientAgent, 2);
    if (cpu.destAgent !== undefined) l.destAgentCpuSeconds = round(cpu.destAgent, 2);
  }
  out.latency = l;
  o.progress.info(`latency @${o.rate} req/s: p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms${paired ? ` (paired direct run: p99 ${l.pairedDirectP99Ms} ms → added ${l.addedP99Ms} ms)` : ''}, ${l.errors} errors${l.coresPer1000Rps !== undefined ? `, ${l.coresPer1000Rps} cores per 1000 req/s` : ''}`);
  return out;
}

export async function runWaypointBench(o: WaypointBenchOptions): Promise<WaypointBenchResult> {
  const startedAt = new Date().toISOString();
  const paths = [...(o.paths ?? WAYPOINT_PATHS)];
  const loadAverageStart = loadavg();
  const hz = await clockTicksPerSecond();
  const [haproxyText, nginxText, wrkV] = await Promise.all([commandOutput('haproxy', ['-v']), commandOutput('nginx', ['-v']), wrkVersion()]);
  const haproxyVersion = parseHaproxyVersion(haproxyText);
  const nginxVersion = parseNginxVersion(nginxText);
  const dir = await mkdtemp(join(tmpdir(), 'amesh-bench-waypoint-'));
  const group = new ProcessGroup(dir);
  const notes: string[] = [
    'Loopback, every process on the same cores (load generator, backends, proxies, agents): compare ratios within this run only.',
    'haproxy and nginx run plain HTTP on both sides (no TLS), haproxy-mtls terminates mutual TLS 1.3 from a client-side tcp-mode haproxy (one TLS connection per load connection) and sends plain HTTP upstream; the amesh waypoint terminates HBONE (mTLS TLS 1.3 + HTTP/2 CONNECT) from the client agent, and on amesh-hbone also originates HBONE to the destination agent.',
    `amesh "proxy CPU" is the waypoint process alone; the client agent's (and on amesh-hbone the destination agent's) CPU is reported beside it. Waypoint access log: ${o.waypointAccessLog ? 'on (buffered, as deployed)' : 'off (as haproxy and nginx here)'}.`,
  ];
  const results: WaypointPathResult[] = [];
  // haproxy and nginx have no IPC channel to notice our death: if the bench exits early (Ctrl-C
  // in the CLI ends with process.exit), kill them by pid on the way out.
  const killOnExit = (): void => group.killNow();
  process.once('exit', killOnExit);
  o.progress.step(`starting backends (v1, v2: ${o.responseBytes} B answers) and the test CA in ${dir}`);
  try {
    const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    const caFile = join(dir, 'ca.json');
    await writeFile(caFile, JSON.stringify(ca), { mode: 0o600 });
    const { ready: b, started: backendProcess } = await group.role('backends', 'backends', { bytes: o.responseBytes }, o.timeoutMs);
    const backends: BackendPorts = b.ports;
    o.progress.info(`backends: v1 127.0.0.1:${backends.v1}, v2 127.0.0.1:${backends.v2}`);

    let amesh: { waypoint: Started; clientAgent: Started; destAgent: Started; ports: Record<string, number> } | undefined;
    const startAmesh = async (): Promise<NonNullable<typeof amesh>> => {
      if (amesh) return amesh;
      const dest = await group.role('dest-agent', 'dest-agent', { caFile }, o.timeoutMs);
      const wp = await group.role('waypoint', 'waypoint', { caFile, backends, destAgentPort: dest.ready.port, accessLog: o.waypointAccessLog }, o.timeoutMs, o.waypointNodeArgs);
      const client = await group.role('client-agent', 'client-agent', { caFile, waypointPort: wp.ready.hbonePort, vips: [SERVICES.hbone.vip, SERVICES.plain.vip] }, o.timeoutMs);
      amesh = { waypoint: wp.started, clientAgent: client.started, destAgent: dest.started, ports: client.ready.ports };
      o.progress.info(`waypoint pid ${wp.started.pid} (HBONE 127.0.0.1:${wp.ready.hbonePort}), client agent pid ${client.started.pid}, dest agent pid ${dest.started.pid}`);
      return amesh;
    };

    for (const path of paths) {
      o.progress.step(`${WAYPOINT_PATH_LABELS[path]}`);
      const result: WaypointPathResult = { path, label: WAYPOINT_PATH_LABELS[path] };
      results.push(result);
      const own: Started[] = [];
      try {
        let port: number;
        let roots: CpuRoots | undefined;
        if (path === 'direct') {
          port = backends.v1;
          roots = { proxy: [backendProcess.pid], backendOnly: true };
        } else if (path === 'amesh-hbone' || path === 'amesh-plain') {
          const a = await startAmesh();
          const vip = path === 'amesh-hbone' ? SERVICES.hbone.vip : SERVICES.plain.vip;
          port = a.ports[vip]!;
          roots = { proxy: [a.waypoint.pid], clientAgent: [a.clientAgent.pid], ...(path === 'amesh-hbone' ? { destAgent: [a.destAgent.pid] } : {}) };
        } else if (path === 'haproxy') {
          if (!haproxyVersion) {
            result.skipped = 'haproxy is not installed (apt-get install haproxy; scripts/setup.sh installs it)';
            o.progress.info(result.skipped);
            continue;
          }
          port = await freePort();
          const config = join(dir, 'haproxy.cfg');
          await writeFile(config, haproxyConfig({ listenPort: port, backends }));
          const hp = group.spawn('haproxy', 'haproxy', ['-db', '-f', config]);
          own.push(hp);
          await waitForPort(port, o.timeoutMs, () => isRunning(hp));
          roots = { proxy: [hp.pid] };
        } else if (path === 'haproxy-mtls') {
          if (!haproxyVersion) {
            result.skipped = 'haproxy is not installed (apt-get install haproxy; scripts/setup.sh installs it)';
            o.progress.info(result.skipped);
            continue;
          }
          const issuer = new LocalCaProvider({ ca, ttlSeconds: 3600 });
          const tlsFor = async (name: string, id: WorkloadIdentity): Promise<HaproxyTls> => {
            const cert = await issuer.fetch(id);
            const crtFile = join(dir, `${name}.pem`);
            const caFile = join(dir, `${name}-root.pem`);
            await writeFile(crtFile, `${cert.chainPem.join('')}${cert.keyPem}`, { mode: 0o600 });
            await writeFile(caFile, cert.rootsPem.join(''));
            return { crtFile, caFile };
          };
          const l7Port = await freePort();
          const l7Config = join(dir, 'haproxy-mtls.cfg');
          await writeFile(l7Config, haproxyConfig({ listenPort: l7Port, backends }, await tlsFor('haproxy-l7', { trustDomain: 'cluster.local', namespace: 'demo', serviceAccount: 'waypoint' })));
          const l7 = group.spawn('haproxy-mtls', 'haproxy', ['-db', '-f', l7Config]);
          own.push(l7);
          await waitForPort(l7Port, o.timeoutMs, () => isRunning(l7));
          port = await freePort();
          const clientConfig = join(dir, 'haproxy-mtls-client.cfg');
          await writeFile(clientConfig, haproxyTlsClientConfig({ listenPort: port, targetPort: l7Port, tls: await tlsFor('haproxy-client', { trustDomain: 'cluster.local', namespace: 'demo', serviceAccount: 'client' }) }));
          const client = group.spawn('haproxy-mtls-client', 'haproxy', ['-db', '-f', clientConfig]);
          own.push(client);
          await waitForPort(port, o.timeoutMs, () => isRunning(client));
          roots = { proxy: [l7.pid], clientAgent: [client.pid] };
        } else {
          if (!nginxVersion) {
            result.skipped = 'nginx is not installed (apt-get install nginx-light; scripts/setup.sh installs it)';
            o.progress.info(result.skipped);
            continue;
          }
          port = await freePort();
          const ngDir = join(dir, 'nginx');
          await mkdir(ngDir, { recursive: true });
          const config = join(ngDir, 'nginx.conf');
          await writeFile(config, nginxConfig({ listenPort: port, backends, dir: ngDir }));
          const ng = group.spawn('nginx', 'nginx', ['-p', ngDir, '-e', join(ngDir, 'nginx-error.log'), '-c', config]);
          own.push(ng);
          await waitForPort(port, o.timeoutMs, () => isRunning(ng));
          roots = { proxy: [ng.pid] };
        }
        Object.assign(result, await measurePath(o, hz, path, port, roots, backends.v1));
      } catch (err) {
        result.error = err instanceof Error ? err.message : String(err);
        o.progress.info(`failed: ${result.error}`);
      } finally {
        await Promise.all(own.map((p) => group.stop(p)));
      }
    }
  } finally {
    await group.stopAll();
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  }

  // Ratios and added latency, once every path is in.
  const by = (id: WaypointPathId): WaypointPathResult | undefined => results.find((r) => r.path === id && !r.skipped && !r.error);
  const haproxyPerCore = by('haproxy')?.maxRate?.requestsPerCoreSecond;
  for (const r of results) {
    if (r.maxRate?.requestsPerCoreSecond !== undefined && haproxyPerCore) r.maxRate.ratioToHaproxy = round(r.maxRate.requestsPerCoreSecond / haproxyPerCore);
  }
  const { progress: _progress, ...settings } = o;
  const hb = by('amesh-hbone');
  const pl = by('amesh-plain');
  return {
    schema: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    settings: { ...settings, paths },
    environment: {
      node: process.versions.node,
      openssl: process.versions.openssl,
      cpus: cpus().length,
      ...(haproxyVersion ? { haproxy: haproxyVersion } : {}),
      ...(nginxVersion ? { nginx: nginxVersion } : {}),
      ...(wrkV ? { wrk: wrkV } : {}),
      clockTicksPerSecond: hz,
      loadAverageStart,
      loadAverageEnd: loadavg(),
    },
    paths: results,
    processes: group.list(),
    targets: {
      rpsPerCoreVsHaproxy: { target: 0.4, ...(hb?.maxRate?.ratioToHaproxy !== undefined ? { hbone: hb.maxRate.ratioToHaproxy } : {}), ...(pl?.maxRate?.ratioToHaproxy !== undefined ? { plain: pl.maxRate.ratioToHaproxy } : {}) },
      addedP99Ms: { target: 3, ...(hb?.latency?.addedP99Ms !== undefined ? { hbone: hb.latency.addedP99Ms } : {}), ...(pl?.latency?.addedP99Ms !== undefined ? { plain: pl.latency.addedP99Ms } : {}) },
    },
    notes,
  };
}
