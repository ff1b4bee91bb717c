/**
 * HBONE client primitives (DESIGN §4): mTLS + HTTP/2 on a connected TCP socket, and one
 * CONNECT stream per tunnelled connection. The pool (pool.ts) decides when to dial.
 *
 * On the wire: TLS 1.3, AES-GCM (from the identity's SecureContext), ALPN `h2` only, no SNI
 * (the server picks its certificate by the dialled address, as ztunnel does), our workload
 * certificate as client certificate. The server must chain to the mesh roots and its URI SAN
 * must equal one of the expected identities — checked in `checkServerIdentity`, which Node
 * runs only after chain verification succeeded and never skips because we never resume
 * TLS sessions.
 */
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { AmeshError } from '../errors/amesh-error.js';
import type { EarlyData } from './early-data.js';
import { connectionNotAfterMs, peerCertificateFacts } from './peer.js';
import { HBONE_H2_SETTINGS, HBONE_TLS, hboneSettings, raiseConnectionWindow, startKeepalive } from './settings.js';

const ignoreError = (): void => {};

/** A non-200 answer to CONNECT. */
export class HboneRefusedError extends AmeshError {
  constructor(
    readonly status: number,
    readonly authority: string,
    readonly peer: string,
  ) {
    super('AMESH_HBONE_REFUSED', `${peer} refused CONNECT ${authority} with status ${status}`, {
      hint: status === 401 ? 'an AuthorizationPolicy at the destination denied this connection' : status === 503 ? 'the destination workload is unknown to the peer or its upstream connect failed' : status === 400 ? 'the peer rejected the request as malformed or misrouted' : undefined,
    });
    this.name = 'HboneRefusedError';
  }
}

/** Error for `checkServerIdentity`: undefined when the server's URI SAN is one we expect. */
export function verifyServerIdentity(expectedIdentities: readonly string[], cert: tls.PeerCertificate, peer: string): Error | undefined {
  const presented = peerCertificateFacts(cert).spiffeIds;
  if (presented.some((id) => expectedIdentities.includes(id))) return undefined;
  return new AmeshError('AMESH_HBONE_PEER_REJECTED', `${peer} presented ${presented.length ? presented.join(', ') : 'no SPIFFE identity'}; expected ${expectedIdentities.join(' or ')}`, {
    hint: 'the destination runs under another service account than the mesh state says, or the address now belongs to another workload',
  });
}

export interface DialHboneOptions {
  /** A connected TCP socket to the next hop's HBONE port. */
  socket: net.Socket;
  /** Our identity's context (key, chain, roots, TLS 1.3/AES-GCM). */
  secureContext: tls.SecureContext;
  expectedIdentities: readonly string[];
  /** `host:port` of the next hop, for messages. */
  peer: string;
  handshakeTimeoutMs?: number;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
}

/** An established HBONE connection. */
export interface HboneConnection {
  session: http2.ClientHttp2Session;
  /** When the connection stops being trustworthy (peer.ts connectionNotAfterMs); undefined when unknown. */
  notAfterMs: number | undefined;
}

/** TLS handshake + HTTP/2 session. Rejects with AMESH_HBONE_PEER_REJECTED / _TLS_FAILED / _CONNECT_FAILED. */
export function dialHbone(opts: DialHboneOptions): Promise<HboneConnection> {
  const { socket, peer } = opts;
  const timeoutMs = opts.handshakeTimeoutMs ?? HBONE_H2_SETTINGS.handshakeTimeoutMs;
  return new Promise((resolve, reject) => {
    socket.setNoDelay(true);
    // Socket factories hand out half-open sockets (right for relaying bytes); under HTTP/2 that
    // would leave the session deaf to the peer's FIN and stuck in CLOSE-WAIT forever.
    socket.allowHalfOpen = false;
    // The certificate object Node built for the identity check, reused for the connection's
    // notAfter, so a dial builds one (a second, leaf-only one cost too little to measure).
    let verifiedCert: tls.PeerCertificate | undefined;
    // No `servername`: no SNI extension is sent (verified by test).
    const tlsSocket = tls.connect({
      socket,
      secureContext: opts.secureContext,
      ALPNProtocols: [...HBONE_TLS.alpnProtocols],
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        verifiedCert = cert;
        return verifyServerIdentity(opts.expectedIdentities, cert, peer);
      },
    });
    // Node builds checkServerIdentity's certificate argument with this.getPeerCertificate(true):
    // the whole chain, each certificate's issuer looked up in the trust store, the largest native
    // cost of a handshake in a profile with one per connection (~0.3 ms). The check needs the
    // leaf only, so for the handshake the socket answers with the leaf (getPeerCertificate(false));
    // its own method is back once the handshake is done. Were Node to stop calling it here, the
    // detailed object arrives and works as well.
    Object.defineProperty(tlsSocket, 'getPeerCertificate', { value: leanPeerCertificate, configurable: true, writable: true });
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tlsSocket.destroy();
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new AmeshError('AMESH_HBONE_CONNECT_FAILED', `TLS handshake with ${peer} timed out after ${timeoutMs} ms`, {
            hint: 'is something other than an HBONE server listening there, or is the peer overloaded?',
          }),
        ),
      timeoutMs,
    );
    timer.unref();
    const onError = (err: Error & { code?: string }): void => fail(handshakeError(err, peer));
    const onClose = (): void =>
      fail(new AmeshError('AMESH_HBONE_TLS_FAILED', `${peer} closed the connection during the TLS handshake`, { hint: 'the peer may have rejected our certificate: do both sides trust the same mesh root?' }));
    tlsSocket.once('error', onError);
    tlsSocket.once('close', onClose);
    tlsSocket.once('secureConnect', () => {
      delete (tlsSocket as Partial<Pick<tls.TLSSocket, 'getPeerCertificate'>>).getPeerCertificate;
      if (settled) return;
      if (tlsSocket.alpnProtocol !== 'h2') {
        fail(new AmeshError('AMESH_HBONE_TLS_FAILED', `${peer} did not negotiate HTTP/2 (ALPN ${String(tlsSocket.alpnProtocol)})`, { hint: 'the peer is not an HBONE server' }));
        return;
      }
      settled = true;
      clearTimeout(timer);
      tlsSocket.off('close', onClose);
      tlsSocket.off('error', onError);
      const session = http2.connect(`https://${peer}`, {
        createConnection: () => tlsSocket,
        settings: hboneSettings('client'),
        maxSessionMemory: HBONE_H2_SETTINGS.maxSessionMemoryMb,
      });
      session.on('error', () => {}); // owners watch 'close'; errors end up there
      raiseConnectionWindow(session);
      startKeepalive(session, {
        ...(opts.pingIntervalMs !== undefined ? { intervalMs: opts.pingIntervalMs } : {}),
        ...(opts.pingTimeoutMs !== undefined ? { timeoutMs: opts.pingTimeoutMs } : {}),
      });
      resolve({ session, notAfterMs: connectionNotAfterMs(tlsSocket, opts.secureContext, verifiedCert) });
    });
  });
}

/** The server's leaf alone, whatever detail is asked for: all that verifyServerIdentity reads. */
function leanPeerCertificate(this: tls.TLSSocket): tls.PeerCertificate {
  return tls.TLSSocket.prototype.getPeerCertificate.call(this, false);
}

function handshakeError(err: Error & { code?: string }, peer: string): Error {
  if (err instanceof AmeshError) return err;
  const code = err.code ?? '';
  if (/CERT|VERIFY|SELF_SIGNED|UNABLE_TO/.test(code)) {
    return new AmeshError('AMESH_HBONE_PEER_REJECTED', `the certificate of ${peer} is not trusted: ${code || err.message}`, { cause: err, hint: 'the peer is not signed by this mesh\'s root CA' });
  }
  return new AmeshError('AMESH_HBONE_TLS_FAILED', `TLS handshake with ${peer} failed: ${err.message}`, {
    cause: err,
    hint: 'the peer may have rejected our certificate: do both sides trust the same mesh root and trust domain?',
  });
}

export interface ConnectHeaders {
  forwarded?: string;
  baggage?: string;
  traceparent?: string;
}

/**
 * Opens one CONNECT stream; resolves on 200, rejects with HboneRefusedError otherwise. With
 * `early`, the client's bytes flow on the stream from the start (early-data.ts) and are handed
 * over to the caller with the 200; on any failure they stay kept for a retry.
 */
export function openConnectStream(session: http2.ClientHttp2Session, authority: string, headers: ConnectHeaders, peer: string, early?: EarlyData): Promise<http2.ClientHttp2Stream> {
  return new Promise((resolve, reject) => {
    const request: http2.OutgoingHttpHeaders = { ':method': 'CONNECT', ':authority': authority };
    if (headers.forwarded !== undefined) request.forwarded = headers.forwarded;
    if (headers.baggage !== undefined) request.baggage = headers.baggage;
    if (headers.traceparent !== undefined) request.traceparent = headers.traceparent;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(request, { endStream: false });
    } catch (err) {
      reject(new AmeshError('AMESH_HBONE_CONNECT_FAILED', `cannot open a CONNECT stream to ${peer}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    early?.attach(stream);
    const cleanup = (): void => {
      early?.detach();
      stream.off('response', onResponse);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onResponse = (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void => {
      cleanup();
      const status = Number(h[':status']);
      if (status === 200) {
        early?.handOver();
        // Until the caller relays it, a reset must not crash the process; relay() sees it anyway.
        // Module-level: a closure made here would keep this call's context (the request headers,
        // the promise's callbacks) alive for as long as the stream lives.
        stream.on('error', ignoreError);
        resolve(stream);
        return;
      }
      stream.on('error', ignoreError);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new HboneRefusedError(status, authority, peer));
    };
    const onError = (err: Error): void => {
      cleanup();
      stream.destroy();
      reject(new AmeshError('AMESH_HBONE_CONNECT_FAILED', `CONNECT ${authority} via ${peer} failed: ${err.message}`, { cause: err }));
    };
    const onClose = (): void => {
      cleanup();
      const code = stream.rstCode;
      reject(
        new AmeshError('AMESH_HBONE_CONNECT_FAILED', `CONNECT ${authority} via ${peer}: stream closed before a response (code ${code ?? 'none'})`, {
          cause: Object.assign(new Error('stream closed'), { rstCode: code }),
          hint: session.destroyed || session.closed ? 'the peer closed the connection right after the handshake: it may not trust our certificate or trust domain' : undefined,
        }),
      );
    };
    stream.once('response', onResponse);
    stream.once('error', onError);
    stream.once('close', onClose);
  });
}
