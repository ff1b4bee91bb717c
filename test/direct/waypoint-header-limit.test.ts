/**
 * The waypoint's request header cap (issue #12 part 4): headers over maxRequestHeaderBytes are
 * answered 431 — not 400 (HTTP/1.1, Node's parser overflow) and not a bare reset (HTTP/2) — counted
 * as a local reply and logged once per interval naming the setting; smaller requests are served as
 * before (here: no state yet, so 503 "no healthy upstream").
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpProxy } from '../../src/l7/http-proxy.js';
import type { UpstreamPools } from '../../src/l7/upstream.js';
import { silentLogger, type Logger } from '../../src/telemetry/logger.js';
import { listen } from '../helpers/hbone.js';

const LIMIT = 4096;
const warnings: Array<Record<string, unknown>> = [];
const logger = { ...silentLogger, warn: (fields: Record<string, unknown>) => void warnings.push(fields), child: () => logger } as unknown as Logger;
let proxy: HttpProxy;
const servers: net.Server[] = [];
let h1Port: number;
let h2Port: number;

beforeAll(async () => {
  // No state: every request that gets through is answered 503 by the proxy itself; pools are never used.
  proxy = new HttpProxy({ state: () => undefined, pools: {} as UpstreamPools, logger, accessLog: silentLogger, maxRequestHeaderBytes: LIMIT });
  const conn = { host: '10.96.0.10', port: 80, peerIdentity: 'spiffe://cluster.local/ns/demo/sa/client', clientAddress: '10.244.0.7' };
  const front1 = net.createServer((s) => proxy.serveHttp1(s, conn));
  const front2 = net.createServer((s) => proxy.serveHttp2(s, conn));
  servers.push(front1, front2);
  [h1Port, h2Port] = await Promise.all([listen(front1), listen(front2)]);
});

afterAll(async () => {
  proxy.close();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

function get1(headerBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: h1Port, path: '/', headers: { host: 'svc.demo', 'x-big': 'a'.repeat(headerBytes) }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

function get2(session: http2.ClientHttp2Session, headerBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': '/', ':authority': 'svc.demo', 'x-big': 'a'.repeat(headerBytes) });
    req.on('response', (h) => {
      req.resume();
      req.on('end', () => resolve(Number(h[':status'])));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('waypoint request header cap', () => {
  it('HTTP/1.1: 431 over the cap, served under it, counted and logged with the setting', async () => {
    expect(await get1(LIMIT + 1000)).toBe(431);
    expect(await get1(1000)).toBe(503);
    expect(proxy.stats().localReplies['431']).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ reason: 'header_size', protocol: 'HTTP/1.1', limit: LIMIT, setting: 'AMESH_MAX_REQUEST_HEADER_BYTES' });
  });

  it('HTTP/2: 431 over the cap, served under it and on the same session afterwards; the warning is rate-limited', async () => {
    const session = http2.connect(`http://127.0.0.1:${h2Port}`);
    session.on('error', () => undefined);
    try {
      expect(await get2(session, LIMIT + 1000)).toBe(431);
      expect(await get2(session, 1000)).toBe(503);
      expect(proxy.stats().localReplies['431']).toBe(2);
      expect(warnings).toHaveLength(1); // within the interval of the HTTP/1.1 one
    } finally {
      session.close();
    }
  });
});
