/**
 * ClusterIP allocation from the service CIDR. The allocator keeps no state of its own beyond
 * the write in progress: what is in use is derived from the stored Services each time, so
 * allocations survive snapshots and a failed write releases its address automatically.
 * Allocation is lowest-free rather than random (kube-apiserver picks randomly) so sandbox
 * addresses are predictable run to run.
 */
import { ApiError } from './types.js';

export const SERVICE_CIDR = '10.96.0.0/16';
/** `kubernetes.default` and the cluster DNS: only ever assigned by explicit request. */
export const RESERVED_CLUSTER_IPS = ['10.96.0.1', '10.96.0.10'];

const BASE = (10 << 24) | (96 << 16);
const SIZE = 1 << 16;

function toIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isInServiceCidr(ip: string): boolean {
  return /^10\.96\.(\d{1,3})\.(\d{1,3})$/.test(ip) && ip.split('.').every((o) => Number(o) <= 255);
}

export interface ClusterIpAllocator {
  allocate(): string;
  release(ip: string): void;
  isInUse(ip: string): boolean;
  /** Forget addresses handed out during the write that just finished (stored or not). */
  endWrite(): void;
}

/** `inUse` lists the ClusterIPs of the stored Services. */
export function createClusterIpAllocator(inUse: () => Iterable<string>): ClusterIpAllocator {
  const pending = new Set<string>();
  const used = (): Set<string> => new Set([...inUse(), ...pending]);
  return {
    allocate(): string {
      const taken = used();
      // Skip the network address (.0.0) and the broadcast address (.255.255).
      for (let offset = 2; offset < SIZE - 1; offset++) {
        const ip = toIp(BASE + offset);
        if (taken.has(ip) || RESERVED_CLUSTER_IPS.includes(ip)) continue;
        pending.add(ip);
        return ip;
      }
      throw new ApiError(500, 'InternalError', `Internal error occurred: failed to allocate a serviceIP: the service CIDR ${SERVICE_CIDR} is full; delete unused Services`);
    },
    release(ip: string): void {
      pending.delete(ip);
    },
    isInUse(ip: string): boolean {
      return used().has(ip);
    },
    endWrite(): void {
      pending.clear();
    },
  };
}
