/**
 * The status writers' queue: each reconcile hands over the complete list of writes its view
 * calls for, which replaces whatever is still queued — a newer view supersedes the rest of an
 * older one, so a burst of changes never builds a backlog of stale writes. Items are processed
 * `concurrency` at a time; `idle()` resolves when nothing is running or queued.
 */
export class LatestWorkQueue<T> {
  #queued: T[] | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly process: (item: T) => Promise<void>,
    private readonly concurrency = 1,
  ) {}

  replace(work: T[]): void {
    if (this.#stopped) return;
    this.#queued = work;
    this.#running ??= this.#drain().finally(() => (this.#running = undefined));
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  stop(): void {
    this.#stopped = true;
    this.#queued = undefined;
  }

  async #drain(): Promise<void> {
    const step = Math.max(1, this.concurrency);
    while (this.#queued && !this.#stopped) {
      const work = this.#queued;
      this.#queued = undefined;
      for (let i = 0; i < work.length; i += step) {
        if (this.#stopped || this.#queued) break; // a newer view replaces the rest
        await Promise.all(work.slice(i, i + step).map((item) => this.process(item)));
      }
    }
  }
}
