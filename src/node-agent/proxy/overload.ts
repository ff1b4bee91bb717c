/**
 * Resource caps of the node agent (issue #12 part 4): overload is refused early, counted
 * (`amesh_overload_rejections_total{reason,direction}`, telemetry/internals.ts) and logged — a
 * warn line naming the workload, the cap and the setting to raise, at most one per
 * (reason, direction, workload) every LOG_INTERVAL_MS with the number of refusals it stands for.
 *
 * Caps and where they are enforced:
 * - workload_connections: concurrent proxied connections per source pod (outbound, outbound.ts)
 *   and per destination pod (inbound HBONE and in-process, inbound.ts) — AMESH_MAX_CONNECTIONS_PER_WORKLOAD.
 * - pending_streams: CONNECTs waiting in the HBONE pool per destination (pool.ts, coded
 *   AMESH_HBONE_POOL_OVERLOADED) — AMESH_HBONE_MAX_PENDING_CONNECTS.
 * - header_size: a CONNECT header block over AMESH_HBONE_MAX_HEADER_BYTES (server.ts answers 431).
 * - concurrent_streams (not counted here): SETTINGS_MAX_CONCURRENT_STREAMS, enforced by nghttp2
 *   itself with REFUSED_STREAM — AMESH_HBONE_MAX_CONCURRENT_STREAMS.
 */
import type { Logger } from '../../telemetry/logger.js';

export type OverloadReason = 'workload_connections' | 'pending_streams' | 'header_size';
export type OverloadDirection = 'inbound' | 'outbound';

export interface OverloadRejection {
  reason: OverloadReason;
  direction: OverloadDirection;
  /** The workload the cap applies to (pod uid), or the destination for pending streams. */
  workload: string;
  limit: number;
  /** The environment variable that sets the cap. */
  setting: string;
}

export interface OverloadCount {
  reason: OverloadReason;
  direction: OverloadDirection;
  count: number;
}

export const LOG_INTERVAL_MS = 10_000;
/** Log-suppression entries kept at most (one per recently refused workload). */
const MAX_LOG_KEYS = 1024;

export class OverloadLog {
  private readonly counts = new Map<string, OverloadCount>();
  private readonly lastLogged = new Map<string, { at: number; suppressed: number }>();
  private readonly now: () => number;

  constructor(
    private readonly logger: Logger,
    opts: { now?: () => number; logIntervalMs?: number } = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.logIntervalMs = opts.logIntervalMs ?? LOG_INTERVAL_MS;
  }

  private readonly logIntervalMs: number;

  /** Counts one refusal and logs it unless the same workload's refusals were logged recently. */
  reject(r: OverloadRejection): void {
    const countKey = `${r.reason}|${r.direction}`;
    const c = this.counts.get(countKey);
    if (c) c.count++;
    else this.counts.set(countKey, { reason: r.reason, direction: r.direction, count: 1 });

    const logKey = `${countKey}|${r.workload}`;
    const now = this.now();
    const last = this.lastLogged.get(logKey);
    if (last && now - last.at < this.logIntervalMs) {
      last.suppressed++;
      return;
    }
    if (this.lastLogged.size >= MAX_LOG_KEYS) this.prune(now);
    this.lastLogged.set(logKey, { at: now, suppressed: 0 });
    this.logger.warn(
      { reason: r.reason, direction: r.direction, workload: r.workload, limit: r.limit, setting: r.setting, ...(last?.suppressed ? { suppressed: last.suppressed } : {}) },
      `overload: refused a ${r.direction} connection of ${r.workload}: ${r.reason} at the cap of ${r.limit} (raise ${r.setting} if this load is expected)`,
    );
  }

  private prune(now: number): void {
    for (const [k, v] of this.lastLogged) if (now - v.at >= this.logIntervalMs) this.lastLogged.delete(k);
    // Still full (many workloads refused within one interval): forget the oldest.
    for (const k of this.lastLogged.keys()) {
      if (this.lastLogged.size < MAX_LOG_KEYS) break;
      this.lastLogged.delete(k);
    }
  }

  /** Totals per reason and direction, for the metric. */
  totals(): OverloadCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }));
  }
}

/** Concurrent connections per key (a workload uid), bounded by `limit`. */
export class ConnectionLimiter {
  private readonly live = new Map<string, number>();

  constructor(readonly limit: number) {}

  /** Takes a slot for `key`; false (and nothing taken) when `key` is at the limit. */
  tryAcquire(key: string): boolean {
    const n = this.live.get(key) ?? 0;
    if (n >= this.limit) return false;
    this.live.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = (this.live.get(key) ?? 0) - 1;
    if (n > 0) this.live.set(key, n);
    else this.live.delete(key);
  }

  count(key: string): number {
    return this.live.get(key) ?? 0;
  }
}
