/**
 * CertificateManager under test with fake timers: a provider with real key material (so
 * SecureContexts build) whose validity dates, failures and timing the test controls, and the
 * hooks that start each test at a fixed instant and close the manager it built.
 */
import { afterEach, beforeEach, vi } from 'vitest';
import { AmeshError } from '../../src/errors/amesh-error.js';
import { CertificateManager } from '../../src/identity/certificate-manager.js';
import type { CertificateProvider, IssuedCertificate } from '../../src/identity/certificate-provider.js';
import { toSpiffeUri, type WorkloadIdentity } from '../../src/identity/spiffe.js';
import { silentLogger } from '../../src/telemetry/logger.js';

/** Every fetch returns `template` for the asked identity, valid from `backdateMs` ago for `lifetimeMs`. */
export class FakeCertificateProvider implements CertificateProvider {
  /** Date.now() of every fetch. */
  calls: number[] = [];
  /** Fetches fail with AMESH_CERT_FAILED while set. */
  failing = false;
  lifetimeMs: number;
  readonly backdateMs: number;
  /** Resolves the next fetch only when released (for single-flight tests). */
  gate: Promise<void> | undefined;

  constructor(
    private readonly template: IssuedCertificate,
    opts: { lifetimeMs?: number; backdateMs?: number } = {},
  ) {
    this.lifetimeMs = opts.lifetimeMs ?? 3_600_000;
    this.backdateMs = opts.backdateMs ?? 60_000;
  }

  async fetch(id: WorkloadIdentity): Promise<IssuedCertificate> {
    this.calls.push(Date.now());
    if (this.gate) await this.gate;
    if (this.failing) throw new AmeshError('AMESH_CERT_FAILED', 'CA unreachable');
    const now = Date.now();
    return { ...this.template, identity: toSpiffeUri(id), notBefore: new Date(now - this.backdateMs), notAfter: new Date(now + this.lifetimeMs) };
  }
}

export type ManagerOptions = Partial<ConstructorParameters<typeof CertificateManager>[0]>;

/**
 * Registers beforeEach/afterEach in the calling file: fake timers from 2030-01-01 around each
 * test, and the manager the test built (the last one) closed after it. Returns the builder.
 */
export function certificateManagerUnderTest(): (provider: CertificateProvider, extra?: ManagerOptions) => CertificateManager {
  let manager: CertificateManager | undefined;
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2030-01-01T00:00:00Z') });
  });
  afterEach(() => {
    manager?.close();
    manager = undefined;
    vi.useRealTimers();
  });
  return (provider, extra = {}) => {
    manager = new CertificateManager({ provider, logger: silentLogger, ...extra });
    return manager;
  };
}
