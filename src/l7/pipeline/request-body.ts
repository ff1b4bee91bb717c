/**
 * A downstream request body that more than one try can send: while it streams to the current
 * try it is also kept, up to `limit` bytes, so a retry can send it again from the start. A body
 * longer than the limit stops being kept (`replayable` turns false: no retry for that request)
 * and simply streams on, as it would without retries.
 *
 * Back-pressure: the source pauses while the current sink's buffer is full and between tries (no
 * sink), so at most `limit` bytes plus one sink's high-water mark are held here.
 * Every byte read from the source is added to `counter.requestBytes` (once, however many tries).
 */
import type { Readable, Writable } from 'node:stream';

export class RequestBody {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private overflowed = false;
  private ended = false;
  private listening = false;
  private sink: Writable | undefined;

  constructor(
    private readonly source: Readable,
    private readonly limit: number,
    private readonly counter: { requestBytes: number } = { requestBytes: 0 },
  ) {}

  /** Can a new try still get the whole body? */
  get replayable(): boolean {
    return !this.overflowed;
  }

  /** Sends the body to `sink`: what was kept, then the rest as it arrives; ends `sink` with it. */
  attach(sink: Writable): void {
    this.detach();
    this.sink = sink;
    let flowing = true;
    for (const chunk of this.chunks) flowing = sink.write(chunk) && flowing;
    if (this.ended) {
      sink.end();
      return;
    }
    if (!this.listening) {
      this.listening = true;
      this.source.on('data', this.onData);
      this.source.once('end', this.onEnd);
    }
    if (flowing) this.source.resume();
    else this.waitForDrain(sink);
  }

  /** Stops feeding the current sink (its try was abandoned); the source pauses until the next attach. */
  detach(): void {
    this.sink?.off('drain', this.onDrain);
    this.sink = undefined;
  }

  private waitForDrain(sink: Writable): void {
    this.source.pause();
    sink.once('drain', this.onDrain);
  }

  private readonly onDrain = (): void => {
    if (this.sink) this.source.resume();
  };

  private readonly onData = (chunk: Buffer): void => {
    this.counter.requestBytes += chunk.length;
    if (!this.overflowed) {
      if (this.kept + chunk.length > this.limit) {
        this.overflowed = true;
        this.chunks.length = 0;
      } else {
        this.chunks.push(chunk);
        this.kept += chunk.length;
      }
    }
    const sink = this.sink;
    if (!sink || sink.destroyed) {
      this.source.pause();
      return;
    }
    if (!sink.write(chunk)) this.waitForDrain(sink);
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    const sink = this.sink;
    if (sink && !sink.destroyed) sink.end();
  };
}
