/**
 * What `amesh proxy-status` prints, from the controller's `/debug/syncz` and the list of mesh
 * pods that should be connected. Pure.
 *
 * syncz (controller, :15014): `[{ node, pod: 'ns/name', role, connectedAt, types: { [typeUrl]:
 * { sent, acked, nacked?, resources } }, status }]`. A type is NACKED when the proxy's last answer
 * refused it (the reason shown below the table), SYNCED when the proxy acknowledged what was last
 * sent, STALE otherwise (sent, not yet acknowledged). The table has one column per type any proxy
 * subscribes to (short names: ADDRESS, AUTHORIZATION, WAYPOINT, TELEMETRY…), like istioctl's
 * CDS/LDS/EDS/RDS columns; '-' when that proxy does not subscribe to it.
 * Agent, waypoint and gateway pods that run but have no stream appear as NOT CONNECTED.
 */
import { renderTable } from './table.js';

export type SyncState = 'SYNCED' | 'STALE' | 'NACKED';

export interface SyncType {
  typeUrl: string;
  state: SyncState;
  resources: number;
  nacked: string;
}

export interface ProxySync {
  pod: string;
  node: string;
  role: string;
  connectedAt: string;
  status: string;
  types: SyncType[];
}

export interface ExpectedProxy {
  pod: string;
  node: string;
  role: string;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

export function typeState(t: { sent?: unknown; acked?: unknown; nacked?: unknown; status?: unknown }): SyncState {
  // The controller's own verdict when it gives one; else derived the same way.
  if (t.status === 'SYNCED' || t.status === 'STALE' || t.status === 'NACKED') return t.status;
  if (typeof t.nacked === 'string' && t.nacked !== '') return 'NACKED';
  const sent = str(t.sent);
  return sent !== '' && sent === str(t.acked) ? 'SYNCED' : 'STALE';
}

/** Reads /debug/syncz leniently (an array, or `{proxies: [...]}`). */
export function readSyncz(body: unknown): ProxySync[] {
  const list = Array.isArray(body) ? body : Array.isArray(obj(body).proxies) ? (obj(body).proxies as unknown[]) : [];
  return list.map((e) => {
    const x = obj(e);
    const types = Object.entries(obj(x.types)).map(([typeUrl, v]): SyncType => {
      const t = obj(v);
      return { typeUrl, state: typeState(t), resources: typeof t.resources === 'number' ? t.resources : 0, nacked: str(t.nacked) };
    });
    return { pod: str(x.pod), node: str(x.node), role: str(x.role), connectedAt: str(x.connectedAt), status: str(x.status), types };
  });
}

/** `type.googleapis.com/istio.workload.Address` → ADDRESS. */
export function shortTypeName(typeUrl: string): string {
  const last = typeUrl.split('/').pop() ?? typeUrl;
  const name = last.split('.').pop() ?? last;
  return name.replace(/Config$/, '').replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase() || typeUrl;
}

function age(from: string, now: number): string {
  const t = Date.parse(from);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export interface ProxyStatusReport {
  text: string;
  /** Proxies with a NACKED or STALE type, or not connected. */
  problems: number;
}

export function formatProxyStatus(synced: readonly ProxySync[], expected: readonly ExpectedProxy[], now: number = Date.now()): ProxyStatusReport {
  const typeUrls = [...new Set(synced.flatMap((p) => p.types.map((t) => t.typeUrl)))].sort((a, b) => shortTypeName(a).localeCompare(shortTypeName(b)));
  const connected = new Set(synced.map((p) => p.pod));
  const missing = expected.filter((e) => !connected.has(e.pod));
  const rows: string[][] = [];
  let problems = 0;
  const notes: string[] = [];
  const sorted = [...synced].sort((a, b) => a.role.localeCompare(b.role) || a.pod.localeCompare(b.pod));
  for (const p of sorted) {
    const byUrl = new Map(p.types.map((t) => [t.typeUrl, t]));
    if (p.types.some((t) => t.state !== 'SYNCED')) problems++;
    for (const t of p.types) if (t.state === 'NACKED') notes.push(`${p.pod} NACKED ${shortTypeName(t.typeUrl)}: ${t.nacked}`);
    rows.push([p.pod, p.role, p.node, ...typeUrls.map((u) => byUrl.get(u)?.state ?? '-'), age(p.connectedAt, now)]);
  }
  for (const m of [...missing].sort((a, b) => a.role.localeCompare(b.role) || a.pod.localeCompare(b.pod))) {
    problems++;
    rows.push([m.pod, m.role, m.node, ...typeUrls.map(() => '-'), 'NOT CONNECTED']);
  }
  let text = renderTable(['NAME', 'ROLE', 'NODE', ...typeUrls.map(shortTypeName), 'CONNECTED'], rows);
  if (notes.length) text += `\n${notes.join('\n')}\n`;
  if (missing.length) text += `\n${missing.length} mesh pod${missing.length === 1 ? '' : 's'} running without an xDS stream to the controller: ${missing.map((m) => m.pod).join(', ')}\n`;
  return { text, problems };
}
