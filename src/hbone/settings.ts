/**
 * HBONE's transport profile, written once (DESIGN §4). HTTP/2 defaults in Node (64 KiB
 * windows, 16 KiB frames) cost ≈40 % of throughput; these match ztunnel's.
 */
import type http2 from 'node:http2';
import { MESH_TLS_CIPHERS, MESH_TLS_VERSION } from '../identity/certificate-manager.js';

const MiB = 1024 * 1024;

export const HBONE_H2_SETTINGS = Object.freeze({
  /** Per-stream flow-control window (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindowBytes: 4 * MiB,
  /** Connection window, raised with `session.setLocalWindowSize` on both ends. */
  connectionWindowBytes: 16 * MiB,
  maxFrameSize: 1 * MiB,
  /** SETTINGS_MAX_CONCURRENT_STREAMS the server advertises. */
  serverMaxConcurrentStreams: 200,
  /**
   * Node's per-session memory cap in MB (its default, 10, is too low for 16 MiB windows). Over it,
   * Node's server refuses every new stream with ENHANCE_YOUR_CALM. What a session legitimately
   * holds is bounded by the relays' own backpressure: up to RELAY_BUFFER_BYTES (1 MiB) queued per
   * stream (src/net/relay.ts) on up to 200 streams, plus the 16 MiB connection window, so 256. At
   * 64, 500 connections aborted in a row while their server streamed (capture-abort-crossing) left
   * the destination agent refusing every further CONNECT on that session (39 and 101 of 500 in two
   * runs of three).
   */
  maxSessionMemoryMb: 256,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 20_000,
  /** Client pool: streams per connection before opening another. */
  maxStreamsPerConnection: 100,
  /** Client pool: CONNECTs per destination waiting for a dial or an answer (AMESH_HBONE_MAX_PENDING_CONNECTS). */
  maxPendingConnects: 1024,
  /** Server: largest CONNECT header list taken (AMESH_HBONE_MAX_HEADER_BYTES); larger → 431. */
  maxHeaderListBytes: 16_384,
  /** Client pool: a connection without streams is closed after this long. */
  idleTimeoutMs: 300_000,
  /** TCP connect + TLS handshake must finish within this. */
  handshakeTimeoutMs: 10_000,
});

export const HBONE_TLS = Object.freeze({
  minVersion: MESH_TLS_VERSION,
  maxVersion: MESH_TLS_VERSION,
  ciphers: MESH_TLS_CIPHERS,
  alpnProtocols: Object.freeze(['h2']),
});

/** SETTINGS frame values shared by client and server. */
export function hboneSettings(role: 'client' | 'server'): http2.Settings {
  return {
    initialWindowSize: HBONE_H2_SETTINGS.streamWindowBytes,
    maxFrameSize: HBONE_H2_SETTINGS.maxFrameSize,
    enablePush: false,
    ...(role === 'server' ? { maxConcurrentStreams: HBONE_H2_SETTINGS.serverMaxConcurrentStreams } : {}),
  };
}

export interface KeepaliveOptions {
  intervalMs?: number;
  timeoutMs?: number;
  /** Called once when the peer missed the deadline; the session is destroyed right after. */
  onTimeout?: () => void;
}

/**
 * PING every `intervalMs`; when no PING ack arrived for `timeoutMs`, the session is dead:
 * destroy it. Node's http2 has no keepalive of its own. The timer is unref'd and stops with
 * the session.
 */
export function startKeepalive(session: http2.Http2Session, opts: KeepaliveOptions = {}): void {
  const intervalMs = opts.intervalMs ?? HBONE_H2_SETTINGS.pingIntervalMs;
  const timeoutMs = opts.timeoutMs ?? HBONE_H2_SETTINGS.pingTimeoutMs;
  let sentAt = 0;
  let outstanding = false;
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) {
      clearInterval(timer);
      return;
    }
    if (outstanding && Date.now() - sentAt >= timeoutMs) {
      clearInterval(timer);
      opts.onTimeout?.();
      session.destroy();
      return;
    }
    if (outstanding) return;
    outstanding = true;
    sentAt = Date.now();
    try {
      session.ping((err) => {
        if (err) return;
        outstanding = false;
      });
    } catch {
      outstanding = false;
    }
  }, intervalMs);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}

/** The connection window is not a SETTINGS value: raise it once the session is up. */
export function raiseConnectionWindow(session: http2.Http2Session): void {
  try {
    session.setLocalWindowSize(HBONE_H2_SETTINGS.connectionWindowBytes);
  } catch {
    // session already gone
  }
}
