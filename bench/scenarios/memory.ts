/**
 * Scenario 5, one run: memory per held connection. The hold server (hold-server.ts) runs in the
 * server pod; the hold client (load/hold-client.ts) in the client pod opens N connections to it
 * through the path and holds them. The resident set size of the path's proxies — VmRSS summed
 * over each proxy's process tree — is read idle and with each N held, every time after a full
 * garbage collection of the Node proxies (POST /debug/gc on the agents' loopback admin port; the
 * agents run with --expose-gc). KB per connection = (RSS with N − RSS idle) / N.
 *
 * Before the idle reading the path carries a short burst of requests (WARMUP_SECONDS). Each N is
 * opened by a fresh client after the previous one released its connections and the
 * server side drained, so the N are independent measurements against the same idle baseline.
 * RSS after the last release is recorded too: memory an allocator keeps is not a leak, but it
 * is what a node carries after a burst.
 *
 * The hold server listens on the testbed's HOLD_PORT; the client dials PathEndpoints.holdPort:
 * the server pod's HOLD_PORT itself (direct, amesh — the agents capture every port of an enrolled
 * pod) or a proxy pair's hold tunnel (127.0.0.1:holdPort in the client pod → the pair → HOLD_PORT).
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { FD_HEADROOM, parseHoldEvent, parseOpenFilesLimit, type HoldEvent } from '../load/hold.js';
import { readProcessTable, type CpuMeter, type ProcStat } from '../proc-stat.js';
import type { PathName } from '../results.js';
import type { SpawnedProcess } from '../../src/sandbox/network/topology.js';
import { BENCH_DIR, HOLD_PORT, type Testbed } from '../testbed.js';
import { runWrk, type PathRun } from './maxrate.js';

export const HOLD_SERVER = join(BENCH_DIR, 'hold-server.js');
export const HOLD_CLIENT = join(BENCH_DIR, 'load', 'hold-client.js');
/** The node agent's admin port (loopback in the node's namespace), where POST /debug/gc is served. */
export const AGENT_ADMIN_PORT = 15000;
/**
 * Before the idle reading every path carries WARMUP_SECONDS of closed-loop requests (wrk over
 * WARMUP_CONNECTIONS keep-alive connections, closed before the reading): the baseline is then a
 * proxy that has served traffic — its code compiled, its TLS contexts and amesh's pooled HBONE
 * connection made, and V8's young generation (2 × 16 MiB semi-spaces per Node process, resident
 * only once allocation has cycled through them) touched — not a process fresh from start. Without
 * it the first held count carries that fixed ~25 MB per agent as if each connection cost it.
 */
export const WARMUP_SECONDS = 3;
export const WARMUP_CONNECTIONS = 16;
/** Connections being set up at a time by the hold client. */
export const HOLD_CONCURRENCY = 200;

export interface MemorySettings {
  /** Held-connection counts, measured in ascending order (e.g. [1000, 10000]). */
  memoryConnections: number[];
}

/**
 * Bound for N connections to come up: 60 s plus 50 ms per connection, at most 10 minutes — a TLS
 * pair that spends ~30 ms of CPU per handshake on a loaded 2-core machine opens 1 000 in about a
 * minute. A path that stops making progress fails sooner: after HOLD_STALL_MS without a new one.
 */
export function openTimeoutMs(connections: number): number {
  return Math.min(600_000, 60_000 + connections * 50);
}
export const HOLD_STALL_MS = 20_000;

export interface HeldMeasurement {
  connections: number;
  /** Summed VmRSS of the proxy process trees with the connections held, after GC. */
  rssKB: number;
  /** (rssKB − idleRssKB) / connections. */
  kbPerConnection: number;
  /** Until every connection was answered end to end. */
  secondsToOpen: number;
  /** Proxy CPU-seconds spent while the connections were opened. */
  proxyCpuSeconds: number;
  /** V8 heap in use after GC, summed over the Node proxies (absent without any). */
  heapUsedKB?: number;
  /** V8 heap committed after GC, summed over the Node proxies (absent without any). */
  heapCommittedKB?: number;
}

export interface MemorySample {
  path: PathName;
  run: number;
  /** Summed VmRSS of the proxy process trees before any connection is held, after GC. */
  idleRssKB?: number;
  /** One entry per held-connection count that came up (in ascending order). */
  held: HeldMeasurement[];
  /** After the last release, server side drained, after GC. */
  releasedRssKB?: number;
  /** V8 heap in use after GC, summed over the Node proxies: idle and after the last release. */
  idleHeapUsedKB?: number;
  releasedHeapUsedKB?: number;
  /** V8 heap committed after GC, summed over the Node proxies, idle. */
  idleHeapCommittedKB?: number;
  /** Node proxies were collected before each reading (false: no Node process among the proxies). */
  collectedGarbage?: boolean;
  /**
   * Held-connection counts this path cannot reach on this machine, with why: a relay process
   * holds two descriptors per connection, more than its hard open-files limit allows.
   */
  notMeasured?: string[];
  error?: string;
}

export type MemoryBed = Pick<Testbed, 'endpoints' | 'proxyPids' | 'topology' | 'dir' | 'waitForListener'>;

export function kbPerConnection(idleKB: number, heldKB: number, connections: number): number {
  if (connections <= 0) throw new RangeError(`connections must be positive, got ${connections}`);
  return (heldKB - idleKB) / connections;
}

/** VmRSS in kB from a /proc/<pid>/status text; undefined for kernel threads or exited processes. */
export function parseVmRssKB(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/** `roots` and all their descendants that are in `table`. */
export function processTree(table: readonly ProcStat[], roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const present = new Set(table.map((p) => p.pid));
  const seen = new Set<number>();
  const queue = roots.filter((pid) => present.has(pid));
  while (queue.length > 0) {
    const pid = queue.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...seen];
}

/** The sample's numbers by name: idleRssKB, rssKB@N, kbPerConnection@N, … releasedRssKB. */
export function memoryValues(s: MemorySample): Record<string, number> {
  const out: Record<string, number> = {};
  if (s.idleRssKB !== undefined) out.idleRssKB = s.idleRssKB;
  if (s.idleHeapUsedKB !== undefined) out.idleHeapUsedKB = s.idleHeapUsedKB;
  if (s.idleHeapCommittedKB !== undefined) out.idleHeapCommittedKB = s.idleHeapCommittedKB;
  for (const h of s.held) {
    if (h.heapUsedKB !== undefined) out[`heapUsedKB@${h.connections}`] = h.heapUsedKB;
    if (h.heapCommittedKB !== undefined) out[`heapCommittedKB@${h.connections}`] = h.heapCommittedKB;
    out[`rssKB@${h.connections}`] = h.rssKB;
    out[`kbPerConnection@${h.connections}`] = h.kbPerConnection;
    out[`secondsToOpen@${h.connections}`] = h.secondsToOpen;
    out[`proxyCpuSeconds@${h.connections}`] = h.proxyCpuSeconds;
  }
  if (s.releasedRssKB !== undefined) out.releasedRssKB = s.releasedRssKB;
  if (s.releasedHeapUsedKB !== undefined) out.releasedHeapUsedKB = s.releasedHeapUsedKB;
  return out;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Summed VmRSS (kB) of the process trees of `roots`. */
export async function treeRssKB(roots: readonly number[]): Promise<number> {
  const pids = processTree(await readProcessTable(), roots);
  let total = 0;
  for (const pid of pids) total += parseVmRssKB((await readText(`/proc/${pid}/status`)) ?? '') ?? 0;
  return total;
}

/**
 * Full GC in every Node process of the trees (POST /debug/gc on its network namespace's loopback
 * admin port); returns their summed heap in use after it (kB), or undefined when there is none.
 * Throws when a Node proxy does not collect. The heap tells a JavaScript leak (heap stays up after
 * release) from memory the allocator and V8 keep mapped (RSS stays up, heap does not).
 */
async function collectGarbage(roots: readonly number[]): Promise<HeapReading | undefined> {
  const node = await realpath(process.execPath);
  const pids = processTree(await readProcessTable(), roots);
  let heap: HeapReading | undefined;
  for (const pid of pids) {
    const exe = await realpath(`/proc/${pid}/exe`).catch(() => undefined);
    if (exe !== node) continue;
    const url = `http://127.0.0.1:${AGENT_ADMIN_PORT}/debug/gc`;
    const { stdout } = await promisify(execFile)('nsenter', ['--target', String(pid), '--net', 'curl', '-s', '-X', 'POST', '--max-time', '20', '-w', '\n%{http_code}', url], { timeout: 30_000 }).catch(
      (err: unknown) => ({ stdout: `${(err as { stdout?: string }).stdout ?? ''}\n000` }),
    );
    const lines = stdout.trim().split('\n');
    const code = lines.pop();
    const after = code === '200' ? heapAfterOf(lines.join('\n')) : undefined;
    if (code !== '200') {
      throw new Error(
        `POST ${url} in the network namespace of the Node proxy pid ${pid} answered ${code === '000' ? 'nothing' : code}: ${lines.join(' ').slice(0, 200)} — start the agents with NODE_OPTIONS=--expose-gc so memory is read after GC`,
      );
    }
    heap = { usedKB: (heap?.usedKB ?? 0) + (after?.used ?? 0) / 1024, committedKB: (heap?.committedKB ?? 0) + (after?.total ?? 0) / 1024 };
  }
  // V8 may finish sweeping and return pages to the OS just after gc() returns.
  if (heap !== undefined) await delay(500);
  return heap;
}

/** V8 heap of the Node proxies after GC, summed: in use, and committed (what V8 holds from the OS). */
interface HeapReading {
  usedKB: number;
  committedKB: number;
}

/**
 * `heapUsedAfter`, `heapTotalAfter`, `externalAfter` and the young generation's committed size
 * (`spaces.new_space.size`), bytes, of a POST /debug/gc answer.
 */
export function heapAfterOf(body: string): { used?: number; total?: number; external?: number; newSpace?: number } | undefined {
  try {
    const parsed = JSON.parse(body) as { heapUsedAfter?: unknown; heapTotalAfter?: unknown; externalAfter?: unknown; spaces?: { new_space?: { size?: unknown } } };
    const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    const fields = { used: num(parsed.heapUsedAfter), total: num(parsed.heapTotalAfter), external: num(parsed.externalAfter), newSpace: num(parsed.spaces?.new_space?.size) };
    return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  } catch {
    return undefined;
  }
}

/** "pid 123 (stunnel): 19998 of 20000 file descriptors open" for each process of the trees. */
async function fdUsage(roots: readonly number[]): Promise<string> {
  const table = await readProcessTable();
  const comm = new Map(table.map((p) => [p.pid, p.comm]));
  const out: string[] = [];
  for (const pid of processTree(table, roots)) {
    const open = await readdir(`/proc/${pid}/fd`).then((fds) => fds.length, () => undefined);
    const limit = parseOpenFilesLimit((await readText(`/proc/${pid}/limits`)) ?? '');
    if (open !== undefined) out.push(`pid ${pid} (${comm.get(pid) ?? '?'}): ${open} of ${limit ?? '?'} file descriptors open`);
  }
  return out.join('; ');
}

/**
 * Descriptors one held connection costs each proxy process: a TCP relay pair (stunnel, haproxy,
 * nginx) holds the accepted socket and its upstream in the same process; an amesh agent holds the
 * captured socket while the tunnels share a few pooled HBONE connections.
 */
export function descriptorsPerConnection(path: PathName): number {
  return path === 'amesh' || path === 'amesh-nft' ? 1 : 2;
}

/**
 * Why `connections` held connections cannot be measured on `path` (undefined when they can): the
 * lowest hard open-files limit among the proxy processes is below what they need. No process may
 * raise its limit past the hard one (a container's limit binds root too).
 */
export async function descriptorShortfall(path: PathName, roots: readonly number[], connections: number): Promise<string | undefined> {
  const pids = processTree(await readProcessTable(), roots);
  let lowest = Infinity;
  for (const pid of pids) lowest = Math.min(lowest, parseOpenFilesLimit((await readText(`/proc/${pid}/limits`)) ?? '', 'hard') ?? Infinity);
  const needed = connections * descriptorsPerConnection(path) + FD_HEADROOM;
  if (needed <= lowest) return undefined;
  return `${connections} held connections not measured on ${path}: its relay needs ${descriptorsPerConnection(path)} descriptors per connection (${needed} with headroom) but the proxies' hard open-files limit is ${lowest} here (raise \`ulimit -Hn\` where the bench runs)`;
}

/** The hold client's events, in order. */
class EventReader {
  private readonly events: HoldEvent[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(stdout: Readable) {
    const lines = createInterface({ input: stdout });
    lines.on('line', (line) => {
      const event = parseHoldEvent(line);
      if (event) this.events.push(event);
      this.wake?.();
    });
    lines.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  async next(timeoutMs: number, what: string): Promise<HoldEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = this.events.shift();
      if (event) return event;
      if (this.closed) throw new Error(`the hold client exited before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

/** Established connections on HOLD_PORT in the server pod. */
async function heldAtServer(bed: MemoryBed, pod: string): Promise<number> {
  const { stdout } = await bed.topology.exec(pod, ['ss', '-Htn', 'state', 'established', 'sport', '=', `:${HOLD_PORT}`], { timeoutMs: 10_000 });
  return stdout.split('\n').filter((l) => l.trim()).length;
}

async function drained(bed: MemoryBed, pod: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let left = await heldAtServer(bed, pod);
  while (left > 0) {
    if (Date.now() > deadline) throw new Error(`${left} connections to the hold server were still open ${timeoutMs / 1000} s after the client released them`);
    await delay(200);
    left = await heldAtServer(bed, pod);
  }
}

/**
 * Opens `n` connections through the path with a fresh hold client, reads the proxies' heap and
 * RSS after GC while they are held, releases them and waits until the server side drained.
 */
async function holdAndRelease(path: PathName, bed: MemoryBed, roots: readonly number[], meter: CpuMeter, n: number): Promise<{ heap: HeapReading | undefined; rssKB: number; secondsToOpen: number; proxyCpuSeconds: number }> {
  const ends = bed.endpoints(path);
  const timeoutMs = openTimeoutMs(n);
  const clientLog = join(bed.dir, `hold-client-${path}-${n}.log`);
  const argv = [process.execPath, HOLD_CLIENT, '--host', ends.host, '--port', String(ends.holdPort), '--connections', String(n), '--concurrency', String(HOLD_CONCURRENCY), '--timeout-ms', String(timeoutMs), '--stall-ms', String(HOLD_STALL_MS)];
  const client = bed.topology.spawn(ends.clientPod, argv, { stderrFile: clientLog });
  let measured: { heap: HeapReading | undefined; rssKB: number; secondsToOpen: number; proxyCpuSeconds: number };
  try {
    const events = new EventReader(client.stdout!);
    const { result: opened, cpuSeconds } = await meter.measure(roots, () => events.next(timeoutMs + 15_000, `${n} connections to come up`));
    if (opened.event !== 'up') {
      const why = opened.event === 'failed' ? opened.error : `unexpected event ${opened.event}`;
      throw new Error(`holding ${n} connections through ${path} failed: ${why} (proxies: ${await fdUsage(roots)})`);
    }
    // Let the proxies finish any per-connection work (handshake buffers, pool bookkeeping).
    await delay(1000);
    const heap = await collectGarbage(roots);
    measured = { heap, rssKB: await treeRssKB(roots), secondsToOpen: opened.ms / 1000, proxyCpuSeconds: cpuSeconds };
    client.kill('SIGTERM');
    const released = await events.next(30_000, `the hold client to release ${n} connections`);
    if (released.event === 'released' && released.closedWhileHeld > 0) {
      throw new Error(`${released.closedWhileHeld} of ${n} connections closed while held (an idle timeout on the ${path} path?)`);
    }
  } finally {
    await client.stop(5_000);
  }
  await drained(bed, ends.serverPod, 60_000);
  return measured;
}

export async function runMemory(task: PathRun, bed: MemoryBed, s: MemorySettings, meter: CpuMeter): Promise<MemorySample> {
  const sample: MemorySample = { path: task.path, run: task.run, held: [] };
  const ends = bed.endpoints(task.path);
  const serverLog = join(bed.dir, `hold-server-${task.path}.log`);
  let server: SpawnedProcess | undefined;
  try {
    server = bed.topology.spawn(ends.serverPod, [process.execPath, HOLD_SERVER, '--port', String(HOLD_PORT)], { stdoutFile: serverLog, stderrFile: serverLog });
    const roots = bed.proxyPids(task.path);
    if (roots.length === 0) throw new Error(`the ${task.path} path has no proxy processes to measure`);
    await bed.waitForListener(ends.serverPod, HOLD_PORT, 10_000, server);
    const warmup = await runWrk(task, bed, meter, { connections: WARMUP_CONNECTIONS, seconds: WARMUP_SECONDS });
    if (warmup.report.requests - warmup.report.statusErrors <= 0) throw new Error(`the ${WARMUP_SECONDS} s request warm-up through ${task.path} completed no request, so its idle reading would be a fresh process's`);
    const idleHeap = await collectGarbage(roots);
    sample.collectedGarbage = idleHeap !== undefined;
    if (idleHeap !== undefined) {
      sample.idleHeapUsedKB = Math.round(idleHeap.usedKB);
      sample.idleHeapCommittedKB = Math.round(idleHeap.committedKB);
    }
    const idle = await treeRssKB(roots);
    sample.idleRssKB = idle;
    for (const n of [...s.memoryConnections].sort((a, b) => a - b)) {
      const shortfall = await descriptorShortfall(task.path, roots, n);
      if (shortfall) {
        (sample.notMeasured ??= []).push(shortfall);
        continue;
      }
      const { heap, rssKB, secondsToOpen, proxyCpuSeconds } = await holdAndRelease(task.path, bed, roots, meter, n);
      const heapKB = heap === undefined ? {} : { heapUsedKB: Math.round(heap.usedKB), heapCommittedKB: Math.round(heap.committedKB) };
      sample.held.push({ connections: n, rssKB, kbPerConnection: kbPerConnection(idle, rssKB, n), secondsToOpen, proxyCpuSeconds, ...heapKB });
    }
    const releasedHeap = await collectGarbage(roots);
    if (releasedHeap !== undefined) sample.releasedHeapUsedKB = Math.round(releasedHeap.usedKB);
    sample.releasedRssKB = await treeRssKB(roots);
  } catch (err) {
    sample.error = err instanceof Error ? err.message : String(err);
  } finally {
    await server?.stop(2_000).catch(() => undefined);
  }
  return sample;
}
