/**
 * A mesh root rotation seen through real TLS handshakes on loopback: a server that takes its
 * SecureContext from the CertificateManager per connection (as HboneServer does) refuses a client
 * certified by the new root until the trust bundle update, accepts it right after, keeps
 * accepting old-root clients while both roots are in the bundle, and drops them once only the
 * new root is left.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildSecureContext, CertificateManager } from '../../src/identity/certificate-manager.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestCa, workload, type TestCa } from '../helpers/pki.js';

const SERVER = workload('backend', 'server');
const CLIENT = workload('frontend', 'client');

let oldCa: TestCa;
let newCa: TestCa;
beforeAll(async () => {
  [oldCa, newCa] = await Promise.all([createTestCa(), createTestCa()]);
});

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn();
});

/** Resolves with what the server concluded about each connection: 'accepted' or the TLS error code. */
async function meshServer(context: () => Promise<tls.SecureContext>): Promise<{ port: number; next: () => Promise<string> }> {
  const outcomes: Array<Promise<string>> = [];
  const server = net.createServer((raw) => {
    outcomes.push(
      context().then(
        (secureContext) =>
          new Promise<string>((resolve) => {
            const socket = new tls.TLSSocket(raw, { isServer: true, secureContext, requestCert: true, rejectUnauthorized: true });
            // A hand-made server TLSSocket does not act on the verify result: read it as HboneServer does.
            socket.once('secure', () => {
              const verifyError = (socket as unknown as { ssl?: { verifyError?: () => (Error & { code?: string }) | null } }).ssl?.verifyError?.();
              resolve(verifyError ? (verifyError.code ?? verifyError.message) : socket.getPeerCertificate()?.raw ? 'accepted' : 'no client certificate');
              socket.end();
            });
            socket.once('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
            socket.once('close', () => resolve('closed'));
          }),
      ),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => server.close());
  let taken = 0;
  const next = async (): Promise<string> => {
    for (let i = 0; i < 200 && outcomes.length <= taken; i++) await new Promise((r) => setImmediate(r));
    const outcome = outcomes[taken++];
    if (!outcome) throw new Error('the server saw no connection');
    return outcome;
  };
  return { port: (server.address() as net.AddressInfo).port, next };
}

/** Handshakes from a client certified by `ca`, trusting both roots (it is the server we test). */
async function handshake(port: number, ca: TestCa): Promise<void> {
  const issued = await ca.issue(CLIENT);
  const secureContext = buildSecureContext({ ...issued, rootsPem: [oldCa.ca.certPem, newCa.ca.certPem] });
  const socket = tls.connect({ host: '127.0.0.1', port, secureContext, checkServerIdentity: () => undefined });
  cleanup.push(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.resume();
  await Promise.race([once(socket, 'secureConnect'), once(socket, 'close')]);
}

describe('trust bundle rotation', () => {
  it('accepts new-root peers right after updateTrustBundle, old-root peers while both roots are trusted', async () => {
    const m = new CertificateManager({ provider: oldCa.provider, logger: silentLogger });
    cleanup.push(() => m.close());
    const before = await m.secureContext(SERVER);
    const server = await meshServer(() => m.secureContext(SERVER));

    // Before the update: the server's context trusts the old root only.
    await handshake(server.port, newCa);
    expect(await server.next()).toMatch(/^(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE|SELF_SIGNED_CERT_IN_CHAIN)$/);
    await handshake(server.port, oldCa);
    expect(await server.next()).toBe('accepted');

    // Rotation step 1: both roots. No new certificate needed; the next handshake uses the new context.
    m.updateTrustBundle([oldCa.ca.certPem, newCa.ca.certPem]);
    expect(await m.secureContext(SERVER)).not.toBe(before);
    await handshake(server.port, newCa);
    expect(await server.next()).toBe('accepted');
    await handshake(server.port, oldCa);
    expect(await server.next()).toBe('accepted');

    // Step 2: the old root is retired.
    m.updateTrustBundle([newCa.ca.certPem]);
    await handshake(server.port, oldCa);
    expect(await server.next()).toMatch(/^(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE|SELF_SIGNED_CERT_IN_CHAIN)$/);
    await handshake(server.port, newCa);
    expect(await server.next()).toBe('accepted');
  });
});
