/**
 * What a container probe checks and when, decided from the spec (pure). Defaults and rules are
 * Kubernetes': https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
 */
import type { Container, Probe } from './pod-types.js';

export type ProbeKind = 'startup' | 'liveness' | 'readiness';

export type ProbeAction =
  | { kind: 'http'; scheme: 'http' | 'https'; host: string; port: number; path: string; headers: Array<{ name: string; value: string }> }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'exec'; command: string[] };

export interface ProbeTiming {
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

export interface ProbePlan {
  kind: ProbeKind;
  action: ProbeAction;
  timing: ProbeTiming;
}

function resolvePort(port: number | string, container: Container): number | { error: string } {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = container.ports?.find((p) => p.name === port);
  return named ? named.containerPort : { error: `port "${port}" is not a named port of container ${container.name}` };
}

/** The probe's action and timing; `podIP` is the default host, as in Kubernetes. */
export function probePlan(kind: ProbeKind, probe: Probe, container: Container, podIP: string): ProbePlan | { error: string } {
  const timing: ProbeTiming = {
    initialDelayMs: (probe.initialDelaySeconds ?? 0) * 1000,
    periodMs: Math.max(1, probe.periodSeconds ?? 10) * 1000,
    timeoutMs: Math.max(1, probe.timeoutSeconds ?? 1) * 1000,
    // Liveness and startup probes must use 1 (the API server enforces it; we just apply it).
    successThreshold: kind === 'readiness' ? Math.max(1, probe.successThreshold ?? 1) : 1,
    failureThreshold: Math.max(1, probe.failureThreshold ?? 3),
  };
  if (probe.httpGet) {
    const port = resolvePort(probe.httpGet.port, container);
    if (typeof port !== 'number') return port;
    const path = probe.httpGet.path ?? '/';
    return {
      kind,
      timing,
      action: {
        kind: 'http',
        scheme: probe.httpGet.scheme?.toLowerCase() === 'https' ? 'https' : 'http',
        host: probe.httpGet.host || podIP,
        port,
        path: path.startsWith('/') ? path : `/${path}`,
        headers: probe.httpGet.httpHeaders ?? [],
      },
    };
  }
  if (probe.tcpSocket) {
    const port = resolvePort(probe.tcpSocket.port, container);
    if (typeof port !== 'number') return port;
    return { kind, timing, action: { kind: 'tcp', host: probe.tcpSocket.host || podIP, port } };
  }
  if (probe.exec?.command?.length) return { kind, timing, action: { kind: 'exec', command: probe.exec.command } };
  if (probe.grpc) return { error: `${kind} probe of container ${container.name}: grpc probes are not supported in the amesh sandbox` };
  return { error: `${kind} probe of container ${container.name} has no httpGet, tcpSocket or exec action` };
}

export interface ProbeCounters {
  /** The probe's current verdict. */
  healthy: boolean;
  successes: number;
  failures: number;
}

/** Folds one probe result into the counters; `changed` says whether the verdict flipped. */
export function applyProbeResult(counters: ProbeCounters, ok: boolean, timing: ProbeTiming): { counters: ProbeCounters; changed: boolean } {
  const successes = ok ? counters.successes + 1 : 0;
  const failures = ok ? 0 : counters.failures + 1;
  let healthy = counters.healthy;
  if (ok && !healthy && successes >= timing.successThreshold) healthy = true;
  if (!ok && healthy && failures >= timing.failureThreshold) healthy = false;
  return { counters: { healthy, successes, failures }, changed: healthy !== counters.healthy };
}
