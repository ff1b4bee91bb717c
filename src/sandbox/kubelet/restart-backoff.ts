/**
 * The crash-loop back-off, as the real kubelet does it: the first restart is immediate, then
 * 10 s, doubling up to 5 min; a container that ran for 10 min before exiting starts over.
 * Pure: the caller keeps the state and owns the timer.
 */
export const BACKOFF_INITIAL_MS = 10_000;
export const BACKOFF_MAX_MS = 300_000;
export const BACKOFF_RESET_AFTER_MS = 600_000;

export interface BackoffState {
  /** Delay before the next restart. */
  nextDelayMs: number;
}

export const INITIAL_BACKOFF: BackoffState = { nextDelayMs: 0 };

/** After a container exited having run `ranForMs`: how long to wait, and the state after that. */
export function restartBackoff(state: BackoffState, ranForMs: number): { delayMs: number; state: BackoffState } {
  const delayMs = ranForMs >= BACKOFF_RESET_AFTER_MS ? 0 : state.nextDelayMs;
  const nextDelayMs = delayMs === 0 ? BACKOFF_INITIAL_MS : Math.min(delayMs * 2, BACKOFF_MAX_MS);
  return { delayMs, state: { nextDelayMs } };
}

/** Whether a container that exited with `exitCode` restarts under `policy`. */
export function shouldRestart(policy: 'Always' | 'OnFailure' | 'Never' | undefined, exitCode: number): boolean {
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return exitCode !== 0;
  return true;
}
