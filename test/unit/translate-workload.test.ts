import { describe, expect, it } from 'vitest';
import { enrolmentOf, type NamespaceObject, type PodObject } from '../../src/controller/translate/enrolment.js';
import type { ServiceObject } from '../../src/controller/translate/service.js';
import { isListedPod, podWorkloadName, resolveTargetPort, serviceMembership, translateWorkload } from '../../src/controller/translate/workload.js';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const ns = (labels: Record<string, string> = {}): NamespaceObject => ({ metadata: { name: 'demo', labels } });

function pod(o: { labels?: Record<string, string>; hostNetwork?: boolean; phase?: string; ready?: boolean; ip?: string; ips?: string[]; deleting?: boolean; sa?: string } = {}): PodObject {
  return {
    metadata: { name: 'p', namespace: 'demo', uid: 'uid-p', labels: o.labels ?? {}, ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: {
      nodeName: 'n1',
      hostNetwork: o.hostNetwork ?? false,
      ...(o.sa === undefined ? { serviceAccountName: 'sa-p' } : o.sa ? { serviceAccountName: o.sa } : {}),
      containers: [{ ports: [{ name: 'http', containerPort: 8080 }, { name: 'metrics', containerPort: 9090, protocol: 'UDP' }] }],
    },
    status: {
      phase: o.phase ?? 'Running',
      ...(o.ip === '' ? {} : { podIP: o.ip ?? '10.244.1.2' }),
      ...(o.ips ? { podIPs: o.ips.map((ip) => ({ ip })) } : {}),
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  };
}

const service = (name: string, selector: Record<string, string> | undefined, ports: NonNullable<ServiceObject['spec']>['ports'], clusterIP = '10.96.0.9', namespace = 'demo'): ServiceObject => ({
  metadata: { name, namespace },
  spec: { clusterIP, ...(selector ? { selector } : {}), ports },
});

const context = (namespace: NamespaceObject | undefined, services: ServiceObject[] = []) => ({ namespace, services, trustDomain: 'cluster.local' });

describe('enrolment', () => {
  it.each([
    ['namespace label', {}, AMBIENT, false, { enrolled: true, reason: 'namespace-label' }],
    ['pod label ambient', AMBIENT, {}, false, { enrolled: true, reason: 'pod-label' }],
    ['pod opt-out none beats the namespace', { 'istio.io/dataplane-mode': 'none' }, AMBIENT, false, { enrolled: false, reason: 'pod-opt-out' }],
    ['host network never, even labelled', AMBIENT, AMBIENT, true, { enrolled: false, reason: 'host-network' }],
    ['no labels', {}, {}, false, { enrolled: false, reason: 'not-labelled' }],
    ['namespace label with another value', {}, { 'istio.io/dataplane-mode': 'sidecar' }, false, { enrolled: false, reason: 'not-labelled' }],
  ])('%s', (_what, podLabels, nsLabels, hostNetwork, expected) => {
    expect(enrolmentOf(pod({ labels: podLabels, hostNetwork }), ns(nsLabels))).toEqual(expected);
  });

  it('enrols by the pod label alone when the namespace is unknown', () => {
    expect(enrolmentOf(pod({ labels: AMBIENT }), undefined).enrolled).toBe(true);
    expect(enrolmentOf(pod(), undefined).enrolled).toBe(false);
  });
});

describe('which pods are listed', () => {
  it.each([
    ['running with an IP', {}, true],
    ['not Running (Pending)', { phase: 'Pending' }, false],
    ['Succeeded', { phase: 'Succeeded' }, false],
    ['without an IP', { ip: '' }, false],
    ['host network', { hostNetwork: true }, false],
    ['being deleted', { deleting: true }, false],
  ])('%s', (_what, o, expected) => {
    expect(isListedPod(pod(o))).toBe(expected);
  });
});

describe('translateWorkload', () => {
  it('translates an enrolled, ready pod', () => {
    const w = translateWorkload(pod({ labels: { ...AMBIENT, app: 'web', version: 'v2' } }), context(ns()));
    expect(w).toEqual({
      uid: 'uid-p',
      name: 'p',
      namespace: 'demo',
      addresses: ['10.244.1.2'],
      serviceAccount: 'sa-p',
      node: 'n1',
      tunnelProtocol: 'HBONE',
      trustDomain: 'cluster.local',
      workloadType: 'POD',
      workloadName: 'p',
      canonicalName: 'web',
      canonicalRevision: 'v2',
      status: 'HEALTHY',
      services: {},
    });
    expect(w).not.toHaveProperty('capacity');
  });

  it.each([
    ['enrolled by namespace', {}, AMBIENT, 'HBONE'],
    ['opted out', { 'istio.io/dataplane-mode': 'none' }, AMBIENT, 'NONE'],
    ['not enrolled', {}, {}, 'NONE'],
  ])('tunnel protocol: %s', (_what, podLabels, nsLabels, expected) => {
    expect(translateWorkload(pod({ labels: podLabels }), context(ns(nsLabels))).tunnelProtocol).toBe(expected);
  });

  it('marks an unready pod UNHEALTHY', () => {
    expect(translateWorkload(pod({ ready: false }), context(ns())).status).toBe('UNHEALTHY');
  });

  it('prefers Istio canonical labels, then app.kubernetes.io, then app/version', () => {
    const labels = { 'service.istio.io/canonical-name': 'istio', 'app.kubernetes.io/name': 'k8s', app: 'plain', 'app.kubernetes.io/version': '1.0', version: 'v0' };
    const w = translateWorkload(pod({ labels }), context(ns()));
    expect([w.canonicalName, w.canonicalRevision]).toEqual(['istio', '1.0']);
  });

  it('defaults the service account and lists every pod IP once', () => {
    const w = translateWorkload(pod({ sa: '', ip: '10.244.1.2', ips: ['10.244.1.2', 'fd00::2'] }), context(ns()));
    expect(w.serviceAccount).toBe('default');
    expect(w.addresses).toEqual(['10.244.1.2', 'fd00::2']);
  });

  it('sorts the authorization policies it is given', () => {
    expect(translateWorkload(pod(), { ...context(ns()), authorizationPolicies: ['demo/b', 'demo/a'] }).authorizationPolicies).toEqual(['demo/a', 'demo/b']);
  });
});

describe('service membership', () => {
  const labelled = pod({ labels: { app: 'web' } });

  it('resolves named target ports on the pod and drops ports it cannot resolve', () => {
    const services = [
      service('web', { app: 'web' }, [
        { port: 80, targetPort: 'http' },
        { port: 81, targetPort: 'missing' },
        { port: 82, targetPort: 'metrics' }, // a UDP container port is no TCP target
        { port: 83, targetPort: 7070 },
        { port: 84 },
        { port: 53, protocol: 'UDP', targetPort: 53 },
      ]),
    ];
    expect(serviceMembership(labelled, services)).toEqual({
      'demo/web.demo.svc.cluster.local': {
        ports: [
          { servicePort: 80, targetPort: 8080 },
          { servicePort: 83, targetPort: 7070 },
          { servicePort: 84, targetPort: 84 },
        ],
      },
    });
  });

  it.each([
    ['selector does not match', service('web', { app: 'other' }, [{ port: 80 }])],
    ['no selector', service('web', undefined, [{ port: 80 }])],
    ['empty selector', service('web', {}, [{ port: 80 }])],
    ['headless service', service('web', { app: 'web' }, [{ port: 80 }], 'None')],
    ['another namespace', service('web', { app: 'web' }, [{ port: 80 }], '10.96.0.9', 'elsewhere')],
  ])('no membership: %s', (_what, s) => {
    expect(serviceMembership(labelled, [s])).toEqual({});
  });

  it('resolves digit-string and absent target ports', () => {
    expect(resolveTargetPort({ port: 80, targetPort: '8081' }, labelled)).toBe(8081);
    expect(resolveTargetPort({ port: 80 }, labelled)).toBe(80);
  });

  it('puts memberships into the workload', () => {
    const w = translateWorkload(labelled, context(ns(), [service('web', { app: 'web' }, [{ port: 80, targetPort: 'http' }])]));
    expect(w.services).toEqual({ 'demo/web.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } });
  });
});

describe('podWorkloadName (Istio workload_name)', () => {
  const owned = (name: string, labels: Record<string, string>, owner?: { kind: string; name: string; controller?: boolean }): PodObject => ({
    metadata: { name, namespace: 'demo', labels, ...(owner ? { ownerReferences: [{ controller: true, ...owner }] } : {}) },
  });
  it.each([
    ['Deployment pod (ReplicaSet <deployment>-<hash>)', owned('backend-v2-7c9f8-abcde', { 'pod-template-hash': '7c9f8' }, { kind: 'ReplicaSet', name: 'backend-v2-7c9f8' }), 'backend-v2'],
    ['ReplicaSet without the hash label: the pod', owned('rs-x-abcde', {}, { kind: 'ReplicaSet', name: 'rs-x' }), 'rs-x-abcde'],
    ['hash label not the owner suffix: the pod', owned('rs-x-abcde', { 'pod-template-hash': 'zzz' }, { kind: 'ReplicaSet', name: 'rs-x' }), 'rs-x-abcde'],
    ['Job pod: the Job', owned('migrate-q2w3e', {}, { kind: 'Job', name: 'migrate' }), 'migrate'],
    ['CronJob pod: the CronJob', owned('nightly-28939560-q2w3e', {}, { kind: 'Job', name: 'nightly-28939560' }), 'nightly'],
    ['StatefulSet pod: the pod', owned('db-0', {}, { kind: 'StatefulSet', name: 'db' }), 'db-0'],
    ['owner that is not the controller: the pod', { metadata: { name: 'p1', ownerReferences: [{ kind: 'ReplicaSet', name: 'x-1' }], labels: { 'pod-template-hash': '1' } } }, 'p1'],
    ['bare pod', owned('p1', {}), 'p1'],
  ])('%s', (_what, p, expected) => {
    expect(podWorkloadName(p)).toBe(expected);
  });

  it('is the workloadName of the Workload', () => {
    const p = pod();
    p.metadata = { ...p.metadata, name: 'web-5d4f-xyz12', labels: { 'pod-template-hash': '5d4f' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'web-5d4f', controller: true }] };
    expect(translateWorkload(p, context(ns())).workloadName).toBe('web');
  });
});
