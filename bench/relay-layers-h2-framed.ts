/**
 * A hand-written HTTP/2 client for CONNECT streams over one TLS socket: the "hand-written HBONE
 * data path" of bench/relay-layers.ts, to measure what replacing node:http2 (nghttp2 and its
 * JavaScript streams) with framing done in JavaScript would save. Bench code, not a product
 * path: it speaks just enough HTTP/2 for a peer built on nghttp2 (node:http2's server) —
 *
 * - the preface and one SETTINGS frame (no push, the agents' 4 MiB stream window), a connection
 *   WINDOW_UPDATE to the agents' 16 MiB; SETTINGS and PING from the peer are acknowledged;
 * - per stream, one HEADERS frame (`:method CONNECT`, `:authority`: HPACK literals without
 *   indexing or Huffman coding) and DATA frames of at most 16 KiB (the peer's default maximum
 *   frame size, never raised here); the peer's response HEADERS (and CONTINUATION) are not
 *   decoded: nothing here reads them, and only a decoder's dynamic table depends on them;
 * - WINDOW_UPDATE back once half a window was received, on the stream and on the connection;
 * - the peer's send windows are not tracked: the relay's request/response traffic stays far
 *   below them, and a peer that saw them overrun would reset the stream (reported as an error).
 *
 * RST_STREAM and GOAWAY from the peer destroy the affected streams with an error naming them.
 */
import { Duplex } from 'node:stream';
import tls from 'node:tls';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const MAX_DATA_FRAME = 16_384;
const enum FrameType {
  Data = 0,
  Headers = 1,
  RstStream = 3,
  Settings = 4,
  Ping = 6,
  GoAway = 7,
  WindowUpdate = 8,
}
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;

export interface FramedSessionOptions {
  host: string;
  port: number;
  /** Stream receive window announced in SETTINGS, bytes. */
  streamWindow: number;
  /** Connection receive window, bytes (raised with one WINDOW_UPDATE after the preface). */
  connectionWindow: number;
}

function frameHeader(length: number, type: FrameType, flags: number, streamId: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return header;
}

function windowUpdate(streamId: number, increment: number): Buffer {
  const frame = frameHeader(4, FrameType.WindowUpdate, 0, streamId);
  const body = Buffer.allocUnsafe(4);
  body.writeUInt32BE(increment);
  return Buffer.concat([frame, body]);
}

/** An HPACK string literal, no Huffman coding (lengths below 127 only: enough for `:authority`). */
function hpackString(value: string): Buffer {
  const bytes = Buffer.from(value, 'latin1');
  if (bytes.length >= 127) throw new Error(`HPACK literal of ${bytes.length} bytes: this bench client only encodes up to 126`);
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/** One CONNECT stream of a FramedSession, as a Duplex for src/net/relay.ts. */
export class FramedStream extends Duplex {
  unconsumed = 0;

  constructor(
    private readonly session: FramedSession,
    readonly id: number,
  ) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.session.sendData(this.id, chunk, false);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.session.sendData(this.id, Buffer.alloc(0), true);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.session.forget(this.id);
    callback(error);
  }
}

export class FramedSession {
  private readonly streams = new Map<number, FramedStream>();
  private nextStreamId = 1;
  private pending: Buffer | undefined;
  private connectionUnconsumed = 0;
  readonly socket: tls.TLSSocket;
  readonly ready: Promise<void>;

  constructor(private readonly options: FramedSessionOptions) {
    this.socket = tls.connect({ host: options.host, port: options.port, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('secureConnect', () => {
        if (this.socket.alpnProtocol !== 'h2') return reject(new Error(`${options.host}:${options.port} did not agree to ALPN h2 (got ${String(this.socket.alpnProtocol)})`));
        const settings = Buffer.allocUnsafe(12);
        settings.writeUInt16BE(0x2, 0); // SETTINGS_ENABLE_PUSH
        settings.writeUInt32BE(0, 2);
        settings.writeUInt16BE(0x4, 6); // SETTINGS_INITIAL_WINDOW_SIZE
        settings.writeUInt32BE(options.streamWindow, 8);
        this.socket.write(Buffer.concat([PREFACE, frameHeader(12, FrameType.Settings, 0, 0), settings, windowUpdate(0, options.connectionWindow - 65_535)]));
        resolve();
      });
      this.socket.once('error', reject);
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.failAll(err));
    this.socket.on('close', () => this.failAll(new Error('the HTTP/2 connection closed')));
  }

  /** Opens a CONNECT stream to `authority` (the HEADERS go out at once; data may follow right away). */
  open(authority: string): FramedStream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    // Literal header field without indexing, name from the static table: 2 = :method, 1 = :authority.
    const block = Buffer.concat([Buffer.from([0x02]), hpackString('CONNECT'), Buffer.from([0x01]), hpackString(authority)]);
    this.socket.write(Buffer.concat([frameHeader(block.length, FrameType.Headers, FLAG_END_HEADERS, id), block]));
    const stream = new FramedStream(this, id);
    this.streams.set(id, stream);
    return stream;
  }

  sendData(id: number, payload: Buffer, endStream: boolean): void {
    if (payload.length <= MAX_DATA_FRAME) {
      this.socket.write(Buffer.concat([frameHeader(payload.length, FrameType.Data, endStream ? FLAG_END_STREAM : 0, id), payload]));
      return;
    }
    for (let offset = 0; offset < payload.length; offset += MAX_DATA_FRAME) {
      const part = payload.subarray(offset, offset + MAX_DATA_FRAME);
      const last = offset + MAX_DATA_FRAME >= payload.length;
      this.socket.write(Buffer.concat([frameHeader(part.length, FrameType.Data, last && endStream ? FLAG_END_STREAM : 0, id), part]));
    }
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  close(): void {
    this.socket.destroy();
  }

  private failAll(err: Error): void {
    for (const stream of this.streams.values()) stream.destroy(err);
    this.streams.clear();
  }

  private onData(chunk: Buffer): void {
    const buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    let offset = 0;
    while (buffer.length - offset >= FRAME_HEADER_BYTES) {
      const length = buffer.readUIntBE(offset, 3);
      if (buffer.length - offset < FRAME_HEADER_BYTES + length) break;
      const type = buffer[offset + 3] as FrameType;
      const flags = buffer[offset + 4] as number;
      const id = buffer.readUInt32BE(offset + 5) & 0x7fff_ffff;
      const payload = buffer.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
      offset += FRAME_HEADER_BYTES + length;
      this.onFrame(type, flags, id, payload);
    }
    this.pending = offset === buffer.length ? undefined : buffer.subarray(offset);
  }

  private onFrame(type: FrameType, flags: number, id: number, payload: Buffer): void {
    switch (type) {
      case FrameType.Data: {
        const data = flags & FLAG_PADDED ? payload.subarray(1, payload.length - (payload[0] as number)) : payload;
        this.connectionUnconsumed += payload.length;
        if (this.connectionUnconsumed > this.options.connectionWindow / 2) {
          this.socket.write(windowUpdate(0, this.connectionUnconsumed));
          this.connectionUnconsumed = 0;
        }
        const stream = this.streams.get(id);
        if (!stream) return;
        if (data.length) stream.push(data);
        stream.unconsumed += payload.length;
        if (stream.unconsumed > this.options.streamWindow / 2) {
          this.socket.write(windowUpdate(id, stream.unconsumed));
          stream.unconsumed = 0;
        }
        if (flags & FLAG_END_STREAM) stream.push(null);
        return;
      }
      case FrameType.Headers:
        if (flags & FLAG_END_STREAM) this.streams.get(id)?.push(null);
        return;
      case FrameType.Settings:
        if (!(flags & FLAG_ACK)) this.socket.write(frameHeader(0, FrameType.Settings, FLAG_ACK, 0));
        return;
      case FrameType.Ping:
        if (!(flags & FLAG_ACK)) this.socket.write(Buffer.concat([frameHeader(8, FrameType.Ping, FLAG_ACK, 0), payload]));
        return;
      case FrameType.RstStream:
        this.streams.get(id)?.destroy(new Error(`the peer reset stream ${id} (HTTP/2 error code ${payload.readUInt32BE(0)})`));
        return;
      case FrameType.GoAway:
        this.failAll(new Error(`the peer sent GOAWAY (HTTP/2 error code ${payload.readUInt32BE(4)})`));
        return;
      default:
        return; // PRIORITY, WINDOW_UPDATE, unknown extension frames: nothing to do here
    }
  }
}
