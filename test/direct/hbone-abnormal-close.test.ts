// Issue #12: a tunnel that dies abnormally must reset the application's connection, not end it.
// An app without framing (nc, a line stream) cannot tell a cut-short stream from a complete one
// when it sees a FIN; ztunnel resets the downstream connection then, and so must the agent.
// A normal end (END_STREAM / FIN), half-close, and the waypoint's upstream pool closing a
// keep-alive connection still deliver every byte and a clean end (FIN).
import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import type { HbonePoolOptions } from '../../src/hbone/pool.js';
import type { Endpoint } from '../../src/l7/config.js';
import { UpstreamPools } from '../../src/l7/upstream.js';
import { relay, type RelayResult } from '../../src/net/relay.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { CLIENT_ID, SERVER_URI, listen, startHbone, type HboneFixture } from '../helpers/hbone.js';

const LINE = 'x'.repeat(99) + '\n';
const LINES = 450;

/** What the application's socket saw: its bytes and how it ended. */
interface ClientOutcome {
  bytes: number;
  /** 'end' for a FIN; 'ECONNRESET' for a reset. */
  ending: string;
}

/**
 * How the connection ended, as the kernel saw it. libuv reports a RST that arrives with the
 * last data (one wakeup: a short read plus POLLHUP) as EOF, so Node's 'end' alone cannot tell
 * a FIN from a RST. After a FIN the socket (allowHalfOpen) still takes writes; after a RST the
 * kernel refuses them with the reset (ECONNRESET, or EPIPE once that was reported).
 */
function watchClient(client: net.Socket): Promise<ClientOutcome> {
  let bytes = 0;
  client.on('data', (d: Buffer) => (bytes += d.length));
  return new Promise<ClientOutcome>((resolve) => {
    const onError = (err: NodeJS.ErrnoException): void => resolve({ bytes, ending: err.code === 'EPIPE' ? 'ECONNRESET' : (err.code ?? err.message) });
    client.once('error', onError);
    client.once('end', () => {
      // Probe: a write after a FIN is accepted; after a RST it fails. Give the error a moment.
      // (A client that ended its own side already cannot probe.)
      if (client.writableEnded) return resolve({ bytes, ending: 'end' });
      client.write('probe\n', () => undefined);
      setTimeout(() => resolve({ bytes, ending: 'end' }), 200);
    });
    client.once('close', () => setTimeout(() => resolve({ bytes, ending: 'close without end or error' }), 200));
  }).then((o) => {
    client.destroy();
    return o;
  });
}

/** Pod sockets still open when a test ends (one that holds its connection never closes it). */
const podSockets = new Set<net.Socket>();

/** A server pod; `onSocket` decides what it sends and how it ends. */
function linesServer(onSocket: (s: net.Socket) => void): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    podSockets.add(s);
    s.once('close', () => podSockets.delete(s));
    s.on('error', () => undefined);
    s.resume(); // reads and drops what the client sends (the probe), and sees its FIN
    onSocket(s);
  });
}

function writeLines(s: net.Socket, count: number, done: () => void): void {
  let i = 0;
  const next = (): void => {
    if (s.destroyed) return;
    if (i++ >= count) return done();
    s.write(LINE);
    setImmediate(next);
  };
  next();
}

/**
 * A TCP hop between the client agent and the HBONE server that can be cut like a link: after
 * `cut()` nothing passes either way and nothing is closed (packets dropped), so only the HBONE
 * keepalive can notice.
 */
async function cuttableLink(target: number): Promise<{ port: number; cut: () => void; close: () => void }> {
  const sockets: net.Socket[] = [];
  let cut = false;
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    const up = net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
    sockets.push(down, up);
    for (const [from, to] of [
      [down, up],
      [up, down],
    ] as const) {
      from.on('error', () => undefined);
      from.on('data', (d: Buffer) => {
        if (!cut) to.write(d);
      });
      from.on('end', () => {
        if (!cut) to.end();
      });
    }
  });
  const port = await listen(server);
  return {
    port,
    cut: () => (cut = true),
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

describe('HBONE relay: abnormal ends reset the application connection (issue #12)', () => {
  let fx: HboneFixture | undefined;
  const cleanups: Array<() => void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) c();
    for (const s of podSockets) s.destroy();
    await fx?.close();
    fx = undefined;
  });

  interface Tunnel {
    client: net.Socket;
    outcome: Promise<ClientOutcome>;
    /** The client agent's relay (client socket ↔ HBONE stream), once it finished. */
    relayed: Promise<RelayResult>;
    serverStream: () => http2.ServerHttp2Stream;
  }

  /** client → agent-side listener → relay(client, HBONE stream) → HBONE server → upstream pod. */
  async function tunnel(upstream: net.Server, opts: { pool?: Partial<HbonePoolOptions>; viaPort?: (hbonePort: number) => Promise<number> } = {}): Promise<Tunnel> {
    fx = await startHbone({ upstream });
    const f = fx;
    const pool = f.pool(opts.pool);
    const hbonePort = opts.viaPort ? await opts.viaPort(f.port) : f.port;
    let relayed!: (r: RelayResult) => void;
    const relayedPromise = new Promise<RelayResult>((resolve) => (relayed = resolve));
    const agentSide = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (captured) => {
      void pool
        .connect({ sourceIdentity: CLIENT_ID, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: hbonePort }, authority: `127.0.0.1:${f.upstreamPort}`, headers: {} })
        .then((stream) => relay(captured, stream).then(relayed), () => captured.resetAndDestroy());
    });
    const agentPort = await listen(agentSide);
    cleanups.push(() => agentSide.close());
    const client = net.connect({ host: '127.0.0.1', port: agentPort, allowHalfOpen: true });
    const outcome = watchClient(client);
    await once(client, 'connect');
    const serverStream = (): http2.ServerHttp2Stream => {
      const streams = (f.server as unknown as { streams: Set<http2.ServerHttp2Stream> }).streams;
      const [s] = [...streams];
      if (!s) throw new Error('no HBONE stream open at the server');
      return s;
    };
    return { client, outcome, relayed: relayedPromise, serverStream };
  }

  /** Resolves once the client has read at least `bytes`. */
  function received(client: net.Socket, bytes: number): Promise<void> {
    let n = 0;
    return new Promise((resolve) => {
      const onData = (d: Buffer): void => {
        n += d.length;
        if (n >= bytes) {
          client.off('data', onData);
          resolve();
        }
      };
      client.on('data', onData);
    });
  }

  const midway = 20 * LINE.length;

  it('the peer resets the HBONE stream mid-transfer: the client sees ECONNRESET, not an end', async () => {
    const t = await tunnel(linesServer((s) => writeLines(s, LINES, () => undefined)));
    await received(t.client, midway);
    t.serverStream().close(http2.constants.NGHTTP2_CONNECT_ERROR);
    const o = await t.outcome;
    expect(o.bytes).toBeLessThan(LINES * LINE.length);
    expect(o.ending, `client got ${o.bytes} of ${LINES * LINE.length} bytes`).toBe('ECONNRESET');
  });

  it('the peer resets the HBONE stream with NO_ERROR mid-transfer (no END_STREAM): the client sees ECONNRESET', async () => {
    const t = await tunnel(linesServer((s) => writeLines(s, LINES, () => undefined)));
    await received(t.client, midway);
    t.serverStream().destroy(); // RST_STREAM(NO_ERROR) alone: destroy() submits no END_STREAM
    const o = await t.outcome;
    expect(o.ending, `client got ${o.bytes} of ${LINES * LINE.length} bytes`).toBe('ECONNRESET');
  });

  it('the HBONE session is destroyed mid-transfer: the client sees ECONNRESET', async () => {
    const t = await tunnel(linesServer((s) => writeLines(s, LINES, () => undefined)));
    await received(t.client, midway);
    t.serverStream().session?.destroy();
    const o = await t.outcome;
    expect(o.ending, `client got ${o.bytes} of ${LINES * LINE.length} bytes`).toBe('ECONNRESET');
  });

  it('the server pod resets its socket mid-transfer: the client sees ECONNRESET', async () => {
    const t = await tunnel(linesServer((s) => writeLines(s, 40, () => setTimeout(() => s.resetAndDestroy(), 50))));
    const o = await t.outcome;
    expect(o.ending, `client got ${o.bytes} bytes`).toBe('ECONNRESET');
  });

  it('the client resets its socket mid-transfer: the server pod sees ECONNRESET', async () => {
    let podOutcome: Promise<ClientOutcome> | undefined;
    const podConnected = new Promise<void>((resolve) => {
      const t = linesServer((s) => {
        podOutcome = watchClient(s);
        resolve();
      });
      void tunnel(t).then(async ({ client }) => {
        client.write('hello\n');
        await podConnected;
        setTimeout(() => client.resetAndDestroy(), 50);
      });
    });
    await podConnected;
    const o = await podOutcome!;
    expect(o.ending).toBe('ECONNRESET');
  });

  // The client half-closed (its FIN became END_STREAM) and waits for the rest of the answer when
  // the tunnel dies. Node emits no 'aborted' once the stream's writable side has ended, so the
  // relay used to take the stream's end for END_STREAM and FIN the client: `nc` exited 0 with a
  // cut-short answer (the privileged link-cut test). The pod sends 20 lines and then holds the
  // connection open, so no data is in flight when the tunnel dies (a RST arriving with data can
  // read as EOF, see watchClient); the agent's relay result says what it did.
  const HELD = 20;
  const halfClosedPod = (): net.Server =>
    linesServer((s) => {
      s.once('end', () => writeLines(s, HELD, () => undefined));
    });

  it('half-closed client, then the link is cut (PING timeout): the client sees ECONNRESET, not an end', async () => {
    let link: Awaited<ReturnType<typeof cuttableLink>> | undefined;
    const t = await tunnel(halfClosedPod(), {
      pool: { pingIntervalMs: 100, pingTimeoutMs: 300 },
      viaPort: async (port) => {
        link = await cuttableLink(port);
        cleanups.push(link.close);
        return link.port;
      },
    });
    const got = received(t.client, HELD * LINE.length);
    t.client.end();
    await got;
    link!.cut();
    const o = await t.outcome;
    const r = await t.relayed;
    expect(r.error?.message, 'the agent relay took the dead tunnel for a clean end').toMatch(/END_STREAM|closed/);
    expect(o).toEqual({ bytes: HELD * LINE.length, ending: 'ECONNRESET' });
  });

  it('half-closed client, then the peer agent drops the HBONE session: the client sees ECONNRESET', async () => {
    const t = await tunnel(halfClosedPod());
    const got = received(t.client, HELD * LINE.length);
    t.client.end();
    await got;
    t.serverStream().session?.destroy();
    const o = await t.outcome;
    expect((await t.relayed).error).toBeDefined();
    expect(o).toEqual({ bytes: HELD * LINE.length, ending: 'ECONNRESET' });
  });

  it('half-closed client, then the peer resets the stream with NO_ERROR (no END_STREAM): the client sees ECONNRESET', async () => {
    const t = await tunnel(halfClosedPod());
    const got = received(t.client, HELD * LINE.length);
    t.client.end();
    await got;
    t.serverStream().destroy();
    const o = await t.outcome;
    expect((await t.relayed).error).toBeDefined();
    expect(o).toEqual({ bytes: HELD * LINE.length, ending: 'ECONNRESET' });
  });

  it('a normal end delivers every byte and a clean end', async () => {
    const t = await tunnel(linesServer((s) => writeLines(s, LINES, () => s.end())));
    const o = await t.outcome;
    expect(o).toEqual({ bytes: LINES * LINE.length, ending: 'end' });
    expect((await t.relayed).error).toBeUndefined();
  });

  it('END_STREAM followed by RST_STREAM(NO_ERROR) (a peer closing like TCP close()) is a clean end', async () => {
    const t = await tunnel(linesServer((s) => writeLines(s, HELD, () => undefined)));
    await received(t.client, HELD * LINE.length);
    // close(NO_ERROR) on a stream still open for writing ends it first: END_STREAM, then the reset.
    t.serverStream().close(http2.constants.NGHTTP2_NO_ERROR);
    const o = await t.outcome;
    expect(o).toEqual({ bytes: HELD * LINE.length, ending: 'end' });
  });

  it('many tunnels on one session ending together all end cleanly (no reset overtakes an END_STREAM)', async () => {
    // The HBONE server's relay finishes a stream once the pod's FIN went out as END_STREAM and
    // destroyed it: while the session's socket was busy writing, nghttp2 sent that destroy's
    // RST_STREAM before the still-queued END_STREAM, and the client's agent took it for a cut.
    const TUNNELS = 40;
    const BYTES = 256 * 1024;
    const payload = Buffer.alloc(BYTES, 'y');
    fx = await startHbone({ upstream: linesServer((s) => s.once('end', () => s.end(payload))) });
    const f = fx;
    const pool = f.pool();
    const relayed: Array<Promise<RelayResult>> = [];
    const agentSide = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (captured) => {
      relayed.push(
        pool
          .connect({ sourceIdentity: CLIENT_ID, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: f.port }, authority: `127.0.0.1:${f.upstreamPort}`, headers: {} })
          .then((stream) => relay(captured, stream)),
      );
    });
    const agentPort = await listen(agentSide);
    cleanups.push(() => agentSide.close());
    const outcomes = await Promise.all(
      Array.from({ length: TUNNELS }, async () => {
        const client = net.connect({ host: '127.0.0.1', port: agentPort, allowHalfOpen: true });
        const outcome = watchClient(client);
        await once(client, 'connect');
        client.end();
        return outcome;
      }),
    );
    expect(outcomes.filter((o) => o.bytes !== BYTES || o.ending !== 'end')).toEqual([]);
    const errors = (await Promise.all(relayed)).flatMap((r) => (r.error ? [r.error.message] : []));
    expect(errors).toEqual([]);
  });

  it('half-close: the client ends first, the pod keeps sending every byte, then ends cleanly', async () => {
    let podSawEnd = false;
    const t = await tunnel(
      linesServer((s) => {
        s.resume();
        s.once('end', () => {
          podSawEnd = true;
          writeLines(s, LINES, () => s.end());
        });
      }),
    );
    t.client.end();
    const o = await t.outcome;
    expect(podSawEnd).toBe(true);
    expect(o).toEqual({ bytes: LINES * LINE.length, ending: 'end' });
    expect((await t.relayed).error).toBeUndefined();
  });
});

// The waypoint's upstream pools close keep-alive connections that are HBONE streams in normal
// operation (maxRequestsPerConnection reached, idle, endpoint left the config). The backend pod
// must see a FIN then, not a reset: with the reset-on-abnormal-end relay at the destination, a
// stream closed by destroy() (RST_STREAM without END_STREAM) reached it as ECONNRESET.
describe('waypoint upstream pools: closing a keep-alive HBONE connection is a FIN for the backend', () => {
  let fx: HboneFixture | undefined;
  let pools: UpstreamPools | undefined;
  afterEach(async () => {
    pools?.close();
    pools = undefined;
    await fx?.close();
    fx = undefined;
  });

  /** A backend whose connections record how they ended: 'end' (FIN) or the error's code. */
  async function backendBehindHbone(kind: 'http1' | 'h2c' = 'http1'): Promise<{ endings: Array<Promise<string>>; endpoint: Endpoint }> {
    const endings: Array<Promise<string>> = [];
    const server =
      kind === 'http1'
        ? http.createServer((req, res) => {
            req.resume();
            req.on('end', () => res.end('ok'));
          })
        : http2.createServer((req, res) => {
            req.resume();
            req.on('end', () => res.end('ok'));
          });
    server.on('connection', (s: net.Socket) => {
      endings.push(
        new Promise((resolve) => {
          s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
          s.on('end', () => resolve('end'));
          s.on('close', () => resolve('close without end or error'));
        }),
      );
    });
    fx = await startHbone({ upstream: server as net.Server });
    const f = fx;
    const hbonePool = f.pool();
    pools = new UpstreamPools({
      logger: silentLogger,
      dialer: { connect: (e) => hbonePool.connect({ sourceIdentity: CLIENT_ID, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: f.port }, authority: `${e.address}:${e.port}`, headers: {} }) },
    });
    return { endings, endpoint: { address: '127.0.0.1', port: f.upstreamPort, identity: SERVER_URI, hbone: true } };
  }

  it('http.Agent (requests with a body): retired after maxRequestsPerConnection, and idle ones at close', async () => {
    const { endings, endpoint } = await backendBehindHbone();
    const post = (settings: { maxRequestsPerConnection?: number }): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = http.request({ agent: pools!.agentFor(endpoint, settings), host: endpoint.address, port: endpoint.port, method: 'POST', path: '/' }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end('a body');
      });
    expect(await post({ maxRequestsPerConnection: 1 })).toBe(200); // retired when its response ends
    expect(await post({})).toBe(200); // idle, closed by pools.close()
    await new Promise((r) => setTimeout(r, 50));
    pools!.close();
    expect(endings).toHaveLength(2);
    expect(await Promise.all(endings)).toEqual(['end', 'end']);
  });

  it('lean client (bodiless requests): retired after maxRequestsPerConnection, and idle ones at close', async () => {
    const { endings, endpoint } = await backendBehindHbone();
    const get = async (settings: { maxRequestsPerConnection?: number }): Promise<number> => {
      const c = await pools!.http1PoolFor(endpoint, settings).connect();
      return new Promise((resolve, reject) => {
        let status = 0;
        c.request(`GET / HTTP/1.1\r\nhost: backend\r\n\r\n`, false, {
          head: (s) => (status = s),
          body: () => true,
          end: () => resolve(status),
          fail: reject,
        });
      });
    };
    expect(await get({ maxRequestsPerConnection: 1 })).toBe(200);
    expect(await get({})).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    pools!.close();
    expect(endings).toHaveLength(2);
    expect(await Promise.all(endings)).toEqual(['end', 'end']);
  });

  it('h2c session: closed when idle, and destroyed at close', async () => {
    const { endings, endpoint } = await backendBehindHbone('h2c');
    const call = async (settings: { idleTimeoutMs?: number }): Promise<number> => {
      const session = await pools!.h2SessionFor(endpoint, settings);
      const req = session.request({ ':method': 'POST', ':path': '/' });
      req.end('a body');
      req.resume();
      const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
      await once(req, 'end');
      return Number(headers[':status']);
    };
    expect(await call({ idleTimeoutMs: 100 })).toBe(200); // session.close() after 100 ms idle
    expect(await call({})).toBe(200); // destroyed by pools.close()
    await new Promise((r) => setTimeout(r, 300));
    pools!.close();
    expect(endings).toHaveLength(2);
    expect(await Promise.all(endings)).toEqual(['end', 'end']);
  });
});
