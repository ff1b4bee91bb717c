/**
 * One JSON access-log line per request (or per TCP connection), through the logger: what
 * Envoy's default access log says, as named fields.
 */
import type { Logger } from '../telemetry/logger.js';

export interface AccessRecord {
  protocol: 'HTTP/1.1' | 'HTTP/2' | 'TCP' | 'upgrade';
  method?: string;
  authority?: string;
  path?: string;
  status?: number;
  route?: string;
  cluster?: string;
  /** `address:port` of the chosen endpoint. */
  upstreamHost?: string;
  durationMs: number;
  /** Envoy response flags, comma separated; '-' when none. */
  responseFlags: string;
  /** The client's SPIFFE identity (the HBONE peer). */
  sourceIdentity: string;
  clientAddress: string;
  /** The service address the client dialled (`vip:port`). */
  destination: string;
  requestId?: string;
  error?: string;
  /** Tries made (1 + retries) when more than one. */
  attempts?: number;
  /** The AuthorizationPolicy (and rule) that decided: `ns/name rule N`, or why none allowed. */
  authz?: string;
  /** AUDIT policies that matched. */
  audit?: string[];
  /** The verified JWT principal (`iss/sub`). */
  requestPrincipal?: string;
}

export function writeAccessLog(log: Logger, record: AccessRecord): void {
  log.info(record, 'access');
}
