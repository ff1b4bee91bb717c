/**
 * A cluster's DestinationRule `connectionPool` as Envoy circuit breakers (one CircuitBreaker per
 * cluster, shared by every request to it):
 * - HTTP/1.1: a request in flight occupies an upstream connection, so admission holds one of
 *   `maxConnections` slots for the request's whole life. Beyond it requests wait in a FIFO (Envoy's
 *   pending-request queue) bounded by `maxPendingRequests` (unset = unbounded, Istio's 2^32-1);
 *   a request that finds the queue full overflows (`max-pending-requests`, 503 UO).
 * - Every request, HTTP/1.1 or HTTP/2, also counts against `maxRequests` (Envoy's max_requests
 *   applies to both pool kinds); beyond it a request overflows at once (`max-requests`): Envoy
 *   does not queue on this limit.
 * - L4 (`tcp`): an opaque stream holds a connection slot; at the limit it overflows at once
 *   (`max-connections`), as Envoy's tcp_proxy does.
 * - `tryRetry()` takes one of `maxRetries` concurrent retry slots (unset = unlimited: Istio sets
 *   Envoy's max_retries to 2^32-1 unless the DestinationRule sets http.maxRetries).
 *
 * Invariants: a slot is released exactly once (release is idempotent); a waiter that is cancelled
 * (downstream gone, route timeout) leaves the queue, and when its slot was granted in the same
 * turn the slot is handed back — cancellation never leaks a slot. A config update that replaces
 * the breaker leaves requests admitted by the old one releasing into the old one.
 */
import type { ConnectionPool } from '../config.js';

export type OverflowReason = 'max-connections' | 'max-pending-requests' | 'max-requests';

export type Admission =
  | { kind: 'go'; release: () => void }
  /** Wait for a slot: `ready` resolves with a lease or with overflow when the wait is refused/cancelled. */
  | { kind: 'wait'; ready: Promise<Admission>; cancel: () => void }
  | { kind: 'overflow'; reason: OverflowReason };

export type AdmissionProtocol = 'http1' | 'http2' | 'tcp';

export interface CircuitBreakerStats {
  /** Requests (and L4 streams) holding a lease. */
  active: number;
  /** Requests waiting for a connection slot. */
  pending: number;
  /** Retries in flight. */
  retries: number;
  /** Admissions refused so far (all reasons). */
  overflows: number;
  /** Connection slots held (HTTP/1.1 requests and L4 streams). */
  connections: number;
  /** Request slots held (HTTP/1.1 and HTTP/2). */
  requests: number;
  overflowsByReason: Record<OverflowReason, number>;
  /** Retries refused (budget exhausted). */
  retryOverflows: number;
}

interface Waiter {
  settle: (a: Admission) => void;
  /** Set once granted: the lease's release, for a cancel that comes after the grant. */
  granted?: () => void;
  done: boolean;
}

export class CircuitBreaker {
  private connections = 0;
  private requests = 0;
  private retries = 0;
  private activeLeases = 0;
  private readonly queue: Waiter[] = [];
  private readonly counters = { overflows: 0, retryOverflows: 0, byReason: { 'max-connections': 0, 'max-pending-requests': 0, 'max-requests': 0 } as Record<OverflowReason, number> };

  constructor(readonly settings: ConnectionPool = {}) {}

  /** Admits one request (HTTP/1.1 holds a connection slot; HTTP/2 counts against maxRequests; tcp holds a connection slot). */
  admit(protocol: AdmissionProtocol): Admission {
    if (protocol === 'tcp') {
      if (!this.connectionFree()) return this.overflow('max-connections');
      return this.lease(true, false);
    }
    if (protocol === 'http2') {
      if (!this.requestFree()) return this.overflow('max-requests');
      return this.lease(false, true);
    }
    if (!this.requestFree()) return this.overflow('max-requests');
    // FIFO: a newcomer never overtakes a waiter.
    if (this.queue.length === 0 && this.connectionFree()) return this.lease(true, true);
    const maxPending = this.settings.maxPendingRequests;
    if (maxPending !== undefined && this.queue.length >= maxPending) return this.overflow('max-pending-requests');
    return this.enqueue();
  }

  /** Takes a retry slot (maxRetries); false = retry budget exhausted (flag URX). */
  tryRetry(): boolean {
    const max = this.settings.maxRetries;
    if (max !== undefined && this.retries >= max) {
      this.counters.retryOverflows++;
      return false;
    }
    this.retries++;
    return true;
  }

  /** Gives back a slot taken by `tryRetry` (once the retry attempt ends). */
  retryDone(): void {
    this.retries = Math.max(0, this.retries - 1);
  }

  stats(): CircuitBreakerStats {
    return {
      active: this.activeLeases,
      pending: this.queue.length,
      retries: this.retries,
      overflows: this.counters.overflows,
      connections: this.connections,
      requests: this.requests,
      overflowsByReason: { ...this.counters.byReason },
      retryOverflows: this.counters.retryOverflows,
    };
  }

  private connectionFree(): boolean {
    const max = this.settings.maxConnections;
    return max === undefined || this.connections < max;
  }

  private requestFree(): boolean {
    const max = this.settings.maxRequests;
    return max === undefined || this.requests < max;
  }

  private overflow(reason: OverflowReason): Admission {
    this.counters.overflows++;
    this.counters.byReason[reason]++;
    return { kind: 'overflow', reason };
  }

  private lease(connection: boolean, request: boolean): Admission & { kind: 'go' } {
    if (connection) this.connections++;
    if (request) this.requests++;
    this.activeLeases++;
    let released = false;
    return {
      kind: 'go',
      release: () => {
        if (released) return;
        released = true;
        this.activeLeases--;
        if (connection) this.connections--;
        if (request) this.requests--;
        this.drain();
      },
    };
  }

  private enqueue(): Admission {
    let settle!: (a: Admission) => void;
    const ready = new Promise<Admission>((resolve) => (settle = resolve));
    const waiter: Waiter = { settle, done: false };
    this.queue.push(waiter);
    return {
      kind: 'wait',
      ready,
      cancel: () => {
        if (waiter.granted) {
          // Granted in the same turn as the cancel: the caller will never use the lease.
          waiter.granted();
          return;
        }
        if (waiter.done) return;
        waiter.done = true;
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        // Not counted as an overflow: the downstream went away, the limit did not refuse it.
        waiter.settle({ kind: 'overflow', reason: 'max-pending-requests' });
      },
    };
  }

  /** Hands freed slots to waiters, first come first served. */
  private drain(): void {
    while (this.queue.length > 0 && this.connectionFree() && this.requestFree()) {
      const waiter = this.queue.shift() as Waiter;
      waiter.done = true;
      const lease = this.lease(true, true);
      waiter.granted = lease.release;
      waiter.settle(lease);
    }
  }
}
