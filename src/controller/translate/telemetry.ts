/**
 * Istio `Telemetry` (telemetry.istio.io v1 / v1alpha1) + the mesh config → what each proxy and
 * workload applies (src/telemetry/telemetry-config.ts). Pure.
 *
 * Scopes, widest first (Istio's): a Telemetry in the root namespace without selector/targetRefs
 * is mesh-wide; one in another namespace without them is namespace-wide (it also applies to that
 * namespace's waypoints and gateways); `selector.matchLabels` narrows it to the namespace's pods
 * with those labels (node agents, per workload uid); `targetRefs` to a Gateway (a waypoint, or a
 * Gateway API ingress Gateway) narrows it to that proxy. A proxy's or workload's settings are the
 * fold of its scopes, widest first: a field a narrower scope sets wins, one it leaves unset is
 * inherited. Within one scope the oldest Telemetry wins (Istio): a second namespace-wide one is
 * not applied and says so; several selecting the same workload are folded newest first, so the
 * oldest's fields win.
 *
 * Fields:
 * - `accessLogging[0]`: `disabled` → enabled; `filter.expression` (compiled with compileLogFilter
 *   here, so a bad one is reported on the object and left out — the wider scope's filter applies);
 *   `providers` naming something other than Istio's built-in `envoy` or an access-log extension
 *   provider, and `match`, are reported as ignored. Further entries are ignored (one access log).
 * - `tracing[0]`: `providers[0].name` resolved against the mesh config's extensionProviders (an
 *   `opentelemetry` one); without providers, `defaultProviders.tracing[0]`; `randomSamplingPercentage`
 *   (default 1, Istio's); `customTags` with `literal.value`; `disableSpanReporting`. With
 *   `defaultProviders.tracing` set, tracing is on mesh-wide even without a Telemetry (Istio).
 * - `metrics`: not configurable here (the standard Istio metrics are always reported): ignored
 *   with a condition, as is every other field we do not know.
 * Every ignored field gets a Warning condition naming it; an object that applies nowhere gets
 * Accepted=False with the reason (DESIGN §7).
 */
import { describeError } from '../../errors/amesh-error.js';
import { compileLogFilter } from '../../telemetry/log-filter.js';
import { DEFAULT_TELEMETRY, type NamespaceTelemetry, type TelemetrySettings } from '../../telemetry/telemetry-config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';
import type { ConditionSpec } from '../status/policy-status.js';
import type { PodObject } from './enrolment.js';
import { isTracingProvider, type MeshConfig } from './mesh-config.js';
import { isListedPod, selectorMatches } from './workload.js';

/** Istio's default tracing sample rate (meshConfig.defaultConfig.tracing.sampling). */
export const DEFAULT_SAMPLING_PERCENTAGE = 1;
/** Istio's built-in access-log provider (Envoy's stdout log); ours is the proxy's JSON stdout log. */
const BUILTIN_ACCESS_LOG_PROVIDER = 'envoy';
const GATEWAY_GROUP = 'gateway.networking.k8s.io';

interface TargetRef {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

export interface TelemetryObject extends KubeObjectLike {
  spec?: Record<string, unknown> & {
    selector?: { matchLabels?: Record<string, string> };
    targetRef?: TargetRef;
    targetRefs?: TargetRef[];
    accessLogging?: unknown[];
    tracing?: unknown[];
    metrics?: unknown[];
  };
}

/** A waypoint or gateway whose WaypointConfig gets telemetry settings. */
export interface TelemetryProxy {
  /** The xDS resource name `<namespace>/<name>`. */
  key: string;
  namespace: string;
  /** The Gateway API Gateway it runs for (`targetRefs` name it); absent for the default ingress gateway. */
  gateway?: string;
  /** Its pods' labels (a `selector` Telemetry selecting them applies, as for Istio's ingress gateway). */
  podLabels?: Readonly<Record<string, string>>;
}

export interface TelemetryInput {
  telemetries: readonly TelemetryObject[];
  meshConfig: MeshConfig;
  pods: readonly PodObject[];
  rootNamespace: string;
  proxies?: readonly TelemetryProxy[];
}

export interface TelemetryResult {
  /** One per namespace with a Telemetry, plus the root namespace (mesh-wide) — the TELEMETRY_TYPE_URL resources. */
  namespaces: Map<string, NamespaceTelemetry>;
  /** By proxy key. */
  proxies: Map<string, TelemetrySettings>;
  /** Our conditions per Telemetry `namespace/name`. */
  status: Map<string, ConditionSpec[]>;
}

/** What one Telemetry sets (its layer); unset fields are inherited from wider scopes. */
interface Layer {
  source: string;
  enabled?: boolean;
  filter?: string;
  provider?: string;
  sampling?: number;
  customTags?: Record<string, string>;
  spanReporting?: boolean;
  /** A `tracing` entry is present (turns tracing on with the default provider). */
  tracing: boolean;
}

type Scope = { kind: 'mesh' } | { kind: 'namespace' } | { kind: 'selector'; labels: Record<string, string> } | { kind: 'targets'; gateways: string[] } | { kind: 'invalid'; reason: string; message: string };

interface Translated {
  object: TelemetryObject;
  key: string;
  namespace: string;
  partial: Layer;
  scope: Scope;
  warnings: string[];
  /** Where it applied (for the Accepted message). */
  applied: Set<string>;
  notApplied?: string;
}

const KNOWN_SPEC_FIELDS = new Set(['selector', 'targetRef', 'targetRefs', 'accessLogging', 'tracing', 'metrics']);
const KNOWN_ACCESS_LOG_FIELDS = new Set(['providers', 'disabled', 'filter', 'match']);
const KNOWN_TRACING_FIELDS = new Set(['providers', 'randomSamplingPercentage', 'customTags', 'disableSpanReporting', 'match', 'useRequestIdForTraceSampling', 'enableIstioTags']);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function providerNames(raw: unknown, path: string, warnings: string[]): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    warnings.push(`${path}: expected a list of {name}; ignored`);
    return [];
  }
  return raw.map((p) => (isRecord(p) && typeof p.name === 'string' ? p.name : '')).filter((n) => n !== '');
}

function translateAccessLogging(list: unknown, partial: Layer, mesh: MeshConfig, warnings: string[]): void {
  if (!Array.isArray(list) || list.length === 0) return;
  if (list.length > 1) warnings.push(`spec.accessLogging[1..${list.length - 1}]: only the first entry is used (one access log per proxy)`);
  const entry = list[0];
  if (!isRecord(entry)) return void warnings.push('spec.accessLogging[0]: expected an object; ignored');
  for (const field of Object.keys(entry)) if (!KNOWN_ACCESS_LOG_FIELDS.has(field)) warnings.push(`spec.accessLogging[0].${field}: not supported; ignored`);
  if (entry.match !== undefined) warnings.push('spec.accessLogging[0].match: not supported (the access log covers client and server side alike); ignored');
  for (const name of providerNames(entry.providers, 'spec.accessLogging[0].providers', warnings)) {
    const known = mesh.extensionProviders.find((p) => p.name === name);
    if (name !== BUILTIN_ACCESS_LOG_PROVIDER && (!known || isTracingProvider(known))) warnings.push(`spec.accessLogging[0].providers: ${name} is not an access-log provider of the mesh config; the proxy's JSON stdout log is used`);
  }
  if (entry.disabled !== undefined) {
    if (typeof entry.disabled === 'boolean') partial.enabled = !entry.disabled;
    else warnings.push('spec.accessLogging[0].disabled: expected true or false; ignored');
  } else partial.enabled = true;
  const filter = entry.filter;
  if (filter === undefined) return;
  const expression = isRecord(filter) ? filter.expression : undefined;
  if (typeof expression !== 'string' || expression.trim() === '') return void warnings.push('spec.accessLogging[0].filter.expression: expected a non-empty expression; ignored');
  try {
    compileLogFilter(expression);
    partial.filter = expression;
  } catch (err) {
    warnings.push(`spec.accessLogging[0].filter.expression: ${describeError(err).split('\n')[0] ?? 'invalid'}; the filter is not applied`);
  }
}

function translateTracing(list: unknown, partial: Layer, mesh: MeshConfig, warnings: string[]): void {
  if (!Array.isArray(list) || list.length === 0) return;
  if (list.length > 1) warnings.push(`spec.tracing[1..${list.length - 1}]: only the first entry is used`);
  const entry = list[0];
  if (!isRecord(entry)) return void warnings.push('spec.tracing[0]: expected an object; ignored');
  partial.tracing = true;
  for (const field of Object.keys(entry)) if (!KNOWN_TRACING_FIELDS.has(field)) warnings.push(`spec.tracing[0].${field}: not supported; ignored`);
  for (const field of ['match', 'useRequestIdForTraceSampling', 'enableIstioTags']) if (entry[field] !== undefined) warnings.push(`spec.tracing[0].${field}: not supported; ignored`);
  const providers = providerNames(entry.providers, 'spec.tracing[0].providers', warnings);
  if (providers.length > 1) warnings.push(`spec.tracing[0].providers[1..]: only one tracing provider is used (${providers[0] ?? ''})`);
  const name = providers[0];
  if (name !== undefined) {
    const provider = mesh.extensionProviders.find((p) => p.name === name);
    if (!provider) warnings.push(`spec.tracing[0].providers[0].name: no extension provider ${name} in the mesh config (ConfigMap istio, key mesh); the wider scope's provider applies`);
    else if (!isTracingProvider(provider)) warnings.push(`spec.tracing[0].providers[0].name: ${name} is a ${provider.kind} provider; only opentelemetry (OTLP/HTTP) is supported`);
    else partial.provider = name;
  }
  const sampling = entry.randomSamplingPercentage;
  if (sampling !== undefined) {
    if (typeof sampling === 'number' && sampling >= 0 && sampling <= 100) partial.sampling = sampling;
    else warnings.push('spec.tracing[0].randomSamplingPercentage: expected a number from 0 to 100; ignored');
  }
  if (entry.disableSpanReporting !== undefined) {
    if (typeof entry.disableSpanReporting === 'boolean') partial.spanReporting = !entry.disableSpanReporting;
    else warnings.push('spec.tracing[0].disableSpanReporting: expected true or false; ignored');
  }
  if (entry.customTags !== undefined) {
    if (!isRecord(entry.customTags)) return void warnings.push('spec.tracing[0].customTags: expected a map; ignored');
    const tags: Record<string, string> = {};
    for (const [tag, value] of Object.entries(entry.customTags)) {
      const literal = isRecord(value) && isRecord(value.literal) ? value.literal.value : undefined;
      if (typeof literal === 'string') tags[tag] = literal;
      else warnings.push(`spec.tracing[0].customTags.${tag}: only literal tags are supported (environment and header tags are not); ignored`);
    }
    if (Object.keys(tags).length) partial.customTags = tags;
  }
}

function scopeOf(object: TelemetryObject, namespace: string, rootNamespace: string, warnings: string[]): Scope {
  const spec = object.spec ?? {};
  const refs = [...(spec.targetRef ? [spec.targetRef] : []), ...(Array.isArray(spec.targetRefs) ? spec.targetRefs : [])];
  const labels = spec.selector?.matchLabels ?? {};
  const hasSelector = Object.keys(labels).length > 0;
  if (refs.length > 0 && hasSelector) return { kind: 'invalid', reason: 'Invalid', message: 'spec.selector and spec.targetRefs are mutually exclusive; the Telemetry is not applied' };
  if (refs.length > 0) {
    const gateways: string[] = [];
    refs.forEach((ref, i) => {
      const path = spec.targetRef && i === 0 ? 'spec.targetRef' : `spec.targetRefs[${spec.targetRef ? i - 1 : i}]`;
      if (ref.kind !== 'Gateway' || (ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP) warnings.push(`${path}: ${ref.group ?? ''}/${ref.kind ?? ''} targets are not supported (only Gateway API Gateways: a waypoint or ingress gateway); ignored`);
      else if (ref.namespace && ref.namespace !== namespace) warnings.push(`${path}: a Telemetry may only target Gateways of its own namespace (${ref.namespace} given); ignored`);
      else if (!ref.name) warnings.push(`${path}.name: missing; ignored`);
      else gateways.push(ref.name);
    });
    if (gateways.length === 0) return { kind: 'invalid', reason: 'TargetNotFound', message: 'no usable targetRefs; the Telemetry is not applied' };
    return { kind: 'targets', gateways };
  }
  if (hasSelector) return { kind: 'selector', labels };
  return namespace === rootNamespace ? { kind: 'mesh' } : { kind: 'namespace' };
}

function translate(object: TelemetryObject, mesh: MeshConfig, rootNamespace: string): Translated {
  const namespace = object.metadata.namespace ?? 'default';
  const key = `${namespace}/${object.metadata.name ?? ''}`;
  const warnings: string[] = [];
  const spec = object.spec ?? {};
  for (const field of Object.keys(spec)) if (!KNOWN_SPEC_FIELDS.has(field)) warnings.push(`spec.${field}: not supported; ignored`);
  if (Array.isArray(spec.metrics) && spec.metrics.length > 0) warnings.push('spec.metrics: not configurable in amesh (the standard Istio metrics are always reported); ignored');
  const partial: Layer = { source: key, tracing: false };
  translateAccessLogging(spec.accessLogging, partial, mesh, warnings);
  translateTracing(spec.tracing, partial, mesh, warnings);
  return { object, key, namespace, partial, scope: scopeOf(object, namespace, rootNamespace, warnings), warnings, applied: new Set() };
}

/** The settings of a chain of layers, widest first. */
function resolveSettings(chain: readonly Layer[], mesh: MeshConfig): TelemetrySettings {
  let enabled = DEFAULT_TELEMETRY.accessLogging.enabled;
  let filter: string | undefined;
  let provider: string | undefined;
  let sampling: number | undefined;
  let spanReporting = true;
  let tracing = mesh.defaultProviders.tracing.length > 0;
  const customTags: Record<string, string> = {};
  const sources: string[] = [];
  for (const p of chain) {
    sources.push(p.source);
    if (p.enabled !== undefined) enabled = p.enabled;
    if (p.filter !== undefined) filter = p.filter;
    if (p.tracing) tracing = true;
    if (p.provider !== undefined) provider = p.provider;
    if (p.sampling !== undefined) sampling = p.sampling;
    if (p.spanReporting !== undefined) spanReporting = p.spanReporting;
    Object.assign(customTags, p.customTags ?? {});
  }
  const settings: TelemetrySettings = { accessLogging: { enabled, ...(filter !== undefined ? { filter } : {}) }, sources };
  if (!tracing || !spanReporting) return settings;
  const name = provider ?? mesh.defaultProviders.tracing[0];
  const resolved = mesh.extensionProviders.find((p) => p.name === name);
  if (!name || !isTracingProvider(resolved)) return settings;
  settings.tracing = {
    provider: name,
    endpoint: resolved.endpoint,
    samplingPercentage: sampling ?? DEFAULT_SAMPLING_PERCENTAGE,
    ...(Object.keys(customTags).length ? { customTags } : {}),
  };
  return settings;
}

const byAge = (a: Translated, b: Translated): number => (a.object.metadata.creationTimestamp ?? '').localeCompare(b.object.metadata.creationTimestamp ?? '') || a.key.localeCompare(b.key);

/** Folds a scope's objects newest first so the oldest's fields win (Istio: the oldest applies). */
const oldestWins = (list: readonly Translated[]): Layer[] => [...list].sort(byAge).reverse().map((t) => t.partial);

export function computeTelemetry(input: TelemetryInput): TelemetryResult {
  const { meshConfig: mesh, rootNamespace } = input;
  const all = input.telemetries.map((t) => translate(t, mesh, rootNamespace)).sort(byAge);
  // The namespace-wide (mesh-wide in the root namespace) one of each namespace: the oldest.
  const namespaceWide = new Map<string, Translated>();
  for (const t of all) {
    if (t.scope.kind !== 'mesh' && t.scope.kind !== 'namespace') continue;
    const first = namespaceWide.get(t.namespace);
    if (first) t.notApplied = `namespace ${t.namespace} already has an older ${t.scope.kind === 'mesh' ? 'mesh-wide' : 'namespace-wide'} Telemetry ${first.key}, which applies`;
    else namespaceWide.set(t.namespace, t);
  }
  const root = namespaceWide.get(rootNamespace);
  const chainFor = (namespace: string): Translated[] => {
    const own = namespace !== rootNamespace ? namespaceWide.get(namespace) : undefined;
    return [...(root ? [root] : []), ...(own ? [own] : [])];
  };
  const settingsOf = (wide: readonly Translated[], narrow: readonly Translated[]): TelemetrySettings => resolveSettings([...wide.map((t) => t.partial), ...oldestWins(narrow)], mesh);

  const namespaces = new Map<string, NamespaceTelemetry>();
  const withTelemetry = new Set([rootNamespace, ...all.filter((t) => t.scope.kind !== 'invalid' && !t.notApplied).map((t) => t.namespace)]);
  for (const namespace of [...withTelemetry].sort()) {
    const wide = chainFor(namespace);
    const entry: NamespaceTelemetry = { namespace, settings: resolveSettings(wide.map((t) => t.partial), mesh) };
    for (const t of wide) t.applied.add(t.scope.kind === 'mesh' ? 'mesh-wide' : `namespace ${namespace}`);
    const selectors = all.filter((t) => t.namespace === namespace && t.scope.kind === 'selector');
    if (selectors.length) {
      const workloads: Record<string, TelemetrySettings> = {};
      for (const pod of input.pods) {
        if ((pod.metadata.namespace ?? 'default') !== namespace || !isListedPod(pod)) continue;
        const selecting = selectors.filter((t) => t.scope.kind === 'selector' && selectorMatches(t.scope.labels, pod.metadata.labels));
        if (selecting.length === 0) continue;
        for (const t of selecting) t.applied.add(`pod ${namespace}/${pod.metadata.name ?? ''}`);
        workloads[pod.metadata.uid ?? `${namespace}/${pod.metadata.name ?? ''}`] = settingsOf(wide, selecting);
      }
      if (Object.keys(workloads).length) entry.workloads = workloads;
    }
    namespaces.set(namespace, entry);
  }

  const proxies = new Map<string, TelemetrySettings>();
  for (const proxy of input.proxies ?? []) {
    const narrow = all.filter((t) => {
      if (t.namespace !== proxy.namespace || t.notApplied) return false;
      if (t.scope.kind === 'targets') return proxy.gateway !== undefined && t.scope.gateways.includes(proxy.gateway);
      return t.scope.kind === 'selector' && proxy.podLabels !== undefined && selectorMatches(t.scope.labels, proxy.podLabels);
    });
    const gateway = `${proxy.namespace}/${proxy.gateway ?? ''}`;
    for (const t of narrow) t.applied.add(t.scope.kind === 'targets' ? `Gateway ${gateway}${gateway === proxy.key ? '' : ` (proxy ${proxy.key})`}` : `proxy ${proxy.key}`);
    const wide = chainFor(proxy.namespace);
    proxies.set(proxy.key, settingsOf(wide, narrow));
  }

  const status = new Map<string, ConditionSpec[]>();
  for (const t of all) status.set(t.key, conditionsOf(t, input.proxies !== undefined));
  return { namespaces, proxies, status };
}

function conditionsOf(t: Translated, proxiesKnown: boolean): ConditionSpec[] {
  const warning: ConditionSpec[] = t.warnings.length ? [{ type: 'Warning', status: 'True', reason: 'IgnoredFields', message: t.warnings.join('; ') }] : [];
  if (t.scope.kind === 'invalid') return [{ type: 'Accepted', status: 'False', reason: t.scope.reason, message: t.scope.message }, ...warning];
  if (t.notApplied) return [{ type: 'Accepted', status: 'False', reason: 'Conflicted', message: `not applied: ${t.notApplied}` }, ...warning];
  const where = [...t.applied];
  if (t.scope.kind === 'targets') {
    if (!proxiesKnown) return [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: `applies to Gateway ${t.scope.gateways.join(', ')}` }, ...warning];
    const found = where.filter((w) => w.startsWith('Gateway '));
    if (found.length === 0) return [{ type: 'Accepted', status: 'False', reason: 'TargetNotFound', message: `no waypoint or ingress gateway runs for Gateway ${t.scope.gateways.map((g) => `${t.namespace}/${g}`).join(', ')}` }, ...warning];
    return [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: `applied by ${found.join(', ')}` }, ...warning];
  }
  if (t.scope.kind === 'selector') {
    const pods = where.filter((w) => w.startsWith('pod ')).length;
    const gateways = where.filter((w) => w.startsWith('proxy '));
    const message = pods || gateways.length ? `applied to ${pods} pod${pods === 1 ? '' : 's'} selected by spec.selector${gateways.length ? ` and ${gateways.join(', ')}` : ''}` : 'valid; spec.selector selects no pod yet';
    return [{ type: 'Accepted', status: 'True', reason: 'Accepted', message }, ...warning];
  }
  const message = t.scope.kind === 'mesh' ? 'applied mesh-wide (root namespace)' : `applied namespace-wide in ${t.namespace}, its waypoints and gateways included`;
  return [{ type: 'Accepted', status: 'True', reason: 'Accepted', message }, ...warning];
}
