import { beforeAll, describe, expect, it, vi } from 'vitest';
import { isAmeshError, type AmeshError } from '../../src/errors/amesh-error.js';
import { backoffDelay, DEFAULT_BACKOFF } from '../../src/identity/certificate-manager.js';
import type { CertificateProvider, IssuedCertificate } from '../../src/identity/certificate-provider.js';
import { toSpiffeUri } from '../../src/identity/spiffe.js';
import { FakeCertificateProvider, certificateManagerUnderTest } from '../helpers/fake-certificates.js';
import { createTestCa, workload } from '../helpers/pki.js';

const ID = workload('default', 'reviews');
let template: IssuedCertificate;
beforeAll(async () => {
  template = await (await createTestCa()).issue(ID);
});

const build = certificateManagerUnderTest();

async function rejection(p: Promise<unknown>): Promise<AmeshError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isAmeshError(err)) throw new Error(`expected an AmeshError, got ${String(err)}`);
  return err;
}

describe('backoffDelay', () => {
  it('doubles from 500 ms and is capped at 150 s (no jitter at the midpoint)', () => {
    const mid = () => 0.5;
    const seq = Array.from({ length: 12 }, (_, i) => backoffDelay(i + 1, DEFAULT_BACKOFF, mid));
    expect(seq).toEqual([500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 150000, 150000, 150000]);
  });

  it('stays within ±20 % and never above the cap', () => {
    for (let attempt = 1; attempt <= 15; attempt++) {
      const base = Math.min(500 * 2 ** (attempt - 1), 150_000);
      for (const r of [0, 0.25, 0.5, 0.75, 0.999999]) {
        const d = backoffDelay(attempt, DEFAULT_BACKOFF, () => r);
        expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
        expect(d).toBeLessThanOrEqual(Math.min(Math.ceil(base * 1.2), 150_000));
      }
    }
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0)).toBe(400);
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0.999999)).toBe(600);
  });
});

describe('CertificateManager', () => {
  it('fetches once for concurrent callers (single flight) and shares one SecureContext', async () => {
    const provider = new FakeCertificateProvider(template);
    let release!: () => void;
    provider.gate = new Promise((r) => (release = r));
    const m = build(provider);
    const all = Promise.all([m.get(ID), m.get(ID), m.secureContext(ID), m.secureContext(ID), m.get({ ...ID })]);
    await vi.advanceTimersByTimeAsync(0);
    expect(provider.calls).toHaveLength(1);
    provider.gate = undefined;
    release();
    const [a, b, ctxA, ctxB, c] = await all;
    expect(a).toBe(b);
    expect(a).toBe(c);
    expect(ctxA).toBe(ctxB);
    expect(await m.secureContext(ID)).toBe(ctxA);
    expect(provider.calls).toHaveLength(1);
  });

  it('rotates at half of the lifetime and rebuilds the SecureContext only then', async () => {
    const provider = new FakeCertificateProvider(template);
    const m = build(provider);
    const first = await m.get(ID);
    const ctx1 = await m.secureContext(ID);
    // Counted from arrival, not from the backdated notBefore.
    const renewAt = Date.now() + (first.notAfter.getTime() - Date.now()) / 2;
    await vi.advanceTimersByTimeAsync(renewAt - Date.now() - 1);
    expect(provider.calls).toHaveLength(1);
    expect(await m.secureContext(ID)).toBe(ctx1);
    await vi.advanceTimersByTimeAsync(1);
    expect(provider.calls).toHaveLength(2);
    expect(provider.calls[1]).toBe(renewAt);
    const second = await m.get(ID);
    expect(second).not.toBe(first);
    const ctx2 = await m.secureContext(ID);
    expect(ctx2).not.toBe(ctx1);
    expect(await m.secureContext(ID)).toBe(ctx2);
    // And again half-way through the new certificate's life.
    await vi.advanceTimersByTimeAsync((second.notAfter.getTime() - Date.now()) / 2);
    expect(provider.calls).toHaveLength(3);
  });

  it('honours rotateFraction', async () => {
    const provider = new FakeCertificateProvider(template);
    const m = build(provider, { rotateFraction: 0.8 });
    const cert = await m.get(ID);
    const renewAt = Date.now() + 0.8 * (cert.notAfter.getTime() - Date.now());
    await vi.advanceTimersByTimeAsync(renewAt - Date.now() - 1);
    expect(provider.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(provider.calls).toHaveLength(2);
  });

  it('retries with exponential backoff (500 ms ×2, ±20 %, cap 150 s) while the CA fails', async () => {
    const provider = new FakeCertificateProvider(template);
    provider.failing = true;
    const m = build(provider);
    const err = await rejection(m.get(ID));
    expect(err.code).toBe('AMESH_CERT_FAILED');
    expect(err.message).toContain('CA unreachable');
    await vi.advanceTimersByTimeAsync(20 * 60_000);
    const gaps = provider.calls.slice(1).map((t, i) => t - (provider.calls[i] as number));
    expect(gaps.length).toBeGreaterThan(10);
    gaps.forEach((gap, i) => {
      const base = Math.min(500 * 2 ** i, 150_000);
      expect(gap, `retry ${i + 1}`).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
      expect(gap, `retry ${i + 1}`).toBeLessThanOrEqual(Math.min(Math.ceil(base * 1.2), 150_000));
    });
    // Jitter really varies (Math.random): not all the capped gaps are identical.
    const capped = gaps.filter((g, i) => 500 * 2 ** i >= 150_000);
    expect(new Set(capped).size).toBeGreaterThan(1);
    const snap = m.snapshot()[0];
    expect(snap?.state).toBe('Unavailable');
    expect(snap?.failures).toBe(provider.calls.length);
    expect(snap?.lastError).toContain('CA unreachable');
  });

  it('fails fast while a retry is pending, then recovers on the scheduled retry', async () => {
    const provider = new FakeCertificateProvider(template);
    provider.failing = true;
    const m = build(provider, { random: () => 0.5 });
    await rejection(m.get(ID));
    expect(provider.calls).toHaveLength(1);
    // During the backoff callers do not hammer the CA.
    expect((await rejection(m.secureContext(ID))).code).toBe('AMESH_CERT_FAILED');
    expect(provider.calls).toHaveLength(1);
    provider.failing = false;
    await vi.advanceTimersByTimeAsync(500);
    expect(provider.calls).toHaveLength(2);
    await expect(m.get(ID)).resolves.toMatchObject({ identity: toSpiffeUri(ID) });
    expect(m.snapshot()[0]).toMatchObject({ state: 'Available', failures: 0 });
  });

  it('keeps serving the still-valid certificate while renewal fails, and stops at expiry', async () => {
    const provider = new FakeCertificateProvider(template);
    const m = build(provider);
    const cert = await m.get(ID);
    const ctx = await m.secureContext(ID);
    provider.failing = true;
    const renewAt = Date.now() + (cert.notAfter.getTime() - Date.now()) / 2;
    await vi.advanceTimersByTimeAsync(renewAt - Date.now() + 10_000);
    expect(provider.calls.length).toBeGreaterThan(3); // renewal + a few retries
    expect(await m.get(ID)).toBe(cert);
    expect(await m.secureContext(ID)).toBe(ctx);
    expect(m.snapshot()[0]).toMatchObject({ state: 'Available', lastError: expect.stringContaining('CA unreachable') });
    // Past notAfter nothing is served any more.
    await vi.advanceTimersByTimeAsync(cert.notAfter.getTime() - Date.now());
    expect((await rejection(m.get(ID))).code).toBe('AMESH_CERT_FAILED');
    expect(m.snapshot()[0]?.state).toBe('Unavailable');
    // The CA comes back: the next retry (at most 150 s away) restores service.
    provider.failing = false;
    await vi.advanceTimersByTimeAsync(150_000);
    const renewed = await m.get(ID);
    expect(renewed).not.toBe(cert);
    expect(renewed.notAfter.getTime()).toBeGreaterThan(Date.now());
  });

  it('prefetches in the background, forgets on request and cancels its timers', async () => {
    const provider = new FakeCertificateProvider(template);
    const m = build(provider);
    m.prefetch(ID);
    m.prefetch(ID);
    await vi.advanceTimersByTimeAsync(0);
    expect(provider.calls).toHaveLength(1);
    expect(m.snapshot()).toEqual([
      expect.objectContaining({ identity: 'spiffe://cluster.local/ns/default/sa/reviews', state: 'Available', chain: template.chainPem, failures: 0 }),
    ]);
    expect(vi.getTimerCount()).toBe(1); // the rotation timer
    m.forget(toSpiffeUri(ID));
    expect(vi.getTimerCount()).toBe(0);
    expect(m.snapshot()).toEqual([]);
    m.prefetch(ID);
    await vi.advanceTimersByTimeAsync(0);
    m.forget(ID);
    expect(m.snapshot()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses invalid identities without retrying them forever', async () => {
    const provider = new FakeCertificateProvider(template);
    const m = build(provider);
    const bad = { trustDomain: 'cluster.local', namespace: 'a/b', serviceAccount: 'x' };
    expect((await rejection(m.get(bad))).code).toBe('AMESH_IDENTITY_INVALID');
    expect(() => m.prefetch(bad)).not.toThrow();
    expect(provider.calls).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects a provider answer for another identity', async () => {
    const provider: CertificateProvider = { fetch: async () => ({ ...template, identity: 'spiffe://cluster.local/ns/x/sa/y' }) };
    const m = build(provider);
    expect((await rejection(m.get(ID))).message).toContain('spiffe://cluster.local/ns/x/sa/y');
  });

  it('stops everything on close', async () => {
    const provider = new FakeCertificateProvider(template);
    const m = build(provider);
    await m.get(ID);
    m.close();
    expect(vi.getTimerCount()).toBe(0);
    expect((await rejection(m.get(ID))).code).toBe('AMESH_SHUTTING_DOWN');
  });

  it('uses injected clock and timers', async () => {
    const provider = new FakeCertificateProvider(template);
    const scheduled: number[] = [];
    const m = build(provider, {
      clock: () => Date.now(),
      timers: {
        setTimeout: (_fn, ms) => {
          scheduled.push(ms);
          return scheduled.length;
        },
        clearTimeout: () => undefined,
      },
    });
    const cert = await m.get(ID);
    expect(scheduled).toEqual([(cert.notAfter.getTime() - Date.now()) / 2]);
  });
});

describe('default timers', () => {
  it('are unref’d so certificates never keep the process alive', async () => {
    vi.useRealTimers();
    const provider = new FakeCertificateProvider(template);
    const m = build(provider);
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await m.get(ID);
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(after).toBe(before);
  });
});
