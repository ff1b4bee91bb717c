/**
 * Harness for the BPF/native privileged tests: throw-away network namespaces, a runner process
 * inside one (test/helpers/bpf-netns-runner.mjs, entered with `nsenter --net=` because
 * `ip netns exec` remounts /sys and hides /sys/fs/bpf — DESIGN §2), a unique pin root under
 * /sys/fs/bpf/amesh-test/, and builders for the Ethernet/IP/TCP frames fed to
 * BPF_PROG_TEST_RUN. Everything created here is removed by `cleanup()` even after failures.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, rmdirSync } from 'node:fs';
import { isIP } from 'node:net';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { encodeAddressKey, packageRoot } from '../../src/node-agent/capture/bpf-contract.js';
import { nativeAddonPath } from '../../src/native/addon.js';

export const RUNNER = fileURLToPath(new URL('./bpf-netns-runner.mjs', import.meta.url));
export const TEST_PIN_BASE = '/sys/fs/bpf/amesh-test';

export function sh(argv: string[]): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

export function shortId(): string {
  return randomBytes(3).toString('hex');
}

function ensureBpffs(): void {
  if (sh(['stat', '-f', '-c', '%T', '/sys/fs/bpf']).trim() === 'bpf_fs') return;
  sh(['mount', '-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}

/** Owns namespaces, pin roots and runners of one test file; `cleanup()` removes them all. */
export class BpfTestEnv {
  private readonly namespaces: string[] = [];
  private readonly pinRoots: string[] = [];
  private readonly runners: NetnsRunner[] = [];

  /** A fresh namespace with lo up; name am-t<random>. */
  netns(): string {
    const name = `am-t${shortId()}`;
    sh(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** Pin roots live on bpffs; mount it at /sys/fs/bpf when the host has not (as the agent needs). */
  pinRoot(): string {
    ensureBpffs();
    const dir = `${TEST_PIN_BASE}/${shortId()}`;
    this.pinRoots.push(dir);
    return dir;
  }

  async runner(netns: string): Promise<NetnsRunner> {
    const runner = await NetnsRunner.start(netns);
    this.runners.push(runner);
    return runner;
  }

  async cleanup(): Promise<void> {
    const errors: string[] = [];
    for (const r of this.runners.splice(0)) await r.stop().catch((e: Error) => errors.push(e.message));
    for (const ns of this.namespaces.splice(0)) {
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    for (const dir of this.pinRoots.splice(0)) rmSync(dir, { recursive: true, force: true });
    try {
      rmdirSync(TEST_PIN_BASE); // only when empty: another suite may still use it
    } catch {
      // not empty or already gone
    }
    if (errors.length) throw new Error(`cleanup incomplete: ${errors.join('; ')}`);
  }
}

export interface RunnerError {
  error: string;
  code?: string;
  errno?: number;
  syscall?: string;
}

export class RunnerCallError extends Error {
  constructor(
    readonly op: string,
    readonly detail: RunnerError,
  ) {
    super(`${op}: ${detail.error}`);
  }
}

/** A bpf-netns-runner.mjs process inside a namespace, driven step by step. */
export class NetnsRunner {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: { ok?: unknown } & Partial<RunnerError>) => void>();
  private stderr = '';

  private constructor(
    readonly netns: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {}

  static async start(netns: string): Promise<NetnsRunner> {
    const child = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, RUNNER, nativeAddonPath()], { cwd: packageRoot() });
    const runner = new NetnsRunner(netns, child);
    child.stderr.on('data', (d: Buffer) => (runner.stderr += d.toString()));
    const lines = readline.createInterface({ input: child.stdout });
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`runner in ${netns} exited (${code}): ${runner.stderr}`)));
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as { id?: number; ready?: boolean; ok?: unknown } & Partial<RunnerError>;
        if (msg.ready) return resolve();
        const waiter = msg.id === undefined ? undefined : runner.waiting.get(msg.id);
        if (waiter && msg.id !== undefined) {
          runner.waiting.delete(msg.id);
          waiter(msg);
        }
      });
    });
    await ready;
    return runner;
  }

  /** Run one step; resolves with its result or a RunnerError (never throws for a failed step). */
  callRaw(op: string, args: Record<string, unknown> = {}): Promise<{ ok?: unknown } & Partial<RunnerError>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.child.exitCode !== null) return reject(new Error(`runner in ${this.netns} is gone: ${this.stderr}`));
      this.waiting.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  /** Run one step; throws RunnerCallError when it failed. */
  async call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const reply = await this.callRaw(op, args);
    if (reply.error !== undefined) throw new RunnerCallError(op, reply as RunnerError);
    return reply.ok as T;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

// --- frames for BPF_PROG_TEST_RUN (checksums are irrelevant to the program) ---

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

function ethernet(etherType: number): Buffer {
  const b = Buffer.alloc(14);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(b, 0);
  Buffer.from([2, 0, 0, 0, 0, 2]).copy(b, 6);
  b.writeUInt16BE(etherType, 12);
  return b;
}

function ipv4Header(src: string, dst: string, protocol: number, payloadLength: number): Buffer {
  const b = Buffer.alloc(20);
  b[0] = 0x45;
  b.writeUInt16BE(20 + payloadLength, 2);
  b.writeUInt16BE(0x4000, 6); // DF
  b[8] = 64;
  b[9] = protocol;
  encodeAddressKey(src).copy(b, 12, 12, 16);
  encodeAddressKey(dst).copy(b, 16, 12, 16);
  return b;
}

function ipv6Header(src: string, dst: string, nextHeader: number, payloadLength: number): Buffer {
  const b = Buffer.alloc(40);
  b.writeUInt32BE(0x60000000, 0);
  b.writeUInt16BE(payloadLength, 4);
  b[6] = nextHeader;
  b[7] = 64;
  encodeAddressKey(src).copy(b, 8);
  encodeAddressKey(dst).copy(b, 24);
  return b;
}

function tcpHeader(sport: number, dport: number, flags: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt32BE(1, 4);
  b[12] = 5 << 4;
  b[13] = flags;
  b.writeUInt16BE(65535, 14);
  return b;
}

function udpHeader(sport: number, dport: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(8, 4);
  return b;
}

export interface SegmentSpec {
  src: string;
  dst: string;
  sport?: number;
  dport: number;
  flags?: number;
  protocol?: 'tcp' | 'udp';
}

/** Ethernet + IPv4/IPv6 (by the address family) + TCP (default: a pure SYN) or UDP. */
export function frame(spec: SegmentSpec): Buffer {
  const l4 = spec.protocol === 'udp' ? udpHeader(spec.sport ?? 40000, spec.dport) : tcpHeader(spec.sport ?? 40000, spec.dport, spec.flags ?? TCP_FLAGS.SYN);
  const proto = spec.protocol === 'udp' ? 17 : 6;
  if (isIP(spec.src) === 6) return Buffer.concat([ethernet(0x86dd), ipv6Header(spec.src, spec.dst, proto, l4.length), l4]);
  return Buffer.concat([ethernet(0x0800), ipv4Header(spec.src, spec.dst, proto, l4.length), l4]);
}

/** An ARP request (who-has dst tell src). */
export function arpFrame(src: string, dst: string): Buffer {
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // Ethernet
  arp.writeUInt16BE(0x0800, 2);
  arp[4] = 6;
  arp[5] = 4;
  arp.writeUInt16BE(1, 6); // request
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(arp, 8);
  encodeAddressKey(src).copy(arp, 14, 12, 16);
  encodeAddressKey(dst).copy(arp, 24, 12, 16);
  return Buffer.concat([ethernet(0x0806), arp]);
}

export function u32Hex(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b.toString('hex');
}

export interface SkLookupSpec {
  family: 4 | 6;
  /** IPPROTO_*; TCP unless given. */
  protocol?: number;
  remote: string;
  remotePort: number;
  local: string;
  localPort: number;
}

/**
 * The uapi `struct bpf_sk_lookup` (linux/bpf.h) as BPF_PROG_TEST_RUN's ctx_in, 72 bytes: cookie
 * (out) at 0, family 8, protocol 12, remote_ip4 16, remote_ip6 20, remote_port 36 (network
 * order), local_ip4 40, local_ip6 44, local_port 60 (host order), ingress_ifindex 64 (must be 0).
 */
export function skLookupContext(spec: SkLookupSpec): Buffer {
  const ctx = Buffer.alloc(72);
  ctx.writeUInt32LE(spec.family === 6 ? 10 : 2, 8);
  ctx.writeUInt32LE(spec.protocol ?? 6, 12);
  const remote = encodeAddressKey(spec.remote);
  const local = encodeAddressKey(spec.local);
  if (spec.family === 4) {
    remote.copy(ctx, 16, 12, 16);
    local.copy(ctx, 40, 12, 16);
  } else {
    remote.copy(ctx, 20);
    local.copy(ctx, 44);
  }
  ctx.writeUInt16BE(spec.remotePort, 36);
  ctx.writeUInt32LE(spec.localPort, 60);
  return ctx;
}
