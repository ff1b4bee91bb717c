/**
 * Scenario 4, one run: connection setup rate. wrk in the client pod with `Connection: close`, so
 * the backend closes after each response and wrk opens a new TCP connection for the next request:
 * connections/s = good responses/s. `connRateConcurrency` connections are in flight at a time.
 *
 * Whether a path pays a TLS handshake per connection is measured, not assumed: the kernel's
 * PassiveOpens counter (/proc/net/snmp, per network namespace) of the server pod and its node
 * counts every TCP connection accepted on the server side during the run. The backend accepts
 * one per client connection; the rest are the proxies' tunnel connections, each of which starts
 * with a TLS handshake (full or resumed). So tunnel connections per client connection ≈ 1 for a
 * pair that dials its peer per connection (stunnel, haproxy, nginx stream) and ≈ 0 for amesh,
 * whose HBONE connections are pooled (a new connection is an HTTP/2 CONNECT stream).
 */
import type { CpuMeter } from '../proc-stat.js';
import type { PathName } from '../results.js';
import { proxyEfficiency, runWrk, type PathRun, type ScenarioBed } from './maxrate.js';
import { wrkErrors } from '../load/wrk.js';
import { parseSnmpTcp } from '../proc-net-snmp.js';

export interface ConnRateSettings {
  connRateSeconds: number;
  /** Connections in flight at a time (wrk -c). */
  connRateConcurrency: number;
}

export interface ConnRateSample {
  path: PathName;
  run: number;
  concurrency: number;
  /** New TCP connections per second, each carrying one good request. */
  connectionsPerSecond?: number;
  connections?: number;
  seconds?: number;
  /** Connect + request + close, wrk's measure from sending the request. */
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  errors?: number;
  connectErrors?: number;
  /** TCP connections the server side accepted beyond the backend's own, per client connection. */
  tunnelConnectionsPerConnection?: number;
  proxyCpuSeconds?: number;
  /** Proxy CPU-milliseconds per new connection. */
  proxyCpuMsPerConnection?: number;
  /** New connections per proxy CPU-second. */
  connectionsPerProxyCoreSecond?: number;
  error?: string;
}

/**
 * Tunnel connections per client connection: the server side's accepted connections minus the
 * backend's one per client connection. wrk stops with up to `concurrency` connections accepted
 * but unanswered, so a small negative residue is clamped to 0.
 */
export function tunnelConnectionsPerConnection(accepted: number, connections: number): number | undefined {
  if (connections <= 0) return undefined;
  return Math.max(0, (accepted - connections) / connections);
}

async function passiveOpens(bed: ScenarioBed, namespaces: readonly string[]): Promise<number> {
  let total = 0;
  for (const ns of namespaces) {
    const { stdout } = await bed.topology.exec(ns, ['cat', '/proc/net/snmp'], { timeoutMs: 5000 });
    const tcp = parseSnmpTcp(stdout);
    if (tcp.PassiveOpens === undefined) throw new Error(`/proc/net/snmp in ${ns} has no PassiveOpens`);
    total += tcp.PassiveOpens;
  }
  return total;
}

export async function runConnRate(task: PathRun, bed: ScenarioBed, s: ConnRateSettings, meter: CpuMeter): Promise<ConnRateSample> {
  const sample: ConnRateSample = { path: task.path, run: task.run, concurrency: s.connRateConcurrency };
  try {
    const ends = bed.endpoints(task.path);
    const serverNode = bed.topology.pods.find((p) => p.name === ends.serverPod)?.node;
    const namespaces = [ends.serverPod, ...(serverNode ? [serverNode] : [])];
    const acceptedBefore = await passiveOpens(bed, namespaces);
    const { report, cpuSeconds } = await runWrk(task, bed, meter, { connections: s.connRateConcurrency, seconds: s.connRateSeconds, headers: ['Connection: close'] });
    const accepted = (await passiveOpens(bed, namespaces)) - acceptedBefore;
    const good = Math.max(0, report.requests - report.statusErrors);
    Object.assign(sample, {
      connectionsPerSecond: report.requestsPerSecond,
      connections: good,
      seconds: report.seconds,
      latencyP50Ms: report.latencyMs.p50,
      latencyP99Ms: report.latencyMs.p99,
      errors: wrkErrors(report),
      connectErrors: report.connectErrors,
    });
    const tunnels = tunnelConnectionsPerConnection(accepted, good);
    if (tunnels !== undefined) sample.tunnelConnectionsPerConnection = tunnels;
    if (bed.proxyPids(task.path).length > 0) {
      const { proxyCoresPer1000Rps, requestsPerProxyCoreSecond } = proxyEfficiency(cpuSeconds, good);
      sample.proxyCpuSeconds = cpuSeconds;
      if (proxyCoresPer1000Rps !== undefined) sample.proxyCpuMsPerConnection = proxyCoresPer1000Rps;
      if (requestsPerProxyCoreSecond !== undefined) sample.connectionsPerProxyCoreSecond = requestsPerProxyCoreSecond;
    }
    if (good === 0) throw new Error(`no connection completed a request (${wrkErrors(report)} errors: connect ${report.connectErrors}, read ${report.readErrors}, timeout ${report.timeouts}, status ${report.statusErrors})`);
  } catch (err) {
    sample.error = err instanceof Error ? err.message : String(err);
  }
  return sample;
}
