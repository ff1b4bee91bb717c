/**
 * Telemetry + mesh config → NamespaceTelemetry per namespace, settings per waypoint / gateway, and
 * the Telemetry conditions (src/controller/translate/telemetry.ts, mesh-config.ts).
 */
import { describe, expect, it } from 'vitest';
import type { PodObject } from '../../src/controller/translate/enrolment.js';
import { EMPTY_MESH_CONFIG, parseMeshConfig, type MeshConfig } from '../../src/controller/translate/mesh-config.js';
import { computeTelemetry, type TelemetryObject, type TelemetryProxy } from '../../src/controller/translate/telemetry.js';
import { telemetryFor } from '../../src/telemetry/telemetry-config.js';
import { encodeTelemetry, decodeTelemetry } from '../../src/xds/telemetry-codec.js';

const ROOT = 'amesh-system';

const MESH_YAML = `
extensionProviders:
  - name: otel
    opentelemetry:
      service: otel-collector.observability.svc.cluster.local
      port: 4318
      http:
        path: /v1/traces
  - name: otel-custom-path
    opentelemetry:
      service: jaeger.tracing
      port: 14318
      http:
        path: otlp/traces
  - name: zipkin
    zipkin:
      service: zipkin.istio-system
      port: 9411
  - name: file-log
    envoyFileAccessLog:
      path: /dev/stdout
defaultProviders:
  tracing: [otel]
`;
const MESH = parseMeshConfig({ metadata: { name: 'istio', namespace: ROOT }, data: { mesh: MESH_YAML } }).config;
const NO_DEFAULTS: MeshConfig = { ...MESH, defaultProviders: { tracing: [], accessLogging: [] } };
const OTEL = 'http://otel-collector.observability.svc.cluster.local:4318/v1/traces';

let age = 0;
function telemetry(namespace: string, name: string, spec: TelemetryObject['spec'], created?: string): TelemetryObject {
  age++;
  return { apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { namespace, name, uid: `uid-${namespace}-${name}`, creationTimestamp: created ?? `2026-01-01T00:00:${String(age).padStart(2, '0')}Z` }, spec };
}

function pod(namespace: string, name: string, labels: Record<string, string> = {}): PodObject {
  return {
    metadata: { namespace, name, uid: `uid-${name}`, labels },
    spec: { nodeName: 'n1' },
    status: { phase: 'Running', podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

const PODS = [pod('demo', 'backend-v1', { app: 'backend', version: 'v1' }), pod('demo', 'backend-v2', { app: 'backend', version: 'v2' }), pod('demo', 'frontend', { app: 'frontend' }), pod('other', 'x', { app: 'x' })];
const WAYPOINT: TelemetryProxy = { key: 'demo/waypoint', namespace: 'demo', gateway: 'waypoint', podLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } };
const INGRESS: TelemetryProxy = { key: 'amesh-system/amesh-ingressgateway', namespace: ROOT, podLabels: { istio: 'ingressgateway', app: 'amesh-ingressgateway' } };
const PROXIES = [WAYPOINT, INGRESS];

function run(telemetries: TelemetryObject[], mesh: MeshConfig = MESH) {
  return computeTelemetry({ telemetries, meshConfig: mesh, pods: PODS, rootNamespace: ROOT, proxies: PROXIES });
}

const conditionsOf = (r: ReturnType<typeof run>, key: string) => Object.fromEntries((r.status.get(key) ?? []).map((c) => [c.type, c]));

describe('mesh config (ConfigMap istio, key mesh)', () => {
  it('resolves opentelemetry providers to OTLP/HTTP endpoints and keeps the defaults', () => {
    const { config, issues } = parseMeshConfig({ metadata: { name: 'istio', namespace: ROOT }, data: { mesh: MESH_YAML } });
    expect(issues).toEqual([]);
    expect(config.extensionProviders).toEqual([
      { name: 'otel', kind: 'opentelemetry', endpoint: OTEL },
      { name: 'otel-custom-path', kind: 'opentelemetry', endpoint: 'http://jaeger.tracing:14318/otlp/traces' },
      { name: 'zipkin', kind: 'zipkin' },
      { name: 'file-log', kind: 'envoyFileAccessLog' },
    ]);
    expect(config.defaultProviders).toEqual({ tracing: ['otel'], accessLogging: [] });
  });

  it.each([
    ['no ConfigMap', undefined, []],
    ['empty key', { mesh: '' }, []],
    ['bad YAML', { mesh: 'extensionProviders: [' }, [/^data\.mesh: not valid YAML/]],
    ['not a mapping', { mesh: '- a' }, [/expected a mapping/]],
    ['provider without port', { mesh: 'extensionProviders:\n- name: o\n  opentelemetry: {service: s}' }, [/extensionProviders\[0\]\.opentelemetry: needs service/]],
    ['nameless provider', { mesh: 'extensionProviders:\n- opentelemetry: {service: s, port: 1}' }, [/extensionProviders\[0\]: a provider needs a name/]],
    ['defaultProviders not a list', { mesh: 'defaultProviders: {tracing: otel}' }, [/defaultProviders\.tracing: expected a list/]],
  ])('%s', (_what, data, issues) => {
    const parsed = parseMeshConfig(data === undefined ? undefined : { metadata: { name: 'istio' }, data });
    expect(parsed.issues).toHaveLength(issues.length);
    issues.forEach((re, i) => expect(parsed.issues[i]).toMatch(re));
  });

  it('an opentelemetry provider without http is still exported over OTLP/HTTP, with a note', () => {
    const parsed = parseMeshConfig({ metadata: { name: 'istio' }, data: { mesh: 'extensionProviders:\n- name: o\n  opentelemetry: {service: c.ns, port: 4318}' } });
    expect(parsed.config.extensionProviders).toEqual([{ name: 'o', kind: 'opentelemetry', endpoint: 'http://c.ns:4318/v1/traces' }]);
    expect(parsed.issues[0]).toMatch(/no http section/);
  });
});

describe('computeTelemetry: scopes and merging', () => {
  it('without any Telemetry: the root entry only, access logs on, tracing from defaultProviders at 1 %', () => {
    const r = run([]);
    expect([...r.namespaces.keys()]).toEqual([ROOT]);
    expect(r.namespaces.get(ROOT)?.settings).toEqual({ accessLogging: { enabled: true }, tracing: { provider: 'otel', endpoint: OTEL, samplingPercentage: 1 }, sources: [] });
    expect(run([], EMPTY_MESH_CONFIG).namespaces.get(ROOT)?.settings).toEqual({ accessLogging: { enabled: true }, sources: [] });
    expect(r.proxies.get('demo/waypoint')).toEqual(r.namespaces.get(ROOT)?.settings);
  });

  const mesh = telemetry(ROOT, 'mesh-default', { tracing: [{ randomSamplingPercentage: 100 }], accessLogging: [{ filter: { expression: 'response.code >= 400' } }] });
  const ns = telemetry('demo', 'ns', { accessLogging: [{ disabled: true }] });
  const v2 = telemetry('demo', 'v2-only', { selector: { matchLabels: { version: 'v2' } }, accessLogging: [{ disabled: false }], tracing: [{ randomSamplingPercentage: 50, customTags: { team: { literal: { value: 'payments' } } } }] });
  const atWaypoint = telemetry('demo', 'at-waypoint', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'waypoint' }], tracing: [{ providers: [{ name: 'otel-custom-path' }], randomSamplingPercentage: 10 }] });

  it.each([
    ['mesh-wide only → a namespace without Telemetry falls back to the root', [mesh], 'other', undefined, { accessLogging: { enabled: true, filter: 'response.code >= 400' }, tracing: { provider: 'otel', endpoint: OTEL, samplingPercentage: 100 }, sources: ['amesh-system/mesh-default'] }],
    ['namespace-wide inherits the mesh filter and tracing, overrides enabled', [mesh, ns], 'demo', undefined, { accessLogging: { enabled: false, filter: 'response.code >= 400' }, tracing: { provider: 'otel', endpoint: OTEL, samplingPercentage: 100 }, sources: ['amesh-system/mesh-default', 'demo/ns'] }],
    ['selector beats namespace for the selected pod', [mesh, ns, v2], 'demo', 'uid-backend-v2', { accessLogging: { enabled: true, filter: 'response.code >= 400' }, tracing: { provider: 'otel', endpoint: OTEL, samplingPercentage: 50, customTags: { team: 'payments' } }, sources: ['amesh-system/mesh-default', 'demo/ns', 'demo/v2-only'] }],
    ['an unselected pod keeps the namespace settings', [mesh, ns, v2], 'demo', 'uid-backend-v1', { accessLogging: { enabled: false, filter: 'response.code >= 400' }, tracing: { provider: 'otel', endpoint: OTEL, samplingPercentage: 100 }, sources: ['amesh-system/mesh-default', 'demo/ns'] }],
  ])('%s', (_what, objects, namespace, uid, expected) => {
    const r = run(objects);
    expect(telemetryFor(r.namespaces, ROOT, { uid: uid ?? 'uid-none', namespace })).toEqual(expected);
  });

  it('publishes the root, each namespace with a Telemetry, and per-workload entries only for selected pods', () => {
    const r = run([mesh, ns, v2]);
    expect([...r.namespaces.keys()]).toEqual([ROOT, 'demo']);
    expect(Object.keys(r.namespaces.get('demo')?.workloads ?? {})).toEqual(['uid-backend-v2']);
    for (const entry of r.namespaces.values()) expect(decodeTelemetry(encodeTelemetry(entry))).toEqual(entry);
  });

  it('targetRefs to the waypoint Gateway: the waypoint gets its provider and rate; the namespace and its pods do not', () => {
    const r = run([mesh, ns, atWaypoint]);
    expect(r.proxies.get('demo/waypoint')).toEqual({
      accessLogging: { enabled: false, filter: 'response.code >= 400' },
      tracing: { provider: 'otel-custom-path', endpoint: 'http://jaeger.tracing:14318/otlp/traces', samplingPercentage: 10 },
      sources: ['amesh-system/mesh-default', 'demo/ns', 'demo/at-waypoint'],
    });
    expect(r.namespaces.get('demo')?.settings.tracing?.provider).toBe('otel');
    expect(conditionsOf(r, 'demo/at-waypoint').Accepted).toMatchObject({ status: 'True', message: 'applied by Gateway demo/waypoint' });
  });

  it('a selector in the root namespace selecting the ingress gateway’s labels applies to it', () => {
    const r = run([telemetry(ROOT, 'ingress', { selector: { matchLabels: { istio: 'ingressgateway' } }, accessLogging: [{ disabled: true }] })]);
    expect(r.proxies.get(INGRESS.key)?.accessLogging.enabled).toBe(false);
    expect(r.proxies.get(WAYPOINT.key)?.accessLogging.enabled).toBe(true);
  });

  it('tracing without providers uses defaultProviders.tracing; none configured → no tracing', () => {
    const t = telemetry('demo', 'ns', { tracing: [{ randomSamplingPercentage: 20 }] });
    expect(run([t]).namespaces.get('demo')?.settings.tracing).toEqual({ provider: 'otel', endpoint: OTEL, samplingPercentage: 20 });
    expect(run([t], NO_DEFAULTS).namespaces.get('demo')?.settings.tracing).toBeUndefined();
  });

  it('disableSpanReporting at a narrower scope turns tracing off there only', () => {
    const r = run([mesh, telemetry('demo', 'quiet', { tracing: [{ disableSpanReporting: true }] })]);
    expect(r.namespaces.get('demo')?.settings.tracing).toBeUndefined();
    expect(r.namespaces.get(ROOT)?.settings.tracing?.samplingPercentage).toBe(100);
  });

  it('two namespace-wide Telemetries: the oldest applies, the other says so', () => {
    const older = telemetry('demo', 'a-older', { accessLogging: [{ disabled: true }] }, '2025-01-01T00:00:00Z');
    const newer = telemetry('demo', 'b-newer', { accessLogging: [{ disabled: false }] }, '2026-06-01T00:00:00Z');
    const r = run([newer, older]);
    expect(r.namespaces.get('demo')?.settings.accessLogging.enabled).toBe(false);
    expect(conditionsOf(r, 'demo/b-newer').Accepted).toMatchObject({ status: 'False', reason: 'Conflicted' });
    expect(conditionsOf(r, 'demo/b-newer').Accepted?.message).toContain('demo/a-older');
    expect(conditionsOf(r, 'demo/a-older').Accepted).toMatchObject({ status: 'True' });
  });

  it('two selectors on one pod: the oldest’s fields win, the newer fills the rest', () => {
    const older = telemetry('demo', 'old', { selector: { matchLabels: { app: 'backend' } }, tracing: [{ randomSamplingPercentage: 5 }] }, '2025-01-01T00:00:00Z');
    const newer = telemetry('demo', 'new', { selector: { matchLabels: { version: 'v2' } }, tracing: [{ randomSamplingPercentage: 99 }], accessLogging: [{ disabled: true }] }, '2026-06-01T00:00:00Z');
    const settings = run([newer, older]).namespaces.get('demo')?.workloads?.['uid-backend-v2'];
    expect(settings?.tracing?.samplingPercentage).toBe(5);
    expect(settings?.accessLogging.enabled).toBe(false);
  });
});

describe('computeTelemetry: status conditions', () => {
  it.each([
    ['a bad filter expression: left out, named', { accessLogging: [{ filter: { expression: 'response.code >= "x"' } }] }, /spec\.accessLogging\[0\]\.filter\.expression: .*the filter is not applied/],
    ['metrics', { metrics: [{ overrides: [] }] }, /spec\.metrics: not configurable in amesh/],
    ['an unknown spec field', { foo: 1 }, /spec\.foo: not supported; ignored/],
    ['an unknown tracing provider', { tracing: [{ providers: [{ name: 'nope' }] }] }, /providers\[0\]\.name: no extension provider nope/],
    ['a zipkin provider', { tracing: [{ providers: [{ name: 'zipkin' }] }] }, /zipkin is a zipkin provider; only opentelemetry/],
    ['a header custom tag', { tracing: [{ customTags: { h: { header: { name: 'x-user' } } } }] }, /customTags\.h: only literal tags/],
    ['tracing match', { tracing: [{ match: { mode: 'SERVER' } }] }, /spec\.tracing\[0\]\.match: not supported/],
    ['access-log match', { accessLogging: [{ match: { mode: 'CLIENT' } }] }, /spec\.accessLogging\[0\]\.match: not supported/],
    ['a second access-log entry', { accessLogging: [{}, { disabled: true }] }, /spec\.accessLogging\[1\.\.1\]: only the first entry is used/],
    ['a tracing provider as access-log provider', { accessLogging: [{ providers: [{ name: 'otel' }] }] }, /otel is not an access-log provider/],
    ['a sampling rate out of range', { tracing: [{ randomSamplingPercentage: 150 }] }, /randomSamplingPercentage: expected a number from 0 to 100/],
  ])('%s → Accepted=True with a Warning', (_what, spec, message) => {
    const r = run([telemetry('demo', 't', spec as TelemetryObject['spec'])]);
    const c = conditionsOf(r, 'demo/t');
    expect(c.Accepted).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(c.Warning).toMatchObject({ status: 'True', reason: 'IgnoredFields' });
    expect(c.Warning?.message).toMatch(message);
  });

  it('a bad filter leaves the wider scope’s filter in force', () => {
    const r = run([telemetry(ROOT, 'm', { accessLogging: [{ filter: { expression: 'response.code >= 500' } }] }), telemetry('demo', 'bad', { accessLogging: [{ filter: { expression: '((' } }] })]);
    expect(r.namespaces.get('demo')?.settings.accessLogging).toEqual({ enabled: true, filter: 'response.code >= 500' });
  });

  it.each([
    ['selector and targetRefs together', { selector: { matchLabels: { a: 'b' } }, targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }] }, 'Invalid'],
    ['targetRefs to a Service only', { targetRefs: [{ kind: 'Service', group: '', name: 'backend' }] }, 'TargetNotFound'],
    ['targetRefs to a Gateway no proxy runs for', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'ghost' }] }, 'TargetNotFound'],
    ['targetRefs to another namespace', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint', namespace: 'other' }] }, 'TargetNotFound'],
  ])('%s → Accepted=False', (_what, spec, reason) => {
    const r = run([telemetry('demo', 't', spec as TelemetryObject['spec'])]);
    expect(conditionsOf(r, 'demo/t').Accepted).toMatchObject({ status: 'False', reason });
    expect(r.proxies.get('demo/waypoint')?.sources).toEqual([]);
  });

  it.each([
    ['mesh-wide', ROOT, {}, 'applied mesh-wide (root namespace)'],
    ['namespace-wide', 'demo', {}, 'applied namespace-wide in demo, its waypoints and gateways included'],
    ['selector', 'demo', { selector: { matchLabels: { app: 'backend' } } }, 'applied to 2 pods selected by spec.selector'],
    ['selector matching nothing', 'demo', { selector: { matchLabels: { app: 'nothing' } } }, 'valid; spec.selector selects no pod yet'],
  ])('Accepted message: %s', (_what, namespace, spec, message) => {
    const r = run([telemetry(namespace, 't', spec)]);
    expect(conditionsOf(r, `${namespace}/t`).Accepted).toMatchObject({ status: 'True', message });
    expect(conditionsOf(r, `${namespace}/t`).Warning).toBeUndefined();
  });
});
