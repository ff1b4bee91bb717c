/**
 * Request mirroring (Istio `mirror` + `mirrorPercentage`, Gateway API RequestMirror): a copy of
 * the request goes to another cluster, fire and forget — its response is drained and dropped,
 * its failure only logged, and it never slows or fails the main request.
 *
 * Bounded: at most `maxInFlight` mirrors at once (more are skipped and counted), and a mirror
 * whose body copy falls more than `maxBufferedBytes` behind is aborted rather than buffered.
 * The mirrored Host gets Envoy's `-shadow` suffix so the receiver can tell copies apart.
 */
export interface MirrorLimits {
  maxInFlight: number;
  maxBufferedBytes: number;
}

export const DEFAULT_MIRROR_LIMITS: Readonly<MirrorLimits> = Object.freeze({ maxInFlight: 256, maxBufferedBytes: 1024 * 1024 });

/** Mirror this request? `percent` absent = 100. `random()` in [0, 1). */
export function shouldMirror(percent: number | undefined, random: () => number): boolean {
  const p = percent ?? 100;
  if (p >= 100) return true;
  if (p <= 0) return false;
  return random() * 100 < p;
}

/** `host:port` → `host-shadow:port` (Envoy's shadow host). */
export function shadowAuthority(authority: string): string {
  const m = /^(\[[^\]]+\]|[^:]+)(:\d+)?$/.exec(authority);
  if (!m) return `${authority}-shadow`;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

/** Counts mirrors in flight; `tryAcquire` false = skip this one. */
export class MirrorBudget {
  private inFlight = 0;
  skipped = 0;
  sent = 0;

  constructor(readonly limits: MirrorLimits = DEFAULT_MIRROR_LIMITS) {}

  tryAcquire(): boolean {
    if (this.inFlight >= this.limits.maxInFlight) {
      this.skipped++;
      return false;
    }
    this.inFlight++;
    this.sent++;
    return true;
  }

  release(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
  }

  stats(): { inFlight: number; sent: number; skipped: number } {
    return { inFlight: this.inFlight, sent: this.sent, skipped: this.skipped };
  }
}
