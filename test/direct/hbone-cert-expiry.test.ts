/**
 * Issue #12: an HBONE connection outlives the certificates its handshake checked. Loopback, port
 * 0, an injected clock: 60 s certificates from the real LocalCaProvider, "expired" by moving the
 * clock 2 minutes on (TLS itself still sees them valid, so only the new checks can refuse).
 * - HbonePool does not hand out a connection whose peer certificate or ours has expired; its
 *   open streams continue; the next stream goes on a fresh dial.
 * - HboneServer refuses a CONNECT on a session whose certificates expired (REFUSED_STREAM +
 *   GOAWAY), keeps open streams, and a fresh session with valid certificates works.
 * - Both together: the pool, its clock not yet past notAfter, retries the refused CONNECT on a
 *   fresh dial.
 */
import { once } from 'node:events';
import net from 'node:net';
import type tls from 'node:tls';
import type http2 from 'node:http2';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dialHbone, openConnectStream } from '../../src/hbone/client.js';
import { formatAuthority } from '../../src/hbone/headers.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { HboneServer } from '../../src/hbone/server.js';
import { buildSecureContext } from '../../src/identity/certificate-manager.js';
import { LocalCaProvider } from '../../src/identity/certificate-provider.js';
import type { WorkloadIdentity } from '../../src/identity/spiffe.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { CLIENT_ID as CLIENT, SERVER_ID as SERVER, SERVER_URI, listen, ping, trackedEchoServer } from '../helpers/hbone.js';
import { createTestCa, type TestCa } from '../helpers/pki.js';

const PAST_SHORT_EXPIRY_MS = 120_000;

let ca: TestCa;
let shortLived: (id: WorkloadIdentity) => Promise<tls.SecureContext>;
beforeAll(async () => {
  ca = await createTestCa(); // 1 h certificates
  const provider = new LocalCaProvider({ ca: ca.ca, ttlSeconds: 60 });
  shortLived = async (id) => buildSecureContext(await provider.fetch(id));
});

interface Bench {
  server: HboneServer;
  hbonePort: number;
  echoPort: number;
  accepted: number;
  /** What the server presents to the next connection. */
  serverContext: tls.SecureContext;
  clientContext: tls.SecureContext;
  /** Milliseconds added to Date.now() by the clocks that opt in. */
  skewMs: number;
  clock: () => number;
  pool(opts?: { fakeClock?: boolean }): HbonePool;
  close(): Promise<void>;
}

let bench: Bench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

async function startBench(opts: { serverFakeClock: boolean; serverContext: tls.SecureContext; clientContext: tls.SecureContext }): Promise<Bench> {
  const pools: HbonePool[] = [];
  const { server: echo, destroyConnections: destroyUpstreams } = trackedEchoServer();
  const b = { accepted: 0, skewMs: 0, serverContext: opts.serverContext, clientContext: opts.clientContext } as Bench;
  b.clock = () => Date.now() + b.skewMs;
  b.server = new HboneServer({
    trustDomains: () => ['cluster.local'],
    secureContextFor: async () => b.serverContext,
    onConnect: async (req) => {
      const s = net.connect({ host: req.authority.host, port: req.authority.port, allowHalfOpen: true });
      await once(s, 'connect');
      return { status: 200, upstream: s };
    },
    logger: silentLogger,
    ...(opts.serverFakeClock ? { now: b.clock } : {}),
  });
  const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    b.accepted++;
    b.server.handleConnection(s);
  });
  b.hbonePort = await listen(listener);
  b.echoPort = await listen(echo);
  b.pool = ({ fakeClock = true } = {}) => {
    const pool = new HbonePool({
      certificates: { secureContext: async () => b.clientContext },
      logger: silentLogger,
      ...(fakeClock ? { now: b.clock } : {}),
    });
    pools.push(pool);
    return pool;
  };
  b.close = async () => {
    for (const p of pools) p.close();
    b.server.close();
    destroyUpstreams();
    listener.close();
    echo.close();
    await Promise.all([once(listener, 'close'), once(echo, 'close')]);
  };
  return b;
}

function request(b: Bench): Parameters<HbonePool['connect']>[0] {
  return {
    sourceIdentity: CLIENT,
    expectedIdentities: [SERVER_URI],
    nextHop: { host: '127.0.0.1', port: b.hbonePort },
    authority: formatAuthority('127.0.0.1', b.echoPort),
    headers: {},
  };
}

describe('HbonePool and expired certificates', () => {
  it("does not reuse a connection once the peer's certificate expired; open streams continue; a fresh certificate works", async () => {
    // The server keeps the real clock: only the pool's check can keep the old connection out.
    bench = await startBench({ serverFakeClock: false, serverContext: await shortLived(SERVER), clientContext: await ca.context(CLIENT) });
    const pool = bench.pool();
    const open = await pool.connect(request(bench));
    await ping(open, 'before');
    const second = await pool.connect(request(bench));
    await ping(second);
    second.destroy();
    expect(bench.accepted).toBe(1);

    bench.skewMs = PAST_SHORT_EXPIRY_MS;
    bench.serverContext = await ca.context(SERVER); // the renewed certificate
    const after = await pool.connect(request(bench));
    await ping(after, 'after');
    expect(bench.accepted).toBe(2);
    expect(bench.server.stats().refusedStreams).toBe(0);
    await ping(open, 'still-open'); // retired, not torn down
    const again = await pool.connect(request(bench));
    await ping(again);
    expect(bench.accepted).toBe(2); // the fresh connection is reused
    for (const s of [open, after, again]) s.destroy();
  });

  it('does not reuse a connection once our own certificate on it expired', async () => {
    bench = await startBench({ serverFakeClock: false, serverContext: await ca.context(SERVER), clientContext: await shortLived(CLIENT) });
    const pool = bench.pool();
    const first = await pool.connect(request(bench));
    await ping(first);
    first.destroy();
    bench.skewMs = PAST_SHORT_EXPIRY_MS;
    const next = await pool.connect(request(bench));
    await ping(next);
    expect(bench.accepted).toBe(2);
    next.destroy();
  });
});

describe('HboneServer and expired certificates', () => {
  async function dial(b: Bench, secureContext: tls.SecureContext): Promise<http2.ClientHttp2Session> {
    const socket = net.connect({ host: '127.0.0.1', port: b.hbonePort, allowHalfOpen: true });
    await once(socket, 'connect');
    return (await dialHbone({ socket, secureContext, expectedIdentities: [SERVER_URI], peer: `127.0.0.1:${b.hbonePort}` })).session;
  }

  for (const side of ['client', 'server'] as const) {
    it(`refuses a CONNECT (REFUSED_STREAM, GOAWAY) once the ${side} certificate on the session expired; open streams continue; a fresh session works`, async () => {
      const short = side === 'client' ? await shortLived(CLIENT) : await shortLived(SERVER);
      bench = await startBench({
        serverFakeClock: true,
        serverContext: side === 'server' ? short : await ca.context(SERVER),
        clientContext: side === 'client' ? short : await ca.context(CLIENT),
      });
      const authority = formatAuthority('127.0.0.1', bench.echoPort);
      const session = await dial(bench, bench.clientContext);
      const open = await openConnectStream(session, authority, {}, 'test');
      await ping(open, 'before');
      const goaway = once(session, 'goaway');

      bench.skewMs = PAST_SHORT_EXPIRY_MS;
      const refused = await openConnectStream(session, authority, {}, 'test').then(
        () => undefined,
        (err: unknown) => err,
      );
      // REFUSED_STREAM, seen as a reset (rstCode 7) or as Node's stream error naming it.
      const cause = (refused as { cause?: { rstCode?: number; message?: string } } | undefined)?.cause;
      expect(cause?.rstCode === 7 || /REFUSED_STREAM/.test(cause?.message ?? ''), `refused with ${String(refused)}`).toBe(true);
      await goaway;
      expect(bench.server.stats().refusedStreams).toBe(1);
      await ping(open, 'still-open');
      open.destroy();

      // Renewed certificates on both ends: a fresh session is served.
      bench.serverContext = await ca.context(SERVER);
      const fresh = await dial(bench, await ca.context(CLIENT));
      const stream = await openConnectStream(fresh, authority, {}, 'test');
      await ping(stream, 'fresh');
      stream.destroy();
      fresh.destroy();
      session.destroy();
    });
  }

  it('makes a pool that has not noticed the expiry retry on a fresh dial', async () => {
    // The pool's own clock is behind (real clock): the server's refusal is what moves it.
    bench = await startBench({ serverFakeClock: true, serverContext: await shortLived(SERVER), clientContext: await ca.context(CLIENT) });
    const pool = bench.pool({ fakeClock: false });
    const first = await pool.connect(request(bench));
    await ping(first);
    first.destroy();
    bench.skewMs = PAST_SHORT_EXPIRY_MS;
    bench.serverContext = await ca.context(SERVER);
    const next = await pool.connect(request(bench));
    await ping(next, 'retried');
    expect(bench.accepted).toBe(2);
    expect(bench.server.stats().refusedStreams).toBe(1);
    next.destroy();
    await eventually(() => expect(bench!.server.stats().sessions).toBe(1), { timeoutMs: 5000, intervalMs: 20, description: 'the expired session closed' });
  });
});
