/**
 * Retry decisions (Istio HTTPRetry as Envoy's router executes it), pure:
 * - `isRetriable(policy, outcome)`: does this try's outcome call for another try? Status based
 *   conditions look at the response head only — a retry is possible only while nothing of the
 *   response went downstream, so gRPC conditions see `grpc-status` of trailers-only responses
 *   (Envoy likewise retries gRPC on headers only).
 * - `backoffMs(retry, base, random)`: Envoy's fully jittered exponential back-off, a draw in
 *   [0, (2^retry − 1) × base) capped at 10 × base (Envoy's default max_interval).
 *
 * Failures without a response (Envoy's "reset" family, router `wouldRetryFromReset`): any of them
 * — connect failure, reset, refused stream, per-try timeout — is retried under `5xx`,
 * `gateway-error` and `reset` (Envoy counts an upstream reset as the 5xx it turns into);
 * `connect-failure` covers connect failures only, `refused-stream` HTTP/2 REFUSED_STREAM only.
 * A per-try timeout is retried like a reset (Envoy `onPerTryTimeout` → `maybeRetryReset`).
 * Circuit-breaker overflow is never retried (it is answered before any try).
 */
import type { RetryOn, RetryPolicy } from '../config.js';

/** Envoy's default retry back-off base interval. */
export const DEFAULT_BACKOFF_BASE_MS = 25;

/** Envoy's default max back-off interval is 10 × the base. */
export const BACKOFF_MAX_FACTOR = 10;

/**
 * Request bodies up to this size are kept so a retry can send them again; a longer body is
 * streamed and disables retries for its request. Envoy buffers up to per_request_buffer_limit
 * (1 MiB by default when retries are configured); 64 KiB keeps the waypoint's memory per request
 * small while covering typical API payloads (JSON, gRPC messages).
 */
export const RETRY_BODY_LIMIT_BYTES = 64 * 1024;

/** Why a try produced no response. */
export type TryFailure = 'connect' | 'reset' | 'refused-stream' | 'timeout';

export type TryOutcome =
  | {
      kind: 'response';
      status: number;
      /** `grpc-status` of a trailers-only response, when present in the response head. */
      grpcStatus?: number;
    }
  | { kind: 'failure'; failure: TryFailure };

const GATEWAY_ERRORS: ReadonlySet<number> = new Set([502, 503, 504]);

/** gRPC status codes of the gRPC retry conditions. */
const GRPC_CONDITIONS: ReadonlyMap<number, RetryOn> = new Map<number, RetryOn>([
  [1, 'cancelled'],
  [4, 'deadline-exceeded'],
  [8, 'resource-exhausted'],
  [13, 'internal'],
  [14, 'unavailable'],
]);

/** retryOn as a set, once per policy object (configs are immutable once applied; asked on every response of a route with retries). */
const RETRY_ON_SETS = new WeakMap<RetryPolicy, ReadonlySet<string>>();

function retryOnSet(policy: RetryPolicy): ReadonlySet<string> {
  let on = RETRY_ON_SETS.get(policy);
  if (!on) RETRY_ON_SETS.set(policy, (on = new Set(policy.retryOn)));
  return on;
}

export function isRetriable(policy: RetryPolicy, outcome: TryOutcome): boolean {
  const on = retryOnSet(policy);
  if (outcome.kind === 'failure') {
    if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
    if (outcome.failure === 'connect') return on.has('connect-failure');
    if (outcome.failure === 'refused-stream') return on.has('refused-stream');
    return false;
  }
  const { status, grpcStatus } = outcome;
  if (on.has('5xx') && status >= 500 && status <= 599) return true;
  if (on.has('gateway-error') && GATEWAY_ERRORS.has(status)) return true;
  if (on.has('retriable-4xx') && status === 409) return true;
  if (on.has('retriable-status-codes') && (policy.retriableStatusCodes ?? []).includes(status)) return true;
  if (grpcStatus !== undefined) {
    const condition = GRPC_CONDITIONS.get(grpcStatus);
    if (condition !== undefined && on.has(condition)) return true;
  }
  return false;
}

/**
 * The pause before retry number `retry` (1 = the first retry): uniform in
 * [0, min((2^retry − 1) × base, 10 × base)). `random()` in [0, 1).
 */
export function backoffMs(retry: number, baseMs: number = DEFAULT_BACKOFF_BASE_MS, random: () => number = Math.random): number {
  if (!(retry >= 1) || !(baseMs > 0)) return 0;
  // 2^retry overflows nothing that matters: the cap applies long before.
  const ceiling = Math.min((2 ** Math.min(retry, 30) - 1) * baseMs, BACKOFF_MAX_FACTOR * baseMs);
  return Math.floor(random() * ceiling);
}

/** `grpc-status` from a response head, when it is a valid status code. */
export function grpcStatusOf(headers: Readonly<Record<string, string | string[] | number | undefined>>): number | undefined {
  const raw = headers['grpc-status'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}
