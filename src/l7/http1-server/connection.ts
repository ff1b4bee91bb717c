/**
 * The waypoint's lean HTTP/1.1 server for one downstream connection (an HBONE CONNECT stream):
 * requests parsed with the runtime's llhttp (../llhttp.ts), answered on a LeanServerResponse
 * (response.ts) — no `http.Server` socket bookkeeping, `IncomingMessage` or `ServerResponse`
 * per request, whose listeners, timers and stream objects were the largest share of the
 * waypoint's JavaScript left after the lean upstream client (issue #11).
 *
 * It serves only the common case and hands everything else to Node's own server, which then
 * keeps the connection:
 * - served here: an HTTP/1.1 request with a Host header and without a body (no
 *   Transfer-Encoding, no or zero Content-Length), without `Expect` and not an upgrade or
 *   CONNECT, whose whole head arrived in one chunk — one request at a time, keep-alive,
 *   pipelined requests in order;
 * - handed over (`events.fallback`): anything else — a body, an upgrade, HTTP/1.0, no Host
 *   (Node's server answers 400), a head split across chunks (Node's server then applies its
 *   header timeout), or bytes llhttp refuses (Node's server then answers 400 / 431 with the same
 *   parser and limits). The bytes of the
 *   request are put back in front of the stream (`unshift`), so Node's server parses the
 *   request from its first byte; no response of this connection is in progress then.
 *
 * Invariants:
 * - At most one response is in progress. Bytes arriving meanwhile are held (the stream is
 *   paused) and parsed once it finished. The stream stays paused while bytes are held, so its
 *   'end' cannot come before them and an unshift is always allowed.
 * - After a response whose request or headers said close (or after `closeWhenIdle`), the stream
 *   is ended (END_STREAM, which the client's agent relays as a FIN). The client's own end while
 *   a response is in progress (half-close) still gets the response, then the stream ends —
 *   `http.Server` with `httpAllowHalfOpen`, as the waypoint configures it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { headersObject } from '../incoming-headers.js';
import { HTTPParser, METHODS, type LlhttpParser, type OnHeadersComplete } from '../llhttp.js';
import { LeanServerResponse, type ResponseOwner } from './response.js';

/** What the proxy reads of a request (the subset of `IncomingMessage` it uses). */
export interface LeanRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  socket: Duplex;
}

export interface Http1ServerEvents {
  /** A request to answer on `res`; it has no body. */
  request(req: LeanRequest, res: LeanServerResponse): void;
  /** Give the connection to Node's HTTP server: the current request's bytes are back in `stream`, which is paused. */
  fallback(stream: Duplex): void;
}

export interface Http1ServerOptions {
  /** llhttp's limit on a request's header section (Node's server: `maxHeaderSize`). */
  maxHeaderBytes: number;
  /** Advertised in `Keep-Alive: timeout=` (Node's server: keepAliveTimeout / 1000). */
  keepAliveTimeoutSeconds: number;
}

interface ParsedHead {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  keepAlive: boolean;
  lean: boolean;
}

/** A request the lean path serves: see the file comment. */
function servedLean(versionMajor: number, versionMinor: number, method: string, upgrade: boolean, headers: IncomingHttpHeaders): boolean {
  if (versionMajor !== 1 || versionMinor !== 1 || upgrade || method === 'CONNECT') return false;
  const length = headers['content-length'];
  // No Host: Node's server answers 400 (RFC 9112 §3.2, its requireHostHeader), so it gets those.
  return headers.host !== undefined && headers['transfer-encoding'] === undefined && (length === undefined || length === '0') && headers.expect === undefined;
}

export class Http1ServerConnection implements ResponseOwner {
  readonly keepAliveTimeoutSeconds: number;
  private readonly parser: LlhttpParser;
  private parsed: ParsedHead | undefined;
  private pendingHeaders: string[] | undefined;
  private pendingUrl = '';
  private response: LeanServerResponse | undefined;
  /** Bytes that arrived during a response, parsed once it finished. */
  private held: Buffer | undefined;
  private peerEnded = false;
  private closeWhenDone = false;
  private handedOver = false;
  private closed = false;

  constructor(
    readonly stream: Duplex,
    private readonly events: Http1ServerEvents,
    private readonly opts: Http1ServerOptions,
  ) {
    this.keepAliveTimeoutSeconds = opts.keepAliveTimeoutSeconds;
    const parser = new HTTPParser();
    parser[HTTPParser.kOnHeaders] = (raw: string[], url: string) => {
      this.pendingHeaders = this.pendingHeaders ? this.pendingHeaders.concat(raw) : raw;
      this.pendingUrl += url;
    };
    parser[HTTPParser.kOnHeadersComplete] = this.onHeadersComplete;
    parser[HTTPParser.kOnBody] = () => undefined;
    parser[HTTPParser.kOnMessageComplete] = () => undefined;
    this.parser = parser;
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onGone);
    stream.on('close', this.onGone);
  }

  /** No request in progress or held. */
  get idle(): boolean {
    return this.response === undefined && this.held === undefined;
  }

  /** Ends the connection now if idle, else after the response in progress (a drain). */
  closeWhenIdle(): void {
    if (this.handedOver || this.closed) return;
    this.closeWhenDone = true;
    if (this.idle) this.stream.end();
  }

  responseFinished(res: LeanServerResponse, last: boolean): void {
    if (res !== this.response) return;
    this.response = undefined;
    if (last || this.closeWhenDone) {
      this.held = undefined;
      this.stream.end();
      return;
    }
    const held = this.held;
    this.held = undefined;
    // Parsed before the stream resumes: a handover's unshift must come before the stream's 'end'.
    if (held) this.consume(held);
    if (this.handedOver || this.closed) return;
    if (this.held === undefined) {
      if (this.peerEnded && this.response === undefined) this.stream.end();
      else this.stream.resume();
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.response || this.held) {
      this.held = this.held ? Buffer.concat([this.held, chunk]) : chunk;
      this.stream.pause();
      return;
    }
    this.consume(chunk);
  };

  private consume(chunk: Buffer): void {
    this.parser.initialize(HTTPParser.REQUEST, {}, this.opts.maxHeaderBytes, HTTPParser.kLenientNone);
    this.parsed = undefined;
    this.pendingHeaders = undefined;
    this.pendingUrl = '';
    const ret = this.parser.execute(chunk);
    const head = this.parsed as ParsedHead | undefined;
    this.parsed = undefined;
    if (typeof ret !== 'number' || head === undefined || !head.lean) return this.handOver(chunk);
    if (ret < chunk.length) {
      this.held = chunk.subarray(ret);
      this.stream.pause();
    }
    const res = new LeanServerResponse(this, head.keepAlive && !this.closeWhenDone, head.method === 'HEAD');
    this.response = res;
    this.events.request({ method: head.method, url: head.url, headers: head.headers, socket: this.stream }, res);
  }

  /** Stops llhttp right after the head (2: Node's "upgrade" return): one request per execute. */
  private readonly onHeadersComplete: OnHeadersComplete = (versionMajor, versionMinor, raw, method, url, _status, _message, upgrade, shouldKeepAlive) => {
    const rawHeaders = raw ?? this.pendingHeaders ?? [];
    const headers = headersObject(rawHeaders);
    const name = METHODS[method as number] ?? '';
    this.parsed = {
      method: name,
      url: typeof url === 'string' && url !== '' ? url : this.pendingUrl,
      headers,
      keepAlive: shouldKeepAlive,
      lean: servedLean(versionMajor, versionMinor, name, upgrade, headers),
    };
    return 2;
  };

  private handOver(bytes: Buffer): void {
    this.handedOver = true;
    const stream = this.stream;
    stream.off('data', this.onData);
    stream.off('end', this.onEnd);
    stream.off('error', this.onGone);
    stream.off('close', this.onGone);
    stream.pause();
    stream.unshift(bytes);
    // Not from inside execute(): llhttp may still be on the stack of a caller.
    setImmediate(() => this.parser.close());
    this.events.fallback(stream);
  }

  private readonly onEnd = (): void => {
    this.peerEnded = true;
    if (this.idle) this.stream.end();
  };

  private readonly onGone = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.held = undefined;
    const res = this.response;
    this.response = undefined;
    res?.gone();
    setImmediate(() => this.parser.close());
  };
}
