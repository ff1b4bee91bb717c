/**
 * One pooled upstream HTTP/1.1 connection of the lean client (pool.ts): it writes a request
 * head as one write and parses the response with the runtime's llhttp (llhttp.ts), handing
 * the head, body chunks and end to the exchange's handler. The waypoint's common request —
 * no body — needs nothing else, and skips `http.ClientRequest`, `http.Agent` and
 * `IncomingMessage` (their per-request listeners, timers and stream objects were ~20 % of a
 * waypoint's CPU).
 *
 * Invariants:
 * - At most one exchange at a time (no pipelining). Bytes arriving while idle, a parse error,
 *   an upgrade (101) or the peer's FIN / reset while idle destroy the connection.
 * - The connection is given back (`onFree`) as soon as the response is complete and both
 *   ends agreed on keep-alive; it resumes reading even if the body's consumer is paused (the
 *   body is already handed over).
 * - A failure is reported once per exchange: before the head (`responded` false: the try may
 *   be retried, and `received` says whether any response byte arrived) or after (the response
 *   is cut).
 * - 1xx informational responses (100-continue, 103) are skipped, as Node's client does.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { headersObject } from '../incoming-headers.js';
import { HTTPParser, type LlhttpParser, type OnHeadersComplete } from '../llhttp.js';

export interface Http1ExchangeHandler {
  head(status: number, headers: IncomingHttpHeaders): void;
  /** A body chunk (a view of the bytes read); false pauses reading until `resume()`. */
  body(chunk: Buffer): boolean;
  end(): void;
  fail(err: Error, facts: { responded: boolean; received: boolean }): void;
}

export interface Http1ConnectionEvents {
  /** The response completed and the connection may serve another request (`keepAliveHintMs`: the server's Keep-Alive timeout). */
  onFree(connection: Http1Connection, keepAliveHintMs: number | undefined): void;
  /** The connection closed (whatever the reason). */
  onGone(connection: Http1Connection): void;
}

/** `Keep-Alive: timeout=N` → N s less Node's 1 s leeway, in ms (what http.Agent does with the hint). */
function keepAliveHint(headers: IncomingHttpHeaders): number | undefined {
  const hint = headers['keep-alive'];
  if (typeof hint !== 'string') return undefined;
  const m = /(?:^|[\s,])timeout=(\d+)/.exec(hint);
  return m ? Number(m[1]) * 1000 - 1000 : undefined;
}

export class Http1Connection {
  /** Requests sent on this connection so far. */
  requests = 0;
  idleTimer: NodeJS.Timeout | undefined;
  private readonly parser: LlhttpParser;
  private handler: Http1ExchangeHandler | undefined;
  private skipBody = false;
  private responded = false;
  private received = false;
  private informational = false;
  private keepAlive = false;
  private hintMs: number | undefined;
  private pendingHeaders: string[] | undefined;
  private gone = false;

  constructor(
    readonly stream: Duplex,
    private readonly events: Http1ConnectionEvents,
  ) {
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    parser[HTTPParser.kOnHeaders] = (raw: string[]) => {
      this.pendingHeaders = this.pendingHeaders ? this.pendingHeaders.concat(raw) : raw;
    };
    parser[HTTPParser.kOnHeadersComplete] = this.onHeadersComplete;
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
      if (this.handler?.body(chunk) === false) stream.pause();
    };
    parser[HTTPParser.kOnMessageComplete] = this.onMessageComplete;
    this.parser = parser;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.onEnd());
    stream.on('error', (err: Error) => this.lost(err));
    stream.on('close', () => this.lost(new Error('upstream connection closed before the response completed')));
  }

  get busy(): boolean {
    return this.handler !== undefined;
  }

  get destroyed(): boolean {
    return this.gone || this.stream.destroyed;
  }

  /** Sends one request (`head` is the whole request: bodiless) and reports its response to `handler`. */
  request(head: string, headRequest: boolean, handler: Http1ExchangeHandler): void {
    this.handler = handler;
    this.skipBody = headRequest;
    this.responded = false;
    this.received = false;
    this.informational = false;
    this.requests++;
    this.stream.write(head, 'latin1');
  }

  /** Reading resumes after a `body()` that returned false. */
  resume(): void {
    if (!this.gone) this.stream.resume();
  }

  destroy(err?: Error): void {
    this.stream.destroy(err);
    this.lost(err ?? new Error('upstream connection closed before the response completed'));
  }

  private onData(chunk: Buffer): void {
    if (!this.handler) return this.destroy(new Error('upstream sent bytes while no request was pending'));
    this.received = true;
    const ret = this.parser.execute(chunk);
    if (ret instanceof Error) this.destroy(Object.assign(new Error(`upstream sent an invalid HTTP/1.1 response: ${ret.message}`), { cause: ret }));
  }

  private readonly onHeadersComplete: OnHeadersComplete = (_major, _minor, raw, _method, _url, status, _message, upgrade, shouldKeepAlive) => {
    const rawHeaders = raw ?? this.pendingHeaders ?? [];
    this.pendingHeaders = undefined;
    const handler = this.handler;
    if (!handler || upgrade || status === 101) {
      queueMicrotask(() => this.destroy(new Error(`upstream answered ${status} (an upgrade) to a plain request`)));
      return 1;
    }
    if (status < 200) {
      this.informational = true;
      return 1;
    }
    this.responded = true;
    this.keepAlive = shouldKeepAlive;
    const headers = headersObject(rawHeaders);
    this.hintMs = keepAliveHint(headers);
    handler.head(status, headers);
    return this.skipBody ? 1 : 0;
  };

  private readonly onMessageComplete = (): void => {
    if (this.informational) {
      this.informational = false;
      return;
    }
    const handler = this.handler;
    if (!handler) return;
    this.handler = undefined;
    handler.end();
    if (this.gone) return;
    if (!this.keepAlive || this.stream.destroyed) {
      this.stream.destroy();
      return;
    }
    this.stream.resume();
    this.events.onFree(this, this.hintMs);
  };

  private onEnd(): void {
    // A body delimited by the connection's close completes at EOF.
    if (this.handler && this.responded) this.parser.finish();
    this.destroy();
  }

  private lost(err: Error): void {
    if (this.gone) return;
    this.gone = true;
    clearTimeout(this.idleTimer);
    const handler = this.handler;
    this.handler = undefined;
    handler?.fail(err, { responded: this.responded, received: this.received });
    // Not from inside execute(): llhttp may still be on the stack.
    setImmediate(() => this.parser.close());
    this.events.onGone(this);
  }
}
