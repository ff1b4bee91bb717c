/**
 * The mesh trust bundle: the roots every peer certificate must chain to, read from the mounted
 * ConfigMap `istio-ca-root-cert` (key `root-cert.pem`) and followed while the CA rotates roots.
 *
 * Guarantees:
 * - Polls the file's content every `pollMs` and compares it. The kubelet updates ConfigMap
 *   volumes by swapping a `..data` symlink, which `fs.watch` misses; reading a small file once
 *   a second is cheap and always right.
 * - Only a bundle that parses is adopted: an empty, unreadable or garbled update keeps the last
 *   good roots (and says why in the log, once per distinct content), so a half-written file
 *   never leaves the agent trusting nothing.
 * - Listeners run after the roots changed, synchronously, in registration order; a throwing
 *   listener is logged and does not stop the others.
 * - At most one read is in flight; the poll timer is unref'd and `close()` stops it.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describeError } from '../errors/amesh-error.js';
import { silentLogger, type Logger } from '../telemetry/logger.js';
import { splitPemBundle } from './pki.js';

export const DEFAULT_TRUST_BUNDLE_POLL_MS = 1000;

export interface TrustBundleOptions {
  /** PEM bundle of the mesh roots. */
  file: string;
  /** Default 1000 ms. */
  pollMs?: number;
  logger?: Logger;
  /** Injected for tests; default fs/promises readFile (utf8). */
  readFile?: (path: string) => Promise<string>;
}

export type TrustBundleListener = (roots: string[]) => void;

/** Why a bundle's content was not adopted, or its roots. */
export function parseTrustBundle(text: string): { roots: string[] } | { problem: string } {
  const roots = splitPemBundle(text);
  if (roots.length === 0) return { problem: text.trim() === '' ? 'the file is empty' : 'the file holds no PEM certificate' };
  for (const [i, pem] of roots.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (err) {
      return { problem: `certificate ${i + 1} does not parse: ${(err as Error).message}` };
    }
    if (!cert.ca) return { problem: `certificate ${i + 1} (${cert.subject || 'empty subject'}) is not a CA` };
  }
  return { roots };
}

export class TrustBundle {
  private current: string[] = [];
  private lastText: string | undefined;
  private lastProblem: string | undefined;
  private readonly listeners = new Set<TrustBundleListener>();
  private readonly pollMs: number;
  private readonly logger: Logger;
  private readonly read: (path: string) => Promise<string>;
  private timer: ReturnType<typeof setInterval> | undefined;
  private inflight: Promise<boolean> | undefined;
  private closed = false;
  private changedAt: Date | undefined;

  private constructor(private readonly opts: TrustBundleOptions) {
    this.pollMs = opts.pollMs ?? DEFAULT_TRUST_BUNDLE_POLL_MS;
    this.logger = opts.logger ?? silentLogger;
    this.read = opts.readFile ?? ((path) => readFile(path, 'utf8'));
  }

  /** Reads the file once (a missing or bad file is logged, not thrown) and starts polling. */
  static async open(opts: TrustBundleOptions): Promise<TrustBundle> {
    const bundle = new TrustBundle(opts);
    await bundle.check();
    if (bundle.current.length === 0) {
      bundle.logger.warn({ file: opts.file, problem: bundle.lastProblem }, 'no mesh trust bundle yet; peers cannot be verified until it appears');
    }
    bundle.start();
    return bundle;
  }

  /** The current roots (PEM, one per certificate); empty until a good bundle was read. */
  roots(): string[] {
    return [...this.current];
  }

  /** Called with the new roots after every change. Returns an unsubscribe function. */
  onChange(listener: TrustBundleListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): { file: string; roots: number; changedAt?: string; problem?: string } {
    return {
      file: this.opts.file,
      roots: this.current.length,
      ...(this.changedAt ? { changedAt: this.changedAt.toISOString() } : {}),
      ...(this.lastProblem ? { problem: this.lastProblem } : {}),
    };
  }

  /** Reads the file now; resolves true when the roots changed. Never rejects. */
  check(): Promise<boolean> {
    this.inflight ??= this.readAndApply().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  private start(): void {
    if (this.closed) return;
    this.timer = setInterval(() => void this.check(), this.pollMs);
    this.timer.unref();
  }

  private async readAndApply(): Promise<boolean> {
    let text: string;
    try {
      text = await this.read(this.opts.file);
    } catch (err) {
      this.reject(undefined, `cannot read ${this.opts.file}: ${describeError(err).split('\n')[0]}`);
      return false;
    }
    if (this.closed || text === this.lastText) return false;
    this.lastText = text;
    const parsed = parseTrustBundle(text);
    if ('problem' in parsed) {
      this.reject(text, parsed.problem);
      return false;
    }
    this.lastProblem = undefined;
    if (sameRoots(parsed.roots, this.current)) return false;
    const previous = this.current.length;
    this.current = parsed.roots;
    this.changedAt = new Date();
    this.logger.info({ file: this.opts.file, roots: parsed.roots.length, previousRoots: previous }, 'mesh trust bundle updated');
    for (const listener of [...this.listeners]) {
      try {
        listener(this.roots());
      } catch (err) {
        this.logger.error({ err: describeError(err) }, 'trust bundle listener failed');
      }
    }
    return true;
  }

  /** Keeps the last good roots; logs each distinct problem once. */
  private reject(text: string | undefined, problem: string): void {
    if (text === undefined) this.lastText = undefined;
    if (problem === this.lastProblem) return;
    this.lastProblem = problem;
    if (this.current.length === 0) this.logger.warn({ file: this.opts.file, problem }, 'mesh trust bundle unusable');
    else this.logger.warn({ file: this.opts.file, problem, keptRoots: this.current.length }, 'mesh trust bundle update ignored; keeping the last good roots');
  }
}

function sameRoots(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((pem, i) => pem.trim() === b[i]?.trim());
}
