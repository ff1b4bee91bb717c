/**
 * State from the local config file (YAML/JSON, src/config/local-config.ts), polled for changes:
 * fs.watch misses the atomic renames editors and ConfigMap volumes do, a poll never does.
 * A file that does not load keeps the last good state in service and says why (`lastError`).
 */
import { unwatchFile, watchFile } from 'node:fs';
import { describeError } from '../../errors/amesh-error.js';
import { loadLocalConfig, type LocalConfig } from '../../config/local-config.js';
import type { Logger } from '../../telemetry/logger.js';
import type { StateSource } from './state-source.js';
import type { MeshSnapshot } from './types.js';

export class LocalFileStateSource implements StateSource {
  readonly kind = 'local-file' as const;
  readonly initialIsComplete = true;
  private apply: ((snapshot: MeshSnapshot) => Promise<void>) | undefined;
  private lastError: string | undefined;
  private watching = false;

  private constructor(
    private readonly path: string,
    private config: LocalConfig,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {}

  static async open(path: string, pollMs: number, logger: Logger): Promise<LocalFileStateSource> {
    return new LocalFileStateSource(path, await loadLocalConfig(path), pollMs, logger);
  }

  /** The config as loaded at start (its `ca` picks local-mode certificates). */
  get localConfig(): LocalConfig {
    return this.config;
  }

  get node(): string {
    return this.config.node;
  }

  get trustDomain(): string {
    return this.config.trustDomain;
  }

  get uplinks(): string[] | undefined {
    return this.config.uplinks;
  }

  initial(): MeshSnapshot {
    return this.config;
  }

  start(apply: (snapshot: MeshSnapshot) => Promise<void>): void {
    this.apply = apply;
    this.watching = true;
    watchFile(this.path, { interval: this.pollMs, persistent: false }, () => void this.reload());
  }

  /** Re-read the file; on error keep serving the last good state. */
  async reload(): Promise<boolean> {
    try {
      const next = await loadLocalConfig(this.path);
      if (next.node !== this.config.node) throw new Error(`node may not change at run time (was ${this.config.node}, now ${next.node})`);
      this.config = next;
      this.lastError = undefined;
      await this.apply?.(next);
      this.logger.info({ workloads: next.workloads.length, services: next.services.length, policies: next.policies.length }, 'local config reloaded');
      return true;
    } catch (err) {
      this.lastError = describeError(err);
      this.logger.error({ err: this.lastError }, 'local config rejected; keeping the last good configuration');
      return false;
    }
  }

  isReady(): boolean {
    return true;
  }

  status(): Record<string, unknown> {
    return { kind: this.kind, path: this.path, ...(this.lastError ? { lastConfigError: this.lastError } : {}) };
  }

  get lastConfigError(): string | undefined {
    return this.lastError;
  }

  async close(): Promise<void> {
    if (this.watching) unwatchFile(this.path);
    this.watching = false;
  }
}
