/**
 * amesh internals as Prometheus metrics on the agent's registry (issue #9): capture verdicts from
 * the eBPF program, HBONE pool and server, live connections, xDS state, certificate expiry and
 * enrolment. Process metrics come from prom-client's collectDefaultMetrics (admin.ts).
 *
 * Invariants:
 * - Read at scrape time only: every family has a `collect()` that asks its source; no timers,
 *   nothing on the data path.
 * - Counters mirror monotonic counts kept elsewhere (the BPF map, the pool, the server): collect
 *   resets the family and sets it to the source's total, so a scrape never double-counts.
 * - No xDS source (local-file mode): no amesh_xds_* families at all (not a misleading 0).
 * - A labelled family whose source cannot answer (the BPF map gone after close, nftables capture)
 *   has no samples that scrape; an unlabelled one shows prom-client's 0. Never a failed scrape.
 * - Label values are bounded: reasons are the BPF contract's names, types the subscribed xDS
 *   types, identities the local workloads' service accounts.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { HbonePoolStats } from '../../hbone/pool.js';
import type { HboneServerStats } from '../../hbone/server.js';
import type { CertificateSnapshot } from '../../identity/certificate-manager.js';
import type { OverloadCount } from '../proxy/overload.js';

/** The xDS facts internals need (XdsStateSource.status() has this shape). */
export interface XdsInternals {
  connected: boolean;
  ready: boolean;
  reconnects: number;
  disconnects: number;
  updates: number;
  types: Record<string, { resources: number; lastNonce?: string; lastNack?: string; acks?: number; nacks?: number; lastAckedNonce?: string }>;
}

export interface InternalsSource {
  /** Packets per BPF reason (eBPF capture); undefined otherwise. May throw (map unreadable). */
  bpfReasons(): Record<string, number> | undefined;
  pool(): HbonePoolStats;
  hboneServer(): HboneServerStats;
  connections(): { live: number; inbound: number };
  /** Absent when the state does not come over xDS: then no amesh_xds_* families. */
  xds?: () => XdsInternals;
  certificates(): readonly CertificateSnapshot[];
  /** Enrolled (ambient, HBONE) workloads on this node. */
  enrolledPods(): number;
  /** Connections and streams refused by a resource cap (proxy/overload.ts), per reason and direction. */
  overload?: () => readonly OverloadCount[];
  /** Injected for tests; default Date.now. */
  now?: () => number;
}

/** The last path segment of a type URL: `istio.workload.Address`. */
export function xdsTypeLabel(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/** Run `read`; a throwing source means "no samples this scrape". */
function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

type Labels = Record<string, string>;

/** Registers the internals families on `registry`; call once per registry. */
export function registerInternals(registry: Registry, source: InternalsSource): void {
  const now = source.now ?? Date.now;

  /** A gauge family whose samples `read` returns ([labels, value] pairs) at each scrape. */
  const gauge = (name: string, help: string, labelNames: string[], read: () => Array<[Labels, number]> | undefined): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: Gauge) {
        this.reset();
        for (const [labels, value] of attempt(read) ?? []) this.set(labels, value);
      },
    });
  };
  const counter = (name: string, help: string, labelNames: string[], read: () => Array<[Labels, number]> | undefined): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: Counter) {
        this.reset();
        for (const [labels, value] of attempt(read) ?? []) this.inc(labels, value);
      },
    });
  };
  const one = (value: number | undefined): Array<[Labels, number]> | undefined => (value === undefined ? undefined : [[{}, value]]);

  counter('amesh_bpf_redirects_total', 'Packets the eBPF capture program handled, by verdict reason (the pinned amesh_reasons map, summed over CPUs; eBPF capture only)', ['reason'], () => {
    const reasons = source.bpfReasons();
    return reasons && Object.entries(reasons).map(([reason, n]): [Labels, number] => [{ reason }, n]);
  });

  gauge('amesh_hbone_pool_connections', 'HBONE client connections in the pool (open)', [], () => one(source.pool().connections));
  gauge('amesh_hbone_pool_dialing', 'HBONE client connections being dialled', [], () => one(source.pool().dialing));
  gauge('amesh_hbone_pool_streams', 'CONNECT streams open on pooled HBONE connections', [], () => one(source.pool().streams));
  counter('amesh_hbone_pool_dials_total', 'HBONE connections the pool dialled', [], () => one(source.pool().dials));

  gauge('amesh_hbone_server_sessions', 'Inbound HBONE sessions (TLS + HTTP/2 established)', [], () => one(source.hboneServer().sessions));
  gauge('amesh_hbone_server_handshaking', 'Inbound HBONE connections still in the TLS handshake', [], () => one(source.hboneServer().handshaking));
  gauge('amesh_hbone_server_streams', 'Inbound CONNECT streams open', [], () => one(source.hboneServer().streams));
  counter('amesh_hbone_server_streams_accepted_total', 'Inbound CONNECT streams accepted', [], () => one(source.hboneServer().acceptedStreams));
  counter('amesh_hbone_server_streams_refused_total', 'Inbound CONNECT streams refused (policy, bad target, draining)', [], () => one(source.hboneServer().refusedStreams));
  counter('amesh_hbone_server_connections_rejected_total', 'Inbound HBONE connections rejected before HTTP/2 (TLS failure, draining)', [], () => one(source.hboneServer().rejectedConnections));

  counter(
    'amesh_overload_rejections_total',
    'Connections and CONNECT streams refused early by a resource cap, by reason (workload_connections, pending_streams, header_size) and direction; the warn log names the workload and the setting to raise',
    ['reason', 'direction'],
    () => source.overload?.().map((c): [Labels, number] => [{ reason: c.reason, direction: c.direction }, c.count]),
  );

  gauge('amesh_connections_live', 'Proxied connections open now (all directions)', [], () => one(source.connections().live));
  gauge('amesh_inbound_connections_live', 'Inbound connections open now that policy admitted (re-checked on policy change)', [], () => one(source.connections().inbound));

  const xds = source.xds;
  if (xds) {
    gauge('amesh_xds_connected', '1 while the xDS stream to the control plane is up', [], () => one(xds().connected ? 1 : 0));
    gauge('amesh_xds_ready', '1 once a complete state arrived over xDS', [], () => one(xds().ready ? 1 : 0));
    counter('amesh_xds_reconnects_total', 'xDS stream attempts that failed or ended', [], () => one(xds().reconnects));
    counter('amesh_xds_disconnects_total', 'xDS streams lost after having been connected', [], () => one(xds().disconnects));
    counter('amesh_xds_updates_total', 'xDS updates applied to the mesh state', [], () => one(xds().updates));
    const perType =
      (read: (t: XdsInternals['types'][string]) => number | undefined) =>
      (): Array<[Labels, number]> =>
        Object.entries(xds().types).flatMap(([typeUrl, t]): Array<[Labels, number]> => {
          const v = read(t);
          return v === undefined ? [] : [[{ type: xdsTypeLabel(typeUrl) }, v]];
        });
    gauge('amesh_xds_resources', 'xDS resources held (accepted), per type', ['type'], perType((t) => t.resources));
    counter('amesh_xds_acks_total', 'xDS responses ACKed, per type', ['type'], perType((t) => t.acks));
    counter('amesh_xds_nacks_total', 'xDS responses NACKed (rejected in whole or part), per type', ['type'], perType((t) => t.nacks));
    gauge('amesh_xds_last_ack_info', 'The nonce of the last ACKed xDS response, per type (value always 1)', ['type', 'nonce'], () =>
      Object.entries(xds().types).flatMap(([typeUrl, t]): Array<[Labels, number]> => (t.lastAckedNonce !== undefined ? [[{ type: xdsTypeLabel(typeUrl), nonce: t.lastAckedNonce }, 1]] : [])),
    );
  }

  gauge('amesh_certificate_expiry_seconds', 'Seconds until the workload certificate expires (negative: expired), per SPIFFE identity', ['identity'], () =>
    source
      .certificates()
      .filter((c) => c.notAfter !== undefined)
      .map((c): [Labels, number] => [{ identity: c.identity }, Math.round((Date.parse(c.notAfter as string) - now()) / 1000)]),
  );
  gauge('amesh_certificates', 'Workload certificates by state (Available, Initializing, Unavailable)', ['state'], () => {
    const counts: Record<string, number> = { Available: 0, Initializing: 0, Unavailable: 0 };
    for (const c of source.certificates()) counts[c.state] = (counts[c.state] ?? 0) + 1;
    return Object.entries(counts).map(([state, n]): [Labels, number] => [{ state }, n]);
  });

  gauge('amesh_enrolled_pods', 'Ambient-enrolled (HBONE) workloads on this node', [], () => one(source.enrolledPods()));
}
