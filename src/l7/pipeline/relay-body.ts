/**
 * Streams a response body from the upstream to the downstream: what `src.pipe(dest)` does for
 * one body, with two listeners instead of pipe's eight (pipe's bookkeeping was a visible share
 * of the per-request CPU and allocation on the forwarding path).
 *
 * - Back-pressure: `src` pauses while `dest`'s buffer is full and resumes on its `drain`.
 * - `src` ending ends `dest`; an error or abort of `src` does not (the caller resets `dest`).
 * - A `dest` that is gone (destroyed) stops taking chunks: `src` stays paused, as after pipe's
 *   unpipe; the caller aborts the upstream when the downstream goes away.
 * - Returns a counter of the bytes passed on so far (the access log's and metrics' response size).
 * - A source that already holds its whole body (`takeWhole`, the lean client's LeanResponse) is
 *   written and ended at once: the same write and end calls, without the two ticks (flowing
 *   resume, then 'end') a stream takes to deliver them.
 */
import type { Readable } from 'node:stream';

/** A source that can hand over its whole body at once: the body (`null`: none), or undefined when it must be streamed. */
export interface WholeBodySource {
  takeWhole(): Buffer | null | undefined;
}

/** What relayBody writes to: a Writable (an HTTP/2 stream) or an HTTP/1.1 response (Node's or the lean server's). */
export interface BodySink {
  readonly destroyed: boolean;
  write(chunk: Buffer): boolean;
  end(): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

export function relayBody(src: Readable & Partial<WholeBodySource>, dest: BodySink): { bytes: number } {
  const counted = { bytes: 0 };
  const whole = dest.destroyed ? undefined : src.takeWhole?.();
  if (whole !== undefined) {
    if (whole !== null) {
      counted.bytes = whole.length;
      dest.write(whole);
    }
    dest.end();
    return counted;
  }
  const onDrain = (): void => {
    if (!dest.destroyed) src.resume();
  };
  src.on('data', (chunk: Buffer) => {
    if (dest.destroyed) {
      src.pause();
      return;
    }
    counted.bytes += chunk.length;
    if (!dest.write(chunk)) {
      src.pause();
      dest.once('drain', onDrain);
    }
  });
  src.once('end', () => {
    if (!dest.destroyed) dest.end();
  });
  if (src.isPaused()) src.resume();
  return counted;
}
