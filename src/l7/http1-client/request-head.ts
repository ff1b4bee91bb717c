/**
 * The head of a bodiless HTTP/1.1 request, as `http.request` would write it for a keep-alive
 * agent: request line, the headers in order (an array value is one line each), `connection:
 * keep-alive`, and `content-length: 0` for methods whose body Node would otherwise announce
 * (every method but GET, HEAD, DELETE, OPTIONS, TRACE, CONNECT).
 *
 * Returns undefined when Node would refuse the request (a path, header name or value with
 * characters it rejects): the caller then takes Node's path, which reports the error as before.
 */
import type { MutableHeaders } from '../filters/header-mutation.js';

/** Node's checks: `INVALID_PATH_REGEX`, `checkIsHttpToken`, `checkInvalidHeaderChar`. */
const INVALID_PATH = /[^\u0021-\u00ff]/;
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

const NO_IMPLICIT_LENGTH: ReadonlySet<string> = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

export function bodilessRequestHead(method: string, path: string, headers: MutableHeaders): string | undefined {
  if (!TOKEN.test(method) || INVALID_PATH.test(path)) return undefined;
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let connection = false;
  let length = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (!TOKEN.test(name)) return undefined;
    if (name === 'connection') connection = true;
    else if (name === 'content-length') length = true;
    if (Array.isArray(value)) {
      for (const v of value) {
        if (INVALID_VALUE.test(v)) return undefined;
        head += `${name}: ${v}\r\n`;
      }
    } else {
      const v = typeof value === 'string' ? value : String(value);
      if (INVALID_VALUE.test(v)) return undefined;
      head += `${name}: ${v}\r\n`;
    }
  }
  // A caller-set Connection header (none after hop-by-hop filtering) would be Node's to honour.
  if (connection) return undefined;
  head += 'connection: keep-alive\r\n';
  if (!length && !NO_IMPLICIT_LENGTH.has(method)) head += 'content-length: 0\r\n';
  return `${head}\r\n`;
}
