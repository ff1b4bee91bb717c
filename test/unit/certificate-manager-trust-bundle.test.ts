// CertificateManager in CA mode, with fake timers: a short-lived certificate renewed at half-life,
// jittered backoff while the CA is away, serving until expiry, forgetting, and trust bundle
// updates rebuilding every identity's SecureContext.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { AmeshError } from '../../src/errors/amesh-error.js';
import type { CertificateManager } from '../../src/identity/certificate-manager.js';
import type { CertificateProvider, IssuedCertificate } from '../../src/identity/certificate-provider.js';
import { parseCertificate } from '../../src/identity/pki.js';
import { toSpiffeUri, type WorkloadIdentity } from '../../src/identity/spiffe.js';
import { certificateManagerUnderTest } from '../helpers/fake-certificates.js';
import { createTestCa, workload, type TestCa } from '../helpers/pki.js';

const A = workload('default', 'a');
const B = workload('default', 'b');
const LIFETIME_MS = 120_000;

/** Real certificates for A and B (so contexts build); validity dates under test control. */
class ShortLivedProvider implements CertificateProvider {
  calls: Array<{ at: number; identity: string }> = [];
  failing = false;
  constructor(private readonly issued: Map<string, IssuedCertificate>) {}
  async fetch(id: WorkloadIdentity): Promise<IssuedCertificate> {
    const identity = toSpiffeUri(id);
    this.calls.push({ at: Date.now(), identity });
    if (this.failing) throw new AmeshError('AMESH_CA_UNAVAILABLE', 'CA 127.0.0.1:15012 failed: UNAVAILABLE: connection refused');
    const cert = this.issued.get(identity);
    if (!cert) throw new Error(`no fixture for ${identity}`);
    const now = Date.now();
    return { ...cert, notBefore: new Date(now), notAfter: new Date(now + LIFETIME_MS) };
  }
}

let oldCa: TestCa;
let newCa: TestCa;
let fixtures: Map<string, IssuedCertificate>;
beforeAll(async () => {
  [oldCa, newCa] = await Promise.all([createTestCa(), createTestCa()]);
  fixtures = new Map(await Promise.all([A, B].map(async (id) => [toSpiffeUri(id), await oldCa.issue(id)] as const)));
});

const buildManager = certificateManagerUnderTest();
const build = (provider: CertificateProvider, random = () => 0.5): CertificateManager => buildManager(provider, { random });

const oldRoot = (): string => oldCa.ca.certPem;
const newRoot = (): string => newCa.ca.certPem;

describe('CertificateManager with a short-lived CA certificate', () => {
  it('refetches a 2-minute certificate at 60 s', async () => {
    const provider = new ShortLivedProvider(fixtures);
    const m = build(provider);
    await m.get(A);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(provider.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(provider.calls).toHaveLength(2);
    expect((provider.calls[1]?.at ?? 0) - (provider.calls[0]?.at ?? 0)).toBe(60_000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(provider.calls).toHaveLength(3);
  });

  it.each([
    ['lowest jitter', 0, [400, 800, 1600, 3200]],
    ['highest jitter', 0.999999, [600, 1200, 2400, 4800]],
  ])('backs off within ±20 %% (%s)', async (_name, random, expected) => {
    const provider = new ShortLivedProvider(fixtures);
    provider.failing = true;
    const m = build(provider, () => random);
    m.prefetch(A);
    await vi.advanceTimersByTimeAsync(20_000);
    const gaps = provider.calls.slice(1, 5).map((c, i) => c.at - (provider.calls[i]?.at ?? 0));
    expect(gaps).toEqual(expected);
  });

  it('serves the valid certificate while the CA is unreachable, then Unavailable at expiry, then recovers', async () => {
    const provider = new ShortLivedProvider(fixtures);
    const m = build(provider);
    const cert = await m.get(A);
    const ctx = await m.secureContext(A);
    provider.failing = true;
    await vi.advanceTimersByTimeAsync(60_000 + 30_000);
    expect(provider.calls.length).toBeGreaterThan(5);
    expect(await m.get(A)).toBe(cert);
    expect(await m.secureContext(A)).toBe(ctx);
    expect(m.snapshot()[0]).toMatchObject({ state: 'Available', lastError: expect.stringContaining('UNAVAILABLE') });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(m.snapshot()[0]?.state).toBe('Unavailable');
    await expect(m.get(A)).rejects.toMatchObject({ code: 'AMESH_CERT_FAILED', message: expect.stringContaining('UNAVAILABLE') });
    provider.failing = false;
    await vi.advanceTimersByTimeAsync(150_000);
    expect(m.snapshot()[0]?.state).toBe('Available');
    expect((await m.get(A)).notAfter.getTime()).toBeGreaterThan(Date.now());
  });

  it('forgets an identity when its last workload leaves: no more fetches', async () => {
    const provider = new ShortLivedProvider(fixtures);
    const m = build(provider);
    m.prefetch(A);
    m.prefetch(B);
    await vi.advanceTimersByTimeAsync(0);
    m.forget(A);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(provider.calls.filter((c) => c.identity === toSpiffeUri(A))).toHaveLength(1);
    expect(provider.calls.filter((c) => c.identity === toSpiffeUri(B)).length).toBeGreaterThan(5);
    expect(m.snapshot().map((s) => s.identity)).toEqual([toSpiffeUri(B)]);
  });

  it('reports serial, validity, state and identity for /config_dump', async () => {
    const provider = new ShortLivedProvider(fixtures);
    const m = build(provider);
    expect(m.snapshot()).toEqual([]);
    m.prefetch(A);
    expect(m.snapshot()[0]).toMatchObject({ identity: toSpiffeUri(A), state: 'Initializing' });
    await vi.advanceTimersByTimeAsync(0);
    const cert = await m.get(A);
    expect(m.snapshot()[0]).toMatchObject({
      identity: toSpiffeUri(A),
      state: 'Available',
      serial: parseCertificate(cert.chainPem[0] as string).serial,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
    });
  });
});

describe('CertificateManager.updateTrustBundle', () => {
  it('rebuilds every identity’s SecureContext with the new roots', async () => {
    const m = build(new ShortLivedProvider(fixtures));
    const [ctxA, ctxB] = [await m.secureContext(A), await m.secureContext(B)];
    const certA = await m.get(A);
    m.updateTrustBundle([oldRoot(), newRoot()]);
    const [ctxA2, ctxB2] = [await m.secureContext(A), await m.secureContext(B)];
    expect(ctxA2).not.toBe(ctxA);
    expect(ctxB2).not.toBe(ctxB);
    // Same key and leaf, new roots; the rotation schedule is untouched.
    const certA2 = await m.get(A);
    expect(certA2.keyPem).toBe(certA.keyPem);
    expect(certA2.chainPem).toEqual(certA.chainPem);
    expect(certA2.rootsPem).toEqual([oldRoot(), newRoot()]);
    expect(m.snapshot().map((s) => s.roots)).toEqual([
      [oldRoot(), newRoot()],
      [oldRoot(), newRoot()],
    ]);
    expect(vi.getTimerCount()).toBe(2);
    // Stable until the next change.
    expect(await m.secureContext(A)).toBe(ctxA2);
  });

  it('applies the bundle to certificates fetched afterwards, whatever roots the provider sent', async () => {
    const provider = new ShortLivedProvider(fixtures);
    const m = build(provider);
    m.updateTrustBundle([newRoot()]);
    expect((await m.get(A)).rootsPem).toEqual([newRoot()]);
    await vi.advanceTimersByTimeAsync(60_000); // rotation
    expect(provider.calls).toHaveLength(2);
    expect((await m.get(A)).rootsPem).toEqual([newRoot()]);
  });

  it('ignores an empty bundle', async () => {
    const m = build(new ShortLivedProvider(fixtures));
    const ctx = await m.secureContext(A);
    m.updateTrustBundle([]);
    expect(await m.secureContext(A)).toBe(ctx);
    expect((await m.get(A)).rootsPem).toEqual([oldRoot()]);
  });
});
