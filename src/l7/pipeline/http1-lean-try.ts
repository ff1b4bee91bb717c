/**
 * One HTTP/1.1 try of a bodiless request on the lean client (http1-client/): the same contract
 * as Http1Try (http1-try.ts) — settled by the response head or the failure before it, errors
 * after the head go to `onLateError` — with the response as a small Readable (`LeanResponse`)
 * carrying `statusCode` and `headers` like an IncomingMessage, and emitting `aborted` (then
 * `error`) when the upstream cuts the body.
 *
 * Keep-alive race, as Http1Try: a reused connection that fails before any response byte is
 * replaced by a fresh one within the same try (the request had no body, nothing reached the
 * application); not a retry.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Http1Connection, Http1ExchangeHandler } from '../http1-client/connection.js';
import type { Http1ConnectionPool } from '../http1-client/pool.js';
import { grpcStatusOf } from '../resilience/retry.js';
import type { TryHandle, TryResult } from './try-loop.js';

/** Responses a retry drops are read to the end (keeping the connection) up to this size; longer ones cost the connection. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

/** The response body of a lean try; `statusCode` and `headers` as IncomingMessage has them. */
export class LeanResponse extends Readable {
  /** The connection's body ended (all of it was pushed). */
  complete = false;
  /** Body chunks pushed so far. */
  chunks = 0;

  constructor(
    readonly statusCode: number,
    readonly headers: IncomingHttpHeaders,
    private readonly connection: Http1Connection,
  ) {
    super();
  }

  override _read(): void {
    this.connection.resume();
  }

  /**
   * The whole body, when all of it arrived in at most one chunk and nothing read it yet (the
   * common small response: head, body and end parsed from one read): `null` for no body, else
   * the chunk, taken out of the stream. Undefined when the body must be streamed (relay-body.ts).
   */
  takeWhole(): Buffer | null | undefined {
    if (!this.complete || this.chunks > 1 || this.readableFlowing !== null || this.destroyed) return undefined;
    if (this.chunks === 0) return null;
    if (this.readableLength === 0) return undefined;
    // Paused, ended, one buffered chunk: read() hands back that very Buffer (no copy).
    return this.read() as Buffer;
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // Dropped before its end (downstream gone, discarded): the connection cannot be reused.
    if (!this.complete) this.connection.destroy();
    // As IncomingMessage: the error is emitted only to listeners (a response dropped by a retry
    // or a cancellation has none; an unheard 'error' would crash the process).
    callback(this.listenerCount('error') > 0 ? err : null);
  }
}

export interface Http1LeanTryOptions {
  pool: Http1ConnectionPool;
  method: string;
  /** The whole request (request-head.ts). */
  head: string;
}

export class Http1LeanTry implements TryHandle, Http1ExchangeHandler {
  readonly result: Promise<TryResult>;
  response: LeanResponse | undefined;
  private connection: Http1Connection | undefined;
  private lateHandler: ((err: Error) => void) | undefined;
  private lateError: Error | undefined;
  private settle!: (r: TryResult) => void;
  private settled = false;
  private aborted = false;
  private resent = false;
  private reused = false;

  constructor(private readonly o: Http1LeanTryOptions) {
    this.result = new Promise((resolve) => {
      this.settle = (r) => {
        if (this.settled) return;
        this.settled = true;
        resolve(r);
      };
    });
    const idle = o.pool.takeIdle();
    if (idle) this.send(idle, true);
    else this.dial();
  }

  private dial(): void {
    this.o.pool.connect().then(
      (c) => this.send(c, false),
      // Every dial failure is a connect failure (no byte of the request was sent).
      (err: Error) => this.settle({ kind: 'failure', failure: 'connect', error: err }),
    );
  }

  private send(c: Http1Connection, reused: boolean): void {
    if (this.aborted) return this.o.pool.giveBack(c);
    this.connection = c;
    this.reused = reused;
    c.request(this.o.head, this.o.method === 'HEAD', this);
  }

  head(status: number, headers: IncomingHttpHeaders): void {
    const res = new LeanResponse(status, headers, this.connection as Http1Connection);
    this.response = res;
    if (this.aborted) return void res.destroy();
    const grpcStatus = grpcStatusOf(headers);
    this.settle(grpcStatus === undefined ? { kind: 'response', status } : { kind: 'response', status, grpcStatus });
  }

  body(chunk: Buffer): boolean {
    const res = this.response;
    if (!res || res.destroyed) return true;
    res.chunks++;
    return res.push(chunk);
  }

  end(): void {
    const res = this.response;
    if (!res) return;
    res.complete = true;
    res.push(null);
  }

  fail(err: Error, facts: { responded: boolean; received: boolean }): void {
    if (!facts.responded) {
      if (this.reused && !facts.received && !this.resent && !this.aborted) {
        this.resent = true;
        return this.dial();
      }
      return this.settle({ kind: 'failure', failure: 'reset', error: err });
    }
    const res = this.response;
    if (res && !res.destroyed) {
      res.emit('aborted');
      res.destroy(Object.assign(new Error('aborted', { cause: err }), { code: 'ECONNRESET' }));
    }
    if (this.lateHandler) this.lateHandler(err);
    else this.lateError ??= err;
  }

  /** Errors after the response head (the caller resets the downstream); one that already happened is passed at once. */
  onLateError(handler: (err: Error) => void): void {
    this.lateHandler = handler;
    if (this.lateError) handler(this.lateError);
  }

  abort(): void {
    this.aborted = true;
    const res = this.response;
    if (res) {
      if (!res.complete) res.destroy();
    } else if (this.connection?.busy) this.connection.destroy();
    this.settle({ kind: 'failure', failure: 'reset' });
  }

  discard(): void {
    const res = this.response;
    if (!res) return;
    const length = Number(res.headers['content-length']);
    if (res.complete || (res.headers['transfer-encoding'] === undefined && Number.isFinite(length) && length <= DRAIN_LIMIT_BYTES)) {
      res.resume(); // read to the end: the connection goes back to the pool
      return;
    }
    this.aborted = true;
    res.destroy();
  }
}
