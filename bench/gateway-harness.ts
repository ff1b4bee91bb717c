/**
 * Issue #8's performance target: edge requests/s per core and p99 at 1000 req/s through the amesh
 * ingress gateway into the mesh, vs nginx terminating TLS and proxying to the same backend. On
 * loopback, every proxy a child process of its own (its CPU read from /proc):
 *
 *   direct  wrk / open-loop client ─HTTP/1.1→ backend (v1 of the waypoint bench's backends)
 *   nginx   client ─HTTPS (TLS 1.3, keep-alive)→ nginx (1 worker, `ssl` server, upstream keepalive 32) ─HTTP/1.1→ backend
 *   amesh   client ─HTTPS→ amesh gateway (GatewayProxy, src/gateway/app.ts) ─HBONE (mTLS h2 CONNECT)→ destination agent ─TCP→ backend
 *   amesh-plain  as amesh with a plain-TCP endpoint (a backend outside the mesh): nginx's own
 *           topology, so amesh − amesh-plain is the HBONE hop's cost and amesh-plain ÷ nginx the
 *           edge proxy's alone
 *
 * Both edge proxies serve the same certificate (EDGE_HOST), the clients send SNI and Host
 * EDGE_HOST, and the gateway routes on that authority (gateway-topology.ts). Every path is probed
 * first (gateway-load.ts) and not measured when it answers wrongly.
 *
 * Then `runs` rounds, each measuring every path in turn (interleaved, so run k of every path saw
 * the same machine state): scenario 3, closed loop `wrk -t1 -c<connections>` for `maxRateSeconds`
 * after `warmupSeconds` → req/s and req/s per proxy core (requests ÷ proxy CPU-seconds); scenario
 * 2, open loop at `rate` over `connections` for `latencySeconds` (wall-clock schedule,
 * HdrHistogram) → p50/p90/p99, added p99 vs the same round's direct run, proxy cores per 1000
 * req/s. The report is the median of the runs with min–max. "Proxy" is the gateway process alone
 * for amesh (the destination agent, the mesh's own cost, is reported beside it) and the nginx
 * master + worker tree for nginx.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCa } from '../src/identity/pki.js';
import { createServingCertificates } from '../src/sandbox/apiserver/serving-cert.js';
import { nginxEdgeConfig, parseNginxOpenssl, parseNginxVersion } from './comparators/nginx.js';
import { ameshVersion, cpuDescription, h2Settings, kernelRelease } from './environment.js';
import { judgeEdgeProbe, probeEdge, type EdgeProbe } from './gateway-load.js';
import type { GatewayRoleReady } from './gateway-roles.js';
import { EDGE_HOST } from './gateway-topology.js';
import { clockTicksPerSecond, CpuMeter } from './proc-stat.js';
import { pairedDifferences, summarize, type Summary } from './stats.js';
import { openLoop, wrk, wrkVersion, type EdgeTarget } from './waypoint-load.js';
import { commandOutput, freePort, GATEWAY_ROLES_ENTRY, isRunning, ProcessGroup, waitForPort, type Started } from './waypoint-processes.js';

export type GatewayPathId = 'direct' | 'nginx' | 'amesh' | 'amesh-plain';
export const GATEWAY_PATHS: readonly GatewayPathId[] = ['direct', 'nginx', 'amesh', 'amesh-plain'];
export const GATEWAY_PATH_LABELS: Readonly<Record<GatewayPathId, string>> = {
  direct: 'direct (client → backend, plain HTTP)',
  nginx: 'nginx (TLS 1.3 termination, proxy_pass keepalive)',
  amesh: 'amesh gateway (TLS 1.3 termination → HBONE into the mesh)',
  'amesh-plain': 'amesh gateway, plain TCP upstream (no HBONE; diagnostic)',
};

export interface ProgressLike {
  step(text: string): void;
  info(text: string): void;
}

export interface GatewayBenchOptions {
  paths?: readonly GatewayPathId[];
  /** Rounds; every number is the median of them (≥ 3 for a report). */
  runs: number;
  /** Scenario 3: closed-loop seconds per path and run. */
  maxRateSeconds: number;
  /** Scenario 2: open-loop measured seconds per path and run. */
  latencySeconds: number;
  /** wrk warm-up before each max-rate run; open-loop warm-up requests before each latency run. */
  warmupSeconds: number;
  rate: number;
  connections: number;
  responseBytes: number;
  /** Probe requests per path before any measurement. */
  probeRequests: number;
  /** The gateway's buffered access log on (production default) or off (as nginx's here). */
  gatewayAccessLog: boolean;
  /** Bound of every start-up wait. */
  timeoutMs: number;
  /** Extra node flags for the gateway process, for profiling (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`). */
  gatewayNodeArgs?: readonly string[];
  progress: ProgressLike;
}

export interface MaxRateRun {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  errors: number;
  /** CPU-seconds of the proxy (the gateway process alone for amesh); absent on direct. */
  proxyCpuSeconds?: number;
  /** requests ÷ proxy CPU-seconds. */
  requestsPerCoreSecond?: number;
  /** amesh: the destination agent (HBONE terminator) during the run, and requests ÷ (gateway + agent) CPU-seconds. */
  destAgentCpuSeconds?: number;
  requestsPerCoreSecondWithAgent?: number;
  backendCpuSeconds: number;
  /** direct: requests ÷ backend CPU-seconds — a bare node:http server's rate per core. */
  backendRequestsPerCoreSecond?: number;
}

export interface LatencyRun {
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
  destAgentCpuSeconds?: number;
}

export interface GatewayRun {
  run: number;
  /** 1-minute load average when the run started: a run on a busy machine shows here. */
  loadAverage1m: number;
  maxRate?: MaxRateRun;
  latency?: LatencyRun;
  error?: string;
}

/** Median and min–max over the runs of each figure. */
export interface GatewayPathSummary {
  requestsPerSecond?: Summary;
  requestsPerCoreSecond?: Summary;
  requestsPerCoreSecondWithAgent?: Summary;
  backendRequestsPerCoreSecond?: Summary;
  p50Ms?: Summary;
  p90Ms?: Summary;
  p99Ms?: Summary;
  /** p99 − the same run's direct p99, run by run. */
  addedP99Ms?: Summary;
  coresPer1000Rps?: Summary;
  destAgentCoresPer1000Rps?: Summary;
}

export interface GatewayPathResult {
  path: GatewayPathId;
  label: string;
  /** Why the path was not measured (tool missing, probe failed, start failed). */
  skipped?: string;
  probe?: EdgeProbe;
  runs: GatewayRun[];
  summary: GatewayPathSummary;
}

export interface GatewayBenchResult {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  settings: Omit<GatewayBenchOptions, 'progress'> & { paths: GatewayPathId[] };
  environment: {
    amesh: string;
    node: string;
    openssl: string;
    kernel: string;
    cpus: string;
    nginx?: string;
    nginxOpenssl?: string;
    wrk?: string;
    hboneH2Settings: unknown;
    clockTicksPerSecond: number;
    loadAverageStart: number[];
    loadAverageEnd: number[];
  };
  paths: GatewayPathResult[];
  /** amesh ÷ nginx on the medians (p99: amesh ÷ nginx, and nginx ÷ amesh — the "× nginx" a ≥ 0.4 target reads). */
  ratios: {
    requestsPerCoreSecond?: number;
    requestsPerSecond?: number;
    p99?: number;
    p99NginxOverAmesh?: number;
    coresPer1000Rps?: number;
    /** amesh-plain ÷ nginx (diagnostic: the edge proxy without the HBONE hop). */
    plainRequestsPerCoreSecond?: number;
    plainP99?: number;
  };
  target: { ratio: number; requestsPerCoreMet?: boolean; p99Met?: boolean };
  /** Every child process the bench started (all stopped by pid before the result is returned). */
  processes: Array<{ name: string; pid: number }>;
  notes: string[];
}

/** Steps the progress counter will show. */
export function gatewayBenchSteps(paths: readonly GatewayPathId[], runs: number): number {
  return 1 + paths.length + runs * paths.length;
}

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

interface PathTarget {
  port: number;
  edge: EdgeTarget;
  /** Process trees whose CPU is measured: the proxy (absent on direct) and, on amesh, the destination agent. */
  proxy?: number[];
  destAgent?: number[];
}

async function measureRun(o: GatewayBenchOptions, meter: CpuMeter, target: PathTarget, backendPid: number): Promise<Omit<GatewayRun, 'run' | 'loadAverage1m'>> {
  const groups = { proxy: target.proxy ?? [], destAgent: target.destAgent ?? [], backend: [backendPid] };
  const out: Omit<GatewayRun, 'run' | 'loadAverage1m'> = {};
  if ((await wrkVersion()) !== undefined) {
    if (o.warmupSeconds > 0) await wrk(target.port, o.connections, o.warmupSeconds, target.edge);
    const { result: w, cpuSeconds: cpu } = await meter.measureGroups(groups, () => wrk(target.port, o.connections, o.maxRateSeconds, target.edge));
    const m: MaxRateRun = { requests: w.requests, seconds: round(w.seconds), requestsPerSecond: round(w.requestsPerSecond, 1), errors: w.errors, backendCpuSeconds: round(cpu.backend, 2) };
    if (target.proxy) {
      m.proxyCpuSeconds = round(cpu.proxy, 2);
      if (cpu.proxy > 0) m.requestsPerCoreSecond = Math.round(w.requests / cpu.proxy);
    } else if (cpu.backend > 0) {
      m.backendRequestsPerCoreSecond = Math.round(w.requests / cpu.backend);
    }
    if (target.destAgent) {
      m.destAgentCpuSeconds = round(cpu.destAgent, 2);
      if (cpu.proxy + cpu.destAgent > 0) m.requestsPerCoreSecondWithAgent = Math.round(w.requests / (cpu.proxy + cpu.destAgent));
    }
    out.maxRate = m;
    o.progress.info(
      `max rate: ${m.requestsPerSecond} req/s, ${m.errors} errors` +
        (m.proxyCpuSeconds !== undefined ? `, proxy ${m.proxyCpuSeconds} CPU-s → ${m.requestsPerCoreSecond ?? '—'} req/s per core` : '') +
        (m.destAgentCpuSeconds !== undefined ? `; dest agent ${m.destAgentCpuSeconds} CPU-s` : '') +
        (m.backendRequestsPerCoreSecond !== undefined ? `, backend ${m.backendCpuSeconds} CPU-s → ${m.backendRequestsPerCoreSecond} req/s per core` : ''),
    );
  }
  const loop = { rate: o.rate, connections: o.connections, seconds: o.latencySeconds, warmup: o.warmupSeconds };
  const { result: r, cpuSeconds: cpu } = await meter.measureGroups(groups, () => openLoop(target.port, loop, target.edge));
  const l: LatencyRun = {
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
  if (target.proxy) {
    l.proxyCpuSeconds = round(cpu.proxy, 2);
    if (r.completed > 0) l.coresPer1000Rps = round((cpu.proxy / r.completed) * 1000);
  }
  if (target.destAgent) l.destAgentCpuSeconds = round(cpu.destAgent, 2);
  out.latency = l;
  o.progress.info(`latency @${o.rate} req/s: p50 ${l.p50Ms} ms, p90 ${l.p90Ms} ms, p99 ${l.p99Ms} ms, ${l.errors} errors${l.coresPer1000Rps !== undefined ? `, ${l.coresPer1000Rps} proxy cores per 1000 req/s` : ''}`);
  return out;
}

function summarizePath(runs: readonly GatewayRun[], directRuns: readonly GatewayRun[] | undefined): GatewayPathSummary {
  const ok = runs.filter((r) => !r.error);
  const of = (pick: (r: GatewayRun) => number | undefined): Summary | undefined => summarize(ok.map(pick));
  const byRun = (rs: readonly GatewayRun[]): Map<number, number> => new Map(rs.filter((r) => !r.error && r.latency).map((r) => [r.run, r.latency!.p99Ms]));
  const added = directRuns ? summarize(pairedDifferences(byRun(ok), byRun(directRuns)).map((v) => round(v))) : undefined;
  const s: GatewayPathSummary = {
    requestsPerSecond: of((r) => r.maxRate?.requestsPerSecond),
    requestsPerCoreSecond: of((r) => r.maxRate?.requestsPerCoreSecond),
    requestsPerCoreSecondWithAgent: of((r) => r.maxRate?.requestsPerCoreSecondWithAgent),
    backendRequestsPerCoreSecond: of((r) => r.maxRate?.backendRequestsPerCoreSecond),
    p50Ms: of((r) => r.latency?.p50Ms),
    p90Ms: of((r) => r.latency?.p90Ms),
    p99Ms: of((r) => r.latency?.p99Ms),
    addedP99Ms: added,
    coresPer1000Rps: of((r) => r.latency?.coresPer1000Rps),
    destAgentCoresPer1000Rps: of((r) => (r.latency?.destAgentCpuSeconds !== undefined && r.latency.completed > 0 ? round((r.latency.destAgentCpuSeconds / r.latency.completed) * 1000) : undefined)),
  };
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as GatewayPathSummary;
}

export async function runGatewayBench(o: GatewayBenchOptions): Promise<GatewayBenchResult> {
  const startedAt = new Date().toISOString();
  const paths = [...(o.paths ?? GATEWAY_PATHS)];
  const loadAverageStart = loadavg();
  const hz = await clockTicksPerSecond();
  const meter = new CpuMeter(hz);
  const [nginxV, nginxVV, wrkV, amesh, hboneH2Settings] = await Promise.all([commandOutput('nginx', ['-v']), commandOutput('nginx', ['-V']), wrkVersion(), ameshVersion(), h2Settings()]);
  const nginxVersion = parseNginxVersion(nginxV);
  const dir = await mkdtemp(join(tmpdir(), 'amesh-bench-gateway-'));
  const group = new ProcessGroup(dir);
  const notes: string[] = [
    'Loopback, every process on the same cores (load generator, backend, proxies, destination agent): compare ratios within this run only.',
    `Both edge proxies terminate TLS 1.3 with the same ECDSA P-256 certificate for ${EDGE_HOST} over keep-alive connections (one handshake per load connection); the load is HTTP/1.1 with SNI and Host ${EDGE_HOST}, the answers ${o.responseBytes} B from one node:http backend.`,
    'nginx proxies plain HTTP/1.1 to the backend over an upstream keepalive pool; the amesh gateway routes on the authority and sends every request over HBONE (mTLS TLS 1.3 + HTTP/2 CONNECT) to a destination agent (the HBONE server of the node agent, src/hbone/server.ts), which opens TCP to the backend.',
    `amesh "proxy CPU" is the gateway process alone; the destination agent's CPU (the mesh's cost on the pod's node) is reported beside it. Gateway access log: ${o.gatewayAccessLog ? 'on (buffered, as deployed)' : 'off (as nginx here)'}.`,
    'wrk (max rate) does not verify the server certificate; the probe and the open-loop client verify it against the edge CA for the host name.',
  ];
  const results: GatewayPathResult[] = paths.map((path) => ({ path, label: GATEWAY_PATH_LABELS[path], runs: [], summary: {} }));
  const killOnExit = (): void => group.killNow();
  process.once('exit', killOnExit);
  o.progress.step(`starting the backend (${o.responseBytes} B answers), the mesh CA and the edge certificate in ${dir}`);
  try {
    const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    const caFile = join(dir, 'ca.json');
    await writeFile(caFile, JSON.stringify(ca), { mode: 0o600 });
    const edgeCert = await createServingCertificates({ dnsNames: [EDGE_HOST], ipAddresses: ['127.0.0.1'], days: 1 });
    const certFile = join(dir, 'edge.crt');
    const keyFile = join(dir, 'edge.key');
    const edgeCaFile = join(dir, 'edge-ca.crt');
    await writeFile(certFile, edgeCert.certPem);
    await writeFile(keyFile, edgeCert.keyPem, { mode: 0o600 });
    await writeFile(edgeCaFile, edgeCert.caCertPem);
    const edge: EdgeTarget = { https: { caFile: edgeCaFile, servername: EDGE_HOST }, hostHeader: EDGE_HOST };
    const { ready: b, started: backendProcess } = await group.role('backends', 'backends', { bytes: o.responseBytes }, o.timeoutMs);
    const backendPort = b.ports.v1;
    o.progress.info(`backend 127.0.0.1:${backendPort} (pid ${backendProcess.pid})`);

    // Start and probe every path once; they stay up for all the rounds.
    const targets = new Map<GatewayPathId, PathTarget>();
    for (const result of results) {
      o.progress.step(`starting and probing ${result.label}`);
      try {
        let target: PathTarget;
        if (result.path === 'direct') {
          target = { port: backendPort, edge: {} };
        } else if (result.path === 'nginx') {
          if (!nginxVersion) {
            result.skipped = 'nginx is not installed (apt-get install nginx-light; scripts/setup.sh installs it)';
            o.progress.info(result.skipped);
            continue;
          }
          const port = await freePort();
          const ngDir = join(dir, 'nginx');
          await mkdir(ngDir, { recursive: true });
          const config = join(ngDir, 'nginx.conf');
          await writeFile(config, nginxEdgeConfig({ listenPort: port, backendPort, dir: ngDir, serverName: EDGE_HOST, certFile, keyFile }));
          const ng: Started = group.spawn('nginx', 'nginx', ['-p', ngDir, '-e', join(ngDir, 'nginx-error.log'), '-c', config]);
          await waitForPort(port, o.timeoutMs, () => isRunning(ng));
          target = { port, edge, proxy: [ng.pid] };
        } else {
          const hbone = result.path === 'amesh';
          const dest = hbone ? await group.role('dest-agent', 'dest-agent', { caFile }, o.timeoutMs) : undefined;
          const name = hbone ? 'gateway' : 'gateway-plain';
          const gw = await group.roleAt<GatewayRoleReady>(
            GATEWAY_ROLES_ENTRY,
            name,
            'gateway',
            { caFile, backendPort, destAgentPort: dest?.ready.port ?? 15008, certFile, keyFile, accessLog: o.gatewayAccessLog, upstream: hbone ? 'hbone' : 'plain' },
            o.timeoutMs,
            o.gatewayNodeArgs,
          );
          o.progress.info(`${name} pid ${gw.started.pid} (HTTPS 127.0.0.1:${gw.ready.port})${dest ? `, dest agent pid ${dest.started.pid} (HBONE 127.0.0.1:${dest.ready.port})` : ''}`);
          target = { port: gw.ready.port, edge, proxy: [gw.started.pid], ...(dest ? { destAgent: [dest.started.pid] } : {}) };
        }
        const probe = await probeEdge(target.port, target.edge, { requests: o.probeRequests, bytes: o.responseBytes, timeoutMs: 5000 });
        result.probe = probe;
        const problems = judgeEdgeProbe(probe, target.edge.https ? EDGE_HOST : undefined);
        o.progress.info(`probe: ${probe.ok}/${probe.requests} answered by the backend${probe.certificateNames ? `, certificate for ${probe.certificateNames.join(', ')}` : ''}`);
        if (problems.length > 0) {
          result.skipped = `probe failed: ${problems.join('; ')}`;
          continue;
        }
        targets.set(result.path, target);
      } catch (err) {
        // The logs go with the temporary directory: keep the gateway's last words in the report.
        const log = result.path.startsWith('amesh') ? await readFile(join(dir, `${result.path === 'amesh' ? 'gateway' : 'gateway-plain'}.log`), 'utf8').catch(() => '') : '';
        const tail = log.trim().split('\n').slice(-5).join(' | ');
        result.skipped = `start failed: ${err instanceof Error ? err.message : String(err)}${tail ? ` — ${tail}` : ''}`;
        o.progress.info(result.skipped);
      }
    }

    for (let run = 1; run <= o.runs; run++) {
      for (const result of results) {
        const target = targets.get(result.path);
        if (!target) continue;
        o.progress.step(`run ${run}/${o.runs}: ${result.label}`);
        try {
          const loadAverage1m = round(loadavg()[0] ?? 0, 2);
          result.runs.push({ run, loadAverage1m, ...(await measureRun(o, meter, target, backendProcess.pid)) });
        } catch (err) {
          const error = err instanceof Error ? err.message : String(err);
          result.runs.push({ run, loadAverage1m: round(loadavg()[0] ?? 0, 2), error });
          o.progress.info(`failed: ${error}`);
        }
      }
    }
  } finally {
    await group.stopAll();
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  }

  const direct = results.find((r) => r.path === 'direct' && !r.skipped);
  for (const r of results) r.summary = summarizePath(r.runs, r.path === 'direct' ? undefined : direct?.runs);
  const med = (id: GatewayPathId, key: keyof GatewayPathSummary): number | undefined => results.find((r) => r.path === id)?.summary[key]?.median;
  const div = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || b === 0 ? undefined : round(a / b));
  const ratios = {
    requestsPerCoreSecond: div(med('amesh', 'requestsPerCoreSecond'), med('nginx', 'requestsPerCoreSecond')),
    requestsPerSecond: div(med('amesh', 'requestsPerSecond'), med('nginx', 'requestsPerSecond')),
    p99: div(med('amesh', 'p99Ms'), med('nginx', 'p99Ms')),
    p99NginxOverAmesh: div(med('nginx', 'p99Ms'), med('amesh', 'p99Ms')),
    coresPer1000Rps: div(med('amesh', 'coresPer1000Rps'), med('nginx', 'coresPer1000Rps')),
    plainRequestsPerCoreSecond: div(med('amesh-plain', 'requestsPerCoreSecond'), med('nginx', 'requestsPerCoreSecond')),
    plainP99: div(med('amesh-plain', 'p99Ms'), med('nginx', 'p99Ms')),
  };
  const TARGET = 0.4;
  const { progress: _progress, ...settings } = o;
  return {
    schema: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    settings: { ...settings, paths },
    environment: {
      amesh,
      node: process.versions.node,
      openssl: process.versions.openssl,
      kernel: kernelRelease(),
      cpus: cpuDescription(),
      ...(nginxVersion ? { nginx: nginxVersion } : {}),
      ...(parseNginxOpenssl(nginxVV) ? { nginxOpenssl: parseNginxOpenssl(nginxVV) } : {}),
      ...(wrkV ? { wrk: wrkV } : {}),
      hboneH2Settings,
      clockTicksPerSecond: hz,
      loadAverageStart,
      loadAverageEnd: loadavg(),
    },
    paths: results,
    ratios: Object.fromEntries(Object.entries(ratios).filter(([, v]) => v !== undefined)),
    target: {
      ratio: TARGET,
      ...(ratios.requestsPerCoreSecond !== undefined ? { requestsPerCoreMet: ratios.requestsPerCoreSecond >= TARGET } : {}),
      ...(ratios.p99NginxOverAmesh !== undefined ? { p99Met: ratios.p99NginxOverAmesh >= TARGET } : {}),
    },
    processes: group.list(),
    notes,
  };
}
