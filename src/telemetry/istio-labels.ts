/**
 * Istio's standard metric labels (DESIGN §8) and the guard that keeps their cardinality bounded.
 *
 * - TCP_LABELS: the `istio_tcp_*` families (node agents; waypoints and gateways for L4 passthrough).
 * - HTTP_LABELS: `istio_requests_total`, `istio_request_duration_milliseconds`,
 *   `istio_request_bytes`, `istio_response_bytes` (waypoints and gateways).
 * - Every label is always present; a value we do not know is `unknown` (Istio's convention),
 *   never an empty string.
 * - `SeriesGuard` admits at most `maxSeries` distinct label sets per metric; past that, new sets
 *   are folded into one set whose labels (except `reporter`) are `overflow`, and the fold is
 *   counted, so a flood of distinct peers cannot grow a proxy's memory without bound.
 */

export const UNKNOWN = 'unknown';
export const OVERFLOW = 'overflow';

export const TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

export const HTTP_LABELS = [...TCP_LABELS, 'response_code', 'grpc_response_status'] as const;

export type TcpLabel = (typeof TCP_LABELS)[number];
export type SourceLabel = Extract<TcpLabel, `source_${string}`>;
export type DestinationLabel = Extract<TcpLabel, `destination_${string}`>;

/** The `source_*` labels, in TCP_LABELS order (what one downstream peer determines). */
export const SOURCE_LABELS: readonly SourceLabel[] = TCP_LABELS.filter((l): l is SourceLabel => l.startsWith('source_'));
/** The `destination_*` labels, in TCP_LABELS order (what one upstream endpoint determines). */
export const DESTINATION_LABELS: readonly DestinationLabel[] = TCP_LABELS.filter((l): l is DestinationLabel => l.startsWith('destination_'));
export type HttpLabel = (typeof HTTP_LABELS)[number];
export type LabelSet<L extends string> = Record<L, string>;

/** `value` unless it is empty or absent, else `unknown`. */
export function labelValue(value: string | number | undefined | null): string {
  if (value === undefined || value === null) return UNKNOWN;
  const s = String(value);
  return s === '' ? UNKNOWN : s;
}

/** A label set with every name present and `unknown` where `partial` has nothing. */
export function fillLabels<L extends string>(names: readonly L[], partial: Partial<Record<L, string | number | undefined>>): LabelSet<L> {
  const out = {} as LabelSet<L>;
  for (const name of names) out[name] = labelValue(partial[name]);
  return out;
}

export const DEFAULT_MAX_SERIES = 2000;

export class SeriesGuard {
  private readonly seen = new Map<string, Set<string>>();
  /** How many label sets were folded into `overflow`, per metric. */
  readonly folded = new Map<string, number>();

  constructor(private readonly maxSeries = DEFAULT_MAX_SERIES) {}

  /** The labels to record `metric` under: `labels` itself, or the overflow set once the metric is full. */
  admit<L extends string>(metric: string, labels: LabelSet<L>): LabelSet<L> {
    let keys = this.seen.get(metric);
    if (!keys) this.seen.set(metric, (keys = new Set()));
    const key = JSON.stringify(labels);
    if (keys.has(key)) return labels;
    if (keys.size < this.maxSeries) {
      keys.add(key);
      return labels;
    }
    this.folded.set(metric, (this.folded.get(metric) ?? 0) + 1);
    const out = {} as LabelSet<L>;
    for (const name of Object.keys(labels) as L[]) out[name] = name === 'reporter' ? labels[name] : OVERFLOW;
    return out;
  }
}
