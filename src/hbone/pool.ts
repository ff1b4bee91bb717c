/**
 * HBONE connection pool (DESIGN §4), after ztunnel's `proxy/pool.rs`.
 *
 * Guarantees:
 * - Key = {source identity, sorted expected identities, next hop}: a connection is only
 *   reused for the same client certificate and the same server verification.
 * - At most `maxStreamsPerConnection` (100) streams per connection — and never more than the
 *   server's SETTINGS_MAX_CONCURRENT_STREAMS; beyond that another connection is opened.
 * - Concurrent first dials to one key share ONE connection: a slot is reserved on the
 *   connection while it is still dialling. A failed dial rejects every waiter and is
 *   forgotten, so the next call dials afresh.
 * - A connection with no streams is closed after `idleTimeoutMs` (5 min; 0: as its last stream
 *   ends, so with one stream per connection every CONNECT pays a handshake). Sessions that close,
 *   get GOAWAY or miss PINGs leave the pool at once; a CONNECT that failed because its
 *   session died before answering, or that the peer refused unprocessed (REFUSED_STREAM, as
 *   under GOAWAY; ENHANCE_YOUR_CALM, as Node's HTTP/2 server answers a new stream once the
 *   session is at its stream or memory cap), is retried (twice at most) on a fresh connection,
 *   and the refusing connection is retired: its open streams finish, no new ones go to it.
 * - At most `maxPendingConnects` CONNECTs per key wait for their dial or answer at once; one more
 *   fails at once with HbonePoolOverloadedError (a destination that does not keep up must not
 *   collect sockets and memory here).
 * - `drain()` refuses new streams and lets open ones finish (GOAWAY); `close()` destroys all.
 * - Certificate rotation: a connection is reused only while the source identity's current
 *   SecureContext is the one it was dialled with. After a rotation (or a trust-bundle change)
 *   the old connection is retired — its open streams finish undisturbed — and new streams go
 *   on a connection made with the new certificate.
 * - Certificate expiry: a connection is not handed out once the peer's certificate or ours on
 *   it has expired (the handshake checked them only once; issue #12). It is retired like a
 *   rotated one, and the next stream dials afresh — whose handshake then fails cleanly if no
 *   valid certificate is to be had.
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { AmeshError, isAmeshError } from '../errors/amesh-error.js';
import { toSpiffeUri, type WorkloadIdentity } from '../identity/spiffe.js';
import type { Logger } from '../telemetry/logger.js';
import { dialHbone, HboneRefusedError, openConnectStream, type ConnectHeaders } from './client.js';
import type { EarlyData } from './early-data.js';
import { formatAuthority } from './headers.js';
import { HBONE_H2_SETTINGS } from './settings.js';
import { allSettledWithin } from '../net/within.js';

export interface HbonePoolOptions {
  certificates: { secureContext(id: WorkloadIdentity): Promise<tls.SecureContext> };
  /** A connected TCP socket to host:port (marks, timeouts: the caller's socket factory). Default: net.connect. */
  connectSocket?: (host: string, port: number) => Promise<net.Socket>;
  logger: Logger;
  maxStreamsPerConnection?: number;
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** CONNECTs per key waiting for their dial or the peer's answer; default HBONE_H2_SETTINGS.maxPendingConnects. */
  maxPendingConnects?: number;
  /** Clock for certificate expiry (ms since epoch); default Date.now. */
  now?: () => number;
}

/**
 * Too many CONNECTs to one destination are waiting already: refused without dialling or queueing.
 */
export class HbonePoolOverloadedError extends AmeshError {
  constructor(
    readonly peer: string,
    readonly limit: number,
  ) {
    super('AMESH_HBONE_POOL_OVERLOADED', `${limit} CONNECTs to ${peer} are already waiting for their connection or answer`, {
      hint: 'the destination (or the path to it) is not keeping up; raise AMESH_HBONE_MAX_PENDING_CONNECTS if this load is expected',
    });
  }
}

export interface HboneConnectOptions {
  sourceIdentity: WorkloadIdentity;
  /** The server's URI SAN must be one of these. */
  expectedIdentities: string[];
  nextHop: { host: string; port: number };
  /** `:authority` of the CONNECT: the destination as dialled, `ip:port` / `[v6]:port`. */
  authority: string;
  headers: ConnectHeaders;
  /** This caller's cap on CONNECTs waiting for the key (its configuration); default the pool's maxPendingConnects. */
  maxPending?: number;
  /** The client's bytes to send before the 200 (and to replay on a retried CONNECT); see early-data.ts. */
  early?: EarlyData;
}

export interface HbonePoolStats {
  connections: number;
  dialing: number;
  streams: number;
  dials: number;
  keys: Array<{ key: string; connections: number; streams: number }>;
}

interface PooledConnection {
  id: number;
  key: string;
  peer: string;
  ready: Promise<http2.ClientHttp2Session>;
  session?: http2.ClientHttp2Session;
  /** The client certificate context it was dialled with. */
  secureContext: tls.SecureContext;
  /** Earliest notAfter (ms) of the peer's certificate and ours on this connection, once established. */
  notAfterMs?: number;
  /** Reserved + open streams. */
  streams: number;
  dead: boolean;
  idleTimer?: NodeJS.Timeout;
}

export function poolKey(opts: Pick<HboneConnectOptions, 'sourceIdentity' | 'expectedIdentities' | 'nextHop'>): string {
  return `${toSpiffeUri(opts.sourceIdentity)}|${[...opts.expectedIdentities].sort().join(',')}|${formatAuthority(opts.nextHop.host, opts.nextHop.port)}`;
}

export class HbonePool {
  private readonly byKey = new Map<string, PooledConnection[]>();
  private readonly maxStreams: number;
  private readonly maxPending: number;
  private readonly pendingByKey = new Map<string, number>();
  private readonly idleTimeoutMs: number;
  /** Every established session until it closes, pooled or retired. */
  private readonly live = new Set<http2.ClientHttp2Session>();
  private nextId = 1;
  private dials = 0;
  private draining = false;
  private readonly connectSocket: (host: string, port: number) => Promise<net.Socket>;
  private readonly now: () => number;

  constructor(private readonly opts: HbonePoolOptions) {
    this.now = opts.now ?? Date.now;
    this.connectSocket = opts.connectSocket ?? ((host, port) => plainConnect(host, port, opts.handshakeTimeoutMs ?? HBONE_H2_SETTINGS.handshakeTimeoutMs));
    this.maxStreams = opts.maxStreamsPerConnection ?? HBONE_H2_SETTINGS.maxStreamsPerConnection;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? HBONE_H2_SETTINGS.idleTimeoutMs;
    this.maxPending = opts.maxPendingConnects ?? HBONE_H2_SETTINGS.maxPendingConnects;
    if (!(this.maxPending >= 1)) throw new AmeshError('AMESH_CONFIG_INVALID', `maxPendingConnects ${this.maxPending}: expected at least 1`);
    if (!(this.maxStreams >= 1)) throw new AmeshError('AMESH_CONFIG_INVALID', `maxStreamsPerConnection ${this.maxStreams}: expected at least 1`);
    if (!(this.idleTimeoutMs >= 0)) throw new AmeshError('AMESH_CONFIG_INVALID', `idleTimeoutMs ${this.idleTimeoutMs}: expected 0 or more`);
  }

  /** A CONNECT stream to `authority` through `nextHop`, after the peer answered 200. */
  async connect(req: HboneConnectOptions): Promise<Duplex> {
    if (this.draining) throw new AmeshError('AMESH_SHUTTING_DOWN', 'HBONE pool is draining');
    if (req.expectedIdentities.length === 0) {
      throw new AmeshError('AMESH_HBONE_PEER_REJECTED', `no expected identity for ${formatAuthority(req.nextHop.host, req.nextHop.port)}`, { hint: 'the destination workload has no service account / trust domain in the mesh state' });
    }
    const key = poolKey(req);
    const pending = this.pendingByKey.get(key) ?? 0;
    const maxPending = req.maxPending ?? this.maxPending;
    if (pending >= maxPending) {
      throw new HbonePoolOverloadedError(formatAuthority(req.nextHop.host, req.nextHop.port), maxPending);
    }
    this.pendingByKey.set(key, pending + 1);
    try {
      return await this.connectPending(key, req);
    } finally {
      const left = (this.pendingByKey.get(key) ?? 1) - 1;
      if (left > 0) this.pendingByKey.set(key, left);
      else this.pendingByKey.delete(key);
    }
  }

  private async connectPending(key: string, req: HboneConnectOptions): Promise<Duplex> {
    for (let attempt = 0; ; attempt++) {
      const secureContext = await this.opts.certificates.secureContext(req.sourceIdentity);
      if (this.draining) throw new AmeshError('AMESH_SHUTTING_DOWN', 'HBONE pool is draining');
      const conn = this.acquire(key, req, secureContext);
      let session: http2.ClientHttp2Session;
      try {
        session = await conn.ready;
      } catch (err) {
        this.release(conn);
        throw err;
      }
      try {
        const stream = await openConnectStream(session, req.authority, req.headers, conn.peer, req.early);
        stream.once('close', () => this.release(conn));
        return stream;
      } catch (err) {
        this.release(conn);
        // REFUSED_STREAM: the peer did not process the stream (RFC 9113 §8.7) — e.g. it sent
        // GOAWAY (an agent hand-off drains the old one) while our CONNECT was on the wire.
        // ENHANCE_YOUR_CALM before any answer: Node's server refused the stream before its
        // application saw it (session over maxSessionMemory or its stream cap), and keeps
        // refusing on that session, so it is retired like one under GOAWAY.
        const unprocessed = streamRefused(err);
        const sessionDied = !(err instanceof HboneRefusedError) && (session.closed || session.destroyed || conn.dead || unprocessed);
        if (sessionDied) this.retire(conn);
        if (sessionDied && attempt < 2 && !this.draining) continue;
        throw err;
      }
    }
  }

  private capacity(conn: PooledConnection): number {
    const remote = conn.session?.remoteSettings?.maxConcurrentStreams;
    return typeof remote === 'number' && remote > 0 ? Math.min(this.maxStreams, remote) : this.maxStreams;
  }

  /** Reserves a stream slot on a live connection for `key`, dialling one if none has room. */
  private acquire(key: string, req: HboneConnectOptions, secureContext: tls.SecureContext): PooledConnection {
    const now = this.now();
    for (const conn of [...(this.byKey.get(key) ?? [])]) {
      if (conn.dead) continue;
      if (conn.secureContext !== secureContext) {
        this.opts.logger.debug({ peer: conn.peer, connection: conn.id }, 'hbone: retiring a connection made with a rotated certificate');
        this.retire(conn);
      } else if (conn.notAfterMs !== undefined && now >= conn.notAfterMs) {
        this.opts.logger.info({ peer: conn.peer, connection: conn.id, notAfter: new Date(conn.notAfterMs).toISOString() }, 'hbone: retiring a connection whose certificate (ours or the peer\'s) expired');
        this.retire(conn);
      }
    }
    const list = this.byKey.get(key) ?? [];
    for (const conn of list) {
      if (!conn.dead && conn.streams < this.capacity(conn)) {
        conn.streams++;
        if (conn.idleTimer) {
          clearTimeout(conn.idleTimer);
          conn.idleTimer = undefined;
        }
        return conn;
      }
    }
    const conn = this.dial(key, req, secureContext);
    conn.streams = 1;
    list.push(conn);
    this.byKey.set(key, list);
    return conn;
  }

  private dial(key: string, req: HboneConnectOptions, secureContext: tls.SecureContext): PooledConnection {
    const { host, port } = req.nextHop;
    const peer = formatAuthority(host, port);
    const expected = [...req.expectedIdentities];
    const conn: PooledConnection = { id: this.nextId++, key, peer, secureContext, streams: 0, dead: false, ready: Promise.resolve(undefined as never) };
    this.dials++;
    conn.ready = (async () => {
      let socket: net.Socket;
      try {
        socket = await this.connectSocket(host, port);
      } catch (err) {
        throw connectError(err, peer);
      }
      const { session, notAfterMs } = await dialHbone({
        socket,
        secureContext,
        expectedIdentities: expected,
        peer,
        ...(this.opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.opts.handshakeTimeoutMs } : {}),
        ...(this.opts.pingIntervalMs !== undefined ? { pingIntervalMs: this.opts.pingIntervalMs } : {}),
        ...(this.opts.pingTimeoutMs !== undefined ? { pingTimeoutMs: this.opts.pingTimeoutMs } : {}),
      });
      conn.session = session;
      if (notAfterMs !== undefined) conn.notAfterMs = notAfterMs;
      this.live.add(session);
      session.once('close', () => {
        this.live.delete(session);
        this.retire(conn);
      });
      session.once('goaway', () => this.retire(conn));
      // Retired or draining while dialling: the reserved slots still get their streams.
      if ((conn.dead || this.draining) && conn.streams === 0) session.close();
      this.opts.logger.debug({ peer, connection: conn.id, key }, 'hbone: connection established');
      return session;
    })();
    conn.ready.catch((err: unknown) => {
      this.opts.logger.warn({ peer, key, err: isAmeshError(err) ? err.describe() : String(err) }, 'hbone: dial failed');
      this.retire(conn);
    });
    return conn;
  }

  private release(conn: PooledConnection): void {
    conn.streams = Math.max(0, conn.streams - 1);
    if (conn.dead && conn.streams === 0) {
      // Retired while this slot was reserved (see retire): close now that it is done.
      const session = conn.session;
      if (session && !session.closed && !session.destroyed) session.close();
      return;
    }
    if (conn.streams > 0 || conn.dead || conn.idleTimer) return;
    if (this.idleTimeoutMs === 0) {
      this.retire(conn);
      return;
    }
    conn.idleTimer = setTimeout(() => {
      conn.idleTimer = undefined;
      if (conn.streams === 0) {
        this.opts.logger.debug({ peer: conn.peer, connection: conn.id }, 'hbone: closing idle connection');
        this.retire(conn);
      }
    }, this.idleTimeoutMs);
    conn.idleTimer.unref();
  }

  /**
   * Takes a connection out of the pool; open streams finish, no new ones start. The session is
   * closed once no stream slot is reserved: a slot reserved by connect() whose CONNECT is not
   * sent yet (its dial still in flight, e.g. when drain() retires everything) would otherwise
   * be refused (NGHTTP2_REFUSED_STREAM) — a failed connection during an agent hand-off.
   * release() closes it when the last slot is given back.
   */
  private retire(conn: PooledConnection): void {
    if (conn.idleTimer) {
      clearTimeout(conn.idleTimer);
      conn.idleTimer = undefined;
    }
    if (!conn.dead) {
      conn.dead = true;
      const list = this.byKey.get(conn.key);
      if (list) {
        const i = list.indexOf(conn);
        if (i !== -1) list.splice(i, 1);
        if (list.length === 0) this.byKey.delete(conn.key);
      }
    }
    const session = conn.session;
    if (session && conn.streams === 0 && !session.closed && !session.destroyed) session.close();
  }

  private all(): PooledConnection[] {
    return [...this.byKey.values()].flat();
  }

  /** CONNECTs waiting for their dial or answer, per key. */
  pending(): Map<string, number> {
    return new Map(this.pendingByKey);
  }

  stats(): HbonePoolStats {
    const all = this.all();
    return {
      connections: this.live.size,
      dialing: all.filter((c) => !c.session).length,
      streams: all.reduce((n, c) => n + c.streams, 0),
      dials: this.dials,
      keys: [...this.byKey.entries()].map(([key, list]) => ({ key, connections: list.length, streams: list.reduce((n, c) => n + c.streams, 0) })),
    };
  }

  /** No new streams; waits (bounded) for open streams to end (GOAWAY), then returns. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const pending = this.all();
    for (const conn of pending) this.retire(conn);
    // Dials still in flight close their session as soon as it is up (see dial()).
    await Promise.allSettled(pending.map((c) => c.ready));
    const closing = [...this.live].map((s) => (s.destroyed ? Promise.resolve() : new Promise<void>((resolve) => s.once('close', () => resolve()))));
    await allSettledWithin(closing, timeoutMs);
  }

  /** Destroys every session, open streams included. */
  close(): void {
    this.draining = true;
    for (const conn of this.all()) {
      this.retire(conn);
      conn.ready.then(
        (s) => s.destroy(),
        () => undefined,
      );
    }
    for (const session of this.live) session.destroy();
  }
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/**
 * An RST_STREAM, before any answer, that says the peer did not process the CONNECT: REFUSED_STREAM
 * or ENHANCE_YOUR_CALM (openConnectStream wraps Node's stream error as `cause`; an HboneRefusedError
 * — a status the peer answered — never gets here).
 */
function streamRefused(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string; message?: string; rstCode?: number } } | undefined)?.cause;
  if (!cause) return false;
  if (cause.rstCode === NGHTTP2_REFUSED_STREAM || cause.rstCode === NGHTTP2_ENHANCE_YOUR_CALM) return true;
  return cause.code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM|ENHANCE_YOUR_CALM/.test(cause.message ?? '');
}

/** Plain TCP connect with a deadline (no socket marks: tests and capture-less runs). */
function plainConnect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connect ETIMEDOUT ${host}:${port}`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    timer.unref();
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
  });
}

function connectError(err: unknown, peer: string): AmeshError {
  const e = err as Error & { code?: string };
  const message = e?.message ?? String(err);
  if (e?.code === 'ETIMEDOUT' || /timed? ?out/i.test(message)) {
    return new AmeshError('AMESH_HBONE_CONNECT_FAILED', `timed out connecting to ${peer}`, { cause: err, hint: 'is a NetworkPolicy blocking HBONE (port 15008) between the nodes?' });
  }
  if (e?.code === 'ECONNREFUSED' || /ECONNREFUSED|refused/i.test(message)) {
    return new AmeshError('AMESH_HBONE_CONNECT_FAILED', `connection refused by ${peer}`, { cause: err, hint: 'is the node agent (or waypoint) on that node running and listening on 15008?' });
  }
  return new AmeshError('AMESH_HBONE_CONNECT_FAILED', `cannot connect to ${peer}: ${message}`, { cause: err });
}
