/**
 * The slow-reader back-pressure check (issue #12: "a slow reader must not grow the agent's
 * memory"): a client in the client pod writes `bytes` (512 MiB by default) as fast as it may to
 * a server in the server pod that reads nothing for `pauseSeconds`, through both node agents
 * (HBONE). Flow control (TCP to the agent, the HTTP/2 stream and connection windows of HBONE,
 * TCP to the server) must stop the sender; if a relay buffered instead, the agents' RSS would
 * grow by about what the client wrote. Passes when neither agent's RSS rose more than
 * `maxGrowthMib` over its value before the transfer and every byte arrived.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { SpawnedProcess } from '../src/sandbox/network/topology.js';
import { sampleProcess } from './soak-sample.js';
import { BENCH_DIR } from './testbed.js';
import { CLIENT_POD, SERVER_POD, type SoakTopology } from './soak-topology.js';

export const SLOW_READER = join(BENCH_DIR, 'load', 'slow-reader.js');
const SLOW_PORT = 9191;

export interface SlowReaderResult {
  ok: boolean;
  failures: string[];
  bytes: number;
  received: number;
  pauseSeconds: number;
  /** Bytes the client had got rid of when the server started reading: what the path buffered (kernel buffers included). */
  writtenDuringPause: number;
  /** Per agent: RSS before, peak while the server read nothing, peak over the whole transfer, growth = peak − before (MiB). */
  agents: Record<string, { beforeMib: number; pausePeakMib: number; peakMib: number; growthMib: number }>;
  transferMs: number;
}

function events(proc: SpawnedProcess): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  if (proc.stdout) {
    createInterface({ input: proc.stdout }).on('line', (line) => {
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not an event line
      }
    });
  }
  return out;
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined, tick?: () => Promise<void>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await (tick?.() ?? Promise.resolve());
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`slow-reader check: timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

export async function runSlowReader(bed: SoakTopology, o: { bytes: number; pauseSeconds: number; maxGrowthMib: number; log: (line: string) => void }): Promise<SlowReaderResult> {
  const agents = bed.measured.filter((m) => m.name.startsWith('agent-'));
  const before = Object.fromEntries(await Promise.all(agents.map(async (a) => [a.name, (await sampleProcess(a.process.pid)).rssKib] as const)));
  const peak = { ...before };
  const pausePeak = { ...before };
  const server = bed.topology.spawn(SERVER_POD.name, [process.execPath, SLOW_READER, 'server', '--port', String(SLOW_PORT), '--pause-seconds', String(o.pauseSeconds)], { stderrFile: join(bed.dir, 'slow-server.log') });
  const serverEvents = events(server);
  try {
    await until('the slow server to listen', 10_000, () => serverEvents.find((e) => e.event === 'listening'));
    const timeoutMs = (o.pauseSeconds + 120) * 1000;
    const client = bed.topology.spawn(CLIENT_POD.name, [process.execPath, SLOW_READER, 'client', '--host', SERVER_POD.ip, '--port', String(SLOW_PORT), '--bytes', String(o.bytes), '--timeout-ms', String(timeoutMs)], { stderrFile: join(bed.dir, 'slow-client.log') });
    const clientEvents = events(client);
    const started = Date.now();
    let writtenDuringPause = 0;
    const sampleAgents = async (): Promise<void> => {
      for (const a of agents) {
        try {
          const rss = (await sampleProcess(a.process.pid)).rssKib;
          peak[a.name] = Math.max(peak[a.name]!, rss);
          if (Date.now() - started < o.pauseSeconds * 1000) pausePeak[a.name] = Math.max(pausePeak[a.name]!, rss);
        } catch {
          // the agent exited: the growth check below still has its last value, the transfer fails
        }
      }
      if (Date.now() - started < o.pauseSeconds * 1000) {
        const last = clientEvents.filter((e) => e.event === 'progress').at(-1);
        writtenDuringPause = Number(last?.written ?? writtenDuringPause);
      }
    };
    const end = await until('the transfer to finish', timeoutMs + 5000, () => clientEvents.find((e) => e.event === 'sent' || e.event === 'failed'), sampleAgents);
    const received = Number((await until('the server to count what it received', 10_000, () => serverEvents.find((e) => e.event === 'received')).catch(() => ({ bytes: 0 }))).bytes ?? 0);
    const result: SlowReaderResult = {
      ok: true,
      failures: [],
      bytes: o.bytes,
      received,
      pauseSeconds: o.pauseSeconds,
      writtenDuringPause,
      agents: Object.fromEntries(agents.map((a) => [a.name, { beforeMib: before[a.name]! / 1024, pausePeakMib: pausePeak[a.name]! / 1024, peakMib: peak[a.name]! / 1024, growthMib: (peak[a.name]! - before[a.name]!) / 1024 }])),
      transferMs: Number(end.ms ?? Date.now() - started),
    };
    if (end.event === 'failed') result.failures.push(`the client failed: ${String(end.error)}`);
    if (received !== o.bytes) result.failures.push(`the server received ${received} of ${o.bytes} bytes`);
    for (const [name, a] of Object.entries(result.agents)) {
      if (a.growthMib >= o.maxGrowthMib) result.failures.push(`${name}: RSS grew ${a.growthMib.toFixed(1)} MiB while the server did not read (limit ${o.maxGrowthMib} MiB) — a relay buffers instead of pushing back`);
    }
    result.ok = result.failures.length === 0;
    const growth = Object.entries(result.agents).map(([n, a]) => `${n} +${(a.pausePeakMib - a.beforeMib).toFixed(1)} MiB in the pause, +${a.growthMib.toFixed(1)} MiB at peak`).join(', ');
    o.log(`slow reader: ${(writtenDuringPause / 2 ** 20).toFixed(1)} MiB accepted from the client during the ${o.pauseSeconds} s pause; ${growth}; ${(received / 2 ** 20).toFixed(0)} MiB arrived — ${result.ok ? 'ok' : result.failures.join('; ')}`);
    await client.stop(2000);
    return result;
  } finally {
    await server.stop(2000);
  }
}
