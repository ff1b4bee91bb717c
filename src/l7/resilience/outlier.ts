/**
 * Passive health of a cluster's endpoints: which are ejected from load balancing now.
 *
 * With a DestinationRule `outlierDetection` (EnvoyOutlierDetector), Envoy's consecutive-error
 * detection with Istio's mapping (split_external_local_origin_errors off):
 * - A response ≥ 500 counts towards `consecutive5xxErrors`; 502/503/504 also towards
 *   `consecutiveGatewayErrors` (another 5xx resets that streak); a local failure (connect failure,
 *   reset, timeout — Envoy maps them to 503/504) counts towards both; a response < 500 resets both.
 * - Ejection is immediate when a streak reaches its threshold (the streak restarts either way),
 *   unless `maxEjectionPercent` is reached: ejection is allowed while ejected/total×100 is below
 *   it, so the first ejection always happens when it is above 0 (Envoy: "will eject at least one
 *   host regardless of the value").
 * - An ejection lasts min(baseEjectionTime × multiplier, max_ejection_time = 300 s); the
 *   multiplier grows by one per ejection and shrinks by one per interval the endpoint spends
 *   un-ejected. Re-admission happens on the interval sweep (ticks every `intervalMs`), so an
 *   ejection lasts until the first tick at least that long after it — as in Envoy.
 * - The sweep is evaluated lazily: every read or write passes `now` and the ticks since the last
 *   evaluation are applied then (arithmetically, any number of them). Deterministic under test,
 *   no timers to own; tick phase starts at the first `now` the detector sees.
 *
 * Without outlierDetection (PassiveDetector), the waypoint's own default stays: 5 consecutive
 * connect failures eject an endpoint for 10 s, re-admitted exactly then; nothing is capped.
 *
 * In both, the balancer panics (uses every endpoint) when none is healthy, or fewer than
 * `minHealthPercent` are (Istio minHealthPercent = Envoy's healthy panic threshold).
 */
import type { OutlierDetection } from '../config.js';

export type LocalFailure = 'connect' | 'reset' | 'timeout';

/** The outcome of one upstream attempt. */
export interface UpstreamResult {
  /** The response status, when one came back. */
  status?: number;
  /** No response: why. */
  failure?: LocalFailure;
}

/** The outlier state of one endpoint (part of the balancer's EndpointState). */
export interface OutlierState {
  /** Connect failures in a row (the passive default). */
  consecutiveFailures: number;
  consecutive5xx: number;
  consecutiveGatewayErrors: number;
  ejected: boolean;
  /** When the current ejection began (ms). */
  ejectedAt: number;
  /** When the current ejection ends (ms); 0 = healthy. */
  ejectedUntil: number;
  /** Envoy's ejection backoff multiplier. */
  ejectionMultiplier: number;
  /** Ejections so far. */
  timesEjected: number;
}

export function initialOutlierState(): OutlierState {
  return { consecutiveFailures: 0, consecutive5xx: 0, consecutiveGatewayErrors: 0, ejected: false, ejectedAt: 0, ejectedUntil: 0, ejectionMultiplier: 0, timesEjected: 0 };
}

export interface OutlierDetector {
  /** Below this share of healthy endpoints (percent), the balancer ignores ejections. */
  readonly minHealthPercent: number;
  /** Applies the sweeps due by `now` (re-admissions, multiplier decay). */
  advance(hosts: readonly OutlierState[], now: number): void;
  /** Feeds one result of `host`; true when it got ejected. Call `advance(now)` first. */
  record(host: OutlierState, result: UpstreamResult, hosts: readonly OutlierState[], now: number): boolean;
  /** A connection to `host` was established. */
  connected(host: OutlierState): void;
  /** Carries the sweep phase over from the detector this one replaces (same settings). */
  inherit(previous: OutlierDetector): void;
}

/** Envoy's max_ejection_time default (Istio does not set it). */
export const MAX_EJECTION_TIME_MS = 300_000;

export interface PassivePolicy {
  consecutiveFailures: number;
  ejectionMs: number;
}

export const DEFAULT_PASSIVE: Readonly<PassivePolicy> = Object.freeze({ consecutiveFailures: 5, ejectionMs: 10_000 });

/** The waypoint's default without outlierDetection: connect failures only, fixed ejection, no cap. */
export class PassiveDetector implements OutlierDetector {
  readonly minHealthPercent = 0;

  constructor(readonly policy: PassivePolicy = DEFAULT_PASSIVE) {}

  advance(hosts: readonly OutlierState[], now: number): void {
    for (const h of hosts) if (h.ejected && h.ejectedUntil <= now) readmit(h);
  }

  record(host: OutlierState, result: UpstreamResult, _hosts: readonly OutlierState[], now: number): boolean {
    if (result.failure !== 'connect') {
      host.consecutiveFailures = 0;
      return false;
    }
    host.consecutiveFailures++;
    if (host.consecutiveFailures < this.policy.consecutiveFailures) return false;
    host.consecutiveFailures = 0;
    host.ejected = true;
    host.ejectedAt = now;
    host.ejectedUntil = now + this.policy.ejectionMs;
    host.timesEjected++;
    return true;
  }

  connected(host: OutlierState): void {
    host.consecutiveFailures = 0;
  }

  inherit(): void {}
}

export class EnvoyOutlierDetector implements OutlierDetector {
  readonly minHealthPercent: number;
  /** The last sweep applied; undefined until the first `now` is seen. */
  private lastTick: number | undefined;
  private readonly intervalMs: number;

  constructor(
    readonly settings: OutlierDetection,
    private readonly maxEjectionTimeMs: number = MAX_EJECTION_TIME_MS,
  ) {
    this.minHealthPercent = settings.minHealthPercent ?? 0;
    // A zero interval would make every instant a sweep; 1 ms is the finest Envoy accepts.
    this.intervalMs = Math.max(1, settings.intervalMs);
  }

  inherit(previous: OutlierDetector): void {
    if (previous instanceof EnvoyOutlierDetector && previous.intervalMs === this.intervalMs) this.lastTick = previous.lastTick;
  }

  advance(hosts: readonly OutlierState[], now: number): void {
    if (this.lastTick === undefined) {
      this.lastTick = now;
      return;
    }
    const ticks = Math.floor((now - this.lastTick) / this.intervalMs);
    if (ticks <= 0) return;
    const from = this.lastTick;
    this.lastTick = from + ticks * this.intervalMs;
    for (const h of hosts) this.sweep(h, from, ticks);
  }

  /** Applies sweeps at from + k×interval, k = 1..ticks, to one endpoint. */
  private sweep(h: OutlierState, from: number, ticks: number): void {
    let healthyTicks = ticks;
    if (h.ejected) {
      // The first sweep at or after the ejection's end re-admits; the sweeps after it see a
      // healthy endpoint (Envoy decays the multiplier only on sweeps that find it un-ejected).
      const readmitTick = Math.max(1, Math.ceil((h.ejectedAt + this.ejectionTime(h) - from) / this.intervalMs));
      if (readmitTick > ticks) return;
      readmit(h);
      healthyTicks = ticks - readmitTick;
    }
    h.ejectionMultiplier = Math.max(0, h.ejectionMultiplier - healthyTicks);
  }

  private ejectionTime(h: OutlierState): number {
    return Math.min(this.settings.baseEjectionTimeMs * h.ejectionMultiplier, this.maxEjectionTimeMs);
  }

  record(host: OutlierState, result: UpstreamResult, hosts: readonly OutlierState[], now: number): boolean {
    // Results of requests still in flight to an ejected endpoint change nothing: its streaks
    // restart when it is re-admitted.
    if (host.ejected) return false;
    let fiveXx = false;
    let gateway = false;
    if (result.failure !== undefined) {
      fiveXx = true;
      gateway = true;
    } else if (result.status !== undefined) {
      fiveXx = result.status >= 500;
      gateway = result.status === 502 || result.status === 503 || result.status === 504;
    } else {
      return false;
    }
    if (!fiveXx) {
      host.consecutive5xx = 0;
      host.consecutiveGatewayErrors = 0;
      return false;
    }
    host.consecutive5xx++;
    host.consecutiveGatewayErrors = gateway ? host.consecutiveGatewayErrors + 1 : 0;
    const { consecutive5xxErrors, consecutiveGatewayErrors } = this.settings;
    if (consecutive5xxErrors !== undefined && consecutive5xxErrors > 0 && host.consecutive5xx >= consecutive5xxErrors) {
      host.consecutive5xx = 0;
      if (this.eject(host, hosts, now)) return true;
    }
    if (consecutiveGatewayErrors !== undefined && consecutiveGatewayErrors > 0 && host.consecutiveGatewayErrors >= consecutiveGatewayErrors) {
      host.consecutiveGatewayErrors = 0;
      if (this.eject(host, hosts, now)) return true;
    }
    return false;
  }

  private eject(host: OutlierState, hosts: readonly OutlierState[], now: number): boolean {
    const ejected = hosts.reduce((n, h) => n + (h.ejected ? 1 : 0), 0);
    if (hosts.length === 0 || (100 * ejected) / hosts.length >= this.settings.maxEjectionPercent) return false;
    const base = this.settings.baseEjectionTimeMs;
    host.ejected = true;
    host.ejectedAt = now;
    host.timesEjected++;
    // Envoy stops growing the multiplier once the ejection time is past max_ejection_time.
    if (host.ejectionMultiplier * base < this.maxEjectionTimeMs + base) host.ejectionMultiplier++;
    host.ejectedUntil = this.readmissionAt(now + this.ejectionTime(host));
    return true;
  }

  /** The first sweep at or after `t`. */
  private readmissionAt(t: number): number {
    const last = this.lastTick ?? t;
    return last + Math.max(1, Math.ceil((t - last) / this.intervalMs)) * this.intervalMs;
  }

  connected(): void {}
}

function readmit(h: OutlierState): void {
  h.ejected = false;
  h.ejectedUntil = 0;
  // Fresh streaks: a near-threshold streak must not re-eject on one more error.
  h.consecutive5xx = 0;
  h.consecutiveGatewayErrors = 0;
  h.consecutiveFailures = 0;
}

/** The detector for a cluster: Envoy's with outlierDetection, else the passive default. */
export function outlierDetectorFor(settings: OutlierDetection | undefined, passive: PassivePolicy = DEFAULT_PASSIVE): OutlierDetector {
  return settings ? new EnvoyOutlierDetector(settings) : new PassiveDetector(passive);
}
