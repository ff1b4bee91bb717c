/**
 * What the Istio `Telemetry` resources (telemetry.istio.io) resolve to for one proxy or workload:
 * the controller computes it (src/controller/translate/telemetry.ts) and pushes it — to waypoints
 * and gateways inside their WaypointConfig (`telemetry`), to node agents as TELEMETRY_TYPE_URL
 * resources, one per namespace that has Telemetry (plus the root namespace = mesh-wide).
 *
 * Resolution (Istio's): workload selector / targetRefs beat the namespace's Telemetry, which beats
 * the root namespace's (mesh-wide); fields not set at a narrower scope are inherited. The
 * controller does the merge; proxies only look up the narrowest entry (`telemetryFor`).
 *
 * Without any Telemetry, DEFAULT_TELEMETRY applies: access logs on, no filter, no tracing.
 */
import { z } from 'zod';

export const TELEMETRY_TYPE_URL = 'type.googleapis.com/amesh.telemetry.v1.Telemetry';

export interface AccessLogSettings {
  /** Telemetry `accessLogging[].disabled` inverted. */
  enabled: boolean;
  /** Telemetry `accessLogging[].filter.expression`: a CEL subset (src/telemetry/log-filter.ts); only matching entries are logged. */
  filter?: string;
}

export interface TracingSettings {
  /** The meshConfig extension provider's name. */
  provider: string;
  /** OTLP/HTTP traces URL, e.g. `http://otel-collector.observability.svc.cluster.local:4318/v1/traces`. */
  endpoint: string;
  /** Telemetry `tracing[].randomSamplingPercentage` (0–100); default 1 (Istio's default). */
  samplingPercentage: number;
  /** Telemetry `tracing[].customTags` with `literal.value` (other kinds are ignored with a status note). */
  customTags?: Record<string, string>;
}

export interface TelemetrySettings {
  accessLogging: AccessLogSettings;
  /** Absent: no spans (headers still pass through unchanged). */
  tracing?: TracingSettings;
  /** The Telemetry objects that decided, `namespace/name`, narrowest last (dumps, diagnose). */
  sources: string[];
}

export const DEFAULT_TELEMETRY: TelemetrySettings = { accessLogging: { enabled: true }, sources: [] };

/** One TELEMETRY_TYPE_URL resource, named after its namespace. */
export interface NamespaceTelemetry {
  namespace: string;
  /** What applies to the namespace's workloads (already merged with the mesh-wide one). */
  settings: TelemetrySettings;
  /** Workloads selected by a Telemetry `selector`, by workload uid (already merged). */
  workloads?: Record<string, TelemetrySettings>;
}

/** The narrowest settings for a workload: its own, its namespace's, the mesh's, then the default. */
export function telemetryFor(byNamespace: ReadonlyMap<string, NamespaceTelemetry>, rootNamespace: string, workload: { uid: string; namespace: string } | undefined): TelemetrySettings {
  if (workload) {
    const ns = byNamespace.get(workload.namespace);
    const own = ns?.workloads?.[workload.uid];
    if (own) return own;
    if (ns) return ns.settings;
  }
  return byNamespace.get(rootNamespace)?.settings ?? DEFAULT_TELEMETRY;
}

const accessLogSchema = z.object({ enabled: z.boolean(), filter: z.string().min(1).optional() }).strict();
const tracingSchema = z
  .object({
    provider: z.string().min(1),
    endpoint: z.string().url(),
    samplingPercentage: z.number().min(0).max(100),
    customTags: z.record(z.string()).optional(),
  })
  .strict();

export const telemetrySettingsSchema: z.ZodType<TelemetrySettings> = z
  .object({ accessLogging: accessLogSchema, tracing: tracingSchema.optional(), sources: z.array(z.string()) })
  .strict();

export const namespaceTelemetrySchema: z.ZodType<NamespaceTelemetry> = z
  .object({ namespace: z.string().min(1), settings: telemetrySettingsSchema, workloads: z.record(telemetrySettingsSchema).optional() })
  .strict();
