/**
 * Early data: a captured client's first bytes go out on its CONNECT stream right behind the
 * HEADERS, before the peer's 200, instead of one agent-to-agent round trip later. For a new
 * connection whose client speaks first (an HTTP request), the request then reaches the pod as
 * soon as the destination's agent has connected to it.
 *
 * Why this is safe on the wire: HTTP/2 scopes DATA to its stream (RFC 9113 §8.5 only forbids
 * frames other than DATA and stream management on a connected stream), so a refused CONNECT
 * (401, 503) discards what it carried — unlike HTTP/1.1 CONNECT, where early bytes would be read
 * as the next request. A destination holds early DATA in the stream's flow-control window until
 * it relays (ours: hbone/server.ts reads the stream only after its upstream connected and policy
 * allowed; an h2 server such as ztunnel's buffers it the same way).
 *
 * Invariants:
 * - Every byte read from the client before the hand-over is kept until the hand-over, so a
 *   CONNECT the pool retries on a fresh connection (REFUSED_STREAM under GOAWAY, a session that
 *   died before answering) replays it: nothing the client sent is lost.
 * - At most `maxBytes` are read before the answer; then the client is paused until the relay.
 *   A client that half-closes early has its END_STREAM sent (and replayed) too.
 * - Whenever no stream owns it (before attach, after detach or handOver) the client is paused
 *   and has no 'data' listener: a byte is never read without someone to send it.
 * - The client's errors are absorbed, not acted on: the socket destroys itself, and the relay
 *   that takes it over (net/relay.ts) sees a destroyed source and aborts the stream, or the
 *   refusal path resets what is left.
 */
import type { Duplex } from 'node:stream';

export class EarlyData {
  private readonly chunks: Buffer[] = [];
  private stream: Duplex | undefined = undefined;
  /** Bytes read from the client so far (and written to the current stream). */
  bytes = 0;
  /** The client ended its writing before the hand-over (its END_STREAM is sent). */
  ended = false;

  constructor(
    private readonly client: Duplex,
    private readonly maxBytes: number,
  ) {
    client.on('error', this.onError);
  }

  /** Starts (or replays, on a retried CONNECT) the client's bytes on `stream`. */
  attach(stream: Duplex): void {
    this.detach();
    this.stream = stream;
    for (const chunk of this.chunks) stream.write(chunk);
    if (this.ended) {
      stream.end();
      return;
    }
    const client = this.client;
    client.on('data', this.onData);
    client.on('end', this.onEnd);
    if (this.bytes < this.maxBytes) client.resume();
  }

  /** The stream failed: stop feeding it (the bytes stay kept for a retry). */
  detach(): void {
    const client = this.client;
    client.pause();
    client.off('data', this.onData);
    client.off('end', this.onEnd);
    this.stream = undefined;
  }

  /** The peer answered 200: the relay takes the client over from here. Returns the early byte count. */
  handOver(): number {
    this.detach();
    this.client.off('error', this.onError);
    this.chunks.length = 0;
    return this.bytes;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.stream?.write(chunk);
    if (this.bytes >= this.maxBytes) this.client.pause();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.stream?.end();
  };

  private readonly onError = (): void => {};
}
