/**
 * Raw HTTP/2 for fuzzing servers below node:http2's client (which refuses to send most malformed
 * things): frame encoding (RFC 9113 §4.1), HPACK literal header fields without indexing or
 * Huffman (RFC 7541 §6.2.2) so any name/value bytes — uppercase, duplicated pseudo-headers,
 * NULs, megabytes — reach the peer's decoder, and fast-check arbitraries of frames.
 */
import { once } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length & 0xffffff, 0, 3);
  header[3] = type & 0xff;
  header[4] = flags & 0xff;
  header.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing, names and values as given (no lowercasing, no checks). */
export function hpack(headers: ReadonlyArray<readonly [string | Buffer, string | Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.isBuffer(name) ? name : Buffer.from(name, 'utf8');
    const v = Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v);
  }
  return Buffer.concat(parts);
}

export function settingsFrame(entries: ReadonlyArray<readonly [number, number]> = [], ack = false): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id & 0xffff, i * 6);
    payload.writeUInt32BE(value >>> 0, i * 6 + 2);
  });
  return frame(FRAME.SETTINGS, ack ? FLAG.ACK : 0, 0, payload);
}

export const CONNECT_HEADERS = (authority: string): Array<[string, string]> => [
  [':method', 'CONNECT'],
  [':authority', authority],
];

/** A mutual-TLS h2 connection to `port` as the HBONE client would open it, before any HTTP/2 byte. */
export async function dialTls(port: number, secureContext: tls.SecureContext): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, secureContext, ALPNProtocols: ['h2'], rejectUnauthorized: false });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  return socket;
}

/** Writes `data` and waits until the peer closed or `ms` passed; returns what was read and whether the peer closed. */
export async function exchange(socket: net.Socket, data: readonly Buffer[], ms: number): Promise<{ read: Buffer; closed: boolean }> {
  const chunks: Buffer[] = [];
  const onData = (c: Buffer): number => chunks.push(c);
  socket.on('data', onData);
  const closed = new Promise<boolean>((resolve) => {
    if (socket.destroyed) resolve(true);
    socket.once('close', () => resolve(true));
  });
  for (const d of data) if (!socket.destroyed) socket.write(d);
  const result = await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
  socket.off('data', onData);
  return { read: Buffer.concat(chunks), closed: result };
}

/** The frames in `bytes` (type, flags, stream, payload), as far as they are complete. */
export function parseFrames(bytes: Buffer): Array<{ type: number; flags: number; streamId: number; payload: Buffer }> {
  const out: Array<{ type: number; flags: number; streamId: number; payload: Buffer }> = [];
  let i = 0;
  while (i + 9 <= bytes.length) {
    const length = bytes.readUIntBE(i, 3);
    if (i + 9 + length > bytes.length) break;
    out.push({ type: bytes[i + 3] as number, flags: bytes[i + 4] as number, streamId: bytes.readUInt32BE(i + 5) & 0x7fffffff, payload: bytes.subarray(i + 9, i + 9 + length) });
    i += 9 + length;
  }
  return out;
}

const hostileHeaderName = fc.oneof(
  fc.constantFrom(':method', ':authority', ':path', ':scheme', ':protocol', ':status', ':bogus', 'forwarded', 'baggage', 'traceparent', 'connection', 'te', 'transfer-encoding', 'Upper-Case', 'x', '', ' ', 'a:b', 'host'),
  fc.string({ maxLength: 12 }),
);
const hostileHeaderValue = fc.oneof(
  fc.constantFrom('CONNECT', 'GET', '127.0.0.1:1', '127.0.0.1:0', '[::1]:80', 'a'.repeat(70_000), '', '\u0000', 'x\r\ny', '10.0.0.1:15008', '127.0.0.1:15001', 'trailers', 'for="1.2.3.4:5"'),
  fc.string({ maxLength: 40 }),
);

/** A header list of hostile names and values, usually starting like a CONNECT. */
export const hostileHeaders: fc.Arbitrary<Array<[string, string]>> = fc
  .tuple(fc.boolean(), fc.array(fc.tuple(hostileHeaderName, hostileHeaderValue), { maxLength: 8 }))
  .map(([connectFirst, rest]) => (connectFirst ? [...CONNECT_HEADERS('127.0.0.1:1'), ...rest] : rest));

/** One client frame: any type (known or not), flags, a small stream id, a payload — or a hostile HEADERS frame. */
export const hostileFrame: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 1, 2, 3, 5, 0x7fffffff), fc.uint8Array({ maxLength: 64 })).map(([t, f, s, p]) => frame(t, f, s, Buffer.from(p))) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(1, 3, 5, 2), fc.constantFrom(FLAG.END_HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 0), hostileHeaders).map(([s, f, h]) => frame(FRAME.HEADERS, f, s, hpack(h))) },
  { weight: 1, arbitrary: fc.array(fc.tuple(fc.integer({ min: 0, max: 10 }), fc.nat()), { maxLength: 6 }).map((e) => settingsFrame(e)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0, 1, 3), fc.nat()).map(([s, inc]) => frame(FRAME.WINDOW_UPDATE, 0, s, Buffer.from([(inc >>> 24) & 0x7f, (inc >>> 16) & 0xff, (inc >>> 8) & 0xff, inc & 0xff]))) },
);
