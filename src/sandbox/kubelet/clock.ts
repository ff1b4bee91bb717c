/**
 * Time as the kubelet sees it: injected so back-off and probe schedules are tested with fake
 * timers or a hand-driven clock.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    // Timers never keep the process alive on their own: their owner's servers or tests do.
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
