/**
 * Follows a change source and runs `run` once per burst: the first change arms a timer of
 * `coalesceMs`, later changes within it ride along. A throwing `run` goes to `onError` and the
 * next change tries again (the publishers keep the previous, good state meanwhile).
 */
export class CoalescedFollower {
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(
    private readonly subscribe: (listener: () => void) => () => void,
    private readonly run: () => void,
    private readonly coalesceMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    this.#unsubscribe ??= this.subscribe(() => this.#schedule());
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      try {
        this.run();
      } catch (err) {
        this.onError(err);
      }
    }, this.coalesceMs);
    this.#timer.unref();
  }
}
