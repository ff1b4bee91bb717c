/**
 * relay() between two real loopback TCP connections:
 *   client ⇄ [a  relay  b] ⇄ server
 * Checks byte counts, half-close in both directions, backpressure with large payloads, reset
 * propagation, and that both sides are released when it is over.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { relay, RELAY_BUFFER_BYTES } from '../../src/net/relay.js';

interface Pair {
  /** The far end the test drives. */
  outer: net.Socket;
  /** The end handed to relay(). */
  inner: net.Socket;
}

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A connected TCP pair on loopback, both ends half-open capable. */
async function tcpPair(): Promise<Pair> {
  const server = net.createServer({ allowHalfOpen: true });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const outer = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [[inner]] = await Promise.all([accepted, once(outer, 'connect')]);
  sockets.push(outer, inner);
  outer.on('error', () => {});
  return { outer, inner };
}

/** Everything `s` delivers until its peer's FIN, without closing our own write side. */
function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/** Resolves on 'close' whatever came before (events.once would reject on 'error'). */
function closed(s: net.Socket): Promise<void> {
  return s.destroyed && s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

/** The error the socket emits, if any, by the time it closes. */
function errorBeforeClose(s: net.Socket): Promise<(Error & { code?: string }) | undefined> {
  return new Promise((resolve) => {
    let error: (Error & { code?: string }) | undefined;
    s.once('error', (e: Error) => (error = e));
    s.once('close', () => resolve(error));
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('relay', () => {
  it('propagates half-close: the server answers after the client finished, then both close', async () => {
    const client = await tcpPair();
    const server = await tcpPair();
    const result = relay(client.inner, server.inner);

    client.outer.end('question');
    const asked = await readAll(server.outer); // ends only when the client's FIN was relayed
    expect(asked.toString()).toBe('question');
    const answered = readAll(client.outer);
    server.outer.end('answer, after your FIN');
    expect((await answered).toString()).toBe('answer, after your FIN');

    const r = await result;
    expect(r).toEqual({ aToB: 8, bToA: 22 });
    expect(client.inner.destroyed).toBe(true);
    expect(server.inner.destroyed).toBe(true);
  });

  it('keeps the other direction open after one side half-closed', async () => {
    const client = await tcpPair();
    const server = await tcpPair();
    const result = relay(client.inner, server.inner);
    server.outer.end('banner');
    expect((await readAll(client.outer)).toString()).toBe('banner');
    // The client can still talk after the server's FIN.
    client.outer.write('late');
    const [chunk] = (await once(server.outer, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('late');
    client.outer.end();
    await once(server.outer, 'end');
    expect(await result).toEqual({ aToB: 4, bToA: 6 });
  });

  it('moves 8 MiB each way intact under backpressure', async () => {
    const client = await tcpPair();
    const server = await tcpPair();
    const result = relay(client.inner, server.inner);
    const up = randomBytes(8 * 1024 * 1024);
    const down = randomBytes(8 * 1024 * 1024);
    const gotUp = readAll(server.outer);
    const gotDown = readAll(client.outer);
    client.outer.end(up);
    server.outer.end(down);
    expect(sha(await gotUp)).toBe(sha(up));
    expect(sha(await gotDown)).toBe(sha(down));
    expect(await result).toEqual({ aToB: up.length, bToA: down.length });
  });

  it('writes the chunks a source delivers in one event-loop turn to a TCP socket with one writev', async () => {
    const server = await tcpPair();
    // Pushes go out as 'data' events synchronously, like an HTTP/2 stream's chunks.
    const source = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
    const writevs: number[] = [];
    const inner = server.inner as net.Socket & { _writev: (chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void) => void };
    const original = inner._writev.bind(inner);
    inner._writev = (chunks, cb) => {
      writevs.push(chunks.length);
      original(chunks, cb);
    };
    const result = relay(source, server.inner);
    const got = readAll(server.outer);
    // Four 16 KiB chunks in one turn, as an HTTP/2 stream delivers one read of its TLS socket.
    const chunks = [0, 1, 2, 3].map(() => randomBytes(16 * 1024));
    for (const c of chunks) source.push(c);
    source.push(null);
    expect(sha(await got)).toBe(sha(Buffer.concat(chunks)));
    // The first chunk left at once (no added latency), the other three together.
    expect(writevs).toEqual([3]);
    server.outer.end();
    expect((await result).aToB).toBe(4 * 16 * 1024);
  });

  it('keeps back-pressure while batching: a peer that does not read stops the source', async () => {
    const server = await tcpPair();
    const source = new PassThrough({ highWaterMark: 64 * 1024 });
    const result = relay(source, server.inner);
    server.outer.pause();
    // Offer 64 MiB in 64 KiB chunks, several per turn, honouring the source's own back-pressure.
    const chunk = randomBytes(64 * 1024);
    let offered = 0;
    for (let turn = 0; turn < 400 && offered < 64 * 1024 * 1024; turn++) {
      for (let i = 0; i < 4 && !source.writableNeedDrain; i++) {
        source.write(chunk);
        offered += chunk.length;
      }
      await new Promise((r) => setImmediate(r));
    }
    // The kernel buffers a few MiB; the relay holds at most about one high-water mark more.
    expect(offered).toBeLessThan(32 * 1024 * 1024);
    expect(server.inner.writableLength).toBeLessThanOrEqual(RELAY_BUFFER_BYTES + chunk.length);
    source.destroy();
    await result;
  });

  it('turns a reset on one side into a reset on the other and reports the error', async () => {
    const client = await tcpPair();
    const server = await tcpPair();
    const result = relay(client.inner, server.inner);
    client.outer.write('hello');
    await once(server.outer, 'data');
    const clientError = errorBeforeClose(client.outer);
    server.outer.resetAndDestroy();
    const r = await result;
    expect(r.error).toBeInstanceOf(Error);
    expect(r.aToB).toBe(5);
    expect((await clientError)?.code).toBe('ECONNRESET');
    expect(client.inner.destroyed && server.inner.destroyed).toBe(true);
  });

  it('tears both sides down when one is destroyed locally', async () => {
    const client = await tcpPair();
    const server = await tcpPair();
    const result = relay(client.inner, server.inner);
    const serverClosed = closed(server.outer);
    client.inner.destroy(new Error('shutting down'));
    const r = await result;
    expect(r.error?.message).toBe('shutting down');
    await serverClosed;
    expect(server.inner.destroyed).toBe(true);
  });

  it('leaves no relay listeners behind on the streams', async () => {
    const client = await tcpPair();
    const server = await tcpPair();
    // 'error' is not counted: a no-op safety net on a destroyed stream is harmless.
    const events = ['data', 'end', 'finish', 'close', 'drain', 'unpipe', 'readable'] as const;
    const count = (): Record<string, number> => Object.fromEntries(events.map((e) => [e, client.inner.listenerCount(e) + server.inner.listenerCount(e)]));
    const before = count();
    const result = relay(client.inner, server.inner);
    const allClosed = Promise.all([closed(client.inner), closed(server.inner)]);
    client.outer.end('x');
    server.outer.end('y');
    client.outer.resume();
    server.outer.resume();
    await result;
    await allClosed;
    expect(count()).toEqual(before);
    expect(client.inner.listenerCount('error')).toBeLessThanOrEqual(1);
  });
});
