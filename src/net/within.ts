/**
 * Wait for every promise to settle, but no longer than `timeoutMs`. Resolves true when all
 * settled in time. The timer never keeps the process alive and is always cleared.
 */
export async function allSettledWithin(promises: Array<Promise<unknown>>, timeoutMs: number): Promise<boolean> {
  if (promises.length === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([Promise.allSettled(promises).then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
