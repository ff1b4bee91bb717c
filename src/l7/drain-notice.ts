/**
 * The first phase of an L7 proxy's drain: keep serving NEW connections after SIGTERM until the
 * senders have moved away (Istio's `terminationDrainDuration`, Envoy's drain time).
 *
 * Why: when a waypoint is deleted or rolled, its pod is told to stop at about the time the
 * controller pushes the change to the node agents; until each agent has applied it (1–10 s on a
 * loaded node) they still send new connections here. Closing the listeners at SIGTERM resets
 * those. So the proxy keeps accepting until no new stream arrived for `quietMs` (and at least
 * `minMs` passed), or `maxMs` is reached — then it closes listeners and drains in-flight work.
 */
export interface DrainNoticeOptions {
  /** A counter that grows with every new stream/connection accepted. */
  accepted: () => number;
  /** Keep accepting at least this long. */
  minMs: number;
  /** …and until nothing new arrived for this long. */
  quietMs: number;
  /** Never longer than this. */
  maxMs: number;
  /** Sampling period (default 100 ms). */
  pollMs?: number;
  now?: () => number;
}

export interface DrainNoticeResult {
  waitedMs: number;
  /** 'quiet' when the senders went away, 'max' when the cap cut it short. */
  ended: 'quiet' | 'max';
  /** New streams accepted during the notice period. */
  acceptedDuring: number;
}

export async function drainNotice(opts: DrainNoticeOptions): Promise<DrainNoticeResult> {
  const now = opts.now ?? Date.now;
  const pollMs = opts.pollMs ?? 100;
  const start = now();
  const first = opts.accepted();
  let last = first;
  let lastChange = start;
  for (;;) {
    const t = now();
    const seen = opts.accepted();
    if (seen !== last) {
      last = seen;
      lastChange = t;
    }
    if (t - start >= opts.maxMs) return { waitedMs: t - start, ended: 'max', acceptedDuring: seen - first };
    if (t - start >= opts.minMs && t - lastChange >= opts.quietMs) return { waitedMs: t - start, ended: 'quiet', acceptedDuring: seen - first };
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
