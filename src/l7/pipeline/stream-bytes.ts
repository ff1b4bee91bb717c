/**
 * Byte counts of a stream the proxy hands to someone else to relay (the HBONE server relays a
 * CONNECT's upstream itself): `received` = bytes written into it (from the downstream), `sent` =
 * bytes read from it (to the downstream). A net.Socket keeps its own counters; any other Duplex
 * (an HBONE CONNECT stream) gets its `write`, `end` and `push` wrapped — adding a 'data' listener
 * instead would start the flow before the relay listens and lose the first chunks.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';

export interface StreamBytes {
  received(): number;
  sent(): number;
}

export function countStreamBytes(stream: Duplex): StreamBytes {
  if (stream instanceof net.Socket) return { received: () => stream.bytesWritten, sent: () => stream.bytesRead };
  let received = 0;
  let sent = 0;
  const s = stream as unknown as { write: (...args: unknown[]) => boolean; end: (...args: unknown[]) => unknown; push: (chunk: unknown, encoding?: BufferEncoding) => boolean };
  const count = (chunk: unknown): void => {
    if (chunk instanceof Uint8Array) received += chunk.length;
    else if (typeof chunk === 'string') received += Buffer.byteLength(chunk);
  };
  const write = s.write;
  s.write = function countedWrite(this: unknown, ...args: unknown[]): boolean {
    count(args[0]);
    return write.apply(stream, args);
  };
  // end(chunk) writes through Writable's internals, not through `write`.
  const end = s.end;
  s.end = function countedEnd(this: unknown, ...args: unknown[]): unknown {
    if (typeof args[0] !== 'function') count(args[0]);
    return end.apply(stream, args);
  };
  const push = s.push;
  s.push = function countedPush(this: unknown, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk instanceof Uint8Array) sent += chunk.length;
    return push.call(stream, chunk, encoding);
  };
  return { received: () => received, sent: () => sent };
}
