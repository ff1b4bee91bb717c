/**
 * Regression (src/hbone/server.ts, found by fuzz-hbone-server.test.ts): after an HTTP/2 protocol
 * error (here DATA on stream 0; any connection error nghttp2 answers with GOAWAY does it) Node's
 * server session stops reading — so it never sees the client's FIN — and emits no event; the
 * session and its TLS socket stayed until the PING keepalive gave up (≈30 s). A workload with a
 * valid certificate could hold thousands of server sessions that way. The termination watch
 * (src/hbone/terminated-session.ts) must close such sessions within ~2 check intervals, and must
 * leave healthy idle sessions alone.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatAuthority } from '../../src/hbone/headers.js';
import { TERMINATION_CHECK_INTERVAL_MS } from '../../src/hbone/terminated-session.js';
import { eventually } from '../helpers/eventually.js';
import { dialTls, exchange, frame, FRAME, PREFACE, settingsFrame } from '../helpers/fuzz-h2-frames.js';
import { CLIENT_ID, SERVER_URI, startHbone, type HboneFixture } from '../helpers/hbone.js';

let f: HboneFixture;
beforeAll(async () => {
  f = await startHbone();
});
afterAll(async () => {
  await f.close();
});

async function protocolError(): Promise<TLSSocket> {
  const socket = await dialTls(f.port, await f.ca.context(CLIENT_ID));
  const { read } = await exchange(socket, [PREFACE, settingsFrame(), frame(FRAME.DATA, 0, 0, Buffer.alloc(3))], 300);
  expect(read.includes(Buffer.from('stream_id == 0'))).toBe(true); // the server's GOAWAY debug data
  return socket;
}

async function roundTrip(stream: Duplex, text: string): Promise<string> {
  stream.write(text);
  const [chunk] = (await once(stream, 'data')) as [Buffer];
  return chunk.toString();
}

describe('HBONE server session after a protocol error', () => {
  it('is gone within 2 s of the client closing its connection', async () => {
    const socket = await protocolError();
    socket.destroy();
    await eventually(() => expect(f.server.stats().sessions).toBe(0), { timeoutMs: 2000 });
  });

  it('is gone within 2 s even while the client keeps its connection open', async () => {
    const socket = await protocolError();
    try {
      await eventually(() => expect(f.server.stats().sessions).toBe(0), { timeoutMs: 2000 });
      await eventually(() => expect(socket.destroyed || socket.readableEnded).toBe(true), { timeoutMs: 2000 });
    } finally {
      socket.destroy();
    }
  });

  it('leaves a healthy idle session open and usable', async () => {
    const pool = f.pool({ pingIntervalMs: 100 }); // the pool's PINGs are reads on the server side: probes run
    const authority = formatAuthority('127.0.0.1', f.upstreamPort);
    const opts = { sourceIdentity: CLIENT_ID, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: f.port }, authority, headers: {} };
    const first = await pool.connect(opts);
    expect(await roundTrip(first, 'one')).toBe('one');
    first.end();
    await eventually(() => expect(f.server.stats().streams).toBe(0), { timeoutMs: 2000 });
    await sleep(TERMINATION_CHECK_INTERVAL_MS * 4);
    expect(f.server.stats().sessions).toBe(1);
    const second = await pool.connect(opts);
    expect(await roundTrip(second, 'two')).toBe('two');
    second.end();
    expect(pool.stats().dials).toBe(1);
    pool.close();
  });
  it('probes an idle session once after its last traffic, not at every look', async () => {
    const socket = await dialTls(f.port, await f.ca.context(CLIENT_ID));
    const session = http2.connect(`https://127.0.0.1:${f.port}`, { createConnection: () => socket });
    let pings = 0;
    session.on('ping', () => pings++);
    try {
      const stream = session.request({ ':method': 'CONNECT', ':authority': formatAuthority('127.0.0.1', f.upstreamPort) });
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      expect(headers[':status']).toBe(200);
      expect(await roundTrip(stream, 'idle')).toBe('idle');
      stream.end();
      await eventually(() => expect(f.server.stats().streams).toBe(0), { timeoutMs: 2000 });
      pings = 0;
      await sleep(TERMINATION_CHECK_INTERVAL_MS * 8);
      // One probe for the stream's last frames at most; an answered probe must not cause the next.
      expect(pings, 'server PINGs on an idle session over 8 looks').toBeLessThanOrEqual(1);
      expect(f.server.stats().sessions).toBe(1);
    } finally {
      session.destroy();
    }
  });
});
