/**
 * TypeScript mirror of bpf/lib/capture.h (map names, key/value layouts, reason codes) and of
 * the load-time knobs (`const volatile` globals) of bpf/capture.bpf.c. The header is the
 * source of truth; test/unit/bpf-contract.test.ts parses it and fails when the two drift.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BPF_PROGRAM_NAME = 'amesh_capture';
/** The sk_lookup program (a SYN meeting one of the agent's TIME_WAIT sockets goes to a listener). */
export const SK_LOOKUP_PROGRAM_NAME = 'amesh_tw_syn';

export const BPF_MAP_NAMES = {
  pods: 'amesh_pods',
  exempt: 'amesh_exempt',
  reasons: 'amesh_reasons',
  flows: 'amesh_flows',
  listeners: 'amesh_listeners',
} as const;

/** Maps the agent fills after each load instead of pinning (a sockmap holds the listeners, not their fds). */
export const UNPINNED_MAP_NAMES: ReadonlySet<string> = new Set([BPF_MAP_NAMES.listeners]);

/** amesh_listeners: the key of a listener kind, 2 × kind + 1 for IPv6. */
export const LISTENER_KINDS = { outbound: 0, 'inbound-plaintext': 1, hbone: 2 } as const;
export const LISTENERS_MAX_ENTRIES = 6;
export function listenerKey(kind: keyof typeof LISTENER_KINDS, family: 4 | 6): number {
  return 2 * LISTENER_KINDS[kind] + (family === 6 ? 1 : 0);
}

export const PODS_MAX_ENTRIES = 65536;
export const EXEMPT_MAX_ENTRIES = 1024;
export const FLOWS_MAX_ENTRIES = 32768;

/** Bytes of an address key (IPv4 stored IPv4-mapped). */
export const ADDRESS_KEY_SIZE = 16;
/** `struct amesh_lpm_key`: __u32 prefixlen + 16 address bytes. */
export const LPM_KEY_SIZE = 4 + ADDRESS_KEY_SIZE;
/** `struct amesh_flow_key`: source and destination address, source and destination port (network order). */
export const FLOW_KEY_SIZE = 2 * ADDRESS_KEY_SIZE + 4;
/** `struct amesh_pod_value` / `struct amesh_exempt_value` / `struct amesh_flow_value`: one __u32. */
export const MAP_VALUE_SIZE = 4;
/** amesh_reasons value: one __u64 counter per CPU. */
export const REASON_COUNTER_SIZE = 8;

export const POD_FLAG_ENROLLED = 1 << 0;

export const DEFAULT_CAPTURE_MARK = 0x111;
export const DEFAULT_LISTENER_MARK = 0x539;
/** Defaults of the listener-port knobs (DESIGN §3). */
export const DEFAULT_PORTS = { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 } as const;

/** `enum amesh_reason`, without the AMESH_REASON_ prefix. */
export const REASON = {
  NONE: 0,
  PASS_NOT_IP: 1,
  PASS_NOT_TCP: 2,
  PASS_MALFORMED: 3,
  ASSIGN_ESTABLISHED: 4,
  PASS_NOT_SYN: 5,
  PASS_EXEMPT: 6,
  PASS_NOT_ENROLLED: 7,
  REDIRECT_OUTBOUND: 8,
  REDIRECT_INBOUND_PLAINTEXT: 9,
  REDIRECT_INBOUND_HBONE: 10,
  DROP_NO_LISTENER: 11,
  DROP_LISTENER_MARK: 12,
  DROP_ASSIGN_FAILED: 13,
  PASS_FAIL_OPEN: 14,
  MAX: 15,
} as const;

export type ReasonName = Exclude<keyof typeof REASON, 'MAX'>;

/** Code → name for every real reason (NONE and MAX excluded: never counted). */
export const REASON_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(REASON)
    .filter(([name]) => name !== 'MAX' && name !== 'NONE')
    .map(([name, code]) => [code, name]),
);

/**
 * The `const volatile` knobs of capture.bpf.c: C symbol name and size in bytes. The addon
 * checks each size against BTF before writing, so a mismatch fails the load, not the packet.
 */
export const RODATA_LAYOUT = {
  capture_mark: 4,
  listener_mark: 4,
  outbound_port: 2,
  inbound_plaintext_port: 2,
  hbone_port: 2,
  fail_open: 1,
} as const;

export interface CaptureRodata {
  captureMark: number;
  listenerMark: number;
  outboundPort: number;
  inboundPlaintextPort: number;
  hbonePort: number;
  failOpen: boolean;
}

function uint(name: string, value: number, bytes: 1 | 2 | 4): Buffer {
  const max = 2 ** (bytes * 8) - 1;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer in 0..${max}, got ${value}`);
  }
  const b = Buffer.alloc(bytes);
  b.writeUIntLE(value, 0, bytes);
  return b;
}

/** Raw little-endian bytes for each knob, by C symbol name (LoadObjectOptions.rodata). */
export function encodeRodata(cfg: CaptureRodata): Record<string, Buffer> {
  return {
    capture_mark: uint('captureMark', cfg.captureMark, RODATA_LAYOUT.capture_mark),
    listener_mark: uint('listenerMark', cfg.listenerMark, RODATA_LAYOUT.listener_mark),
    outbound_port: uint('outboundPort', cfg.outboundPort, RODATA_LAYOUT.outbound_port),
    inbound_plaintext_port: uint('inboundPlaintextPort', cfg.inboundPlaintextPort, RODATA_LAYOUT.inbound_plaintext_port),
    hbone_port: uint('hbonePort', cfg.hbonePort, RODATA_LAYOUT.hbone_port),
    fail_open: uint('failOpen', cfg.failOpen ? 1 : 0, RODATA_LAYOUT.fail_open),
  };
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function parseIpv4(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

function parseIpv6(ip: string): Buffer {
  let text = ip;
  const out = Buffer.alloc(16);
  // Trailing dotted quad (::ffff:1.2.3.4): turn into two hextets.
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) !== -1) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  parts.forEach((p, i) => out.writeUInt16BE(parseInt(p, 16), i * 2));
  return out;
}

/** 16-byte key for an IPv4 or IPv6 address string; IPv4 becomes ::ffff:a.b.c.d. */
export function encodeAddressKey(ip: string): Buffer {
  const family = isIP(ip);
  if (family === 4) return Buffer.concat([V4_MAPPED_PREFIX, parseIpv4(ip)]);
  if (family === 6) return parseIpv6(ip);
  throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
}

function isV4Mapped(addr: Buffer): boolean {
  return addr.subarray(0, 12).equals(V4_MAPPED_PREFIX);
}

/** Inverse of encodeAddressKey: IPv4-mapped keys come back as dotted quads. */
export function decodeAddressKey(buf: Buffer): string {
  if (buf.length !== ADDRESS_KEY_SIZE) throw new RangeError(`address key must be ${ADDRESS_KEY_SIZE} bytes, got ${buf.length}`);
  if (isV4Mapped(buf)) return [...buf.subarray(12)].join('.');
  const hextets: string[] = [];
  for (let i = 0; i < 16; i += 2) hextets.push(buf.readUInt16BE(i).toString(16));
  // RFC 5952: compress the longest run (length >= 2) of zero hextets.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (bestLen < 2) return hextets.join(':');
  return `${hextets.slice(0, best).join(':')}::${hextets.slice(best + bestLen).join(':')}`;
}

/** amesh_flows key of the segments travelling source → destination (both addresses of one family). */
export function encodeFlowKey(source: { ip: string; port: number }, destination: { ip: string; port: number }): Buffer {
  const key = Buffer.alloc(FLOW_KEY_SIZE);
  encodeAddressKey(source.ip).copy(key, 0);
  encodeAddressKey(destination.ip).copy(key, ADDRESS_KEY_SIZE);
  if (isIP(source.ip) !== isIP(destination.ip)) throw new TypeError(`flow ${source.ip} → ${destination.ip} mixes address families`);
  // Range-checked like the rodata knobs, then stored in network order as the packet carries them.
  uint('source port', source.port, 2);
  uint('destination port', destination.port, 2);
  key.writeUInt16BE(source.port, 2 * ADDRESS_KEY_SIZE);
  key.writeUInt16BE(destination.port, 2 * ADDRESS_KEY_SIZE + 2);
  return key;
}

/** LPM trie key for a CIDR ("10.0.0.0/8", "fe80::/10", or a bare address = host route). */
export function encodeLpmKey(cidr: string): Buffer {
  const slash = cidr.indexOf('/');
  const ip = slash === -1 ? cidr : cidr.slice(0, slash);
  const family = isIP(ip);
  if (family === 0) throw new TypeError(`not a CIDR: ${JSON.stringify(cidr)}`);
  const max = family === 4 ? 32 : 128;
  const lenText = slash === -1 ? String(max) : cidr.slice(slash + 1);
  const len = Number(lenText);
  if (!/^\d+$/.test(lenText) || len > max) throw new TypeError(`bad prefix length in ${JSON.stringify(cidr)}`);
  const key = Buffer.alloc(LPM_KEY_SIZE);
  key.writeUInt32LE(family === 4 ? len + 96 : len, 0);
  encodeAddressKey(ip).copy(key, 4);
  return key;
}

/** Inverse of encodeLpmKey; IPv4-mapped prefixes of length >= 96 come back as IPv4 CIDRs. */
export function decodeLpmKey(buf: Buffer): string {
  if (buf.length !== LPM_KEY_SIZE) throw new RangeError(`LPM key must be ${LPM_KEY_SIZE} bytes, got ${buf.length}`);
  const len = buf.readUInt32LE(0);
  const addr = buf.subarray(4);
  if (isV4Mapped(addr) && len >= 96) return `${decodeAddressKey(addr)}/${len - 96}`;
  const text = decodeAddressKey(addr);
  return `${text.includes('.') ? `::ffff:${text}` : text}/${len}`;
}

let root: string | undefined;

/** The package root (nearest ancestor with package.json): src/ under vitest, dist/src/ built. */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'amesh') return (root = dir);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the amesh package root above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Absolute path of the compiled capture program (scripts/build-bpf.sh writes it). */
export function bpfObjectPath(): string {
  return path.join(packageRoot(), 'bpf', 'build', 'capture.bpf.o');
}
