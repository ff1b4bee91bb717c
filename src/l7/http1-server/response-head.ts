/**
 * The head of an HTTP/1.1 response as Node's `http.ServerResponse.writeHead` writes it for an
 * HTTP/1.1 request — byte for byte, so a client cannot tell the lean server (connection.ts) from
 * Node's (test/direct/l7-http1-lean-server.test.ts compares the two):
 * - the given headers in their order, an array value as one line per element;
 * - then `Date` unless given; `Connection: keep-alive` + `Keep-Alive: timeout=N` (or
 *   `Connection: close` when the request did not keep the connection) unless a `Connection`
 *   header is given; `Transfer-Encoding: chunked` when a body may follow and neither a length
 *   nor a transfer coding is given;
 * - no body for HEAD, 204, 304 and 1xx;
 * - the same refusals: a status outside 100–999, an invalid header name or value, `Trailer`
 *   without chunked framing (Node's ERR_HTTP_INVALID_STATUS_CODE, ERR_INVALID_HTTP_TOKEN,
 *   ERR_INVALID_CHAR, ERR_HTTP_INVALID_HEADER_VALUE, ERR_HTTP_TRAILER_INVALID).
 */
import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http';

export interface ResponseHeadOptions {
  /** The request keeps the connection (llhttp's shouldKeepAlive for it). */
  keepAlive: boolean;
  /** A HEAD request: the response carries no body whatever its headers say. */
  headRequest: boolean;
  /** Advertised in `Keep-Alive: timeout=`, as Node's server does with its keepAliveTimeout. */
  keepAliveTimeoutSeconds: number;
  /** The `Date` value (httpDate()). */
  date: string;
}

export interface ResponseHead {
  /** Status line and header section, CRLF-terminated (latin1). */
  head: string;
  /** Body bytes may follow the head. */
  hasBody: boolean;
  /** The body goes in chunked framing. */
  chunked: boolean;
  /** The connection closes after this response. */
  last: boolean;
}

export class ResponseHeadError extends Error {
  constructor(
    readonly code: 'ERR_HTTP_INVALID_STATUS_CODE' | 'ERR_INVALID_HTTP_TOKEN' | 'ERR_INVALID_CHAR' | 'ERR_HTTP_INVALID_HEADER_VALUE' | 'ERR_HTTP_TRAILER_INVALID',
    message: string,
  ) {
    super(message);
    this.name = 'ResponseHeadError';
  }
}

/** Node's checkIsHttpToken and checkInvalidHeaderChar. */
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
/** Node's RE_CONN_CLOSE and RE_TE_CHUNKED. */
const CONNECTION_CLOSE = /(?:^|\W)close(?:$|\W)/i;
const TE_CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;

let dateSecond = -1;
let dateValue = '';

/** The `Date` header value for `nowMs`, formatted once per second (as Node's server caches it). */
export function httpDate(nowMs: number = Date.now()): string {
  const second = Math.floor(nowMs / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(second * 1000).toUTCString();
  }
  return dateValue;
}

export function responseHead(status: number, headers: OutgoingHttpHeaders, o: ResponseHeadOptions): ResponseHead {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new ResponseHeadError('ERR_HTTP_INVALID_STATUS_CODE', `Invalid status code: ${status}`);
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
  const hasBody = !o.headRequest && status !== 204 && status !== 304 && (status < 100 || status > 199);
  let chunked = false;
  let last = false;
  let connection = false;
  let contentLength = false;
  let transferEncoding = false;
  let date = false;
  let trailer = false;
  let defaultKeepAlive = true;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (!TOKEN.test(name)) throw new ResponseHeadError('ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`);
    if (value === undefined) throw new ResponseHeadError('ERR_HTTP_INVALID_HEADER_VALUE', `Invalid value "undefined" for header "${name}"`);
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      const text = String(v);
      if (INVALID_VALUE_CHAR.test(text)) throw new ResponseHeadError('ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
      head += `${name}: ${text}\r\n`;
    }
    const joined = values.join(', ');
    switch (name.length <= 17 ? name.toLowerCase() : '') {
      case 'connection':
        connection = true;
        if (CONNECTION_CLOSE.test(joined)) last = true;
        break;
      case 'content-length':
        contentLength = true;
        break;
      case 'transfer-encoding':
        transferEncoding = true;
        if (TE_CHUNKED.test(joined)) chunked = true;
        break;
      case 'date':
        date = true;
        break;
      case 'trailer':
        trailer = true;
        break;
      case 'keep-alive':
        defaultKeepAlive = false;
        break;
    }
  }
  if (!date) head += `Date: ${o.date}\r\n`;
  if (!connection) {
    if (o.keepAlive) {
      head += 'Connection: keep-alive\r\n';
      if (defaultKeepAlive && o.keepAliveTimeoutSeconds > 0) head += `Keep-Alive: timeout=${o.keepAliveTimeoutSeconds}\r\n`;
    } else {
      last = true;
      head += 'Connection: close\r\n';
    }
  }
  if (!contentLength && !transferEncoding) {
    if (!hasBody) chunked = false;
    else {
      head += 'Transfer-Encoding: chunked\r\n';
      chunked = true;
    }
  }
  if (trailer && !chunked) throw new ResponseHeadError('ERR_HTTP_TRAILER_INVALID', 'Trailers are invalid with this transfer encoding');
  if (!hasBody) chunked = false;
  return { head: `${head}\r\n`, hasBody, chunked, last };
}
