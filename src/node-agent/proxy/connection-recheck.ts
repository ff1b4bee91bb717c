/**
 * Re-checking live inbound connections when the mesh state changes (issue #5: "existing
 * connections are re-checked when policy changes and closed if now denied"), as ztunnel's
 * connection manager does on every policy update.
 *
 * Pure: given the new state and what was recorded when a connection was admitted, decide
 * whether it may stay. A connection is closed when its destination workload is gone or its
 * address now belongs to another workload (nothing left to authorize against), or when the
 * new policies deny it. Route-level properties (node, enrolment) are not re-decided: those
 * changes are the capture's business, and an established connection outlives them in ztunnel too.
 */
import { evaluateL4, type L4Connection, type L4Decision } from '../../policy/l4-authorization.js';
import type { MeshState } from '../state/mesh-state.js';

/** What admission recorded about an inbound connection (HBONE stream or captured plaintext). */
export interface InboundAttributes {
  connection: L4Connection;
  /** uid of the local workload the connection was admitted to. */
  workloadUid: string;
  /** The connection's telemetry, told why when a re-check closes it (its access-log line carries the reason). */
  telemetry?: { closedBy(reason: string): void };
}

export type RecheckVerdict = { keep: true } | { keep: false; reason: string; decision?: L4Decision };

export function recheckInbound(state: MeshState, a: InboundAttributes): RecheckVerdict {
  const workload = state.workloadByIp(a.connection.destinationIp);
  if (!workload) return { keep: false, reason: `destination workload ${a.workloadUid} no longer exists` };
  if (workload.uid !== a.workloadUid) return { keep: false, reason: `address ${a.connection.destinationIp} now belongs to workload ${workload.uid}, not ${a.workloadUid}` };
  const decision = evaluateL4(state.policiesFor(workload), a.connection);
  return decision.allowed ? { keep: true } : { keep: false, reason: decision.reason, decision };
}
