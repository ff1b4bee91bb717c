import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { buildSecureContext } from '../../src/identity/certificate-manager.js';
import { dialHbone, HboneRefusedError } from '../../src/hbone/client.js';
import { buildBaggage, buildForwarded, formatAuthority, newTraceparent } from '../../src/hbone/headers.js';
import { HboneServer } from '../../src/hbone/server.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { CLIENT_ID, CLIENT_URI, listen, SERVER_URI, startHbone, type HboneFixture } from '../helpers/hbone.js';
import { createTestCa, workload } from '../helpers/pki.js';

let fixture: HboneFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

function connectOpts(f: HboneFixture, overrides: { expectedIdentities?: string[]; authority?: string; headers?: Record<string, string> } = {}) {
  return {
    sourceIdentity: CLIENT_ID,
    expectedIdentities: overrides.expectedIdentities ?? [SERVER_URI],
    nextHop: { host: '127.0.0.1', port: f.port },
    authority: overrides.authority ?? formatAuthority('127.0.0.1', f.upstreamPort),
    headers: overrides.headers ?? {},
  };
}

/** Reads a stream to its end; resolves with everything it carried. */
async function readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('HBONE round trip', () => {
  for (const pauseOnConnect of [true, false]) {
    it(`carries 8 MiB both ways intact (pauseOnConnect ${pauseOnConnect})`, async () => {
      fixture = await startHbone({ pauseOnConnect });
      const pool = fixture.pool();
      const stream = await pool.connect(connectOpts(fixture));
      const payload = randomBytes(8 * 1024 * 1024);
      const received = readAll(stream);
      stream.end(payload);
      const echoed = await received;
      expect(echoed.length).toBe(payload.length);
      expect(sha256(echoed)).toBe(sha256(payload));
    });
  }

  it('works over IPv6 with bracketed authority and forwarded', async () => {
    fixture = await startHbone({ host: '::1' });
    const forwarded = buildForwarded({ clientAddress: 'fd00::7', clientPort: 4242 });
    const stream = await fixture.pool().connect({
      ...connectOpts(fixture, { authority: formatAuthority('::1', fixture.upstreamPort), headers: { forwarded } }),
      nextHop: { host: '::1', port: fixture.port },
    });
    const reply = readAll(stream);
    stream.end('over v6');
    expect((await reply).toString()).toBe('over v6');
    const req = fixture.requests[0];
    expect(req?.headers[':authority']).toBe(`[::1]:${fixture.upstreamPort}`);
    expect(req?.authority).toEqual({ host: '::1', port: fixture.upstreamPort });
    expect(req?.forwarded).toBe('for="[fd00::7]:4242"');
    expect(req?.localAddress).toBe('::1');
    expect(req?.peerAddress).toBe('::1');
  });

  it('propagates half-close both ways: the upstream answers after the client finished writing', async () => {
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('data', (c: Buffer) => (n += c.length));
      s.on('end', () => {
        // Our side is still writable after the client's FIN.
        s.write(`got ${n} bytes`);
        s.end();
      });
    });
    fixture = await startHbone({ upstream });
    const stream = await fixture.pool().connect(connectOpts(fixture));
    const reply = readAll(stream);
    stream.write(Buffer.alloc(1000, 1));
    stream.end(Buffer.alloc(234, 2));
    expect((await reply).toString()).toBe('got 1234 bytes');
  });

  it('resets the tunnel when the upstream dies', async () => {
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    fixture = await startHbone({ upstream });
    const stream = await fixture.pool().connect(connectOpts(fixture));
    stream.on('error', () => {});
    stream.write('hello');
    await new Promise((resolve) => stream.once('close', resolve));
    expect(stream.destroyed).toBe(true);
    // RFC 7540 §8.3: a CONNECT tunnel's TCP reset is signalled as RST_STREAM(CONNECT_ERROR).
    expect((stream as http2.ClientHttp2Stream).rstCode).toBe(http2.constants.NGHTTP2_CONNECT_ERROR);
  });

  it('negotiates TLS 1.3, ALPN h2 and an AES-GCM suite, without SNI', async () => {
    fixture = await startHbone();
    const stream = (await fixture.pool().connect(connectOpts(fixture))) as http2.ClientHttp2Stream;
    const req = fixture.requests[0];
    expect(req?.tls.protocol).toBe('TLSv1.3');
    expect(req?.tls.alpnProtocol).toBe('h2');
    expect(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384']).toContain(req?.tls.cipher);
    expect(req?.tls.servername).toBe(false);
    expect(stream.session?.alpnProtocol).toBe('h2');
    stream.destroy();
  });

  it('uses the HBONE HTTP/2 settings on both ends', async () => {
    fixture = await startHbone();
    const stream = (await fixture.pool().connect(connectOpts(fixture))) as http2.ClientHttp2Stream;
    const session = stream.session as http2.ClientHttp2Session;
    expect(session.localSettings).toMatchObject({ initialWindowSize: 4 * MiB, maxFrameSize: MiB, enablePush: false });
    expect(session.remoteSettings).toMatchObject({ initialWindowSize: 4 * MiB, maxFrameSize: MiB, maxConcurrentStreams: 200 });
    expect(session.state.localWindowSize).toBe(16 * MiB);
    // The server raised its connection window too (a WINDOW_UPDATE on stream 0).
    await vitestPoll(() => session.state.remoteWindowSize === 16 * MiB);
    stream.destroy();
  });

  it('delivers the request headers as sent, with no :scheme or :path', async () => {
    fixture = await startHbone();
    const headers = {
      forwarded: buildForwarded({ clientAddress: '10.1.2.3', clientPort: 4567, host: 'reviews.default.svc.cluster.local' }),
      baggage: buildBaggage({ cluster: 'Kubernetes', namespace: 'frontend', workloadType: 'deployment', workloadName: 'web', service: 'web', version: 'v1' }),
      traceparent: newTraceparent(),
    };
    const stream = await fixture.pool().connect(connectOpts(fixture, { headers }));
    const req = fixture.requests[0];
    expect(req).toBeDefined();
    expect(req?.headers[':method']).toBe('CONNECT');
    expect(req?.headers[':authority']).toBe(`127.0.0.1:${fixture.upstreamPort}`);
    expect(req?.headers[':scheme']).toBeUndefined();
    expect(req?.headers[':path']).toBeUndefined();
    expect(req?.authority).toEqual({ host: '127.0.0.1', port: fixture.upstreamPort });
    expect(req?.forwarded).toBe('for="10.1.2.3:4567";host=reviews.default.svc.cluster.local');
    expect(req?.headers.forwarded).toBe(headers.forwarded);
    expect(req?.baggage).toBe(headers.baggage);
    expect(req?.traceparent).toBe(headers.traceparent);
    expect(req?.peerIdentity).toBe(CLIENT_URI);
    expect(req?.peerAddress).toBe('127.0.0.1');
    expect(req?.localAddress).toBe('127.0.0.1');
    expect(req?.localPort).toBe(fixture.port);
    stream.destroy();
  });
});

describe('HBONE refusals', () => {
  for (const status of [400, 401, 503] as const) {
    it(`passes a ${status} from onConnect to the client as HboneRefusedError`, async () => {
      fixture = await startHbone();
      fixture.onConnect = async () => ({ status, reason: 'test' });
      const err = await fixture.pool().connect(connectOpts(fixture)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HboneRefusedError);
      expect((err as HboneRefusedError).code).toBe('AMESH_HBONE_REFUSED');
      expect((err as HboneRefusedError).status).toBe(status);
      expect(fixture.server.stats().refusedStreams).toBe(1);
    });
  }

  it('answers 503 when onConnect throws', async () => {
    fixture = await startHbone();
    fixture.onConnect = async () => {
      throw new Error('boom');
    };
    const err = await fixture.pool().connect(connectOpts(fixture)).catch((e: unknown) => e);
    expect((err as HboneRefusedError).status).toBe(503);
  });

  it('answers 400 for a bad :authority without asking onConnect', async () => {
    fixture = await startHbone();
    for (const authority of ['garbage', '10.0.0.1:0', '[::1]', '10.0.0.1:99999']) {
      const err = await fixture.pool().connect(connectOpts(fixture, { authority })).catch((e: unknown) => e);
      expect((err as HboneRefusedError).status, authority).toBe(400);
    }
    expect(fixture.requests).toHaveLength(0);
  });

  it('answers 400 to a method other than CONNECT', async () => {
    fixture = await startHbone();
    const socket = net.connect({ host: '127.0.0.1', port: fixture.port });
    await once(socket, 'connect');
    const { session } = await dialHbone({ socket, secureContext: await fixture.ca.context(CLIENT_ID), expectedIdentities: [SERVER_URI], peer: `127.0.0.1:${fixture.port}` });
    const req = session.request({ ':method': 'GET', ':path': '/' }, { endStream: true });
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    expect(headers[':status']).toBe(400);
    expect(fixture.requests).toHaveLength(0);
    session.destroy();
  });

  it('sends 200 only after onConnect returned an upstream', async () => {
    fixture = await startHbone();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const inner = fixture.onConnect;
    fixture.onConnect = async (req) => {
      await gate;
      return inner(req);
    };
    let resolved = false;
    const pending = fixture.pool().connect(connectOpts(fixture)).then((s) => {
      resolved = true;
      return s;
    });
    await vitestPoll(() => fixture!.requests.length === 1);
    expect(resolved).toBe(false);
    release();
    const stream = await pending;
    expect(resolved).toBe(true);
    stream.destroy();
  });
});

describe('HBONE peer verification', () => {
  it('refuses a client certificate from another CA', async () => {
    fixture = await startHbone();
    const other = await createTestCa();
    // The client trusts the server's root too, so only the server's check can fail.
    const issued = await other.issue(CLIENT_ID);
    const clientContext = buildSecureContext({ ...issued, rootsPem: [...issued.rootsPem, fixture.ca.ca.certPem] });
    const pool = fixture.pool({ clientContext });
    const err = await pool.connect(connectOpts(fixture)).catch((e: unknown) => e);
    expect(isAmeshError(err)).toBe(true);
    expect(fixture.requests).toHaveLength(0);
    // The pool retries once on a fresh connection when a session dies before answering.
    await vitestPoll(() => fixture!.server.stats().rejectedConnections >= 1 && fixture!.server.stats().handshaking === 0);
    expect(fixture.server.stats().sessions).toBe(0);
  });

  it('refuses a client of the same CA from another trust domain', async () => {
    fixture = await startHbone();
    const pool = fixture.pool({ clientContext: await fixture.ca.context(workload('frontend', 'client', 'other.domain')) });
    const err = await pool.connect(connectOpts(fixture)).catch((e: unknown) => e);
    expect(isAmeshError(err)).toBe(true);
    expect(fixture.requests).toHaveLength(0);
    // The pool retries once on a fresh connection when a session dies before answering.
    await vitestPoll(() => fixture!.server.stats().rejectedConnections >= 1 && fixture!.server.stats().handshaking === 0);
    expect(fixture.server.stats().sessions).toBe(0);
  });

  it('accepts that trust domain when the server allows it', async () => {
    fixture = await startHbone({ trustDomains: ['cluster.local', 'other.domain'] });
    const pool = fixture.pool({ clientContext: await fixture.ca.context(workload('frontend', 'client', 'other.domain')) });
    const stream = await pool.connect(connectOpts(fixture));
    expect(fixture.requests[0]?.peerIdentity).toBe('spiffe://other.domain/ns/frontend/sa/client');
    stream.destroy();
  });

  it('refuses a server whose identity is not the expected one', async () => {
    fixture = await startHbone();
    const err = await fixture.pool().connect(connectOpts(fixture, { expectedIdentities: ['spiffe://cluster.local/ns/backend/sa/other'] })).catch((e: unknown) => e);
    expect(isAmeshError(err, 'AMESH_HBONE_PEER_REJECTED')).toBe(true);
    expect((err as Error).message).toContain(SERVER_URI);
    expect(fixture.requests).toHaveLength(0);
  });

  it('checks the server identity without building Node’s detailed certificate chain, reads the peer certificate once, and gives the socket its own method back', async () => {
    fixture = await startHbone();
    const spy = vi.spyOn(tls.TLSSocket.prototype, 'getPeerCertificate');
    try {
      const stream = (await fixture.pool().connect(connectOpts(fixture))) as http2.ClientHttp2Stream;
      expect(spy.mock.calls.filter((args) => args[0] === true)).toEqual([]);
      const socket = stream.session?.socket as tls.TLSSocket;
      // One object serves both the identity check and the connection's notAfter. (session.socket
      // is a proxy of the client's socket: tell the two ends apart by their local port.)
      const clientCalls = spy.mock.contexts.filter((self) => (self as tls.TLSSocket).localPort === socket.localPort);
      expect(clientCalls).toHaveLength(1);
      expect(Object.hasOwn(socket, 'getPeerCertificate')).toBe(false);
      expect(socket.getPeerCertificate(true).issuerCertificate).toBeDefined();
      stream.destroy();
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses a server certificate from another CA', async () => {
    fixture = await startHbone();
    const other = await createTestCa();
    const otherServer = await other.context('spiffe://cluster.local/ns/backend/sa/server');
    fixture.contextFor = async () => otherServer;
    const err = await fixture.pool().connect(connectOpts(fixture)).catch((e: unknown) => e);
    expect(isAmeshError(err, 'AMESH_HBONE_PEER_REJECTED')).toBe(true);
    expect(fixture.requests).toHaveLength(0);
  });

  it('closes connections to an address it has no certificate for', async () => {
    fixture = await startHbone();
    fixture.contextFor = async () => undefined;
    const err = await fixture.pool().connect(connectOpts(fixture)).catch((e: unknown) => e);
    expect(isAmeshError(err, 'AMESH_HBONE_TLS_FAILED')).toBe(true);
    expect(fixture.server.stats().rejectedConnections).toBe(1);
  });

  it('refuses a client that does not offer h2', async () => {
    fixture = await startHbone();
    const socket = tls.connect({ host: '127.0.0.1', port: fixture.port, secureContext: await fixture.ca.context(CLIENT_ID), ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('error', (e) => resolve(`error ${e.message}`));
      socket.once('close', () => resolve('closed'));
    });
    expect(outcome).toMatch(/closed|error/);
    expect(fixture.requests).toHaveLength(0);
  });

  it('refuses TLS 1.2', async () => {
    fixture = await startHbone();
    const id = await fixture.ca.issue(CLIENT_ID);
    const socket = tls.connect({ host: '127.0.0.1', port: fixture.port, key: id.keyPem, cert: id.chainPem[0], maxVersion: 'TLSv1.2', ALPNProtocols: ['h2'], rejectUnauthorized: false });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('secureConnect', () => resolve('connected'));
      socket.once('error', (e) => resolve(`error ${e.message}`));
      socket.once('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('connected');
  });

  it('refuses a client without a certificate', async () => {
    fixture = await startHbone();
    const socket = tls.connect({ host: '127.0.0.1', port: fixture.port, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('close', resolve));
    expect(fixture.requests).toHaveLength(0);
    await vitestPoll(() => fixture!.server.stats().rejectedConnections === 1);
  });
});

describe('HBONE server lifecycle', () => {
  it('drain lets open tunnels finish and refuses new connections', async () => {
    fixture = await startHbone();
    const pool = fixture.pool();
    const stream = await pool.connect(connectOpts(fixture));
    const drained = fixture.server.drain(5_000);
    // The open tunnel still works.
    const reply = readAll(stream);
    stream.end('still here');
    expect((await reply).toString()).toBe('still here');
    await drained;
    expect(fixture.server.stats().sessions).toBe(0);
    const err = await fixture.pool().connect(connectOpts(fixture)).catch((e: unknown) => e);
    expect(isAmeshError(err)).toBe(true);
  });

  it('closes a connection whose TLS handshake never finishes', async () => {
    fixture = await startHbone();
    const server = new HboneServer({
      trustDomains: () => ['cluster.local'],
      secureContextFor: async () => fixture!.serverContext,
      onConnect: async () => ({ status: 503, reason: 'unused' }),
      logger: silentLogger,
      handshakeTimeoutMs: 50,
    });
    const listener = net.createServer((s) => server.handleConnection(s));
    const port = await listen(listener);
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    await once(socket, 'close');
    expect(server.stats().rejectedConnections).toBe(1);
    listener.close();
  });
});

/** Bounded poll for a synchronous condition (no sleeps). */
async function vitestPoll(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}
