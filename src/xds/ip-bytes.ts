/**
 * IP addresses as the workload API carries them (`bytes`: 4 for IPv4, 16 for IPv6) ↔ the strings
 * our mesh state uses. IPv6 text is RFC 5952 canonical (lower case, longest zero run as `::`), so
 * an address read from xDS compares equal to one written by Kubernetes. An IPv4-mapped IPv6
 * address stays 16 bytes (`::ffff:a.b.c.d`): the wire says it is IPv6, and we keep what it says.
 */
import { isIPv4, isIPv6 } from 'node:net';

function ipv4Bytes(text: string): number[] {
  return text.split('.').map(Number);
}

function ipv6Bytes(text: string): number[] {
  let body = text;
  // A trailing dotted quad (::ffff:1.2.3.4) becomes the two groups it stands for.
  const lastColon = body.lastIndexOf(':');
  if (body.indexOf('.', lastColon) !== -1) {
    const [a = 0, b = 0, c = 0, d = 0] = ipv4Bytes(body.slice(lastColon + 1));
    body = `${body.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = body.split('::');
  const parse = (part: string): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const headGroups = parse(head);
  const tailGroups = parse(tail ?? '');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<number>(8 - headGroups.length - tailGroups.length).fill(0), ...tailGroups];
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** 4 or 16 bytes of an IP address string; undefined when it is not one. */
export function ipToBytes(ip: string): Uint8Array | undefined {
  if (isIPv4(ip)) return Uint8Array.from(ipv4Bytes(ip));
  if (isIPv6(ip) && !ip.includes('%')) {
    const bytes = ipv6Bytes(ip);
    return bytes.length === 16 ? Uint8Array.from(bytes) : undefined;
  }
  return undefined;
}

/** The canonical string of 4 or 16 address bytes; undefined for any other length. */
export function bytesToIp(bytes: Uint8Array): string | undefined {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) return undefined;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`;
  // RFC 5952 §4.2: compress the longest run (≥ 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
