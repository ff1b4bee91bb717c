// Issue #12: a tunnel that dies abnormally must reset the application's connection, not end it.
// An app without framing (nc, a line stream) cannot tell a cut-short stream from a complete one
// when it sees a FIN; ztunnel resets the downstream connection then, and so must the agent.
// A normal end (END_STREAM / FIN), and half-close, still deliver every byte and a clean end.
import { afterEach, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { relay } from '../../src/net/relay.js';
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

/** A server pod; `onSocket` decides what it sends and how it ends. */
function linesServer(onSocket: (s: net.Socket) => void): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
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

describe('HBONE relay: abnormal ends reset the application connection (issue #12)', () => {
  let fx: HboneFixture | undefined;
  const cleanups: Array<() => void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) c();
    await fx?.close();
    fx = undefined;
  });

  /** client → agent-side listener → relay(client, HBONE stream) → HBONE server → upstream pod. */
  async function tunnel(upstream: net.Server): Promise<{ client: net.Socket; outcome: Promise<ClientOutcome>; serverStream: () => http2.ServerHttp2Stream }> {
    fx = await startHbone({ upstream });
    const f = fx;
    const pool = f.pool();
    const agentSide = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (captured) => {
      void pool
        .connect({ sourceIdentity: CLIENT_ID, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: f.port }, authority: `127.0.0.1:${f.upstreamPort}`, headers: {} })
        .then((stream) => relay(captured, stream), () => captured.resetAndDestroy());
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
    return { client, outcome, serverStream };
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
    t.serverStream().close(http2.constants.NGHTTP2_NO_ERROR);
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

  it('a normal end delivers every byte and a clean end', async () => {
    const t = await tunnel(linesServer((s) => writeLines(s, LINES, () => s.end())));
    const o = await t.outcome;
    expect(o).toEqual({ bytes: LINES * LINE.length, ending: 'end' });
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
  });
});
