/** The waypoint's JWKS fetcher against a loopback server: body, status, size cap, deadline. */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchJwks } from '../../src/l7/authz/jwks-fetch.js';

const JWKS = '{"keys":[]}';
let server: http.Server;
let base: string;
const hung = new Set<http.ServerResponse>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/jwks') return void res.end(JWKS);
    if (req.url === '/missing') return void res.writeHead(404).end('no');
    if (req.url === '/redirect') return void res.writeHead(302, { location: '/jwks' }).end();
    if (req.url === '/huge') {
      res.writeHead(200);
      res.write(Buffer.alloc(4096, 'a'));
      res.end(Buffer.alloc(4096, 'a'));
      return;
    }
    if (req.url === '/hang') {
      hung.add(res);
      res.writeHead(200);
      res.write('{');
      return;
    }
    res.writeHead(500).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of hung) res.destroy();
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
});

describe('fetchJwks', () => {
  const opts = { timeoutMs: 2000, maxBytes: 1024 };
  it('returns the body of a 2xx answer', async () => {
    expect(await fetchJwks(`${base}/jwks`, opts)).toBe(JWKS);
  });
  it.each([
    ['/missing', 'HTTP 404'],
    ['/redirect', 'HTTP 302'],
    ['/huge', 'exceeds 1024 bytes'],
  ])('refuses %s', async (path, message) => {
    await expect(fetchJwks(`${base}${path}`, opts)).rejects.toThrow(message);
  });
  it('gives up at the deadline', async () => {
    await expect(fetchJwks(`${base}/hang`, { timeoutMs: 150, maxBytes: 1024 })).rejects.toThrow('timed out after 150 ms');
  });
  it('refuses other schemes and non-URLs', async () => {
    await expect(fetchJwks('file:///etc/passwd', opts)).rejects.toThrow('unsupported scheme file:');
    await expect(fetchJwks('not a url', opts)).rejects.toThrow('not a URL');
  });
});
