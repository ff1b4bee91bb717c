// Upstream pools shaped by a cluster's connectionPool, against real loopback servers (port 0):
//   - maxRequestsPerConnection closes an HTTP/1.1 connection after N requests and retires an
//     HTTP/2 session after N streams (its streams finish);
//   - idleTimeoutMs closes an idle keep-alive connection;
//   - connectTimeoutMs fails a dial that does not complete (a connect failure the proxy
//     recognises), and a connection that arrives later is closed;
//   - pools are per endpoint and settings; retain(PoolTarget) retires exactly the others.
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import type { Endpoint } from '../../src/l7/config.js';
import { isConnectFailure, UpstreamPools, type UpstreamDialer } from '../../src/l7/upstream.js';
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

const endpointAt = (port: number): Endpoint => ({ address: '127.0.0.1', port, identity: 'spiffe://cluster.local/ns/demo/sa/b', hbone: false });

let h1: http.Server;
let h1Port: number;
const h1Sockets = new Set<net.Socket>();
let h1Connections = 0;
let h2: http2.Http2Server;
let h2Port: number;
let h2Sessions = 0;
const h2Open = new Set<http2.ServerHttp2Session>();
const pools: UpstreamPools[] = [];

function newPools(dialer: UpstreamDialer = tcpDialer): UpstreamPools {
  const p = new UpstreamPools({ dialer, logger: silentLogger });
  pools.push(p);
  return p;
}

beforeAll(async () => {
  h1 = http.createServer((_req, res) => res.end('ok'));
  h1.keepAliveTimeout = 60_000;
  h1.on('connection', (s: net.Socket) => {
    h1Connections++;
    h1Sockets.add(s);
    s.once('close', () => h1Sockets.delete(s));
  });
  h1.listen(0, '127.0.0.1');
  await once(h1, 'listening');
  h1Port = (h1.address() as net.AddressInfo).port;

  h2 = http2.createServer();
  h2.on('session', (s) => {
    h2Sessions++;
    h2Open.add(s);
    s.once('close', () => h2Open.delete(s));
  });
  h2.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  h2Port = (h2.address() as net.AddressInfo).port;
});

afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

afterAll(async () => {
  for (const s of h1Sockets) s.destroy();
  for (const s of h2Open) s.destroy();
  await Promise.all([new Promise((r) => h1.close(r)), new Promise((r) => h2.close(r))]);
});

function get(agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: h1Port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

async function h2Get(p: UpstreamPools, e: Endpoint, settings?: { maxRequestsPerConnection?: number }): Promise<string> {
  const session = await p.h2SessionFor(e, settings);
  const stream = session.request({ ':path': '/' });
  stream.setEncoding('utf8');
  let body = '';
  stream.on('data', (c: string) => (body += c));
  await once(stream, 'end');
  return body;
}

describe('maxRequestsPerConnection', () => {
  it('HTTP/1.1: a connection serves at most N requests', async () => {
    const p = newPools();
    const e = endpointAt(h1Port);
    const before = h1Connections;
    for (let i = 0; i < 5; i++) expect(await get(p.agentFor(e, { maxRequestsPerConnection: 2 }))).toBe('ok');
    expect(h1Connections - before).toBe(3);
    expect(p.stats()[0]).toMatchObject({ http1Connects: 3, http1Retired: 2, settings: { maxRequestsPerConnection: 2 } });
  });

  it('HTTP/1.1 without it: one keep-alive connection', async () => {
    const p = newPools();
    const before = h1Connections;
    for (let i = 0; i < 5; i++) await get(p.agentFor(endpointAt(h1Port)));
    expect(h1Connections - before).toBe(1);
  });

  it('HTTP/2: a session carries at most N streams, handed-out streams finish', async () => {
    const p = newPools();
    const e = endpointAt(h2Port);
    const before = h2Sessions;
    for (let i = 0; i < 5; i++) expect(await h2Get(p, e, { maxRequestsPerConnection: 2 })).toBe('ok');
    expect(h2Sessions - before).toBe(3);
    // Two sessions handed out concurrently before their streams open: both streams complete.
    const both = await Promise.all([h2Get(p, e, { maxRequestsPerConnection: 2 }), h2Get(p, e, { maxRequestsPerConnection: 2 })]);
    expect(both).toEqual(['ok', 'ok']);
    expect(p.stats()[0]!.http2Retired).toBeGreaterThanOrEqual(3);
    // Retired sessions close once their streams are done.
    await eventually(() => expect(h2Open.size).toBeLessThanOrEqual(1), { timeoutMs: 3000, intervalMs: 10, description: 'retired h2 sessions closed' });
  });
});

describe('idleTimeoutMs', () => {
  it('closes an idle keep-alive connection', async () => {
    const p = newPools();
    const e = endpointAt(h1Port);
    await get(p.agentFor(e, { idleTimeoutMs: 50 }));
    await eventually(() => expect(p.stats()[0]).toMatchObject({ http1Idle: 0, http1Active: 0 }), { timeoutMs: 3000, intervalMs: 10, description: 'idle connection closed' });
  });

  it('a longer default keeps it open meanwhile', async () => {
    const p = newPools();
    await get(p.agentFor(endpointAt(h1Port)));
    expect(p.stats()[0]).toMatchObject({ http1Idle: 1 });
  });
});

describe('connectTimeoutMs', () => {
  /** A dialer whose dials complete only when the test says so. */
  function stalledDialer(): { dialer: UpstreamDialer; complete: () => Promise<net.Socket> } {
    let resolveDial: ((s: Duplex) => void) | undefined;
    return {
      dialer: { connect: () => new Promise<Duplex>((resolve) => (resolveDial = resolve)) },
      complete: async () => {
        const s = net.connect({ host: '127.0.0.1', port: h1Port });
        await once(s, 'connect');
        resolveDial?.(s);
        return s;
      },
    };
  }

  it('HTTP/1.1: the request fails as a connect failure; a late connection is closed', async () => {
    const { dialer, complete } = stalledDialer();
    const p = newPools(dialer);
    const err = await get(p.agentFor(endpointAt(h1Port), { connectTimeoutMs: 30 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isConnectFailure(err)).toBe(true);
    expect(isAmeshError(err, 'AMESH_UPSTREAM_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/timed out connecting to 127\.0\.0\.1:\d+ after 30 ms/);
    const late = await complete();
    await eventually(() => expect(late.destroyed).toBe(true), { timeoutMs: 3000, intervalMs: 10, description: 'late connection closed' });
    expect(p.stats()[0]).toMatchObject({ connectFailures: 1 });
  });

  it('HTTP/2: the session dial fails as a connect failure', async () => {
    const { dialer } = stalledDialer();
    const p = newPools(dialer);
    const err = await p.h2SessionFor(endpointAt(h2Port), { connectTimeoutMs: 30 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isConnectFailure(err)).toBe(true);
  });

  it('a dial within the timeout is used', async () => {
    const p = newPools();
    expect(await get(p.agentFor(endpointAt(h1Port), { connectTimeoutMs: 2000 }))).toBe('ok');
  });
});

describe('pools per endpoint and settings', () => {
  it('different settings get different pools; retain(PoolTarget) keeps exactly the named one', async () => {
    const p = newPools();
    const e = endpointAt(h1Port);
    const shaped = p.agentFor(e, { maxRequestsPerConnection: 2 });
    expect(p.agentFor(e, { maxRequestsPerConnection: 2, maxConnections: 9 } as { maxRequestsPerConnection: number })).toBe(shaped);
    const plain = p.agentFor(e);
    expect(plain).not.toBe(shaped);
    await get(plain);
    p.retain([{ endpoint: e, settings: { maxRequestsPerConnection: 2 } }]);
    expect(p.stats()).toHaveLength(1);
    expect(p.stats()[0]!.settings).toEqual({ maxRequestsPerConnection: 2 });
    // An Endpoint keeps every pool of it.
    p.agentFor(e);
    p.retain([e]);
    expect(p.stats()).toHaveLength(2);
  });
});
