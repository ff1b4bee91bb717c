/**
 * Finds HTTP/2 sessions that nghttp2 has terminated but Node keeps open.
 *
 * On a connection error from the peer (DATA on stream 0, a bad frame size, …) nghttp2 sends
 * GOAWAY and from then on wants neither to read nor to write ("the application should drop the
 * connection", nghttp2_session_want_read). Node 20 stops reading the socket and emits no event
 * at all, so the session — and its TLS socket — stays until the PING keepalive gives up
 * (10 s + 20 s), and it never sees the peer's FIN. RFC 9113 §5.4.1: after a GOAWAY for an error
 * the endpoint MUST close the TCP connection.
 *
 * There is no public signal for that state, so it is probed: when the socket read bytes since the
 * last look (a terminating frame must have arrived) and the session has no open stream (nghttp2
 * closed them all when it terminated), a PING is sent. A live session writes it out at once; a
 * terminated one keeps it queued (`outboundQueueSize` > 0) with nothing being written — that
 * session is destroyed. Only stream-less sessions are probed, so a false verdict (a peer that
 * stopped reading altogether) loses no stream, and an idle session costs one extra PING per
 * keepalive round (the ack is a read).
 */
import type http2 from 'node:http2';
import type net from 'node:net';

export interface TerminationWatchOptions {
  /** Streams open on the session (the owner counts them). */
  openStreams: () => number;
  /** How often to look; a terminated session is gone within about two of these. */
  intervalMs?: number;
  /** Called once before the session is destroyed. */
  onTerminated?: () => void;
}

export const TERMINATION_CHECK_INTERVAL_MS = 500;

/** Bytes the kernel socket has handed up (native counter, advances while nothing reads in JS). */
function bytesRead(socket: net.Socket): number {
  return socket.bytesRead;
}

/** Bytes queued below the session and not yet written to the kernel. */
function writeInFlight(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: number } | null })._handle;
  return (handle?.writeQueueSize ?? 0) + socket.writableLength;
}

export function watchForTermination(session: http2.Http2Session, socket: net.Socket, opts: TerminationWatchOptions): void {
  let lastRead = bytesRead(socket);
  let probing = false;
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) {
      clearInterval(timer);
      return;
    }
    let queued: number;
    try {
      queued = session.state.outboundQueueSize ?? 0;
    } catch {
      return; // socket already unbound from the session: it is closing
    }
    if (probing) {
      probing = false;
      if (queued > 0 && writeInFlight(socket) === 0 && opts.openStreams() === 0) {
        clearInterval(timer);
        opts.onTerminated?.();
        session.destroy();
        return;
      }
    }
    const read = bytesRead(socket);
    if (read === lastRead) return;
    lastRead = read;
    if (opts.openStreams() > 0 || queued > 0) return;
    try {
      probing = session.ping(() => {});
    } catch {
      probing = false;
    }
  }, opts.intervalMs ?? TERMINATION_CHECK_INTERVAL_MS);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}
