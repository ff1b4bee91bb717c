/**
 * Raw header lists (`[name, value, …]`, as llhttp hands them over) into the header object Node's
 * `IncomingMessage.headers` would build — the same joining rules, so the lean client's responses
 * and the lean server's requests look to the proxy exactly like Node's own.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Headers Node's IncomingMessage keeps the first of (RFC 9110: a duplicate makes no sense). */
const FIRST_WINS: ReadonlySet<string> = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'host',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);

/** Raw `[name, value, …]` → the header object of `IncomingMessage.headers` (same joining rules). */
export function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    const current = out[name];
    if (current === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (current as string[]).push(value);
    else if (FIRST_WINS.has(name)) continue;
    else out[name] = `${current as string}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out as IncomingHttpHeaders;
}
