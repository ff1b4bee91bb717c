/**
 * Moves bytes both ways between two duplex streams (TCP sockets, TLS sockets, HTTP/2 CONNECT
 * streams) until both directions are done.
 *
 * Invariants:
 * - Half-close propagates: when one side ends its writing (FIN / END_STREAM), the other side's
 *   writable is ended, and the reverse direction keeps flowing until it ends too.
 * - Backpressure: a side stops reading while the other side's write buffer holds
 *   RELAY_BUFFER_BYTES (128 KiB) or more, until it drained.
 * - Paused sockets (listeners with `pauseOnConnect`) are resumed: relay owns the reading.
 * - An error or an abrupt close on either side tears down both sides; the first error is
 *   reported. A plain TCP peer is reset (RST) so the client sees the failure, as ztunnel does.
 *   An HTTP/2 stream that ends without END_STREAM (peer RST_STREAM(NO_ERROR), its session
 *   destroyed: PING timeout, socket cut) is such an abrupt close, not a FIN: an app without
 *   framing would take the cut-short stream for a complete one (issue #12).
 * - The promise always resolves (never rejects), once both sides are finished or destroyed.
 *   Afterwards both streams are destroyed (a cleanly finished HTTP/2 stream by Node, once its
 *   END_STREAM went out) and relay's listeners removed, except a no-op 'error' listener so a
 *   late error on a dead stream cannot crash the process.
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

export interface RelayResult {
  /** Bytes read from `a` (and written to `b`). */
  aToB: number;
  /** Bytes read from `b` (and written to `a`). */
  bToA: number;
  error?: Error;
}

const ignore = (): void => {};

/** Node's Http2Stream (client or server side): the only streams with an `rstCode`. */
function isHttp2Stream(stream: Duplex): stream is http2.Http2Stream {
  return 'rstCode' in stream && typeof (stream as http2.Http2Stream).close === 'function';
}

function abort(stream: Duplex): void {
  if (stream.destroyed) return;
  // A CONNECT tunnel's TCP failure is RST_STREAM(CONNECT_ERROR) (RFC 7540 §8.3). A plain
  // destroy() sends NO_ERROR, and a peer with blocked writes then waits for them forever.
  if (isHttp2Stream(stream)) {
    // close() ends the writable side first, and with nothing queued Node's _final submits
    // END_STREAM at once, which nghttp2 flushes before the RST_STREAM: the peer would read a
    // clean end and relay a FIN before the reset arrived (issue #12). Marked as ending, the
    // stream's close() sends the RST_STREAM alone; settle() destroys it right after, so no
    // write or _final can follow. (Node has no public "reset without END_STREAM" with a code.)
    const writable = (stream as unknown as { _writableState?: { ending?: boolean } })._writableState;
    if (writable && !writable.ending) writable.ending = true;
    stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    return;
  }
  // Only reset a socket whose write side is still open: once a FIN is queued, libuv's
  // close-reset fails (EINVAL) and Node then never emits 'close' for the socket.
  if (stream instanceof net.Socket && !(stream instanceof tls.TLSSocket) && !stream.writableEnded) {
    try {
      stream.resetAndDestroy();
      return;
    } catch {
      // not connected any more: a plain destroy is all that is left
    }
  }
  stream.destroy();
}

/**
 * How an HTTP/2 stream's readable side ended. Node ends it (push(null), then 'end') both when
 * END_STREAM arrives and when the stream is closed without one: RST_STREAM(NO_ERROR) from the
 * peer, the session destroyed (PING timeout, socket cut, peer gone). 'aborted' tells the second
 * kind only while our own writable side is still open — it is documented not to fire once that
 * side has ended, so a client that had half-closed and then lost its tunnel got a clean FIN.
 * What does tell them apart, in Node 20 and 24 alike: END_STREAM's EOF is pushed while the
 * stream is still open (nghttp2 reports the frame before it closes the stream), any other end
 * is pushed by closing the stream, after `closed` is set (lib/internal/http2/core.js:
 * onStreamClose → closeStream). So the EOF is classified at the moment it is pushed.
 * Returns whether the end came without END_STREAM, and the undo for relay's cleanup.
 */
function watchEndStream(stream: http2.Http2Stream): { cut: () => boolean; undo: () => void } {
  const readable = (stream as unknown as { _readableState?: { ended?: boolean } })._readableState;
  // Already ended before the relay started: only 'aborted' can still tell.
  let cut: boolean | undefined = readable?.ended ? stream.aborted : undefined;
  const own = Object.prototype.hasOwnProperty.call(stream, 'push');
  const push = stream.push;
  stream.push = function (this: http2.Http2Stream, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null && cut === undefined) cut = stream.closed;
    return push.call(this, chunk, encoding);
  };
  return {
    cut: () => cut === true,
    undo: () => {
      if (own) stream.push = push;
      else delete (stream as { push?: unknown }).push;
    },
  };
}

/**
 * Bytes a relay direction queues in the destination's writable buffer before it stops reading
 * its source: the bound on memory per direction (plus one chunk) when the reader is slow.
 */
export const RELAY_BUFFER_BYTES = 128 * 1024;

/** A turn's batching starts with a chunk at least this big (a TLS record carries 16 KiB). */
const BATCH_MIN_CHUNK_BYTES = 8 * 1024;

/**
 * For a plain TCP destination: the first chunk of an event-loop turn is written at once (no
 * added latency); later chunks of the same turn (when the first was a bulk-sized one, see
 * BATCH_MIN_CHUNK_BYTES: the check costs a setImmediate per chunk) are corked and leave in ONE writev when the
 * turn ends. An HTTP/2 stream delivers a read of its TLS socket as several 16 KiB chunks
 * (one per TLS record) in one turn: without this, each became its own write(2) — on
 * loopback/veth a syscall that also runs the receiver's TCP stack. HTTP/2 streams and TLS
 * sockets batch their own writes. Corked bytes count in `writableLength`, so a batch is
 * bounded by RELAY_BUFFER_BYTES like any other queued data.
 */
function writeBatcher(dst: Duplex): ((chunkBytes: number) => void) | undefined {
  if (!(dst instanceof net.Socket) || dst instanceof tls.TLSSocket) return undefined;
  let turn = false;
  let corked = false;
  const endTurn = (): void => {
    turn = false;
    if (corked) {
      corked = false;
      dst.uncork();
    }
  };
  return (chunkBytes: number) => {
    if (!turn) {
      // Small chunks (requests, responses) rarely come in groups: no timer for them.
      if (chunkBytes < BATCH_MIN_CHUNK_BYTES) return;
      turn = true;
      setImmediate(endTurn);
    } else if (!corked) {
      corked = true;
      dst.cork();
    }
  };
}

export function relay(a: Duplex, b: Duplex): Promise<RelayResult> {
  return new Promise((resolve) => {
    const bytes = { aToB: 0, bToA: 0 };
    let error: Error | undefined;
    let settled = false;
    const cleanups: Array<() => void> = [];
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
    const on = (stream: Duplex, event: string, listener: (...args: any[]) => void): void => {
      stream.on(event, listener);
      cleanups.push(() => stream.off(event, listener));
    };

    const settle = (): void => {
      if (settled) return;
      settled = true;
      for (const undo of cleanups) undo();
      for (const s of [a, b]) {
        s.on('error', ignore);
        // A finished HTTP/2 stream closes by itself once its END_STREAM is sent; destroying it
        // now could send the RST_STREAM before that END_STREAM, and the peer would read a cut.
        if (!error && isHttp2Stream(s) && !s.closed) continue;
        s.destroy();
      }
      resolve(error ? { ...bytes, error } : { ...bytes });
    };
    const fail = (err: Error): void => {
      if (settled) return;
      error ??= err;
      abort(a);
      abort(b);
      settle();
    };
    const done = (): boolean => a.readableEnded && b.readableEnded && a.writableFinished && b.writableFinished;
    const check = (): void => {
      if (!settled && done()) settle();
    };

    const pump = (src: Duplex, dst: Duplex, key: 'aToB' | 'bToA'): void => {
      const batch = writeBatcher(dst);
      on(src, 'data', (chunk: Buffer) => {
        bytes[key] += chunk.length;
        batch?.(chunk.length);
        // Node's 16 KiB high-water mark is below one 64 KiB socket read: waiting for 'drain'
        // after every chunk costs a readStop/readStart (two epoll_ctl) per chunk, and a corked
        // batch would end at its second 16 KiB chunk. The source waits only once RELAY_BUFFER_BYTES
        // are queued; write()'s false has armed 'drain' by then.
        if (!dst.write(chunk) && dst.writableLength >= RELAY_BUFFER_BYTES) src.pause();
      });
      on(dst, 'drain', () => src.resume());
      const endStream = isHttp2Stream(src) ? watchEndStream(src) : undefined;
      if (endStream) cleanups.push(endStream.undo);
      on(src, 'end', () => {
        if (endStream?.cut()) return fail(Object.assign(new Error('HTTP/2 stream was closed before END_STREAM (peer reset it or its session died)'), { code: 'ERR_HTTP2_STREAM_CUT' }));
        dst.end();
        check();
      });
      on(dst, 'finish', check);
      on(src, 'error', (err: Error) => fail(err));
      on(src, 'close', () => {
        // A side that ended both its directions may close before the other side's last write
        // is flushed: that is a clean finish, completed by the other side's 'finish'.
        if (src.readableEnded && src.writableFinished) return check();
        // Any other close is an abort.
        if (!done()) fail(src.errored ?? Object.assign(new Error('connection closed before the relay finished'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      });
    };
    pump(a, b, 'aToB');
    pump(b, a, 'bToA');

    for (const [src, dst] of [
      [a, b],
      [b, a],
    ] as const) {
      if (src.destroyed) return fail(src.errored ?? new Error('stream was destroyed before the relay started'));
      if (src.readableEnded) dst.end();
    }
    a.resume();
    b.resume();
    check();
  });
}
