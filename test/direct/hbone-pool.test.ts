/**
 * HbonePool against a real HboneServer on loopback: connection reuse, single-flight dials,
 * the 100-streams-per-connection limit, idle close, dead-session removal, drain, and the
 * coded errors (with hints) for dial failures.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAmeshError, type AmeshError } from '../../src/errors/amesh-error.js';
import { HboneRefusedError } from '../../src/hbone/client.js';
import { formatAuthority } from '../../src/hbone/headers.js';
import { HbonePool, type HboneConnectOptions, type HbonePoolOptions } from '../../src/hbone/pool.js';
import { HboneServer, type HboneConnectRequest, type HboneConnectResult } from '../../src/hbone/server.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { CLIENT_ID as CLIENT, SERVER_ID as SERVER, SERVER_URI, listen, ping, trackedEchoServer } from '../helpers/hbone.js';
import { cachedContexts, createTestCa, workload, type TestCa } from '../helpers/pki.js';

const OTHER_CLIENT = workload('frontend', 'other');

let ca: TestCa;
let serverContext: tls.SecureContext;
beforeAll(async () => {
  ca = await createTestCa();
  serverContext = await ca.context(SERVER);
});

interface Bench {
  /** Replaceable: the listener hands every socket to the current server. */
  server: HboneServer;
  hbonePort: number;
  echoPort: number;
  /** TCP connections the HBONE listener accepted (= TLS connections dialled by pools). */
  accepted: number;
  onConnect: (req: HboneConnectRequest) => Promise<HboneConnectResult>;
  newServer(): HboneServer;
  pool(opts?: Partial<HbonePoolOptions>): HbonePool;
  request(overrides?: Partial<HboneConnectOptions>): HboneConnectOptions;
  close(): Promise<void>;
}

let bench: Bench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

async function startBench(): Promise<Bench> {
  const pools: HbonePool[] = [];
  const servers: HboneServer[] = [];
  const { server: echo, destroyConnections: destroyUpstreams } = trackedEchoServer();
  const b = {} as Bench;
  b.accepted = 0;
  b.onConnect = async (req) => {
    const s = net.connect({ host: req.authority.host, port: req.authority.port, allowHalfOpen: true });
    await once(s, 'connect');
    return { status: 200, upstream: s };
  };
  b.newServer = () => {
    const server = new HboneServer({
      trustDomains: () => ['cluster.local'],
      secureContextFor: async () => serverContext,
      onConnect: (req) => b.onConnect(req),
      logger: silentLogger,
    });
    servers.push(server);
    b.server = server;
    return server;
  };
  b.newServer();
  const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    b.accepted++;
    b.server.handleConnection(s);
  });
  b.hbonePort = await listen(listener);
  b.echoPort = await listen(echo);
  b.pool = (opts = {}) => {
    const pool = new HbonePool({
      certificates: cachedContexts(ca),
      connectSocket: async (host, port) => {
        const s = net.connect({ host, port, allowHalfOpen: true });
        await once(s, 'connect');
        return s;
      },
      logger: silentLogger,
      ...opts,
    });
    pools.push(pool);
    return pool;
  };
  b.request = (overrides = {}) => ({
    sourceIdentity: CLIENT,
    expectedIdentities: [SERVER_URI],
    nextHop: { host: '127.0.0.1', port: b.hbonePort },
    authority: formatAuthority('127.0.0.1', b.echoPort),
    headers: {},
    ...overrides,
  });
  b.close = async () => {
    for (const p of pools) p.close();
    for (const s of servers) s.close();
    destroyUpstreams();
    listener.close();
    echo.close();
    await Promise.all([once(listener, 'close'), once(echo, 'close')]);
  };
  return b;
}

function closeAll(streams: Duplex[]): void {
  for (const s of streams) s.destroy();
}

describe('HbonePool reuse', () => {
  it('carries many sequential streams over one connection', async () => {
    bench = await startBench();
    const pool = bench.pool();
    for (let i = 0; i < 10; i++) {
      const stream = await pool.connect(bench.request());
      await ping(stream, `n${i}`);
      stream.end();
      await once(stream, 'close');
    }
    expect(bench.accepted).toBe(1);
    expect(pool.stats()).toMatchObject({ connections: 1, dials: 1, streams: 0 });
  });

  it('opens ONE connection for concurrent first dials to one key', async () => {
    bench = await startBench();
    const pool = bench.pool();
    const streams = await Promise.all(Array.from({ length: 25 }, () => pool.connect(bench!.request())));
    await Promise.all(streams.map((s, i) => ping(s, `c${i}`)));
    expect(bench.accepted).toBe(1);
    expect(pool.stats()).toMatchObject({ connections: 1, dials: 1, streams: 25 });
    expect(bench.server.stats()).toMatchObject({ sessions: 1, streams: 25 });
    closeAll(streams);
  });

  it('opens a second connection beyond 100 concurrent streams, a third beyond 200', async () => {
    bench = await startBench();
    const pool = bench.pool();
    const first = await Promise.all(Array.from({ length: 100 }, () => pool.connect(bench!.request())));
    expect(bench.accepted).toBe(1);
    const more = await Promise.all(Array.from({ length: 50 }, () => pool.connect(bench!.request())));
    expect(bench.accepted).toBe(2);
    expect(pool.stats()).toMatchObject({ connections: 2, streams: 150 });
    const rest = await Promise.all(Array.from({ length: 51 }, () => pool.connect(bench!.request())));
    expect(bench.accepted).toBe(3);
    const all = [...first, ...more, ...rest];
    await ping(all[0] as Duplex);
    await ping(all[200] as Duplex);
    expect(bench.server.stats()).toMatchObject({ sessions: 3, streams: 201 });
    // Freed slots are reused before dialling again.
    closeAll(first.slice(0, 10));
    await eventually(() => expect(pool.stats().streams).toBe(191), { timeoutMs: 5000, intervalMs: 10 });
    const again = await Promise.all(Array.from({ length: 10 }, () => pool.connect(bench!.request())));
    expect(bench.accepted).toBe(3);
    closeAll([...all, ...again]);
  });

  it('keys connections by source identity, expected identities (order-free) and next hop', async () => {
    bench = await startBench();
    const pool = bench.pool();
    const a = await pool.connect(bench.request({ expectedIdentities: [SERVER_URI, 'spiffe://cluster.local/ns/x/sa/y'] }));
    const b = await pool.connect(bench.request({ expectedIdentities: ['spiffe://cluster.local/ns/x/sa/y', SERVER_URI] }));
    expect(bench.accepted).toBe(1);
    const c = await pool.connect(bench.request());
    expect(bench.accepted).toBe(2);
    const d = await pool.connect(bench.request({ sourceIdentity: OTHER_CLIENT }));
    expect(bench.accepted).toBe(3);
    const e = await pool.connect(bench.request({ nextHop: { host: 'localhost', port: bench.hbonePort } }));
    expect(bench.accepted).toBe(4);
    expect(pool.stats().keys).toHaveLength(4);
    closeAll([a, b, c, d, e]);
  });
});

describe('HbonePool lifecycle', () => {
  it('closes a connection that stayed idle for idleTimeoutMs, and dials afresh afterwards', async () => {
    bench = await startBench();
    const pool = bench.pool({ idleTimeoutMs: 100 });
    const stream = await pool.connect(bench.request());
    await ping(stream);
    stream.end();
    await once(stream, 'close');
    expect(pool.stats().connections).toBe(1);
    await eventually(
      () => {
        expect(pool.stats().connections).toBe(0);
        expect(bench!.server.stats().sessions).toBe(0);
      },
      { timeoutMs: 5000, intervalMs: 20, description: 'idle connection closed' },
    );
    const next = await pool.connect(bench.request());
    await ping(next);
    expect(bench.accepted).toBe(2);
    next.destroy();
  });

  it('with idleTimeoutMs 0 and one stream per connection, every CONNECT dials (a handshake each) and no connection outlives its stream', async () => {
    bench = await startBench();
    const pool = bench.pool({ idleTimeoutMs: 0, maxStreamsPerConnection: 1 });
    for (let i = 0; i < 3; i++) {
      const stream = await pool.connect(bench.request());
      await ping(stream, `s${i}`);
      stream.end();
      await once(stream, 'close');
      // Retired as the stream closed: nothing is left for the next CONNECT to reuse.
      expect(pool.stats()).toMatchObject({ streams: 0, keys: [] });
    }
    const both = await Promise.all([pool.connect(bench.request()), pool.connect(bench.request())]);
    await Promise.all(both.map((s, i) => ping(s, `p${i}`)));
    expect(bench.accepted).toBe(5);
    expect(pool.stats().dials).toBe(5);
    closeAll(both);
    await eventually(
      () => {
        expect(pool.stats().connections).toBe(0);
        expect(bench!.server.stats().sessions).toBe(0);
      },
      { timeoutMs: 5000, intervalMs: 20, description: 'every connection closed with its stream' },
    );
  });

  it('refuses a negative idleTimeoutMs', () => {
    expect(() => new HbonePool({ certificates: cachedContexts(ca), logger: silentLogger, idleTimeoutMs: -1 })).toThrow(/idleTimeoutMs -1: expected 0 or more/);
  });

  it('does not close a connection that still carries a stream', async () => {
    bench = await startBench();
    const pool = bench.pool({ idleTimeoutMs: 50 });
    const a = await pool.connect(bench.request());
    const b = await pool.connect(bench.request());
    b.destroy();
    await once(b, 'close');
    // Well past the idle timeout, the connection with a live stream is still there and works.
    await new Promise((r) => setTimeout(r, 200));
    await ping(a);
    expect(pool.stats().connections).toBe(1);
    a.destroy();
  });

  it('drops a connection whose session died and dials a new one', async () => {
    bench = await startBench();
    const pool = bench.pool();
    const s1 = await pool.connect(bench.request());
    await ping(s1);
    const old = bench.server;
    bench.newServer();
    old.close(); // destroys the session under the pool
    await eventually(() => expect(pool.stats().connections).toBe(0), { timeoutMs: 5000, intervalMs: 10 });
    const s2 = await pool.connect(bench.request());
    await ping(s2);
    expect(bench.accepted).toBe(2);
    s2.destroy();
  });

  it('stops using a connection after GOAWAY, while its open streams finish', async () => {
    bench = await startBench();
    const pool = bench.pool();
    const open = await pool.connect(bench.request());
    const old = bench.server;
    bench.newServer();
    const draining = old.drain(5000);
    await eventually(() => expect(pool.stats().keys).toEqual([]), { timeoutMs: 5000, intervalMs: 10, description: 'GOAWAY seen' });
    await ping(open, 'still-open');
    const fresh = await pool.connect(bench.request());
    await ping(fresh);
    expect(bench.accepted).toBe(2);
    open.end();
    await draining;
    fresh.destroy();
  });

  it('after a certificate rotation, new streams get a connection with the new certificate while old streams finish', async () => {
    bench = await startBench();
    const before = await ca.context(CLIENT);
    const after = await ca.context(CLIENT);
    let current = before;
    const pool = bench.pool({ certificates: { secureContext: async () => current } });
    const old = await pool.connect(bench.request());
    await ping(old);
    current = after; // what the certificate manager hands out after rotating
    const fresh = await pool.connect(bench.request());
    await ping(fresh);
    await ping(old, 'old-stream-still-flows');
    expect(bench.accepted).toBe(2);
    const again = await pool.connect(bench.request());
    await ping(again);
    expect(bench.accepted).toBe(2); // the new connection is reused while the certificate stays
    expect(pool.stats()).toMatchObject({ connections: 2, dials: 2 }); // the retired one lives until its stream ends
    for (const s of [old, fresh, again]) s.destroy();
  });

  it('drain refuses new streams and waits for open ones', async () => {
    bench = await startBench();
    const pool = bench.pool();
    const open = await pool.connect(bench.request());
    let drained = false;
    const draining = pool.drain(5000).then(() => (drained = true));
    await expect(pool.connect(bench.request())).rejects.toMatchObject({ code: 'AMESH_SHUTTING_DOWN' });
    await ping(open);
    expect(drained).toBe(false);
    open.end();
    await draining;
    expect(pool.stats().connections).toBe(0);
  });
});

describe('HbonePool errors', () => {
  async function failure(p: Promise<unknown>): Promise<AmeshError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!isAmeshError(err)) throw new Error(`expected an AmeshError, got ${String(err)}`);
    return err;
  }

  it('explains a refused TCP connection', async () => {
    bench = await startBench();
    const closed = net.createServer();
    const port = await listen(closed);
    closed.close();
    await once(closed, 'close');
    const err = await failure(bench.pool().connect(bench.request({ nextHop: { host: '127.0.0.1', port } })));
    expect(err.code).toBe('AMESH_HBONE_CONNECT_FAILED');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.hint).toMatch(/listening on 15008/);
  });

  it('explains a connect timeout with the NetworkPolicy hint', async () => {
    bench = await startBench();
    const pool = bench.pool({
      connectSocket: async (host, port) => {
        throw Object.assign(new Error(`connect ETIMEDOUT ${host}:${port}`), { code: 'ETIMEDOUT' });
      },
    });
    const err = await failure(pool.connect(bench.request({ nextHop: { host: '10.0.0.2', port: 15008 } })));
    expect(err.code).toBe('AMESH_HBONE_CONNECT_FAILED');
    expect(err.message).toBe('timed out connecting to 10.0.0.2:15008');
    expect(err.hint).toMatch(/NetworkPolicy/);
  });

  it('times out a TLS handshake with something that is not an HBONE server', async () => {
    bench = await startBench();
    const silent = net.createServer((s) => s.on('error', () => {}));
    const port = await listen(silent);
    try {
      const err = await failure(bench.pool({ handshakeTimeoutMs: 200 }).connect(bench.request({ nextHop: { host: '127.0.0.1', port } })));
      expect(err.code).toBe('AMESH_HBONE_CONNECT_FAILED');
      expect(err.message).toMatch(/timed out/);
    } finally {
      silent.close();
    }
  });

  it('a failed dial rejects every waiter and is not cached', async () => {
    bench = await startBench();
    let calls = 0;
    const pool = bench.pool({
      connectSocket: async (host, port) => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        const s = net.connect({ host, port, allowHalfOpen: true });
        await once(s, 'connect');
        return s;
      },
    });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => pool.connect(bench!.request())));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(calls).toBe(1);
    const stream = await pool.connect(bench.request());
    await ping(stream);
    expect(calls).toBe(2);
    stream.destroy();
  });

  it('rejects a non-200 answer with the status, and the connection stays usable', async () => {
    bench = await startBench();
    const pool = bench.pool();
    bench.onConnect = async () => ({ status: 401, reason: 'denied by policy' });
    const err = await failure(pool.connect(bench.request()));
    expect(err).toBeInstanceOf(HboneRefusedError);
    expect(err.code).toBe('AMESH_HBONE_REFUSED');
    expect((err as HboneRefusedError).status).toBe(401);
    bench.onConnect = async (req) => {
      const s = net.connect({ host: req.authority.host, port: req.authority.port, allowHalfOpen: true });
      await once(s, 'connect');
      return { status: 200, upstream: s };
    };
    const ok = await pool.connect(bench.request());
    await ping(ok);
    expect(bench.accepted).toBe(1);
    ok.destroy();
  });

  it('needs at least one expected identity', async () => {
    bench = await startBench();
    const err = await failure(bench.pool().connect(bench.request({ expectedIdentities: [] })));
    expect(err.code).toBe('AMESH_HBONE_PEER_REJECTED');
    expect(bench.accepted).toBe(0);
  });
});
