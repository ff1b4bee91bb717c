/**
 * One response of the lean HTTP/1.1 server (connection.ts): the part of `http.ServerResponse`
 * the waypoint's proxy uses — `writeHead`, `write` (with `drain`), `end`, `destroy`,
 * `headersSent`, `destroyed`, `writableFinished`, `statusCode`, and the `finish` and `close`
 * events — written straight to the connection's stream.
 *
 * Guarantees:
 * - The head leaves with the first body bytes (or with `end()`) as one write: a response with
 *   a known length is one write, hence one HBONE DATA frame.
 * - Framing as `responseHead` decided: chunked bodies are framed, bodies of HEAD / 204 / 304
 *   are dropped, `end()` writes the chunked terminator.
 * - `finish` once every byte is handed to the stream, then the owner hears of it (keep-alive or
 *   close), then `close` on the next tick — Node's order.
 * - The stream going away before `finish` (or `destroy()`) marks the response destroyed and
 *   emits `close` once; no `finish` follows.
 */
import { EventEmitter } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { httpDate, responseHead, type ResponseHead } from './response-head.js';

/**
 * What the proxy uses of a downstream HTTP/1.1 response: Node's `http.ServerResponse` (the
 * requests Node's server parsed) and LeanServerResponse (the lean server's) both are one.
 */
export interface Http1DownstreamResponse {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  readonly statusCode: number;
  writeHead(status: number, headers?: OutgoingHttpHeaders): this;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): this;
  destroy(): void;
  once(event: 'close' | 'finish' | 'drain', listener: () => void): this;
}

export interface ResponseOwner {
  readonly stream: Duplex;
  readonly keepAliveTimeoutSeconds: number;
  /** Every byte of the response is handed to the stream; `last`: the connection must close. */
  responseFinished(res: LeanServerResponse, last: boolean): void;
}

const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

export class LeanServerResponse extends EventEmitter implements Http1DownstreamResponse {
  statusCode = 200;
  headersSent = false;
  destroyed = false;
  writableFinished = false;
  private framing: ResponseHead | undefined;
  /** The head is written (with the first body bytes or the end). */
  private headWritten = false;
  private ended = false;
  private writesInFlight = 0;
  private closed = false;
  private waitingForDrain = false;

  constructor(
    private readonly owner: ResponseOwner,
    private readonly keepAlive: boolean,
    private readonly headRequest: boolean,
  ) {
    super();
  }

  writeHead(status: number, headers: OutgoingHttpHeaders = {}): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    this.framing = responseHead(status, headers, { keepAlive: this.keepAlive, headRequest: this.headRequest, keepAliveTimeoutSeconds: this.owner.keepAliveTimeoutSeconds, date: httpDate() });
    this.statusCode = status;
    this.headersSent = true;
    return this;
  }

  /** A body chunk; false: wait for `drain` (the stream's buffer is full). */
  write(chunk: Buffer | string): boolean {
    if (this.ended || this.destroyed) return false;
    const parts = this.headAndBody(chunk);
    return parts.length === 0 ? true : this.send(parts);
  }

  end(chunk?: Buffer | string): this {
    if (this.ended || this.destroyed) return this;
    this.ended = true;
    const parts = this.headAndBody(chunk);
    if (this.framing?.chunked) parts.push(LAST_CHUNK);
    if (parts.length > 0) this.send(parts);
    else if (this.writesInFlight === 0) process.nextTick(() => this.finish());
    return this;
  }

  /** Resets the connection (an HBONE RST_STREAM): a cut response never looks complete. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.owner.stream.destroy();
    process.nextTick(() => this.emitClose());
  }

  /** The stream closed or failed under the response. */
  gone(): void {
    if (this.writableFinished) return;
    this.destroyed = true;
    this.emitClose();
  }

  private headAndBody(chunk: Buffer | string | undefined): Buffer[] {
    if (!this.framing) this.writeHead(this.statusCode);
    const framing = this.framing as ResponseHead;
    const parts: Buffer[] = [];
    if (!this.headWritten) {
      this.headWritten = true;
      parts.push(Buffer.from(framing.head, 'latin1'));
    }
    if (chunk === undefined || !framing.hasBody) return parts;
    const body = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (body.length === 0) return parts;
    if (framing.chunked) parts.push(Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1'), body, CRLF);
    else parts.push(body);
    return parts;
  }

  private send(parts: Buffer[]): boolean {
    const stream = this.owner.stream;
    if (stream.destroyed) return false;
    this.writesInFlight++;
    const ok = stream.write(parts.length === 1 ? parts[0] : Buffer.concat(parts), (err?: Error | null) => {
      this.writesInFlight--;
      if (!err && this.ended && this.writesInFlight === 0) this.finish();
    });
    if (!ok && !this.waitingForDrain) {
      this.waitingForDrain = true;
      stream.once('drain', () => {
        this.waitingForDrain = false;
        if (!this.destroyed) this.emit('drain');
      });
    }
    return ok;
  }

  private finish(): void {
    if (this.writableFinished || this.destroyed) return;
    this.writableFinished = true;
    this.emit('finish');
    this.owner.responseFinished(this, this.framing?.last ?? !this.keepAlive);
    process.nextTick(() => this.emitClose());
  }

  private emitClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }
}
