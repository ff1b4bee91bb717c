/**
 * What the ingress gateway does with one accepted connection, by its listener's protocol:
 * - HTTP: the first bytes say h2c prior knowledge (the HTTP/2 preface) → the L7 engine's HTTP/2
 *   server, anything else → its HTTP/1.1 server (which answers garbage with 400). The request's
 *   DownstreamConnection is `(GATEWAY_LISTENER_ADDRESS, <config port>)` — where the config files
 *   that port's routes — with the client's address and scheme `http`.
 * - HTTPS: TLS is terminated here with the certificate the SNI selects (listener-plan.ts; no SNI
 *   or no match → the first), TLS ≥ 1.2, ALPN h2 → HTTP/2, else HTTP/1.1; scheme `https`.
 *   HTTP/2 from the edge goes upstream as HTTP/1.1 unless it is gRPC (the engine decides).
 * - TLS (passthrough): the ClientHello is read (bounded in size and time, client-hello.ts), its
 *   SNI picks the first matching L4 route; TCP: the first route. A weighted backend → its
 *   cluster → one endpoint → the dialer (HBONE into the mesh, or TCP) → bytes relayed both ways,
 *   the bytes already read first. One access-log line per connection (flags `NR` no route, `UH`
 *   no endpoint, `UO` circuit breaker, `UF` connect failure).
 * Telemetry: every connection's source is the gateway itself (`reporter="source"`, the
 * DownstreamConnection's `peer`); L4 routes report istio_tcp_* and their access-log line through
 * the same ProxyTelemetry as the HTTP requests.
 * The first bytes (sniff, ClientHello) and the TLS handshake must arrive within
 * `handshakeTimeoutMs` (Envoy's listener filter timeout); else the connection is closed (an
 * HTTP connection is handed to HTTP/1.1, whose own header timeout applies).
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { describeError } from '../errors/amesh-error.js';
import { relay } from '../net/relay.js';
import type { Logger } from '../telemetry/logger.js';
import type { AccessRecord } from '../l7/access-log.js';
import { GATEWAY_LISTENER_ADDRESS } from '../l7/config.js';
import type { HttpProxy } from '../l7/http-proxy.js';
import { duplexPair } from '../l7/duplex-pair.js';
import type { PeerLabels } from '../l7/l7-metrics.js';
import { ProxyTelemetry } from '../l7/pipeline/proxy-telemetry.js';
import type { DownstreamConnection } from '../l7/pipeline/downstream-connection.js';
import { admitTcp } from '../l7/pipeline/tcp-admission.js';
import { ResponseFlag } from '../l7/response-flags.js';
import type { UpstreamDialer } from '../l7/upstream.js';
import type { Endpoint } from '../l7/config.js';
import type { WaypointState } from '../l7/waypoint-state.js';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello.js';
import { GATEWAY_MIN_TLS_VERSION, l4RouteFor, pickL4Backend, type CompiledListener, type ListenerPlan, type TlsTermination } from './listener-plan.js';

export interface GatewayDownstreamOptions {
  proxy: HttpProxy;
  dialer: UpstreamDialer;
  logger: Logger;
  accessLog: Logger;
  random: () => number;
  /** Deadline for the first bytes and the TLS handshake. */
  handshakeTimeoutMs: number;
  /** Metrics and access-log gating (the HttpProxy's); default: access log only. */
  telemetry?: ProxyTelemetry;
  /** The source_* labels of every connection: the gateway's own. */
  peer?: PeerLabels;
}

export interface GatewayDownstreamStats {
  connections: number;
  http1: number;
  http2: number;
  tlsHandshakeFailures: number;
  l4: number;
  l4Refused: number;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/**
 * HTTPS listeners offer h2 and HTTP/1.1. The engine forwards an edge HTTP/2 request as HTTP/1.1
 * unless it is gRPC (http-proxy.ts), so HTTP/1.1-only applications behind the gateway work with
 * browsers and curl, which pick h2 whenever it is offered.
 */
const ALPN = ['h2', 'http/1.1'];

/**
 * Reads from a paused socket until `decide(bytes)` returns a verdict, the peer ends, the limit
 * or the deadline is reached. The socket is left paused; what was read comes back as `head`.
 */
function readHead<T>(socket: net.Socket, timeoutMs: number, limit: number, decide: (data: Buffer) => T | undefined): Promise<{ verdict: T | undefined; head: Buffer; why?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const finish = (verdict: T | undefined, why?: string): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      resolve({ verdict, head: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length), ...(why ? { why } : {}) });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      const verdict = decide(chunks.length === 1 ? chunk : Buffer.concat(chunks, length));
      if (verdict !== undefined) finish(verdict);
      else if (length > limit) finish(undefined, `no verdict within ${limit} bytes`);
    };
    const onEnd = (): void => finish(undefined, 'the client closed first');
    const timer = setTimeout(() => finish(undefined, `nothing usable within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

/** h2c prior knowledge or HTTP/1.x, decided on the first differing byte. */
function sniffH2c(data: Buffer): 'h2c' | 'http1' | undefined {
  const n = Math.min(data.length, H2_PREFACE.length);
  if (data.compare(H2_PREFACE, 0, n, 0, n) !== 0) return 'http1';
  return n === H2_PREFACE.length ? 'h2c' : undefined;
}

export class GatewayDownstream {
  private readonly counters: GatewayDownstreamStats = { connections: 0, http1: 0, http2: 0, tlsHandshakeFailures: 0, l4: 0, l4Refused: 0 };
  /** The TLS terminator of each HTTPS listener of the configs in use (a new config, new ones). */
  private readonly terminators = new WeakMap<TlsTermination, tls.Server>();
  private readonly reported = new WeakSet<CompiledListener>();
  private readonly telemetry: ProxyTelemetry;

  constructor(private readonly opts: GatewayDownstreamOptions) {
    this.telemetry = opts.telemetry ?? new ProxyTelemetry({ role: 'gateway', accessLog: opts.accessLog, logger: opts.logger });
  }

  stats(): GatewayDownstreamStats {
    return { ...this.counters };
  }

  /** Serves `socket` (accepted paused) on `listener`, with the routes and clusters of `state`. */
  accept(socket: net.Socket, listener: CompiledListener, state: WaypointState): void {
    this.counters.connections++;
    socket.on('error', () => undefined);
    const port = listener.listener.port;
    switch (listener.listener.protocol) {
      case 'HTTP':
        return this.serveHttp(socket, port);
      case 'HTTPS':
        return this.serveHttps(socket, listener, port);
      case 'TLS':
        return void this.passthroughTls(socket, listener, state);
      case 'TCP':
        return void this.forwardL4(socket, Buffer.alloc(0), listener, state, undefined, performance.now());
    }
  }

  private connection(socket: net.Socket, port: number, scheme: 'http' | 'https'): DownstreamConnection {
    return { host: GATEWAY_LISTENER_ADDRESS, port, peerIdentity: '', clientAddress: socket.remoteAddress ?? '', scheme, ...(this.opts.peer ? { peer: this.opts.peer } : {}) };
  }


  private serveHttp(socket: net.Socket, port: number): void {
    const conn = this.connection(socket, port, 'http');
    void readHead(socket, this.opts.handshakeTimeoutMs, H2_PREFACE.length, sniffH2c).then(({ verdict, head }) => {
      if (socket.destroyed) return;
      if (verdict !== 'h2c') {
        // Node's HTTP/1.1 server reads bytes put back with unshift before its parser takes the socket.
        if (head.length > 0) socket.unshift(head);
        this.counters.http1++;
        return this.opts.proxy.serveHttp1(socket, conn);
      }
      // Node 20's HTTP/2 session reads the socket's handle directly and would miss the preface
      // put back with unshift: h2c (rare at the edge) goes through an in-memory pair instead.
      this.counters.http2++;
      const [outer, inner] = duplexPair({ b: { remoteAddress: conn.clientAddress, remotePort: socket.remotePort ?? 0 } });
      this.opts.proxy.serveHttp2(inner, conn);
      outer.write(head);
      void relay(socket, outer);
    });
  }

  /**
   * TLS termination through a (never listening) tls.Server per HTTPS listener of a config: the
   * connection is injected with `emit('connection')`, so the handshake (timeout, SNI callback,
   * ALPN, errors) runs exactly as in Node's https / http2 secure servers.
   */
  private serveHttps(socket: net.Socket, listener: CompiledListener, port: number): void {
    const termination = listener.tls;
    if (!termination || termination.certificates.length === 0) {
      this.counters.tlsHandshakeFailures++;
      // Once per config, not per connection: the config dump keeps saying it.
      if (!this.reported.has(listener)) {
        this.reported.add(listener);
        this.opts.logger.warn({ listener: listener.listener.name, port, errors: termination?.errors }, 'gateway: HTTPS listener without a usable certificate; its connections are closed');
      }
      socket.destroy();
      return;
    }
    this.terminatorFor(termination, port).emit('connection', socket);
  }

  /** Builds the TLS terminators of a new config's HTTPS listeners before its first connection. */
  prepare(plan: ListenerPlan): void {
    for (const l of plan.byPort.values()) if (l.tls && l.tls.certificates.length > 0) this.terminatorFor(l.tls, l.listener.port);
  }

  private terminatorFor(termination: TlsTermination, port: number): tls.Server {
    let terminator = this.terminators.get(termination);
    if (!terminator) {
      terminator = this.terminator(termination, port);
      this.terminators.set(termination, terminator);
    }
    return terminator;
  }

  private terminator(termination: TlsTermination, port: number): tls.Server {
    const first = termination.certificates[0]?.certificate;
    const server = tls.createServer({
      // The default credentials (no SNI, or no certificate matches): the first certificate's.
      ...(first ? { cert: first.certChain, key: first.privateKey } : {}),
      minVersion: GATEWAY_MIN_TLS_VERSION,
      ALPNProtocols: ALPN,
      handshakeTimeout: this.opts.handshakeTimeoutMs,
      SNICallback: (serverName, done) => done(null, termination.contextFor(serverName)),
    });
    server.on('secureConnection', (secure: tls.TLSSocket) => {
      secure.on('error', () => undefined);
      const conn: DownstreamConnection = { host: GATEWAY_LISTENER_ADDRESS, port, peerIdentity: '', clientAddress: secure.remoteAddress ?? '', scheme: 'https', ...(this.opts.peer ? { peer: this.opts.peer } : {}) };
      if (secure.alpnProtocol === 'h2') {
        this.counters.http2++;
        this.opts.proxy.serveHttp2(secure, conn);
      } else {
        this.counters.http1++;
        this.opts.proxy.serveHttp1(secure, conn);
      }
    });
    server.on('tlsClientError', (err: Error, secure: tls.TLSSocket) => {
      this.counters.tlsHandshakeFailures++;
      this.opts.logger.debug({ port, client: secure.remoteAddress, err: err.message }, 'gateway: TLS handshake failed');
    });
    return server;
  }

  private async passthroughTls(socket: net.Socket, listener: CompiledListener, state: WaypointState): Promise<void> {
    const started = performance.now();
    const { verdict, head, why } = await readHead(socket, this.opts.handshakeTimeoutMs, MAX_CLIENT_HELLO_BYTES + 64, (data) => {
      const r = parseClientHello(data);
      return r.kind === 'need-more' ? undefined : r;
    });
    if (socket.destroyed) return;
    if (verdict?.kind !== 'client-hello') {
      this.counters.l4Refused++;
      this.logL4(socket, listener, state, started, { responseFlags: ResponseFlag.NoRoute, error: verdict?.kind === 'not-tls' ? `not a TLS ClientHello: ${verdict.reason}` : (why ?? 'no ClientHello') }, undefined);
      socket.destroy();
      return;
    }
    return this.forwardL4(socket, head, listener, state, verdict.serverName, started);
  }

  /** Route → backend → endpoint → dial → relay (`head` first), with one access-log line. */
  private async forwardL4(socket: net.Socket, head: Buffer, listener: CompiledListener, state: WaypointState, serverName: string | undefined, started: number): Promise<void> {
    const sni = serverName !== undefined ? { authority: serverName } : {};
    // What is known so far of where the connection goes, for the refusal's metrics.
    const target: { endpoint: Endpoint | undefined; serviceKey: string | undefined; opened: boolean } = { endpoint: undefined, serviceKey: undefined, opened: false };
    const refuse = (fields: Partial<AccessRecord>): void => {
      this.counters.l4Refused++;
      this.logL4(socket, listener, state, started, { ...sni, ...fields }, target);
      socket.destroy();
    };
    const route = l4RouteFor(listener, serverName);
    if (!route) return refuse({ responseFlags: ResponseFlag.NoRoute });
    const backend = pickL4Backend(route, this.opts.random);
    const runtime = backend && state.clusters.get(backend.cluster);
    const routed = { route: route.route.name, ...(backend ? { cluster: backend.cluster } : {}) };
    target.serviceKey = runtime?.cluster.service;
    const picked = runtime?.balancer.pick();
    if (!runtime || !picked) return refuse({ ...routed, responseFlags: ResponseFlag.NoHealthyUpstream });
    const endpoint = picked.endpoint;
    target.endpoint = endpoint;
    const release = admitTcp(runtime.breaker);
    if (!release) return refuse({ ...routed, upstreamHost: picked.key, responseFlags: ResponseFlag.UpstreamOverflow });
    let upstream: Duplex;
    try {
      upstream = await this.opts.dialer.connect(endpoint);
    } catch (err) {
      release();
      runtime.balancer.recordResult(picked, { failure: 'connect' });
      return refuse({ ...routed, upstreamHost: picked.key, responseFlags: ResponseFlag.UpstreamConnectionFailure, error: describeError(err).split('\n')[0] ?? 'connect failed' });
    }
    if (socket.destroyed) {
      release();
      upstream.destroy();
      return;
    }
    this.counters.l4++;
    this.telemetry.streamOpened({ config: state.config, peer: this.opts.peer, serviceKey: target.serviceKey, endpoint, port: listener.listener.port });
    if (head.length > 0) upstream.write(head);
    const result = await relay(socket, upstream);
    release();
    this.logL4(
      socket,
      listener,
      state,
      started,
      { ...sni, ...routed, upstreamHost: picked.key, responseFlags: '-', bytesReceived: result.aToB + head.length, bytesSent: result.bToA, ...(result.error ? { error: result.error.message } : {}) },
      { ...target, opened: true },
    );
  }

  /** One L4 connection ended (`opened`: counted as opened when established) or was refused. */
  private logL4(socket: net.Socket, listener: CompiledListener, state: WaypointState, started: number, fields: Partial<AccessRecord>, o: { endpoint: Endpoint | undefined; serviceKey: string | undefined; opened: boolean } | undefined): void {
    const record: AccessRecord = {
      protocol: 'TCP',
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      responseFlags: '-',
      sourceIdentity: '',
      clientAddress: socket.remoteAddress ?? '',
      destination: `${GATEWAY_LISTENER_ADDRESS}:${listener.listener.port}`,
      ...fields,
    };
    this.telemetry.streamClosed(record, { config: state.config, peer: this.opts.peer, serviceKey: o?.serviceKey, endpoint: o?.endpoint, port: listener.listener.port }, o?.opened ?? false);
  }
}
