/**
 * Envoy's response flags (https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#command-operators),
 * the subset the waypoint sets: in access logs and, for locally generated errors, in the
 * `x-amesh-response-flags` response header so a client can tell why a request failed.
 */
export const RESPONSE_FLAGS_HEADER = 'x-amesh-response-flags';

export const ResponseFlag = Object.freeze({
  /** No route matched. */
  NoRoute: 'NR',
  /** No healthy upstream endpoint in the cluster (or no such cluster). */
  NoHealthyUpstream: 'UH',
  /** Connecting to the upstream failed. */
  UpstreamConnectionFailure: 'UF',
  /** The upstream connection ended before the response completed. */
  UpstreamConnectionTermination: 'UC',
  /** The route's timeout expired. */
  UpstreamRequestTimeout: 'UT',
  /** The downstream closed before the response completed. */
  DownstreamConnectionTermination: 'DC',
  /** A direct response (redirect, direct-response) generated here. */
  DirectResponse: 'DR',
  /** A connection-pool limit (circuit breaker) refused the request. */
  UpstreamOverflow: 'UO',
  /** Fault injection aborted the request. */
  FaultInjected: 'FI',
  /** Fault injection delayed the request. */
  DelayInjected: 'DI',
  /** The retry budget (maxRetries) was exhausted, so the last try's answer stands. */
  UpstreamRetryLimitExceeded: 'URX',
  /** An AuthorizationPolicy denied the request. */
  RbacAccessDenied: 'RBAC',
});

export type ResponseFlagValue = (typeof ResponseFlag)[keyof typeof ResponseFlag];

/** gRPC status for a locally generated HTTP status (Envoy's mapping). */
export function grpcStatusFor(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}
