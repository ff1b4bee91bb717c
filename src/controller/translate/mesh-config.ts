/**
 * Istio's mesh config, the part telemetry reads: ConfigMap `istio` in the root namespace, key
 * `mesh` (YAML), as istiod reads it. Pure.
 *
 * - `extensionProviders[]`: `{name, opentelemetry: {service, port, http?: {path}}}` become tracing
 *   providers whose OTLP/HTTP endpoint is `http://<service>:<port><path or /v1/traces>` (Istio's
 *   OpenTelemetry provider with `http` set exports OTLP/HTTP; we only export over HTTP, so a
 *   provider without `http` is taken as OTLP/HTTP on the same port too, and `issues` says so).
 *   `envoyFileAccessLog` / `envoyOtelAls` … are listed by name (access-log providers): our access
 *   log always goes to the proxy's stdout. Other kinds (zipkin, datadog, …) are kept with `kind`
 *   so a Telemetry naming one can be told why it is not used.
 * - `defaultProviders.tracing` / `defaultProviders.accessLogging`: provider names used when a
 *   Telemetry does not name one (and, for tracing, mesh-wide without any Telemetry, as Istio does).
 *
 * A missing ConfigMap or key is an empty mesh config; invalid YAML or fields are left out and
 * listed in `issues` (the controller logs them: a ConfigMap has no status to write to).
 */
import { parse } from 'yaml';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';

export const MESH_CONFIG_MAP_NAME = 'istio';
export const MESH_CONFIG_KEY = 'mesh';
const DEFAULT_OTLP_PATH = '/v1/traces';

export interface TracingProvider {
  name: string;
  kind: 'opentelemetry';
  /** OTLP/HTTP traces URL. */
  endpoint: string;
}

export interface OtherProvider {
  name: string;
  /** The provider's type key in the mesh config (`zipkin`, `envoyFileAccessLog`, …). */
  kind: string;
}

export type ExtensionProvider = TracingProvider | OtherProvider;

export interface MeshConfig {
  extensionProviders: ExtensionProvider[];
  defaultProviders: { tracing: string[]; accessLogging: string[] };
}

export const EMPTY_MESH_CONFIG: MeshConfig = { extensionProviders: [], defaultProviders: { tracing: [], accessLogging: [] } };

export interface ConfigMapObject extends KubeObjectLike {
  data?: Record<string, string>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function isTracingProvider(p: ExtensionProvider | undefined): p is TracingProvider {
  return p?.kind === 'opentelemetry' && 'endpoint' in p;
}

function names(value: unknown, path: string, issues: string[]): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) {
    issues.push(`${path}: expected a list of provider names`);
    return [];
  }
  return value as string[];
}

function provider(raw: unknown, index: number, issues: string[]): ExtensionProvider | undefined {
  const path = `extensionProviders[${index}]`;
  if (!isRecord(raw) || typeof raw.name !== 'string' || raw.name === '') {
    issues.push(`${path}: a provider needs a name`);
    return undefined;
  }
  const name = raw.name;
  const kinds = Object.keys(raw).filter((k) => k !== 'name');
  const otel = raw.opentelemetry;
  if (otel === undefined) return { name, kind: kinds[0] ?? 'unknown' };
  if (!isRecord(otel) || typeof otel.service !== 'string' || otel.service === '' || typeof otel.port !== 'number' || !Number.isInteger(otel.port) || otel.port < 1 || otel.port > 65535) {
    issues.push(`${path}.opentelemetry: needs service (a host name) and port (1-65535)`);
    return { name, kind: 'opentelemetry' };
  }
  let path_ = DEFAULT_OTLP_PATH;
  if (isRecord(otel.http)) {
    if (typeof otel.http.path === 'string' && otel.http.path !== '') path_ = otel.http.path.startsWith('/') ? otel.http.path : `/${otel.http.path}`;
  } else {
    issues.push(`${path}.opentelemetry: no http section (Istio would export OTLP/gRPC); amesh exports OTLP/HTTP to ${otel.service}:${otel.port}${DEFAULT_OTLP_PATH}`);
  }
  const host = otel.service.includes(':') && !otel.service.startsWith('[') ? `[${otel.service}]` : otel.service;
  return { name, kind: 'opentelemetry', endpoint: `http://${host}:${otel.port}${path_}` };
}

/** The mesh config of ConfigMap `istio` (undefined = none), with what could not be used. */
export function parseMeshConfig(configMap: ConfigMapObject | undefined): { config: MeshConfig; issues: string[] } {
  const text = configMap?.data?.[MESH_CONFIG_KEY];
  if (text === undefined || text.trim() === '') return { config: EMPTY_MESH_CONFIG, issues: [] };
  const issues: string[] = [];
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return { config: EMPTY_MESH_CONFIG, issues: [`data.${MESH_CONFIG_KEY}: not valid YAML: ${(err as Error).message.split('\n')[0] ?? ''}`] };
  }
  if (doc === null || doc === undefined) return { config: EMPTY_MESH_CONFIG, issues: [] };
  if (!isRecord(doc)) return { config: EMPTY_MESH_CONFIG, issues: [`data.${MESH_CONFIG_KEY}: expected a mapping`] };
  const extensionProviders: ExtensionProvider[] = [];
  if (doc.extensionProviders !== undefined) {
    if (!Array.isArray(doc.extensionProviders)) issues.push('extensionProviders: expected a list');
    else {
      doc.extensionProviders.forEach((raw, i) => {
        const p = provider(raw, i, issues);
        if (!p) return;
        if (extensionProviders.some((e) => e.name === p.name)) issues.push(`extensionProviders[${i}]: provider ${p.name} is defined twice; the first is used`);
        else extensionProviders.push(p);
      });
    }
  }
  const defaults = isRecord(doc.defaultProviders) ? doc.defaultProviders : {};
  const defaultProviders = { tracing: names(defaults.tracing, 'defaultProviders.tracing', issues), accessLogging: names(defaults.accessLogging, 'defaultProviders.accessLogging', issues) };
  return { config: { extensionProviders, defaultProviders }, issues };
}
