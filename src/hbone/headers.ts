/**
 * The HBONE request headers, built and parsed exactly as Istio's ztunnel does (DESIGN §4):
 *   :authority  `ip:port`, IPv6 as `[addr]:port` (or `hostname:port`)
 *   forwarded   `for="<ip:port>"` (IPv6 `for="[::1]:1234"`) + `;host=<service>` when known (RFC 7239)
 *   traceparent `00-<32 hex>-<16 hex>-00` (W3C Trace Context)
 *   baggage     k8s.cluster.name, k8s.namespace.name, k8s.<type>.name, service.name, service.version
 * Pure functions; parsers return null for anything malformed and never throw.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** RFC 1123 hostname (labels of letters, digits and dashes), as allowed in `:authority`. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function parsePort(s: string, allowZero: boolean): number | null {
  if (!/^[0-9]{1,5}$/.test(s)) return null;
  const port = Number(s);
  if (port > 65535 || (!allowZero && port === 0)) return null;
  return port;
}

/** `ip:port`, `[v6]:port` or `hostname:port`. */
export function formatAuthority(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses a CONNECT `:authority`; the host comes back without brackets. Port 0 is rejected. */
export function parseAuthority(s: string | undefined | null): HostPort | null {
  if (typeof s !== 'string' || s.length === 0 || s.length > 300) return null;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1 || s[close + 1] !== ':') return null;
    const host = s.slice(1, close);
    const port = parsePort(s.slice(close + 2), false);
    if (!net.isIPv6(host) || port === null) return null;
    return { host, port };
  }
  const colon = s.lastIndexOf(':');
  if (colon <= 0) return null;
  const host = s.slice(0, colon);
  const port = parsePort(s.slice(colon + 1), false);
  if (port === null) return null;
  if (net.isIPv4(host) || (HOSTNAME.test(host) && !/^[0-9.]+$/.test(host))) return { host, port };
  return null;
}

export interface ForwardedInput {
  clientAddress: string;
  clientPort: number;
  /** The service host name the client dialled, when known. */
  host?: string;
}

/** RFC 7239 token characters: a value made only of these needs no quotes. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function quoteIfNeeded(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** `for="10.0.0.1:4321"`, `for="[::1]:1234";host=reviews.default.svc.cluster.local`. */
export function buildForwarded(input: ForwardedInput): string {
  const node = net.isIPv6(input.clientAddress) ? `[${input.clientAddress}]:${input.clientPort}` : `${input.clientAddress}:${input.clientPort}`;
  const parts = [`for="${node}"`];
  if (input.host) parts.push(`host=${quoteIfNeeded(input.host)}`);
  return parts.join(';');
}

/** Splits one forwarded-element into its `name=value` pairs, honouring quoted strings. */
function forwardedPairs(element: string): Map<string, string> | null {
  const pairs = new Map<string, string>();
  let i = 0;
  const n = element.length;
  while (i < n) {
    while (i < n && (element[i] === ' ' || element[i] === '\t' || element[i] === ';')) i++;
    if (i >= n) break;
    const eq = element.indexOf('=', i);
    if (eq === -1) return null;
    const name = element.slice(i, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) return null;
    i = eq + 1;
    let value = '';
    if (element[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = element[i] as string;
        if (c === '\\' && i + 1 < n) {
          value += element[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) return null;
    } else {
      const end = element.indexOf(';', i);
      value = (end === -1 ? element.slice(i) : element.slice(i, end)).trim();
      i = end === -1 ? n : end;
    }
    if (!pairs.has(name)) pairs.set(name, value);
  }
  return pairs;
}

/**
 * The client address from the first element's `for=` (the original client; later elements are
 * added by proxies on the way). Port 0 when the node has no port. Null for obfuscated or
 * `unknown` nodes and for anything malformed.
 */
export function parseForwardedFor(value: string | undefined | null): { address: string; port: number } | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 4096) return null;
  // Commas inside quoted strings are not element separators.
  let first = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '\\' && quoted) {
      first += c + (value[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) break;
    first += c;
  }
  const node = forwardedPairs(first)?.get('for');
  if (!node) return null;
  if (node.startsWith('[')) {
    const close = node.indexOf(']');
    if (close === -1) return null;
    const address = node.slice(1, close);
    if (!net.isIPv6(address)) return null;
    const rest = node.slice(close + 1);
    if (rest === '') return { address, port: 0 };
    if (!rest.startsWith(':')) return null;
    const port = parsePort(rest.slice(1), true);
    return port === null ? null : { address, port };
  }
  if (net.isIPv4(node)) return { address: node, port: 0 };
  const colon = node.lastIndexOf(':');
  if (colon === -1) return null;
  const address = node.slice(0, colon);
  const port = parsePort(node.slice(colon + 1), true);
  if (!net.isIPv4(address) || port === null) return null;
  return { address, port };
}

export interface Traceparent {
  version: string;
  traceId: string;
  spanId: string;
  flags: string;
}

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Trace ids are drawn from a pool of random bytes filled 4 KiB at a time: two randomBytes calls
 * per connection (16 + 8 bytes) cost ~5 % of a node agent's CPU per new connection, nearly all
 * per-call overhead. The ids identify a connection in logs and traces; they are not secrets.
 */
const RANDOM_POOL_BYTES = 4096;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

function randomHex(bytes: number, zero: string): string {
  for (;;) {
    if (randomOffset + bytes > randomPool.length) {
      randomPool = randomBytes(RANDOM_POOL_BYTES);
      randomOffset = 0;
    }
    const hex = randomPool.toString('hex', randomOffset, randomOffset + bytes);
    randomOffset += bytes;
    if (hex !== zero) return hex;
  }
}

/** A fresh per-connection trace context, not sampled: `00-<32 hex>-<16 hex>-00`. */
export function newTraceparent(): string {
  return `00-${randomHex(16, ZERO_TRACE)}-${randomHex(8, ZERO_SPAN)}-00`;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** W3C Trace Context §3.2: version ff is invalid; all-zero ids are invalid; version 00 has no suffix. */
export function parseTraceparent(value: string | undefined | null): Traceparent | null {
  if (typeof value !== 'string') return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, spanId, flags, suffix] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  if (version === '00' && suffix !== undefined) return null;
  return { version, traceId, spanId, flags };
}

export interface BaggageInput {
  cluster: string;
  namespace: string;
  /** deployment, pod, job, cronjob, … — becomes `k8s.<type>.name`. */
  workloadType: string;
  workloadName: string;
  service: string;
  version: string;
}

/** W3C Baggage values are percent-encoded outside the safe set; Kubernetes names never need it. */
function baggageValue(s: string): string {
  return encodeURIComponent(s);
}

export function buildBaggage(input: BaggageInput): string {
  const type = input.workloadType.toLowerCase().replace(/[^a-z0-9]/g, '') || 'workload';
  return [
    `k8s.cluster.name=${baggageValue(input.cluster)}`,
    `k8s.namespace.name=${baggageValue(input.namespace)}`,
    `k8s.${type}.name=${baggageValue(input.workloadName)}`,
    `service.name=${baggageValue(input.service)}`,
    `service.version=${baggageValue(input.version)}`,
  ].join(',');
}

/** Parses a W3C baggage header into key → value (properties dropped). Malformed members are skipped. */
export function parseBaggage(value: string | undefined | null): Map<string, string> {
  const out = new Map<string, string>();
  if (typeof value !== 'string' || value.length > 8192) return out;
  for (const member of value.split(',')) {
    const kv = member.split(';')[0] ?? '';
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const key = kv.slice(0, eq).trim();
    if (!TOKEN.test(key)) continue;
    try {
      out.set(key, decodeURIComponent(kv.slice(eq + 1).trim()));
    } catch {
      // malformed percent-encoding: skip the member
    }
  }
  return out;
}
