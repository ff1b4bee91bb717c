/**
 * The node agent's Istio L4 metrics (DESIGN §8) on the agent's Prometheus registry
 * (AdminServers.registry, served on :15020 /metrics):
 *   istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
 *   istio_tcp_received_bytes_total, istio_tcp_sent_bytes_total — labels TCP_LABELS (l4-labels.ts).
 *
 * Semantics:
 * - A connection is counted as opened once its outcome is known (established, or refused /
 *   failed), so opened and closed of one connection always fall on the same series: a refused or
 *   failed connection (a policy DENY, a failed connect, no route) is counted opened and closed at
 *   once with its `response_flags`. Denied connections are therefore visible in both families.
 * - Bytes, Istio's (Envoy's) direction for both reporters: `received` = request direction
 *   (client → server), `sent` = response direction (server → client).
 * - Bytes are counted while the connection lives: at each scrape the live connections' socket
 *   counters are read and the difference since the last read is added (no per-chunk work on the
 *   data path); at close the remainder (from the relay's exact totals) is added. The counters
 *   never go back: a final total below what a scrape already added adds nothing.
 * - Per connection: one label set (computed once, by the caller; L4LabelCache hands out one
 *   object per connection shape, whose series is then found by identity), else one key (the
 *   values joined) looked up in the agent's own series table; then plain integer additions — prom-client's
 *   per-`inc` label hashing is paid per series at scrape time (each counter's `collect` rewrites
 *   its values from the table), not per connection. The table is bounded by SeriesGuard
 *   (asked only for label sets not seen yet): past `maxSeries`, new sets go to `overflow`.
 */
import { Counter, type Registry } from 'prom-client';
import { DEFAULT_MAX_SERIES, SeriesGuard, TCP_LABELS, type LabelSet, type TcpLabel } from '../../telemetry/istio-labels.js';

/** Byte totals of a connection so far. */
export interface L4Bytes {
  /** Request direction: client → server. */
  received: number;
  /** Response direction: server → client. */
  sent: number;
}

export interface L4Meter {
  /** Adds what is left of `final` and counts the connection closed. Idempotent. */
  close(final: L4Bytes): void;
}

/** One label set's totals. */
interface Series {
  labels: LabelSet<TcpLabel>;
  opened: number;
  closed: number;
  received: number;
  sent: number;
}

interface LiveConnection {
  series: Series;
  read: () => L4Bytes;
  received: number;
  sent: number;
}

const SERIES_KEY = 'istio_tcp';

/** The values in TCP_LABELS order, joined by a control character no Kubernetes name or SPIFFE URI contains. */
function seriesKey(labels: LabelSet<TcpLabel>): string {
  let key = labels[TCP_LABELS[0]];
  for (let i = 1; i < TCP_LABELS.length; i++) key += '\u0001' + labels[TCP_LABELS[i]!];
  return key;
}

type Family = 'opened' | 'closed' | 'received' | 'sent';

export class L4Metrics {
  readonly opened: Counter<TcpLabel>;
  readonly closed: Counter<TcpLabel>;
  readonly received: Counter<TcpLabel>;
  readonly sent: Counter<TcpLabel>;
  readonly guard: SeriesGuard;
  private readonly series = new Map<string, Series>();
  /** The series of a label set object already seen (L4LabelCache hands out the same object per shape); series are never dropped. */
  private readonly seriesBySet = new WeakMap<LabelSet<TcpLabel>, Series>();
  private readonly live = new Set<LiveConnection>();

  constructor(registry: Registry, o: { maxSeries?: number } = {}) {
    this.guard = new SeriesGuard(o.maxSeries ?? DEFAULT_MAX_SERIES);
    const table = this.series;
    const flush = (): void => this.flush();
    const counter = (name: string, help: string, family: Family): Counter<TcpLabel> =>
      new Counter<TcpLabel>({
        name,
        help,
        labelNames: TCP_LABELS,
        registers: [registry],
        collect(this: Counter<TcpLabel>) {
          if (family === 'received' || family === 'sent') flush();
          this.reset();
          for (const s of table.values()) if (s[family] > 0) this.inc(s.labels, s[family]);
        },
      });
    this.opened = counter('istio_tcp_connections_opened_total', 'TCP connections opened (counted once the outcome is known; refused ones carry response_flags)', 'opened');
    this.closed = counter('istio_tcp_connections_closed_total', 'TCP connections closed', 'closed');
    // Both byte families bring the live connections up to date before they are read.
    this.received = counter('istio_tcp_received_bytes_total', 'Bytes received in the request direction (client to server)', 'received');
    this.sent = counter('istio_tcp_sent_bytes_total', 'Bytes sent in the response direction (server to client)', 'sent');
  }

  /** The series a connection's labels are recorded under (the guard may fold them into `overflow`). */
  private seriesFor(labels: LabelSet<TcpLabel>): Series {
    const seen = this.seriesBySet.get(labels);
    if (seen) return seen;
    const key = seriesKey(labels);
    let s = this.series.get(key);
    if (!s) {
      const admitted = this.guard.admit(SERIES_KEY, labels);
      const admittedKey = admitted === labels ? key : seriesKey(admitted);
      s = this.series.get(admittedKey);
      if (!s) this.series.set(admittedKey, (s = { labels: admitted, opened: 0, closed: 0, received: 0, sent: 0 }));
    }
    this.seriesBySet.set(labels, s);
    return s;
  }

  /** An established connection: opened now; `read` gives its byte totals so far (socket counters). */
  open(labels: LabelSet<TcpLabel>, read: () => L4Bytes): L4Meter {
    const series = this.seriesFor(labels);
    series.opened++;
    const c: LiveConnection = { series, read, received: 0, sent: 0 };
    this.live.add(c);
    return {
      close: (final) => {
        if (!this.live.delete(c)) return;
        this.add(c, final);
        series.closed++;
      },
    };
  }

  /** A connection refused or failed before any byte moved: opened and closed at once. */
  refused(labels: LabelSet<TcpLabel>): void {
    const series = this.seriesFor(labels);
    series.opened++;
    series.closed++;
  }

  /** How many connections are metered live. */
  get liveCount(): number {
    return this.live.size;
  }

  /** How many label sets are held. */
  get seriesCount(): number {
    return this.series.size;
  }

  /** Adds every live connection's bytes since the last flush. */
  flush(): void {
    for (const c of this.live) {
      let now: L4Bytes;
      try {
        now = c.read();
      } catch {
        continue;
      }
      this.add(c, now);
    }
  }

  private add(c: LiveConnection, total: L4Bytes): void {
    const received = total.received - c.received;
    const sent = total.sent - c.sent;
    if (received > 0) {
      c.series.received += received;
      c.received = total.received;
    }
    if (sent > 0) {
      c.series.sent += sent;
      c.sent = total.sent;
    }
  }
}
