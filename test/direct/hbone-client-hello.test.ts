/**
 * What the HBONE client puts on the wire, read from its raw TLS ClientHello (RFC 8446 §4.1.2):
 * no server_name extension at all (not merely an empty one), ALPN exactly ["h2"], TLS 1.3 as
 * the only supported version, and only the two AES-GCM suites.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { HbonePool } from '../../src/hbone/pool.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestCa, workload } from '../helpers/pki.js';

interface ClientHello {
  cipherSuites: number[];
  extensions: Map<number, Buffer>;
}

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

/** Parses the first handshake record; throws on anything that is not a ClientHello. */
function parseClientHello(buf: Buffer): ClientHello {
  let p = 0;
  const u8 = (): number => buf.readUInt8(p++);
  const u16 = (): number => {
    const v = buf.readUInt16BE(p);
    p += 2;
    return v;
  };
  if (u8() !== 22) throw new Error('not a handshake record');
  p += 2; // legacy record version
  const recordLength = u16();
  if (buf.length < 5 + recordLength) throw new Error('short record');
  if (u8() !== 1) throw new Error('not a ClientHello');
  p += 3; // handshake length
  p += 2; // legacy_version
  p += 32; // random
  const sessionIdLength = u8();
  p += sessionIdLength; // legacy_session_id
  const suitesLength = u16();
  const cipherSuites: number[] = [];
  for (const end = p + suitesLength; p < end; ) cipherSuites.push(u16());
  const compressionLength = u8();
  p += compressionLength; // legacy_compression_methods
  const extensions = new Map<number, Buffer>();
  const extensionsLength = u16();
  for (const end = p + extensionsLength; p < end; ) {
    const type = u16();
    const len = u16();
    extensions.set(type, buf.subarray(p, p + len));
    p += len;
  }
  return { cipherSuites, extensions };
}

function alpnProtocols(ext: Buffer): string[] {
  const out: string[] = [];
  for (let p = 2; p < ext.length; ) {
    const len = ext.readUInt8(p);
    out.push(ext.subarray(p + 1, p + 1 + len).toString());
    p += 1 + len;
  }
  return out;
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A fake "HBONE server" that records the first TLS record it receives and hangs up. */
async function captureServer(): Promise<{ port: number; hello: Promise<Buffer> }> {
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((r) => (resolveHello = r));
  const server = net.createServer((socket) => {
    let data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
        resolveHello(data);
        socket.destroy();
      }
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, hello };
}

describe('HBONE ClientHello', () => {
  // Node's tls.connect sends SNI only for an explicit `servername` (verified on Node 20.20 and
  // 24.21: `host: 'localhost'` alone sends none), but http2.connect/https derive one from the URL.
  it('control: the parser sees SNI when a servername is given', async () => {
    const capture = await captureServer();
    const socket = tls.connect({ host: '127.0.0.1', port: capture.port, servername: 'reviews.default.svc' });
    socket.on('error', () => {});
    closers.push(() => socket.destroy());
    const hello = parseClientHello(await capture.hello);
    expect(hello.extensions.get(EXT_SERVER_NAME)?.toString('latin1')).toContain('reviews.default.svc');
  });

  it('sends no SNI, ALPN h2 only, TLS 1.3 only, AES-GCM only', async () => {
    const ca = await createTestCa();
    const capture = await captureServer();
    const pool = new HbonePool({ certificates: { secureContext: (id) => ca.context(id) }, logger: silentLogger });
    closers.push(() => pool.close());
    pool
      .connect({
        sourceIdentity: workload('frontend', 'client'),
        expectedIdentities: ['spiffe://cluster.local/ns/backend/sa/server'],
        // A host name as next hop: the case in which Node would otherwise derive SNI from `host`.
        nextHop: { host: 'localhost', port: capture.port },
        authority: '10.0.0.1:80',
        headers: {},
      })
      .catch(() => undefined);
    const hello = parseClientHello(await capture.hello);
    expect(hello.extensions.has(EXT_SERVER_NAME)).toBe(false);
    expect(alpnProtocols(hello.extensions.get(EXT_ALPN) as Buffer)).toEqual(['h2']);
    const versions = hello.extensions.get(EXT_SUPPORTED_VERSIONS) as Buffer;
    const offered: number[] = [];
    for (let i = 1; i < versions.length; i += 2) offered.push(versions.readUInt16BE(i));
    expect(offered).toEqual([0x0304]);
    // TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384; 0x00ff is the renegotiation SCSV OpenSSL always adds.
    expect(hello.cipherSuites.filter((s) => s !== 0x00ff).sort()).toEqual([0x1301, 0x1302]);
  });
});
