/**
 * Early data through a real HbonePool (TLS 1.3 + HTTP/2 on loopback) against a bare HTTP/2
 * server that decides per stream: the client's first bytes arrive before the 200, a refused
 * CONNECT never passes them on, and a CONNECT the server refused unprocessed (REFUSED_STREAM)
 * is retried on a fresh connection with every early byte replayed exactly once; so is one
 * refused with ENHANCE_YOUR_CALM (a session at its caps), whose connection leaves the pool.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HboneRefusedError } from '../../src/hbone/client.js';
import { EarlyData } from '../../src/hbone/early-data.js';
import { HbonePool, type HboneConnectOptions } from '../../src/hbone/pool.js';
import { relay } from '../../src/net/relay.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { CLIENT_ID, SERVER_ID, SERVER_URI, listen } from '../helpers/hbone.js';
import { cachedContexts, createTestCa, type TestCa } from '../helpers/pki.js';

let ca: TestCa;
beforeAll(async () => {
  ca = await createTestCa();
});

type StreamHandler = (stream: http2.ServerHttp2Stream, connection: number) => void;

interface RawServer {
  port: number;
  /** TLS connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

/** mTLS + HTTP/2 with nothing of HboneServer's: `onStream` answers each CONNECT as the test wants. */
async function rawHboneServer(onStream: StreamHandler): Promise<RawServer> {
  const issued = await ca.issue(SERVER_ID);
  const server = http2.createSecureServer({
    key: issued.keyPem,
    cert: issued.chainPem.join(''),
    ca: issued.rootsPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  const raw = { connections: 0 } as RawServer;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    const connection = ++raw.connections;
    sessions.add(session);
    session.on('error', () => {});
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      stream.on('error', () => {});
      onStream(stream, connection);
    });
  });
  raw.port = await listen(server);
  raw.close = async () => {
    for (const s of sessions) s.destroy();
    server.close();
    await once(server, 'close');
  };
  return raw;
}

/** Everything a stream delivers until its end. */
async function readAll(stream: Duplex): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

/** Collects the first `n` bytes a stream delivers. */
function readBytes(stream: Duplex, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        stream.off('data', onData);
        stream.pause();
        resolve(Buffer.concat(chunks).toString());
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(onStream: StreamHandler): Promise<{ server: RawServer; pool: HbonePool; request: (early: EarlyData) => HboneConnectOptions }> {
  const server = await rawHboneServer(onStream);
  cleanups.push(() => server.close());
  const pool = new HbonePool({
    certificates: cachedContexts(ca),
    logger: silentLogger,
  });
  cleanups.push(() => pool.close());
  const request = (early: EarlyData): HboneConnectOptions => ({
    sourceIdentity: CLIENT_ID,
    expectedIdentities: [SERVER_URI],
    nextHop: { host: '127.0.0.1', port: server.port },
    authority: '10.0.0.9:8080',
    headers: {},
    early,
  });
  return { server, pool, request };
}

describe('HBONE early data', () => {
  it('sends the client bytes before the 200: a destination that answers only after the first DATA gets them', async () => {
    let seenBeforeAnswer = '';
    const { pool, request } = await setup((stream) => {
      void readBytes(stream, 5).then((text) => {
        seenBeforeAnswer = text;
        stream.respond({ ':status': 200 });
        stream.end('world');
      });
    });
    const client = new PassThrough();
    client.write('hello');
    const early = new EarlyData(client, 65_536);
    const tunnel = await pool.connect(request(early));
    expect(seenBeforeAnswer).toBe('hello');
    expect(early.bytes).toBe(5);
    expect(client.listenerCount('data')).toBe(0);
    expect(await readBytes(tunnel, 5)).toBe('world');
    tunnel.destroy();
  });

  it('a refused CONNECT passes nothing on: the 401 rejects and the early bytes stay with the client side', async () => {
    let delivered = 0;
    const { pool, request } = await setup((stream) => {
      void readBytes(stream, 5).then(() => stream.respond({ ':status': 401 }, { endStream: true }));
      stream.on('data', (c: Buffer) => (delivered += c.length));
    });
    const client = new PassThrough();
    client.write('hello');
    const early = new EarlyData(client, 65_536);
    await expect(pool.connect(request(early))).rejects.toBeInstanceOf(HboneRefusedError);
    expect(client.isPaused()).toBe(true);
    expect(client.listenerCount('data')).toBe(0);
    expect(delivered).toBeLessThanOrEqual(5);
  });

  it('replays every early byte exactly once when the CONNECT is retried on a fresh connection (REFUSED_STREAM)', async () => {
    let received: Promise<string> | undefined;
    const { server, pool, request } = await setup((stream, connection) => {
      if (connection === 1) {
        // Read the early bytes, then refuse the stream unprocessed, as a draining agent does.
        void readBytes(stream, 3).then(() => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
        return;
      }
      stream.respond({ ':status': 200 });
      received = readAll(stream).then((text) => {
        stream.end('ok');
        return text;
      });
    });
    // The captured client: what the app sends, and what it gets back.
    const sent = new PassThrough();
    const back = new PassThrough();
    const client = Duplex.from({ readable: sent, writable: back });
    sent.write('abc');
    const early = new EarlyData(client, 65_536);
    const tunnel = await pool.connect(request(early));
    expect(server.connections).toBe(2);
    const done = relay(client, tunnel);
    sent.end('def');
    expect(await received).toBe('abcdef');
    const result = await done;
    expect(early.bytes + result.aToB).toBe(6);
    expect(await readAll(back)).toBe('ok');
  });

  it('retries a CONNECT refused with ENHANCE_YOUR_CALM (a session at its memory or stream cap) on a fresh connection, and retires the refusing one', async () => {
    const { server, pool, request } = await setup((stream, connection) => {
      // Connection 1 refuses every stream before answering, as Node's server does once the
      // session is over maxSessionMemory; later connections answer.
      if (connection === 1) {
        stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
        return;
      }
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    const open = async (): Promise<string> => {
      const client = new PassThrough();
      client.write('x');
      return readAll(await pool.connect(request(new EarlyData(client, 65_536))));
    };
    expect(await open()).toBe('ok');
    expect(server.connections).toBe(2);
    // The refusing connection is out of the pool: the next CONNECT goes to the fresh one.
    expect(await open()).toBe('ok');
    expect(server.connections).toBe(2);
  });
});
