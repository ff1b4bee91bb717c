import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { drainNotice } from '../../src/l7/drain-notice.js';

describe('drainNotice (keep accepting after SIGTERM until the senders moved away)', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('ends once nothing new arrived for quietMs after minMs', async () => {
    let accepted = 0;
    // Streams keep arriving for 3 s (the agents have not applied the change yet), then stop.
    const feeder = setInterval(() => {
      if (Date.now() - t0 < 3000) accepted++;
    }, 200);
    const t0 = Date.now();
    const done = drainNotice({ accepted: () => accepted, minMs: 2000, quietMs: 1000, maxMs: 10_000 });
    await vi.advanceTimersByTimeAsync(10_000);
    const result = await done;
    clearInterval(feeder);
    expect(result.ended).toBe('quiet');
    expect(result.waitedMs).toBeGreaterThanOrEqual(3800);
    expect(result.waitedMs).toBeLessThanOrEqual(4200);
    expect(result.acceptedDuring).toBeGreaterThanOrEqual(13);
  });

  it('waits at least minMs even when idle', async () => {
    const done = drainNotice({ accepted: () => 0, minMs: 2000, quietMs: 500, maxMs: 10_000 });
    await vi.advanceTimersByTimeAsync(5000);
    const result = await done;
    expect(result).toMatchObject({ ended: 'quiet', acceptedDuring: 0 });
    expect(result.waitedMs).toBeGreaterThanOrEqual(2000);
    expect(result.waitedMs).toBeLessThan(2200);
  });

  it('is cut at maxMs when traffic never stops', async () => {
    let accepted = 0;
    const feeder = setInterval(() => accepted++, 50);
    const done = drainNotice({ accepted: () => accepted, minMs: 1000, quietMs: 1000, maxMs: 4000 });
    await vi.advanceTimersByTimeAsync(5000);
    const result = await done;
    clearInterval(feeder);
    expect(result.ended).toBe('max');
    expect(result.waitedMs).toBeGreaterThanOrEqual(4000);
    expect(result.waitedMs).toBeLessThan(4200);
  });
});
