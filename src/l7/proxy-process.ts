/**
 * Lifecycle pieces the two L7 proxy processes (src/waypoint/app.ts, src/gateway/app.ts) share:
 * building with a certificate source that is closed again when construction fails, the admin
 * servers with their readiness document, what a config-applied log line counts, and the
 * telemetry (Istio metrics on the admin registry, access-log gating, tracing) one process owns,
 * and the process's garbage-collector setting (`tuneProxyHeap`).
 */
import v8 from 'node:v8';
import { installLeanAsyncResourceBind } from '../runtime/lean-async-resource-bind.js';
import { AdminServers } from '../node-agent/admin.js';
import type { CertificateProvider } from '../identity/certificate-provider.js';
import type { Logger } from '../telemetry/logger.js';
import type { TracingSettings } from '../telemetry/telemetry-config.js';
import type { WaypointConfig } from './config.js';
import { L7Metrics } from './l7-metrics.js';
import { ProxyTelemetry, type ProxyRole } from './pipeline/proxy-telemetry.js';
import type { TracingHook } from './pipeline/trace-hook.js';
import { openCertificateSource, type CertificateSource } from './mesh-upstream.js';
import type { ProxySettings } from './proxy-settings.js';

/**
 * Turns V8's allocation-site pretenuring off for the proxy process. Under load (many requests in
 * flight at a young collection) V8 decides that the request path's allocation sites make
 * long-lived objects and allocates them straight in the old generation from then on; they are
 * not (they live one request), so afterwards, at any rate, every request left ~7 KB in the old
 * generation: young collections grew the heap by ~2.4 MB each and became slow (the old→young
 * pointers they must scan), and full collections came every ~20 s. Measured on the waypoint bench
 * at 1000 req/s after a max-rate run: young collections 5–14 ms → 1.7–2.0 ms, heap flat instead of
 * +2.4 MB per collection; in-process, GC time in 8 s at 1000 req/s 356–545 ms → 79–160 ms.
 * Idempotent; safe at run time (V8 reads the flag at each collection; Node 20 and 24).
 */
export function tuneProxyHeap(): void {
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
}

/** Opens the certificate source, then constructs the proxy; the source is closed if that throws. */
export async function buildWithCertificates<T>(settings: Readonly<ProxySettings>, logger: Logger, role: string, provider: CertificateProvider | undefined, construct: (source: CertificateSource) => T): Promise<T> {
  tuneProxyHeap();
  // Upstream HBONE CONNECTs go through http2 request(), which binds an AsyncResource (see there).
  installLeanAsyncResourceBind();
  const certificates = await openCertificateSource(settings, logger, role, provider);
  try {
    return construct(certificates);
  } catch (err) {
    certificates.close();
    throw err;
  }
}

export interface ProxyAdminOptions {
  /** `waypoint` / `gateway`: the readiness document's key for `name`. */
  role: string;
  /** `<namespace>/<name>`. */
  name: string;
  identityUri: string;
  ready: () => boolean;
  version: () => number;
  draining: () => boolean;
  /** Undefined when the proxy has no xDS client (tests). */
  xdsConnected: (() => boolean) | undefined;
  configDump: () => unknown;
  quit: () => void;
  logger: Logger;
}

/** Readiness (`/healthz/ready` with the proxy's name, identity, config version, xDS state), admin, metrics. */
export function proxyAdminServers(o: ProxyAdminOptions): AdminServers {
  return new AdminServers({
    ready: () => ({
      ready: o.ready(),
      [o.role]: o.name,
      identity: o.identityUri,
      configVersion: o.version(),
      ...(o.xdsConnected ? { xds: { connected: o.xdsConnected() } } : {}),
      ...(o.draining() ? { draining: true } : {}),
    }),
    configDump: o.configDump,
    quit: o.quit,
    logger: o.logger,
  });
}

/** Routes over every service port of a config (log lines). */
export function routeCount(config: WaypointConfig): number {
  return config.services.reduce((n, sv) => n + sv.ports.reduce((m, p) => m + p.routes.length, 0), 0);
}

/** What a proxy process needs of its tracer (src/telemetry/tracing.ts ProxyTracing). */
export interface ProxyTracer extends TracingHook {
  /** Applied with every config (`config.telemetry?.tracing`); undefined turns tracing off. */
  configure(settings: TracingSettings | undefined): void;
  /** Flushes queued spans (shutdown). */
  close(): Promise<void>;
  /** Whether spans are produced now. */
  readonly enabled?: boolean;
}

/** The metrics and telemetry of one proxy process: `reporter` waypoint, or source at an ingress gateway. */
export function proxyTelemetry(o: { role: ProxyRole; admin: AdminServers; accessLog: Logger; logger: Logger; clusterId: string; tracing?: ProxyTracer | undefined }): { telemetry: ProxyTelemetry; metrics: L7Metrics } {
  const metrics = new L7Metrics(o.admin.registry, { reporter: o.role === 'waypoint' ? 'waypoint' : 'source' });
  const telemetry = new ProxyTelemetry({ role: o.role, accessLog: o.accessLog, logger: o.logger, metrics, clusterId: o.clusterId, ...(o.tracing ? { tracing: o.tracing } : {}) });
  return { telemetry, metrics };
}

/** The telemetry part of a config dump: what the applied Telemetry says and what the metrics folded. */
export function telemetryDump(config: WaypointConfig | undefined, metrics: L7Metrics, tracer: ProxyTracer): unknown {
  return {
    accessLogging: config?.telemetry?.accessLogging ?? { enabled: true },
    tracing: config?.telemetry?.tracing ?? null,
    tracingActive: tracer.enabled ?? config?.telemetry?.tracing !== undefined,
    sources: config?.telemetry?.sources ?? [],
    metricsFolded: Object.fromEntries(metrics.folded),
  };
}
