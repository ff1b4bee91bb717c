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

export interface CaptureBackend {
  readonly mode: CaptureModeName;
  apply(targets: CaptureTargets): Promise<void>;
  status(): CaptureStatus;
  /** Packets per reason code name (eBPF: the `amesh_reasons` map); absent when the backend counts none (nftables). Throws when unreadable. */
  reasonCounters?(): Record<string, number>;
  /** Let go of user-space handles, leaving capture in place (fail closed across restarts). */
  close(): Promise<void>;
  /** Remove every kernel object this node's capture installed. */
  uninstall(): Promise<void>;
}

export interface CapturePorts {
  outbound: number;
  inboundPlaintext: number;
  hbone: number;
}
