/**
 * The proxy's sampler: Istio's `randomSamplingPercentage` for traces the proxy starts, the
 * caller's decision for traces it continues.
 *
 * Invariants:
 *   - A request with a parent (W3C or B3) follows the parent's sampled flag, whatever the
 *     percentage (ParentBasedSampler's remote-parent rules): a trace is never cut in half.
 *   - Without a parent: 0 % never samples, 100 % always samples (TraceIdRatioBasedSampler alone
 *     would drop one trace id in 2^32 at ratio 1), anything between samples that fraction.
 *   - `setPercentage` takes effect for the next span: the sampler is handed to the tracer
 *     provider once and mutated, so a sampling change does not rebuild the exporter pipeline.
 *
 * The fraction comes from the trace id (TraceIdRatioBasedSampler, so every proxy that starts the
 * same trace id decides alike), or from `random()` when one is injected (tests, and callers that
 * want Envoy's per-request coin).
 */
import type { Context } from '@opentelemetry/api';
import { ParentBasedSampler, SamplingDecision, TraceIdRatioBasedSampler, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace-base';

const SAMPLED: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED });
const DROPPED: SamplingResult = Object.freeze({ decision: SamplingDecision.NOT_RECORD });

/** The root decision: a percentage that can change while the provider lives. */
export class PercentageSampler implements Sampler {
  private percentage = 0;
  private byTraceId = new TraceIdRatioBasedSampler(0);

  constructor(private readonly random?: () => number) {}

  setPercentage(percentage: number): void {
    const clamped = Number.isFinite(percentage) ? Math.min(100, Math.max(0, percentage)) : 0;
    if (clamped === this.percentage) return;
    this.percentage = clamped;
    this.byTraceId = new TraceIdRatioBasedSampler(clamped / 100);
  }

  getPercentage(): number {
    return this.percentage;
  }

  shouldSample(context: Context, traceId: string): SamplingResult {
    if (this.percentage >= 100) return SAMPLED;
    if (this.percentage <= 0) return DROPPED;
    if (this.random) return this.random() * 100 < this.percentage ? SAMPLED : DROPPED;
    return this.byTraceId.shouldSample(context, traceId);
  }

  toString(): string {
    return `Percentage{${this.percentage}}`;
  }
}

/** Parent-based around `root`: remote and local parents decide for their children. */
export function proxySampler(root: PercentageSampler): Sampler {
  return new ParentBasedSampler({ root });
}
