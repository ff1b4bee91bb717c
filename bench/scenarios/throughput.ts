/**
 * Scenario 1, one run: a fresh one-off iperf3 server in the server pod, the iperf3 client in the
 * client pod, and the proxies' CPU time measured around the client. Bytes are the receiver's.
 */
import { join } from 'node:path';
import { iperf3ClientArgv, iperf3ServerArgv, parseIperf3Json } from '../iperf3.js';
import type { ThroughputTask } from '../plan.js';
import type { CpuMeter } from '../proc-stat.js';
import type { ThroughputSample } from '../results.js';
import { IPERF_PORT, type Testbed } from '../testbed.js';

const GB = 1e9;

export async function runThroughput(task: ThroughputTask, bed: Testbed, seconds: number, meter: CpuMeter): Promise<ThroughputSample> {
  const sample: ThroughputSample = { path: task.path, streams: task.streams, reverse: task.reverse, run: task.run };
  const ends = bed.endpoints(task.path);
  const log = join(bed.dir, `iperf3-server-${task.path}.log`);
  const server = bed.topology.spawn(ends.serverPod, iperf3ServerArgv(IPERF_PORT), { stdoutFile: log, stderrFile: log });
  try {
    await bed.waitForListener(ends.serverPod, IPERF_PORT, 10_000, server);
    const argv = iperf3ClientArgv({ host: ends.host, port: ends.iperfPort, seconds, streams: task.streams, reverse: task.reverse });
    const { result, cpuSeconds } = await meter.measure(bed.proxyPids(task.path), () =>
      bed.topology.exec(ends.clientPod, argv, { timeoutMs: (seconds + 30) * 1000, allowFailure: true }),
    );
    if (result.timedOut) throw new Error(`iperf3 did not finish within ${seconds + 30} s`);
    const parsed = parseIperf3Json(result.stdout);
    sample.gbps = parsed.bitsPerSecond / 1e9;
    sample.bytes = parsed.bytes;
    sample.seconds = parsed.seconds;
    if (parsed.retransmits !== undefined) sample.retransmits = parsed.retransmits;
    if (task.path !== 'direct') {
      sample.proxyCpuSeconds = cpuSeconds;
      if (parsed.bytes > 0) sample.cpuSecondsPerGB = cpuSeconds / (parsed.bytes / GB);
    }
    if (parsed.bytes === 0) throw new Error('iperf3 moved no data');
  } catch (err) {
    sample.error = err instanceof Error ? err.message : String(err);
  } finally {
    await server.stop(2_000).catch(() => undefined);
  }
  return sample;
}
