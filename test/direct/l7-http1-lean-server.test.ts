// The waypoint's lean HTTP/1.1 server (src/l7/http1-server/), in-process:
//   - its response heads are byte-for-byte Node's http.Server's (a real server on 127.0.0.1,
//     port 0, answers the same table; only the Date value differs), and it refuses what Node
//     refuses;
//   - over an in-memory pair: keep-alive, pipelined requests answered in order, HEAD / 204
//     without bodies, chunked framing, Connection: close and half-close end the stream, a client
//     gone mid-response closes the response without 'finish', a drain ends idle connections;
//   - everything it does not serve (a body, HTTP/1.0, a head split across chunks, bytes llhttp
//     refuses) reaches Node's http.Server with every byte of the request, pipelined ones too.
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { duplexPair, type PairEnd } from '../../src/l7/duplex-pair.js';
import { Http1ServerConnection, type LeanRequest } from '../../src/l7/http1-server/connection.js';
import { responseHead } from '../../src/l7/http1-server/response-head.js';
import type { LeanServerResponse } from '../../src/l7/http1-server/response.js';
import { eventually as eventuallyWithin } from '../helpers/eventually.js';

const DATE = 'Sat, 05 Dec 2026 12:00:00 GMT';

/** Everything here is in-memory: a second is long. */
const eventually = <T>(probe: () => T | Promise<T>): Promise<T> => eventuallyWithin(probe, { timeoutMs: 2000, intervalMs: 5 });

interface HeadCase {
  name: string;
  request: string;
  status: number;
  headers: http.OutgoingHttpHeaders;
  body?: string[];
}

const CASES: HeadCase[] = [
  { name: 'length', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 200, headers: { 'content-type': 'text/plain', 'content-length': 5, 'x-a': ['1', '2'] }, body: ['hello'] },
  { name: 'chunked by default', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 201, headers: { 'content-type': 'text/plain' }, body: ['ab', 'cd'] },
  { name: 'HEAD, no length', request: 'HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 200, headers: { 'content-type': 'text/plain' }, body: ['ignored'] },
  { name: 'HEAD, length', request: 'HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 200, headers: { 'content-length': 5 } },
  { name: '204', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 204, headers: { 'x-b': '1' } },
  { name: '304', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 304, headers: { etag: '"x"' } },
  { name: 'unknown status, no headers, empty body', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 599, headers: {} },
  { name: 'request says close', request: 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', status: 200, headers: { 'content-length': 2 }, body: ['ok'] },
  { name: 'response says close', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 500, headers: { 'content-type': 'text/plain', connection: 'close' }, body: ['internal'] },
  { name: 'own date and keep-alive', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 200, headers: { date: 'Thu, 01 Jan 1970 00:00:00 GMT', 'keep-alive': 'timeout=3', 'content-length': 0 } },
  { name: 'transfer-encoding given', request: 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n', status: 200, headers: { 'transfer-encoding': 'chunked', trailer: 'x-t' }, body: ['abc'] },
];

function normalizeDate(text: string): string {
  return text.replace(/\r\nDate: [^\r]+\r\n/, `\r\nDate: ${DATE}\r\n`);
}

/** What Node's http.Server writes for `c` on a fresh connection (until it ends or 300 ms pass). */
async function nodeAnswer(c: HeadCase): Promise<string> {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
    res.writeHead(c.status, c.headers);
    for (const chunk of (c.body ?? []).slice(0, -1)) res.write(chunk);
    res.end(c.body?.at(-1));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  let out = '';
  socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
  socket.write(c.request);
  await Promise.race([once(socket, 'end'), new Promise((r) => setTimeout(r, 300))]);
  socket.destroy();
  server.closeAllConnections();
  server.close();
  return normalizeDate(out);
}

/** The same through the lean server over an in-memory pair. */
async function leanAnswer(c: HeadCase): Promise<string> {
  const [client, server] = duplexPair();
  new Http1ServerConnection(
    server,
    {
      request: (_req, res) => {
        res.writeHead(c.status, c.headers);
        for (const chunk of (c.body ?? []).slice(0, -1)) res.write(chunk);
        res.end(c.body?.at(-1));
      },
      fallback: () => {
        throw new Error('handed over');
      },
    },
    { maxHeaderBytes: 16 * 1024, keepAliveTimeoutSeconds: 60 },
  );
  let out = '';
  client.on('data', (d: Buffer) => (out += d.toString('latin1')));
  client.write(c.request);
  await Promise.race([once(client, 'end'), new Promise((r) => setTimeout(r, 300))]);
  client.destroy();
  return normalizeDate(out);
}

describe('lean HTTP/1.1 server: response heads', () => {
  for (const c of CASES) {
    it(`writes what Node's server writes: ${c.name}`, async () => {
      const [node, lean] = await Promise.all([nodeAnswer(c), leanAnswer(c)]);
      expect(node.length).toBeGreaterThan(0);
      expect(lean).toBe(node);
    });
  }

  it("refuses what Node's writeHead refuses", () => {
    const o = { keepAlive: true, headRequest: false, keepAliveTimeoutSeconds: 60, date: DATE };
    const nodeRefuses = (status: number, headers: http.OutgoingHttpHeaders): string => {
      const res = new http.ServerResponse(new http.IncomingMessage(new net.Socket()));
      try {
        res.writeHead(status, headers);
        return 'accepted';
      } catch (err) {
        return (err as { code?: string }).code ?? 'error';
      }
    };
    const leanRefuses = (status: number, headers: http.OutgoingHttpHeaders): string => {
      try {
        responseHead(status, headers, o);
        return 'accepted';
      } catch (err) {
        return (err as { code?: string }).code ?? 'error';
      }
    };
    const table: Array<[number, http.OutgoingHttpHeaders]> = [
      [99, {}],
      [1000, {}],
      [200, { 'bad name': 'x' }],
      [200, { 'x-a': 'line\nbreak' }],
      [200, { 'x-a': undefined }],
      [200, { 'content-length': 3, trailer: 'x-t' }],
      [200, { 'x-ok': 'fine' }],
    ];
    for (const [status, headers] of table) expect(leanRefuses(status, headers), JSON.stringify([status, headers])).toBe(nodeRefuses(status, headers));
  });
});

interface Harness {
  client: PairEnd;
  server: PairEnd;
  connection: Http1ServerConnection;
  requests: Array<{ req: LeanRequest; res: LeanServerResponse }>;
  handedOver: Duplex[];
  received: () => string;
}

/** A lean connection whose requests wait in `requests` (answer them with `answer`). */
function harness(): Harness {
  const [client, server] = duplexPair();
  const requests: Harness['requests'] = [];
  const handedOver: Duplex[] = [];
  const connection = new Http1ServerConnection(server, { request: (req, res) => requests.push({ req, res }), fallback: (s) => handedOver.push(s) }, { maxHeaderBytes: 1024, keepAliveTimeoutSeconds: 60 });
  let out = '';
  client.on('data', (d: Buffer) => (out += d.toString('latin1')));
  return { client, server, connection, requests, handedOver, received: () => out };
}

function answer(res: LeanServerResponse, body: string): void {
  res.writeHead(200, { 'content-length': Buffer.byteLength(body), date: DATE });
  res.end(body);
}

/** Node's server taking over a handed-over stream, answering with the request line and body. */
function nodeTakesOver(stream: Duplex): http.Server {
  const server = http.createServer({ maxHeaderSize: 1024 }, (req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const text = `${req.method} ${req.url} HTTP/${req.httpVersion} body=${body}`;
      res.writeHead(200, { 'content-length': text.length, date: DATE }).end(text);
    });
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => socket.end(`HTTP/1.1 ${err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400} X\r\ncontent-length: 0\r\n\r\n`));
  server.emit('connection', stream);
  stream.resume();
  return server;
}

describe('lean HTTP/1.1 server: connections', () => {
  it('serves keep-alive requests one after another on one connection', async () => {
    const h = harness();
    h.client.write('GET /one HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n');
    await eventually(() => expect(h.requests).toHaveLength(1));
    expect(h.requests[0]!.req).toMatchObject({ method: 'GET', url: '/one', headers: { host: 'a', 'x-dup': '1, 2' } });
    answer(h.requests[0]!.res, 'first');
    await eventually(() => expect(h.received()).toContain('first'));
    expect(h.received()).toContain('Connection: keep-alive\r\nKeep-Alive: timeout=60\r\n');
    h.client.write('GET /two HTTP/1.1\r\nHost: a\r\n\r\n');
    await eventually(() => expect(h.requests).toHaveLength(2));
    answer(h.requests[1]!.res, 'second');
    await eventually(() => expect(h.received()).toContain('second'));
    expect(h.server.destroyed || h.server.writableEnded).toBe(false);
    expect(h.handedOver).toHaveLength(0);
  });

  it('takes a head of more than 32 headers, which llhttp hands over in two parts', async () => {
    const h = harness();
    const extra = Array.from({ length: 40 }, (_, i) => `X-H${i}: v${i}\r\n`).join('');
    h.client.write(`GET /many?q=1 HTTP/1.1\r\nHost: a\r\n${extra}\r\n`);
    await eventually(() => expect(h.requests).toHaveLength(1));
    const req = h.requests[0]!.req;
    expect(req.url).toBe('/many?q=1');
    expect(req.headers.host).toBe('a');
    expect(req.headers['x-h0']).toBe('v0');
    expect(req.headers['x-h39']).toBe('v39');
    expect(Object.keys(req.headers)).toHaveLength(41);
  });

  it('answers pipelined requests in order, one at a time', async () => {
    const h = harness();
    h.client.write('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n');
    await eventually(() => expect(h.requests).toHaveLength(1));
    // The next request waits for this response.
    await new Promise((r) => setImmediate(r));
    expect(h.requests).toHaveLength(1);
    answer(h.requests[0]!.res, 'one');
    await eventually(() => expect(h.requests).toHaveLength(2));
    expect(h.requests[1]!.req.method).toBe('HEAD');
    answer(h.requests[1]!.res, 'two-not-sent');
    await eventually(() => expect(h.requests).toHaveLength(3));
    expect(h.requests[2]!.req.url).toBe('/3');
    answer(h.requests[2]!.res, 'three');
    await eventually(() => expect(h.received()).toContain('three'));
    const text = h.received();
    expect(text.indexOf('one')).toBeLessThan(text.indexOf('three'));
    expect(text).not.toContain('two-not-sent');
    expect(text.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
  });

  it('frames a streamed body in chunks and ends it; 204 carries none', async () => {
    const h = harness();
    h.client.write('GET /s HTTP/1.1\r\nHost: a\r\n\r\n');
    await eventually(() => expect(h.requests).toHaveLength(1));
    const res = h.requests[0]!.res;
    res.writeHead(200, { date: DATE });
    expect(res.write(Buffer.from('abc'))).toBe(true);
    res.end('de');
    await once(res, 'finish');
    expect(res.writableFinished).toBe(true);
    await eventually(() => expect(h.received()).toContain('3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n'));
    h.client.write('GET /n HTTP/1.1\r\nHost: a\r\n\r\n');
    await eventually(() => expect(h.requests).toHaveLength(2));
    h.requests[1]!.res.writeHead(204, { date: DATE }).end('dropped');
    await eventually(() => expect(h.received()).toContain('HTTP/1.1 204 No Content'));
    expect(h.received()).not.toContain('dropped');
  });

  it('ends the stream after a Connection: close exchange, and after a half-closed client is answered', async () => {
    const h = harness();
    h.client.write('GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    await eventually(() => expect(h.requests).toHaveLength(1));
    answer(h.requests[0]!.res, 'bye');
    await once(h.client, 'end');
    expect(h.received()).toContain('Connection: close\r\n');

    const half = harness();
    half.client.end('GET /h HTTP/1.1\r\nHost: a\r\n\r\n');
    await eventually(() => expect(half.requests).toHaveLength(1));
    await new Promise((r) => setImmediate(r));
    answer(half.requests[0]!.res, 'still answered');
    await once(half.client, 'end');
    expect(half.received()).toContain('still answered');
  });

  it('closes a response without finish when the client goes away, and ends idle connections on a drain', async () => {
    const h = harness();
    h.client.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
    await eventually(() => expect(h.requests).toHaveLength(1));
    const res = h.requests[0]!.res;
    let finished = false;
    res.once('finish', () => (finished = true));
    const closed = once(res, 'close');
    h.client.destroy();
    await closed;
    expect(res.destroyed).toBe(true);
    expect(finished).toBe(false);

    const idle = harness();
    idle.client.write('GET /i HTTP/1.1\r\nHost: a\r\n\r\n');
    await eventually(() => expect(idle.requests).toHaveLength(1));
    idle.connection.closeWhenIdle();
    expect(idle.server.writableEnded).toBe(false);
    answer(idle.requests[0]!.res, 'last one');
    await once(idle.client, 'end');
    expect(idle.received()).toContain('last one');
  });

  const handovers: Array<{ name: string; bytes: string[]; expectLean: number; expected: RegExp }> = [
    { name: 'a request with a body', bytes: ['POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello'], expectLean: 0, expected: /POST \/p HTTP\/1\.1 body=hello/ },
    { name: 'a chunked upload after a served request (pipelined)', bytes: ['GET /g HTTP/1.1\r\nHost: a\r\n\r\nPUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'], expectLean: 1, expected: /PUT \/u HTTP\/1\.1 body=abc/ },
    { name: 'HTTP/1.0', bytes: ['GET /old HTTP/1.0\r\n\r\n'], expectLean: 0, expected: /GET \/old HTTP\/1\.0 body=/ },
    { name: 'a head split across chunks', bytes: ['GET /split HTTP/1.1\r\nHo', 'st: a\r\n\r\n'], expectLean: 0, expected: /GET \/split HTTP\/1\.1 body=/ },
    { name: 'Expect: 100-continue', bytes: ['GET /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n'], expectLean: 0, expected: /GET \/e HTTP\/1\.1 body=/ },
    { name: 'an HTTP/1.1 request without Host (Node answers 400)', bytes: ['GET /nohost HTTP/1.1\r\n\r\n'], expectLean: 0, expected: /^HTTP\/1\.1 400/ },
    { name: 'bytes llhttp refuses (Node answers 400)', bytes: ['GET / HTTP/1.1\r\nBad Header\r\n\r\n'], expectLean: 0, expected: /^HTTP\/1\.1 400/ },
    { name: 'a header section over the limit (Node answers 431)', bytes: [`GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`], expectLean: 0, expected: /^HTTP\/1\.1 431/ },
  ];
  for (const c of handovers) {
    it(`hands ${c.name} to Node's server with every byte of the request`, async () => {
      const h = harness();
      for (const chunk of c.bytes) {
        h.client.write(chunk);
        await new Promise((r) => setImmediate(r));
      }
      if (c.expectLean > 0) {
        await eventually(() => expect(h.requests).toHaveLength(c.expectLean));
        answer(h.requests[0]!.res, 'served lean');
      }
      await eventually(() => expect(h.handedOver).toHaveLength(1));
      expect(h.requests).toHaveLength(c.expectLean);
      const server = nodeTakesOver(h.handedOver[0]!);
      await eventually(() => expect(h.received()).toMatch(c.expected));
      if (c.expectLean > 0) expect(h.received().indexOf('served lean')).toBeLessThan(h.received().search(c.expected));
      h.client.destroy();
      server.close();
    });
  }
});
