/**
 * eBPF capture (DESIGN §2): one tc ingress program on every pod veth and uplink, fed by two
 * pinned maps (enrolled pod IPs, exempt prefixes). Maps are pinned under the node's pin root,
 * so enrolment survives an agent restart; filters use a fixed handle/priority and are
 * replaced, never duplicated. On close the program stays attached (fail closed).
 *
 * tc ingress runs before netfilter, so it sees a Service address, not the pod a DNAT in this
 * netns then picks: a plaintext SYN from an unenrolled local pod to a ClusterIP backed by a local
 * enrolled pod would pass it and be forwarded to the pod's veth uncaptured. The `serviceDnat`
 * backend (nftables, scope `service-dnat`) catches exactly those after the DNAT; it is applied
 * with the same targets right after the pod map and removed with the rest.
 */
import { rm } from 'node:fs/promises';
import type { Logger } from '../../telemetry/logger.js';
import type { LoadedBpfObject, NativeBinding } from '../../native/types.js';
import {
  BPF_MAP_NAMES,
  BPF_PROGRAM_NAME,
  POD_FLAG_ENROLLED,
  REASON_COUNTER_SIZE,
  REASON_NAMES,
  decodeAddressKey,
  decodeLpmKey,
  encodeAddressKey,
  encodeLpmKey,
  encodeRodata,
  listenerKey,
  SK_LOOKUP_PROGRAM_NAME,
} from './bpf-contract.js';
import type { ApplyOptions, CaptureBackend, CaptureListener, CapturePorts, CaptureRepair, CaptureStatus, CaptureTargets, InspectOptions } from './capture-backend.js';
import type { CommandRunner } from '../../os/command.js';
import { listLinks } from './interfaces.js';
import { AmeshError, describeError } from '../../errors/amesh-error.js';

/** Fixed tc filter identity; chosen away from 1 (Cilium's) and the kernel's auto values. */
export const TC_HANDLE = 0xa3e5;
export const TC_PRIORITY = 0x3a3;

export interface EbpfCaptureOptions {
  native: NativeBinding;
  commands: CommandRunner;
  logger: Logger;
  objectPath: string;
  pinRoot: string;
  captureMark: number;
  listenerMark: number;
  failOpen: boolean;
  ports: CapturePorts;
  /** Post-DNAT capture of the same enrolled pods (see the header); applied on every apply. */
  serviceDnat: Pick<CaptureBackend, 'apply' | 'uninstall' | 'inspect'>;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/**
 * Attempts at loading the object. The verifier gives up with EAGAIN when a signal reaches the
 * loading thread (a CPU profiler's SIGPROF, a debugger); libbpf retries that only a few times
 * within one load, and in `auto` mode the agent would then fall back to nftables for its whole
 * life. Any other failure is final at once.
 */
export const BPF_LOAD_ATTEMPTS = 4;

export function loadRetryingEagain<T>(load: () => T, attempts = BPF_LOAD_ATTEMPTS): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return load();
    } catch (err) {
      if (attempt >= attempts || (err as { code?: unknown } | null)?.code !== 'EAGAIN') throw err;
    }
  }
}

export class EbpfCapture implements CaptureBackend {
  readonly mode = 'ebpf' as const;
  private object: LoadedBpfObject | undefined;
  private attached = new Set<string>();
  /** The sk_lookup link's fd (closing it detaches the program). */
  private skLookupLink: number | undefined;
  private enrolledCount = 0;
  /** Enrolled IPs and exempt prefixes of the last successful post-DNAT apply. */
  private serviceDnatApplied: string | undefined;

  private constructor(private readonly opts: EbpfCaptureOptions) {}

  /** Loads the program (reusing pinned maps). Throws when eBPF cannot be used here. */
  static load(opts: EbpfCaptureOptions): EbpfCapture {
    const capture = new EbpfCapture(opts);
    capture.object = loadRetryingEagain(() => opts.native.loadObject({
      path: opts.objectPath,
      pinRoot: opts.pinRoot,
      rodata: encodeRodata({
        captureMark: opts.captureMark,
        listenerMark: opts.listenerMark,
        outboundPort: opts.ports.outbound,
        inboundPlaintextPort: opts.ports.inboundPlaintext,
        hbonePort: opts.ports.hbone,
        failOpen: opts.failOpen,
      }),
    }));
    return capture;
  }

  private map(name: string) {
    const m = this.object?.maps.find((x) => x.name === name);
    if (!m) throw new AmeshError('AMESH_CAPTURE_FAILED', `BPF object ${this.opts.objectPath} has no map ${name}`);
    return m;
  }

  private programFd(): number {
    const p = this.object?.programs.find((x) => x.name === BPF_PROGRAM_NAME);
    if (!p) throw new AmeshError('AMESH_CAPTURE_FAILED', `BPF object ${this.opts.objectPath} has no program ${BPF_PROGRAM_NAME}`);
    return p.fd;
  }

  /** Attach to one interface now (used at start-up to prove eBPF works here). */
  attach(ifname: string): void {
    const { native } = this.opts;
    const ifindex = native.ifNameToIndex(ifname);
    native.tcAttachIngress(ifindex, this.programFd(), TC_HANDLE, TC_PRIORITY);
    this.attached.add(ifname);
  }

  async apply(targets: CaptureTargets, options: ApplyOptions = {}): Promise<void> {
    const { native, logger } = this.opts;
    // 1. Exempt prefixes first, so a new pod entry never captures node-local traffic.
    this.syncMap(BPF_MAP_NAMES.exempt, new Map(targets.exemptCidrs.map((c) => [encodeLpmKey(c).toString('hex'), u32(1)])));
    // 2. Program on every wanted interface (replace keeps an existing filter's slot).
    const progFd = this.programFd();
    const wanted = new Set(targets.interfaces);
    for (const name of wanted) {
      let ifindex: number;
      try {
        ifindex = native.ifNameToIndex(name);
      } catch {
        logger.warn({ interface: name }, 'capture: interface vanished before attach');
        continue;
      }
      native.tcAttachIngress(ifindex, progFd, TC_HANDLE, TC_PRIORITY);
      if (!this.attached.has(name)) logger.info({ interface: name, ifindex }, 'capture: eBPF program attached');
      this.attached.add(name);
    }
    // 3. Detach from interfaces no longer wanted, including ones an earlier run attached.
    for (const link of await listLinks(this.opts.commands)) {
      if (wanted.has(link.name) || link.name === 'lo') continue;
      if (hasOurFilter(native, link.ifindex)) {
        native.tcDetachIngress(link.ifindex, TC_HANDLE, TC_PRIORITY);
        logger.info({ interface: link.name }, 'capture: eBPF program detached');
      }
      this.attached.delete(link.name);
    }
    // 4. Enrolled pods last: by now listeners and filters are in place.
    this.syncMap(BPF_MAP_NAMES.pods, new Map(targets.enrolledIps.map((ip) => [encodeAddressKey(ip).toString('hex'), u32(POD_FLAG_ENROLLED)])));
    this.enrolledCount = targets.enrolledIps.length;
    // 5. The same pods behind a Service DNAT, which the program cannot see. Its rules do not
    //    depend on the interfaces, so a link pass (a veth recreated) skips the nft transaction
    //    when enrolment and exemptions are what the last successful one installed.
    const dnatKey = JSON.stringify([targets.enrolledIps, targets.exemptCidrs]);
    if (options.linkPass && dnatKey === this.serviceDnatApplied) return;
    try {
      await this.opts.serviceDnat.apply(targets);
      this.serviceDnatApplied = dnatKey;
    } catch (err) {
      throw new AmeshError('AMESH_CAPTURE_FAILED', 'cannot install the nftables rules that capture Service (DNAT) traffic to enrolled pods', {
        cause: err,
        hint: 'the eBPF capture needs nft with the nft_tproxy, nft_socket and nf_conntrack modules for this; without them a plaintext client on the same node reaches enrolled pods through their Service address',
      });
    }
  }

  /**
   * The differences between the kernel and `targets`, changing nothing: pinned map entries
   * missing or stale, our tc filter missing on a wanted interface or left on an unwanted one, a
   * wanted interface that does not exist, and the post-DNAT nftables table. A filter running an
   * earlier run's program is not a difference (every start replaces it with the new load).
   */
  async inspect(targets: CaptureTargets, options: InspectOptions = {}): Promise<CaptureRepair[]> {
    const { native, pinRoot } = this.opts;
    const repairs: CaptureRepair[] = [];
    const mapDiff = (name: string, wanted: string[], encode: (v: string) => Buffer, decode: (b: Buffer) => string): void => {
      const m = this.map(name);
      const present = new Set(native.mapKeys(m.fd, m.keySize).map((k) => k.toString('hex')));
      const desired = new Map(wanted.map((v) => [encode(v).toString('hex'), v]));
      for (const [key, value] of desired) {
        if (!present.has(key)) repairs.push({ kind: 'map-entry', object: `${pinRoot}/${name} entry ${value}`, problem: 'missing', action: 'added' });
      }
      for (const key of present) {
        if (!desired.has(key)) repairs.push({ kind: 'map-entry', object: `${pinRoot}/${name} entry ${safeDecode(decode, key)}`, problem: 'stale (not wanted any more)', action: 'deleted' });
      }
    };
    mapDiff(BPF_MAP_NAMES.exempt, targets.exemptCidrs, encodeLpmKey, decodeLpmKey);
    mapDiff(BPF_MAP_NAMES.pods, targets.enrolledIps, encodeAddressKey, decodeAddressKey);
    const wanted = new Set(targets.interfaces);
    for (const name of wanted) {
      let ifindex: number;
      try {
        ifindex = native.ifNameToIndex(name);
      } catch {
        repairs.push({ kind: 'interface', object: `interface ${name}`, problem: 'wanted but absent', action: 'not captured until it appears (the link watcher re-applies then)' });
        continue;
      }
      if (!hasOurFilter(native, ifindex)) {
        repairs.push({ kind: 'tc-filter', object: `tc ingress filter handle 0x${TC_HANDLE.toString(16)} pref ${TC_PRIORITY} on ${name} (ifindex ${ifindex})`, problem: 'missing', action: 'attached' });
      }
    }
    for (const link of await listLinks(this.opts.commands)) {
      if (wanted.has(link.name) || link.name === 'lo' || !hasOurFilter(native, link.ifindex)) continue;
      repairs.push({ kind: 'tc-filter', object: `tc ingress filter handle 0x${TC_HANDLE.toString(16)} pref ${TC_PRIORITY} on ${link.name} (ifindex ${link.ifindex})`, problem: 'on an interface not captured any more', action: 'detached' });
    }
    repairs.push(...((await this.opts.serviceDnat.inspect?.(targets, options)) ?? []));
    return repairs;
  }

  /** Make a pinned map hold exactly `desired` (hex key → value), deleting stale keys. */
  private syncMap(name: string, desired: Map<string, Buffer>): void {
    const { native } = this.opts;
    const m = this.map(name);
    for (const key of native.mapKeys(m.fd, m.keySize)) {
      if (!desired.has(key.toString('hex'))) native.mapDelete(m.fd, key);
    }
    for (const [key, value] of desired) native.mapUpdate(m.fd, Buffer.from(key, 'hex'), value);
  }

  /**
   * Packets per reason since the program was first loaded (the pinned per-CPU `amesh_reasons`
   * map, summed over CPUs; pinned, so it survives agent restarts). Every reason, zeros included.
   */
  reasonCounters(): Record<string, number> {
    const m = this.map(BPF_MAP_NAMES.reasons);
    const counters: Record<string, number> = {};
    for (const [codeText, name] of Object.entries(REASON_NAMES as Record<number, string>)) {
      const per = this.opts.native.mapLookupPerCpu(m.fd, u32(Number(codeText)), REASON_COUNTER_SIZE);
      counters[name] = (per ?? []).reduce((sum, b) => sum + Number(b.readBigUInt64LE(0)), 0);
    }
    return counters;
  }

  status(): CaptureStatus {
    const counters: Record<string, number> = {};
    try {
      for (const [name, total] of Object.entries(this.reasonCounters())) if (total) counters[name] = total;
    } catch {
      // counters are best effort; the status still says what is attached
    }
    return { mode: this.mode, interfaces: [...this.attached].sort(), enrolled: this.enrolledCount, counters };
  }

  /**
   * Fills amesh_listeners and attaches the sk_lookup program to this namespace (once). Without
   * it capture still works: a client reusing a port the agent holds in TIME_WAIT connects after
   * a reset and a SYN retransmission (2 jiffies) instead of at once.
   */
  useListeners(listeners: readonly CaptureListener[]): void {
    const { native, logger } = this.opts;
    const program = this.object?.programs.find((p) => p.name === SK_LOOKUP_PROGRAM_NAME);
    if (!program) return;
    try {
      const map = this.map(BPF_MAP_NAMES.listeners);
      for (const l of listeners) native.mapUpdate(map.fd, u32(listenerKey(l.kind, l.family)), u64(l.fd));
      if (this.skLookupLink === undefined) this.skLookupLink = native.netnsAttachSkLookup(program.fd);
      logger.info({ listeners: listeners.length }, 'capture: TIME_WAIT hand-over to the listeners attached (sk_lookup)');
    } catch (err) {
      logger.warn({ err: describeError(err) }, 'capture: TIME_WAIT hand-over (sk_lookup) unavailable; a client reusing a port the agent holds in TIME_WAIT connects after a SYN retransmission');
    }
  }

  async close(): Promise<void> {
    if (this.skLookupLink !== undefined) this.opts.native.closeFd(this.skLookupLink);
    this.skLookupLink = undefined;
    if (this.object) this.opts.native.closeObject(this.object.id);
    this.object = undefined;
  }

  async uninstall(): Promise<void> {
    const { native } = this.opts;
    await this.close();
    this.attached.clear();
    await uninstallEbpfLeftovers(native, this.opts.commands, this.opts.pinRoot);
    await this.opts.serviceDnat.uninstall();
  }
}

/** Remove what an eBPF capture of this node left, without loading the program. */
export async function uninstallEbpfLeftovers(native: NativeBinding, commands: CommandRunner, pinRoot: string): Promise<void> {
  for (const link of await listLinks(commands)) {
    if (!hasOurFilter(native, link.ifindex)) continue;
    native.tcDetachIngress(link.ifindex, TC_HANDLE, TC_PRIORITY);
    await removeEmptyClsact(commands, link.name);
  }
  await rm(pinRoot, { recursive: true, force: true });
}

/**
 * Uninstall leaves the node as it was before install: the clsact qdisc our attach created goes too.
 * Which qdisc we created is not recorded across processes, so the rule is: remove clsact only when,
 * after our filter is gone, neither direction holds any filter — a clsact another tool uses (it has
 * filters) is never touched (DESIGN §2: never destroy a clsact qdisc you did not create).
 */
async function removeEmptyClsact(commands: CommandRunner, link: string): Promise<void> {
  const shown = await Promise.all(['ingress', 'egress'].map((direction) => commands.run('tc', ['filter', 'show', 'dev', link, direction], { allowFailure: true })));
  if (shown.every((r) => r.code === 0 && r.stdout.trim() === '')) await commands.run('tc', ['qdisc', 'del', 'dev', link, 'clsact'], { allowFailure: true });
}

function safeDecode(decode: (b: Buffer) => string, hexKey: string): string {
  try {
    return decode(Buffer.from(hexKey, 'hex'));
  } catch {
    return `0x${hexKey}`;
  }
}

/** True when our filter is on the interface; an interface without clsact has none. */
function hasOurFilter(native: NativeBinding, ifindex: number): boolean {
  try {
    return native.tcQueryIngress(ifindex, TC_HANDLE, TC_PRIORITY) !== 0;
  } catch {
    return false;
  }
}
