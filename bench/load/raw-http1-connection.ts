/**
 * The soak generator's transport (load/soak-load-client.ts): keep-alive HTTP/1.1 connections on
 * raw `net` sockets, one request in flight per connection, the request pre-encoded once. A
 * response is checked by load/http1-response-parser.ts (200, Content-Length, whole body); the
 * per-request cost is one write and one parse, against node:http's ClientRequest, IncomingMessage,
 * Agent bookkeeping and header objects — at 5 000 req/s that difference is most of a core.
 *
 * Invariants: `done` of a request is called exactly once. A connection that closes, breaks the
 * protocol or times out is destroyed; the next request on it opens a new socket (`opened` counts
 * them all, the first included). A response that arrives with no request in flight, or bytes
 * after a `Connection: close` response, also destroy the connection.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Http1ResponseParser, type ParsedResponse } from './http1-response-parser.js';
import type { OpenLoopTransport } from './open-loop-driver.js';

/** Error kinds besides the parser's (and socket error codes such as ECONNRESET). */
export const CONNECTION_ERRORS = {
  closed: 'CONNECTION_CLOSED',
  timeout: 'TIMEOUT',
  unexpected: 'UNEXPECTED_RESPONSE',
} as const;

export interface RawHttp1Target {
  host: string;
  port: number;
  /** The whole request, sent as is for every request. */
  request: Buffer;
  timeoutMs: number;
}

/** A GET with no body, pre-encoded. */
export function encodeGet(host: string, path = '/'): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: amesh-soak\r\nAccept: */*\r\n\r\n`, 'latin1');
}

export class RawHttp1Connection {
  /** Sockets opened: the first and every reconnection. */
  opened = 0;
  private socket: Socket | undefined;
  private pending: ((code: string | undefined) => void) | undefined;
  private sentAt = 0;

  constructor(
    private readonly target: RawHttp1Target,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Sends the request; `done` gets undefined for a 200 with its whole body, else an error kind. One at a time. */
  request(done: (code: string | undefined) => void): void {
    if (this.pending) throw new Error('RawHttp1Connection: a request is already in flight on this connection');
    this.pending = done;
    this.sentAt = this.now();
    (this.socket ?? this.open()).write(this.target.request);
  }

  /** Fails the request in flight if it has waited longer than the timeout (the caller sweeps periodically). */
  expire(now: number): void {
    if (this.pending && now - this.sentAt > this.target.timeoutMs) this.fail(CONNECTION_ERRORS.timeout);
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private open(): Socket {
    const socket = connect({ host: this.target.host, port: this.target.port, noDelay: true });
    this.opened++;
    const parser = new Http1ResponseParser((response) => this.answered(response));
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      const error = parser.push(chunk);
      if (error) this.fail(error);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.socket === socket) this.fail(err.code ?? 'SOCKET_ERROR');
    });
    socket.on('close', () => {
      if (this.socket === socket) this.fail(parser.end() ?? CONNECTION_ERRORS.closed);
    });
    this.socket = socket;
    return socket;
  }

  private answered(response: ParsedResponse): void {
    const done = this.pending;
    if (!done) {
      this.fail(CONNECTION_ERRORS.unexpected);
      return;
    }
    this.pending = undefined;
    // Before `done`: it may send the next request at once, which must go to a fresh socket.
    if (response.close) this.close();
    done(response.status === 200 ? undefined : `HTTP_${response.status}`);
  }

  /** Destroys the connection; the request in flight, if any, fails with `code`. */
  private fail(code: string): void {
    this.close();
    const done = this.pending;
    this.pending = undefined;
    done?.(code);
  }
}

/** N raw connections as the open-loop driver's transport. */
export class RawHttp1Transport implements OpenLoopTransport {
  readonly pool: RawHttp1Connection[];
  private readonly sweep: NodeJS.Timeout;

  constructor(target: RawHttp1Target, readonly connections: number) {
    this.pool = Array.from({ length: connections }, () => new RawHttp1Connection(target));
    // One timer for every connection's timeout instead of one per request.
    this.sweep = setInterval(() => {
      const now = performance.now();
      for (const c of this.pool) c.expire(now);
    }, Math.max(10, Math.min(1000, target.timeoutMs / 10)));
    this.sweep.unref();
  }

  send(connection: number, done: (code: string | undefined) => void): void {
    this.pool[connection]!.request(done);
  }

  /** Sockets opened over the run, first ones included. */
  get opened(): number {
    return this.pool.reduce((n, c) => n + c.opened, 0);
  }

  close(): void {
    clearInterval(this.sweep);
    for (const c of this.pool) c.close();
  }
}
