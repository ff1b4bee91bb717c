// The ClientHello reader of TLS passthrough: real hellos from Node's TLS client (captured from an
// in-memory transport, nothing leaves the process), every prefix of one (need-more, never a
// throw), a hello split over records, and malformed input.
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../src/gateway/client-hello.js';

/** The bytes a TLS client sends first (its ClientHello record). */
function clientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve) => {
    const transport = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        done();
        resolve(chunk);
        // The first write happens inside tls.connect: the client is not assigned yet.
        setImmediate(() => client.destroy());
      },
    });
    const client = tls.connect({ socket: transport, rejectUnauthorized: false, ...opts });
    client.on('error', () => undefined);
  });
}

/** A hello re-framed as two handshake records, split at `at` bytes of the handshake message. */
function splitRecords(record: Buffer, at: number): Buffer {
  const body = record.subarray(5);
  const frame = (part: Buffer): Buffer => Buffer.concat([Buffer.from([22, 3, 1, part.length >> 8, part.length & 0xff]), part]);
  return Buffer.concat([frame(body.subarray(0, at)), frame(body.subarray(at))]);
}

describe('ClientHello parsing', () => {
  it('reads the SNI and ALPN of a real hello', async () => {
    const hello = await clientHello({ servername: 'Shop.Example.COM', ALPNProtocols: ['h2', 'http/1.1'] });
    expect(parseClientHello(hello)).toEqual({ kind: 'client-hello', serverName: 'shop.example.com', alpn: ['h2', 'http/1.1'] });
  });

  it('a hello without SNI (an IP address dialled) or ALPN', async () => {
    const hello = await clientHello({ host: '127.0.0.1' });
    expect(parseClientHello(hello)).toEqual({ kind: 'client-hello', alpn: [] });
  });

  it('TLS 1.2-only clients are read the same way', async () => {
    const hello = await clientHello({ servername: 'legacy.example.com', maxVersion: 'TLSv1.2' });
    expect(parseClientHello(hello)).toMatchObject({ kind: 'client-hello', serverName: 'legacy.example.com' });
  });

  it('every proper prefix needs more bytes, never throws', async () => {
    const hello = await clientHello({ servername: 'a.example.com', ALPNProtocols: ['h2'] });
    for (let n = 0; n < hello.length; n++) expect(parseClientHello(hello.subarray(0, n))).toEqual({ kind: 'need-more' });
    expect(parseClientHello(hello)).toMatchObject({ serverName: 'a.example.com' });
  });

  it('a hello split over two records, and bytes after it (early data) are ignored', async () => {
    const hello = await clientHello({ servername: 'split.example.com' });
    for (const at of [1, 3, 4, 40, hello.length - 6]) {
      const two = splitRecords(hello, at);
      expect(parseClientHello(two)).toMatchObject({ kind: 'client-hello', serverName: 'split.example.com' });
      expect(parseClientHello(two.subarray(0, two.length - 1))).toEqual({ kind: 'need-more' });
    }
    expect(parseClientHello(Buffer.concat([hello, Buffer.from([23, 3, 3, 0, 1, 0])]))).toMatchObject({ serverName: 'split.example.com' });
  });

  it.each<[string, Buffer, RegExp]>([
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nhost: x\r\n\r\n'), /not a TLS handshake record \(first byte 0x47\)/],
    ['one non-TLS byte is enough', Buffer.from([0x16 + 1]), /not a TLS handshake record/],
    ['an SSLv2-style record version', Buffer.from([22, 2, 0, 0, 10, 1, 0, 0, 6]), /unknown TLS record version 2\.0/],
    ['an empty record', Buffer.from([22, 3, 1, 0, 0]), /empty handshake record/],
    ['a ServerHello', Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0]), /type 2, not a ClientHello/],
    ['an oversized hello', Buffer.from([22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00]), new RegExp(`over the ${MAX_CLIENT_HELLO_BYTES}-byte limit`)],
    ['a body shorter than its fields', Buffer.from([22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3]), /truncated ClientHello/],
  ])('not TLS: %s', (_name, bytes, reason) => {
    const r = parseClientHello(bytes);
    expect(r.kind).toBe('not-tls');
    expect(r.kind === 'not-tls' ? r.reason : '').toMatch(reason);
  });

  it('malformed extensions are not-tls, not exceptions', async () => {
    const hello = await clientHello({ servername: 'evil.example.com' });
    // Find the SNI bytes and corrupt the name with a control byte, then its length.
    const at = hello.indexOf('evil.example.com');
    const control = Buffer.from(hello);
    control[at] = 0x01;
    expect(parseClientHello(control)).toEqual({ kind: 'not-tls', reason: 'an SNI host name with non-ASCII or control bytes' });
    const long = Buffer.from(hello);
    long.writeUInt16BE(0xffff, at - 2);
    expect(parseClientHello(long)).toEqual({ kind: 'not-tls', reason: 'truncated ClientHello' });
  });

  it('a trailing dot is dropped from the SNI', () => {
    const name = Buffer.from('dot.example.com.');
    const sni = Buffer.concat([Buffer.from([0, 0]), u16(name.length + 5), u16(name.length + 3), Buffer.from([0]), u16(name.length), name]);
    const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32), Buffer.from([0]), u16(2), Buffer.from([0x13, 0x01]), Buffer.from([1, 0]), u16(sni.length), sni]);
    const msg = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
    const record = Buffer.concat([Buffer.from([22, 3, 1]), u16(msg.length), msg]);
    expect(parseClientHello(record)).toEqual({ kind: 'client-hello', serverName: 'dot.example.com', alpn: [] });
  });
});

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
