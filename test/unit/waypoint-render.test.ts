/**
 * Rendering a waypoint Gateway (src/controller/waypoint/render.ts over waypoint/waypoint.yaml),
 * its acceptance, and the Gateway status decisions — pure, as tables.
 */
import { describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { waypointAcceptance } from '../../src/controller/waypoint/acceptance.js';
import { mergeConditions } from '../../src/controller/waypoint/conditions.js';
import { desiredGatewayStatus, podProblem, type GatewayStatusInput } from '../../src/controller/waypoint/gateway-status.js';
import { RENDERED_HASH_ANNOTATION, renderWaypoint, type RenderableGateway } from '../../src/controller/waypoint/render.js';
import { parseWaypointTemplate, waypointTemplate } from '../../src/controller/waypoint/template.js';

const gateway = (o: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string>; listeners?: Array<{ name?: string; port?: number; protocol?: string }>; infrastructure?: { labels?: Record<string, string>; annotations?: Record<string, string> }; uid?: string } = {}): RenderableGateway => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  metadata: { name: o.name ?? 'waypoint', namespace: 'demo', ...(o.uid === '' ? {} : { uid: o.uid ?? 'uid-1' }), ...(o.labels ? { labels: o.labels } : {}), ...(o.annotations ? { annotations: o.annotations } : {}) },
  spec: { gatewayClassName: 'istio-waypoint', listeners: o.listeners ?? [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], ...(o.infrastructure ? { infrastructure: o.infrastructure } : {}) },
});

type Deployment = {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      spec: {
        serviceAccountName: string;
        terminationGracePeriodSeconds: number;
        securityContext: Record<string, unknown>;
        containers: Array<{ image: string; args: string[]; env: Array<{ name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }>; readinessProbe: { httpGet: { port: number; path: string } }; resources: { requests: Record<string, string> }; ports: Array<{ containerPort: number }> }>;
        volumes: Array<{ name: string; projected?: { sources: Array<{ serviceAccountToken?: { audience: string } }> } }>;
      };
    };
  };
};

describe('renderWaypoint', () => {
  it('renders the pod contract: names, labels, image, env, ports, probe, identity volume', () => {
    const r = renderWaypoint(gateway(), { trustDomain: 'example.org' });
    expect(r.objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['ServiceAccount/demo/waypoint', 'Service/demo/waypoint', 'Deployment/demo/waypoint']);
    for (const o of r.objects) {
      expect(o.metadata.ownerReferences).toEqual([{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'waypoint', uid: 'uid-1', controller: true }]);
      expect(o.metadata.labels).toMatchObject({ 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'app.kubernetes.io/managed-by': 'amesh' });
      expect(o.metadata.annotations[RENDERED_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    }
    const d = r.deployment as unknown as Deployment;
    expect(d.spec.replicas).toBeUndefined();
    expect(d.spec.selector.matchLabels).toEqual({ 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
    expect(d.spec.template.metadata.labels).toMatchObject({ 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'istio.io/dataplane-mode': 'none', 'sidecar.istio.io/inject': 'false', 'app.kubernetes.io/managed-by': 'amesh' });
    expect(d.spec.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020' });
    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).toBe('waypoint');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(0);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
    const [c] = pod.containers;
    expect(c?.image).toBe('amesh/waypoint:0.1.0');
    expect(c?.args).toEqual(['waypoint-proxy']);
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? `fieldRef:${e.valueFrom?.fieldRef.fieldPath}`]));
    expect(env).toEqual({
      AMESH_WAYPOINT_NAME: 'waypoint',
      POD_NAME: 'fieldRef:metadata.name',
      POD_NAMESPACE: 'fieldRef:metadata.namespace',
      INSTANCE_IP: 'fieldRef:status.podIP',
      NODE_NAME: 'fieldRef:spec.nodeName',
      AMESH_CA_ADDRESS: 'amesh-controller.amesh-system.svc:15012',
      AMESH_XDS_ADDRESS: 'amesh-controller.amesh-system.svc:15012',
      AMESH_CA_ROOT_CERT_FILE: '/var/run/secrets/istio/root-cert.pem',
      AMESH_CA_TOKEN_FILE: '/var/run/secrets/tokens/istio-token',
      AMESH_TRUST_DOMAIN: 'example.org',
      AMESH_LOG_LEVEL: 'info',
      TMPDIR: '/var/run/amesh/tmp',
    });
    expect(c?.ports.map((p) => p.containerPort)).toEqual([15008, 15020, 15021]);
    expect(c?.readinessProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15021 });
    expect(c?.resources.requests).toEqual({ cpu: '100m', memory: '128Mi' });
    expect(pod.volumes.find((v) => v.name === 'istio-token')?.projected?.sources[0]?.serviceAccountToken?.audience).toBe('istio-ca');
    const service = r.service as unknown as { spec: { selector: Record<string, string>; ports: Array<{ name: string; port: number }> } };
    expect(service.spec.selector).toEqual({ 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
    expect(service.spec.ports).toContainEqual(expect.objectContaining({ name: 'mesh', port: 15008 }));
  });

  it('takes the CA/xDS addresses, image and log level from the options', () => {
    const r = renderWaypoint(gateway(), { trustDomain: 'cluster.local', caAddress: 'ca.mesh:15012', xdsAddress: 'xds.mesh:15010', image: 'reg/wp:1', logLevel: 'debug' });
    const c = (r.deployment as unknown as Deployment).spec.template.spec.containers[0];
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
    expect([c?.image, env.AMESH_CA_ADDRESS, env.AMESH_XDS_ADDRESS, env.AMESH_LOG_LEVEL]).toEqual(['reg/wp:1', 'ca.mesh:15012', 'xds.mesh:15010', 'debug']);
  });

  it('adds spec.infrastructure labels and annotations, our labels winning', () => {
    const r = renderWaypoint(gateway({ infrastructure: { labels: { team: 'a', 'app.kubernetes.io/managed-by': 'someone' }, annotations: { note: 'x' } } }), { trustDomain: 'cluster.local' });
    for (const o of r.objects) expect(o.metadata).toMatchObject({ labels: { team: 'a', 'app.kubernetes.io/managed-by': 'amesh' }, annotations: { note: 'x' } });
    expect((r.deployment as unknown as Deployment).spec.template.metadata.labels).toMatchObject({ team: 'a' });
  });

  it('the hash follows the rendered content and nothing else', () => {
    const hash = (g: RenderableGateway, image?: string): string | undefined => renderWaypoint(g, { trustDomain: 'cluster.local', ...(image ? { image } : {}) }).deployment.metadata.annotations[RENDERED_HASH_ANNOTATION];
    expect(hash(gateway())).toBe(hash(gateway()));
    expect(hash(gateway())).not.toBe(hash(gateway(), 'other:1'));
    expect(hash(gateway())).not.toBe(hash(gateway({ uid: 'uid-2' })));
  });

  it('refuses a Gateway without uid, an unknown placeholder, and a template missing a kind', () => {
    const expectConfigError = (fn: () => unknown, pattern: RegExp): void => {
      let caught: unknown;
      try {
        fn();
      } catch (err) {
        caught = err;
      }
      expect(isAmeshError(caught, 'AMESH_CONFIG_INVALID'), String(caught)).toBe(true);
      expect((caught as Error).message).toMatch(pattern);
    };
    expectConfigError(() => renderWaypoint(gateway({ uid: '' }), { trustDomain: 'cluster.local' }), /has no uid/);
    const bad = parseWaypointTemplate('apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${NAME}\n  labels:\n    x: ${NOPE}\n');
    expectConfigError(() => renderWaypoint(gateway(), { trustDomain: 'cluster.local' }, bad), /unknown placeholder \$\{NOPE\}/);
    expectConfigError(() => renderWaypoint(gateway(), { trustDomain: 'cluster.local' }, bad.slice(0, 0).concat(parseWaypointTemplate('apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n'))), /no Deployment/);
  });

  it('the shipped template holds exactly a ServiceAccount, a Deployment and a Service', () => {
    expect(waypointTemplate().map((o) => o.kind)).toEqual(['ServiceAccount', 'Deployment', 'Service']);
  });
});

describe('waypointAcceptance', () => {
  it.each<[string, RenderableGateway, boolean, string | undefined, string]>([
    ['the canonical waypoint', gateway(), true, undefined, 'accepted by the amesh controller'],
    ['every waypoint-for value', gateway({ labels: { 'istio.io/waypoint-for': 'all' } }), true, undefined, 'accepted by the amesh controller'],
    ['a typo in waypoint-for', gateway({ labels: { 'istio.io/waypoint-for': 'services' } }), false, 'InvalidParameters', 'label istio.io/waypoint-for="services" is not one of service, workload, all, none; the waypoint is not deployed'],
    ['a bad service account', gateway({ annotations: { 'amesh.io/for-service-account': 'Not_A_Name' } }), false, 'InvalidParameters', 'annotation amesh.io/for-service-account="Not_A_Name" is not a ServiceAccount name; the waypoint is not deployed'],
    ['no listeners', gateway({ listeners: [] }), false, 'ListenersNotValid', 'a waypoint needs a listener {port: 15008, protocol: HBONE}; it has none; the waypoint is not deployed'],
    ['HBONE on another port', gateway({ listeners: [{ name: 'mesh', port: 15009, protocol: 'HBONE' }] }), false, 'ListenersNotValid', 'a waypoint needs a listener {port: 15008, protocol: HBONE}; found mesh 15009/HBONE; the waypoint is not deployed'],
    ['an extra listener is named as ignored', gateway({ listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }, { name: 'http', port: 80, protocol: 'HTTP' }] }), true, undefined, 'accepted by the amesh controller; listeners other than HBONE 15008 are ignored: http 80/HTTP'],
  ])('%s', (_what, g, accepted, reason, message) => {
    const verdict = waypointAcceptance(g);
    expect(verdict.accepted).toBe(accepted);
    expect(verdict.accepted ? undefined : verdict.reason).toBe(reason);
    expect(verdict.message).toBe(message);
  });
});

describe('desiredGatewayStatus', () => {
  const ok = { accepted: true as const, message: 'accepted by the amesh controller' };
  const base: GatewayStatusInput = { name: 'waypoint', namespace: 'demo', acceptance: ok };
  const available = { metadata: {}, spec: { replicas: 2 }, status: { availableReplicas: 2 } };
  const withIp = { spec: { clusterIP: '10.96.0.9' } };

  it.each<[string, Partial<GatewayStatusInput>, string, string, string]>([
    ['not accepted', { acceptance: { accepted: false, reason: 'InvalidParameters', message: 'bad label' } }, 'False', 'Invalid', 'not deployed: bad label'],
    ['apply failed', { problem: 'applying Service demo/waypoint failed: forbidden' }, 'False', 'NoResources', 'applying Service demo/waypoint failed: forbidden'],
    ['no Deployment yet', {}, 'False', 'Pending', 'waiting for Deployment demo/waypoint to be created'],
    ['no replica available', { deployment: { metadata: {}, status: {} } }, 'False', 'Pending', 'waiting for Deployment demo/waypoint: 0 of 1 replicas available'],
    [
      'a pod cannot pull its image',
      { deployment: { metadata: {}, spec: { replicas: 1 }, status: {} }, pods: [{ metadata: { name: 'waypoint-x' }, status: { containerStatuses: [{ state: { waiting: { reason: 'ErrImagePull', message: 'no such image' } } }] } }] },
      'False',
      'Pending',
      'waiting for Deployment demo/waypoint: 0 of 1 replicas available; pod waypoint-x: ErrImagePull: no such image',
    ],
    ['no ClusterIP', { deployment: available }, 'False', 'AddressNotAssigned', 'waiting for Service demo/waypoint to get a ClusterIP'],
    ['programmed', { deployment: available, service: withIp }, 'True', 'Programmed', '2 replicas available at 10.96.0.9'],
  ])('%s', (_what, input, status, reason, message) => {
    const s = desiredGatewayStatus({ ...base, ...input });
    expect(s.conditions.find((c) => c.type === 'Programmed')).toEqual({ type: 'Programmed', status, reason, message });
  });

  it('Accepted mirrors acceptance; addresses list the VIP then the hostname', () => {
    expect(desiredGatewayStatus({ ...base, deployment: available, service: withIp })).toEqual({
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'accepted by the amesh controller' },
        { type: 'Programmed', status: 'True', reason: 'Programmed', message: '2 replicas available at 10.96.0.9' },
      ],
      addresses: [
        { type: 'IPAddress', value: '10.96.0.9' },
        { type: 'Hostname', value: 'waypoint.demo.svc.cluster.local' },
      ],
    });
    const rejected = desiredGatewayStatus({ ...base, acceptance: { accepted: false, reason: 'ListenersNotValid', message: 'm' }, service: withIp });
    expect(rejected.conditions[0]).toEqual({ type: 'Accepted', status: 'False', reason: 'ListenersNotValid', message: 'm' });
    expect(rejected.addresses).toEqual([]);
  });

  it('podProblem skips the normal ContainerCreating wait', () => {
    expect(podProblem([{ metadata: { name: 'p' }, status: { containerStatuses: [{ state: { waiting: { reason: 'ContainerCreating' } } }] } }])).toBeUndefined();
    expect(podProblem([{ metadata: { name: 'p' }, status: { containerStatuses: [{ state: { terminated: { reason: 'Error', exitCode: 1 } } }] } }])).toBe('pod p: Error (exit 1)');
  });
});

describe('mergeConditions', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:01:00Z');
  it('keeps others’ conditions, and the transition time while the status holds', () => {
    const current = [
      { type: 'Other', status: 'True' as const, reason: 'X', message: '', lastTransitionTime: t0.toISOString() },
      { type: 'Programmed', status: 'False' as const, reason: 'Pending', message: 'a', lastTransitionTime: t0.toISOString() },
    ];
    const same = mergeConditions([{ type: 'Programmed', status: 'False', reason: 'Pending', message: 'b' }], current, ['Accepted', 'Programmed'], 2, t1);
    expect(same).toEqual([current[0], { type: 'Programmed', status: 'False', reason: 'Pending', message: 'b', observedGeneration: 2, lastTransitionTime: t0.toISOString() }]);
    const flipped = mergeConditions([{ type: 'Programmed', status: 'True', reason: 'Programmed', message: 'c' }], current, ['Accepted', 'Programmed'], 2, t1);
    expect(flipped[1]?.lastTransitionTime).toBe(t1.toISOString());
  });
});
