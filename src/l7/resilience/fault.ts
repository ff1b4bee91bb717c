/**
 * Fault injection (Istio HTTPFaultInjection, Envoy's fault filter), decided per request, pure:
 * the delay and the abort are independent draws with the injected `random()` (delay first, as
 * Envoy applies a delay before an abort); a request can be both delayed and then aborted.
 *
 * The abort's answer: a gRPC request gets a trailers-only response whose `grpc-status` is the
 * configured gRPC status, else mapped from the HTTP status (Envoy's local-reply mapping); an
 * HTTP request gets the HTTP status, else — a policy with only a gRPC status — the HTTP status
 * that gRPC status maps to (Envoy's gRPC → HTTP mapping), so plain clients still see an error.
 */
import type { FaultPolicy } from '../config.js';
import { grpcStatusFor } from '../response-flags.js';

export interface FaultDecision {
  /** Wait this long before forwarding (flag DI). */
  delayMs?: number;
  /** Answer locally instead of forwarding (flag FI). */
  abort?: { httpStatus: number; grpcStatus: number };
}

/** The body of an aborted request (Envoy's fault filter says the same). */
export const FAULT_ABORT_BODY = 'fault filter abort';

/** A share in percent (0–100, fractions allowed) drawn with `random()` in [0, 1). */
function drawn(percent: number, random: () => number): boolean {
  if (!(percent > 0)) return false;
  if (percent >= 100) return true;
  return random() * 100 < percent;
}

export function decideFault(policy: FaultPolicy | undefined, random: () => number): FaultDecision {
  if (!policy) return {};
  const out: FaultDecision = {};
  if (policy.delay && policy.delay.delayMs > 0 && drawn(policy.delay.percent, random)) out.delayMs = policy.delay.delayMs;
  const abort = policy.abort;
  if (abort && (abort.httpStatus !== undefined || abort.grpcStatus !== undefined) && drawn(abort.percent, random)) {
    const httpStatus = abort.httpStatus ?? httpStatusForGrpc(abort.grpcStatus ?? 2);
    out.abort = { httpStatus, grpcStatus: abort.grpcStatus ?? grpcStatusFor(httpStatus) };
  }
  return out;
}

/** gRPC status → HTTP status (grpc/doc/http-grpc-status-mapping.md, reversed as Envoy does). */
export function httpStatusForGrpc(grpcStatus: number): number {
  switch (grpcStatus) {
    case 0:
      return 200;
    case 1:
      return 499; // CANCELLED: client closed request
    case 3:
    case 9:
    case 11:
      return 400;
    case 4:
      return 504;
    case 5:
      return 404;
    case 6:
    case 10:
      return 409;
    case 7:
      return 403;
    case 8:
      return 429;
    case 12:
      return 501;
    case 14:
      return 503;
    case 16:
      return 401;
    default:
      return 500;
  }
}
