/**
 * Runs one probe of one container instance on its schedule: the first attempt after
 * `initialDelay`, then one `period` after each attempt finished (attempts never overlap).
 * Reports only verdict changes. Owned by the pod worker, which stops it when the container
 * instance ends.
 */
import type { Clock } from './clock.js';
import { applyProbeResult, type ProbeCounters, type ProbePlan } from './probe-plan.js';

export interface ProberOptions {
  plan: ProbePlan;
  /** One attempt: true = success. Must respect `plan.timing.timeoutMs` itself. */
  attempt: () => Promise<boolean>;
  /** Called when the verdict flips. */
  onChange: (healthy: boolean) => void;
  clock: Clock;
}

export class Prober {
  private counters: ProbeCounters;
  private timer: { cancel(): void } | undefined;
  private stopped = false;

  constructor(private readonly o: ProberOptions) {
    // Readiness and startup start failed (nothing is ready before it proved it); liveness
    // starts healthy (a container is alive until proven otherwise).
    this.counters = { healthy: o.plan.kind === 'liveness', successes: 0, failures: 0 };
  }

  get healthy(): boolean {
    return this.counters.healthy;
  }

  start(): void {
    this.schedule(this.o.plan.timing.initialDelayMs);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    let ok = false;
    try {
      ok = await this.o.attempt();
    } catch {
      ok = false;
    }
    if (this.stopped) return;
    const { counters, changed } = applyProbeResult(this.counters, ok, this.o.plan.timing);
    this.counters = counters;
    if (changed) this.o.onChange(counters.healthy);
    this.schedule(this.o.plan.timing.periodMs);
  }
}
