/**
 * Istio's value syntax for AuthorizationPolicy fields, compiled once per config into predicates.
 * https://istio.io/latest/docs/reference/config/security/authorization-policy/
 *
 * - Strings: `*` = present (non-empty), `prefix*`, `*suffix`, else exact.
 * - Hosts: the same, case-insensitive (RFC 4343; Istio's CVE-2021-39155); a value without a
 *   port also matches the Host header with any port (`backend` matches `backend:8080`), a value
 *   with a port only that port.
 * - Paths: the same, plus Istio's templates `{*}` (one segment) and `{**}` (the rest); the query
 *   is never part of the path.
 * - IPs: CIDRs or plain addresses (/32, /128), IPv4 and IPv6; IPv4-mapped IPv6 addresses
 *   (`::ffff:10.0.0.1`) count as IPv4. Node's BlockList does the prefix arithmetic.
 * - Ports: decimal numbers.
 * A value that cannot be parsed (a bad CIDR) matches nothing; the translator reports such
 * values on the policy's status, so the engine never meets them from the controller.
 */
import { BlockList, isIP } from 'node:net';

export type ValueMatcher = (value: string) => boolean;

/** One Istio string value; `fold` lower-cases both sides. */
export function stringMatcher(pattern: string, fold = false): ValueMatcher {
  const p = fold ? pattern.toLowerCase() : pattern;
  const norm = fold ? (v: string): string => v.toLowerCase() : (v: string): string => v;
  if (p === '*') return (v) => v.length > 0;
  if (p.length > 1 && p.endsWith('*')) {
    const prefix = p.slice(0, -1);
    return (v) => norm(v).startsWith(prefix);
  }
  if (p.length > 1 && p.startsWith('*')) {
    const suffix = p.slice(1);
    return (v) => norm(v).endsWith(suffix);
  }
  return (v) => norm(v) === p;
}

/** Any of the patterns (an empty list matches nothing). */
export function anyOf(patterns: readonly string[], make: (pattern: string) => ValueMatcher): ValueMatcher {
  const matchers = patterns.map(make);
  if (matchers.length === 1) return matchers[0] as ValueMatcher;
  return (v) => matchers.some((m) => m(v));
}

/** `host`, `host:port`, `[v6]:port` → the host without port ('' port when none). */
export function splitHostPort(host: string): { name: string; port: string } {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end > 0) return { name: host.slice(1, end), port: host.slice(end + 1).replace(/^:/, '') };
  }
  const colon = host.lastIndexOf(':');
  // Two colons or more without brackets: a bare IPv6 address, no port.
  if (colon > 0 && host.indexOf(':') === colon && /^\d+$/.test(host.slice(colon + 1))) return { name: host.slice(0, colon), port: host.slice(colon + 1) };
  return { name: host, port: '' };
}

export function hostMatcher(pattern: string): ValueMatcher {
  const full = stringMatcher(pattern, true);
  return (host) => {
    if (full(host)) return true;
    const { name, port } = splitHostPort(host);
    return port !== '' && full(name);
  };
}

/** Istio path templates: `{*}` one segment, `{**}` anything to the end. */
export function pathMatcher(pattern: string): ValueMatcher {
  if (pattern.includes('{*}') || pattern.includes('{**}')) {
    const source = pattern
      .split(/(\{\*\*\}|\{\*\})/)
      .map((part) => (part === '{**}' ? '.*' : part === '{*}' ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    const re = new RegExp(`^${source}$`);
    return (path) => re.test(stripQuery(path));
  }
  const m = stringMatcher(pattern);
  return (path) => m(stripQuery(path));
}

export function stripQuery(path: string): string {
  const q = path.search(/[?#]/);
  return q < 0 ? path : path.slice(0, q);
}

/** `::ffff:10.0.0.1` → `10.0.0.1`; anything else unchanged (zone ids dropped). */
export function normaliseIp(ip: string): string {
  const bare = ip.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare);
  return mapped ? (mapped[1] as string) : bare;
}

/** Parses a CIDR or address; undefined when it is neither. */
export function parseCidr(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [raw = '', bits, extra] = value.trim().split('/');
  if (extra !== undefined) return undefined;
  const address = normaliseIp(raw);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Any of the CIDRs; values that do not parse are left out (they match nothing). */
export function ipMatcher(cidrs: readonly string[]): ValueMatcher {
  const list = new BlockList();
  let count = 0;
  for (const cidr of cidrs) {
    const parsed = parseCidr(cidr);
    if (!parsed) continue;
    list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    count++;
  }
  if (count === 0) return () => false;
  return (ip) => {
    const address = normaliseIp(ip);
    const version = isIP(address);
    return version !== 0 && list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/** Ports are exact numbers; `*` is any port. */
export function portMatcher(pattern: string): ValueMatcher {
  if (pattern === '*') return (v) => v.length > 0;
  const n = /^\d{1,5}$/.test(pattern.trim()) ? Number(pattern.trim()) : NaN;
  if (!(n >= 1 && n <= 65535)) return () => false;
  const want = String(n);
  return (v) => v === want;
}
