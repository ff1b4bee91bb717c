/**
 * Workload certificates for the identities this node serves (DESIGN §5).
 *
 * Guarantees:
 * - Single flight: concurrent callers for one identity share one provider fetch.
 * - One TLS SecureContext per certificate (so per identity), built when the certificate arrives
 *   and reused by every connection until the next rotation. TLS 1.3 only, AES-GCM suites, our
 *   key + chain, and the mesh roots as `ca`.
 * - Rotation at `rotateFraction` (0.5) of the lifetime, counted from when the certificate arrived
 *   (not from its notBefore, which the CA backdates by a minute: a 60 s certificate would
 *   otherwise be "due" on arrival and renewed in a loop). A failed fetch is retried with
 *   exponential backoff (500 ms ×2, ±20 % jitter, at most 150 s) — and at most a tenth of the
 *   certificate's remaining life (of its whole life once expired), at least 1 s, so a
 *   short-lived certificate is renewed promptly once the CA is back; meanwhile a still-valid
 *   certificate keeps being served. Without a valid certificate, callers fail fast with the last
 *   error instead of hammering the CA on every connection.
 * - Trust bundle updates (`updateTrustBundle`, the CA rotating its root) rebuild every
 *   identity's SecureContext at once, so peers with a certificate from a new root are accepted
 *   on the next handshake; later certificates use the new roots too, whatever the provider says.
 * - Clock and timers are injectable (vitest fake timers work with the defaults too); every
 *   timer is unref'd so certificates never keep the process alive. `close()` stops them all.
 */
import tls from 'node:tls';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import { silentLogger, type Logger } from '../telemetry/logger.js';
import type { CertificateProvider, IssuedCertificate } from './certificate-provider.js';
import { parseCertificate } from './pki.js';
import { isValidWorkloadIdentity, toSpiffeUri, type WorkloadIdentity } from './spiffe.js';

/** Istio ztunnel's suites: AES-GCM only (DESIGN §4). TLS 1.3 suite names, as Node's `ciphers` takes them. */
export const MESH_TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384';
export const MESH_TLS_VERSION = 'TLSv1.3' as const;

export interface BackoffPolicy {
  initialMs: number;
  multiplier: number;
  maxMs: number;
  /** ±fraction applied to each delay (0.2 = ±20 %). */
  jitter: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({ initialMs: 500, multiplier: 2, maxMs: 150_000, jitter: 0.2 });

/** Delay before retry number `attempt` (1 = after the first failure). `random` in [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 64);
  const base = Math.min(policy.initialMs * policy.multiplier ** exponent, policy.maxMs);
  const jittered = base * (1 + policy.jitter * (2 * random() - 1));
  return Math.max(0, Math.min(policy.maxMs, Math.round(jittered)));
}

export interface ManagerTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers, looked up at call time so vitest's fake timers apply; unref'd. */
const defaultTimers: ManagerTimers = {
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, ms);
    (handle as { unref?: () => void }).unref?.();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

export interface CertificateManagerOptions {
  provider: CertificateProvider;
  /** Default: silent. */
  logger?: Logger;
  /** Milliseconds since the epoch. Default `Date.now()`. */
  clock?: () => number;
  timers?: ManagerTimers;
  /** Fraction of the lifetime after which a certificate is renewed. Default 0.5. */
  rotateFraction?: number;
  backoff?: Partial<BackoffPolicy>;
  /** Jitter source in [0, 1). Default Math.random. */
  random?: () => number;
}

export type CertificateState = 'Initializing' | 'Available' | 'Unavailable';

export interface CertificateSnapshot {
  /** SPIFFE URI. */
  identity: string;
  state: CertificateState;
  /** The leaf's serial (hex, lower case); absent until a certificate was issued. */
  serial?: string;
  /** ISO-8601; absent until a certificate was issued. */
  notBefore?: string;
  notAfter?: string;
  /** Leaf first, root last. Empty until issued. */
  chain: string[];
  roots: string[];
  /** ISO-8601 time of the next renewal or retry attempt. */
  nextAttempt?: string;
  /** Consecutive failed fetches. */
  failures: number;
  lastError?: string;
}

interface Entry {
  id: WorkloadIdentity;
  uri: string;
  cert?: IssuedCertificate;
  serial?: string;
  inflight?: Promise<void>;
  timer?: unknown;
  nextAttemptAt?: number;
  failures: number;
  lastError?: unknown;
  forgotten: boolean;
  /** notAfter minus arrival of the current certificate (ms): bounds retries once it expired. */
  lifetimeMs?: number;
}

/** Smallest retry delay the lifetime cap may impose (ms). */
const MIN_RETRY_CAP_MS = 1000;
/** Retry delay cap as a fraction of the remaining (or, once expired, whole) certificate life. */
const RETRY_CAP_FRACTION = 0.1;

export class CertificateManager {
  private readonly entries = new Map<string, Entry>();
  private readonly contexts = new WeakMap<IssuedCertificate, tls.SecureContext>();
  private readonly provider: CertificateProvider;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly timers: ManagerTimers;
  private readonly rotateFraction: number;
  private readonly backoff: BackoffPolicy;
  private readonly random: () => number;
  private closed = false;
  /** Set by updateTrustBundle; then overrides the roots providers return. */
  private trustRoots: string[] | undefined;

  constructor(opts: CertificateManagerOptions) {
    this.provider = opts.provider;
    this.logger = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? (() => Date.now());
    this.timers = opts.timers ?? defaultTimers;
    this.rotateFraction = opts.rotateFraction ?? 0.5;
    if (!(this.rotateFraction > 0 && this.rotateFraction < 1)) throw new AmeshError('AMESH_CONFIG_INVALID', `rotateFraction ${this.rotateFraction}: expected a number between 0 and 1`);
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.random = opts.random ?? Math.random;
  }

  /** A valid certificate for `id`, fetching it (once, shared) if needed. */
  async get(id: WorkloadIdentity): Promise<IssuedCertificate> {
    if (this.closed) throw new AmeshError('AMESH_SHUTTING_DOWN', 'certificate manager is closed');
    const entry = this.entry(id);
    const current = this.validCert(entry);
    if (current) return current;
    if (!entry.inflight) {
      // No valid certificate. While a retry is scheduled after a failure, fail fast.
      if (entry.lastError !== undefined && entry.timer !== undefined) throw this.unavailable(entry);
      this.refresh(entry);
    }
    await entry.inflight;
    const fresh = this.validCert(entry);
    if (fresh) return fresh;
    throw this.unavailable(entry);
  }

  /** The one TLS context for `id`'s current certificate (rebuilt only on rotation). */
  async secureContext(id: WorkloadIdentity): Promise<tls.SecureContext> {
    const cert = await this.get(id);
    const context = this.contexts.get(cert);
    if (!context) throw new AmeshError('AMESH_CERT_FAILED', `no TLS context for ${cert.identity}`);
    return context;
  }

  /** Starts fetching in the background; failures are logged and retried. Never throws. */
  prefetch(id: WorkloadIdentity): void {
    if (this.closed) return;
    try {
      this.entry(id);
    } catch (err) {
      this.logger.error({ err: describeError(err) }, 'certificate prefetch refused');
    }
  }

  /** Stops managing an identity (its last workload left): timers cancelled, cert dropped. */
  forget(identity: WorkloadIdentity | string): void {
    const identityUri = typeof identity === 'string' ? identity : toSpiffeUri(identity);
    const entry = this.entries.get(identityUri);
    if (!entry) return;
    entry.forgotten = true;
    this.clearTimer(entry);
    this.entries.delete(identityUri);
    this.logger.info({ identity: identityUri }, 'certificate forgotten');
  }

  /**
   * The mesh roots changed: every current certificate gets a new SecureContext trusting exactly
   * `roots` (during a rotation the bundle holds old and new roots, so both kinds of peers are
   * accepted). Connections already established keep their context. An empty bundle is ignored.
   */
  updateTrustBundle(roots: string[]): void {
    if (roots.length === 0) {
      this.logger.warn('ignoring an empty trust bundle; keeping the current roots');
      return;
    }
    this.trustRoots = [...roots];
    for (const entry of this.entries.values()) {
      if (!entry.cert) continue;
      const updated = { ...entry.cert, rootsPem: [...roots] };
      try {
        this.contexts.set(updated, buildSecureContext(updated));
        entry.cert = updated;
      } catch (err) {
        this.logger.error({ identity: entry.uri, err: describeError(err) }, 'cannot rebuild the TLS context with the new trust bundle; keeping the old one');
      }
    }
    this.logger.info({ roots: roots.length, identities: this.entries.size }, 'trust bundle applied');
  }

  snapshot(): CertificateSnapshot[] {
    return [...this.entries.values()].map((e) => {
      const valid = this.validCert(e);
      const state: CertificateState = valid ? 'Available' : e.lastError !== undefined ? 'Unavailable' : 'Initializing';
      return {
        identity: e.uri,
        state,
        ...(e.serial !== undefined ? { serial: e.serial } : {}),
        ...(e.cert ? { notBefore: e.cert.notBefore.toISOString(), notAfter: e.cert.notAfter.toISOString() } : {}),
        chain: e.cert ? [...e.cert.chainPem] : [],
        roots: e.cert ? [...e.cert.rootsPem] : [],
        ...(e.nextAttemptAt !== undefined ? { nextAttempt: new Date(e.nextAttemptAt).toISOString() } : {}),
        failures: e.failures,
        ...(e.lastError !== undefined ? { lastError: describeError(e.lastError).split('\n')[0] } : {}),
      };
    });
  }

  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) {
      entry.forgotten = true;
      this.clearTimer(entry);
    }
    this.entries.clear();
  }

  private entry(id: WorkloadIdentity): Entry {
    const uri = toSpiffeUri(id);
    let entry = this.entries.get(uri);
    if (!entry) {
      if (!isValidWorkloadIdentity(id)) throw new AmeshError('AMESH_IDENTITY_INVALID', `invalid workload identity ${uri}`);
      entry = { id: { trustDomain: id.trustDomain, namespace: id.namespace, serviceAccount: id.serviceAccount }, uri, failures: 0, forgotten: false };
      this.entries.set(uri, entry);
      this.refresh(entry);
    }
    return entry;
  }

  private validCert(entry: Entry): IssuedCertificate | undefined {
    const cert = entry.cert;
    if (!cert) return undefined;
    const now = this.clock();
    return now < cert.notAfter.getTime() ? cert : undefined;
  }

  /** Longest retry delay the current certificate's lifetime allows (Infinity without one). */
  private retryCap(entry: Entry): number {
    if (!entry.cert || entry.lifetimeMs === undefined) return Infinity;
    const remaining = entry.cert.notAfter.getTime() - this.clock();
    return Math.max(MIN_RETRY_CAP_MS, RETRY_CAP_FRACTION * (remaining > 0 ? remaining : entry.lifetimeMs));
  }

  private unavailable(entry: Entry): AmeshError {
    const last = entry.lastError;
    return new AmeshError('AMESH_CERT_FAILED', `no valid certificate for ${entry.uri}${last !== undefined ? `: ${describeError(last).split('\n')[0]}` : ''}`, {
      cause: last,
      hint: 'check that the CA is reachable and accepts this node agent; the agent keeps retrying',
    });
  }

  private clearTimer(entry: Entry): void {
    if (entry.timer !== undefined) this.timers.clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.nextAttemptAt = undefined;
  }

  private schedule(entry: Entry, delayMs: number): void {
    this.clearTimer(entry);
    if (entry.forgotten || this.closed) return;
    const delay = Math.max(0, Math.min(delayMs, 2 ** 31 - 1));
    entry.nextAttemptAt = this.clock() + delay;
    entry.timer = this.timers.setTimeout(() => {
      entry.timer = undefined;
      entry.nextAttemptAt = undefined;
      this.refresh(entry);
    }, delay);
  }

  /** Starts a fetch unless one is running. The returned promise never rejects. */
  private refresh(entry: Entry): Promise<void> {
    if (entry.inflight) return entry.inflight;
    this.clearTimer(entry);
    const run = async (): Promise<void> => {
      try {
        const fetched = await this.provider.fetch(entry.id);
        if (fetched.identity !== entry.uri) throw new AmeshError('AMESH_CERT_FAILED', `the provider returned a certificate for ${fetched.identity}, asked for ${entry.uri}`);
        const cert = this.trustRoots ? { ...fetched, rootsPem: [...this.trustRoots] } : fetched;
        this.contexts.set(cert, buildSecureContext(cert));
        entry.cert = cert;
        entry.serial = serialOf(cert);
        entry.failures = 0;
        entry.lastError = undefined;
        const notAfter = cert.notAfter.getTime();
        const start = Math.max(cert.notBefore.getTime(), Math.min(this.clock(), notAfter));
        entry.lifetimeMs = notAfter - start;
        const renewAt = start + entry.lifetimeMs * this.rotateFraction;
        this.schedule(entry, renewAt - this.clock());
        this.logger.info({ identity: entry.uri, notAfter: cert.notAfter.toISOString(), renewAt: new Date(renewAt).toISOString() }, 'certificate issued');
      } catch (err) {
        entry.failures++;
        entry.lastError = err;
        const delay = Math.min(backoffDelay(entry.failures, this.backoff, this.random), this.retryCap(entry));
        this.schedule(entry, delay);
        const serving = this.validCert(entry);
        this.logger.warn(
          { identity: entry.uri, err: describeError(err), failures: entry.failures, retryInMs: delay, ...(serving ? { servingUntil: serving.notAfter.toISOString() } : {}) },
          serving ? 'certificate renewal failed; still serving the current certificate' : 'certificate fetch failed',
        );
      }
    };
    entry.inflight = run().finally(() => {
      entry.inflight = undefined;
    });
    return entry.inflight;
  }
}

function serialOf(cert: IssuedCertificate): string | undefined {
  try {
    return cert.chainPem[0] ? parseCertificate(cert.chainPem[0]).serial : undefined;
  } catch {
    return undefined;
  }
}

/** TLS 1.3 only, AES-GCM, our key and chain (without the trust anchors), the roots as `ca`. */
export function buildSecureContext(cert: IssuedCertificate): tls.SecureContext {
  const roots = new Set(cert.rootsPem.map((p) => p.trim()));
  const chain = cert.chainPem.filter((p, i) => i === 0 || !roots.has(p.trim()));
  try {
    return tls.createSecureContext({
      key: cert.keyPem,
      cert: chain.join(''),
      ca: cert.rootsPem,
      minVersion: MESH_TLS_VERSION,
      maxVersion: MESH_TLS_VERSION,
      ciphers: MESH_TLS_CIPHERS,
    });
  } catch (err) {
    throw new AmeshError('AMESH_CERT_FAILED', `cannot build a TLS context for ${cert.identity}: ${(err as Error).message}`, { cause: err });
  }
}
