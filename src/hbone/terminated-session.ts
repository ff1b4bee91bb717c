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
 * There is no public signal for that state, so it is looked for: a terminated session keeps any
 * frame queued (`outboundQueueSize` > 0) and writes nothing more, where a live one writes its
 * queue out at once. Seen at two looks in a row, or at the look after a PING of ours, the session
 * is destroyed. The PING is sent when the socket read bytes since the last look (a terminating
 * frame must have arrived) with no stream opening or closing, and nothing is queued. Only sessions without an open stream count
 * (nghttp2 closed them all when it terminated). Only stream-less sessions are probed, so a false
 * verdict (a peer that stopped reading altogether) loses no stream. The probe's own answer does not
 * count as arrived bytes, so an idle session is probed once after its last traffic, not forever.
 */
import type http2 from 'node:http2';
import type net from 'node:net';

export interface TerminationWatchOptions {
  /** Streams open on the session (the owner counts them). */
  openStreams: () => number;
  /** Streams opened plus closed so far; bytes read along with stream activity are not probed. */
  streamEvents?: () => number;
  /** How often to look; a terminated session is gone within about two of these. */
  intervalMs?: number;
  /** How long a probe PING may stay unanswered (no stream open); default PROBE_ACK_TIMEOUT_MS. */
  probeAckTimeoutMs?: number;
  /** Called once before the session is destroyed. */
  onTerminated?: () => void;
}

export const TERMINATION_CHECK_INTERVAL_MS = 500;
/** A probe PING unanswered this long on a session without streams: the session is not reading. */
export const PROBE_ACK_TIMEOUT_MS = 2000;

/** Bytes the kernel socket has handed up (native counter, advances while nothing reads in JS). */
function bytesRead(socket: net.Socket): number {
  return socket.bytesRead;
}

/** Bytes the session has written through the socket so far. */
function bytesWritten(socket: net.Socket): number {
  return socket.bytesWritten;
}

export function watchForTermination(session: http2.Http2Session, socket: net.Socket, opts: TerminationWatchOptions): void {
  // Not the current count: the session may have read (and died on) its first bytes before this
  // watch started, so the first look always probes.
  let lastRead = -1;
  let lastWritten = bytesWritten(socket);
  /** A PING of ours went out at the previous look. */
  let probing = false;
  /** The previous look already found frames queued and nothing being written. */
  let stalled = false;
  /** When the unanswered probe PING was sent (0: none outstanding). */
  let probeSentAt = 0;
  let lastStreamEvents = opts.streamEvents?.() ?? 0;
  const ackTimeoutMs = opts.probeAckTimeoutMs ?? PROBE_ACK_TIMEOUT_MS;
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
    // Frames queued, nothing written since the last look, no stream: a live session writes its
    // queue out at once (a write may also hang under it, towards a peer that is gone).
    const written = bytesWritten(socket);
    const stuck = queued > 0 && written === lastWritten && opts.openStreams() === 0;
    lastWritten = written;
    // Or: Node stopped reading (nghttp2 wants no more input, e.g. after a GOAWAY of its own with no
    // stream left) and our probe's answer can never be read.
    const unanswered = probeSentAt > 0 && Date.now() - probeSentAt >= ackTimeoutMs && opts.openStreams() === 0;
    if ((stuck && (probing || stalled)) || unanswered) {
      clearInterval(timer);
      opts.onTerminated?.();
      session.destroy();
      return;
    }
    stalled = stuck;
    probing = false;
    const read = bytesRead(socket);
    if (read === lastRead) return;
    // Bytes that came with streams opening or closing are ordinary traffic (the frames that end a
    // stream, a WINDOW_UPDATE): not probed, so a session that just carried streams does not PING
    // its peer. A protocol error in the same look is still caught, later: the keepalive PING
    // then stays queued (the `stuck` check above).
    const streamEvents = opts.streamEvents?.() ?? 0;
    if (streamEvents !== lastStreamEvents) {
      lastStreamEvents = streamEvents;
      lastRead = read;
      return;
    }
    // Something arrived; if nothing is queued there is nothing to watch drain: queue a PING (or
    // try again at the next look — `lastRead` stays until a probe went out).
    if (stuck || queued > 0 || opts.openStreams() > 0 || probeSentAt > 0) return;
    lastRead = read;
    try {
      probing = session.ping((err) => {
        if (err) return;
        probeSentAt = 0;
        // The answer itself is a read: without this every answered probe would trigger the next,
        // a PING every look for as long as the session lives idle.
        lastRead = bytesRead(socket);
      });
    } catch {
      probing = false;
    }
    if (probing) probeSentAt = Date.now();
  }, opts.intervalMs ?? TERMINATION_CHECK_INTERVAL_MS);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}
