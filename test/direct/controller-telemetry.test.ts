/**
 * The controller (`ControllerApp`) against the embedded API server, for issue #9: a waypoint's
 * clusters carry Endpoint.meta (Istio's workload name — the Deployment's — and canonical
 * revision), and Telemetry objects + the mesh config ConfigMap `amesh-system/istio` become the
 * node agents' TELEMETRY_TYPE_URL resources (served over the CA's TLS xDS port), the waypoint's
 * WaypointConfig.telemetry, and Telemetry status conditions; changing the ConfigMap recomputes
 * them. The connected xDS client shows up SYNCED in /debug/syncz on the monitoring port.
 */
import * as grpc from '@grpc/grpc-js';
import { KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readControllerConfig } from '../../src/config/controller-config.js';
import { ControllerApp } from '../../src/controller/app.js';
import { CA_CERT_KEY, CA_SECRET_NAME, controllerDnsNames } from '../../src/controller/ca/root-store.js';
import type { ProxySyncStatus } from '../../src/controller/xds/sync-status.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { TELEMETRY_TYPE_URL, type NamespaceTelemetry } from '../../src/telemetry/telemetry-config.js';
import { DeltaXdsClient } from '../../src/xds/delta-client.js';
import { decodeTelemetry } from '../../src/xds/telemetry-codec.js';
import { decodeWaypointConfig, WAYPOINT_CONFIG_TYPE_URL } from '../../src/xds/waypoint-codec.js';
import { eventually } from '../helpers/eventually.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const ROOT = 'amesh-system';
const WAIT = { timeoutMs: 15_000, intervalMs: 50 };
const meshYaml = (port: number): string => `extensionProviders:
- name: otel
  opentelemetry:
    service: otel-collector.observability.svc.cluster.local
    port: ${port}
    http:
      path: /v1/traces
defaultProviders:
  tracing: [otel]
`;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

describe('controller: Endpoint.meta, Telemetry and the mesh config', () => {
  let h: Harness;
  let app: ControllerApp;
  let caPort: number;
  let monitoringPort: number | undefined;
  let podUid: string;
  let client: DeltaXdsClient | undefined;
  const received = new Map<string, NamespaceTelemetry>();

  const create = (object: KubeObject): KubeObject => h.store.create(object);
  const waypointConfig = (): WaypointConfig | undefined => {
    const r = app.store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint');
    return r ? decodeWaypointConfig(r.bytes) : undefined;
  };
  const published = (namespace: string): NamespaceTelemetry | undefined => {
    const r = app.store.get(TELEMETRY_TYPE_URL, namespace);
    return r ? decodeTelemetry(r.bytes) : undefined;
  };
  const conditions = (name: string, namespace = 'demo'): Record<string, Condition> => {
    const object = h.store.get<KubeObject & { status?: { conditions?: Condition[] } }>('telemetry.istio.io/v1', 'Telemetry', namespace, name);
    return Object.fromEntries((object?.status?.conditions ?? []).map((c) => [c.type, c]));
  };

  beforeAll(async () => {
    h = await startHarness();
    create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ROOT } });
    create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } });
    create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'backend', namespace: 'demo' }, spec: { selector: { app: 'backend' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
    // A Deployment's pod: ReplicaSet backend-v2-5d8f9 with pod-template-hash 5d8f9 (the owner must
    // exist, or the garbage collector removes the pod).
    const rs = create({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'backend-v2-5d8f9', namespace: 'demo' },
      spec: { replicas: 0, selector: { matchLabels: { app: 'backend', version: 'v2' } }, template: { metadata: { labels: { app: 'backend', version: 'v2' } }, spec: { containers: [{ name: 'app', image: 'hashicorp/http-echo' }] } } },
    });
    const pod = create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'backend-v2-5d8f9-x7k2p', namespace: 'demo', labels: { app: 'backend', version: 'v2', 'pod-template-hash': '5d8f9' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'backend-v2-5d8f9', uid: rs.metadata.uid ?? '', controller: true }] },
      spec: { nodeName: 'n1', serviceAccountName: 'backend', containers: [{ name: 'app', image: 'hashicorp/http-echo' }] },
    });
    podUid = pod.metadata.uid ?? '';
    h.store.update({ ...pod, status: { phase: 'Running', podIP: '10.244.1.7', conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
    create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'demo', labels: { 'istio.io/waypoint-for': 'service' } }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(h.kubeconfig);
    const config = readControllerConfig({ AMESH_CA_PORT: '0', AMESH_READINESS_PORT: '0', AMESH_CONTROLLER_MONITORING_PORT: '0', AMESH_XDS_DEBOUNCE_MS: '5' });
    app = ControllerApp.build({ config, kubeConfig, log: silentLogger, listenHost: '127.0.0.1', bundleRetryMs: 50, adsAuthenticator: async () => ({ ok: true, caller: 'amesh-system/amesh-node', role: 'node-agent' }) });
    ({ caPort, monitoringPort } = await app.start());
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await app?.close();
    await h?.close();
  });

  it('fills Endpoint.meta of the waypoint’s clusters: the Deployment’s name, the canonical service and revision', async () => {
    const config = await eventually(() => {
      const c = waypointConfig();
      expect(c?.clusters.find((cl) => cl.name === 'outbound|80||backend.demo.svc.cluster.local')?.endpoints).toHaveLength(1);
      return c as WaypointConfig;
    }, { ...WAIT, description: 'the waypoint config with the backend endpoint' });
    const [endpoint] = config.clusters.find((cl) => cl.name === 'outbound|80||backend.demo.svc.cluster.local')?.endpoints ?? [];
    expect(endpoint).toMatchObject({ address: '10.244.1.7', port: 8080, workload: podUid, meta: { workloadName: 'backend-v2', namespace: 'demo', canonicalName: 'backend', canonicalRevision: 'v2' } });
    // No Telemetry, no mesh config: access logs on, no tracing.
    expect(config.telemetry).toEqual({ accessLogging: { enabled: true }, sources: [] });
    expect(published(ROOT)).toEqual({ namespace: ROOT, settings: { accessLogging: { enabled: true }, sources: [] } });
  });

  it('publishes Telemetry + mesh config to node agents (per namespace, per selected workload) and into the waypoint’s config, with status', async () => {
    create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: ROOT }, data: { mesh: meshYaml(4318) } });
    create({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'mesh-default', namespace: ROOT }, spec: { tracing: [{ randomSamplingPercentage: 100 }] } });
    create({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'errors-only', namespace: 'demo' }, spec: { accessLogging: [{ filter: { expression: 'response.code >= 400' } }] } });
    create({ apiVersion: 'telemetry.istio.io/v1alpha1', kind: 'Telemetry', metadata: { name: 'v2', namespace: 'demo' }, spec: { selector: { matchLabels: { version: 'v2' } }, accessLogging: [{ filter: { expression: 'response.code >=' } }], metrics: [{ providers: [{ name: 'prometheus' }] }] } });
    create({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'waypoint-traces', namespace: 'demo' }, spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'waypoint' }], tracing: [{ randomSamplingPercentage: 10 }] } });
    const tracing = { provider: 'otel', endpoint: 'http://otel-collector.observability.svc.cluster.local:4318/v1/traces' };

    await eventually(() => {
      expect(published(ROOT)?.settings).toEqual({ accessLogging: { enabled: true }, tracing: { ...tracing, samplingPercentage: 100 }, sources: ['amesh-system/mesh-default'] });
      expect(published('demo')).toEqual({
        namespace: 'demo',
        settings: { accessLogging: { enabled: true, filter: 'response.code >= 400' }, tracing: { ...tracing, samplingPercentage: 100 }, sources: ['amesh-system/mesh-default', 'demo/errors-only'] },
        // The selector's bad filter is left out: the namespace's stays in force.
        workloads: { [podUid]: { accessLogging: { enabled: true, filter: 'response.code >= 400' }, tracing: { ...tracing, samplingPercentage: 100 }, sources: ['amesh-system/mesh-default', 'demo/errors-only', 'demo/v2'] } },
      });
      expect(waypointConfig()?.telemetry).toEqual({
        accessLogging: { enabled: true, filter: 'response.code >= 400' },
        tracing: { ...tracing, samplingPercentage: 10 },
        sources: ['amesh-system/mesh-default', 'demo/errors-only', 'demo/waypoint-traces'],
      });
    }, { ...WAIT, description: 'telemetry published' });

    await eventually(() => {
      expect(conditions('mesh-default', ROOT).Accepted).toMatchObject({ status: 'True', message: 'applied mesh-wide (root namespace)' });
      expect(conditions('waypoint-traces').Accepted).toMatchObject({ status: 'True', message: 'applied by Gateway demo/waypoint' });
      const v2 = conditions('v2');
      expect(v2.Accepted).toMatchObject({ status: 'True', message: 'applied to 1 pod selected by spec.selector' });
      expect(v2.Warning?.message).toMatch(/spec\.accessLogging\[0\]\.filter\.expression: .*the filter is not applied/);
      expect(v2.Warning?.message).toMatch(/spec\.metrics: not configurable in amesh/);
    }, { ...WAIT, description: 'Telemetry status written' });
  });

  it('serves the TELEMETRY type over xDS (CA TLS port) and shows the client SYNCED in /debug/syncz', async () => {
    const secret = h.store.get<V1Secret & KubeObject>('v1', 'Secret', ROOT, CA_SECRET_NAME);
    const root = Buffer.from(secret?.data?.[CA_CERT_KEY] ?? '', 'base64');
    const serverName = controllerDnsNames(ROOT)[0] as string;
    client = new DeltaXdsClient({
      address: `127.0.0.1:${caPort}`,
      credentials: grpc.credentials.createSsl(root),
      channelOptions: { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName },
      node: { id: 'ztunnel~10.0.0.9~amesh-node-t1.amesh-system~amesh-system.svc.cluster.local', metadata: { NODE_NAME: 'n1', NAMESPACE: ROOT, NAME: 'amesh-node-t1' } },
      typeUrls: [TELEMETRY_TYPE_URL],
      logger: silentLogger,
      backoff: { initialMs: 10, maxMs: 200 },
      onUpdate: async (update) => {
        for (const r of update.resources) received.set(r.name, decodeTelemetry(r.resource));
        for (const name of update.removed) received.delete(name);
      },
    });
    client.start();
    await eventually(() => expect([...received.keys()].sort()).toEqual(['amesh-system', 'demo']), { ...WAIT, description: 'telemetry over xDS' });
    expect(received.get('demo')?.workloads?.[podUid]?.sources.at(-1)).toBe('demo/v2');
    expect(monitoringPort).toBeGreaterThan(0);
    const syncz = await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${monitoringPort}/debug/syncz`, { signal: AbortSignal.timeout(2000) });
      const entries = (await res.json()) as ProxySyncStatus[];
      expect(entries.find((e) => e.pod === 'amesh-system/amesh-node-t1')?.status).toBe('SYNCED');
      return entries;
    }, { ...WAIT, description: 'syncz SYNCED' });
    expect(syncz.find((e) => e.pod === 'amesh-system/amesh-node-t1')).toMatchObject({ node: 'n1', role: 'node-agent', types: { [TELEMETRY_TYPE_URL]: { resources: 2, status: 'SYNCED' } } });
  });

  it('an ingress gateway (Gateway API, class istio) gets the Telemetry that targets its Gateway', async () => {
    create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: 'demo' }, spec: { gatewayClassName: 'istio', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } });
    create({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'edge-logs', namespace: 'demo' }, spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }], accessLogging: [{ disabled: true }] } });
    await eventually(() => {
      const r = app.store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/edge-istio');
      const config = r ? decodeWaypointConfig(r.bytes) : undefined;
      expect(config?.kind).toBe('gateway');
      expect(config?.telemetry?.accessLogging.enabled).toBe(false);
      expect(config?.telemetry?.sources.at(-1)).toBe('demo/edge-logs');
      // The waypoint is not the target: its access log stays on.
      expect(waypointConfig()?.telemetry?.accessLogging.enabled).toBe(true);
    }, { ...WAIT, description: 'the ingress gateway config with its telemetry' });
    await eventually(() => expect(conditions('edge-logs').Accepted).toMatchObject({ status: 'True', message: 'applied by Gateway demo/edge (proxy demo/edge-istio)' }), { ...WAIT, description: 'edge-logs status' });
    h.store.delete('telemetry.istio.io/v1', 'Telemetry', 'demo', 'edge-logs');
  });

  it('recomputes when the mesh config changes: a new provider port reaches node agents and the waypoint', async () => {
    const cm = h.store.get<KubeObject & { data?: Record<string, string> }>('v1', 'ConfigMap', ROOT, 'istio');
    h.store.update({ ...(cm as KubeObject), data: { mesh: meshYaml(4319) } });
    const endpoint = 'http://otel-collector.observability.svc.cluster.local:4319/v1/traces';
    await eventually(() => {
      expect(published('demo')?.settings.tracing?.endpoint).toBe(endpoint);
      expect(waypointConfig()?.telemetry?.tracing?.endpoint).toBe(endpoint);
      expect(received.get(ROOT)?.settings.tracing?.endpoint).toBe(endpoint);
    }, { ...WAIT, description: 'new endpoint published' });
    // Deleting the namespace's Telemetries leaves only the root entry (and the waypoint on the mesh-wide settings).
    for (const name of ['errors-only', 'v2', 'waypoint-traces']) h.store.delete('telemetry.istio.io/v1', 'Telemetry', 'demo', name);
    await eventually(() => {
      expect([...received.keys()]).toEqual([ROOT]);
      expect(waypointConfig()?.telemetry).toEqual({ accessLogging: { enabled: true }, tracing: { provider: 'otel', endpoint, samplingPercentage: 100 }, sources: ['amesh-system/mesh-default'] });
    }, { ...WAIT, description: 'namespace entry removed' });
  });
});
