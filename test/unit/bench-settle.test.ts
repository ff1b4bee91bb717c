import { describe, expect, it } from 'vitest';
import { describeSettle, waitForQuiet } from '../../bench/settle.js';
import type { MachineCpu } from '../../bench/proc-stat.js';

/** A fake /proc/stat whose busy share per window follows `shares` (percent), 100 ticks per window. */
function machine(shares: number[]): { read: () => Promise<MachineCpu>; sleep: (ms: number) => Promise<void>; now: () => number } {
  let clock = 0;
  let busy = 0;
  let idle = 0;
  let window = 0;
  return {
    read: () => Promise.resolve({ busy, idle, steal: 0 }),
    sleep: (ms) => {
      clock += ms;
      const share = shares[Math.min(window, shares.length - 1)]!;
      window++;
      busy += share;
      idle += 100 - share;
      return Promise.resolve();
    },
    now: () => clock,
  };
}

describe('waitForQuiet', () => {
  const o = { busyPercentBelow: 15, windowMs: 500, maxMs: 3000 };

  it('returns after the first window when the machine is already quiet', async () => {
    expect(await waitForQuiet(o, machine([5]))).toEqual({ quiet: true, waitedMs: 500, firstBusyPercent: 5, lastBusyPercent: 5 });
  });

  it('waits while a previous run still keeps the machine busy', async () => {
    const r = await waitForQuiet(o, machine([90, 70, 40, 10]));
    expect(r).toEqual({ quiet: true, waitedMs: 2000, firstBusyPercent: 90, lastBusyPercent: 10 });
    expect(describeSettle(r, o)).toBe('waited 2.0 s for the machine to settle (machine 90 % busy → 10 %)');
  });

  it('gives up after maxMs and says so', async () => {
    const r = await waitForQuiet(o, machine([80]));
    expect(r.quiet).toBe(false);
    expect(r.waitedMs).toBe(3000);
    expect(describeSettle(r, o)).toContain('stayed above 15 % busy for 3.0 s');
  });

  it('does not wait when /proc/stat cannot be read', async () => {
    const r = await waitForQuiet(o, { read: () => Promise.resolve(undefined), sleep: () => Promise.resolve(), now: () => 0 });
    expect(r.quiet).toBe(true);
    expect(describeSettle(r, o)).toBeUndefined();
  });
});
