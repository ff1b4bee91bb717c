/**
 * STUB (interface fixed by the lead; implementation by the cluster-side helper): a cluster's
 * DestinationRule connectionPool as Envoy circuit breakers.
 */
import type { ConnectionPool } from '../config.js';

export type Admission =
  | { kind: 'go'; release: () => void }
  /** Wait for a slot: `ready` resolves with a lease or with overflow when the wait is refused/cancelled. */
  | { kind: 'wait'; ready: Promise<Admission>; cancel: () => void }
  | { kind: 'overflow'; reason: 'max-connections' | 'max-pending-requests' | 'max-requests' };

export class CircuitBreaker {
  constructor(readonly settings: ConnectionPool = {}) {}

  /** Admits one request (HTTP/1.1 holds a connection slot; HTTP/2 counts against maxRequests). */
  admit(_protocol: 'http1' | 'http2'): Admission {
    return { kind: 'go', release: () => undefined };
  }

  /** Takes a retry slot (maxRetries); false = retry budget exhausted (flag URX). */
  tryRetry(): boolean {
    return true;
  }

  retryDone(): void {}

  stats(): { active: number; pending: number; retries: number; overflows: number } {
    return { active: 0, pending: 0, retries: 0, overflows: 0 };
  }
}
