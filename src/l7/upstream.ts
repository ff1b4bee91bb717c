/**
 * Upstream connections of the waypoint, pooled per endpoint:
 * - HTTP/1.1: one keep-alive `http.Agent` per endpoint whose connections are HBONE CONNECT
 *   streams to `<endpoint>:15008` with `:authority <endpoint>:<port>` (mesh endpoints) or plain
 *   TCP sockets (`hbone: false`). Idle connections are reused LIFO and closed after
 *   `idleTimeoutMs` (or the server's `Keep-Alive: timeout` hint, which Node's Agent honours).
 * - HTTP/2 (h2c, gRPC): one `http2` client session per endpoint over such a stream, shared by
 *   all requests (streams are multiplexed; nghttp2 queues beyond the peer's concurrency limit).
 *   A session that closes, errors or gets GOAWAY is forgotten; the next request dials anew.
 *   Concurrent first requests share one dial.
 * - Raw streams (L4 passthrough) are not pooled.
 * When an endpoint leaves the config (`retain`), its idle connections close at once and its
 * busy ones finish their requests first: a config update never fails a request in flight.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../telemetry/logger.js';
import { endpointKey } from './balancer.js';
import type { Endpoint } from './config.js';

export interface UpstreamDialer {
  /** A connected byte stream to the endpoint's target port: HBONE tunnel or TCP, per `endpoint.hbone`. */
  connect(endpoint: Endpoint): Promise<Duplex>;
}

export interface UpstreamPoolsOptions {
  dialer: UpstreamDialer;
  logger: Logger;
  /** Idle keep-alive connections (and h2 sessions) are closed after this long. Default 30 s. */
  idleTimeoutMs?: number;
  /** Idle HTTP/1.1 connections kept per endpoint. Default 256. */
  maxFreeSockets?: number;
}

export interface EndpointPoolStats {
  endpoint: string;
  hbone: boolean;
  /** HTTP/1.1 connections opened so far. */
  http1Connects: number;
  http1Active: number;
  http1Idle: number;
  /** HTTP/2 sessions opened so far. */
  http2Connects: number;
  http2Live: boolean;
  connectFailures: number;
}

interface EndpointPool {
  key: string;
  endpoint: Endpoint;
  agent: TunnelAgent;
  h2?: Promise<http2.ClientHttp2Session>;
  h2Session?: http2.ClientHttp2Session;
  stats: { http1Connects: number; http2Connects: number; connectFailures: number };
}

type CreateConnectionCallback = (err: Error | null, stream: Duplex) => void;

/**
 * Node's HTTP client calls a few net.Socket methods on its connections (setKeepAlive, ref,
 * unref, setNoDelay) without checking; an HTTP/2 CONNECT stream has none of them.
 *
 * Strings are turned into Buffers before they reach an HTTP/2 stream: Node 20's Http2Stream
 * corrupts a corked write of a latin1 string (the HTTP/1.1 head) followed by Buffers (the body)
 * — the head's first bytes arrive as garbage (seen as 400s on PUT/POST through a tunnel).
 */
export function socketLike<T extends Duplex>(stream: T): T {
  const s = stream as unknown as Record<string, unknown>;
  for (const name of ['setKeepAlive', 'setNoDelay', 'ref', 'unref', 'setTimeout'] as const) {
    if (typeof s[name] !== 'function') s[name] = () => stream;
  }
  if (!(stream instanceof net.Socket)) {
    const write = stream.write.bind(stream) as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;
    s.write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean =>
      typeof chunk === 'string' ? write(Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'), typeof encoding === 'function' ? encoding : cb) : write(chunk, encoding, cb);
  }
  return stream;
}

/** An Agent whose connections come from the dialer (asynchronously, through the callback form). */
class TunnelAgent extends http.Agent {
  constructor(
    private readonly pool: () => EndpointPool,
    private readonly dialer: UpstreamDialer,
    opts: http.AgentOptions,
  ) {
    super(opts);
  }

  override createConnection(_options: http.ClientRequestArgs, callback?: CreateConnectionCallback): Duplex | null | undefined {
    const pool = this.pool();
    this.dialer.connect(pool.endpoint).then(
      (stream) => {
        pool.stats.http1Connects++;
        callback?.(null, socketLike(stream));
      },
      (err: Error) => {
        pool.stats.connectFailures++;
        callback?.(markConnectFailure(err), undefined as unknown as Duplex);
      },
    );
    return undefined;
  }
}

const CONNECT_FAILURE = Symbol('amesh.connectFailure');

function markConnectFailure(err: Error): Error {
  (err as Error & { [CONNECT_FAILURE]?: boolean })[CONNECT_FAILURE] = true;
  return err;
}

/** Did this error come from dialling the upstream (no byte of the request was sent)? */
export function isConnectFailure(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { [CONNECT_FAILURE]?: boolean })[CONNECT_FAILURE] === true;
}

export class UpstreamPools {
  private readonly pools = new Map<string, EndpointPool>();
  private readonly idleTimeoutMs: number;
  private closed = false;

  constructor(private readonly opts: UpstreamPoolsOptions) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
  }

  private pool(endpoint: Endpoint): EndpointPool {
    const key = `${endpoint.hbone ? 'hbone' : 'tcp'}|${endpointKey(endpoint)}|${endpoint.identity}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const created: EndpointPool = {
        key,
        endpoint,
        agent: undefined as unknown as TunnelAgent,
        stats: { http1Connects: 0, http2Connects: 0, connectFailures: 0 },
      };
      created.agent = new TunnelAgent(() => created, this.opts.dialer, {
        keepAlive: true,
        scheduling: 'lifo',
        maxFreeSockets: this.opts.maxFreeSockets ?? 256,
        timeout: this.idleTimeoutMs,
      });
      pool = created;
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** The keep-alive agent for HTTP/1.1 requests to `endpoint`. */
  agentFor(endpoint: Endpoint): http.Agent {
    return this.pool(endpoint).agent;
  }

  /** A live HTTP/2 session to `endpoint` (prior knowledge, cleartext inside the tunnel). */
  h2SessionFor(endpoint: Endpoint): Promise<http2.ClientHttp2Session> {
    const pool = this.pool(endpoint);
    const live = pool.h2Session;
    if (live && !live.closed && !live.destroyed) return Promise.resolve(live);
    pool.h2 ??= this.dialH2(pool).finally(() => {
      pool.h2 = undefined;
    });
    return pool.h2;
  }

  private async dialH2(pool: EndpointPool): Promise<http2.ClientHttp2Session> {
    let stream: Duplex;
    try {
      stream = await this.opts.dialer.connect(pool.endpoint);
    } catch (err) {
      pool.stats.connectFailures++;
      throw markConnectFailure(err as Error);
    }
    pool.stats.http2Connects++;
    const session = http2.connect(`http://${endpointKey(pool.endpoint)}`, { createConnection: () => stream as net.Socket });
    session.on('error', (err) => this.opts.logger.debug({ endpoint: pool.key, err: err.message }, 'upstream h2 session error'));
    const forget = (): void => {
      if (pool.h2Session === session) pool.h2Session = undefined;
    };
    session.once('close', forget);
    session.once('goaway', () => {
      forget();
      if (!session.closed) session.close();
    });
    session.setTimeout(this.idleTimeoutMs, () => {
      forget();
      session.close();
    });
    pool.h2Session = session;
    if (this.closed) session.destroy();
    return session;
  }

  /** Endpoint keys still in the config: pools of the others close once their requests end. */
  retain(endpoints: Iterable<Endpoint>): void {
    const keep = new Set<string>();
    for (const e of endpoints) keep.add(`${e.hbone ? 'hbone' : 'tcp'}|${endpointKey(e)}|${e.identity}`);
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      retireAgent(pool.agent);
      pool.h2Session?.close();
      void pool.h2?.then(
        (s) => s.close(),
        () => undefined,
      );
    }
  }

  stats(): EndpointPoolStats[] {
    return [...this.pools.values()].map((p) => ({
      endpoint: endpointKey(p.endpoint),
      hbone: p.endpoint.hbone,
      http1Connects: p.stats.http1Connects,
      http1Active: countSockets(p.agent.sockets),
      http1Idle: countSockets(p.agent.freeSockets),
      http2Connects: p.stats.http2Connects,
      http2Live: Boolean(p.h2Session && !p.h2Session.closed && !p.h2Session.destroyed),
      connectFailures: p.stats.connectFailures,
    }));
  }

  /** Destroys every pooled connection (requests in flight fail). */
  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) {
      pool.agent.destroy();
      pool.h2Session?.destroy();
      void pool.h2?.then(
        (s) => s.destroy(),
        () => undefined,
      );
    }
    this.pools.clear();
  }
}

function countSockets(map: NodeJS.ReadOnlyDict<unknown[]>): number {
  let n = 0;
  for (const list of Object.values(map)) n += list?.length ?? 0;
  return n;
}

/** Idle sockets close now; busy ones are closed when their request ends (keepAlive off). */
function retireAgent(agent: http.Agent): void {
  (agent as http.Agent & { keepAlive: boolean }).keepAlive = false;
  for (const list of Object.values(agent.freeSockets)) for (const s of list ?? []) s.destroy();
}
