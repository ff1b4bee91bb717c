/**
 * The waypoint's HTTP proxy: HTTP/1.1 (an `http.Server`) and HTTP/2 cleartext / gRPC (an
 * `http2` server), neither listening — each tunnelled connection is handed over with
 * `emit('connection')` once sniffed (inbound.ts). Every request runs the same path against the
 * state current when it arrives (Envoy's filter chain order):
 *   authorization (authz/engine.ts: deny → 403 `RBAC` / 401) → route (router.ts) → fault
 *   injection (delay `DI`, abort `FI`) → circuit-breaker admission (overflow → 503 `UO`) → the
 *   tries (pipeline/try-loop.ts: endpoint pick with the consistent-hash key, retries, per-try
 *   timeout) over pooled upstream connections (upstream.ts) of the protocol the client spoke.
 *
 * Guarantees:
 * - Bodies stream both ways with back-pressure; nothing buffers a whole body. A request body is
 *   kept for replay only when its route retries, and only up to RETRY_BODY_LIMIT_BYTES (beyond,
 *   the request simply gets no retry). A response is chosen on its head: a retried one is
 *   dropped before any byte of it went downstream, the kept one streams through.
 * - Local answers: no route and no default cluster → 404 `NR`; no cluster / no endpoint / all
 *   weights 0 → 503 `no healthy upstream` `UH`; connect failure → 503 `UF`; upstream reset
 *   before the response → 503 `UC`; per-try timeout on the last try or route timeout → 504
 *   `UT`; circuit breaker → 503 `UO`; retries exhausted on a retriable answer → that answer plus
 *   `URX` in the log. Each carries `x-amesh-response-flags`. A gRPC client gets a trailers-only
 *   response (`:status 200`, `grpc-status` 14/12/7…) instead.
 * - The route timeout covers the tries, back-offs and the circuit-breaker wait (not a fault
 *   delay: Envoy's fault filter runs before the router starts its timer).
 * - Once response headers went out, an upstream failure resets the downstream (h1: the
 *   connection is destroyed, h2: RST_STREAM) — never a truncated body that looks complete.
 * - A downstream that goes away cancels whatever is pending — fault delay, breaker wait, the
 *   try in flight, a back-off (`DC`).
 * - Hop-by-hop headers are stripped both ways; `x-forwarded-for|proto`, `forwarded` and
 *   `x-request-id` are added; `Expect` is dropped upstream (Node already answered 100-continue).
 * - WebSocket / Upgrade: authorized like any request, then the upstream's 101 is relayed and
 *   bytes flow raw both ways.
 * - At the edge (a gateway's connection, `DownstreamConnection.scheme` set) an HTTP/2 request
 *   that is not gRPC goes upstream as HTTP/1.1: browsers pick h2 by ALPN, applications mostly
 *   speak HTTP/1.1 only. In the mesh (waypoints) the client's protocol is the application's.
 * - Mirrors never delay or fail the main request (pipeline/mirror-requests.ts).
 * - One access-log line per request (tries, authz decision, audit and JWT principal included),
 *   the Istio metrics and the end of the request's trace, all in finish() (pipeline/proxy-telemetry.ts).
 * - Tracing (when configured): a trace per request, a CLIENT span per try whose headers replace
 *   the incoming W3C / B3 trace headers upstream (pipeline/trace-hook.ts); off, they pass through.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex, Readable, Writable } from 'node:stream';
import { describeError } from '../errors/amesh-error.js';
import { relay } from '../net/relay.js';
import type { Logger } from '../telemetry/logger.js';
import type { AccessRecord } from './access-log.js';
import type { AuthzOutcome } from './authz/engine.js';
import type { EndpointState } from './balancer.js';
import type { Endpoint } from './config.js';
import { addForwardingHeaders } from './filters/forwarding.js';
import { applyHeaderMutations, type MutableHeaders } from './filters/header-mutation.js';
import { isUpgradeRequest, stripHopByHop } from './filters/hop-by-hop.js';
import { DEFAULT_MIRROR_LIMITS, MirrorBudget, type MirrorLimits } from './filters/mirror.js';
import { buildRedirect } from './filters/redirect.js';
import type { DownstreamConnection } from './pipeline/downstream-connection.js';
import { bodilessRequestHead } from './http1-client/request-head.js';
import { Http1ServerConnection, type LeanRequest } from './http1-server/connection.js';
import type { Http1DownstreamResponse } from './http1-server/response.js';
import { Http1LeanTry } from './pipeline/http1-lean-try.js';
import { Http1Try } from './pipeline/http1-try.js';
import { Http2Try } from './pipeline/http2-try.js';
import { replyHttp1, replyHttp2, type LocalReply } from './pipeline/local-reply.js';
import { sendMirrors } from './pipeline/mirror-requests.js';
import { requestAttributes } from './pipeline/request-attributes.js';
import { RequestBody } from './pipeline/request-body.js';
import { relayBody } from './pipeline/relay-body.js';
import { forwardedHeaders } from './pipeline/forwarded-headers.js';
import { Cancellation } from './pipeline/cancellation.js';
import { ProxyTelemetry } from './pipeline/proxy-telemetry.js';
import { setTryHeaders, traceIdOf, type RequestTraceHook, type TryTrace } from './pipeline/trace-hook.js';
import { cancellableDelay, runTries, type TryHandle, type TryLoopResult } from './pipeline/try-loop.js';
import { requestHashKey } from './resilience/consistent-hash.js';
import { decideFault, FAULT_ABORT_BODY } from './resilience/fault.js';
import { grpcStatusOf, RETRY_BODY_LIMIT_BYTES, type TryFailure } from './resilience/retry.js';
import { grpcStatusFor, RESPONSE_FLAGS_HEADER, ResponseFlag } from './response-flags.js';
import { routeRequest, splitTarget, type CompiledPort, type RouteDecision } from './router.js';
import { isConnectFailure, type PoolSettings, type UpstreamPools } from './upstream.js';
import { portFor, type ClusterRuntime, type WaypointState } from './waypoint-state.js';

export type { DownstreamConnection } from './pipeline/downstream-connection.js';

export interface HttpProxyOptions {
  state: () => WaypointState | undefined;
  pools: UpstreamPools;
  logger: Logger;
  accessLog: Logger;
  /** Weighted choices, fault draws, retry back-off jitter. Default Math.random. */
  random?: () => number;
  mirrorLimits?: MirrorLimits;
  /** Metrics, access-log gating and tracing; default: access log only, role waypoint. */
  telemetry?: ProxyTelemetry;
  /** Largest request header section taken; larger is answered 431. Default DEFAULT_MAX_REQUEST_HEADER_BYTES. */
  maxRequestHeaderBytes?: number;
}

/** Envoy's default (max_request_headers_kb 60), which Istio's waypoints inherit. */
export const DEFAULT_MAX_REQUEST_HEADER_BYTES = 60 * 1024;
/** At most one "headers too large" warning per this long (the rest are counted in it). */
const HEADER_WARN_INTERVAL_MS = 10_000;

export interface HttpProxyStats {
  requests: number;
  active: number;
  /** HTTP/1.1 requests the lean server answered; connections it handed to Node's server. */
  http1Lean: { requests: number; handedOver: number };
  localReplies: Record<string, number>;
  mirrors: ReturnType<MirrorBudget['stats']>;
}

type ForwardDecision = Extract<RouteDecision, { kind: 'forward' }>;
type Headers = http.IncomingHttpHeaders | http2.IncomingHttpHeaders;
type Allowed = Extract<AuthzOutcome, { allowed: true }>;
/** An HTTP/1.1 try: the lean client's (bodiless requests) or Node's http.request. */
type AnyHttp1Try = Http1Try | Http1LeanTry;
/** What the forwarding uses of either try's response (IncomingMessage or LeanResponse). */
type Http1Response = Readable & { statusCode?: number | undefined; headers: http.IncomingHttpHeaders };

/** A downstream HTTP/1.1 request: Node's server's IncomingMessage, or the lean server's (never with a body). */
type Http1Request = http.IncomingMessage | LeanRequest;

/** One request's bookkeeping for its access-log line, metrics and trace. */
class Exchange {
  /** Response flags so far; created with the first (most requests have none). */
  flags: Set<string> | undefined;
  /** The state the request was routed with (its config's Telemetry gates the log line). */
  state: WaypointState | undefined;
  /** `namespace/hostname`: the dialled service port's, then the cluster's. */
  serviceKey: string | undefined;
  /** The endpoint of the latest try. */
  endpoint: Endpoint | undefined;
  grpc = false;
  grpcStatus: number | undefined;
  /** The gRPC try whose trailers carry grpc-status. */
  grpcTry: Http2Try | undefined;
  requestBytes = 0;
  /** The streamed response body's counter (relayBody), else the local reply's size. */
  responseBody: { bytes: number } | undefined;
  responseBytes = 0;
  trace: RequestTraceHook | undefined;
  lastTry: TryTrace | undefined;
  lastTryStatus: number | undefined;

  constructor(
    readonly conn: DownstreamConnection,
    readonly record: AccessRecord,
    readonly started: number,
  ) {}

  flag(f: string): void {
    (this.flags ??= new Set()).add(f);
  }
}

interface Routed {
  state: WaypointState;
  port: CompiledPort;
  decision: RouteDecision;
  path: string;
  query: string;
}

/** Where a local answer goes. */
interface Responder {
  /** A local answer (nothing when the response already started); returns the status to log. */
  reply(r: LocalReply): number;
}

/**
 * The protocol-specific half of forwarding one request: how to answer locally, start a try,
 * and stream the chosen try's response. The rest (forward()) is shared.
 */
interface Downstream<H extends TryHandle> extends Responder {
  readonly protocol: 'http1' | 'http2';
  readonly grpc: boolean;
  /** The request body, when there is one. */
  readonly body: Readable | undefined;
  /** Is the client already gone? */
  gone(): boolean;
  /** Calls back once if the client goes away before the response completed. */
  onGone(callback: () => void): void;
  /** Starts one try; `feed` sends the request body into it. */
  start(endpoint: EndpointState, feed: ((sink: Writable) => void) | undefined): H;
  /** Sets the next try's trace headers (replacing the incoming ones) on the upstream request. */
  traceHeaders(headers: Readonly<Record<string, string>>): void;
  /** Streams `handle`'s response; `settle` once it completed or failed. Returns the body's byte counter. */
  commit(handle: H, extraHeaders: MutableHeaders | undefined, settle: (status: number | undefined, error?: string) => void, flag: (f: string) => void): { bytes: number } | undefined;
  /** The response started and must be cut (route timeout): reset the downstream. Returns the status to log. */
  reset(): number | undefined;
}

const NO_CONNECTION: DownstreamConnection = { host: '', port: 0, peerIdentity: '', clientAddress: '' };

const RESET_BEFORE_HEADERS = 'upstream connect error or disconnect/reset before headers. reset reason:';

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function isGrpc(headers: http2.IncomingHttpHeaders): boolean {
  return headerString(headers['content-type'])?.startsWith('application/grpc') ?? false;
}

/** Request headers without pseudo headers, as a fresh object we own. */
function copyHeaders(headers: Headers): MutableHeaders {
  const out: MutableHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':') && v !== undefined) out[k] = v;
  return out;
}

/** Does an HTTP/1.1 request carry a body? (RFC 9112 §6.3: Content-Length or Transfer-Encoding.) */
function hasBody(headers: http.IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Puts an authorization outcome in the request's access-log record. */
function recordAuthz(ex: Exchange, outcome: AuthzOutcome): AuthzOutcome {
  if (outcome.allowed) {
    if (outcome.policy) ex.record.authz = outcome.policy;
    if (outcome.audit && outcome.audit.length > 0) ex.record.audit = outcome.audit;
    if (outcome.requestPrincipal) ex.record.requestPrincipal = outcome.requestPrincipal;
  } else ex.record.authz = outcome.policy;
  return outcome;
}

/** The local answer for a request whose tries produced no response. */
function failureReply(failure: TryFailure): LocalReply {
  switch (failure) {
    case 'connect':
      return { status: 503, flag: ResponseFlag.UpstreamConnectionFailure, body: `${RESET_BEFORE_HEADERS} connection failure` };
    case 'refused-stream':
      return { status: 503, flag: ResponseFlag.UpstreamConnectionTermination, body: `${RESET_BEFORE_HEADERS} refused stream` };
    case 'timeout':
      return { status: 504, flag: ResponseFlag.UpstreamRequestTimeout, body: 'upstream request timeout' };
    default:
      return { status: 503, flag: ResponseFlag.UpstreamConnectionTermination, body: `${RESET_BEFORE_HEADERS} connection termination` };
  }
}

const NO_HEALTHY_UPSTREAM: LocalReply = { status: 503, flag: ResponseFlag.NoHealthyUpstream, body: 'no healthy upstream' };
const ROUTE_NOT_FOUND: LocalReply = { status: 404, flag: ResponseFlag.NoRoute, body: 'route not found' };
const ROUTE_TIMEOUT: LocalReply = { status: 504, flag: ResponseFlag.UpstreamRequestTimeout, body: 'upstream request timeout' };
const HEADERS_TOO_LARGE: LocalReply = { status: 431, body: 'request header fields too large' };
const OVERFLOW: LocalReply = { status: 503, flag: ResponseFlag.UpstreamOverflow, body: `${RESET_BEFORE_HEADERS} overflow` };

/** Request headers the proxy sets itself (host) or answered itself (expect: 100-continue). */
const NOT_FORWARDED_UPSTREAM: ReadonlySet<string> = new Set(['host', 'expect']);

const NO_FAULT: ReturnType<typeof decideFault> = Object.freeze({});

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
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
  private readonly leanConnections = new Set<Http1ServerConnection>();
  private readonly http1Lean = { requests: 0, handedOver: 0 };
  private counters = { requests: 0, active: 0 };
  private readonly localReplies: Record<string, number> = {};
  private readonly telemetry: ProxyTelemetry;
  private readonly maxHeaderBytes: number;
  private headerWarning = { at: -Infinity, suppressed: 0 };

  constructor(private readonly opts: HttpProxyOptions) {
    this.maxHeaderBytes = opts.maxRequestHeaderBytes ?? DEFAULT_MAX_REQUEST_HEADER_BYTES;
    this.random = opts.random ?? Math.random;
    this.telemetry = opts.telemetry ?? new ProxyTelemetry({ role: 'waypoint', accessLog: opts.accessLog, logger: opts.logger });
    this.mirrors = new MirrorBudget(opts.mirrorLimits ?? DEFAULT_MIRROR_LIMITS);
    // No request timeout of Node's own: long uploads and streams are legitimate; routes set theirs.
    this.h1 = http.createServer({ requestTimeout: 0, keepAliveTimeout: 60_000, headersTimeout: 60_000, maxHeaderSize: this.maxHeaderBytes });
    // A client that half-closes after its request (HTTP/1.0 style, `nc -q`) still gets its
    // response: the node agent relays the FIN, and Node would otherwise abort the request.
    (this.h1 as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.h1.on('request', (req, res) =>
      this.catching(this.onHttp1Request(req, res), () => {
        if (res.headersSent) res.destroy();
        else res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end('internal error in the waypoint\n');
      }),
    );
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.catching(this.onUpgrade(req, socket, head), () => socket.destroy()));
    this.h1.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      if (err.code === 'HPE_HEADER_OVERFLOW' && socket.writable) {
        this.headersTooLarge('HTTP/1.1');
        socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      } else if (err.code !== 'ECONNRESET' && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    // Node resets a header list over maxHeaderListSize itself (no event, no answer): twice our
    // limit, so a list between the two is answered 431 in onHttp2Stream and counted.
    this.h2 = http2.createServer({ settings: { enablePush: false, initialWindowSize: 1024 * 1024, maxHeaderListSize: this.maxHeaderBytes * 2 } });
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      this.h2Sessions.set(session, this.nextH2Connection ?? NO_CONNECTION);
      this.liveSessions.add(session);
      session.once('close', () => this.liveSessions.delete(session));
      session.on('error', () => undefined);
    });
    this.h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) =>
      this.catching(this.onHttp2Stream(stream, headers, rawHeaders), () => {
        if (stream.destroyed) return;
        if (stream.headersSent) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        else stream.respond({ ':status': 500, 'content-type': 'text/plain' }, { endStream: true });
      }),
    );
  }

  /**
   * Serves HTTP/1.1 on a sniffed connection. `lean`: the lean server (http1-server/) takes the
   * bodiless requests and hands the connection to Node's server at the first request it does
   * not serve; for streams whose bytes reach JavaScript anyway (the waypoint's HBONE streams).
   * Node's server stays the one for TCP and TLS sockets, whose bytes it parses natively.
   */
  serveHttp1(socket: Duplex, conn: DownstreamConnection, lean = false): void {
    this.h1Connections.set(socket, conn);
    this.track(socket);
    if (!lean) return this.serveHttp1WithNode(socket);
    const connection = new Http1ServerConnection(
      socket,
      {
        request: (req, res) => this.onLeanRequest(req, res),
        fallback: (stream) => {
          this.http1Lean.handedOver++;
          this.leanConnections.delete(connection);
          this.serveHttp1WithNode(stream);
        },
      },
      { maxHeaderBytes: this.maxHeaderBytes, keepAliveTimeoutSeconds: Math.floor(this.h1.keepAliveTimeout / 1000) },
    );
    this.leanConnections.add(connection);
    socket.once('close', () => this.leanConnections.delete(connection));
    socket.resume();
  }

  private serveHttp1WithNode(socket: Duplex): void {
    this.h1.emit('connection', socket);
    socket.resume();
  }

  private onLeanRequest(req: LeanRequest, res: Http1DownstreamResponse): void {
    this.http1Lean.requests++;
    this.catching(this.onHttp1Request(req, res), () => {
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end('internal error in the waypoint\n');
    });
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
    return { ...this.counters, http1Lean: { ...this.http1Lean }, localReplies: { ...this.localReplies }, mirrors: this.mirrors.stats() };
  }

  /** GOAWAY to HTTP/2 clients; HTTP/1.1 connections close after their current response. */
  drain(): void {
    for (const s of this.liveSessions) s.close();
    this.h1.closeIdleConnections?.();
    for (const c of this.leanConnections) c.closeWhenIdle();
  }

  close(): void {
    for (const s of this.liveSessions) s.destroy();
    for (const s of this.liveSockets) s.destroy();
  }

  /** Request handlers are async; a bug in one must be logged, never an unhandled rejection. */
  /** A bug in the request path must not leave the client hanging: log it and answer 500 (or reset). */
  private catching(p: Promise<void>, answer: () => void): void {
    p.catch((err: unknown) => {
      this.opts.logger.error({ err: describeError(err) }, 'waypoint: unexpected error handling a request');
      try {
        answer();
      } catch {
        // the downstream is already gone
      }
    });
  }

  // ---- shared -----------------------------------------------------------------------------

  private begin(conn: DownstreamConnection, protocol: AccessRecord['protocol'], method: string, authority: string, path: string, headers: Headers): Exchange {
    this.counters.requests++;
    this.counters.active++;
    const record: AccessRecord = {
      protocol,
      method,
      authority,
      path,
      durationMs: 0,
      responseFlags: '-',
      sourceIdentity: conn.peerIdentity,
      clientAddress: conn.clientAddress,
      destination: '', // filled in by finish(): only the log line needs it
    };
    const ex = new Exchange(conn, record, performance.now());
    const tracing = this.telemetry.tracing;
    if (tracing) {
      ex.trace = tracing.startRequest(headers as Record<string, string | string[] | undefined>, {
        method,
        authority,
        path,
        protocol: protocol === 'upgrade' ? 'HTTP/1.1' : protocol,
        peerIdentity: conn.peerIdentity,
        clientAddress: conn.clientAddress,
        role: this.telemetry.role,
      });
      if (ex.trace?.traceId) record.traceId = ex.trace.traceId;
    }
    return ex;
  }

  private finish(ex: Exchange, status: number | undefined, error?: string): void {
    this.counters.active = Math.max(0, this.counters.active - 1);
    const record = ex.record;
    record.durationMs = Math.round((performance.now() - ex.started) * 1000) / 1000;
    if (status !== undefined) record.status = status;
    if (ex.flags !== undefined) record.responseFlags = [...ex.flags].join(',');
    const conn = ex.conn;
    record.destination = conn.host.includes(':') ? `[${conn.host}]:${conn.port}` : `${conn.host}:${conn.port}`;
    if (error) record.error = error;
    record.bytesReceived = ex.requestBytes;
    record.bytesSent = ex.responseBody ? ex.responseBody.bytes : ex.responseBytes;
    let grpcStatus = ex.grpcStatus;
    if (ex.grpcTry && grpcStatus === undefined) grpcStatus = grpcStatusOf((ex.grpcTry.trailers ?? {}) as Record<string, string | string[]>) ?? grpcStatusOf(ex.grpcTry.head ?? {});
    if (ex.trace) {
      ex.lastTry?.end(status ?? ex.lastTryStatus, error);
      ex.trace.end({ ...(status !== undefined ? { status } : {}), responseFlags: record.responseFlags, ...(record.route !== undefined ? { route: record.route } : {}), ...(error ? { error } : {}) });
    }
    this.telemetry.request(record, { config: ex.state?.config, peer: conn.peer, serviceKey: ex.serviceKey, endpoint: ex.endpoint, grpc: ex.grpc, grpcStatus, port: conn.port });
  }

  /** Logs (rate-limited) a request refused for its header size; HTTP/2's is counted as a local reply, HTTP/1.1's here. */
  private headersTooLarge(protocol: 'HTTP/1.1' | 'HTTP/2'): void {
    if (protocol === 'HTTP/1.1') this.countLocal(String(HEADERS_TOO_LARGE.status));
    const now = Date.now();
    const w = this.headerWarning;
    if (now - w.at < HEADER_WARN_INTERVAL_MS) {
      w.suppressed++;
      return;
    }
    this.opts.logger.warn(
      { reason: 'header_size', protocol, limit: this.maxHeaderBytes, setting: 'AMESH_MAX_REQUEST_HEADER_BYTES', ...(w.suppressed ? { suppressed: w.suppressed } : {}) },
      `overload: answered 431 to a request whose headers exceed ${this.maxHeaderBytes} bytes (raise AMESH_MAX_REQUEST_HEADER_BYTES if such headers are expected)`,
    );
    this.headerWarning = { at: now, suppressed: 0 };
  }

  private countLocal(key: string): void {
    this.localReplies[key] = (this.localReplies[key] ?? 0) + 1;
  }

  /** Answers locally through `down` and logs the request. */
  private local(down: Responder, ex: Exchange, r: LocalReply): void {
    if (r.flag !== undefined) ex.flag(r.flag);
    this.countLocal(r.flag ?? String(r.status));
    this.noteLocalReply(ex, r);
    this.finish(ex, down.reply(r));
  }

  /** A local reply's body size and, to a gRPC client, its grpc-status (a trailers-only answer has no body). */
  private noteLocalReply(ex: Exchange, r: LocalReply): void {
    if (ex.grpc) ex.grpcStatus = r.grpcStatus ?? grpcStatusFor(r.status);
    else ex.responseBytes = Buffer.byteLength(r.body);
  }

  private decide(ex: Exchange, method: string, target: string, headers: Headers, authority: string): Routed | undefined {
    const state = this.opts.state();
    if (!state) return undefined;
    ex.state = state;
    const conn = ex.conn;
    const port = portFor(state, conn.host, conn.port);
    if (!port) return undefined;
    // In the mesh the dialled port is a service's; at the edge it is the gateway's listener, not a destination.
    if (conn.scheme === undefined) ex.serviceKey = port.service.key;
    const { path, query } = splitTarget(target);
    return { state, port, path, query, decision: routeRequest(port, { method, path, query, headers, authority }, this.random) };
  }

  /**
   * Runs the AuthorizationPolicies (and JWT rules) for a request. Undefined = nothing is
   * configured; a denial is logged with the deciding policy.
   */
  /**
   * The AuthorizationPolicy / RequestAuthentication decision, recorded for the access log.
   * Synchronous (no promise, no microtask hop) unless a JWT must be verified: the common path of
   * a waypoint with no policy, or with RBAC only, stays in the tick that parsed the request.
   */
  private authorize(ex: Exchange, r: Routed, method: string, authority: string, headers: Headers): AuthzOutcome | undefined | Promise<AuthzOutcome> {
    const authz = r.state.authz;
    if (authz.empty) return undefined;
    const pending = authz.check(requestAttributes(ex.conn, r.port.service.key, { method, path: r.path, query: r.query, host: authority, headers: headers as Record<string, string | string[] | undefined> }));
    return isThenable(pending) ? pending.then((outcome) => recordAuthz(ex, outcome)) : recordAuthz(ex, pending);
  }

  /** The local answer of a denied request: 403 `RBAC`, or 401 with a Bearer challenge (Envoy's jwt_authn). */
  private denial(outcome: Extract<AuthzOutcome, { allowed: false }>, authority: string, path: string): LocalReply {
    if (outcome.status === 403) return { status: 403, flag: ResponseFlag.RbacAccessDenied, body: outcome.body };
    return { status: 401, body: outcome.body, headers: { 'www-authenticate': `Bearer realm="http://${authority}${path}"` } };
  }

  private upstreamHeaders(source: Headers, d: ForwardDecision, ex: Exchange, upgrade: boolean, allowed: Allowed | undefined): MutableHeaders {
    let headers: MutableHeaders;
    if (upgrade) {
      headers = copyHeaders(source);
      stripHopByHop(headers, { upgrade });
      delete headers.expect;
      delete headers.host;
    } else headers = forwardedHeaders(source, NOT_FORWARDED_UPSTREAM);
    // At the edge (a gateway's connection) the client's own x-forwarded-proto is not trusted.
    const edge = ex.conn.scheme;
    if (edge !== undefined) headers['x-forwarded-proto'] = edge;
    ex.record.requestId = addForwardingHeaders(headers, { clientAddress: ex.conn.clientAddress, proto: edge ?? (headerString(source['x-forwarded-proto']) === 'https' ? 'https' : 'http') });
    // The JWT filter's changes (token removed, payload header) come before the route's own.
    for (const name of allowed?.removeHeaders ?? []) delete headers[name.toLowerCase()];
    for (const [name, value] of Object.entries(allowed?.setHeaders ?? {})) headers[name.toLowerCase()] = value;
    applyHeaderMutations(headers, d.requestHeaders);
    return headers;
  }

  private responseHeaders(source: Headers, d: ForwardDecision, extra: MutableHeaders | undefined): MutableHeaders {
    const headers = forwardedHeaders(source);
    applyHeaderMutations(headers, d.responseHeaders);
    if (extra === undefined) return headers;
    for (const [name, value] of Object.entries(extra)) {
      const current = headers[name];
      headers[name] = current === undefined ? value : [...(Array.isArray(current) ? current : [String(current)]), String(value)];
    }
    return headers;
  }

  /**
   * Everything after routing of a forwarded request: fault, admission, tries, response. Shared
   * by HTTP/1.1 and HTTP/2; `down` does the protocol's part.
   */
  private async forward<H extends TryHandle>(down: Downstream<H>, ex: Exchange, r: Routed, d: ForwardDecision, requestHeaders: Headers): Promise<void> {
    ex.record.cluster = d.cluster;
    const runtime: ClusterRuntime | undefined = r.state.clusters.get(d.cluster);
    if (!runtime) return this.local(down, ex, NO_HEALTHY_UPSTREAM);
    ex.serviceKey = runtime.cluster.service;

    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let release: (() => void) | undefined;
    let committed: { handle: H; endpoint: EndpointState } | undefined;
    const stop = new Cancellation();
    const settle = (status: number | undefined, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stop.abort();
      release?.();
      if (committed) runtime.balancer.finished(committed.endpoint);
      this.finish(ex, status, error);
    };
    const answer = (reply: LocalReply): void => {
      if (done) return;
      if (reply.flag !== undefined) ex.flag(reply.flag);
      this.countLocal(reply.flag ?? String(reply.status));
      this.noteLocalReply(ex, reply);
      settle(down.reply(reply));
    };
    if (down.gone()) {
      ex.flag(ResponseFlag.DownstreamConnectionTermination);
      return settle(undefined);
    }
    down.onGone(() => {
      if (done) return;
      ex.flag(ResponseFlag.DownstreamConnectionTermination);
      committed?.handle.abort();
      settle(undefined);
    });

    // Fault injection: a delay first, then maybe an abort (independent draws).
    const fault = d.fault === undefined ? NO_FAULT : decideFault(d.fault, this.random);
    if (fault.delayMs !== undefined) {
      ex.flag(ResponseFlag.DelayInjected);
      if (!(await cancellableDelay(fault.delayMs, stop)) || done) return;
    }
    if (fault.abort) return answer({ status: fault.abort.httpStatus, grpcStatus: fault.abort.grpcStatus, flag: ResponseFlag.FaultInjected, body: FAULT_ABORT_BODY });

    // The route timeout covers admission, every try and back-off, and the response.
    if (d.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        if (done) return;
        if (!committed) return answer(ROUTE_TIMEOUT);
        ex.flag(ResponseFlag.UpstreamRequestTimeout);
        committed.handle.abort();
        settle(down.reset());
      }, d.timeoutMs);
    }

    // Circuit breaker: a slot for the request's whole life, or wait for one, or 503 UO.
    let admission = runtime.breaker.admit(down.protocol);
    if (admission.kind === 'wait') {
      const waiting = admission;
      const unsubscribe = stop.onAbort(() => waiting.cancel());
      admission = await waiting.ready;
      unsubscribe();
    }
    if (admission.kind === 'go') {
      release = admission.release;
      if (done) return void release();
    }
    if (done) return;
    if (admission.kind !== 'go') return answer(OVERFLOW);

    // Consistent hashing: the request's key, and the cookie to set when the policy made one.
    const hashPolicy = runtime.cluster.hash;
    const hash = hashPolicy ? requestHashKey(hashPolicy, { headers: requestHeaders as Record<string, string | string[] | undefined>, sourceIp: ex.conn.clientAddress, query: r.query }) : undefined;
    const extraHeaders: MutableHeaders | undefined = hash?.setCookie !== undefined ? { 'set-cookie': hash.setCookie } : undefined;

    // The body: kept for replay when the route may retry; else piped once.
    const policy = d.retries;
    const source = down.body;
    let feed: ((sink: Writable) => void) | undefined;
    let canReplay = (): boolean => true;
    if (source && policy) {
      const body = new RequestBody(source, RETRY_BODY_LIMIT_BYTES, ex);
      feed = (sink) => body.attach(sink);
      canReplay = () => body.replayable;
    } else if (source) {
      feed = (sink) => {
        // Counted alongside pipe's own listener (both are added in this tick: no chunk is missed).
        source.on('data', (chunk: Buffer) => (ex.requestBytes += chunk.length));
        source.pipe(sink);
      };
      canReplay = () => false;
    }

    const result: TryLoopResult<H> = await runTries<H>({
      runtime,
      policy,
      hashKey: hash?.key,
      random: this.random,
      canReplay,
      signal: stop,
      start: (endpoint, index) => {
        ex.record.upstreamHost = endpoint.key;
        ex.endpoint = endpoint.endpoint;
        // Recorded as tries start: a route timeout may log the request while one is in flight.
        if (index > 0) ex.record.attempts = index + 1;
        const tryTrace = ex.trace?.startTry({ cluster: d.cluster, endpoint: endpoint.key });
        if (!tryTrace) return down.start(endpoint, feed);
        ex.lastTry?.end(ex.lastTryStatus);
        ex.lastTry = tryTrace;
        ex.lastTryStatus = undefined;
        ex.record.traceId ??= traceIdOf(tryTrace.headers);
        down.traceHeaders(tryTrace.headers);
        const handle = down.start(endpoint, feed);
        void handle.result.then((t) => {
          if (t.kind === 'response') ex.lastTryStatus = t.status;
          else tryTrace.end(undefined, t.failure);
        });
        return handle;
      },
    });
    if (done) {
      // Cancelled meanwhile (downstream gone, route timeout): a kept response goes too.
      if (result.kind === 'response') {
        result.handle.abort();
        runtime.balancer.finished(result.endpoint);
      }
      return;
    }
    if ((result.kind === 'response' || result.kind === 'failure') && result.retryLimited) ex.flag(ResponseFlag.UpstreamRetryLimitExceeded);
    switch (result.kind) {
      case 'cancelled':
        return settle(undefined);
      case 'no-endpoint':
        return answer(NO_HEALTHY_UPSTREAM);
      case 'failure':
        return answer(failureReply(result.failure));
      case 'response':
        committed = { handle: result.handle, endpoint: result.endpoint };
        ex.responseBody = down.commit(result.handle, extraHeaders, settle, (f) => ex.flag(f));
        return;
    }
  }

  // ---- HTTP/1.1 ---------------------------------------------------------------------------

  private async onHttp1Request(req: Http1Request, res: Http1DownstreamResponse): Promise<void> {
    const conn = this.h1Connections.get(req.socket) ?? NO_CONNECTION;
    const method = req.method ?? 'GET';
    const authority = req.headers.host ?? `${conn.host}:${conn.port}`;
    const target = req.url ?? '/';
    const ex = this.begin(conn, 'HTTP/1.1', method, authority, target, req.headers);
    const routed = this.decide(ex, method, target, req.headers, authority);
    if (!routed) return this.local(this.http1Responder(res), ex, NO_HEALTHY_UPSTREAM);
    const d = routed.decision;
    if (d.kind !== 'no-route') ex.record.route = d.route;
    const checked = this.authorize(ex, routed, method, authority, req.headers);
    const outcome = isThenable(checked) ? await checked : checked;
    if (outcome && !outcome.allowed) return this.local(this.http1Responder(res), ex, this.denial(outcome, authority, routed.path));
    switch (d.kind) {
      case 'no-route':
        return this.local(this.http1Responder(res), ex, ROUTE_NOT_FOUND);
      case 'no-backend':
        return this.local(this.http1Responder(res), ex, NO_HEALTHY_UPSTREAM);
      case 'direct-response':
        return this.local(this.http1Responder(res), ex, { status: d.status, flag: ResponseFlag.DirectResponse, body: d.body ?? '', mutations: d.responseHeaders });
      case 'redirect': {
        const r = buildRedirect({ scheme: conn.scheme ?? (headerString(req.headers['x-forwarded-proto']) === 'https' ? 'https' : 'http'), authority, path: routed.path, query: routed.query }, d.redirect, d.matchedPrefix);
        return this.local(this.http1Responder(res), ex, { status: r.status, flag: ResponseFlag.DirectResponse, body: '', mutations: d.responseHeaders, headers: { location: r.location } });
      }
      case 'forward': {
        const headers = this.upstreamHeaders(req.headers, d, ex, false, outcome);
        headers.host = d.authority;
        return this.forward(this.http1Forwarding(req, res, routed, d, headers), ex, routed, d, req.headers);
      }
    }
  }

  private http1Responder(res: Http1DownstreamResponse): Responder {
    return {
      reply: (r) => {
        replyHttp1(res, r);
        return r.status;
      },
    };
  }

  private http1Forwarding(req: Http1Request, res: Http1DownstreamResponse, routed: Routed, d: ForwardDecision, headers: MutableHeaders): Downstream<AnyHttp1Try> {
    const method = req.method ?? 'GET';
    // The lean server's requests have no body (it hands those to Node's server).
    const body = req instanceof http.IncomingMessage && hasBody(req.headers) ? req : undefined;
    let mirrored = d.mirrors.length === 0;
    return {
      reply: (r) => {
        replyHttp1(res, r);
        return r.status;
      },
      protocol: 'http1',
      grpc: false,
      body,
      traceHeaders: (h) => setTryHeaders(headers, h),
      gone: () => res.destroyed,
      onGone: (callback) => {
        res.once('close', () => {
          if (!res.writableFinished) callback();
        });
      },
      start: (endpoint, feed) => {
        if (!mirrored) {
          // In the same tick as the first try takes the body, so both see every chunk.
          mirrored = true;
          sendMirrors({ pools: this.opts.pools, budget: this.mirrors, logger: this.opts.logger, random: this.random }, routed.state, { mirrors: d.mirrors, method, path: d.path, authority: d.authority, headers }, body);
        }
        return this.http1Try(endpoint.endpoint, routed.state.clusters.get(d.cluster)?.cluster.connectionPool, method, d.path, headers, feed);
      },
      commit: (t, extra, settle, flag) => {
        const upRes = t.response as Http1Response;
        const status = upRes.statusCode ?? 502;
        if (res.destroyed) {
          upRes.destroy();
          settle(undefined);
          return undefined;
        }
        res.writeHead(status, this.responseHeaders(upRes.headers, d, extra) as http.OutgoingHttpHeaders);
        const counted = relayBody(upRes, res);
        upRes.once('error', () => res.destroy());
        upRes.once('aborted', () => {
          flag(ResponseFlag.UpstreamConnectionTermination);
          res.destroy();
          settle(status, 'upstream reset after the response started');
        });
        res.once('finish', () => settle(status));
        t.onLateError((err) => {
          flag(ResponseFlag.UpstreamConnectionTermination);
          res.destroy();
          settle(status, describeError(err).split('\n')[0]);
        });
        return counted;
      },
      reset: () => {
        res.destroy();
        return res.statusCode;
      },
    };
  }

  /**
   * One HTTP/1.1 try: a bodiless request whose head Node would accept goes on the lean client
   * (one write, llhttp, no ClientRequest / Agent / IncomingMessage); the rest on http.request.
   */
  private http1Try(endpoint: Endpoint, settings: PoolSettings | undefined, method: string, path: string, headers: MutableHeaders, feed: ((sink: Writable) => void) | undefined): AnyHttp1Try {
    const head = feed ? undefined : bodilessRequestHead(method, path, headers);
    if (head !== undefined) return new Http1LeanTry({ pool: this.opts.pools.http1PoolFor(endpoint, settings), method, head });
    return new Http1Try({ agent: this.opts.pools.agentFor(endpoint, settings), endpoint, method, path, headers, ...(feed ? { feed } : {}) });
  }

  // ---- Upgrade (WebSocket) ----------------------------------------------------------------

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const conn = this.h1Connections.get(socket) ?? this.h1Connections.get(req.socket) ?? NO_CONNECTION;
    socket.on('error', () => undefined);
    const method = req.method ?? 'GET';
    const authority = req.headers.host ?? `${conn.host}:${conn.port}`;
    const target = req.url ?? '/';
    const ex = this.begin(conn, 'upgrade', method, authority, target, req.headers);
    const routed = this.decide(ex, method, target, req.headers, authority);
    const reply = (r: LocalReply): void => {
      if (r.flag !== undefined) ex.flag(r.flag);
      this.countLocal(r.flag ?? String(r.status));
      this.noteLocalReply(ex, r);
      let extra = '';
      for (const [name, value] of Object.entries(r.headers ?? {})) extra += `${name}: ${String(value)}\r\n`;
      const flagHeader = r.flag !== undefined ? `${RESPONSE_FLAGS_HEADER}: ${r.flag}\r\n` : '';
      socket.end(`HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status] ?? ''}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(r.body)}\r\n${flagHeader}${extra}connection: close\r\n\r\n${r.body}`);
      this.finish(ex, r.status);
    };
    if (!routed) return reply(NO_HEALTHY_UPSTREAM);
    const d = routed.decision;
    if (d.kind !== 'no-route') ex.record.route = d.route;
    const checked = this.authorize(ex, routed, method, authority, req.headers);
    const outcome = isThenable(checked) ? await checked : checked;
    if (outcome && !outcome.allowed) return reply(this.denial(outcome, authority, routed.path));
    if (d.kind === 'no-route') return reply(ROUTE_NOT_FOUND);
    if (d.kind !== 'forward') return reply(NO_HEALTHY_UPSTREAM);
    ex.record.cluster = d.cluster;
    const runtime = routed.state.clusters.get(d.cluster);
    if (runtime) ex.serviceKey = runtime.cluster.service;
    const endpoint = runtime?.balancer.pick();
    if (!runtime || !endpoint) return reply(NO_HEALTHY_UPSTREAM);
    ex.record.upstreamHost = endpoint.key;
    ex.endpoint = endpoint.endpoint;
    const headers = this.upstreamHeaders(req.headers, d, ex, isUpgradeRequest(req.headers as MutableHeaders), outcome);
    headers.host = d.authority;
    const tryTrace = ex.trace?.startTry({ cluster: d.cluster, endpoint: endpoint.key });
    if (tryTrace) {
      ex.lastTry = tryTrace;
      ex.record.traceId ??= traceIdOf(tryTrace.headers);
      setTryHeaders(headers, tryTrace.headers);
    }
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
      runtime.balancer.recordResult(endpoint, { status: upRes.statusCode ?? 101 });
      const resHeaders = copyHeaders(upRes.headers);
      stripHopByHop(resHeaders, { upgrade: true });
      applyHeaderMutations(resHeaders, d.responseHeaders);
      socket.write(rawHead(upRes.statusCode ?? 101, resHeaders));
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      void relay(socket, upSocket).then((r) => {
        ex.requestBytes = r.aToB + head.length;
        ex.responseBytes = r.bToA + upHead.length;
        settle(upRes.statusCode ?? 101, r.error ? r.error.message : undefined);
      });
    });
    upstream.on('response', (upRes) => {
      // The upstream declined the upgrade: pass its answer on and close.
      const status = upRes.statusCode ?? 502;
      runtime.balancer.recordResult(endpoint, { status });
      const resHeaders = this.responseHeaders(upRes.headers, d, undefined);
      resHeaders.connection = 'close';
      socket.write(rawHead(status, resHeaders));
      upRes.on('data', (chunk: Buffer) => (ex.responseBytes += chunk.length));
      upRes.pipe(socket);
      upRes.once('end', () => settle(status));
    });
    upstream.on('error', (err) => {
      if (done) return;
      const connectFailure = isConnectFailure(err);
      runtime.balancer.recordResult(endpoint, { failure: connectFailure ? 'connect' : 'reset' });
      const flag = connectFailure ? ResponseFlag.UpstreamConnectionFailure : ResponseFlag.UpstreamConnectionTermination;
      ex.flag(flag);
      const body = 'upstream connect error or disconnect/reset before headers';
      if (socket.writable) socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${RESPONSE_FLAGS_HEADER}: ${flag}\r\nconnection: close\r\n\r\n${body}`);
      settle(503, err.message);
    });
    upstream.end();
  }

  // ---- HTTP/2 / gRPC ------------------------------------------------------------------------

  private async onHttp2Stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: readonly string[] = []): Promise<void> {
    stream.on('error', () => undefined);
    const conn = this.h2Sessions.get(stream.session as http2.ServerHttp2Session) ?? NO_CONNECTION;
    const method = headerString(headers[':method']) ?? 'GET';
    const authority = headerString(headers[':authority']) ?? headerString(headers.host) ?? `${conn.host}:${conn.port}`;
    const target = headerString(headers[':path']) ?? '/';
    const grpc = isGrpc(headers);
    const ex = this.begin(conn, 'HTTP/2', method, authority, target, headers);
    ex.grpc = grpc;
    const down = this.http2Responder(stream, grpc);
    if (headerListBytes(rawHeaders) > this.maxHeaderBytes) {
      this.headersTooLarge('HTTP/2');
      return this.local(down, ex, HEADERS_TOO_LARGE);
    }
    const routed = this.decide(ex, method, target, headers, authority);
    if (!routed) return this.local(down, ex, NO_HEALTHY_UPSTREAM);
    const d = routed.decision;
    if (d.kind !== 'no-route') ex.record.route = d.route;
    const checked = this.authorize(ex, routed, method, authority, headers);
    const outcome = isThenable(checked) ? await checked : checked;
    if (outcome && !outcome.allowed) return this.local(down, ex, this.denial(outcome, authority, routed.path));
    switch (d.kind) {
      case 'no-route':
        return this.local(down, ex, ROUTE_NOT_FOUND);
      case 'no-backend':
        return this.local(down, ex, NO_HEALTHY_UPSTREAM);
      case 'direct-response':
        return this.local(this.http2Responder(stream, false), ex, { status: d.status, flag: ResponseFlag.DirectResponse, body: d.body ?? '', mutations: d.responseHeaders });
      case 'redirect': {
        const scheme = conn.scheme ?? (headerString(headers[':scheme']) === 'https' ? 'https' : 'http');
        const r = buildRedirect({ scheme, authority, path: routed.path, query: routed.query }, d.redirect, d.matchedPrefix);
        return this.local(this.http2Responder(stream, false), ex, { status: r.status, flag: ResponseFlag.DirectResponse, body: '', mutations: d.responseHeaders, headers: { location: r.location } });
      }
      case 'forward': {
        const upstreamHeaders = this.upstreamHeaders(headers, d, ex, false, outcome);
        if (conn.scheme !== undefined && !grpc) {
          // At the edge (an ingress gateway) HTTP/2 is the client's choice, not the application's:
          // it goes upstream as HTTP/1.1, as Envoy does unless the service declares HTTP/2.
          upstreamHeaders.host = d.authority;
          return this.forward(this.http2ToHttp1Forwarding(stream, routed, d, method, upstreamHeaders), ex, routed, d, headers);
        }
        const out: http2.OutgoingHttpHeaders = { ...(upstreamHeaders as http2.OutgoingHttpHeaders), ':method': method, ':path': d.path, ':authority': d.authority, ':scheme': 'http' };
        return this.forward(this.http2Forwarding(stream, grpc, routed, d, out, ex), ex, routed, d, headers);
      }
    }
  }

  private http2Responder(stream: http2.ServerHttp2Stream, grpc: boolean): Responder {
    return { reply: (r) => replyHttp2(stream, grpc, r) };
  }

  /** An HTTP/2 request at the edge forwarded as HTTP/1.1 (pooled keep-alive connections), its answer sent back as HTTP/2. */
  private http2ToHttp1Forwarding(stream: http2.ServerHttp2Stream, routed: Routed, d: ForwardDecision, method: string, headers: MutableHeaders): Downstream<AnyHttp1Try> {
    return {
      reply: (r) => replyHttp2(stream, false, r),
      protocol: 'http1',
      grpc: false,
      body: stream.endAfterHeaders ? undefined : stream,
      traceHeaders: (h) => setTryHeaders(headers, h),
      gone: () => stream.destroyed || stream.closed,
      onGone: (callback) => {
        stream.once('close', callback);
      },
      start: (endpoint, feed) => this.http1Try(endpoint.endpoint, routed.state.clusters.get(d.cluster)?.cluster.connectionPool, method, d.path, headers, feed),
      commit: (t, extra, settle, flag) => {
        const upRes = t.response as Http1Response;
        const status = upRes.statusCode ?? 502;
        if (stream.destroyed) {
          upRes.destroy();
          settle(undefined);
          return undefined;
        }
        const cut = (error: string): void => {
          flag(ResponseFlag.UpstreamConnectionTermination);
          stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          settle(status, error);
        };
        stream.once('finish', () => settle(status));
        upRes.once('aborted', () => cut('upstream reset after the response started'));
        t.onLateError((err) => cut(describeError(err).split('\n')[0] ?? 'upstream error'));
        const resHeaders = this.responseHeaders(upRes.headers, d, extra) as http2.OutgoingHttpHeaders;
        resHeaders[':status'] = status;
        stream.respond(resHeaders);
        return relayBody(upRes, stream);
      },
      reset: () => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return undefined;
      },
    };
  }

  private http2Forwarding(stream: http2.ServerHttp2Stream, grpc: boolean, routed: Routed, d: ForwardDecision, headers: http2.OutgoingHttpHeaders, ex: Exchange): Downstream<Http2Try> {
    const pool = routed.state.clusters.get(d.cluster)?.cluster.connectionPool;
    return {
      reply: (r) => replyHttp2(stream, grpc, r),
      protocol: 'http2',
      grpc,
      body: stream.endAfterHeaders ? undefined : stream,
      traceHeaders: (h) => setTryHeaders(headers, h),
      gone: () => stream.destroyed || stream.closed,
      onGone: (callback) => {
        stream.once('close', callback);
      },
      start: (endpoint, feed) => new Http2Try({ pools: this.opts.pools, endpoint: endpoint.endpoint, ...(pool ? { settings: pool } : {}), headers, ...(feed ? { feed } : {}) }),
      commit: (t, extra, settle, flag) => {
        const up = t.stream as http2.ClientHttp2Stream;
        const status = Number((t.head ?? {})[':status']);
        if (grpc) ex.grpcTry = t;
        if (stream.destroyed) {
          up.close(http2.constants.NGHTTP2_CANCEL);
          settle(undefined);
          return undefined;
        }
        const resHeaders = this.responseHeaders(t.head ?? {}, d, extra) as http2.OutgoingHttpHeaders;
        resHeaders[':status'] = status;
        stream.once('finish', () => settle(grpc ? 200 : status));
        t.onLateClose((code) => {
          if (code === http2.constants.NGHTTP2_NO_ERROR) return;
          flag(ResponseFlag.UpstreamConnectionTermination);
          stream.close(code);
          settle(status);
        });
        if (up.endAfterHeaders) {
          stream.respond(resHeaders, { endStream: true });
          return undefined;
        }
        stream.respond(resHeaders, { waitForTrailers: true });
        stream.on('wantTrailers', () => {
          try {
            stream.sendTrailers(t.trailers ?? {});
          } catch {
            stream.close();
          }
        });
        const counted = { bytes: 0 };
        up.on('data', (chunk: Buffer) => (counted.bytes += chunk.length));
        up.pipe(stream);
        return counted;
      },
      reset: () => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return undefined;
      },
    };
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

/** Header list size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2: name + value + 32 per field). */
function headerListBytes(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i++) n += Buffer.byteLength(rawHeaders[i] ?? '') + (i % 2 === 0 ? 32 : 0);
  return n;
}
