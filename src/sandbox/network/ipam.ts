/**
 * Pod IP allocation inside one node's pod CIDR (host-local IPAM, like the CNI `host-local`
 * plugin). Pure and synchronous: the caller serialises nothing, two concurrent `addPod`s can
 * never get the same address.
 *
 * Invariants: the network address, the first host address (`.1`, reserved for a future node
 * gateway the way most CNIs keep it) and the broadcast address are never handed out; the lowest
 * free address is chosen so addresses are predictable in tests and logs; a requested address is
 * honoured when it is free and inside the CIDR (a restarted sandbox keeps each pod's IP).
 */
import { isIPv4 } from 'node:net';
import { AmeshError } from '../../errors/amesh-error.js';

export interface Ipv4Cidr {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  length: number;
}

export function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => (acc * 256 + Number(octet)) >>> 0, 0);
}

export function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

function maskOf(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

export function parseIpv4Cidr(cidr: string, what = 'CIDR'): Ipv4Cidr {
  const [addr, len, extra] = cidr.split('/');
  const length = Number(len);
  if (extra !== undefined || !addr || !isIPv4(addr) || len === '' || !Number.isInteger(length) || length < 0 || length > 32) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `${what}: ${JSON.stringify(cidr)} is not an IPv4 CIDR (a.b.c.d/len)`);
  }
  return { base: (ipv4ToInt(addr) & maskOf(length)) >>> 0, length };
}

export function cidrContains(cidr: Ipv4Cidr, ip: string): boolean {
  if (!isIPv4(ip)) return false;
  return ((ipv4ToInt(ip) & maskOf(cidr.length)) >>> 0) === cidr.base;
}

export class PodIpam {
  readonly cidr: string;
  private readonly parsed: Ipv4Cidr;
  private readonly first: number;
  private readonly last: number;
  private readonly inUse = new Set<number>();

  constructor(cidr: string) {
    this.cidr = cidr;
    this.parsed = parseIpv4Cidr(cidr, 'pod CIDR');
    if (this.parsed.length > 29) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `pod CIDR ${cidr} is too small: it needs at least /29 (network, .1 and broadcast are reserved)`);
    }
    this.first = this.parsed.base + 2;
    this.last = this.parsed.base + 2 ** (32 - this.parsed.length) - 2;
  }

  /** Whether `ip` is an address this allocator could hand out. */
  isAssignable(ip: string): boolean {
    if (!cidrContains(this.parsed, ip)) return false;
    const value = ipv4ToInt(ip);
    return value >= this.first && value <= this.last;
  }

  /**
   * The requested address when it is assignable and free, otherwise the lowest free address.
   * A requested address that is taken or outside the CIDR is not an error: the pod simply gets a
   * new IP (its old one may have been reused while the sandbox was down).
   */
  allocate(requested?: string): string {
    if (requested !== undefined && this.isAssignable(requested) && !this.inUse.has(ipv4ToInt(requested))) {
      this.inUse.add(ipv4ToInt(requested));
      return requested;
    }
    for (let value = this.first; value <= this.last; value++) {
      if (!this.inUse.has(value)) {
        this.inUse.add(value);
        return intToIpv4(value);
      }
    }
    throw new AmeshError('AMESH_SANDBOX_FAILED', `pod CIDR ${this.cidr} has no free address (${this.last - this.first + 1} in use)`, {
      hint: 'delete pods on this node or add a node to the sandbox',
    });
  }

  /** Record an address found already in use (a pod namespace adopted after a restart). */
  markUsed(ip: string): void {
    if (!this.isAssignable(ip)) throw new AmeshError('AMESH_SANDBOX_FAILED', `address ${ip} is not assignable in pod CIDR ${this.cidr}`);
    this.inUse.add(ipv4ToInt(ip));
  }

  release(ip: string): void {
    if (isIPv4(ip)) this.inUse.delete(ipv4ToInt(ip));
  }

  isUsed(ip: string): boolean {
    return isIPv4(ip) && this.inUse.has(ipv4ToInt(ip));
  }

  used(): string[] {
    return [...this.inUse].sort((a, b) => a - b).map(intToIpv4);
  }
}
