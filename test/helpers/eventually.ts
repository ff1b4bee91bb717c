/**
 * Bounded polling for conditions that settle asynchronously (an agent becoming ready, a config
 * reload being picked up). STYLE.md §7: no bare sleeps in tests — wait for a condition, and
 * always with a deadline, so a broken product fails fast with the last observed error instead
 * of hanging the suite.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface EventuallyOptions {
  /** Give up after this long (ms). */
  timeoutMs: number;
  /** Pause between attempts (ms). Default 100. */
  intervalMs?: number;
  /** Names the condition in the timeout error ("agent node1 ready"). */
  description?: string;
}

export class EventuallyTimeoutError extends Error {
  readonly code = 'EVENTUALLY_TIMEOUT';
  constructor(
    message: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EventuallyTimeoutError';
  }
}

/**
 * Calls `probe` until it returns without throwing, and returns its result. `probe` signals
 * "not yet" by throwing (an `expect` failure works). Each attempt counts against the same
 * deadline; an attempt that is still running when the deadline passes is awaited, never
 * abandoned, so a probe must bound its own I/O (give exec calls a timeout).
 */
export async function eventually<T>(probe: () => T | Promise<T>, options: EventuallyOptions): Promise<T> {
  const { timeoutMs, intervalMs = 100, description = 'condition' } = options;
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  let lastError: unknown;
  for (;;) {
    attempts++;
    try {
      return await probe();
    } catch (err) {
      lastError = err;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    await delay(Math.min(intervalMs, remaining));
  }
  const last = lastError instanceof Error ? lastError.message : String(lastError);
  throw new EventuallyTimeoutError(
    `timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${description}; last error: ${last}`,
    attempts,
    { cause: lastError },
  );
}
