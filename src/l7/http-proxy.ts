/**
 * The waypoint's HTTP proxy: HTTP/1.1 (an `http.Server`) and HTTP/2 cleartext / gRPC (an
 * `http2` server), neither listening — each tunnelled connection is handed over with
 * `emit('connection')` once sniffed (inbound.ts). Every request is routed (router.ts) against
 * the state current when it arrives, load-balanced (balancer.ts) and proxied to the endpoint over
 * a pooled upstream connection (upstream.ts) of the same protocol the client spoke.
 *
 * Guarantees:
 * - Bodies stream both ways with back-pressure (pipe); nothing buffers a whole body.
 * - Local answers: no route and no default cluster → 404 `NR`; no cluster / no endpoint / all weights 0 → 503
 *   `no healthy upstream` `UH`; connect failure → 503 `UF`; upstream reset before the response
 *   → 503 `UC`; route timeout → 504 `UT`. Each carries `x-amesh-response-flags`. A gRPC client
 *   gets a trailers-only response (`:status 200`, `grpc-status` 14/12…) instead.
 * - Once response headers went out, an upstream failure resets the downstream (h1: the
 *   connection is destroyed, h2: RST_STREAM) — never a truncated body that looks complete.
 * - A downstream that goes away cancels the upstream request (`DC`).
 * - Hop-by-hop headers are stripped both ways; `x-forwarded-for|proto`, `forwarded` and
 *   `x-request-id` are added; `Expect` is dropped upstream (Node already answered 100-continue).
 * - WebSocket / Upgrade: the upstream's 101 is relayed, then bytes flow raw both ways.
 * - Mirrors never delay or fail the main request (filters/mirror.ts).
 * - One access-log line per request.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { describeError } from '../errors/amesh-error.js';
import { relay } from '../net/relay.js';
import type { Logger } from '../telemetry/logger.js';
import { writeAccessLog, type AccessRecord } from './access-log.js';
import { endpointKey, type EndpointState } from './balancer.js';
import type { HeaderMutation, Mirror } from './config.js';
import { addForwardingHeaders } from './filters/forwarding.js';
import { applyHeaderMutations, type MutableHeaders } from './filters/header-mutation.js';
import { isUpgradeRequest, stripHopByHop } from './filters/hop-by-hop.js';
import { DEFAULT_MIRROR_LIMITS, MirrorBudget, shadowAuthority, shouldMirror, type MirrorLimits } from './filters/mirror.js';
import { buildRedirect } from './filters/redirect.js';
import { grpcStatusFor, RESPONSE_FLAGS_HEADER, ResponseFlag } from './response-flags.js';
import { routeRequest, splitTarget, type RouteDecision } from './router.js';
import { isConnectFailure, type UpstreamPools } from './upstream.js';
import { portFor, type ClusterRuntime, type WaypointState } from './waypoint-state.js';

/** Who is on the other end of one tunnelled connection, and what it dialled. */
export interface DownstreamConnection {
  /** The service VIP (or address) and port from the CONNECT `:authority`. */
  host: string;
  port: number;
  /** The HBONE peer's SPIFFE URI. */
  peerIdentity: string;
  /** The original client (HBONE `forwarded`), else the HBONE peer. */
  clientAddress: string;
}

export interface HttpProxyOptions {
  state: () => WaypointState | undefined;
  pools: UpstreamPools;
  logger: Logger;
  accessLog: Logger;
  random?: () => number;
  mirrorLimits?: MirrorLimits;
}

export interface HttpProxyStats {
  requests: number;
  active: number;
  localReplies: Record<string, number>;
  mirrors: ReturnType<MirrorBudget['stats']>;
}

type ForwardDecision = Extract<RouteDecision, { kind: 'forward' }>;

interface Exchange {
  conn: DownstreamConnection;
  record: AccessRecord;
  started: number;
  flags: Set<string>;
}

const NO_CONNECTION: DownstreamConnection = { host: '', port: 0, peerIdentity: '', clientAddress: '' };

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function isGrpc(headers: http2.IncomingHttpHeaders): boolean {
  return headerString(headers['content-type'])?.startsWith('application/grpc') ?? false;
}

/** Request headers without pseudo headers, as a fresh object we own. */
function copyHeaders(headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): MutableHeaders {
  const out: MutableHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':') && v !== undefined) out[k] = v;
  return out;
}

/** Does an HTTP/1.1 request carry a body? (RFC 9112 §6.3: Content-Length or Transfer-Encoding.) */
function hasBody(headers: http.IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export class HttpProxy {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  private readonly h1Connections = new WeakMap<object, DownstreamConnection>();
  private readonly h2Sessions = new WeakMap<http2.Http2Session, DownstreamConnection>();
  private nextH2Connection: DownstreamConnection | undefined;
  private readonly random: () => number;
  private readonly mirrors: MirrorBudget;
  private readonly liveSockets = new Set<Duplex>();
  private readonly liveSessions = new Set<http2.ServerHttp2Session>();
  private counters = { requests: 0, active: 0 };
  private readonly localReplies: Record<string, number> = {};

  constructor(private readonly opts: HttpProxyOptions) {
    this.random = opts.random ?? Math.random;
    this.mirrors = new MirrorBudget(opts.mirrorLimits ?? DEFAULT_MIRROR_LIMITS);
    // No request timeout of Node's own: long uploads and streams are legitimate; routes set theirs.
    this.h1 = http.createServer({ requestTimeout: 0, keepAliveTimeout: 60_000, headersTimeout: 60_000 });
    // A client that half-closes after its request (HTTP/1.0 style, `nc -q`) still gets its
    // response: the node agent relays the FIN, and Node would otherwise abort the request.
    (this.h1 as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.h1.on('request', (req, res) => this.onHttp1Request(req, res));
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.h1.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      if (err.code !== 'ECONNRESET' && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    this.h2 = http2.createServer({ settings: { enablePush: false, initialWindowSize: 1024 * 1024 } });
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      this.h2Sessions.set(session, this.nextH2Connection ?? NO_CONNECTION);
      this.liveSessions.add(session);
      session.once('close', () => this.liveSessions.delete(session));
      session.on('error', () => undefined);
    });
    this.h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onHttp2Stream(stream, headers));
  }

  /** Serves HTTP/1.1 on a sniffed connection. */
  serveHttp1(socket: Duplex, conn: DownstreamConnection): void {
    this.h1Connections.set(socket, conn);
    this.track(socket);
    this.h1.emit('connection', socket);
    socket.resume();
  }

  /** Serves HTTP/2 cleartext (prior knowledge) on a sniffed connection. */
  serveHttp2(socket: Duplex, conn: DownstreamConnection): void {
    this.track(socket);
    this.nextH2Connection = conn;
    try {
      this.h2.emit('connection', socket);
    } finally {
      this.nextH2Connection = undefined;
    }
    socket.resume();
  }

  private track(socket: Duplex): void {
    this.liveSockets.add(socket);
    socket.once('close', () => this.liveSockets.delete(socket));
  }

  stats(): HttpProxyStats {
    return { ...this.counters, localReplies: { ...this.localReplies }, mirrors: this.mirrors.stats() };
  }

  /** GOAWAY to HTTP/2 clients; HTTP/1.1 connections close after their current response. */
  drain(): void {
    for (const s of this.liveSessions) s.close();
    this.h1.closeIdleConnections?.();
  }

  close(): void {
    for (const s of this.liveSessions) s.destroy();
    for (const s of this.liveSockets) s.destroy();
  }

  // ---- shared -----------------------------------------------------------------------------

  private begin(conn: DownstreamConnection, protocol: AccessRecord['protocol'], method: string, authority: string, path: string): Exchange {
    this.counters.requests++;
    this.counters.active++;
    return {
      conn,
      started: performance.now(),
      flags: new Set(),
      record: {
        protocol,
        method,
        authority,
        path,
        durationMs: 0,
        responseFlags: '-',
        sourceIdentity: conn.peerIdentity,
        clientAddress: conn.clientAddress,
        destination: conn.host.includes(':') ? `[${conn.host}]:${conn.port}` : `${conn.host}:${conn.port}`,
      },
    };
  }

  private finish(ex: Exchange, status: number | undefined, error?: string): void {
    this.counters.active = Math.max(0, this.counters.active - 1);
    ex.record.durationMs = Math.round((performance.now() - ex.started) * 1000) / 1000;
    if (status !== undefined) ex.record.status = status;
    if (ex.flags.size > 0) ex.record.responseFlags = [...ex.flags].join(',');
    if (error) ex.record.error = error;
    writeAccessLog(this.opts.accessLog, ex.record);
  }

  private countLocal(flag: string): void {
    this.localReplies[flag] = (this.localReplies[flag] ?? 0) + 1;
  }

  private decide(conn: DownstreamConnection, method: string, target: string, headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders, authority: string): { state: WaypointState; decision: RouteDecision } | undefined {
    const state = this.opts.state();
    if (!state) return undefined;
    const port = portFor(state, conn.host, conn.port);
    if (!port) return undefined;
    const { path, query } = splitTarget(target);
    return { state, decision: routeRequest(port, { method, path, query, headers, authority }, this.random) };
  }

  private pickEndpoint(state: WaypointState, cluster: string): { runtime: ClusterRuntime; endpoint: EndpointState } | undefined {
    const runtime = state.clusters.get(cluster);
    const endpoint = runtime?.balancer.pick();
    return runtime && endpoint ? { runtime, endpoint } : undefined;
  }

  private upstreamHeaders(source: http.IncomingHttpHeaders | http2.IncomingHttpHeaders, d: ForwardDecision, ex: Exchange, upgrade: boolean): MutableHeaders {
    const headers = copyHeaders(source);
    stripHopByHop(headers, { upgrade });
    delete headers.expect;
    delete headers.host;
    ex.record.requestId = addForwardingHeaders(headers, { clientAddress: ex.conn.clientAddress, proto: headerString(source['x-forwarded-proto']) === 'https' ? 'https' : 'http' });
    applyHeaderMutations(headers, d.requestHeaders);
    return headers;
  }

  private responseHeaders(source: http.IncomingHttpHeaders | http2.IncomingHttpHeaders, mutations: readonly HeaderMutation[]): MutableHeaders {
    const headers = copyHeaders(source);
    stripHopByHop(headers);
    applyHeaderMutations(headers, mutations);
    return headers;
  }

  // ---- HTTP/1.1 ---------------------------------------------------------------------------

  private onHttp1Request(req: http.IncomingMessage, res: http.ServerResponse): void {
    const conn = this.h1Connections.get(req.socket) ?? NO_CONNECTION;
    const method = req.method ?? 'GET';
    const authority = req.headers.host ?? `${conn.host}:${conn.port}`;
    const target = req.url ?? '/';
    const ex = this.begin(conn, 'HTTP/1.1', method, authority, target);
    const routed = this.decide(conn, method, target, req.headers, authority);
    if (!routed) return this.localHttp1(res, ex, 503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
    const { state, decision: d } = routed;
    if (d.kind !== 'no-route') ex.record.route = d.route;
    switch (d.kind) {
      case 'no-route':
        return this.localHttp1(res, ex, 404, ResponseFlag.NoRoute, 'route not found');
      case 'no-backend':
        return this.localHttp1(res, ex, 503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
      case 'direct-response':
        return this.localHttp1(res, ex, d.status, ResponseFlag.DirectResponse, d.body ?? '', d.responseHeaders);
      case 'redirect': {
        const { path, query } = splitTarget(target);
        const r = buildRedirect({ scheme: headerString(req.headers['x-forwarded-proto']) === 'https' ? 'https' : 'http', authority, path, query }, d.redirect, d.matchedPrefix);
        return this.localHttp1(res, ex, r.status, ResponseFlag.DirectResponse, '', d.responseHeaders, { location: r.location });
      }
      case 'forward':
        return this.forwardHttp1(req, res, ex, state, d);
    }
  }

  private localHttp1(res: http.ServerResponse, ex: Exchange, status: number, flag: string, body: string, mutations: readonly HeaderMutation[] = [], extra: MutableHeaders = {}): void {
    ex.flags.add(flag);
    this.countLocal(flag);
    const headers: MutableHeaders = { ...extra, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) };
    if (flag !== ResponseFlag.DirectResponse) headers[RESPONSE_FLAGS_HEADER] = flag;
    applyHeaderMutations(headers, mutations);
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(status, headers as http.OutgoingHttpHeaders);
      res.end(body);
    }
    this.finish(ex, status);
  }

  private forwardHttp1(req: http.IncomingMessage, res: http.ServerResponse, ex: Exchange, state: WaypointState, d: ForwardDecision): void {
    ex.record.cluster = d.cluster;
    const picked = this.pickEndpoint(state, d.cluster);
    if (!picked) return this.localHttp1(res, ex, 503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
    const { runtime, endpoint } = picked;
    ex.record.upstreamHost = endpoint.key;
    const headers = this.upstreamHeaders(req.headers, d, ex, false);
    headers.host = d.authority;
    const body = hasBody(req.headers);
    runtime.balancer.started(endpoint);
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (status: number | undefined, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      runtime.balancer.finished(endpoint);
      this.finish(ex, status, error);
    };
    const send = (attempt: number): http.ClientRequest => {
      const upstream = http.request({
        agent: this.opts.pools.agentFor(endpoint.endpoint),
        host: endpoint.endpoint.address,
        port: endpoint.endpoint.port,
        method: req.method,
        path: d.path,
        headers: headers as http.OutgoingHttpHeaders,
      });
      let connected = false;
      upstream.once('socket', () => {
        connected = true;
      });
      upstream.on('response', (upRes) => {
        runtime.balancer.connectSucceeded(endpoint);
        const status = upRes.statusCode ?? 502;
        if (res.destroyed) {
          upRes.destroy();
          return;
        }
        res.writeHead(status, this.responseHeaders(upRes.headers, d.responseHeaders) as http.OutgoingHttpHeaders);
        upRes.pipe(res);
        upRes.once('error', () => res.destroy());
        upRes.once('aborted', () => {
          ex.flags.add(ResponseFlag.UpstreamConnectionTermination);
          res.destroy();
        });
        res.once('finish', () => settle(status));
      });
      upstream.on('error', (err) => {
        if (done || upstream !== current) return;
        if (!res.headersSent) {
          if (isConnectFailure(err) || !connected) {
            runtime.balancer.connectFailed(endpoint);
            return void this.failHttp1(res, ex, 503, ResponseFlag.UpstreamConnectionFailure, `upstream connect error or disconnect/reset before headers. reset reason: connection failure`, settle, err);
          }
          // A pooled connection the server closed while we reused it (the keep-alive race):
          // nothing of a bodiless request reached the application, so send it once more on a
          // fresh connection, as Node's documentation advises for `reusedSocket`.
          if (upstream.reusedSocket && !body && attempt === 0) {
            current = send(1);
            current.end();
            return;
          }
          return void this.failHttp1(res, ex, 503, ResponseFlag.UpstreamConnectionTermination, 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', settle, err);
        }
        ex.flags.add(ResponseFlag.UpstreamConnectionTermination);
        res.destroy();
        settle(res.statusCode, describeError(err).split('\n')[0]);
      });
      return upstream;
    };
    let current = send(0);
    res.once('close', () => {
      if (done) return;
      if (!res.writableFinished) {
        ex.flags.add(ResponseFlag.DownstreamConnectionTermination);
        current.destroy();
        settle(res.headersSent ? res.statusCode : undefined);
      }
    });
    if (d.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        if (done) return;
        current.destroy();
        if (!res.headersSent) return void this.failHttp1(res, ex, 504, ResponseFlag.UpstreamRequestTimeout, 'upstream request timeout', settle);
        ex.flags.add(ResponseFlag.UpstreamRequestTimeout);
        res.destroy();
        settle(res.statusCode);
      }, d.timeoutMs);
    }
    const mirrors = d.mirrors.length > 0 ? this.startMirrors(state, d, req.method ?? 'GET', headers, body) : [];
    if (body) {
      req.pipe(current);
      for (const m of mirrors) {
        req.on('data', (chunk: Buffer) => {
          if (m.destroyed) return;
          if (m.writableLength > this.mirrors.limits.maxBufferedBytes) m.destroy();
          else m.write(chunk);
        });
        req.once('end', () => m.end());
      }
    } else {
      current.end();
      for (const m of mirrors) m.end();
      req.resume();
    }
  }

  private failHttp1(res: http.ServerResponse, ex: Exchange, status: number, flag: string, body: string, settle: (status: number | undefined, error?: string) => void, err?: unknown): void {
    ex.flags.add(flag);
    this.countLocal(flag);
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), [RESPONSE_FLAGS_HEADER]: flag });
      res.end(body);
    }
    settle(status, err === undefined ? undefined : describeError(err).split('\n')[0]);
  }

  /** Fire-and-forget copies; their bodies are fed by the caller. */
  private startMirrors(state: WaypointState, d: ForwardDecision, method: string, headers: MutableHeaders, body: boolean): http.ClientRequest[] {
    const out: http.ClientRequest[] = [];
    for (const mirror of d.mirrors) {
      const req = this.mirrorRequest(state, mirror, method, d, headers, body);
      if (req) out.push(req);
    }
    return out;
  }

  private mirrorRequest(state: WaypointState, mirror: Mirror, method: string, d: ForwardDecision, headers: MutableHeaders, body: boolean): http.ClientRequest | undefined {
    if (!shouldMirror(mirror.percent, this.random)) return undefined;
    const picked = this.pickEndpoint(state, mirror.cluster);
    if (!picked || !this.mirrors.tryAcquire()) return undefined;
    const { endpoint } = picked;
    const req = http.request({
      agent: this.opts.pools.agentFor(endpoint.endpoint),
      host: endpoint.endpoint.address,
      port: endpoint.endpoint.port,
      method,
      path: d.path,
      headers: { ...headers, host: shadowAuthority(d.authority) } as http.OutgoingHttpHeaders,
    });
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.mirrors.release();
    };
    req.on('response', (res) => {
      res.resume();
      res.once('end', release);
      res.once('close', release);
    });
    req.on('error', (err) => {
      this.opts.logger.debug({ cluster: mirror.cluster, err: err.message }, 'mirror request failed');
      release();
    });
    req.once('close', release);
    if (!body) req.end();
    return req;
  }

  // ---- Upgrade (WebSocket) ----------------------------------------------------------------

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const conn = this.h1Connections.get(socket) ?? this.h1Connections.get(req.socket) ?? NO_CONNECTION;
    socket.on('error', () => undefined);
    const method = req.method ?? 'GET';
    const authority = req.headers.host ?? `${conn.host}:${conn.port}`;
    const target = req.url ?? '/';
    const ex = this.begin(conn, 'upgrade', method, authority, target);
    const routed = this.decide(conn, method, target, req.headers, authority);
    const reply = (status: number, flag: string, body: string): void => {
      ex.flags.add(flag);
      this.countLocal(flag);
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${RESPONSE_FLAGS_HEADER}: ${flag}\r\nconnection: close\r\n\r\n${body}`);
      this.finish(ex, status);
    };
    if (!routed) return reply(503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
    const { state, decision: d } = routed;
    if (d.kind === 'no-route') return reply(404, ResponseFlag.NoRoute, 'route not found');
    ex.record.route = d.route;
    if (d.kind !== 'forward') return reply(503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
    ex.record.cluster = d.cluster;
    const picked = this.pickEndpoint(state, d.cluster);
    if (!picked) return reply(503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
    const { runtime, endpoint } = picked;
    ex.record.upstreamHost = endpoint.key;
    const headers = this.upstreamHeaders(req.headers, d, ex, isUpgradeRequest(req.headers as MutableHeaders));
    headers.host = d.authority;
    runtime.balancer.started(endpoint);
    let done = false;
    const settle = (status: number | undefined, error?: string): void => {
      if (done) return;
      done = true;
      runtime.balancer.finished(endpoint);
      this.finish(ex, status, error);
    };
    const upstream = http.request({
      agent: this.opts.pools.agentFor(endpoint.endpoint),
      host: endpoint.endpoint.address,
      port: endpoint.endpoint.port,
      method,
      path: d.path,
      headers: headers as http.OutgoingHttpHeaders,
    });
    upstream.on('upgrade', (upRes: http.IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      runtime.balancer.connectSucceeded(endpoint);
      const resHeaders = copyHeaders(upRes.headers);
      stripHopByHop(resHeaders, { upgrade: true });
      applyHeaderMutations(resHeaders, d.responseHeaders);
      socket.write(rawHead(upRes.statusCode ?? 101, resHeaders));
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      void relay(socket, upSocket).then((r) => settle(upRes.statusCode ?? 101, r.error ? r.error.message : undefined));
    });
    upstream.on('response', (upRes) => {
      // The upstream declined the upgrade: pass its answer on and close.
      const resHeaders = this.responseHeaders(upRes.headers, d.responseHeaders);
      resHeaders.connection = 'close';
      const status = upRes.statusCode ?? 502;
      socket.write(rawHead(status, resHeaders));
      upRes.pipe(socket);
      upRes.once('end', () => settle(status));
    });
    upstream.on('error', (err) => {
      if (done) return;
      if (isConnectFailure(err)) runtime.balancer.connectFailed(endpoint);
      const flag = isConnectFailure(err) ? ResponseFlag.UpstreamConnectionFailure : ResponseFlag.UpstreamConnectionTermination;
      ex.flags.add(flag);
      const body = 'upstream connect error or disconnect/reset before headers';
      if (socket.writable) socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${RESPONSE_FLAGS_HEADER}: ${flag}\r\nconnection: close\r\n\r\n${body}`);
      settle(503, err.message);
    });
    upstream.end();
  }

  // ---- HTTP/2 / gRPC ------------------------------------------------------------------------

  private onHttp2Stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const conn = this.h2Sessions.get(stream.session as http2.ServerHttp2Session) ?? NO_CONNECTION;
    const method = headerString(headers[':method']) ?? 'GET';
    const authority = headerString(headers[':authority']) ?? headerString(headers.host) ?? `${conn.host}:${conn.port}`;
    const target = headerString(headers[':path']) ?? '/';
    const grpc = isGrpc(headers);
    const ex = this.begin(conn, 'HTTP/2', method, authority, target);
    const routed = this.decide(conn, method, target, headers, authority);
    if (!routed) return this.localHttp2(stream, ex, grpc, 503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
    const { state, decision: d } = routed;
    if (d.kind !== 'no-route') ex.record.route = d.route;
    switch (d.kind) {
      case 'no-route':
        return this.localHttp2(stream, ex, grpc, 404, ResponseFlag.NoRoute, 'route not found');
      case 'no-backend':
        return this.localHttp2(stream, ex, grpc, 503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
      case 'direct-response':
        return this.localHttp2(stream, ex, false, d.status, ResponseFlag.DirectResponse, d.body ?? '', d.responseHeaders);
      case 'redirect': {
        const { path, query } = splitTarget(target);
        const scheme = headerString(headers[':scheme']) === 'https' ? 'https' : 'http';
        const r = buildRedirect({ scheme, authority, path, query }, d.redirect, d.matchedPrefix);
        return this.localHttp2(stream, ex, false, r.status, ResponseFlag.DirectResponse, '', d.responseHeaders, { location: r.location });
      }
      case 'forward':
        return void this.forwardHttp2(stream, headers, ex, state, d, grpc);
    }
  }

  private localHttp2(stream: http2.ServerHttp2Stream, ex: Exchange, grpc: boolean, status: number, flag: string, body: string, mutations: readonly HeaderMutation[] = [], extra: MutableHeaders = {}): void {
    ex.flags.add(flag);
    this.countLocal(flag);
    if (!stream.destroyed && !stream.headersSent) {
      if (grpc) {
        // Trailers-only (gRPC over HTTP/2: status in the only HEADERS frame).
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatusFor(status)), 'grpc-message': encodeURIComponent(body), [RESPONSE_FLAGS_HEADER]: flag }, { endStream: true });
      } else {
        const headers: MutableHeaders = { ...extra, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) };
        if (flag !== ResponseFlag.DirectResponse) headers[RESPONSE_FLAGS_HEADER] = flag;
        applyHeaderMutations(headers, mutations);
        stream.respond({ ...(headers as http2.OutgoingHttpHeaders), ':status': status });
        stream.end(body);
      }
    }
    this.finish(ex, grpc ? 200 : status);
  }

  private async forwardHttp2(stream: http2.ServerHttp2Stream, reqHeaders: http2.IncomingHttpHeaders, ex: Exchange, state: WaypointState, d: ForwardDecision, grpc: boolean): Promise<void> {
    ex.record.cluster = d.cluster;
    const picked = this.pickEndpoint(state, d.cluster);
    if (!picked) return this.localHttp2(stream, ex, grpc, 503, ResponseFlag.NoHealthyUpstream, 'no healthy upstream');
    const { runtime, endpoint } = picked;
    ex.record.upstreamHost = endpointKey(endpoint.endpoint);
    runtime.balancer.started(endpoint);
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (status: number | undefined, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      runtime.balancer.finished(endpoint);
      this.finish(ex, status, error);
    };
    const fail = (status: number, flag: string, body: string, err?: unknown): void => {
      if (done) return;
      ex.flags.add(flag);
      this.countLocal(flag);
      if (!stream.destroyed && !stream.headersSent) {
        if (grpc) stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatusFor(status)), 'grpc-message': encodeURIComponent(body), [RESPONSE_FLAGS_HEADER]: flag }, { endStream: true });
        else {
          stream.respond({ ':status': status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), [RESPONSE_FLAGS_HEADER]: flag });
          stream.end(body);
        }
      } else stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      settle(grpc ? 200 : status, err === undefined ? undefined : describeError(err).split('\n')[0]);
    };
    if (d.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        upstreamStream?.close(http2.constants.NGHTTP2_CANCEL);
        if (stream.headersSent) {
          ex.flags.add(ResponseFlag.UpstreamRequestTimeout);
          stream.close(http2.constants.NGHTTP2_CANCEL);
          settle(undefined);
        } else fail(504, ResponseFlag.UpstreamRequestTimeout, 'upstream request timeout');
      }, d.timeoutMs);
    }
    let upstreamStream: http2.ClientHttp2Stream | undefined;
    stream.once('close', () => {
      if (done) return;
      ex.flags.add(ResponseFlag.DownstreamConnectionTermination);
      upstreamStream?.close(http2.constants.NGHTTP2_CANCEL);
      settle(undefined);
    });
    let session: http2.ClientHttp2Session;
    try {
      session = await this.opts.pools.h2SessionFor(endpoint.endpoint);
    } catch (err) {
      runtime.balancer.connectFailed(endpoint);
      return fail(503, ResponseFlag.UpstreamConnectionFailure, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure', err);
    }
    if (done) return;
    const headers = this.upstreamHeaders(reqHeaders, d, ex, false);
    const out: http2.OutgoingHttpHeaders = {
      ...(headers as http2.OutgoingHttpHeaders),
      ':method': headerString(reqHeaders[':method']) ?? 'GET',
      ':path': d.path,
      ':authority': d.authority,
      ':scheme': 'http',
    };
    const endStream = stream.endAfterHeaders;
    try {
      upstreamStream = session.request(out, { endStream });
    } catch (err) {
      return fail(503, ResponseFlag.UpstreamConnectionTermination, 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', err);
    }
    const up = upstreamStream;
    up.on('error', () => undefined);
    let trailers: http2.OutgoingHttpHeaders | undefined;
    let status: number | undefined;
    up.on('response', (h) => {
      runtime.balancer.connectSucceeded(endpoint);
      status = Number(h[':status']);
      if (stream.destroyed) return;
      const resHeaders = this.responseHeaders(h, d.responseHeaders);
      if (up.endAfterHeaders) {
        stream.respond({ ...(resHeaders as http2.OutgoingHttpHeaders), ':status': status }, { endStream: true });
        return;
      }
      stream.respond({ ...(resHeaders as http2.OutgoingHttpHeaders), ':status': status }, { waitForTrailers: true });
      up.pipe(stream);
    });
    up.on('trailers', (t) => {
      trailers = copyHeaders(t) as http2.OutgoingHttpHeaders;
    });
    stream.on('wantTrailers', () => {
      try {
        stream.sendTrailers(trailers ?? {});
      } catch {
        stream.close();
      }
    });
    up.once('close', () => {
      if (done) return;
      const code = up.rstCode ?? http2.constants.NGHTTP2_NO_ERROR;
      if (status === undefined) {
        return fail(503, ResponseFlag.UpstreamConnectionTermination, `upstream connect error or disconnect/reset before headers. reset reason: ${code === http2.constants.NGHTTP2_REFUSED_STREAM ? 'refused stream' : 'connection termination'}`);
      }
      if (code !== http2.constants.NGHTTP2_NO_ERROR) {
        ex.flags.add(ResponseFlag.UpstreamConnectionTermination);
        stream.close(code);
        return settle(status);
      }
    });
    stream.once('finish', () => settle(grpc ? 200 : status));
    if (!endStream) stream.pipe(up);
  }
}

function rawHead(status: number, headers: MutableHeaders): string {
  let out = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out += `${name}: ${String(v)}\r\n`;
  }
  return `${out}\r\n`;
}
