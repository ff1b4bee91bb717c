import { afterEach, describe, expect, it, vi } from 'vitest';
import { allSettledWithin } from '../../src/net/within.js';

describe('allSettledWithin', () => {
  afterEach(() => vi.useRealTimers());
  it('resolves true when everything settles in time, rejections included', async () => {
    expect(await allSettledWithin([Promise.resolve(1), Promise.reject(new Error('x'))], 1000)).toBe(true);
    expect(await allSettledWithin([], 0)).toBe(true);
  });
  it('resolves false at the timeout when something never settles', async () => {
    vi.useFakeTimers();
    const result = allSettledWithin([new Promise(() => undefined)], 5000);
    await vi.advanceTimersByTimeAsync(4999);
    let done = false;
    void result.then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await result).toBe(false);
  });
});
