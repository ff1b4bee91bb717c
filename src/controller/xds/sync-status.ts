/**
 * The ADS server's per-stream records → the controller's `/debug/syncz` answer (what
 * `amesh proxy-status` prints, as `istioctl proxy-status` does over istiod's syncz). Pure.
 *
 * One entry per connected proxy: `node` is the Kubernetes node (NODE_NAME metadata; the xDS node
 * id when absent), `pod` `<namespace>/<name>`, `role` from the caller's authorisation, and per
 * subscribed type URL the last sent nonce, the last ACKed nonce, the reason of a NACK not yet
 * followed by an ACK, and the resources the proxy holds. A proxy is NACKED when any type is,
 * else STALE when any type waits for an answer or a push, else SYNCED.
 */
import type { AdsRole } from './ads-auth.js';
import type { AdsConnection, AdsSyncState } from './ads-server.js';

export interface TypeSyncStatus {
  /** Nonce of the last response sent. */
  sent?: string;
  /** Resources in that response (upserts + removals). */
  sentResources?: number;
  /** Nonce of the last response ACKed. */
  acked?: string;
  /** The reason of the NACK not (yet) followed by an ACK. */
  nacked?: string;
  /** Resources the proxy holds, as far as the controller knows. */
  resources: number;
  status: AdsSyncState;
}

export interface ProxySyncStatus {
  node: string;
  /** The xDS node id. */
  id: string;
  pod?: string;
  role: AdsRole;
  /** `<namespace>/<serviceAccount>` it authenticated as. */
  caller: string;
  connectedAt: string;
  types: Record<string, TypeSyncStatus>;
  status: AdsSyncState;
}

const SEVERITY: Record<AdsSyncState, number> = { SYNCED: 0, STALE: 1, NACKED: 2 };

export function syncStatus(connections: readonly AdsConnection[]): ProxySyncStatus[] {
  const entries = connections.map((c): ProxySyncStatus => {
    const types: Record<string, TypeSyncStatus> = {};
    let status: AdsSyncState = 'SYNCED';
    for (const [typeUrl, t] of Object.entries(c.typeUrls)) {
      types[typeUrl] = {
        ...(t.sentNonce !== undefined ? { sent: t.sentNonce, sentResources: t.sentResources ?? 0 } : {}),
        ...(t.ackedNonce !== undefined ? { acked: t.ackedNonce } : {}),
        ...(t.nacked ? { nacked: t.nacked.message } : {}),
        resources: t.resources,
        status: t.sync,
      };
      if (SEVERITY[t.sync] > SEVERITY[status]) status = t.sync;
    }
    return { node: c.nodeName ?? c.node, id: c.node, ...(c.pod ? { pod: c.pod } : {}), role: c.role, caller: c.caller, connectedAt: c.connectedAt.toISOString(), types, status };
  });
  return entries.sort((a, b) => a.role.localeCompare(b.role) || a.node.localeCompare(b.node) || (a.pod ?? '').localeCompare(b.pod ?? '') || a.connectedAt.localeCompare(b.connectedAt));
}
