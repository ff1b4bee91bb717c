/**
 * A cluster circuit breaker's admission of one L4 stream (waypoint passthrough, gateway TLS / TCP
 * routes): a connection slot held until the stream ends. L4 never queues (Envoy's tcp_proxy): a
 * wait is refused like an overflow.
 */
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';

/** The slot's release, or undefined on overflow (flag `UO`). No breaker = unlimited. */
export function admitTcp(breaker: CircuitBreaker | undefined): (() => void) | undefined {
  if (!breaker) return () => undefined;
  const admission = breaker.admit('tcp');
  if (admission.kind === 'go') return admission.release;
  if (admission.kind === 'wait') {
    admission.cancel();
    void admission.ready.then((a) => (a.kind === 'go' ? a.release() : undefined));
  }
  return undefined;
}
