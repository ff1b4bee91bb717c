/**
 * Running things inside a sandbox topology (src/sandbox/network/topology.ts) for the
 * privileged tests: real `amesh node-agent` processes in node namespaces, the pod programs
 * (test/helpers/pod-programs.mjs) in pod namespaces, and tcpdump captures on node interfaces.
 *
 * Every process is started through the topology, so `topology.destroy()` kills it by pid even
 * when a test fails half-way. Agent stderr (JSON logs) goes to a file per start, so a failure
 * message can quote its tail.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecResult, ExitStatus, SpawnedProcess, Topology } from '../../src/sandbox/network/topology.js';
import { eventually } from './eventually.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const AMESH_BIN = join(REPO_ROOT, 'bin/amesh.js');
/** What `npm run build:ts` produces; bin/amesh.js only loads it. */
export const AMESH_CLI_MAIN = join(REPO_ROOT, 'dist/src/cli/main.js');
export const POD_PROGRAMS = fileURLToPath(new URL('./pod-programs.mjs', import.meta.url));

// ------------------------------------------------------------------------------ text helpers

export function tailLines(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function parseJsonLines<T = Record<string, unknown>>(text: string): T[] {
  const out: T[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('{')) continue;
    try {
      out.push(JSON.parse(trimmed) as T);
    } catch {
      // a partial last line or a non-JSON line
    }
  }
  return out;
}

function readText(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** Write via a temporary file and rename, so a watcher never reads a half-written file. */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content);
  await rename(tmp, file);
}

// ------------------------------------------------------------------------------ pod programs

export type ServerKind = 'firehose-server' | 'echo-server' | 'whoami-server' | 'sink-server';

export interface ServerEvent {
  event: string;
  server?: string;
  port?: number;
  local?: string;
  remote?: string;
  bytes?: number;
}

/** A pod program server; its JSON events are in `stdoutFile`. */
export class PodServer {
  constructor(
    readonly pod: string,
    readonly kind: ServerKind,
    readonly ports: number[],
    readonly process: SpawnedProcess,
    readonly stdoutFile: string,
    readonly stderrFile: string,
  ) {}

  events(): ServerEvent[] {
    return parseJsonLines<ServerEvent>(readText(this.stdoutFile));
  }

  /** Connections the server accepted so far. */
  connections(): ServerEvent[] {
    return this.events().filter((e) => e.event === 'connection');
  }

  describe(): string {
    return `${this.kind} in pod ${this.pod} (pid ${this.process.pid}), last events:\n${tailLines(readText(this.stdoutFile), 5)}\n${tailLines(readText(this.stderrFile), 5)}`;
  }
}

export async function startPodServer(topology: Topology, pod: string, kind: ServerKind, ports: number[], logDir: string): Promise<PodServer> {
  const base = join(logDir, `${pod}-${kind}-${ports.join('-')}`);
  const process = topology.spawn(pod, ['node', POD_PROGRAMS, kind, ...ports.flatMap((p) => ['--port', String(p)])], {
    stdoutFile: `${base}.out`,
    stderrFile: `${base}.err`,
  });
  const server = new PodServer(pod, kind, ports, process, `${base}.out`, `${base}.err`);
  await eventually(
    () => {
      if (process.exitStatus()) return;
      const listening = server.events().filter((e) => e.event === 'listening').length;
      if (listening < ports.length) throw new Error(`${listening} of ${ports.length} ports listening`);
    },
    { timeoutMs: 10_000, intervalMs: 50, description: `${kind} listening in pod ${pod}` },
  );
  if (process.exitStatus()) throw new Error(`${kind} in pod ${pod} exited early: ${JSON.stringify(process.exitStatus())}\n${server.describe()}`);
  return server;
}

/** The JSON result line of a pod program client; `ok` false when the exchange failed. */
export interface ClientResult {
  ok: boolean;
  error?: string;
  message?: string;
  local?: string;
  connected?: boolean;
  sentBytes?: number;
  receivedBytes?: number;
  reply?: unknown;
  [key: string]: unknown;
}

/**
 * Runs `pod-programs.mjs <program> ...args` in a namespace and returns its result. Never throws
 * for a failed exchange; `timeoutMs` bounds the whole program (the client bounds itself too).
 */
export async function runPodClient(topology: Topology, ns: string, program: string, args: string[], timeoutMs = 30_000): Promise<ClientResult> {
  const exec = await topology.exec(ns, ['node', POD_PROGRAMS, program, ...args], { timeoutMs, allowFailure: true });
  const lines = parseJsonLines<ClientResult>(exec.stdout);
  return (
    lines.at(-1) ?? {
      ok: false,
      error: exec.timedOut ? 'PROGRAM_TIMEOUT' : 'NO_RESULT',
      message: `${program} in ${ns} printed no result (exit ${exec.code ?? exec.signal}): ${tailLines(exec.stderr, 10)}`,
    }
  );
}

/** GET (or POST) a URL from inside a namespace. */
export async function httpFromNamespace(topology: Topology, ns: string, url: string, method = 'GET'): Promise<{ status?: number; body?: unknown; error?: string; message?: string }> {
  const result = await runPodClient(topology, ns, 'http-get', ['--url', url, '--method', method, '--timeout-ms', '3000'], 10_000);
  return result as { status?: number; body?: unknown; error?: string; message?: string };
}

// ------------------------------------------------------------------------------ packet capture

export interface TcpPacket {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10 */
  flags: number;
  payload: Buffer;
}

export interface Pcap {
  /** The whole file, for "these bytes never crossed the wire" checks. */
  raw: Buffer;
  /** Link-layer frames seen (any protocol). */
  frames: number;
  /** IPv4 and IPv6 TCP segments. */
  tcp: TcpPacket[];
}

/** Minimal classic-pcap reader (Ethernet, Linux cooked v1/v2); enough for tcpdump -w output. */
export function parsePcap(raw: Buffer): Pcap {
  const tcp: TcpPacket[] = [];
  if (raw.length < 24) return { raw, frames: 0, tcp };
  const magicLE = raw.readUInt32LE(0);
  const littleEndian = magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d;
  const magicBE = raw.readUInt32BE(0);
  if (!littleEndian && magicBE !== 0xa1b2c3d4 && magicBE !== 0xa1b23c4d) throw new Error(`not a classic pcap file (magic 0x${magicLE.toString(16)}); pcapng is not supported`);
  const u32 = (o: number): number => (littleEndian ? raw.readUInt32LE(o) : raw.readUInt32BE(o));
  const linkType = u32(20);
  let frames = 0;
  for (let off = 24; off + 16 <= raw.length; ) {
    const caplen = u32(off + 8);
    const frame = raw.subarray(off + 16, Math.min(raw.length, off + 16 + caplen));
    off += 16 + caplen;
    frames++;
    let etherType: number;
    let l3: Buffer;
    if (linkType === 1 && frame.length >= 14) {
      etherType = frame.readUInt16BE(12);
      l3 = frame.subarray(14);
    } else if (linkType === 113 && frame.length >= 16) {
      etherType = frame.readUInt16BE(14);
      l3 = frame.subarray(16);
    } else if (linkType === 276 && frame.length >= 20) {
      etherType = frame.readUInt16BE(0);
      l3 = frame.subarray(20);
    } else continue;
    let src: string;
    let dst: string;
    let l4: Buffer;
    if (etherType === 0x0800 && l3.length >= 20 && l3[9] === 6) {
      const ihl = ((l3[0] ?? 0) & 0x0f) * 4;
      src = [...l3.subarray(12, 16)].join('.');
      dst = [...l3.subarray(16, 20)].join('.');
      l4 = l3.subarray(ihl, Math.min(l3.length, l3.readUInt16BE(2)));
    } else if (etherType === 0x86dd && l3.length >= 40 && l3[6] === 6) {
      const v6 = (b: Buffer): string => Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');
      src = v6(l3.subarray(8, 24));
      dst = v6(l3.subarray(24, 40));
      l4 = l3.subarray(40, 40 + l3.readUInt16BE(4));
    } else continue;
    if (l4.length < 20) continue;
    tcp.push({ src, dst, sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), flags: l4[13] ?? 0, payload: l4.subarray(((l4[12] ?? 0) >> 4) * 4) });
  }
  return { raw, frames, tcp };
}

/** A running `tcpdump -w`; `stop()` interrupts it by pid, waits for the flush, parses the file. */
export class Capture {
  constructor(
    readonly process: SpawnedProcess,
    readonly file: string,
    readonly stderrFile: string,
  ) {}

  /**
   * Waits (bounded) until `text` is in the capture file. tcpdump writes each packet at once, but
   * on a loaded machine it may not have been scheduled to read the last packets before a SIGINT
   * ends its loop; a test that expects a packet waits for it first. Never throws: the caller's
   * own assertion on the stopped capture decides.
   */
  async waitFor(text: string, timeoutMs = 3_000): Promise<boolean> {
    const needle = Buffer.from(text);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const bytes = await readFile(this.file).catch(() => Buffer.alloc(0));
      if (bytes.includes(needle)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<Pcap> {
    this.process.kill('SIGINT');
    const exit = await Promise.race([this.process.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000).unref())]);
    if (!exit) {
      await this.process.stop(1_000);
      throw new Error(`tcpdump (pid ${this.process.pid}) did not stop within 10 s of SIGINT: ${tailLines(readText(this.stderrFile), 5)}`);
    }
    if (exit.code !== 0 && exit.signal !== 'SIGINT') throw new Error(`tcpdump exited ${JSON.stringify(exit)}: ${tailLines(readText(this.stderrFile), 10)}`);
    return parsePcap(await readFile(this.file));
  }
}

/** Starts tcpdump on `iface` in `ns` and waits until it is capturing. */
export async function startCapture(topology: Topology, ns: string, iface: string, file: string, filter: string[] = []): Promise<Capture> {
  const stderrFile = `${file}.stderr`;
  // A fresh file: a "listening on" line of an earlier capture must not count.
  await writeFile(stderrFile, '');
  // --immediate-mode: hand each packet to tcpdump at once (else SIGINT drops the buffered
  // block); -U: write each packet at once; -Z root: keep permission to write the file; -s 0: whole packets.
  const process = topology.spawn(ns, ['tcpdump', '-i', iface, '-w', file, '-U', '--immediate-mode', '-n', '-s', '0', '-Z', 'root', ...filter], { stderrFile });
  await eventually(
    () => {
      if (process.exitStatus()) return;
      if (!readText(stderrFile).includes('listening on')) throw new Error(`no "listening on" yet: ${readText(stderrFile).trim()}`);
    },
    { timeoutMs: 10_000, intervalMs: 50, description: `tcpdump on ${ns}/${iface}` },
  );
  if (process.exitStatus()) throw new Error(`tcpdump on ${ns}/${iface} exited: ${tailLines(readText(stderrFile), 10)}`);
  return new Capture(process, file, stderrFile);
}

/**
 * Runs pod program `program` in `pod` while tcpdump watches `node`'s uplink for TCP port
 * `port`; returns the program's result and the packets seen, each described on one line.
 */
export async function podClientWhileCapturing(
  topology: Topology,
  o: { node: string; file: string; port: number; pod: string; program: string; args: string[]; timeoutMs: number },
): Promise<{ result: ClientResult; pcap: Pcap; packets: string[] }> {
  const capture = await startCapture(topology, o.node, topology.uplinkName, o.file, ['tcp', 'port', String(o.port)]);
  let pcap: Pcap;
  let result: ClientResult;
  try {
    result = await runPodClient(topology, o.pod, o.program, o.args, o.timeoutMs);
  } finally {
    pcap = await capture.stop();
  }
  const packets = pcap.tcp.map((p) => `${p.src}:${p.sport} > ${p.dst}:${p.dport} flags 0x${p.flags.toString(16)} ${p.payload.length} bytes ${JSON.stringify(p.payload.toString('latin1').slice(0, 40))}`);
  return { result, pcap, packets };
}

// ------------------------------------------------------------------------------ node agents

export interface AgentOptions {
  node: string;
  /** The local config file (JSON or YAML). */
  configFile: string;
  /** AMESH_BPF_PIN_ROOT: unique per test run, e.g. /sys/fs/bpf/amesh/v1/am-1a2b-node1. */
  pinRoot: string;
  /** Where stderr/stdout files go (one pair per start). */
  logDir: string;
  captureMode?: 'auto' | 'ebpf' | 'nftables';
  logLevel?: string;
  drainTimeoutMs?: number;
}

/** The environment of an agent: the caller's minus every AMESH_* (the agent rejects unknown ones). */
function agentEnvironment(opts: AgentOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('AMESH_')) env[key] = value;
  env.AMESH_BPF_PIN_ROOT = opts.pinRoot;
  env.AMESH_CAPTURE_MODE = opts.captureMode ?? 'ebpf';
  env.AMESH_LOG_LEVEL = opts.logLevel ?? 'info';
  if (opts.drainTimeoutMs !== undefined) env.AMESH_DRAIN_TIMEOUT_MS = String(opts.drainTimeoutMs);
  return env;
}

export interface AgentLogLine {
  level?: number;
  msg?: string;
  component?: string;
  [key: string]: unknown;
}

let agentStarts = 0;

/** One `amesh node-agent` process running inside a node namespace. */
export class AgentProcess {
  private constructor(
    private readonly topology: Topology,
    readonly options: AgentOptions,
    readonly process: SpawnedProcess,
    readonly stderrFile: string,
    readonly stdoutFile: string,
  ) {}

  get node(): string {
    return this.options.node;
  }

  /** Starts the agent (does not wait for readiness; see waitReady). */
  static start(topology: Topology, options: AgentOptions): AgentProcess {
    const base = join(options.logDir, `agent-${options.node}-${++agentStarts}`);
    const process = topology.spawn(options.node, ['node', AMESH_BIN, 'node-agent', '--local-config', options.configFile], {
      env: agentEnvironment(options),
      replaceEnv: true,
      stdoutFile: `${base}.stdout`,
      stderrFile: `${base}.stderr`,
    });
    return new AgentProcess(topology, options, process, `${base}.stderr`, `${base}.stdout`);
  }

  /** The agent's JSON log lines so far. */
  logs(): AgentLogLine[] {
    return parseJsonLines<AgentLogLine>(readText(this.stderrFile));
  }

  /** One line per connection (component "access"). */
  accessLogs(): AgentLogLine[] {
    return this.logs().filter((l) => l.component === 'access');
  }

  logTail(lines = 25): string {
    const text = `${readText(this.stderrFile)}${readText(this.stdoutFile)}`;
    return `--- agent ${this.node} (pid ${this.process.pid}${this.process.exitStatus() ? `, exited ${JSON.stringify(this.process.exitStatus())}` : ''}) log tail, ${this.stderrFile}:\n${tailLines(text, lines) || '(empty)'}`;
  }

  /** GET /healthz/ready on 15021 inside the node namespace. */
  readiness(): Promise<{ status?: number; body?: unknown; error?: string; message?: string }> {
    return httpFromNamespace(this.topology, this.node, 'http://127.0.0.1:15021/healthz/ready');
  }

  /** Waits for readiness 200 `{ready: true}`; fails at once, with the log tail, if the agent exits. */
  async waitReady(timeoutMs = 30_000): Promise<Record<string, unknown>> {
    let body: Record<string, unknown> | undefined;
    try {
      await eventually(
        async () => {
          if (this.process.exitStatus()) return;
          const r = await this.readiness();
          if (r.status !== 200 || (r.body as { ready?: boolean } | undefined)?.ready !== true) throw new Error(`readiness: ${JSON.stringify(r)}`);
          body = r.body as Record<string, unknown>;
        },
        { timeoutMs, intervalMs: 200, description: `agent ${this.node} ready` },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.logTail()}`);
    }
    if (this.process.exitStatus() || !body) throw new Error(`agent ${this.node} exited before it was ready\n${this.logTail()}`);
    return body;
  }

  /** GET /config_dump on the admin port (localhost of the node namespace). */
  async configDump(): Promise<Record<string, unknown>> {
    const r = await httpFromNamespace(this.topology, this.node, 'http://127.0.0.1:15000/config_dump');
    if (r.status !== 200 || typeof r.body !== 'object' || r.body === null) throw new Error(`config_dump of ${this.node}: ${JSON.stringify(r).slice(0, 500)}`);
    return r.body as Record<string, unknown>;
  }

  /** SIGTERM and wait for the drain to finish (bounded); SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 30_000): Promise<ExitStatus> {
    return this.process.stop(timeoutMs);
  }

  /** SIGKILL (no drain), then wait for the exit. */
  async kill(): Promise<ExitStatus> {
    this.process.kill('SIGKILL');
    const exit = await Promise.race([this.process.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000).unref())]);
    if (!exit) throw new Error(`agent ${this.node} (pid ${this.process.pid}) survived SIGKILL for 10 s`);
    return exit;
  }
}

/** `amesh node-agent --local-config FILE --uninstall` inside the node namespace. */
export function uninstallAgent(topology: Topology, options: AgentOptions): Promise<ExecResult> {
  return topology.exec(options.node, ['node', AMESH_BIN, 'node-agent', '--local-config', options.configFile, '--uninstall'], {
    env: agentEnvironment(options),
    replaceEnv: true,
    timeoutMs: 60_000,
    allowFailure: true,
  });
}

/** `amesh ...` for commands that need no network (the CA). Throws with stderr on failure. */
export function amesh(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('node', [AMESH_BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`amesh ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}
