/**
 * Moves bytes both ways between two duplex streams (TCP sockets, TLS sockets, HTTP/2 CONNECT
 * streams) until both directions are done.
 *
 * Invariants:
 * - Half-close propagates: when one side ends its writing (FIN / END_STREAM), the other side's
 *   writable is ended, and the reverse direction keeps flowing until it ends too.
 * - Backpressure: a side stops reading while the other side's write buffer holds
 *   RELAY_BUFFER_BYTES (1 MiB) or more, until it drained.
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

/**
 * Tears one side down so its peer sees a failure, not an end: RST_STREAM(CONNECT_ERROR) without
 * END_STREAM for an HTTP/2 stream, RST for a plain TCP socket, else a destroy.
 */
export function resetStream(stream: Duplex): void {
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
 * onStreamClose → closeStream). So the EOF is classified at the moment it is pushed, into
 * `direction.cut`; `unwatchEndStream` is relay's cleanup.
 */
function watchEndStream(stream: http2.Http2Stream, direction: Direction): void {
  const readable = (stream as unknown as { _readableState?: { ended?: boolean } })._readableState;
  // Already ended before the relay started: only 'aborted' can still tell.
  direction.cut = readable?.ended ? stream.aborted : undefined;
  direction.ownPush = Object.prototype.hasOwnProperty.call(stream, 'push');
  const push = (direction.push = stream.push);
  stream.push = function (this: http2.Http2Stream, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null && direction.cut === undefined) direction.cut = stream.closed;
    return push.call(this, chunk, encoding);
  };
}

function unwatchEndStream(stream: Duplex, direction: Direction): void {
  if (!direction.push) return;
  if (direction.ownPush) stream.push = direction.push;
  else delete (stream as { push?: unknown }).push;
}

/**
 * Bytes a relay direction queues in the destination's writable buffer before it stops reading
 * its source: the bound on memory per direction (plus one chunk) when the reader is slow.
 *
 * Why 1 MiB: a paused source resumes only at 'drain', which Node emits once the destination's
 * buffer is empty, and its next read needs another event-loop turn, so the destination idles
 * for a moment at every pause. Under bulk load the agents paused every 128 KiB (the previous
 * value) and a quarter of the two CPUs sat idle while neither agent was saturated (perf, iperf3 -P1
 * through amesh). Interleaved iperf3 -P1 runs through the agents, Gbit/s forward / reverse:
 * 128 KiB 4.36–5.16, 512 KiB 5.81–6.07, 1 MiB 5.85–6.40, 2 MiB 5.49–6.01, 4 MiB 5.73–6.01.
 * A slow reader's connection holds this plus the peer's HBONE stream window (4 MiB).
 */
export const RELAY_BUFFER_BYTES = 1024 * 1024;

/** A turn's batching starts with a chunk at least this big (a TLS record carries 16 KiB). */
const BATCH_MIN_CHUNK_BYTES = 8 * 1024;

/**
 * One direction of a relay: `src`'s bytes written to `dst`.
 *
 * The relay's state lives in two of these and one `Relay`, with their listeners as the only
 * per-connection functions: a relay is held for as long as its connection lives, so what it
 * allocates is paid per held connection (the closure-per-listener version, with a cleanup closure
 * per listener, cost about 2 KB more per connection in each agent).
 *
 * Write batching, for a plain TCP destination: the first chunk of an event-loop turn is written at
 * once (no added latency); later chunks of the same turn (when the first was a bulk-sized one, see
 * BATCH_MIN_CHUNK_BYTES: the check costs a setImmediate per chunk) are corked and leave in ONE writev when the
 * turn ends. An HTTP/2 stream delivers a read of its TLS socket as several 16 KiB chunks
 * (one per TLS record) in one turn: without this, each became its own write(2) — on
 * loopback/veth a syscall that also runs the receiver's TCP stack. HTTP/2 streams and TLS
 * sockets batch their own writes. Corked bytes count in `writableLength`, so a batch is
 * bounded by RELAY_BUFFER_BYTES like any other queued data.
 */
class Direction {
  bytes = 0;
  /** watchEndStream's state, for an HTTP/2 source: how its EOF came, and the `push` it wrapped. */
  cut: boolean | undefined = undefined;
  ownPush = false;
  push: Duplex['push'] | undefined = undefined;
  private readonly batching: boolean;
  private turn = false;
  private corked = false;
  private endTurnCallback: (() => void) | undefined = undefined;

  constructor(
    private readonly relay: Relay,
    readonly src: Duplex,
    readonly dst: Duplex,
  ) {
    this.batching = dst instanceof net.Socket && !(dst instanceof tls.TLSSocket);
  }

  attach(): void {
    const { src, dst, relay } = this;
    src.on('data', this.onData);
    dst.on('drain', this.onDrain);
    if (isHttp2Stream(src)) watchEndStream(src, this);
    src.on('end', this.onEnd);
    dst.on('finish', relay.check);
    src.on('error', relay.fail);
    src.on('close', this.onClose);
  }

  detach(): void {
    const { src, dst, relay } = this;
    src.off('data', this.onData);
    dst.off('drain', this.onDrain);
    unwatchEndStream(src, this);
    src.off('end', this.onEnd);
    dst.off('finish', relay.check);
    src.off('error', relay.fail);
    src.off('close', this.onClose);
  }

  private batch(chunkBytes: number): void {
    if (!this.turn) {
      // Small chunks (requests, responses) rarely come in groups: no timer for them.
      if (chunkBytes < BATCH_MIN_CHUNK_BYTES) return;
      this.turn = true;
      setImmediate((this.endTurnCallback ??= () => this.endTurn()));
    } else if (!this.corked) {
      this.corked = true;
      this.dst.cork();
    }
  }

  private endTurn(): void {
    this.turn = false;
    if (this.corked) {
      this.corked = false;
      this.dst.uncork();
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    const dst = this.dst;
    this.bytes += chunk.length;
    if (this.batching) this.batch(chunk.length);
    // Node's 16 KiB high-water mark is below one 64 KiB socket read: waiting for 'drain'
    // after every chunk costs a readStop/readStart (two epoll_ctl) per chunk, and a corked
    // batch would end at its second 16 KiB chunk. The source waits only once RELAY_BUFFER_BYTES
    // are queued; write()'s false has armed 'drain' by then.
    if (!dst.write(chunk) && dst.writableLength >= RELAY_BUFFER_BYTES) this.src.pause();
  };

  private readonly onDrain = (): void => {
    this.src.resume();
  };

  private readonly onEnd = (): void => {
    if (this.cut === true) return this.relay.fail(Object.assign(new Error('HTTP/2 stream was closed before END_STREAM (peer reset it or its session died)'), { code: 'ERR_HTTP2_STREAM_CUT' }));
    this.dst.end();
    this.relay.check();
  };

  private readonly onClose = (): void => {
    const src = this.src;
    // A side that ended both its directions may close before the other side's last write
    // is flushed: that is a clean finish, completed by the other side's 'finish'.
    if (src.readableEnded && src.writableFinished) return this.relay.check();
    // Any other close is an abort.
    if (!this.relay.done()) this.relay.fail(src.errored ?? Object.assign(new Error('connection closed before the relay finished'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
  };
}

class Relay {
  private error: Error | undefined = undefined;
  private settled = false;
  private readonly aToB: Direction;
  private readonly bToA: Direction;

  constructor(
    private readonly a: Duplex,
    private readonly b: Duplex,
    private readonly resolve: (result: RelayResult) => void,
  ) {
    this.aToB = new Direction(this, a, b);
    this.bToA = new Direction(this, b, a);
  }

  start(): void {
    const { a, b } = this;
    this.aToB.attach();
    this.bToA.attach();
    for (const [src, dst] of [
      [a, b],
      [b, a],
    ] as const) {
      if (src.destroyed) return this.fail(src.errored ?? new Error('stream was destroyed before the relay started'));
      if (src.readableEnded) dst.end();
    }
    a.resume();
    b.resume();
    this.check();
  }

  done(): boolean {
    const { a, b } = this;
    return a.readableEnded && b.readableEnded && a.writableFinished && b.writableFinished;
  }

  readonly check = (): void => {
    if (!this.settled && this.done()) this.settle();
  };

  readonly fail = (err: Error): void => {
    if (this.settled) return;
    this.error ??= err;
    resetStream(this.a);
    resetStream(this.b);
    this.settle();
  };

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.aToB.detach();
    this.bToA.detach();
    const error = this.error;
    for (const s of [this.a, this.b]) {
      s.on('error', ignore);
      // A finished HTTP/2 stream closes by itself once its END_STREAM is sent; destroying it
      // now could send the RST_STREAM before that END_STREAM, and the peer would read a cut.
      if (!error && isHttp2Stream(s) && !s.closed) continue;
      s.destroy();
    }
    const bytes = { aToB: this.aToB.bytes, bToA: this.bToA.bytes };
    this.resolve(error ? { ...bytes, error } : bytes);
  }
}

export function relay(a: Duplex, b: Duplex): Promise<RelayResult> {
  return new Promise((resolve) => new Relay(a, b, resolve).start());
}
