/**
 * The copy of a message's headers that goes on to the other side, hop-by-hop headers left out
 * (RFC 9110 §7.6.1): what `copyHeaders` + `stripHopByHop` (filters/hop-by-hop.ts) produce, in one
 * pass over the source and without `delete` on the copy — a deleted property turns a V8 object
 * into a slow dictionary, and this runs twice per forwarded request (request and response head).
 *
 * Guarantees (equal to copy-then-strip, test/unit/l7-forwarded-headers.test.ts checks it):
 * - pseudo headers (`:…`), undefined values, the HOP_BY_HOP names of filters/hop-by-hop.ts, every
 *   header the Connection header names, and the names in `skip` are not copied;
 * - `te: trailers` survives as `te: trailers` when TE lists `trailers`.
 * Not for Upgrade requests (they keep `connection: upgrade`): those use stripHopByHop.
 */
import type { MutableHeaders } from '../filters/header-mutation.js';

type Source = Readonly<Record<string, string | string[] | number | undefined>>;

/** Must equal filters/hop-by-hop.ts's list. */
const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Connection tokens that name no header anyone sends: no extra work for them. */
const PLAIN_CONNECTION = new Set(['keep-alive', 'close']);

function tokens(value: Source[string]): string[] {
  if (value === undefined) return [];
  const all = Array.isArray(value) ? value.join(',') : String(value);
  const out: string[] = [];
  for (const t of all.split(',')) {
    const token = t.trim().toLowerCase();
    if (token) out.push(token);
  }
  return out;
}

/** Names the Connection header asks to drop, beyond HOP_BY_HOP; undefined when none. */
function connectionNamed(value: Source[string]): Set<string> | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && PLAIN_CONNECTION.has(value.toLowerCase())) return undefined;
  let named: Set<string> | undefined;
  for (const t of tokens(value)) if (!HOP_BY_HOP.has(t) && !t.startsWith(':')) (named ??= new Set()).add(t);
  return named;
}

/** The forwardable headers of `source` as a fresh object; names in `skip` (lower case) left out too. */
export function forwardedHeaders(source: Source, skip?: ReadonlySet<string>): MutableHeaders {
  const out: MutableHeaders = {};
  const named = connectionNamed(source.connection);
  for (const name in source) {
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name)) continue;
    if (skip !== undefined && skip.has(name)) continue;
    if (named !== undefined && named.has(name)) continue;
    const value = source[name];
    if (value !== undefined) out[name] = value;
  }
  const te = source.te;
  if (te !== undefined && tokens(te).includes('trailers')) out.te = 'trailers';
  return out;
}
