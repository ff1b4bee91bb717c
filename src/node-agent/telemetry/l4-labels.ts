/**
 * The Istio label set of one L4 connection (`istio_tcp_*`, DESIGN §8), as ztunnel derives it —
 * a pure function of what the proxy knows about the connection.
 *
 * - `reporter`: `source` for outbound connections (the agent serves the client pod), `destination`
 *   for inbound ones (HBONE :15008, captured plaintext :15006, and same-node tunnels admitted
 *   in-process — a same-node connection is reported twice, once per side, as ztunnel does).
 * - Workload labels from the mesh state: `*_workload` = workloadName (the Deployment's name, else
 *   the pod's), `*_workload_namespace`, `*_app` and `*_canonical_service` = canonicalName,
 *   `*_version` and `*_canonical_revision` = canonicalRevision (absent: Istio's defaults, the
 *   workload name and `latest`), `*_cluster` = the workload's clusterId else the agent's. `*_principal` = the SPIFFE identity `spiffe://td/ns/N/sa/SA`: the
 *   peer certificate's for inbound sources, the state's otherwise. An unknown peer keeps every
 *   label `unknown` (fillLabels).
 * - `destination_service` = the addressed Service's hostname (+ `_name`, `_namespace`); traffic
 *   addressed to a pod IP has none. Through a waypoint the destination workload/principal are
 *   the waypoint pod's (the mTLS peer); the service is the one the client addressed.
 * - `connection_security_policy`: `mutual_tls` for HBONE, `none` for plaintext (passthrough out,
 *   captured plaintext in); `request_protocol` is always `tcp`.
 * - `response_flags` (ztunnel's values where it has one, Envoy's otherwise):
 *   `-` established; `DENY` refused by an AuthorizationPolicy (here, or — outbound — the peer's
 *   401); `CONNECT` the upstream / tunnel connect failed; `UH` no healthy endpoint or waypoint
 *   pod; `NR` no route (loop protection, no such service port, an unknown source or waypoint);
 *   `UO` refused by a resource cap (proxy/overload.ts: connections per workload, pending CONNECTs).
 */
import { fillLabels, TCP_LABELS, type LabelSet, type TcpLabel } from '../../telemetry/istio-labels.js';
import type { Service, Workload } from '../state/types.js';

export type Reporter = 'source' | 'destination';

export const RESPONSE_FLAGS = {
  none: '-',
  denied: 'DENY',
  connectFailure: 'CONNECT',
  noHealthyUpstream: 'UH',
  noRoute: 'NR',
  overflow: 'UO',
} as const;
export type ResponseFlag = (typeof RESPONSE_FLAGS)[keyof typeof RESPONSE_FLAGS];

/** What the proxy knows about a connection when its outcome is known. */
export interface L4Facts {
  reporter: Reporter;
  source?: Workload | undefined;
  /** The source's SPIFFE URI; undefined = the source workload's identity in the state; null = none (plaintext peer). */
  sourceIdentity?: string | null | undefined;
  destination?: Workload | undefined;
  /** The destination's SPIFFE URI; defaults to the destination workload's identity in the state. */
  destinationIdentity?: string | undefined;
  /** The Service the client addressed. */
  service?: Service | undefined;
  /** HBONE (mutual TLS) or plaintext. */
  mtls: boolean;
  responseFlags: ResponseFlag;
}

/** The mesh-wide defaults a workload's labels fall back to. */
export interface LabelDefaults {
  trustDomain: string;
  /** The agent's cluster id (AMESH_CLUSTER_ID). */
  clusterId: string;
}

export function spiffeIdentity(w: Workload, trustDomain: string): string {
  return `spiffe://${w.trustDomain ?? trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
}

function workloadLabels(w: Workload | undefined, d: LabelDefaults): { workload?: string; namespace?: string; app?: string; version?: string; cluster?: string } {
  if (!w) return {};
  const workload = w.workloadName || w.name;
  // Istio's defaults when the canonical labels are absent: the workload name and `latest`.
  return { workload, namespace: w.namespace, app: w.canonicalName || workload, version: w.canonicalRevision || 'latest', cluster: w.clusterId || d.clusterId };
}

export function l4Labels(f: L4Facts, d: LabelDefaults): LabelSet<TcpLabel> {
  const src = workloadLabels(f.source, d);
  const dst = workloadLabels(f.destination, d);
  // null: the peer proved no identity (plaintext) — never fall back to the state's.
  const sourcePrincipal = f.sourceIdentity !== undefined ? f.sourceIdentity : f.source ? spiffeIdentity(f.source, d.trustDomain) : undefined;
  const destinationPrincipal = f.destinationIdentity ?? (f.destination ? spiffeIdentity(f.destination, d.trustDomain) : undefined);
  return fillLabels<TcpLabel>(
    TCP_LABELS,
    {
      reporter: f.reporter,
      source_workload: src.workload,
      source_workload_namespace: src.namespace,
      source_principal: sourcePrincipal ?? undefined,
      source_app: src.app,
      source_version: src.version,
      source_canonical_service: src.app,
      source_canonical_revision: src.version,
      source_cluster: src.cluster,
      destination_service: f.service?.hostname,
      destination_service_namespace: f.service?.namespace,
      destination_service_name: f.service?.name,
      destination_workload: dst.workload,
      destination_workload_namespace: dst.namespace,
      destination_principal: destinationPrincipal,
      destination_app: dst.app,
      destination_version: dst.version,
      destination_canonical_service: dst.app,
      destination_canonical_revision: dst.version,
      destination_cluster: dst.cluster,
      request_protocol: 'tcp',
      response_flags: f.responseFlags,
      connection_security_policy: f.mtls ? 'mutual_tls' : 'none',
    },
  );
}

/** Stands in for an absent workload or service in L4LabelCache's identity maps. */
const ABSENT: object = {};

/**
 * l4Labels, memoized per connection shape. A connection's label set is a pure function of the
 * workload and service objects the proxy looked up and a few strings; the mesh state never
 * changes those objects (a config change builds new ones), so the set built for the first
 * connection of a shape serves every later one — and the metrics find its series by the same
 * object (L4Metrics keys a WeakMap by it). Building it (two dozen strings in a fresh object,
 * about 1 KB) was the largest allocation per connection after the HTTP/2 stream.
 *
 * Holds: workload and service objects weakly, so a replaced state's entries go with it; per
 * (source, destination, service) at most MAX_SHAPES label sets (identities, flags, mTLS), the
 * oldest dropped past that — a peer presenting ever new identities cannot grow it. Sets are frozen.
 */
export class L4LabelCache {
  static readonly MAX_SHAPES = 64;
  private readonly bySource = new WeakMap<object, WeakMap<object, WeakMap<object, Map<string, LabelSet<TcpLabel>>>>>();

  constructor(private readonly defaults: LabelDefaults) {}

  labels(f: L4Facts): LabelSet<TcpLabel> {
    const source = f.source ?? ABSENT;
    const destination = f.destination ?? ABSENT;
    const service = f.service ?? ABSENT;
    let byDestination = this.bySource.get(source);
    if (!byDestination) this.bySource.set(source, (byDestination = new WeakMap()));
    let byService = byDestination.get(destination);
    if (!byService) byDestination.set(destination, (byService = new WeakMap()));
    let shapes = byService.get(service);
    if (!shapes) byService.set(service, (shapes = new Map()));
    // \u0001 joins, \u0002 marks a null source identity (a plaintext peer) apart from undefined.
    const key = `${f.reporter}\u0001${f.sourceIdentity === null ? '\u0002' : (f.sourceIdentity ?? '')}\u0001${f.destinationIdentity ?? ''}\u0001${f.mtls ? 1 : 0}\u0001${f.responseFlags}`;
    let set = shapes.get(key);
    if (!set) {
      if (shapes.size >= L4LabelCache.MAX_SHAPES) shapes.delete(shapes.keys().next().value!);
      set = Object.freeze(l4Labels(f, this.defaults));
      shapes.set(key, set);
    }
    return set;
  }
}
