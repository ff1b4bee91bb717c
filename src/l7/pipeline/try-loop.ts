/**
 * The tries of one forwarded request (Envoy's router retry loop), protocol independent: pick an
 * endpoint, start a try, wait for its response head or failure, and either keep it (it becomes
 * the response) or — when the route's retry policy says so and nothing went downstream yet —
 * drop it and try again after a back-off.
 *
 * - Retries: `policy.attempts` after the first try, on the conditions of `isRetriable`; only
 *   while the request body can be sent again (`canReplay`) and the cluster's circuit breaker
 *   grants a retry slot (`breaker.tryRetry`, held until the retried try has its answer). A
 *   retriable outcome that gets no retry because attempts or the retry budget ran out is flagged
 *   (`retryLimited`, Envoy's URX); the last answer then stands (a response is streamed through).
 * - otherHost: a retry avoids endpoints already tried while another one is eligible.
 * - Per-try timeout: a try with no response head after `perTryTimeoutMs` is abandoned and counts
 *   as a `timeout` failure (retried like a reset). Once a head arrived it no longer applies
 *   (Envoy: the per-try timeout ends when the response starts downstream).
 * - `signal` (route timeout, downstream gone) stops everything: the try in flight is aborted, a
 *   back-off is cut short, and the result is `cancelled` — the caller answers.
 * - Every try's outcome goes to `balancer.recordResult` (outlier detection); in-flight counts
 *   (`started`/`finished`) are kept per try; the kept try's `finished` is the caller's.
 */
import type { RetryPolicy } from '../config.js';
import type { EndpointState, PickContext } from '../balancer.js';
import { backoffMs, DEFAULT_BACKOFF_BASE_MS, isRetriable, type TryFailure } from '../resilience/retry.js';
import type { ClusterRuntime } from '../waypoint-state.js';
import type { Cancellation } from './cancellation.js';

/** What a try settles with: its response head, or why there is none. */
export type TryResult = { kind: 'response'; status: number; grpcStatus?: number } | { kind: 'failure'; failure: TryFailure; error?: unknown };

/** One upstream request in flight. */
export interface TryHandle {
  /** Settles once: the response head arrived (not yet sent downstream), or the try failed. */
  readonly result: Promise<TryResult>;
  /** Abandons the try: the upstream request is reset and `result` settles (a failure) if it had not. Idempotent. */
  abort(): void;
  /** Drops a response head that will not go downstream (a retry replaces it). */
  discard(): void;
}

export interface TryLoopOptions<H extends TryHandle> {
  runtime: ClusterRuntime;
  policy: RetryPolicy | undefined;
  /** Consistent-hash key of the request, when the cluster hashes. */
  hashKey: string | undefined;
  random: () => number;
  /** Can the request (its body) be sent once more? */
  canReplay: () => boolean;
  /** Starts try number `index` (0 = the first) to `endpoint`. */
  start(endpoint: EndpointState, index: number): H;
  signal: Cancellation;
}

export type TryLoopResult<H extends TryHandle> =
  | { kind: 'response'; handle: H; endpoint: EndpointState; status: number; attempts: number; retryLimited: boolean }
  | { kind: 'failure'; failure: TryFailure; error?: unknown; endpoint: EndpointState; attempts: number; retryLimited: boolean }
  | { kind: 'no-endpoint'; attempts: number }
  | { kind: 'cancelled'; attempts: number };

const TIMED_OUT: TryResult = { kind: 'failure', failure: 'timeout' };

/** Resolves true after `ms`, false as soon as `signal` aborts. */
export function cancellableDelay(ms: number, signal: Cancellation): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      unsubscribe();
      resolve(true);
    }, ms);
    const unsubscribe = signal.onAbort(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

const NO_CONTEXT: PickContext = {};

function pick(runtime: ClusterRuntime, hashKey: string | undefined, exclude: ReadonlySet<EndpointState> | undefined): EndpointState | undefined {
  if (hashKey === undefined && (exclude === undefined || exclude.size === 0)) return runtime.balancer.pick(NO_CONTEXT);
  const ctx = { ...(hashKey !== undefined ? { hashKey } : {}), ...(exclude && exclude.size > 0 ? { exclude } : {}) };
  // Every endpoint already tried (or excluded otherwise): any endpoint beats none.
  return runtime.balancer.pick(ctx) ?? (exclude ? runtime.balancer.pick(hashKey !== undefined ? { hashKey } : {}) : undefined);
}

export async function runTries<H extends TryHandle>(o: TryLoopOptions<H>): Promise<TryLoopResult<H>> {
  const { runtime, policy } = o;
  const { balancer, breaker } = runtime;
  const maxTries = 1 + Math.max(0, policy?.attempts ?? 0);
  const tried = policy?.otherHost ? new Set<EndpointState>() : undefined;
  let retrySlot = false;
  const releaseRetrySlot = (): void => {
    if (retrySlot) breaker.retryDone();
    retrySlot = false;
  };
  for (let index = 0; ; index++) {
    const endpoint = pick(runtime, o.hashKey, tried);
    if (!endpoint) {
      releaseRetrySlot();
      return { kind: 'no-endpoint', attempts: index };
    }
    tried?.add(endpoint);
    balancer.started(endpoint);
    const handle = o.start(endpoint, index);
    // A cancellation or the per-try timeout aborts the handle, which settles its result at once
    // (TryHandle.abort); the outcome is then what stopped it. Inline: this runs for every request.
    let stopped: 'cancelled' | 'timeout' | undefined;
    const unsubscribe = o.signal.onAbort(() => {
      stopped ??= 'cancelled';
      handle.abort();
    });
    const perTryTimeoutMs = policy?.perTryTimeoutMs;
    const timer =
      perTryTimeoutMs !== undefined && perTryTimeoutMs > 0
        ? setTimeout(() => {
            stopped ??= 'timeout';
            handle.abort();
          }, perTryTimeoutMs)
        : undefined;
    const settled = await handle.result;
    if (timer !== undefined) clearTimeout(timer);
    unsubscribe();
    const r = stopped === 'cancelled' ? 'cancelled' : stopped === 'timeout' ? TIMED_OUT : settled;
    releaseRetrySlot();
    if (r === 'cancelled') {
      handle.abort();
      balancer.finished(endpoint);
      return { kind: 'cancelled', attempts: index + 1 };
    }
    balancer.recordResult(endpoint, r.kind === 'response' ? { status: r.status } : { failure: r.failure === 'refused-stream' ? 'reset' : r.failure });
    const retriable = policy !== undefined && isRetriable(policy, r);
    let retry = retriable && index + 1 < maxTries && o.canReplay() && !o.signal.aborted;
    let retryLimited = retriable && index + 1 >= maxTries;
    if (retry && !breaker.tryRetry()) {
      retry = false;
      retryLimited = true;
    }
    if (!retry) {
      if (r.kind === 'response') return { kind: 'response', handle, endpoint, status: r.status, attempts: index + 1, retryLimited };
      balancer.finished(endpoint);
      return { kind: 'failure', failure: r.failure, ...(r.error !== undefined ? { error: r.error } : {}), endpoint, attempts: index + 1, retryLimited };
    }
    retrySlot = true;
    if (r.kind === 'response') handle.discard();
    else handle.abort();
    balancer.finished(endpoint);
    const pause = backoffMs(index + 1, policy?.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS, o.random);
    if (pause > 0 && !(await cancellableDelay(pause, o.signal))) {
      releaseRetrySlot();
      return { kind: 'cancelled', attempts: index + 1 };
    }
    if (o.signal.aborted) {
      releaseRetrySlot();
      return { kind: 'cancelled', attempts: index + 1 };
    }
  }
}
