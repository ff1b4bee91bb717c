/**
 * Scenario 2, one run: the open-loop load generator (load/open-loop-client.ts) in the client pod
 * at a fixed rate over N keep-alive connections to the 1 KB HTTP backend, the proxies' CPU time
 * measured around it.
 *
 * Proxy cores per 1000 req/s = proxy CPU-seconds per 1000 requests (cores = CPU-s / wall-s, and
 * requests = rate × wall-s). The CPU window covers the generator's whole life, so the divisor is
 * every request it made: one per connection to open it, the warm-up, and the measured ones.
 */
import { parseOpenLoopReport } from '../load/open-loop.js';
import type { LatencyTask } from '../plan.js';
import { machineCpuShares, readMachineCpu, type CpuMeter } from '../proc-stat.js';
import type { LatencySample } from '../results.js';
import { LOAD_CLIENT, type Testbed } from '../testbed.js';

export interface LatencyRunSettings {
  rate: number;
  latencySeconds: number;
  warmupSeconds: number;
}

export async function runLatency(task: LatencyTask, bed: Testbed, s: LatencyRunSettings, meter: CpuMeter): Promise<LatencySample> {
  const sample: LatencySample = { path: task.path, connections: task.connections, run: task.run, targetRate: s.rate };
  const ends = bed.endpoints(task.path);
  const argv = [
    process.execPath,
    LOAD_CLIENT,
    '--host', ends.host,
    '--port', String(ends.httpPort),
    '--rate', String(s.rate),
    '--connections', String(task.connections),
    '--duration', String(s.latencySeconds),
    '--warmup', String(s.warmupSeconds),
  ];
  // The generator stops itself 15 s after its schedule; this outer bound only catches a hang.
  const timeoutMs = (s.warmupSeconds + s.latencySeconds + 30) * 1000;
  try {
    const machineBefore = await readMachineCpu();
    const { result, cpuSeconds } = await meter.measure(bed.proxyPids(task.path), () => bed.topology.exec(ends.clientPod, argv, { timeoutMs, allowFailure: true }));
    const machineAfter = await readMachineCpu();
    const shares = machineBefore && machineAfter ? machineCpuShares(machineBefore, machineAfter) : undefined;
    if (shares) sample.stealPercent = shares.stealPercent;
    if (result.timedOut) throw new Error(`the load generator did not finish within ${timeoutMs / 1000} s`);
    let report;
    try {
      report = parseOpenLoopReport(result.stdout);
    } catch (err) {
      const stderr = result.stderr.trim().split('\n').slice(-5).join(' | ');
      throw new Error(`${err instanceof Error ? err.message : String(err)}${stderr ? ` (stderr: ${stderr})` : ''}`, { cause: err });
    }
    Object.assign(sample, {
      p50Ms: report.latencyMs.p50,
      p90Ms: report.latencyMs.p90,
      p99Ms: report.latencyMs.p99,
      p999Ms: report.latencyMs.p999,
      maxMs: report.latencyMs.max,
      achievedRate: report.achievedRate,
      completed: report.completed,
      errors: report.errors,
      errorKinds: report.errorKinds,
      sendLagP99Ms: report.sendLagMs.p99,
      connectionsOpened: report.connectionsOpened,
    });
    if (task.path !== 'direct') {
      const requests = task.connections + report.warmupRequests + report.completed + report.errors;
      sample.proxyCpuSeconds = cpuSeconds;
      if (requests > 0) sample.coresPer1000Rps = (cpuSeconds / requests) * 1000;
    }
  } catch (err) {
    sample.error = err instanceof Error ? err.message : String(err);
  }
  return sample;
}
