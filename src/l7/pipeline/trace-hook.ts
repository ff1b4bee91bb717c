/**
 * What the request path needs of tracing (src/telemetry/tracing.ts ProxyTracing satisfies it):
 * a trace per request, a CLIENT span + upstream headers per try, the end. Kept as an interface
 * here so the L7 engine runs without tracing (tests, benches) and does not import the OpenTelemetry
 * SDK itself.
 *
 * When a request has a trace, the incoming trace headers are replaced upstream by the try's own
 * (TRACE_HEADERS removed, then the try's headers set); without one they pass through untouched.
 */
export type TraceRequestHeaders = Record<string, string | string[] | undefined>;

export interface TraceRequestInfo {
  method: string;
  authority: string;
  path: string;
  protocol: string;
  peerIdentity: string;
  clientAddress: string;
  role: 'waypoint' | 'gateway';
}

export interface TryTrace {
  headers: Record<string, string>;
  end(status?: number, error?: string): void;
}

export interface RequestTraceHook {
  startTry(a: { cluster: string; endpoint: string }): TryTrace;
  end(a: { status?: number; responseFlags: string; route?: string; error?: string }): void;
  /** The trace id (32 hex), for the access log, when the implementation exposes it. */
  readonly traceId?: string;
}

export interface TracingHook {
  /** Undefined when tracing is off. */
  startRequest(headers: TraceRequestHeaders, a: TraceRequestInfo): RequestTraceHook | undefined;
}

/** W3C Trace Context and B3 (single and multi) headers: replaced upstream when the proxy traces. */
export const TRACE_HEADERS: readonly string[] = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

/** Removes the incoming trace headers from `headers` and sets the try's. */
export function setTryHeaders(headers: Record<string, unknown>, tryHeaders: Readonly<Record<string, string>>): void {
  // Unset rather than deleted (a delete turns the object into a slow dictionary); Node skips undefined values.
  for (const name of TRACE_HEADERS) if (headers[name] !== undefined) headers[name] = undefined;
  for (const name in tryHeaders) headers[name] = tryHeaders[name];
}

/** The trace id of a try's headers (W3C `traceparent`, else B3), for the access log. */
export function traceIdOf(headers: Readonly<Record<string, string>>): string | undefined {
  const traceparent = headers.traceparent;
  if (traceparent !== undefined) return traceparent.split('-')[1];
  return headers['x-b3-traceid'] ?? headers.b3?.split('-')[0];
}
