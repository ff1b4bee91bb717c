/**
 * HBONE server for transparent listeners (DESIGN §4): raw TCP in, mTLS + HTTP/2 CONNECT
 * streams out to `onConnect`.
 *
 * Per connection:
 * - The certificate presented is the dialled address's (`secureContextFor(localAddress)`);
 *   no certificate → the socket is destroyed.
 * - TLS 1.3 only, ALPN h2 only, the client MUST present a certificate that chains to the mesh
 *   roots (in the secure context) and carries a SPIFFE ID in one of `trustDomains()`; otherwise
 *   the connection is closed before any HTTP/2 byte is read. A bare TLSSocket does not enforce
 *   `rejectUnauthorized` (only tls.Server does), so the verify result is checked here.
 * - TLS handshake bounded by `handshakeTimeoutMs`; HTTP/2 PING keepalive; a session nghttp2
 *   terminated after a protocol error (GOAWAY sent, Node silent) is closed within ~1 s
 *   (terminated-session.ts).
 * - At most `maxConcurrentStreams` streams per session (SETTINGS; nghttp2 refuses beyond).
 * - Certificates are checked at the handshake only, and a session outlives them: once the
 *   client's certificate or ours on the session has expired, new CONNECTs on it are refused
 *   with REFUSED_STREAM and the session gets GOAWAY (open streams finish). Not a 401/503: those
 *   are final answers to the client, while REFUSED_STREAM (unprocessed, RFC 9113 §8.7) makes
 *   HbonePool retire the connection and retry on a fresh dial, whose handshake then succeeds
 *   with renewed certificates or fails cleanly (issue #12).
 * Per stream:
 * - header list over `maxHeaderListBytes` → 431 (reported to `onOverload`); not CONNECT → 400;
 *   bad `:authority` → 400; otherwise `onConnect` decides.
 * - 200 is sent only after `onConnect` returned an upstream; then bytes are relayed with
 *   half-close both ways (or the stream is handed to the `takeStream` that `onConnect` returned).
 *   Any other status ends the stream; the reason is logged, not sent.
 * Lifecycle: `drain()` stops new connections, sends GOAWAY and waits for open streams;
 * `close()` destroys everything.
 */
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { describeError } from '../errors/amesh-error.js';
import { relay } from '../net/relay.js';
import type { Logger } from '../telemetry/logger.js';
import { parseAuthority } from './headers.js';
import { connectionNotAfterMs, peerIdentityIn } from './peer.js';
import { HBONE_H2_SETTINGS, HBONE_TLS, hboneSettings, raiseConnectionWindow, startKeepalive } from './settings.js';
import { allSettledWithin } from '../net/within.js';
import { watchForTermination } from './terminated-session.js';

const ignoreError = (): void => {};

export interface HboneConnectRequest {
  authority: { host: string; port: number };
  /** The client's SPIFFE URI (verified). */
  peerIdentity: string;
  /** The TCP peer (the client's node agent or waypoint), not the original client. */
  peerAddress: string;
  peerPort: number;
  /** The address that was dialled (the local pod's IP for transparent listeners). */
  localAddress: string;
  localPort: number;
  forwarded?: string;
  baggage?: string;
  traceparent?: string;
  headers: http2.IncomingHttpHeaders;
  /** What was negotiated on this connection (for access logs and tests). */
  tls: HboneTlsInfo;
}

export interface HboneTlsInfo {
  protocol: string | null;
  cipher: string;
  alpnProtocol: string | false | null;
  /** SNI the client sent; false when none (HBONE clients send none). */
  servername: string | false;
}

/**
 * What `onConnect` decided. `upstream`: the server answers 200 and relays the stream to it.
 * `takeStream`: the server answers 200 and hands the CONNECT stream itself over (the waypoint
 * parses HTTP straight off it); the taker owns it from then on, including its errors and end.
 */
export type HboneConnectResult =
  | { status: 200; upstream: Duplex }
  | { status: 200; takeStream: (stream: http2.ServerHttp2Stream) => void }
  | { status: 400 | 401 | 503; reason: string };

export interface HboneServerOptions {
  /** Trust domains whose identities may connect (read per connection). */
  trustDomains: () => string[];
  /** The certificate to present for a connection dialled to `localAddress`; undefined → refuse. */
  secureContextFor: (localAddress: string) => Promise<tls.SecureContext | undefined>;
  onConnect: (req: HboneConnectRequest) => Promise<HboneConnectResult>;
  logger: Logger;
  handshakeTimeoutMs?: number;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS; nghttp2 refuses streams beyond it (REFUSED_STREAM). Default HBONE_H2_SETTINGS.serverMaxConcurrentStreams. */
  maxConcurrentStreams?: number;
  /**
   * Largest CONNECT header list (RFC 9113 §6.5.2: name + value + 32 per field); larger is answered
   * 431 and reported to `onOverload`. Beyond twice this nghttp2 resets the stream itself
   * (ENHANCE_YOUR_CALM) before it reaches us. Default HBONE_H2_SETTINGS.maxHeaderListBytes.
   */
  maxHeaderListBytes?: number;
  /** A CONNECT refused for a resource cap (header_size), for the overload counter and log. */
  onOverload?: (o: HboneOverload) => void;
  /** Clock for certificate expiry (ms since epoch); default Date.now. */
  now?: () => number;
}

export interface HboneOverload {
  reason: 'header_size';
  limit: number;
  peerIdentity: string;
  localAddress: string;
}

export interface HboneServerStats {
  /** TLS-established HTTP/2 sessions. */
  sessions: number;
  /** Connections still in the TLS handshake. */
  handshaking: number;
  /** CONNECT streams currently open. */
  streams: number;
  acceptedStreams: number;
  refusedStreams: number;
  rejectedConnections: number;
}

interface PendingConnection {
  socket: net.Socket;
  tlsSocket?: tls.TLSSocket;
  localAddress: string;
  timer?: NodeJS.Timeout;
  rejected: boolean;
}

interface SessionInfo {
  tls: HboneTlsInfo;
  peerIdentity: string;
  peerAddress: string;
  peerPort: number;
  localAddress: string;
  localPort: number;
  /** The TLS socket under the session (its byte counters feed the termination watch). */
  socket: tls.TLSSocket;
  /** CONNECT streams open on this session. */
  streams: number;
  /** Streams opened plus streams closed on this session so far (the termination watch's activity clock). */
  streamEvents: number;
  /** Earliest notAfter (ms) of the client's certificate and ours on this session. */
  notAfterMs: number | undefined;
}

export class HboneServer {
  private readonly h2: http2.Http2Server;
  private readonly sessions = new Map<http2.ServerHttp2Session, SessionInfo>();
  private readonly handshaking = new Set<PendingConnection>();
  private readonly streams = new Set<http2.ServerHttp2Stream>();
  private nextSession: SessionInfo | undefined;
  private draining = false;
  private closed = false;
  private counters = { acceptedStreams: 0, refusedStreams: 0, rejectedConnections: 0 };
  private readonly maxHeaderListBytes: number;
  private readonly now: () => number;

  constructor(private readonly opts: HboneServerOptions) {
    this.now = opts.now ?? Date.now;
    this.maxHeaderListBytes = opts.maxHeaderListBytes ?? HBONE_H2_SETTINGS.maxHeaderListBytes;
    // Never listens: TLS sockets are handed to it with emit('connection').
    this.h2 = http2.createServer({
      settings: {
        ...hboneSettings('server'),
        ...(opts.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: opts.maxConcurrentStreams } : {}),
        // Node enforces this one itself (RST_STREAM, no event): twice our limit, so a block
        // between the two gets a 431 the client can read and the refusal is counted.
        maxHeaderListSize: this.maxHeaderListBytes * 2,
      },
      maxSessionMemory: HBONE_H2_SETTINGS.maxSessionMemoryMb,
    });
    this.h2.on('session', (session: http2.ServerHttp2Session) => this.onSession(session));
    this.h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => void this.onStream(stream, headers, rawHeaders));
  }

  /** Takes ownership of an accepted TCP socket (paused or flowing). */
  handleConnection(socket: net.Socket): void {
    if (this.draining || this.closed) {
      socket.destroy();
      return;
    }
    socket.on('error', () => {}); // surfaced through the TLS socket or logged there
    socket.setNoDelay(true);
    // Listeners accept half-open sockets (right for relaying); under HTTP/2 a half-open socket
    // leaves the session deaf to the client's FIN (CLOSE-WAIT forever).
    socket.allowHalfOpen = false;
    const conn: PendingConnection = { socket, localAddress: socket.localAddress ?? '', rejected: false };
    this.handshaking.add(conn);
    const timeoutMs = this.opts.handshakeTimeoutMs ?? HBONE_H2_SETTINGS.handshakeTimeoutMs;
    conn.timer = setTimeout(() => this.reject(conn, `TLS handshake not done after ${timeoutMs} ms`), timeoutMs);
    conn.timer.unref();
    socket.once('close', () => this.settle(conn));
    void this.secure(conn);
  }

  /** The connection left the handshake phase (established, rejected or gone). */
  private settle(conn: PendingConnection): void {
    clearTimeout(conn.timer);
    this.handshaking.delete(conn);
  }

  /**
   * Once wrapped, only the TLS socket may be destroyed: destroying the raw socket under a
   * live TLSWrap crashes Node (seen as a segfault on Node 20).
   */
  private reject(conn: PendingConnection, reason: string, extra: Record<string, unknown> = {}): void {
    if (!conn.rejected) {
      conn.rejected = true;
      this.counters.rejectedConnections++;
      const { socket } = conn;
      this.opts.logger.warn({ peer: `${socket.remoteAddress}:${socket.remotePort}`, local: `${socket.localAddress}:${socket.localPort}`, reason, ...extra }, 'hbone: connection rejected');
    }
    this.settle(conn);
    (conn.tlsSocket ?? conn.socket).destroy();
  }

  private async secure(conn: PendingConnection): Promise<void> {
    const { socket, localAddress } = conn;
    let secureContext: tls.SecureContext | undefined;
    try {
      secureContext = await this.opts.secureContextFor(localAddress);
    } catch (err) {
      this.reject(conn, 'no certificate for the dialled address', { err: describeError(err) });
      return;
    }
    if (socket.destroyed || conn.rejected) return;
    if (!secureContext) {
      this.reject(conn, `no certificate for ${localAddress}`);
      return;
    }
    // A TLSSocket of our own rather than a tls.Server's: the certificate is chosen per
    // connection (by dialled address, there is no SNI) and tls.Server only takes PEMs. Node's
    // tls.Server does three things on 'secure' that we therefore do in onSecure(): check the
    // client's verify result, release control (later TLS errors become 'error' events) and
    // clear `secureConnecting` — http2 otherwise waits forever for 'secureConnect'.
    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [...HBONE_TLS.alpnProtocols],
    });
    conn.tlsSocket = tlsSocket;
    tlsSocket.once('secure', () => this.onSecure(conn, tlsSocket, secureContext));
    tlsSocket.on('_tlsError', (err: Error) => {
      if (this.handshaking.has(conn)) this.reject(conn, 'TLS handshake failed', { err: err.message });
      tlsSocket.destroy();
    });
    tlsSocket.on('error', (err) => {
      if (this.handshaking.has(conn)) this.reject(conn, 'TLS handshake failed', { err: err.message });
      tlsSocket.destroy();
    });
    tlsSocket.once('close', () => {
      if (this.handshaking.has(conn)) this.reject(conn, 'TLS handshake failed (client certificate missing or not trusted, or no common ALPN/version/cipher)');
      this.settle(conn);
    });
    // The raw socket may come paused (pauseOnConnect); the TLS layer reads from it now.
    socket.resume();
  }

  /** Handshake done; Node verified nothing for us yet (see secure()). */
  private onSecure(conn: PendingConnection, tlsSocket: tls.TLSSocket, secureContext: tls.SecureContext): void {
    if (conn.rejected || tlsSocket.destroyed) return;
    const refuse = (reason: string, extra: Record<string, unknown> = {}): void => this.reject(conn, reason, extra);
    // Read once: each call builds the whole object (names, fingerprints, key) natively.
    const peerCert = tlsSocket.getPeerCertificate();
    const verifyError = clientVerifyError(tlsSocket, peerCert);
    if (verifyError) return refuse('client certificate not trusted', { err: verifyError });
    tlsSocket.authorized = true;
    (tlsSocket as unknown as { _releaseControl?: () => void })._releaseControl?.();
    (tlsSocket as unknown as { secureConnecting: boolean }).secureConnecting = false;
    if (tlsSocket.alpnProtocol !== 'h2') return refuse(`client did not negotiate h2 (ALPN ${String(tlsSocket.alpnProtocol)})`);
    let trustDomains: string[];
    try {
      trustDomains = this.opts.trustDomains();
    } catch (err) {
      return refuse('trust domains unavailable', { err: describeError(err) });
    }
    const peerIdentity = peerIdentityIn(peerCert, trustDomains);
    if (!peerIdentity) return refuse(`client certificate has no SPIFFE identity in trust domains ${trustDomains.join(', ')}`);
    if (this.closed) return refuse('server is closed');
    this.settle(conn);
    const { socket } = conn;
    this.nextSession = {
      tls: {
        protocol: tlsSocket.getProtocol(),
        cipher: tlsSocket.getCipher().standardName,
        alpnProtocol: tlsSocket.alpnProtocol ?? null,
        servername: (tlsSocket as tls.TLSSocket & { servername?: string | false }).servername ?? false,
      },
      peerIdentity,
      peerAddress: socket.remoteAddress ?? '',
      peerPort: socket.remotePort ?? 0,
      localAddress: conn.localAddress,
      localPort: socket.localPort ?? 0,
      socket: tlsSocket,
      streams: 0,
      streamEvents: 0,
      notAfterMs: connectionNotAfterMs(tlsSocket, secureContext, peerCert),
    };
    try {
      this.h2.emit('connection', tlsSocket);
    } finally {
      this.nextSession = undefined;
    }
  }

  private onSession(session: http2.ServerHttp2Session): void {
    const info = this.nextSession;
    if (!info) {
      session.destroy();
      return;
    }
    this.sessions.set(session, info);
    raiseConnectionWindow(session);
    startKeepalive(session, {
      ...(this.opts.pingIntervalMs !== undefined ? { intervalMs: this.opts.pingIntervalMs } : {}),
      ...(this.opts.pingTimeoutMs !== undefined ? { timeoutMs: this.opts.pingTimeoutMs } : {}),
      onTimeout: () => this.opts.logger.warn({ peer: info.peerIdentity, address: info.peerAddress }, 'hbone: PING timeout, closing session'),
    });
    watchForTermination(session, info.socket, {
      openStreams: () => info.streams,
      streamEvents: () => info.streamEvents,
      onTerminated: () => this.opts.logger.info({ peer: info.peerIdentity, address: info.peerAddress }, 'hbone: session terminated after an HTTP/2 protocol error (GOAWAY sent), closing it'),
    });
    session.on('error', (err) => this.opts.logger.debug({ err: err.message, peer: info.peerIdentity }, 'hbone: session error'));
    session.once('close', () => this.sessions.delete(session));
    if (this.draining) {
      // Established while draining (its TLS handshake began before): GOAWAY after the peer's
      // first stream (it dialled for one; refusing it would fail that connection) or 1 s.
      const timer = setTimeout(() => session.close(), 1000);
      timer.unref();
      session.once('stream', () => {
        clearTimeout(timer);
        session.close();
      });
    }
  }

  private async onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): Promise<void> {
    const info = this.sessions.get(stream.session as http2.ServerHttp2Session);
    // Module-level, like track(): a closure made here would keep this call's context — the
    // request's headers and raw headers, ~1 KB — alive for as long as the stream lives.
    stream.on('error', ignoreError); // reported through relay()/close
    if (!info) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    this.track(stream, info);
    const refuse = (status: 400 | 401 | 431 | 503, reason: string): void => {
      this.counters.refusedStreams++;
      this.opts.logger.info({ peer: info.peerIdentity, authority: headers[':authority'], status, reason }, 'hbone: CONNECT refused');
      if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': status }, { endStream: true });
    };
    if (info.notAfterMs !== undefined && this.now() >= info.notAfterMs) {
      this.counters.refusedStreams++;
      this.opts.logger.warn(
        { peer: info.peerIdentity, address: info.peerAddress, authority: headers[':authority'], notAfter: new Date(info.notAfterMs).toISOString() },
        'hbone: CONNECT refused (REFUSED_STREAM) and session closed: the client certificate or ours on this session has expired; the client must dial afresh with valid certificates',
      );
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      const session = stream.session;
      if (session && !session.closed && !session.destroyed) session.close();
      return;
    }
    const headerBytes = headerListBytes(rawHeaders);
    if (headerBytes > this.maxHeaderListBytes) {
      this.opts.onOverload?.({ reason: 'header_size', limit: this.maxHeaderListBytes, peerIdentity: info.peerIdentity, localAddress: info.localAddress });
      return refuse(431, `header list of ${headerBytes} bytes is over the limit of ${this.maxHeaderListBytes} (AMESH_HBONE_MAX_HEADER_BYTES)`);
    }
    if (headers[':method'] !== 'CONNECT') return refuse(400, `method ${String(headers[':method'])} is not CONNECT`);
    const authority = parseAuthority(headers[':authority']);
    if (!authority) return refuse(400, `bad :authority ${JSON.stringify(headers[':authority'])}`);
    const header = (name: string): string | undefined => {
      const v = headers[name];
      return Array.isArray(v) ? v.join(',') : v;
    };
    const forwarded = header('forwarded');
    const baggage = header('baggage');
    const traceparent = header('traceparent');
    let result: HboneConnectResult;
    try {
      result = await this.opts.onConnect({
        authority,
        peerIdentity: info.peerIdentity,
        peerAddress: info.peerAddress,
        peerPort: info.peerPort,
        localAddress: info.localAddress,
        localPort: info.localPort,
        ...(forwarded !== undefined ? { forwarded } : {}),
        ...(baggage !== undefined ? { baggage } : {}),
        ...(traceparent !== undefined ? { traceparent } : {}),
        headers,
        tls: info.tls,
      });
    } catch (err) {
      return refuse(503, `onConnect failed: ${describeError(err).split('\n')[0]}`);
    }
    if (result.status !== 200) return refuse(result.status, result.reason);
    // The client may have given up while onConnect was connecting.
    const gone = stream.destroyed || stream.closed;
    if ('takeStream' in result) {
      if (gone) return;
      this.counters.acceptedStreams++;
      stream.respond({ ':status': 200 });
      result.takeStream(stream);
      return;
    }
    const upstream = result.upstream;
    if (gone) {
      upstream.destroy();
      return;
    }
    this.counters.acceptedStreams++;
    stream.respond({ ':status': 200 });
    // Not awaited: a suspended onStream would hold its frame (headers, closures) until the
    // connection ends. relay() never rejects and cleans up both streams itself.
    void relay(stream, upstream);
  }

  /** Counts the stream in its session and the server until it closes. */
  private track(stream: http2.ServerHttp2Stream, info: SessionInfo): void {
    this.streams.add(stream);
    info.streams++;
    info.streamEvents++;
    stream.once('close', () => {
      this.streams.delete(stream);
      info.streams--;
      info.streamEvents++;
    });
  }

  stats(): HboneServerStats {
    return { sessions: this.sessions.size, handshaking: this.handshaking.size, streams: this.streams.size, ...this.counters };
  }

  /**
   * Stop accepting, GOAWAY every session, wait (bounded) for open streams to finish. Peers
   * retire a connection on GOAWAY and dial a new one for their next stream (HbonePool), which
   * after an agent hand-off lands on the new agent. Connections still in their TLS handshake
   * complete and are GOAWAYed after their first stream (onSession): the peer dialled them for
   * a stream, and refusing them would fail it.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const closing = [...this.sessions.keys()].map(
      (session) =>
        new Promise<void>((resolve) => {
          if (session.destroyed) return resolve();
          session.once('close', () => resolve());
          session.close();
        }),
    );
    await allSettledWithin(closing, timeoutMs);
  }

  close(): void {
    this.draining = true;
    this.closed = true;
    for (const conn of [...this.handshaking]) this.reject(conn, 'server is closing');
    for (const stream of this.streams) stream.destroy();
    for (const session of this.sessions.keys()) session.destroy();
    this.handshaking.clear();
  }
}

/** Header list size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2). */
function headerListBytes(rawHeaders: readonly string[] | undefined): number {
  let n = 0;
  if (!rawHeaders) return n;
  for (let i = 0; i < rawHeaders.length; i++) n += Buffer.byteLength(rawHeaders[i] ?? '') + (i % 2 === 0 ? 32 : 0);
  return n;
}

/**
 * Chain verification result of a server-side TLSSocket. Only tls.Server acts on it; with a
 * TLSSocket of our own a client with an untrusted certificate would otherwise get through.
 * `ssl` is the TLSSocket's long-standing alias of its TLS handle.
 */
function clientVerifyError(socket: tls.TLSSocket, peerCert: tls.PeerCertificate): string | undefined {
  const handle = (socket as unknown as { ssl?: { verifyError?: () => Error | null } }).ssl;
  if (typeof handle?.verifyError !== 'function') return 'cannot read the verification result';
  const err = handle.verifyError();
  if (err) return (err as Error & { code?: string }).code ?? err.message;
  if (!peerCert?.raw) return 'no client certificate';
  return undefined;
}
