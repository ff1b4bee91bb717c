/**
 * Upstream connections of the waypoint, pooled per endpoint:
 * - HTTP/1.1: one keep-alive `http.Agent` per endpoint whose connections are HBONE CONNECT
 *   streams to `<endpoint>:15008` (or `<endpoint.waypoint>:15008`) with `:authority
 *   <endpoint>:<port>` (mesh endpoints) or plain TCP sockets (`hbone: false`); the dialer is
 *   mesh-upstream.ts's. Idle connections are reused LIFO and closed after
 *   `idleTimeoutMs` (or the server's `Keep-Alive: timeout` hint, which Node's Agent honours).
 *   Bodiless requests (most of them) take the lean client instead (`http1PoolFor`,
 *   http1-client/): its own keep-alive connections per endpoint with the same guarantees and
 *   the same stats; requests with bodies, upgrades and mirrors stay on the Agent.
 * - HTTP/2 (h2c, gRPC): one `http2` client session per endpoint over such a stream, shared by
 *   all requests (streams are multiplexed; nghttp2 queues beyond the peer's concurrency limit).
 *   A session that closes, errors or gets GOAWAY is forgotten; the next request dials anew.
 *   Concurrent first requests share one dial.
 * - Raw streams (L4 passthrough) are not pooled.
 * When an endpoint leaves the config (`retain`), its idle connections close at once and its
 * busy ones finish their requests first: a config update never fails a request in flight.
 *
 * A cluster's DestinationRule connectionPool shapes the pools of its endpoints (PoolSettings,
 * passed with every `agentFor` / `h2SessionFor`): `connectTimeoutMs` bounds each dial (on top of
 * the dialer's own deadline; a timeout is a connect failure, `isConnectFailure`), `idleTimeoutMs`
 * replaces the default idle timeout, `maxRequestsPerConnection` closes an HTTP/1.1 connection
 * after that many requests and stops handing out an HTTP/2 session after that many streams (it
 * closes once they have been opened, letting them finish). Pools are per endpoint AND settings:
 * two clusters sharing a pod with different DestinationRules (a subset's override) each get
 * connections shaped as their rule says.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AmeshError } from '../errors/amesh-error.js';
import type { Logger } from '../telemetry/logger.js';
import { endpointKey } from './balancer.js';
import type { ConnectionPool, Endpoint } from './config.js';
import { Http1ConnectionPool } from './http1-client/pool.js';
import { guardHttp2Writes } from './stream-socket.js';

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

/** The part of a cluster's connectionPool that shapes its endpoints' connections. */
export type PoolSettings = Pick<ConnectionPool, 'connectTimeoutMs' | 'idleTimeoutMs' | 'maxRequestsPerConnection'>;

/** An endpoint and the settings of (one of) the clusters it is in; see `retain`. */
export interface PoolTarget {
  endpoint: Endpoint;
  settings?: PoolSettings;
}

export interface EndpointPoolStats {
  endpoint: string;
  hbone: boolean;
  /** The settings this pool was created with (absent = defaults). */
  settings?: PoolSettings;
  /** HTTP/1.1 connections opened so far. */
  http1Connects: number;
  http1Active: number;
  http1Idle: number;
  /** HTTP/2 sessions opened so far. */
  http2Connects: number;
  http2Live: boolean;
  connectFailures: number;
  /** HTTP/1.1 connections closed for reaching maxRequestsPerConnection. */
  http1Retired: number;
  /** HTTP/2 sessions retired for reaching maxRequestsPerConnection. */
  http2Retired: number;
}

interface EndpointPool {
  key: string;
  /** The endpoint part of `key` (transport, address, identity). */
  endpointKey: string;
  endpoint: Endpoint;
  settings: PoolSettings;
  agent: TunnelAgent;
  /** The lean client's connections (bodiless requests); created on first use. */
  http1?: Http1ConnectionPool;
  h2?: Promise<http2.ClientHttp2Session>;
  /** Left the pools (retain/close): a cached lookup must not hand it out any more. */
  retired?: boolean;
  h2Session?: http2.ClientHttp2Session;
  stats: { http1Connects: number; http2Connects: number; connectFailures: number; http1Retired: number; http2Retired: number };
}

/** Streams handed out and opened on an HTTP/2 session that has maxRequestsPerConnection. */
interface StreamBudget {
  reserved: number;
  opened: number;
  /** Streams opened and not yet closed. */
  active: number;
  retired: boolean;
}

type CreateConnectionCallback = (err: Error | null, stream: Duplex) => void;

/**
 * Node's HTTP client calls a few net.Socket methods on its connections (setKeepAlive, ref,
 * unref, setNoDelay) without checking; an HTTP/2 CONNECT stream has none of them. Its writes are
 * guarded against Node 20's corked-write corruption (stream-socket.ts).
 *
 * `destroy()` without an error closes like a socket's: a FIN (END_STREAM) first. The HTTP
 * clients close keep-alive connections that way in normal operation (idle timeout,
 * maxRequestsPerConnection, pool closed); an HTTP/2 stream's own destroy() sends RST_STREAM
 * alone, which the destination agent relays as a reset of the backend's connection (issue #12:
 * a tunnel cut short is a reset, not a FIN). With writes still queued it stays a reset.
 */
export function socketLike<T extends Duplex>(stream: T): T {
  const s = stream as unknown as Record<string, unknown>;
  for (const name of ['setKeepAlive', 'setNoDelay', 'ref', 'unref', 'setTimeout'] as const) {
    if (typeof s[name] !== 'function') s[name] = () => stream;
  }
  if (!(stream instanceof net.Socket)) guardHttp2Writes(stream);
  if ('rstCode' in stream) {
    const h2 = stream as unknown as http2.Http2Stream;
    const destroy = stream.destroy.bind(stream);
    s.destroy = (err?: Error | null): T => {
      // close(NO_ERROR) ends the writable side (END_STREAM) and sends RST_STREAM after it; the
      // stream is destroyed once it closed. Not destroy() right after end(): while the session
      // is writing, nghttp2 would send that RST_STREAM before the queued END_STREAM.
      if (!err && !h2.closed && !h2.destroyed && !h2.writableEnded && h2.writableLength === 0) {
        h2.close(http2.constants.NGHTTP2_NO_ERROR);
        return stream;
      }
      return destroy(err ?? undefined);
    };
  }
  return stream;
}

/**
 * An Agent whose connections come from the dialer (asynchronously, through the callback form).
 * maxRequestsPerConnection is enforced in `keepSocketAlive`, which Node consults each time a
 * request ends and the connection would go back to the free list; a connection is never handed
 * straight to a queued request because the agent has no socket limit (maxSockets Infinity: the
 * circuit breaker queues, not the agent).
 */
class TunnelAgent extends http.Agent {
  private readonly served = new WeakMap<Duplex, number>();

  constructor(
    private readonly pool: () => EndpointPool,
    private readonly dialer: UpstreamDialer,
    opts: http.AgentOptions,
  ) {
    super(opts);
  }

  override keepSocketAlive(socket: Duplex): boolean {
    const pool = this.pool();
    const max = pool.settings.maxRequestsPerConnection;
    if (max !== undefined && max > 0) {
      const served = (this.served.get(socket) ?? 0) + 1;
      this.served.set(socket, served);
      if (served >= max) {
        pool.stats.http1Retired++;
        return false;
      }
    }
    return super.keepSocketAlive(socket) as unknown as boolean;
  }

  override createConnection(_options: http.ClientRequestArgs, callback?: CreateConnectionCallback): Duplex | null | undefined {
    const pool = this.pool();
    dialWithin(this.dialer, pool.endpoint, pool.settings.connectTimeoutMs).then(
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

/** Dials, failing after `timeoutMs` (the cluster's connectTimeout); a late connection is closed. */
function dialWithin(dialer: UpstreamDialer, endpoint: Endpoint, timeoutMs: number | undefined): Promise<Duplex> {
  const dial = dialer.connect(endpoint);
  if (timeoutMs === undefined || !(timeoutMs > 0)) return dial;
  return new Promise<Duplex>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(
        new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `timed out connecting to ${endpointKey(endpoint)} after ${timeoutMs} ms (connectTimeout)`, {
          hint: "the DestinationRule's connectionPool.tcp.connectTimeout; is the endpoint overloaded or unreachable?",
        }),
      );
    }, timeoutMs);
    dial.then(
      (stream) => {
        if (timedOut) {
          stream.destroy();
          return;
        }
        clearTimeout(timer);
        resolve(stream);
      },
      (err: unknown) => {
        if (timedOut) return;
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function endpointPart(endpoint: Endpoint): string {
  // Through a waypoint (Endpoint.waypoint) is another path than straight to the endpoint.
  return `${endpoint.hbone ? 'hbone' : 'tcp'}|${endpointKey(endpoint)}|${endpoint.identity}${endpoint.waypoint ? `|via ${endpoint.waypoint}` : ''}`;
}

function settingsPart(settings: PoolSettings | undefined): string {
  if (!settings) return '';
  const { connectTimeoutMs, idleTimeoutMs, maxRequestsPerConnection } = settings;
  return connectTimeoutMs === undefined && idleTimeoutMs === undefined && maxRequestsPerConnection === undefined ? '' : `${connectTimeoutMs ?? ''}/${idleTimeoutMs ?? ''}/${maxRequestsPerConnection ?? ''}`;
}

/** Only the pool-shaping fields (a whole ConnectionPool may be passed). */
function pickSettings(settings: PoolSettings | undefined): PoolSettings {
  const out: PoolSettings = {};
  if (settings?.connectTimeoutMs !== undefined) out.connectTimeoutMs = settings.connectTimeoutMs;
  if (settings?.idleTimeoutMs !== undefined) out.idleTimeoutMs = settings.idleTimeoutMs;
  if (settings?.maxRequestsPerConnection !== undefined) out.maxRequestsPerConnection = settings.maxRequestsPerConnection;
  return out;
}

export class UpstreamPools {
  private readonly pools = new Map<string, EndpointPool>();
  private readonly idleTimeoutMs: number;
  private readonly streamBudgets = new WeakMap<http2.ClientHttp2Session, StreamBudget>();
  /**
   * The last pool looked up per Endpoint object, with the settings object it was asked with:
   * a config's Endpoint and connectionPool objects stay the same for every request, so the
   * common lookup builds no key strings (`pool()` runs once per request and endpoint).
   */
  private readonly lastLookup = new WeakMap<Endpoint, { settings: PoolSettings | undefined; pool: EndpointPool }>();
  private closed = false;

  constructor(private readonly opts: UpstreamPoolsOptions) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
  }

  private pool(endpoint: Endpoint, settings?: PoolSettings): EndpointPool {
    const last = this.lastLookup.get(endpoint);
    if (last !== undefined && last.settings === settings && !last.pool.retired) return last.pool;
    const found = this.lookup(endpoint, settings);
    this.lastLookup.set(endpoint, { settings, pool: found });
    return found;
  }

  private lookup(endpoint: Endpoint, settings?: PoolSettings): EndpointPool {
    const endpointKeyPart = endpointPart(endpoint);
    const settingsKey = settingsPart(settings);
    const key = settingsKey ? `${endpointKeyPart}|${settingsKey}` : endpointKeyPart;
    let pool = this.pools.get(key);
    if (!pool) {
      const created: EndpointPool = {
        key,
        endpointKey: endpointKeyPart,
        endpoint,
        settings: pickSettings(settings),
        agent: undefined as unknown as TunnelAgent,
        stats: { http1Connects: 0, http2Connects: 0, connectFailures: 0, http1Retired: 0, http2Retired: 0 },
      };
      created.agent = new TunnelAgent(() => created, this.opts.dialer, {
        keepAlive: true,
        scheduling: 'lifo',
        maxFreeSockets: this.opts.maxFreeSockets ?? 256,
        timeout: created.settings.idleTimeoutMs ?? this.idleTimeoutMs,
      });
      pool = created;
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** The keep-alive agent for HTTP/1.1 requests to `endpoint`, shaped by its cluster's `settings`. */
  agentFor(endpoint: Endpoint, settings?: PoolSettings): http.Agent {
    return this.pool(endpoint, settings).agent;
  }

  /**
   * The lean HTTP/1.1 client's keep-alive connections to `endpoint` (http1-client/), shaped by
   * its cluster's `settings` like `agentFor`'s and counted in the same stats.
   */
  http1PoolFor(endpoint: Endpoint, settings?: PoolSettings): Http1ConnectionPool {
    const pool = this.pool(endpoint, settings);
    return (pool.http1 ??= new Http1ConnectionPool({
      dial: () =>
        dialWithin(this.opts.dialer, pool.endpoint, pool.settings.connectTimeoutMs).then(
          (stream) => {
            pool.stats.http1Connects++;
            return socketLike(stream);
          },
          (err: Error) => {
            pool.stats.connectFailures++;
            throw markConnectFailure(err);
          },
        ),
      maxIdle: this.opts.maxFreeSockets ?? 256,
      idleTimeoutMs: () => pool.settings.idleTimeoutMs ?? this.idleTimeoutMs,
      maxRequestsPerConnection: pool.settings.maxRequestsPerConnection,
      onRetired: () => pool.stats.http1Retired++,
    }));
  }

  /**
   * A live HTTP/2 session to `endpoint` (prior knowledge, cleartext inside the tunnel), shaped by
   * its cluster's `settings`. Each call counts as one stream towards maxRequestsPerConnection:
   * call it once per request and open the stream right away.
   */
  h2SessionFor(endpoint: Endpoint, settings?: PoolSettings): Promise<http2.ClientHttp2Session> {
    const pool = this.pool(endpoint, settings);
    const live = pool.h2Session;
    if (live && !live.closed && !live.destroyed) return Promise.resolve(this.reserveStream(pool, live));
    pool.h2 ??= this.dialH2(pool).finally(() => {
      pool.h2 = undefined;
    });
    // Concurrent first requests share one dial; with maxRequestsPerConnection below their number
    // the surplus still rides this session (the limit applies from the next call on).
    return pool.h2.then((session) => this.reserveStream(pool, session));
  }

  private reserveStream(pool: EndpointPool, session: http2.ClientHttp2Session): http2.ClientHttp2Session {
    const budget = this.streamBudgets.get(session);
    if (!budget) return session;
    budget.reserved++;
    const max = pool.settings.maxRequestsPerConnection ?? Infinity;
    if (!budget.retired && budget.reserved >= max) {
      budget.retired = true;
      pool.stats.http2Retired++;
      if (pool.h2Session === session) pool.h2Session = undefined;
    }
    return session;
  }

  /**
   * Closes a retired session once every stream handed out on it has been opened and has ended.
   * Not earlier: a GOAWAY sent while a new stream's HEADERS are still queued makes nghttp2
   * refuse that stream (REFUSED_STREAM).
   */
  private watchStreamBudget(session: http2.ClientHttp2Session): void {
    const budget: StreamBudget = { reserved: 0, opened: 0, active: 0, retired: false };
    this.streamBudgets.set(session, budget);
    const request = session.request.bind(session);
    session.request = ((headers?: http2.OutgoingHttpHeaders, options?: http2.ClientSessionRequestOptions) => {
      const stream = request(headers, options);
      budget.opened++;
      budget.active++;
      stream.once('close', () => {
        budget.active--;
        if (budget.retired && budget.active === 0 && budget.opened >= budget.reserved && !session.closed) session.close();
      });
      return stream;
    }) as typeof session.request;
  }

  private async dialH2(pool: EndpointPool): Promise<http2.ClientHttp2Session> {
    let stream: Duplex;
    try {
      stream = await dialWithin(this.opts.dialer, pool.endpoint, pool.settings.connectTimeoutMs);
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
    if (pool.settings.maxRequestsPerConnection !== undefined && pool.settings.maxRequestsPerConnection > 0) this.watchStreamBudget(session);
    session.setTimeout(pool.settings.idleTimeoutMs ?? this.idleTimeoutMs, () => {
      forget();
      session.close();
    });
    pool.h2Session = session;
    if (this.closed) session.destroy();
    return session;
  }

  /**
   * The pools still needed: the others close once their requests end. An Endpoint keeps every
   * pool of that endpoint (whatever its settings); a PoolTarget keeps exactly the pool of that
   * endpoint with those settings (so a pool whose cluster's settings changed is retired too).
   */
  retain(targets: Iterable<Endpoint | PoolTarget>): void {
    const keepEndpoints = new Set<string>();
    const keepPools = new Set<string>();
    for (const t of targets) {
      if ('endpoint' in t) {
        const settingsKey = settingsPart(t.settings);
        keepPools.add(settingsKey ? `${endpointPart(t.endpoint)}|${settingsKey}` : endpointPart(t.endpoint));
      } else {
        keepEndpoints.add(endpointPart(t));
      }
    }
    for (const [key, pool] of this.pools) {
      if (keepPools.has(key) || keepEndpoints.has(pool.endpointKey)) continue;
      this.pools.delete(key);
      pool.retired = true;
      retireAgent(pool.agent);
      pool.http1?.retire();
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
      ...(Object.keys(p.settings).length > 0 ? { settings: { ...p.settings } } : {}),
      http1Connects: p.stats.http1Connects,
      http1Active: countSockets(p.agent.sockets) + (p.http1?.active ?? 0),
      http1Idle: countSockets(p.agent.freeSockets) + (p.http1?.idleCount ?? 0),
      http2Connects: p.stats.http2Connects,
      http2Live: Boolean(p.h2Session && !p.h2Session.closed && !p.h2Session.destroyed),
      connectFailures: p.stats.connectFailures,
      http1Retired: p.stats.http1Retired,
      http2Retired: p.stats.http2Retired,
    }));
  }

  /** Destroys every pooled connection (requests in flight fail). */
  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) {
      pool.retired = true;
      pool.agent.destroy();
      pool.http1?.destroy();
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
