/**
 * Hop-by-hop header hygiene (RFC 9110 §7.6.1): headers that describe one connection are not
 * forwarded — Connection and every header it names, Keep-Alive, Proxy-Connection,
 * Proxy-Authenticate, Proxy-Authorization, TE (except `te: trailers`, which gRPC needs on
 * HTTP/2), Trailer, Transfer-Encoding and Upgrade. When an Upgrade is being proxied,
 * `connection: upgrade` and `upgrade` are kept. HTTP/2 forbids connection-specific headers
 * altogether (RFC 9113 §8.2.2), so the same function serves both. Mutates in place; pure otherwise.
 */
import type { MutableHeaders } from './header-mutation.js';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

function tokens(value: MutableHeaders[string]): string[] {
  if (value === undefined) return [];
  const all = Array.isArray(value) ? value.join(',') : String(value);
  return all
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

export interface HopByHopOptions {
  /** An Upgrade is being proxied: keep `connection: upgrade` and `upgrade`. */
  upgrade?: boolean;
}

export function stripHopByHop(headers: MutableHeaders, opts: HopByHopOptions = {}): void {
  const te = tokens(headers.te);
  for (const name of tokens(headers.connection)) {
    if (opts.upgrade && name === 'upgrade') continue;
    if (!name.startsWith(':')) delete headers[name];
  }
  const upgrade = headers.upgrade;
  for (const name of HOP_BY_HOP) delete headers[name];
  if (te.includes('trailers')) headers.te = 'trailers';
  if (opts.upgrade && upgrade !== undefined) {
    headers.connection = 'upgrade';
    headers.upgrade = upgrade;
  }
}

/** Does this HTTP/1.1 request ask for a protocol upgrade (WebSocket, …)? */
export function isUpgradeRequest(headers: MutableHeaders): boolean {
  return headers.upgrade !== undefined && tokens(headers.connection).includes('upgrade');
}
