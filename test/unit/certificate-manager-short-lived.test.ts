/**
 * Short-lived certificates (issue #12: 60 s certificates in the sandbox's expiry fault test).
 * The CA backdates notBefore by a minute; renewal is counted from arrival, and retry backoff is
 * capped at a tenth of the remaining (once expired: the whole) life, at least 1 s, so the
 * certificate is renewed within seconds of the CA coming back instead of up to 150 s later.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { IssuedCertificate } from '../../src/identity/certificate-provider.js';
import { FakeCertificateProvider, certificateManagerUnderTest } from '../helpers/fake-certificates.js';
import { createTestCa, workload } from '../helpers/pki.js';

const ID = workload('default', 'reviews');
const TTL_MS = 60_000;
const BACKDATE_MS = 60_000;

let template: IssuedCertificate;
beforeAll(async () => {
  template = await (await createTestCa()).issue(ID);
});

const build = certificateManagerUnderTest();

describe('CertificateManager with 60 s certificates', () => {
  it('renews half-way through the life counted from arrival, not at once (backdated notBefore)', async () => {
    const provider = new FakeCertificateProvider(template, { lifetimeMs: TTL_MS, backdateMs: BACKDATE_MS });
    const manager = build(provider, { random: () => 0.5 });
    const start = Date.now();
    await manager.get(ID);
    await vi.advanceTimersByTimeAsync(TTL_MS / 2 - 1);
    expect(provider.calls).toEqual([start]);
    await vi.advanceTimersByTimeAsync(1);
    expect(provider.calls).toEqual([start, start + TTL_MS / 2]);
    // Steady state: one fetch per half-life, not a renewal loop.
    await vi.advanceTimersByTimeAsync(10 * TTL_MS);
    expect(provider.calls).toHaveLength(2 + 20);
  });

  it('retries at most a tenth of the remaining life apart (min 1 s) and renews within 6 s of the CA coming back after expiry', async () => {
    const provider = new FakeCertificateProvider(template, { lifetimeMs: TTL_MS, backdateMs: BACKDATE_MS });
    const manager = build(provider, { random: () => 0.999999 });
    const cert = await manager.get(ID);
    provider.failing = true;
    // The CA stays away for 3 minutes after the renewal was due: the uncapped backoff would be at 64–128 s by then.
    const cutAt = Date.now() + TTL_MS / 2;
    await vi.advanceTimersByTimeAsync(TTL_MS / 2 + 180_000);
    const retries = provider.calls.filter((t) => t >= cutAt);
    const gaps = retries.slice(1).map((t, i) => ({ at: retries[i] as number, gap: t - (retries[i] as number) }));
    for (const { at, gap } of gaps) {
      const remaining = cert.notAfter.getTime() - at;
      expect(gap, `retry after ${at - cutAt} ms`).toBeLessThanOrEqual(remaining > 0 ? Math.max(1000, remaining / 10) : TTL_MS / 10);
    }
    expect(manager.snapshot()[0]?.state).toBe('Unavailable');
    provider.failing = false;
    const backAt = Date.now();
    await vi.advanceTimersByTimeAsync(TTL_MS / 10);
    expect(manager.snapshot()[0]?.state).toBe('Available');
    expect((provider.calls.at(-1) as number) - backAt).toBeLessThanOrEqual(TTL_MS / 10);
  });

  it('without a certificate yet, keeps the plain exponential backoff up to 150 s', async () => {
    const provider = new FakeCertificateProvider(template, { lifetimeMs: TTL_MS, backdateMs: BACKDATE_MS });
    const manager = build(provider, { random: () => 0.5 });
    provider.failing = true;
    await manager.get(ID).catch(() => undefined);
    await vi.advanceTimersByTimeAsync(600_000);
    const gaps = provider.calls.slice(1).map((t, i) => t - (provider.calls[i] as number));
    expect(Math.max(...gaps)).toBe(150_000); // no certificate yet: plain exponential backoff
  });
});
