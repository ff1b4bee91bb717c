// The lean HTTP/1.1 client (src/l7/http1-client/, pipeline/http1-lean-try.ts) against a real
// loopback http.Server (port 0), through UpstreamPools as the waypoint uses it:
//   - the response head, headers (joined as IncomingMessage joins them) and body of
//     content-length, chunked, close-delimited, HEAD and 204 responses; 1xx skipped;
//   - keep-alive reuse (LIFO), maxRequestsPerConnection, idle timeout, retain();
//   - the keep-alive race: a reused connection the server closed is replaced within the try;
//   - an upstream cut mid-body: `aborted` on the response and the late error;
//   - back-pressure: a paused consumer pauses the connection, resuming reads the rest;
//   - request heads as Node writes them (bodilessRequestHead), and the cases left to Node;
//   - relayBody of a response that arrived whole: written and ended at once, else streamed.
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/l7/config.js';
import { headersObject } from '../../src/l7/incoming-headers.js';
import { bodilessRequestHead } from '../../src/l7/http1-client/request-head.js';
import { Http1LeanTry, type LeanResponse } from '../../src/l7/pipeline/http1-lean-try.js';
import { relayBody } from '../../src/l7/pipeline/relay-body.js';
import { UpstreamPools, type PoolSettings, type UpstreamDialer } from '../../src/l7/upstream.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';

const tcpDialer: UpstreamDialer = {
  connect: (e) =>
    new Promise<Duplex>((resolve, reject) => {
      const s = net.connect({ host: e.address, port: e.port });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }),
};

let server: http.Server;
let endpoint: Endpoint;
const sockets = new Set<net.Socket>();
let connections = 0;
const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[] }> = [];
const pools: UpstreamPools[] = [];

function newPools(): UpstreamPools {
  const p = new UpstreamPools({ dialer: tcpDialer, logger: silentLogger });
  pools.push(p);
  return p;
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    const url = req.url ?? '/';
    if (url === '/chunked') {
      res.write('one,');
      setImmediate(() => res.end('two'));
    } else if (url === '/close-delimited') {
      // HTTP/1.0-style: no length, the body ends with the connection.
      res.socket?.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-close');
    } else if (url === '/204') {
      res.writeHead(204).end();
    } else if (url === '/early-hints') {
      res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      res.end('after hints');
    } else if (url === '/headers') {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('x-multi', ['x', 'y']);
      res.end('h');
    } else if (url === '/cut') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setImmediate(() => res.socket?.destroy());
    } else if (url.startsWith('/big')) {
      res.end(Buffer.alloc(4 * 1024 * 1024, 'x'));
    } else if (url === '/close-after') {
      res.setHeader('connection', 'close');
      res.end('bye');
    } else {
      const body = `ok ${req.method} ${url}`;
      res.setHeader('content-type', 'text/plain');
      // Explicit, so that a HEAD answer announces a length it does not send.
      res.setHeader('content-length', Buffer.byteLength(body));
      res.end(req.method === 'HEAD' ? undefined : body);
    }
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  endpoint = { address: '127.0.0.1', port: (server.address() as net.AddressInfo).port, identity: 'spiffe://cluster.local/ns/demo/sa/b', hbone: false };
});

afterEach(() => {
  for (const p of pools.splice(0)) p.close();
  seen.length = 0;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

function start(p: UpstreamPools, path: string, o: { method?: string; headers?: Record<string, string>; settings?: PoolSettings } = {}): Http1LeanTry {
  const method = o.method ?? 'GET';
  const head = bodilessRequestHead(method, path, { host: 'svc.demo:80', ...o.headers });
  if (head === undefined) throw new Error('the head was refused');
  return new Http1LeanTry({ pool: p.http1PoolFor(endpoint, o.settings), method, head });
}

async function bodyOf(res: LeanResponse): Promise<string> {
  let body = '';
  res.setEncoding('latin1');
  res.on('data', (c: string) => (body += c));
  await once(res, 'end');
  return body;
}

async function fetchLean(p: UpstreamPools, path: string, o: Parameters<typeof start>[2] = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const t = start(p, path, o);
  const r = await t.result;
  if (r.kind !== 'response' || !t.response) throw new Error(`no response: ${JSON.stringify(r)}`);
  return { status: r.status, headers: t.response.headers, body: await bodyOf(t.response) };
}

describe('lean HTTP/1.1 client: responses', () => {
  it('content-length, chunked and close-delimited bodies; the request head as Node writes it', async () => {
    const p = newPools();
    expect(await fetchLean(p, '/plain?q=1', { headers: { 'x-a': 'b' } })).toMatchObject({ status: 200, body: 'ok GET /plain?q=1', headers: { 'content-type': 'text/plain' } });
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/plain?q=1', rawHeaders: ['host', 'svc.demo:80', 'x-a', 'b', 'connection', 'keep-alive'] });
    expect(await fetchLean(p, '/chunked')).toMatchObject({ status: 200, body: 'one,two', headers: { 'transfer-encoding': 'chunked' } });
    expect(await fetchLean(p, '/close-delimited')).toMatchObject({ status: 200, body: 'until-close' });
  });

  it('HEAD and 204 have no body; 1xx responses are skipped', async () => {
    const p = newPools();
    const head = await fetchLean(p, '/plain', { method: 'HEAD' });
    expect(head).toMatchObject({ status: 200, body: '' });
    expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
    expect(await fetchLean(p, '/204')).toMatchObject({ status: 204, body: '' });
    expect(await fetchLean(p, '/early-hints')).toMatchObject({ status: 200, body: 'after hints' });
    // All of them on one connection: each response was delimited correctly.
    expect(p.stats()[0]).toMatchObject({ http1Connects: 1, http1Idle: 1, http1Active: 0 });
  });

  it('joins repeated headers as IncomingMessage does (set-cookie stays a list)', async () => {
    const p = newPools();
    expect((await fetchLean(p, '/headers')).headers).toMatchObject({ 'set-cookie': ['a=1', 'b=2'], 'x-multi': 'x, y' });
    expect(headersObject(['Content-Type', 'a', 'content-type', 'b', 'Cookie', 'c=1', 'cookie', 'd=2', 'X', '1', 'x', '2'])).toEqual({ 'content-type': 'a', cookie: 'c=1; d=2', x: '1, 2' });
  });

  it('POST without a body announces content-length: 0 (as Node does); GET does not', () => {
    expect(bodilessRequestHead('POST', '/p', { host: 'h' })).toBe('POST /p HTTP/1.1\r\nhost: h\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n');
    expect(bodilessRequestHead('GET', '/p', { host: 'h', 'x-list': ['1', '2'], n: 5 })).toBe('GET /p HTTP/1.1\r\nhost: h\r\nx-list: 1\r\nx-list: 2\r\nn: 5\r\nconnection: keep-alive\r\n\r\n');
  });

  it('leaves requests Node would refuse to Node (undefined): bad header value, name, path, or a Connection header', () => {
    expect(bodilessRequestHead('GET', '/', { host: 'h', 'x-evil': 'a\r\nx-injected: 1' })).toBeUndefined();
    expect(bodilessRequestHead('GET', '/', { host: 'h', 'bad name': 'v' })).toBeUndefined();
    expect(bodilessRequestHead('GET', '/a b', { host: 'h' })).toBeUndefined();
    expect(bodilessRequestHead('GET', '/', { host: 'h', connection: 'close' })).toBeUndefined();
  });
});

describe('lean HTTP/1.1 client: connections', () => {
  it('reuses one keep-alive connection; a server Connection: close costs the connection', async () => {
    const p = newPools();
    const before = connections;
    for (let i = 0; i < 4; i++) await fetchLean(p, '/plain');
    expect(connections - before).toBe(1);
    await fetchLean(p, '/close-after');
    await eventually(() => expect(p.stats()[0]).toMatchObject({ http1Idle: 0, http1Active: 0 }), { timeoutMs: 3000, intervalMs: 10, description: 'closed after Connection: close' });
    await fetchLean(p, '/plain');
    expect(connections - before).toBe(2);
  });

  it('maxRequestsPerConnection: a connection serves at most N requests', async () => {
    const p = newPools();
    for (let i = 0; i < 5; i++) expect((await fetchLean(p, '/plain', { settings: { maxRequestsPerConnection: 2 } })).status).toBe(200);
    expect(p.stats()[0]).toMatchObject({ http1Connects: 3, http1Retired: 2 });
  });

  it('closes an idle connection after idleTimeoutMs', async () => {
    const p = newPools();
    await fetchLean(p, '/plain', { settings: { idleTimeoutMs: 50 } });
    expect(p.stats()[0]).toMatchObject({ http1Idle: 1 });
    await eventually(() => expect(p.stats()[0]).toMatchObject({ http1Idle: 0, http1Active: 0 }), { timeoutMs: 3000, intervalMs: 10, description: 'idle connection closed' });
  });

  it('retain([]) closes idle connections', async () => {
    const p = newPools();
    await fetchLean(p, '/plain');
    const socketsBefore = sockets.size;
    p.retain([]);
    await eventually(() => expect(sockets.size).toBe(socketsBefore - 1), { timeoutMs: 3000, intervalMs: 10, description: 'server saw the close' });
  });

  it('keep-alive race: a reused connection the server closed is replaced within the try', async () => {
    const p = newPools();
    await fetchLean(p, '/plain');
    // The server closes the idle connection; the client has not noticed yet when it reuses it.
    const pool = p.http1PoolFor(endpoint);
    const idle = pool.takeIdle();
    expect(idle).toBeDefined();
    pool.giveBack(idle!);
    for (const s of sockets) s.destroy();
    const t = start(p, '/plain');
    const r = await t.result;
    expect(r).toMatchObject({ kind: 'response', status: 200 });
    expect(await bodyOf(t.response!)).toBe('ok GET /plain');
  });

  it('a connect failure is a connect failure', async () => {
    const closed = net.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const p = newPools();
    const t = new Http1LeanTry({ pool: p.http1PoolFor({ ...endpoint, port }), method: 'GET', head: bodilessRequestHead('GET', '/', { host: 'h' })! });
    expect(await t.result).toMatchObject({ kind: 'failure', failure: 'connect' });
    expect(p.stats()[0]).toMatchObject({ connectFailures: 1 });
  });
});

describe('lean HTTP/1.1 client: bodies', () => {
  it('an upstream cut mid-body emits aborted on the response and reports the late error', async () => {
    const p = newPools();
    const t = start(p, '/cut');
    expect(await t.result).toMatchObject({ kind: 'response', status: 200 });
    const res = t.response!;
    res.on('error', () => undefined);
    res.resume();
    const late = new Promise<Error>((resolve) => t.onLateError(resolve));
    await once(res, 'aborted');
    expect((await late).message).toMatch(/closed|reset|ECONNRESET/);
  });

  it('a cut body of a response nobody listens to for errors (dropped by a retry) does not throw', async () => {
    const p = newPools();
    const t = start(p, '/cut');
    expect(await t.result).toMatchObject({ kind: 'response', status: 200 });
    const res = t.response!;
    res.resume();
    // Plain listeners: events.once() would listen for 'error' itself.
    const closed = new Promise((resolve) => res.once('close', resolve));
    await new Promise((resolve) => res.once('aborted', resolve));
    await closed;
    expect(res.destroyed).toBe(true);
  });

  it('back-pressure: a paused consumer pauses the connection; resuming reads the whole body', async () => {
    const p = newPools();
    const t = start(p, '/big');
    expect(await t.result).toMatchObject({ kind: 'response', status: 200 });
    const res = t.response!;
    // Nothing reads for a while: the response buffers up to its high-water mark, then the connection pauses.
    await new Promise((r) => setTimeout(r, 100));
    expect(res.readableLength).toBeLessThan(4 * 1024 * 1024);
    expect(p.stats()[0]).toMatchObject({ http1Active: 1 });
    let bytes = 0;
    res.on('data', (c: Buffer) => (bytes += c.length));
    await once(res, 'end');
    expect(bytes).toBe(4 * 1024 * 1024);
    await eventually(() => expect(p.stats()[0]).toMatchObject({ http1Idle: 1, http1Active: 0 }), { timeoutMs: 3000, intervalMs: 10, description: 'connection back in the pool' });
  });

  it('abort() before the response resets the connection and settles the try as a reset', async () => {
    const p = newPools();
    const t = start(p, '/big-abort');
    t.abort();
    expect(await t.result).toMatchObject({ kind: 'failure', failure: 'reset' });
  });

  it('discard() of a large response in flight costs the connection; of a small one keeps it', async () => {
    const p = newPools();
    const small = start(p, '/plain');
    await small.result;
    small.discard();
    await eventually(() => expect(p.stats()[0]).toMatchObject({ http1Idle: 1 }), { timeoutMs: 3000, intervalMs: 10, description: 'small response discarded, connection kept' });
    const big = start(p, '/big');
    await big.result;
    big.discard();
    await eventually(() => expect(p.stats()[0]).toMatchObject({ http1Active: 0 }), { timeoutMs: 3000, intervalMs: 10, description: 'big response discarded' });
    expect(big.response!.destroyed).toBe(true);
  });
});

describe('lean HTTP/1.1 client: relaying the body downstream (relayBody)', () => {
  /** The try's response once all of it was parsed (nothing consumed it yet). */
  async function completeResponse(p: UpstreamPools, path: string, method = 'GET'): Promise<LeanResponse> {
    const t = start(p, path, { method });
    const r = await t.result;
    if (r.kind !== 'response' || !t.response) throw new Error(`no response: ${JSON.stringify(r)}`);
    const res = t.response;
    await eventually(() => expect(res.complete).toBe(true), { timeoutMs: 3000, intervalMs: 5, description: `${path}: the whole response parsed` });
    return res;
  }

  function sink(): { dest: PassThrough; text: () => string } {
    const dest = new PassThrough();
    const chunks: Buffer[] = [];
    dest.on('data', (c: Buffer) => chunks.push(c));
    return { dest, text: () => Buffer.concat(chunks).toString('latin1') };
  }

  it('a body that arrived in one chunk is written and the destination ended before relayBody returns', async () => {
    const p = newPools();
    const res = await completeResponse(p, '/plain');
    const { dest, text } = sink();
    const counted = relayBody(res, dest);
    expect(dest.writableEnded).toBe(true);
    expect(counted.bytes).toBe(Buffer.byteLength('ok GET /plain'));
    await once(dest, 'end');
    expect(text()).toBe('ok GET /plain');
  });

  it('no body (HEAD): the destination is ended at once with nothing written', async () => {
    const p = newPools();
    const res = await completeResponse(p, '/plain', 'HEAD');
    const { dest, text } = sink();
    const counted = relayBody(res, dest);
    expect(dest.writableEnded).toBe(true);
    expect(counted.bytes).toBe(0);
    await once(dest, 'end');
    expect(text()).toBe('');
  });

  it('a body of several chunks is streamed (same bytes, same count)', async () => {
    const p = newPools();
    const res = await completeResponse(p, '/chunked');
    const { dest, text } = sink();
    const counted = relayBody(res, dest);
    expect(dest.writableEnded).toBe(false);
    await once(dest, 'end');
    expect(text()).toBe('one,two');
    expect(counted.bytes).toBe(7);
  });

  it('a destroyed destination takes nothing', async () => {
    const p = newPools();
    const res = await completeResponse(p, '/plain');
    const { dest } = sink();
    dest.destroy();
    expect(relayBody(res, dest).bytes).toBe(0);
  });
});
