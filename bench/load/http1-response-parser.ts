/**
 * A minimal HTTP/1.1 response parser for the soak's raw-socket load generator
 * (load/raw-http1-connection.ts). It does only what the generator needs to *check* each answer
 * cheaply: the status code, that a Content-Length is present, and that exactly that many body
 * bytes arrived; whether the server will close the connection (`Connection: close`, or HTTP/1.0
 * without keep-alive). Bytes may arrive split anywhere and several responses may share a chunk.
 *
 * Anything else — a malformed status line, a missing or invalid Content-Length on a response that
 * has a body, chunked transfer coding, headers larger than `maxHeaderBytes` — is a fatal error:
 * the stream cannot be resynchronised, so the caller closes the connection and counts the error.
 *
 * Why not a library: llhttp (Node's own parser) is not exposed as a public API, and the
 * parsers on npm (e.g. http-parser-js) do far more per response than this loop needs; the point
 * of this file is to cost the machine less than node:http does.
 */

/** Error kinds, as they appear in the load generator's `errorKinds`. */
export const RESPONSE_ERRORS = {
  badStatusLine: 'BAD_STATUS_LINE',
  badHeader: 'BAD_HEADER',
  noContentLength: 'NO_CONTENT_LENGTH',
  badContentLength: 'BAD_CONTENT_LENGTH',
  chunked: 'CHUNKED_NOT_SUPPORTED',
  headersTooLarge: 'HEADERS_TOO_LARGE',
  shortBody: 'SHORT_BODY',
  truncatedHeaders: 'TRUNCATED_HEADERS',
} as const;

/** One complete response: its status, and whether the server closes the connection after it. */
export interface ParsedResponse {
  status: number;
  close: boolean;
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);
/** Statuses that never carry a body (RFC 9112 §6.3). */
const noBody = (status: number): boolean => (status >= 100 && status < 200) || status === 204 || status === 304;

export class Http1ResponseParser {
  /** Header bytes of the response being read, until its blank line arrives. */
  private head: Buffer = EMPTY;
  /** Body bytes still expected; -1 while reading headers. */
  private remaining = -1;
  private current: ParsedResponse | undefined;

  constructor(
    private readonly onResponse: (response: ParsedResponse) => void,
    private readonly maxHeaderBytes = 16_384,
  ) {}

  /** True between responses (nothing of a response read yet). */
  get idle(): boolean {
    return this.remaining < 0 && this.head.length === 0;
  }

  /**
   * Feeds bytes; calls `onResponse` for each response completed in them. Returns an error kind
   * (RESPONSE_ERRORS) when the stream is broken; the parser must not be fed again after that.
   */
  push(chunk: Buffer): string | undefined {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining >= 0) {
        const take = Math.min(this.remaining, chunk.length - offset);
        this.remaining -= take;
        offset += take;
        if (this.remaining === 0) this.complete();
        continue;
      }
      // Reading headers: look for the blank line, also across the previous chunk's tail.
      const searchFrom = Math.max(0, this.head.length - 3);
      const joined = this.head.length === 0 ? (offset === 0 ? chunk : chunk.subarray(offset)) : Buffer.concat([this.head, chunk.subarray(offset)]);
      const end = joined.indexOf(CRLFCRLF, searchFrom);
      if (end < 0) {
        if (joined.length > this.maxHeaderBytes) return RESPONSE_ERRORS.headersTooLarge;
        // Copy: the socket may reuse the chunk's memory.
        this.head = Buffer.from(joined);
        return undefined;
      }
      if (end + 4 > this.maxHeaderBytes) return RESPONSE_ERRORS.headersTooLarge;
      const error = this.headers(joined.toString('latin1', 0, end));
      if (error) return error;
      offset += end + 4 - this.head.length;
      this.head = EMPTY;
      if (this.remaining === 0) this.complete();
    }
    return undefined;
  }

  /** The connection ended: an error kind if a response was cut short, else undefined. */
  end(): string | undefined {
    if (this.remaining > 0) return RESPONSE_ERRORS.shortBody;
    if (this.head.length > 0) return RESPONSE_ERRORS.truncatedHeaders;
    return undefined;
  }

  private complete(): void {
    const response = this.current!;
    this.current = undefined;
    this.remaining = -1;
    this.onResponse(response);
  }

  /** Parses a response head (without its blank line); sets `remaining` and `current`. */
  private headers(text: string): string | undefined {
    const lineEnd = text.indexOf('\r\n');
    const statusLine = lineEnd < 0 ? text : text.slice(0, lineEnd);
    // "HTTP/1.1 200 OK" — the reason phrase may be empty or absent.
    const match = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(statusLine);
    if (!match) return RESPONSE_ERRORS.badStatusLine;
    const http10 = match[1] === '0';
    const status = Number(match[2]);
    let contentLength: number | undefined;
    let connection = '';
    if (lineEnd >= 0) {
      for (const line of text.slice(lineEnd + 2).split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) return RESPONSE_ERRORS.badHeader;
        const name = line.slice(0, colon).toLowerCase();
        if (name === 'content-length') {
          const value = line.slice(colon + 1).trim();
          if (!/^\d{1,15}$/.test(value) || (contentLength !== undefined && contentLength !== Number(value))) return RESPONSE_ERRORS.badContentLength;
          contentLength = Number(value);
        } else if (name === 'transfer-encoding') return RESPONSE_ERRORS.chunked;
        else if (name === 'connection') connection = line.slice(colon + 1).trim().toLowerCase();
      }
    }
    if (noBody(status)) contentLength = 0;
    else if (contentLength === undefined) return RESPONSE_ERRORS.noContentLength;
    this.remaining = contentLength;
    this.current = { status, close: connection.includes('close') || (http10 && !connection.includes('keep-alive')) };
    return undefined;
  }
}
