/**
 * What `amesh ztunnel-config <kind>` prints, from the agents' dumps. Pure.
 *
 * short: tables with istioctl ztunnel-config's columns —
 *   workloads     NAMESPACE POD NAME ADDRESS NODE WAYPOINT PROTOCOL
 *   services      NAMESPACE SERVICE NAME SERVICE VIP WAYPOINT ENDPOINTS (healthy/total)
 *   policies      NAMESPACE POLICY NAME ACTION SCOPE
 *   certificates  CERTIFICATE NAME TYPE STATUS VALID CERT SERIAL NUMBER NOT AFTER NOT BEFORE
 *   connections   WORKLOAD DIRECTION LOCAL REMOTE PEER IDENTITY STATE
 * Workloads, services and policies are cluster state every agent holds alike: several agents'
 * lists merge (workloads by uid). Certificates and connections belong to one agent: with more
 * than one agent a NODE column comes first.
 * json/yaml: the agents' own entries (ztunnel field names) — merged arrays for the cluster-state
 * kinds; for certificates and connections the section itself with one agent, else `{node: section}`.
 */
import type { CertificateRow, ConfigDumpView, ConnectionRow, PolicyRow, ServiceRow, WorkloadRow } from './config-dump-view.js';
import { mergeRawSection } from './config-dump-view.js';
import { renderTable } from './table.js';

export const ZTUNNEL_CONFIG_KINDS = ['workloads', 'services', 'policies', 'certificates', 'connections'] as const;
export type ZtunnelConfigKind = (typeof ZTUNNEL_CONFIG_KINDS)[number];

export interface AgentDump {
  /** The agent's node (spec.nodeName of its pod). */
  node: string;
  view: ConfigDumpView;
}

export interface FormatOptions {
  /** Only entries of this namespace (workloads, services, policies, connections' workloads). */
  namespace?: string;
}

const byNamespaceName = <T extends { namespace: string; name: string }>(a: T, b: T): number => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);

function mergeBy<T>(lists: ReadonlyArray<readonly T[]>, key: (t: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const list of lists) for (const t of list) if (!seen.has(key(t))) seen.set(key(t), t);
  return [...seen.values()];
}

export function mergedWorkloads(dumps: readonly AgentDump[], o: FormatOptions = {}): WorkloadRow[] {
  return mergeBy(
    dumps.map((d) => d.view.workloads),
    (w) => w.uid || `${w.namespace}/${w.name}`,
  )
    .filter((w) => o.namespace === undefined || w.namespace === o.namespace)
    .sort(byNamespaceName);
}

export function mergedServices(dumps: readonly AgentDump[], o: FormatOptions = {}): ServiceRow[] {
  return mergeBy(
    dumps.map((d) => d.view.services),
    (s) => `${s.namespace}/${s.hostname}`,
  )
    .filter((s) => o.namespace === undefined || s.namespace === o.namespace)
    .sort(byNamespaceName);
}

export function mergedPolicies(dumps: readonly AgentDump[], o: FormatOptions = {}): PolicyRow[] {
  return mergeBy(
    dumps.map((d) => d.view.policies),
    (p) => `${p.namespace}/${p.name}`,
  )
    .filter((p) => o.namespace === undefined || p.namespace === o.namespace)
    .sort(byNamespaceName);
}

const none = (s: string): string => s || 'None';

export function formatWorkloads(rows: readonly WorkloadRow[]): string {
  return renderTable(
    ['NAMESPACE', 'POD NAME', 'ADDRESS', 'NODE', 'WAYPOINT', 'PROTOCOL'],
    rows.map((w) => [w.namespace, w.name, w.addresses.join(','), w.node, none(w.waypoint), w.protocol]),
  );
}

export function formatServices(rows: readonly ServiceRow[]): string {
  return renderTable(
    ['NAMESPACE', 'SERVICE NAME', 'SERVICE VIP', 'WAYPOINT', 'ENDPOINTS'],
    rows.map((s) => [s.namespace, s.name, s.vips.join(','), none(s.waypoint), `${s.endpointsHealthy}/${s.endpointsTotal}`]),
  );
}

export function formatPolicies(rows: readonly PolicyRow[]): string {
  return renderTable(
    ['NAMESPACE', 'POLICY NAME', 'ACTION', 'SCOPE'],
    rows.map((p) => [p.namespace, p.name, p.dryRun ? `${p.action} (dry-run)` : p.action, p.scope]),
  );
}

function withNode<T>(dumps: readonly AgentDump[], pick: (v: ConfigDumpView) => readonly T[]): Array<{ node: string; row: T }> {
  return dumps.flatMap((d) => pick(d.view).map((row) => ({ node: d.node, row })));
}

export function formatCertificates(dumps: readonly AgentDump[]): string {
  const showNode = dumps.length > 1;
  const rows = withNode(dumps, (v) => v.certificates);
  const cells = (c: CertificateRow): string[] => [c.identity, c.type, c.state, c.type ? String(c.valid) : 'false', c.serial, c.notAfter, c.notBefore];
  const headers = ['CERTIFICATE NAME', 'TYPE', 'STATUS', 'VALID CERT', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE'];
  let text = renderTable(showNode ? ['NODE', ...headers] : headers, rows.map(({ node, row }) => (showNode ? [node, ...cells(row)] : cells(row))));
  // Why a certificate is missing is the first thing an operator needs; istioctl has no column for it.
  const errors = rows.filter(({ row }) => row.error);
  for (const { node, row } of errors) text += `${showNode ? `${node}: ` : ''}${row.identity}: ${row.error}\n`;
  return text;
}

export function formatConnections(dumps: readonly AgentDump[], o: FormatOptions = {}): string {
  const showNode = dumps.length > 1;
  const rows = withNode(dumps, (v) => v.connections).filter(({ row }) => o.namespace === undefined || row.workload.startsWith(`${o.namespace}/`));
  const cells = (c: ConnectionRow): string[] => [c.workload, c.direction, c.local, c.remote, c.identity, c.state];
  const headers = ['WORKLOAD', 'DIRECTION', 'LOCAL', 'REMOTE', 'PEER IDENTITY', 'STATE'];
  return renderTable(showNode ? ['NODE', ...headers] : headers, rows.map(({ node, row }) => (showNode ? [node, ...cells(row)] : cells(row))));
}

/** A waypoint given by address (ztunnel's `network/ip` destination) shown by the name of the Service owning that VIP, as istioctl does. */
export function waypointNames(dumps: readonly AgentDump[]): (waypoint: string) => string {
  const byVip = new Map<string, string>();
  for (const s of mergedServices(dumps)) for (const vip of s.vips) byVip.set(vip, `${s.namespace}/${s.name}`);
  return (waypoint) => byVip.get(waypoint) ?? waypoint;
}

export function formatShort(kind: ZtunnelConfigKind, dumps: readonly AgentDump[], o: FormatOptions = {}): string {
  switch (kind) {
    case 'workloads': {
      const name = waypointNames(dumps);
      return formatWorkloads(mergedWorkloads(dumps, o).map((w) => ({ ...w, waypoint: name(w.waypoint) })));
    }
    case 'services': {
      const name = waypointNames(dumps);
      return formatServices(mergedServices(dumps, o).map((s) => ({ ...s, waypoint: name(s.waypoint) })));
    }
    case 'policies':
      return formatPolicies(mergedPolicies(dumps, o));
    case 'certificates':
      return formatCertificates(dumps);
    case 'connections':
      return formatConnections(dumps, o);
  }
}

const inNamespace = (o: FormatOptions) => (e: unknown) => o.namespace === undefined || (e as { namespace?: unknown }).namespace === o.namespace;

/** The data -o json / -o yaml print. */
export function structured(kind: ZtunnelConfigKind, dumps: readonly AgentDump[], o: FormatOptions = {}): unknown {
  if (kind === 'workloads' || kind === 'services' || kind === 'policies') {
    return mergeRawSection(
      dumps.map((d) => d.view.raw),
      kind,
    ).filter(inNamespace(o));
  }
  const section = (d: AgentDump): unknown => d.view.raw[kind] ?? null;
  if (dumps.length === 1 && dumps[0]) return section(dumps[0]);
  return Object.fromEntries(dumps.map((d) => [d.node, section(d)]));
}
