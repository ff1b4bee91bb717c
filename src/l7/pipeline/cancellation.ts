/**
 * A request's cancellation (route timeout, downstream gone, request settled): what an
 * AbortController would do, without its cost on the hot path. `AbortController.abort()` builds a
 * DOMException with a stack trace and EventTarget listeners are slow; every forwarded request
 * settles through here, so that was ~8 % of the waypoint's CPU (bench:waypoint profile).
 */
export class Cancellation {
  #aborted = false;
  #listeners: Array<() => void> | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Calls `fn` once when cancelled (at once if already); returns the unsubscribe. */
  onAbort(fn: () => void): () => void {
    if (this.#aborted) {
      fn();
      return () => undefined;
    }
    (this.#listeners ??= []).push(fn);
    return () => {
      const list = this.#listeners;
      const i = list ? list.indexOf(fn) : -1;
      if (list && i >= 0) list.splice(i, 1);
    };
  }

  /** Idempotent. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    const list = this.#listeners;
    this.#listeners = undefined;
    if (list) for (const fn of list) fn();
  }
}
