/**
 * Simulated cluster network: nodes and pods as Linux network namespaces, routed like a
 * Calico-style CNI (no bridge, no overlay). Used by the privileged tests, the sandbox, the demo
 * and the benchmarks.
 *
 *   pod netns             node netns                          node netns            pod netns
 *   eth0 10.244.1.2/32 ── vp-a   (route 10.244.1.2/32)         ...
 *   default via 169.254.1.1      up0 10.250.0.1/24 ══ veth ══ up0 10.250.0.2/24
 *                                10.244.2.0/24 via 10.250.0.2  10.244.1.0/24 via 10.250.0.1
 *
 * - Two nodes: their `up0` interfaces are the two ends of one veth pair. More than two: each
 *   node's `up0` is one end of a veth whose other end sits in a "switch" namespace
 *   (`<prefix>-sw`) on a bridge there, so the nodes still share one L2 segment.
 * - Pods: `eth0` with the pod IP as /32 and `default via 169.254.1.1 dev eth0 onlink`; the
 *   host-side veth has `proxy_arp=1` and the node routes `<podIP>/32 dev <host veth>`. The pod
 *   also gets a permanent neighbour entry for 169.254.1.1 → the host veth's MAC: proxy ARP only
 *   answers for targets the node can route elsewhere, and a node netns has no default route.
 * - Nodes forward (`ip_forward=1`) with reverse-path filtering off: captured traffic arrives
 *   with addresses the kernel would otherwise consider martian.
 *
 * Safety invariants: nothing is added to the caller's own network namespace — every `ip`
 * command runs inside a namespace created here (via `nsenter --net`), and veth pairs are
 * created with both ends already inside those namespaces. `destroy()` kills every process
 * spawned through the topology (by pid) and deletes every namespace (which deletes its veths).
 *
 * Namespaces are entered with `nsenter --net=/run/netns/NAME`, not `ip netns exec`: the latter
 * remounts /sys and hides /sys/fs/bpf from the program (DESIGN §2).
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { AmeshError } from '../../errors/amesh-error.js';
import { describeArgv, run, type ExecOptions, type ExecResult } from './run.js';

export type { ExecOptions, ExecResult } from './run.js';

/** Linux limits interface names to 15 characters (IFNAMSIZ - 1); we hold netns names to it too. */
const MAX_NAME = 15;
/** Calico's convention: a link-local gateway every pod routes through. */
export const POD_GATEWAY = '169.254.1.1';
const NETNS_DIR = '/run/netns';
/** How long destroy() lets a process handle SIGTERM before SIGKILL, and waits after that. */
const TERM_GRACE_MS = 3_000;
const KILL_WAIT_MS = 3_000;

export interface NodeSpec {
  name: string;
  /** The node's address on the shared uplink segment, e.g. 10.250.0.1. */
  uplinkIp: string;
  /** The node's pod CIDR, e.g. 10.244.1.0/24; every other node routes it via `uplinkIp`. */
  podCidr: string;
}

export interface PodSpec {
  name: string;
  node: string;
  /** The pod's IPv4 address, inside its node's pod CIDR. */
  ip: string;
}

export interface TopologySpec {
  /**
   * Prefix of every namespace name, e.g. `am-1a2b`; namespaces are `<prefix>-<node or pod name>`
   * (a name that already starts with `<prefix>-` is used unchanged).
   */
  prefix: string;
  nodes: NodeSpec[];
  pods: PodSpec[];
  /** Prefix length of the uplink segment (default 24). */
  uplinkPrefixLength?: number;
  /** Uplink interface name in every node (default `up0`). */
  uplinkName?: string;
  /** Progress messages ("creating netns am-1a2b-node1", ...). */
  log?: (message: string) => void;
}



export interface SpawnOptions {
  /** Environment for the program. Merged over the caller's unless `replaceEnv` is set. */
  env?: NodeJS.ProcessEnv;
  replaceEnv?: boolean;
  /** Append the program's stdout / stderr to these files; otherwise they are pipes. */
  stdoutFile?: string;
  stderrFile?: string;
  /** Give the program a writable stdin pipe (default: /dev/null). */
  stdin?: boolean;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedProcess {
  readonly pid: number;
  readonly namespace: string;
  readonly argv: readonly string[];
  /** Present when stdin was requested. */
  readonly stdin: Writable | null;
  /** Present when no stdoutFile / stderrFile was given. */
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  /** The exit status once known. */
  exitStatus(): ExitStatus | undefined;
  /** Send a signal by pid; no-op once the process has exited. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, wait up to `graceMs`, then SIGKILL and wait; resolves with the exit status. */
  stop(graceMs?: number): Promise<ExitStatus>;
}

export interface Topology {
  readonly prefix: string;
  readonly nodes: readonly NodeSpec[];
  readonly pods: readonly PodSpec[];
  readonly uplinkName: string;
  /** Kernel netns name of a node or pod (`<prefix>-<name>`). */
  netnsName(name: string): string;
  /** `/run/netns/<netns name>` of a node or pod. */
  netnsPath(name: string): string;
  /** The pod's IP. */
  podIp(pod: string): string;
  /** Name of the pod's veth end inside its node's namespace. */
  hostVeth(pod: string): string;
  /** Run a program to completion inside a node's or pod's namespace. */
  exec(ns: string, argv: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Start a long-running program inside a namespace; destroy() kills it if still running. */
  spawn(ns: string, argv: string[], options?: SpawnOptions): SpawnedProcess;
  /** Stop every process spawned so far (SIGTERM, then SIGKILL after a grace period), by pid. */
  stopAll(): Promise<void>;
  /** stopAll(), then delete every namespace. Idempotent; never throws. */
  destroy(): Promise<void>;
}

interface ParsedCidr {
  base: number;
  length: number;
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => (acc * 256 + Number(octet)) >>> 0, 0);
}

function parseCidr(cidr: string, what: string): ParsedCidr {
  const [addr, len] = cidr.split('/');
  const length = Number(len);
  if (!addr || !isIPv4(addr) || !Number.isInteger(length) || length < 0 || length > 32) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `${what}: ${JSON.stringify(cidr)} is not an IPv4 CIDR (a.b.c.d/len)`);
  }
  return { base: ipToInt(addr), length };
}

function inCidr(ip: string, cidr: ParsedCidr): boolean {
  const mask = cidr.length === 0 ? 0 : (0xffffffff << (32 - cidr.length)) >>> 0;
  return ((ipToInt(ip) & mask) >>> 0) === ((cidr.base & mask) >>> 0);
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `<prefix>-<name>`; a name that already starts with `<prefix>-` is the netns name itself. */
function netnsFor(prefix: string, name: string): string {
  return name.startsWith(`${prefix}-`) ? name : `${prefix}-${name}`;
}

/** Host-side veth name: readable (`vp-<pod>`) when it fits, else `vp` + a hash of the pod name. */
function hostVethName(pod: string): string {
  const readable = `vp-${pod}`;
  if (readable.length <= MAX_NAME && NAME_PATTERN.test(pod)) return readable;
  return `vp${createHash('sha256').update(pod).digest('hex').slice(0, 12)}`;
}

/** Validate the spec up front so no namespace is created for a spec that cannot work. */
function validate(spec: TopologySpec): void {
  const bad = (message: string): never => {
    throw new AmeshError('AMESH_CONFIG_INVALID', `topology: ${message}`);
  };
  if (!NAME_PATTERN.test(spec.prefix)) bad(`prefix ${JSON.stringify(spec.prefix)} must be letters, digits, '-', '_' or '.'`);
  if (spec.nodes.length === 0) bad('at least one node is needed');
  const names = new Set<string>();
  for (const entry of [...spec.nodes, ...spec.pods]) {
    if (!NAME_PATTERN.test(entry.name)) bad(`name ${JSON.stringify(entry.name)} must be letters, digits, '-', '_' or '.'`);
    if (names.has(entry.name)) bad(`name ${entry.name} is used twice (node and pod names share one namespace list)`);
    names.add(entry.name);
    const ns = netnsFor(spec.prefix, entry.name);
    if (ns.length > MAX_NAME) bad(`netns name ${ns} is longer than ${MAX_NAME} characters; shorten the prefix or the name`);
  }
  if (spec.nodes.length > 2) {
    if (`${spec.prefix}-sw`.length > MAX_NAME) bad(`switch netns name ${spec.prefix}-sw is too long`);
    if (names.has('sw')) bad("the name 'sw' is reserved for the switch namespace when there are more than two nodes");
  }
  const uplinkName = spec.uplinkName ?? 'up0';
  if (uplinkName.length > MAX_NAME) bad(`uplink name ${uplinkName} is longer than ${MAX_NAME} characters`);
  const prefixLength = spec.uplinkPrefixLength ?? 24;
  if (!Number.isInteger(prefixLength) || prefixLength < 1 || prefixLength > 30) bad(`uplinkPrefixLength ${prefixLength} must be 1..30`);
  const cidrs = new Map<string, ParsedCidr>();
  const uplinkIps = new Set<string>();
  for (const node of spec.nodes) {
    if (!isIPv4(node.uplinkIp)) bad(`node ${node.name}: uplinkIp ${JSON.stringify(node.uplinkIp)} is not an IPv4 address (only IPv4 is supported)`);
    if (uplinkIps.has(node.uplinkIp)) bad(`node ${node.name}: uplinkIp ${node.uplinkIp} is used twice`);
    uplinkIps.add(node.uplinkIp);
    cidrs.set(node.name, parseCidr(node.podCidr, `node ${node.name}: podCidr`));
  }
  const first = spec.nodes[0];
  if (first) {
    const segment = { base: ipToInt(first.uplinkIp), length: prefixLength };
    for (const node of spec.nodes) {
      if (!inCidr(node.uplinkIp, segment)) bad(`node ${node.name}: uplinkIp ${node.uplinkIp} is not on the same /${prefixLength} as ${first.uplinkIp}`);
    }
  }
  const podIps = new Set<string>();
  for (const pod of spec.pods) {
    const cidr = cidrs.get(pod.node);
    if (!cidr) return bad(`pod ${pod.name}: unknown node ${JSON.stringify(pod.node)}`);
    if (!isIPv4(pod.ip)) bad(`pod ${pod.name}: ip ${JSON.stringify(pod.ip)} is not an IPv4 address (only IPv4 is supported)`);
    if (!inCidr(pod.ip, cidr)) bad(`pod ${pod.name}: ip ${pod.ip} is outside node ${pod.node}'s pod CIDR`);
    if (podIps.has(pod.ip)) bad(`pod ${pod.name}: ip ${pod.ip} is used twice`);
    podIps.add(pod.ip);
  }
}


class SpawnedChild implements SpawnedProcess {
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;

  constructor(
    private readonly child: ChildProcess,
    readonly namespace: string,
    readonly argv: readonly string[],
  ) {
    if (child.pid === undefined) throw new AmeshError('AMESH_COMMAND_FAILED', `could not start \`${describeArgv(argv)}\` in ${namespace}`);
    this.pid = child.pid;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.status = { code, signal };
        resolve(this.status);
      });
    });
  }

  get stdin(): Writable | null {
    return this.child.stdin;
  }
  get stdout(): Readable | null {
    return this.child.stdout;
  }
  get stderr(): Readable | null {
    return this.child.stderr;
  }

  exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.status) return;
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  async stop(graceMs = TERM_GRACE_MS): Promise<ExitStatus> {
    if (this.status) return this.status;
    this.kill('SIGTERM');
    const afterTerm = await waitFor(this.exited, graceMs);
    if (afterTerm) return afterTerm;
    this.kill('SIGKILL');
    const afterKill = await waitFor(this.exited, KILL_WAIT_MS);
    if (!afterKill) throw new AmeshError('AMESH_COMMAND_FAILED', `pid ${this.pid} (\`${describeArgv(this.argv)}\`) survived SIGKILL for ${KILL_WAIT_MS} ms`);
    return afterKill;
  }
}

/** The value of `promise`, or undefined if it takes longer than `ms`. */
async function waitFor<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}


/**
 * Build the topology. On any failure everything created so far is removed again and the
 * error (naming the failing command and its stderr) is rethrown.
 */
export async function createTopology(spec: TopologySpec): Promise<Topology> {
  validate(spec);
  const topology = new NetnsTopology(spec);
  try {
    await topology.build();
  } catch (err) {
    await topology.destroy();
    throw err;
  }
  return topology;
}

class NetnsTopology implements Topology {
  readonly prefix: string;
  readonly nodes: readonly NodeSpec[];
  readonly pods: readonly PodSpec[];
  readonly uplinkName: string;
  private readonly prefixLength: number;
  private readonly log: (message: string) => void;
  /** Namespaces created so far, in creation order. */
  private readonly created: string[] = [];
  private readonly children = new Set<SpawnedChild>();
  private destroying: Promise<void> | undefined;

  constructor(spec: TopologySpec) {
    this.prefix = spec.prefix;
    this.nodes = spec.nodes.map((n) => ({ ...n }));
    this.pods = spec.pods.map((p) => ({ ...p }));
    this.uplinkName = spec.uplinkName ?? 'up0';
    this.prefixLength = spec.uplinkPrefixLength ?? 24;
    this.log = spec.log ?? (() => {});
  }

  private known(name: string): void {
    if (!this.nodes.some((n) => n.name === name) && !this.pods.some((p) => p.name === name) && name !== 'sw') {
      throw new AmeshError('AMESH_CONFIG_INVALID', `topology ${this.prefix}: no node or pod named ${JSON.stringify(name)}`);
    }
  }

  netnsName(name: string): string {
    this.known(name);
    return netnsFor(this.prefix, name);
  }

  netnsPath(name: string): string {
    return `${NETNS_DIR}/${this.netnsName(name)}`;
  }

  private pod(name: string): PodSpec {
    const pod = this.pods.find((p) => p.name === name);
    if (!pod) throw new AmeshError('AMESH_CONFIG_INVALID', `topology ${this.prefix}: no pod named ${JSON.stringify(name)}`);
    return pod;
  }

  podIp(pod: string): string {
    return this.pod(pod).ip;
  }

  hostVeth(pod: string): string {
    return hostVethName(this.pod(pod).name);
  }

  exec(ns: string, argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return run(['nsenter', `--net=${this.netnsPath(ns)}`, '--', ...argv], { ...options, where: `netns ${this.netnsName(ns)}` });
  }

  spawn(ns: string, argv: string[], options: SpawnOptions = {}): SpawnedProcess {
    if (this.destroying) throw new AmeshError('AMESH_COMMAND_FAILED', `topology ${this.prefix} is being destroyed; cannot start ${describeArgv(argv)}`);
    const fds: number[] = [];
    const output = (file: string | undefined): number | 'pipe' => {
      if (!file) return 'pipe';
      const fd = openSync(file, 'a');
      fds.push(fd);
      return fd;
    };
    try {
      const fullArgv = ['nsenter', `--net=${this.netnsPath(ns)}`, '--', ...argv];
      const child = spawnChild(fullArgv[0] as string, fullArgv.slice(1), {
        stdio: [options.stdin ? 'pipe' : 'ignore', output(options.stdoutFile), output(options.stderrFile)],
        env: options.replaceEnv ? (options.env ?? {}) : { ...process.env, ...options.env },
      });
      child.once('error', (err) => this.log(`could not start \`${describeArgv(argv)}\` in ${this.netnsName(ns)}: ${err.message}`));
      // nsenter --net execs the program in place, so this pid is the program's own.
      const handle = new SpawnedChild(child, this.netnsName(ns), argv);
      child.stdin?.on('error', () => {
        // a program that exits early closes its stdin; its exit status reports the problem
      });
      this.children.add(handle);
      void handle.exited.then(() => this.children.delete(handle));
      this.log(`started pid ${handle.pid} in ${this.netnsName(ns)}: ${describeArgv(argv)}`);
      return handle;
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }

  /** Run a command inside a namespace we created, for building it. */
  private async ip(ns: string, ...args: string[]): Promise<void> {
    await run(['nsenter', `--net=${NETNS_DIR}/${ns}`, '--', 'ip', ...args], { where: `netns ${ns}`, timeoutMs: 15_000 });
  }

  private async sysctl(ns: string, settings: Record<string, string | number>): Promise<void> {
    const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
    await run(['nsenter', `--net=${NETNS_DIR}/${ns}`, '--', 'sysctl', '-q', '-w', ...args], { where: `netns ${ns}`, timeoutMs: 15_000 });
  }

  private async addNetns(ns: string): Promise<void> {
    this.log(`creating netns ${ns}`);
    await run(['ip', 'netns', 'add', ns], { where: 'host', timeoutMs: 15_000 });
    this.created.push(ns);
    await this.ip(ns, 'link', 'set', 'lo', 'up');
  }

  private async macOf(ns: string, dev: string): Promise<string> {
    const { stdout } = await run(['nsenter', `--net=${NETNS_DIR}/${ns}`, '--', 'ip', '-j', 'link', 'show', 'dev', dev], { where: `netns ${ns}` });
    const mac = (JSON.parse(stdout) as Array<{ address?: string }>)[0]?.address;
    if (!mac) throw new AmeshError('AMESH_COMMAND_FAILED', `netns ${ns}: no MAC address on ${dev}`);
    return mac;
  }

  async build(): Promise<void> {
    const nodeNs = (name: string): string => netnsFor(this.prefix, name);
    for (const node of this.nodes) {
      const ns = nodeNs(node.name);
      await this.addNetns(ns);
      // `default` first so every interface created later inherits rp_filter=0.
      await this.sysctl(ns, {
        'net.ipv4.ip_forward': 1,
        'net.ipv4.conf.all.rp_filter': 0,
        'net.ipv4.conf.default.rp_filter': 0,
        'net.ipv4.conf.lo.rp_filter': 0,
      });
    }

    // Uplinks: both veth ends are created directly inside the node namespaces.
    const up = this.uplinkName;
    const [first, second] = this.nodes;
    if (this.nodes.length === 2 && first && second) {
      this.log(`linking ${nodeNs(first.name)}/${up} <-> ${nodeNs(second.name)}/${up}`);
      await this.ip(nodeNs(first.name), 'link', 'add', up, 'type', 'veth', 'peer', 'name', up, 'netns', nodeNs(second.name));
    } else if (this.nodes.length > 2) {
      const sw = `${this.prefix}-sw`;
      await this.addNetns(sw);
      await this.ip(sw, 'link', 'add', 'br0', 'type', 'bridge');
      await this.ip(sw, 'link', 'set', 'br0', 'up');
      for (const [i, node] of this.nodes.entries()) {
        const port = `p${i}`;
        this.log(`linking ${nodeNs(node.name)}/${up} to switch ${sw} port ${port}`);
        await this.ip(sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', up, 'netns', nodeNs(node.name));
        await this.ip(sw, 'link', 'set', port, 'master', 'br0', 'up');
      }
    }
    for (const node of this.nodes) {
      const ns = nodeNs(node.name);
      if (this.nodes.length > 1) {
        await this.sysctl(ns, { [`net.ipv4.conf.${up}.rp_filter`]: 0 });
        await this.ip(ns, 'addr', 'add', `${node.uplinkIp}/${this.prefixLength}`, 'dev', up);
        await this.ip(ns, 'link', 'set', up, 'up');
      }
      for (const other of this.nodes) {
        if (other !== node) await this.ip(ns, 'route', 'add', other.podCidr, 'via', other.uplinkIp, 'dev', up);
      }
    }

    for (const pod of this.pods) {
      const ns = netnsFor(this.prefix, pod.name);
      const node = nodeNs(pod.node);
      const veth = hostVethName(pod.name);
      await this.addNetns(ns);
      this.log(`wiring pod ${pod.name} (${pod.ip}) to ${node}/${veth}`);
      await this.ip(node, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await this.sysctl(node, { [`net.ipv4.conf.${veth}.proxy_arp`]: 1, [`net.ipv4.conf.${veth}.rp_filter`]: 0 });
      await this.ip(node, 'link', 'set', veth, 'up');
      await this.ip(node, 'route', 'add', `${pod.ip}/32`, 'dev', veth);
      await this.ip(ns, 'addr', 'add', `${pod.ip}/32`, 'dev', 'eth0');
      await this.ip(ns, 'link', 'set', 'eth0', 'up');
      await this.ip(ns, 'route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0', 'onlink');
      await this.ip(ns, 'neigh', 'replace', POD_GATEWAY, 'lladdr', await this.macOf(node, veth), 'dev', 'eth0', 'nud', 'permanent');
    }
    this.log(`topology ${this.prefix} ready: ${this.nodes.length} nodes, ${this.pods.length} pods`);
  }

  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  async stopAll(): Promise<void> {
    const stops = [...this.children].map(async (child) => {
      try {
        const status = await child.stop();
        this.log(`stopped pid ${child.pid} (${status.signal ?? `exit ${status.code}`})`);
      } catch (err) {
        this.log(`could not stop pid ${child.pid}: ${(err as Error).message}`);
      }
    });
    await Promise.all(stops);
  }

  private async teardown(): Promise<void> {
    await this.stopAll();
    // Pods before nodes: deleting a pod namespace removes its veth pair from the node too.
    for (const ns of [...this.created].reverse()) {
      try {
        const { stdout } = await run(['ip', 'netns', 'pids', ns], { where: 'host', allowFailure: true, timeoutMs: 10_000 });
        const leftover = stdout.split('\n').filter(Boolean);
        if (leftover.length) this.log(`warning: processes not started by this topology still run in ${ns}: pids ${leftover.join(', ')}; the namespace lives until they exit`);
        await run(['ip', 'netns', 'delete', ns], { where: 'host', timeoutMs: 15_000 });
        this.log(`deleted netns ${ns}`);
      } catch (err) {
        this.log(`could not delete netns ${ns}: ${(err as Error).message}`);
      }
    }
    this.created.length = 0;
  }
}
