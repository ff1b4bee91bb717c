/**
 * What every capture implementation (eBPF, nftables TPROXY) offers the redirection manager.
 * `apply` is declarative and idempotent: it makes the kernel match `targets`, including
 * removing what an earlier run of the agent left that is no longer wanted.
 */
export type CaptureModeName = 'ebpf' | 'nftables' | 'none';

export interface CaptureTargets {
  /** IPs of ambient-enrolled pods on this node. */
  enrolledIps: string[];
  /** Interfaces to capture on: host-side veths of local pods and the uplinks. */
  interfaces: string[];
  /** Destinations never captured (node IPs, link-local, configured extras). */
  exemptCidrs: string[];
}

export interface CaptureStatus {
  mode: CaptureModeName;
  interfaces: string[];
  enrolled: number;
  /** Per-reason packet counters when the backend has them. */
  counters?: Record<string, number>;
}

/** What kind of kernel object a repair touched (a label of the repair counter). */
export type CaptureRepairKind = 'routing-rule' | 'routing-route' | 'map-entry' | 'tc-filter' | 'interface' | 'nft-table' | 'nft-chain' | 'nft-set';

/**
 * One difference between the kernel and the desired capture, found before `apply` fixes it:
 * which object (named so an operator can find it with ip/tc/bpftool/nft), what was wrong, and
 * what apply does about it.
 */
export interface CaptureRepair {
  kind: CaptureRepairKind;
  object: string;
  problem: string;
  action: string;
}

export interface InspectOptions {
  nftables?: boolean;
}

export interface ApplyOptions {
  /** Only links or routes changed since the last apply (a link pass): work that does not depend on interfaces may be skipped when its inputs did not change. */
  linkPass?: boolean;
}

export interface CaptureBackend {
  readonly mode: CaptureModeName;
  apply(targets: CaptureTargets, options?: ApplyOptions): Promise<void>;
  /**
   * Compare the kernel with `targets` without changing anything; `apply(targets)` then repairs
   * each difference. `nftables: false` skips the nft listing (a link pass only needs interfaces).
   */
  inspect?(targets: CaptureTargets, options?: InspectOptions): Promise<CaptureRepair[]>;
  status(): CaptureStatus;
  /** Packets per reason code name (eBPF: the `amesh_reasons` map); absent when the backend counts none (nftables). Throws when unreadable. */
  reasonCounters?(): Record<string, number>;
  /**
   * The agent's listening sockets, once they exist: the eBPF backend hands a SYN that meets one
   * of its TIME_WAIT sockets to the listener that took the tuple's previous flow (sk_lookup).
   */
  useListeners?(listeners: readonly CaptureListener[]): void;
  /** Let go of user-space handles, leaving capture in place (fail closed across restarts). */
  close(): Promise<void>;
  /** Remove every kernel object this node's capture installed. */
  uninstall(): Promise<void>;
}

/** One listening socket of the agent (a descriptor this process holds). */
export interface CaptureListener {
  kind: 'outbound' | 'inbound-plaintext' | 'hbone';
  family: 4 | 6;
  fd: number;
}

export interface CapturePorts {
  outbound: number;
  inboundPlaintext: number;
  hbone: number;
}
