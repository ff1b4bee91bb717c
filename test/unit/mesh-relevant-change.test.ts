import { describe, expect, it } from 'vitest';
import { meshInputsChanged } from '../../src/controller/mesh/relevant-change.js';

const pod = {
  metadata: { uid: 'u1', name: 'p', namespace: 'demo', resourceVersion: '1', labels: { app: 'a' }, annotations: {} as Record<string, string> },
  spec: { nodeName: 'n1', serviceAccountName: 'sa', containers: [{ ports: [{ containerPort: 8080, name: 'http' }] }] },
  status: { phase: 'Running', podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }, { type: 'Initialized', status: 'True' }] },
};
const svc = { metadata: { uid: 's1', name: 's', labels: {}, annotations: {} }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, status: {} };
const node = { metadata: { uid: 'n1', name: 'n1', resourceVersion: '1', labels: { 'topology.kubernetes.io/zone': 'z1', 'kubernetes.io/hostname': 'n1' }, annotations: {} }, spec: {}, status: { conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: 't1' }] } };
const slice = {
  metadata: { uid: 'e1', name: 'db-1', namespace: 'demo', resourceVersion: '1', labels: { 'kubernetes.io/service-name': 'db' } },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['10.0.0.9'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1' }],
  ports: [{ name: '', port: 6432, protocol: 'TCP' }],
};

describe('meshInputsChanged', () => {
  it.each([
    ['pod annotation written by the controller', 'pods', pod, { ...pod, metadata: { ...pod.metadata, resourceVersion: '2', annotations: { 'ambient.istio.io/redirection': 'enabled' } } }, false],
    ['pod non-Ready condition', 'pods', pod, { ...pod, status: { ...pod.status, conditions: [pod.status.conditions[0]!, { type: 'Initialized', status: 'False' }] } }, false],
    ['pod label', 'pods', pod, { ...pod, metadata: { ...pod.metadata, labels: { app: 'b' } } }, true],
    ['pod readiness', 'pods', pod, { ...pod, status: { ...pod.status, conditions: [{ type: 'Ready', status: 'False' }] } }, true],
    ['pod IP', 'pods', pod, { ...pod, status: { ...pod.status, podIP: '10.0.0.2' } }, true],
    ['pod container port', 'pods', pod, { ...pod, spec: { ...pod.spec, containers: [{ ports: [{ containerPort: 9090, name: 'http' }] }] } }, true],
    ['pod deletion', 'pods', pod, { ...pod, metadata: { ...pod.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }, true],
    ['service status condition', 'services', svc, { ...svc, status: { conditions: [{ type: 'istio.io/WaypointBound' }] } }, false],
    ['service label', 'services', svc, { ...svc, metadata: { ...svc.metadata, labels: { 'istio.io/use-waypoint': 'w' } } }, true],
    ['service spec', 'services', svc, { ...svc, spec: { ...svc.spec, ports: [{ port: 81 }] } }, true],
    ['secret data (certificate rotation)', 'secrets', { metadata: { uid: 'k1' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'YQ==' } }, { metadata: { uid: 'k1' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'Yg==' } }, true],
    ['secret bookkeeping only', 'secrets', { metadata: { uid: 'k1', resourceVersion: '1' }, data: { a: 'YQ==' } }, { metadata: { uid: 'k1', resourceVersion: '2' }, data: { a: 'YQ==' } }, false],
    ['pod adopted by a ReplicaSet (its workload name)', 'pods', pod, { ...pod, metadata: { ...pod.metadata, ownerReferences: [{ kind: 'ReplicaSet', name: 'web-5d4f', controller: true }] } }, true],
    ['mesh config ConfigMap data', 'meshConfigMaps', { metadata: { uid: 'c1' }, data: { mesh: 'a: 1' } }, { metadata: { uid: 'c1' }, data: { mesh: 'a: 2' } }, true],
    ['mesh config ConfigMap bookkeeping only', 'meshConfigMaps', { metadata: { uid: 'c1', resourceVersion: '1' }, data: { mesh: 'a: 1' } }, { metadata: { uid: 'c1', resourceVersion: '2' }, data: { mesh: 'a: 1' } }, false],
    ['Telemetry status written by the controller', 'telemetries', svc, { ...svc, status: { conditions: [{ type: 'Accepted' }] } }, false],
    ['Telemetry spec', 'telemetries', svc, { ...svc, spec: { tracing: [{}] } }, true],
    ['gateway annotation', 'gateways', svc, { ...svc, metadata: { ...svc.metadata, annotations: { 'amesh.io/for-service-account': 'sa' } } }, true],
    ['node heartbeat (status only)', 'nodes', node, { ...node, metadata: { ...node.metadata, resourceVersion: '2' }, status: { conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: 't2' }] } }, false],
    ['node label other than topology', 'nodes', node, { ...node, metadata: { ...node.metadata, labels: { ...node.metadata.labels, 'kubernetes.io/hostname': 'x' } } }, false],
    ['node annotation', 'nodes', node, { ...node, metadata: { ...node.metadata, annotations: { 'node.alpha.kubernetes.io/ttl': '0' } } }, false],
    ['node zone label', 'nodes', node, { ...node, metadata: { ...node.metadata, labels: { ...node.metadata.labels, 'topology.kubernetes.io/zone': 'z2' } } }, true],
    ['node subzone label added', 'nodes', node, { ...node, metadata: { ...node.metadata, labels: { ...node.metadata.labels, 'topology.istio.io/subzone': 's' } } }, true],
    ['slice serving/terminating only', 'endpointSlices', slice, { ...slice, endpoints: [{ ...slice.endpoints[0]!, conditions: { ready: true, serving: false, terminating: true } }] }, false],
    ['slice endpoint nodeName only', 'endpointSlices', slice, { ...slice, endpoints: [{ ...slice.endpoints[0]!, nodeName: 'n2' }] }, false],
    ['slice address', 'endpointSlices', slice, { ...slice, endpoints: [{ ...slice.endpoints[0]!, addresses: ['10.0.0.10'] }] }, true],
    ['slice readiness', 'endpointSlices', slice, { ...slice, endpoints: [{ ...slice.endpoints[0]!, conditions: { ready: false } }] }, true],
    ['slice port', 'endpointSlices', slice, { ...slice, ports: [{ name: '', port: 6433, protocol: 'TCP' }] }, true],
    ['slice service label', 'endpointSlices', slice, { ...slice, metadata: { ...slice.metadata, labels: { 'kubernetes.io/service-name': 'db2' } } }, true],
  ])('%s → %s', (_name, kind, previous, object, expected) => expect(meshInputsChanged(kind, previous, object)).toBe(expected));

  it('counts an add (no previous object)', () => expect(meshInputsChanged('pods', undefined, pod)).toBe(true));
});
