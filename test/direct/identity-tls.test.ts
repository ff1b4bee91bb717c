/**
 * Certificates from CertificateManager + LocalCaProvider in real TLS handshakes on loopback:
 * Istio-shaped certificates (empty subject, URI SAN only) are accepted by Node's TLS both as
 * server and as client certificates, the SecureContext is TLS 1.3 + AES-GCM only, peers from
 * another CA are rejected, and a rotated certificate is served through a new context.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CertificateManager } from '../../src/identity/certificate-manager.js';
import { LocalCaProvider, type IssuedCertificate } from '../../src/identity/certificate-provider.js';
import { parseCertificate } from '../../src/identity/pki.js';
import { identityFromPeerCertificate } from '../../src/identity/spiffe.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestCa, workload, type TestCa } from '../helpers/pki.js';

const SERVER = workload('backend', 'server');
const CLIENT = workload('frontend', 'client');
const AES_GCM = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'];

let ca: TestCa;
let foreign: TestCa;
beforeAll(async () => {
  [ca, foreign] = await Promise.all([createTestCa(), createTestCa()]);
});

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn();
});

function manager(provider = ca.provider): CertificateManager {
  const m = new CertificateManager({ provider, logger: silentLogger });
  cleanup.push(() => m.close());
  return m;
}

/** A tls.Server built from issued PEMs that requires a client certificate from the mesh roots. */
async function tlsServer(issued: IssuedCertificate): Promise<{ port: number; accepted: Promise<tls.TLSSocket>; servernames: Array<string | false> }> {
  const servernames: Array<string | false> = [];
  let resolveAccepted!: (s: tls.TLSSocket) => void;
  const accepted = new Promise<tls.TLSSocket>((r) => (resolveAccepted = r));
  const server = tls.createServer(
    { key: issued.keyPem, cert: issued.chainPem[0], ca: issued.rootsPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (socket) => {
      servernames.push((socket as tls.TLSSocket & { servername: string | false }).servername);
      socket.on('error', () => {});
      socket.end();
      resolveAccepted(socket);
    },
  );
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, accepted, servernames };
}

/** A server presenting a SecureContext on a hand-made TLSSocket, as HboneServer does. */
async function contextServer(secureContext: tls.SecureContext): Promise<number> {
  const server = net.createServer((raw) => {
    const socket = new tls.TLSSocket(raw, { isServer: true, secureContext, requestCert: true, rejectUnauthorized: true });
    socket.on('error', () => {});
    socket.once('secure', () => socket.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

function connect(opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', ...opts }, () => resolve(socket));
    socket.once('error', reject);
    cleanup.push(() => socket.destroy());
  });
}

describe('mesh certificates in TLS', () => {
  it('are accepted by Node TLS on both sides despite the empty subject', async () => {
    const m = manager();
    const server = await tlsServer(await ca.issue(SERVER));
    const client = await connect({
      port: server.port,
      secureContext: await m.secureContext(CLIENT),
      checkServerIdentity: () => undefined,
    });
    expect(client.authorized).toBe(true);
    expect(client.getProtocol()).toBe('TLSv1.3');
    expect(AES_GCM).toContain(client.getCipher().standardName);
    const peer = client.getPeerCertificate();
    expect(Object.keys(peer.subject ?? {})).toEqual([]); // empty subject
    expect(identityFromPeerCertificate(peer)).toEqual(['spiffe://cluster.local/ns/backend/sa/server']);

    const accepted = await server.accepted;
    expect(accepted.authorized).toBe(true);
    expect(identityFromPeerCertificate(accepted.getPeerCertificate())).toEqual(['spiffe://cluster.local/ns/frontend/sa/client']);
    // No servername given → no SNI sent.
    expect(server.servernames).toEqual([false]);
  });

  it('verifies the server against the mesh roots only', async () => {
    const m = manager();
    const rogue = await tlsServer(await foreign.issue(SERVER));
    // OpenSSL may append the foreign root to the server's chain, hence two possible codes.
    await expect(connect({ port: rogue.port, secureContext: await m.secureContext(CLIENT), checkServerIdentity: () => undefined })).rejects.toMatchObject({
      code: expect.stringMatching(/^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/),
    });
  });

  it('is refused by a mesh server when it comes from another CA', async () => {
    const server = await tlsServer(await ca.issue(SERVER));
    const outsider = manager(foreign.provider);
    // TLS 1.3: the client learns of the rejection after its handshake, as an alert or a close.
    const client = await connect({ port: server.port, secureContext: await outsider.secureContext(CLIENT), rejectUnauthorized: false });
    const outcome = await new Promise<string>((resolve) => {
      client.once('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
      client.once('close', () => resolve('closed'));
      client.resume();
    });
    expect(outcome).toMatch(/ALERT|ECONNRESET|closed/);
    expect(await Promise.race([server.accepted.then(() => 'accepted'), new Promise((r) => setImmediate(() => r('not accepted')))])).toBe('not accepted');
  });

  it('offers TLS 1.3 only', async () => {
    const m = manager();
    const port = await contextServer(await m.secureContext(SERVER));
    const issued = await ca.issue(CLIENT);
    await expect(
      connect({ port, key: issued.keyPem, cert: issued.chainPem[0], ca: issued.rootsPem, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined }),
    ).rejects.toThrow(/version|protocol/i);
    const ok = await connect({ port, key: issued.keyPem, cert: issued.chainPem[0], ca: issued.rootsPem, checkServerIdentity: () => undefined });
    expect(ok.getProtocol()).toBe('TLSv1.3');
  });

  it('offers AES-GCM suites only', async () => {
    const m = manager();
    const port = await contextServer(await m.secureContext(SERVER));
    const issued = await ca.issue(CLIENT);
    const base = { port, key: issued.keyPem, cert: issued.chainPem[0], ca: issued.rootsPem, checkServerIdentity: () => undefined };
    await expect(connect({ ...base, ciphers: 'TLS_CHACHA20_POLY1305_SHA256' })).rejects.toThrow(/handshake|cipher|alert/i);
    for (const suite of AES_GCM) {
      const ok = await connect({ ...base, ciphers: suite });
      expect(ok.getCipher().standardName).toBe(suite);
    }
  });

  it('serves a rotated certificate through a new SecureContext', async () => {
    const fired: Array<() => void> = [];
    const m = new CertificateManager({
      provider: new LocalCaProvider({ ca: ca.ca, ttlSeconds: 3600 }),
      logger: silentLogger,
      timers: { setTimeout: (fn) => fired.push(fn), clearTimeout: () => undefined },
    });
    cleanup.push(() => m.close());
    const first = await m.get(CLIENT);
    const ctx1 = await m.secureContext(CLIENT);
    expect(fired).toHaveLength(1); // the rotation timer
    (fired.shift() as () => void)();
    await new Promise<void>((resolve) => {
      const poll = (): void => void m.get(CLIENT).then((c) => (c !== first ? resolve() : setImmediate(poll)));
      poll();
    });
    const second = await m.get(CLIENT);
    const ctx2 = await m.secureContext(CLIENT);
    expect(ctx2).not.toBe(ctx1);
    expect(parseCertificate(second.chainPem[0] as string).serial).not.toBe(parseCertificate(first.chainPem[0] as string).serial);
    const server = await tlsServer(await ca.issue(SERVER));
    const client = await connect({ port: server.port, secureContext: ctx2, checkServerIdentity: () => undefined });
    expect(client.authorized).toBe(true);
    const seen = (await server.accepted).getPeerCertificate();
    expect(seen.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(parseCertificate(second.chainPem[0] as string).serial.replace(/^0+/, ''));
  });
});
