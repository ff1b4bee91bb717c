/**
 * Two connected in-memory Duplex ends (Node 22.6's `stream.duplexPair()`, which Node 20 lacks):
 * what one end writes the other reads, with back-pressure (a write completes once the other end
 * consumed it), `end()` becomes the other end's EOF, and destroying one end destroys the other
 * (a premature-close error unless both directions had finished) — like a socket's RST.
 *
 * The waypoint feeds one end to `http.Server` / `http2.Server` with `emit('connection')` and
 * relays the other to the HBONE CONNECT stream. Socket-ish no-ops (`setNoDelay`, `setKeepAlive`,
 * `setTimeout`, `ref`, `unref`) and addresses are there because Node's HTTP servers call them.
 */
import { Duplex } from 'node:stream';

export interface PairAddresses {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
}

export class PairEnd extends Duplex {
  other!: PairEnd;
  private pendingWrite: (() => void) | undefined;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  readonly remoteFamily = 'IPv4';
  readonly encrypted = false;

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    const done = this.pendingWrite;
    if (done) {
      this.pendingWrite = undefined;
      done();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const other = this.other;
    if (other.destroyed) return callback(new Error('the other end of the pair is destroyed'));
    if (chunk.length === 0) return callback();
    if (other.push(chunk)) callback();
    else other.pendingWrite = callback;
  }

  /**
   * Corked writes (Node's HTTP servers cork a response's head and body until the next tick)
   * reach the other end as ONE chunk: relayed into an HBONE stream that is one DATA frame and
   * one TLS record instead of one per write (a 1 KiB response was two of each).
   */
  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: (err?: Error | null) => void): void {
    let length = 0;
    for (const c of chunks) length += c.chunk.length;
    const first = chunks[0];
    const joined = chunks.length === 1 && first ? first.chunk : Buffer.concat(chunks.map((c) => c.chunk), length);
    this._write(joined, first?.encoding ?? 'latin1', callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.other.destroyed) this.other.push(null);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const pending = this.other.pendingWrite;
    this.other.pendingWrite = undefined;
    pending?.();
    if (!this.other.destroyed) {
      const clean = this.readableEnded && this.writableFinished;
      this.other.destroy(err ?? (clean ? undefined : Object.assign(new Error('the other end of the pair closed'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
    }
    callback(err);
  }

  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  destroySoon(): void {
    this.end();
  }
}

export function duplexPair(addresses: { a?: PairAddresses; b?: PairAddresses } = {}): [PairEnd, PairEnd] {
  const a = new PairEnd();
  const b = new PairEnd();
  a.other = b;
  b.other = a;
  Object.assign(a, addresses.a ?? {});
  Object.assign(b, addresses.b ?? {});
  return [a, b];
}
