/**
 * IstioCaProvider against a fake mesh CA (gRPC over TLS on loopback): what it sends, what it
 * accepts, how CA refusals and outages surface, and — with the CertificateManager on top — that
 * a CA outage keeps the still-valid certificate in service and issuance resumes afterwards.
 */
import { createPrivateKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAmeshError, type AmeshError } from '../../src/errors/amesh-error.js';
import { IstioCaProvider, splitHostPort, type IstioCaProviderOptions } from '../../src/identity/ca-client.js';
import { CertificateManager } from '../../src/identity/certificate-manager.js';
import { parseCertificate } from '../../src/identity/pki.js';
import { toSpiffeUri } from '../../src/identity/spiffe.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { FAKE_CA_SERVER_NAME, startFakeCa, type FakeCa } from '../helpers/fake-ca.js';
import { workload } from '../helpers/pki.js';

const ID = workload('default', 'reviews');
const URI = toSpiffeUri(ID);
/** Fast gRPC reconnects so the comeback test does not wait for gRPC's own backoff. */
const FAST_RECONNECT = { initial: 50, max: 200 };

let ca: FakeCa;
const cleanup: Array<() => void> = [];
beforeEach(async () => {
  ca = await startFakeCa();
});
afterEach(async () => {
  for (const fn of cleanup.splice(0)) fn();
  await ca.close();
});

function provider(extra: Partial<IstioCaProviderOptions> = {}): IstioCaProvider {
  const p = new IstioCaProvider({
    address: ca.address,
    rootCertFile: ca.rootCertFile,
    tokenFile: ca.tokenFile,
    clusterId: 'Kubernetes',
    trustBundle: () => [ca.root.certPem],
    timeoutMs: 5000,
    reconnectBackoffMs: FAST_RECONNECT,
    logger: silentLogger,
    ...extra,
  });
  cleanup.push(() => p.close());
  return p;
}

async function rejection(p: Promise<unknown>): Promise<AmeshError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isAmeshError(err)) throw new Error(`expected an AmeshError, got ${String(err)}`);
  return err;
}

describe('IstioCaProvider', () => {
  it('gets a chain for the identity, sending token, cluster id and ImpersonatedIdentity', async () => {
    const issued = await provider({ ttlSeconds: 7200 }).fetch(ID);
    expect(issued.identity).toBe(URI);
    expect(issued.chainPem).toHaveLength(2);
    expect(issued.chainPem[1]?.trim()).toBe(ca.root.certPem.trim());
    expect(issued.rootsPem).toEqual([ca.root.certPem]);
    const leaf = parseCertificate(issued.chainPem[0] as string);
    expect(leaf.uriSans).toEqual([URI]);
    expect(leaf.x509.checkPrivateKey(createPrivateKey(issued.keyPem))).toBe(true);
    expect(issued.notAfter.getTime() - Date.now()).toBeGreaterThan(7100_000);
    expect(issued.notAfter).toEqual(leaf.notAfter);
    expect(ca.requests).toEqual([{ authorization: 'Bearer token-1', clusterId: 'Kubernetes', impersonated: URI, validityDuration: 7200 }]);
  });

  it('verifies the CA by a TLS name override (dialling by IP, certificate for the service name)', async () => {
    const issued = await provider({ serverName: FAKE_CA_SERVER_NAME }).fetch(ID);
    expect(issued.identity).toBe(URI);
    const wrongName = await rejection(provider({ serverName: 'not-the-ca.example' }).fetch(ID));
    expect(wrongName.code).toBe('AMESH_CA_UNAVAILABLE');
  });

  it('re-reads the token file on every request (the kubelet rotates it)', async () => {
    const p = provider();
    await p.fetch(ID);
    await writeFile(ca.tokenFile, 'token-2');
    await p.fetch(ID);
    expect(ca.requests.map((r) => r.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
    await writeFile(ca.tokenFile, '  \n');
    const empty = await rejection(p.fetch(ID));
    expect(empty.code).toBe('AMESH_CA_CREDENTIALS_UNREADABLE');
    expect(ca.requests).toHaveLength(2);
  });

  it('maps PERMISSION_DENIED to AMESH_CA_REFUSED with the server’s message', async () => {
    ca.behaviour = { kind: 'fail', code: grpc.status.PERMISSION_DENIED, details: 'no pod of default/reviews on node node1' };
    const err = await rejection(provider().fetch(ID));
    expect(err.code).toBe('AMESH_CA_REFUSED');
    expect(err.message).toContain('PERMISSION_DENIED');
    expect(err.message).toContain('no pod of default/reviews on node node1');
    expect(err.message).toContain(URI);
    expect(err.hint).toBeDefined();
  });

  it.each([
    [{ kind: 'other-identity', identity: 'spiffe://cluster.local/ns/default/sa/admin' } as const, 'spiffe://cluster.local/ns/default/sa/admin'],
    [{ kind: 'other-key' } as const, 'another key'],
    [{ kind: 'empty-chain' } as const, 'empty certificate chain'],
  ])('rejects a wrong answer: %j', async (behaviour, fragment) => {
    ca.behaviour = behaviour;
    const err = await rejection(provider().fetch(ID));
    expect(err.code).toBe('AMESH_CA_RESPONSE_INVALID');
    expect(err.message).toContain(fragment);
  });

  it('reports an unreachable CA as AMESH_CA_UNAVAILABLE', async () => {
    ca.setDown(true);
    const err = await rejection(provider().fetch(ID));
    expect(err.code).toBe('AMESH_CA_UNAVAILABLE');
    expect(err.message).toContain('UNAVAILABLE');
  });

  it('rebuilds its channel when the CA root file changes', async () => {
    const p = provider();
    await p.fetch(ID);
    // Roots that do not cover the CA's serving certificate: the new channel cannot verify it.
    await writeFile(ca.rootCertFile, ca.root.certPem);
    expect((await rejection(p.fetch(ID))).code).toBe('AMESH_CA_UNAVAILABLE');
    await writeFile(ca.rootCertFile, ca.servingCaPem + ca.root.certPem);
    expect((await p.fetch(ID)).identity).toBe(URI);
  });

  it('cannot start without the CA root file', async () => {
    const err = await rejection(provider({ rootCertFile: `${ca.dir}/missing.pem` }).fetch(ID));
    expect(err.code).toBe('AMESH_CA_CREDENTIALS_UNREADABLE');
    expect(err.hint).toContain('AMESH_CA_ROOT_CERT_FILE');
  });

  it('falls back to the CA’s root when there is no trust bundle yet', async () => {
    const issued = await provider({ trustBundle: () => [] }).fetch(ID);
    expect(issued.rootsPem.map((p) => p.trim())).toEqual([ca.root.certPem.trim()]);
  });

  it('refuses a malformed address at construction', () => {
    expect(() => provider({ address: 'istiod' })).toThrow(/host:port/);
    expect(splitHostPort('[fd00::1]:15012')).toEqual({ host: 'fd00::1', port: 15012 });
    expect(splitHostPort('istiod.istio-system.svc:15012')).toEqual({ host: 'istiod.istio-system.svc', port: 15012 });
    expect(splitHostPort('a:0')).toBeUndefined();
  });
});

describe('CertificateManager + IstioCaProvider while the CA goes away', () => {
  it('keeps serving the valid certificate, retries with backoff and resumes when the CA is back', async () => {
    // Timers captured so the test decides when rotation and retries fire (no sleeps).
    const scheduled: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
    const m = new CertificateManager({
      provider: provider(),
      logger: silentLogger,
      random: () => 0.5,
      timers: {
        setTimeout: (fn, ms) => {
          const t = { fn, ms, cleared: false };
          scheduled.push(t);
          return t;
        },
        clearTimeout: (t) => {
          (t as { cleared: boolean }).cleared = true;
        },
      },
    });
    cleanup.push(() => m.close());
    const next = (): { fn: () => void; ms: number } => {
      const pending = scheduled.filter((t) => !t.cleared);
      expect(pending).toHaveLength(1);
      const t = pending[0] as { fn: () => void; ms: number; cleared: boolean };
      t.cleared = true;
      return t;
    };
    const first = await m.get(ID);
    const ctx = await m.secureContext(ID);
    const rotation = next();
    expect(rotation.ms).toBeGreaterThan(1700_000); // half of the 1 h lifetime, minus the backdate

    ca.setDown(true);
    rotation.fn();
    await eventually(() => expect(m.snapshot()[0]?.failures).toBe(1), { timeoutMs: 10_000, intervalMs: 20, description: 'first failure' });
    const retry1 = next();
    expect(retry1.ms).toBe(500);
    expect(await m.get(ID)).toBe(first);
    expect(await m.secureContext(ID)).toBe(ctx);
    expect(m.snapshot()[0]).toMatchObject({ state: 'Available', lastError: expect.stringContaining('UNAVAILABLE') });
    // Retry #1 fails too; the next delay doubles.
    retry1.fn();
    await eventually(() => expect(m.snapshot()[0]?.failures).toBe(2), { timeoutMs: 10_000, intervalMs: 20, description: 'second failure' });
    const retry2 = next();
    expect(retry2.ms).toBe(1000);

    ca.setDown(false);
    const before = ca.requests.length;
    retry2.fn();
    await eventually(
      async () => {
        const snap = m.snapshot()[0];
        if (snap?.failures !== 0) {
          // gRPC may still be in its own (fast) reconnect backoff: fire the retry the manager scheduled.
          const pending = scheduled.filter((t) => !t.cleared);
          if (pending.length === 1 && m.snapshot()[0]?.failures) next().fn();
          throw new Error(`still failing: ${snap?.lastError}`);
        }
      },
      { timeoutMs: 15_000, intervalMs: 50, description: 'issuance resumed' },
    );
    expect(ca.requests.length).toBeGreaterThan(before);
    const renewed = await m.get(ID);
    expect(renewed).not.toBe(first);
    expect(m.snapshot()[0]).toMatchObject({ state: 'Available', failures: 0, serial: parseCertificate(renewed.chainPem[0] as string).serial });
  });
});
