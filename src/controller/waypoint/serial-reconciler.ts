/**
 * The deployers' work loop (waypoints and ingress gateways): passes run one at a time and are
 * coalesced — a `schedule()` while a pass runs marks the state dirty, and one more pass runs
 * after it (over whatever the caller's newest state is then). A pass that reports failure is
 * retried with backoff (1 s doubling to 30 s) as a new pass; a successful one resets the backoff.
 */

const RETRY_INITIAL_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class SerialReconciler {
  readonly #pass: () => Promise<boolean>;
  #dirty = false;
  #running: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = RETRY_INITIAL_MS;
  #stopped = false;

  /** `pass` returns false when something failed and deserves a retry; it must not throw. */
  constructor(pass: () => Promise<boolean>) {
    this.#pass = pass;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  schedule(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    this.#running ??= this.#drain().finally(() => (this.#running = undefined));
  }

  /** Resolves when no pass is running or pending (a scheduled retry does not count). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** No new passes; resolves when the current one ends. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await this.idle();
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#stopped) return;
    const delay = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.schedule();
    }, delay);
    this.#retryTimer.unref();
  }

  async #drain(): Promise<void> {
    while (this.#dirty && !this.#stopped) {
      this.#dirty = false;
      if (await this.#pass()) this.#retryMs = RETRY_INITIAL_MS;
      else this.#scheduleRetry();
    }
  }
}
