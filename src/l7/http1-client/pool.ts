/**
 * The lean HTTP/1.1 client's keep-alive connections to one endpoint (one per endpoint and
 * connection-pool settings, owned by upstream.ts's EndpointPool, beside the http.Agent that
 * still serves requests with bodies, upgrades and mirrors).
 *
 * Guarantees (those of the Agent it stands in for):
 * - Idle connections are reused LIFO, at most `maxIdle` are kept; an idle one closes after
 *   `idleTimeoutMs()` or the server's Keep-Alive hint, whichever is shorter.
 * - `maxRequestsPerConnection`: a connection that served that many requests is closed when the
 *   last one completes (`onRetired`).
 * - `retire()`: idle connections close now, busy ones when their response completes; `destroy()`
 *   closes every connection (requests in flight fail).
 * - No limit on connections: the circuit breaker queues requests, not the pool.
 */
import type { Duplex } from 'node:stream';
import { Http1Connection, type Http1ConnectionEvents } from './connection.js';

export interface Http1PoolOptions {
  /** A connected stream to the endpoint (a rejection is a connect failure). */
  dial(): Promise<Duplex>;
  maxIdle: number;
  idleTimeoutMs(): number;
  maxRequestsPerConnection: number | undefined;
  /** A connection was closed for reaching maxRequestsPerConnection. */
  onRetired(): void;
}

export class Http1ConnectionPool implements Http1ConnectionEvents {
  private readonly idle: Http1Connection[] = [];
  private readonly all = new Set<Http1Connection>();
  private retired = false;

  constructor(private readonly o: Http1PoolOptions) {}

  /** An idle connection (most recently used first), or undefined: dial one with `connect()`. */
  takeIdle(): Http1Connection | undefined {
    for (;;) {
      const c = this.idle.pop();
      if (!c) return undefined;
      clearTimeout(c.idleTimer);
      c.idleTimer = undefined;
      if (!c.destroyed) return c;
    }
  }

  async connect(): Promise<Http1Connection> {
    const stream = await this.o.dial();
    const c = new Http1Connection(stream, this);
    // Retired while dialling: it still serves this request, then closes (park()).
    this.all.add(c);
    return c;
  }

  /** A connection taken but not used (its try was abandoned before sending): back to the pool. */
  giveBack(c: Http1Connection): void {
    if (c.busy || c.destroyed) return;
    this.park(c, undefined);
  }

  onFree(c: Http1Connection, keepAliveHintMs: number | undefined): void {
    const max = this.o.maxRequestsPerConnection;
    if (max !== undefined && max > 0 && c.requests >= max) {
      this.o.onRetired();
      c.destroy();
      return;
    }
    this.park(c, keepAliveHintMs);
  }

  onGone(c: Http1Connection): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  private park(c: Http1Connection, keepAliveHintMs: number | undefined): void {
    const timeoutMs = keepAliveHintMs === undefined ? this.o.idleTimeoutMs() : Math.min(keepAliveHintMs, this.o.idleTimeoutMs());
    if (this.retired || this.idle.length >= this.o.maxIdle || timeoutMs <= 0) {
      c.destroy();
      return;
    }
    c.idleTimer = setTimeout(() => c.destroy(), timeoutMs);
    c.idleTimer.unref();
    this.idle.push(c);
  }

  get active(): number {
    return this.all.size - this.idle.length;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Idle connections close now, busy ones once their response completed. */
  retire(): void {
    this.retired = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  /** Every connection closes now (requests in flight fail). */
  destroy(): void {
    this.retired = true;
    for (const c of [...this.all]) c.destroy();
    this.idle.length = 0;
  }
}
