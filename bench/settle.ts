/**
 * Waits for the machine to be quiet before a measurement. Paths are measured one after another
 * on the same two cores, and a path can leave work behind when its load generator stops
 * (connections still queued for a TLS handshake, sockets closing), which the next path's run
 * then shares the cores with. Waiting until the whole machine (/proc/stat, so kernel work and
 * every process count) is below a busy share for one window gives each measurement the same
 * start, whatever ran before it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { machineCpuShares, readMachineCpu, type MachineCpu } from './proc-stat.js';

export interface SettleOptions {
  /** Quiet: the machine's busy share over one window is below this (percent of all CPUs). */
  busyPercentBelow: number;
  windowMs: number;
  /** Give up (and measure anyway) after this long. */
  maxMs: number;
}

export interface SettleResult {
  quiet: boolean;
  waitedMs: number;
  /** Busy share of the first and of the last window (percent), when readable. */
  firstBusyPercent?: number;
  lastBusyPercent?: number;
}

export const DEFAULT_SETTLE: SettleOptions = { busyPercentBelow: 15, windowMs: 500, maxMs: 20_000 };

export async function waitForQuiet(
  o: SettleOptions = DEFAULT_SETTLE,
  deps: { read?: () => Promise<MachineCpu | undefined>; sleep?: (ms: number) => Promise<unknown>; now?: () => number } = {},
): Promise<SettleResult> {
  const read = deps.read ?? readMachineCpu;
  const sleep = deps.sleep ?? ((ms: number) => delay(ms));
  const now = deps.now ?? (() => performance.now());
  const start = now();
  const result: SettleResult = { quiet: false, waitedMs: 0 };
  let before = await read();
  for (;;) {
    await sleep(o.windowMs);
    const after = await read();
    const busy = before && after ? machineCpuShares(before, after)?.busyPercent : undefined;
    // Without /proc/stat there is nothing to wait for.
    if (busy === undefined) return { ...result, quiet: true, waitedMs: now() - start };
    result.firstBusyPercent ??= busy;
    result.lastBusyPercent = busy;
    result.waitedMs = now() - start;
    if (busy < o.busyPercentBelow) return { ...result, quiet: true };
    if (result.waitedMs >= o.maxMs) return result;
    before = after;
  }
}

/** One line for the progress output when the wait was noticeable (over `minMs`), else undefined. */
export function describeSettle(r: SettleResult, o: SettleOptions = DEFAULT_SETTLE, minMs = 1000): string | undefined {
  if (r.quiet && r.waitedMs < minMs) return undefined;
  const shares = r.firstBusyPercent === undefined ? '' : ` (machine ${r.firstBusyPercent.toFixed(0)} % busy → ${r.lastBusyPercent?.toFixed(0)} %)`;
  return r.quiet
    ? `waited ${(r.waitedMs / 1000).toFixed(1)} s for the machine to settle${shares}`
    : `the machine stayed above ${o.busyPercentBelow} % busy for ${(r.waitedMs / 1000).toFixed(1)} s${shares}; measuring anyway`;
}
