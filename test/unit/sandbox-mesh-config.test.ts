import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { isEnrolled, renderNodeConfig } from '../../src/sandbox/mesh/render-node-config.js';
import { parseLocalConfig } from '../../src/config/local-config.js';

const ns = (name: string, labels: Record<string, string> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });

function pod(name: string, o: { ns?: string; ip?: string; labels?: Record<string, string>; hostNetwork?: boolean; phase?: string; ready?: boolean; node?: string } = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: o.ns ?? 'demo', uid: `uid-${name}`, labels: o.labels ?? {} },
    spec: { nodeName: o.node ?? 'n1', serviceAccountName: 'sa-' + name, hostNetwork: o.hostNetwork ?? false, containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: o.phase ?? 'Running', podIP: o.ip ?? '10.244.1.2', conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  };
}

const service = (name: string, selector: Record<string, string>, targetPort: number | string = 8080): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'demo' },
  spec: { clusterIP: '10.96.0.20', selector, ports: [{ port: 80, targetPort, protocol: 'TCP' }] },
});

const options = { node: 'n1', trustDomain: 'cluster.local', caCertFile: '/ca.pem', caKeyFile: '/ca-key.pem', uplinks: ['up0'] };

describe('enrolment (Istio rules, DESIGN §7)', () => {
  it.each([
    ['namespace label', {}, { 'istio.io/dataplane-mode': 'ambient' }, false, true],
    ['no labels', {}, {}, false, false],
    ['pod label alone', { 'istio.io/dataplane-mode': 'ambient' }, {}, false, true],
    ['pod opts out', { 'istio.io/dataplane-mode': 'none' }, { 'istio.io/dataplane-mode': 'ambient' }, false, false],
    ['host network never', {}, { 'istio.io/dataplane-mode': 'ambient' }, true, false],
  ])('%s', (_what, podLabels, nsLabels, hostNetwork, expected) => {
    expect(isEnrolled(pod('a', { labels: podLabels, hostNetwork }), ns('demo', nsLabels))).toBe(expected);
  });
});

describe('renderNodeConfig', () => {
  it('lists running pods with their services and validates as a local config', () => {
    const doc = renderNodeConfig(
      {
        namespaces: [ns('demo', { 'istio.io/dataplane-mode': 'ambient' }), ns('other')],
        pods: [
          pod('backend', { ip: '10.244.2.5', labels: { app: 'backend', version: 'v1' }, node: 'n2' }),
          pod('client', { ip: '10.244.1.2' }),
          pod('outsider', { ns: 'other', ip: '10.244.1.3' }),
          pod('pending', { ip: '10.244.1.4', phase: 'Pending' }),
          pod('agent', { ip: '10.250.0.1', hostNetwork: true }),
        ],
        services: [service('backend', { app: 'backend' }, 'http'), { ...service('headless', { app: 'backend' }), spec: { clusterIP: 'None', ports: [] } }],
      },
      options,
    );
    expect(doc.workloads.map((w) => [w.name, w.tunnelProtocol])).toEqual([
      ['backend', 'HBONE'],
      ['client', 'HBONE'],
      ['outsider', 'NONE'],
    ]);
    const backend = doc.workloads[0];
    expect(backend?.services).toEqual({ 'demo/backend.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } });
    expect(backend?.canonicalName).toBe('backend');
    expect(backend?.canonicalRevision).toBe('v1');
    expect(backend?.serviceAccount).toBe('sa-backend');
    expect(doc.services).toEqual([{ name: 'backend', namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', addresses: ['10.96.0.20'], ports: [{ servicePort: 80, targetPort: 0 }] }]);
    // The agent's own parser accepts what we write.
    const parsed = parseLocalConfig(JSON.parse(JSON.stringify(doc)), 'test', '/');
    expect(parsed.workloads).toHaveLength(3);
  });

  it('marks not-ready pods UNHEALTHY and drops a pod whose IP another pod already holds', () => {
    const doc = renderNodeConfig({ namespaces: [ns('demo')], pods: [pod('a', { ip: '10.244.1.9', ready: false }), pod('b', { ip: '10.244.1.9' })], services: [] }, options);
    expect(doc.workloads.map((w) => [w.name, w.status])).toEqual([['a', 'UNHEALTHY']]);
  });
});

describe('renderNodeConfig: L4 policies from AuthorizationPolicy and PeerAuthentication', () => {
  const sec = (kind: string, name: string, namespace: string, spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'security.istio.io/v1', kind, metadata: { name, namespace, creationTimestamp: '2026-01-01T00:00:00Z' }, spec });
  const view = (policies: { ap?: KubeObject[]; pa?: KubeObject[] }) => ({
    namespaces: [ns('demo', { 'istio.io/dataplane-mode': 'ambient' })],
    pods: [pod('backend', { ip: '10.244.2.5', labels: { app: 'backend' } }), pod('client', { ip: '10.244.1.2', labels: { app: 'client' } })],
    services: [],
    authorizationPolicies: policies.ap ?? [],
    peerAuthentications: policies.pa ?? [],
  });

  it('publishes AuthorizationPolicies and lists selector policies on the workloads they select', () => {
    const doc = renderNodeConfig(
      view({
        ap: [
          sec('AuthorizationPolicy', 'allow-client', 'demo', { selector: { matchLabels: { app: 'backend' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/sa-client'] } }] }] }),
          sec('AuthorizationPolicy', 'deny-ns', 'demo', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['evil'] } }] }] }),
        ],
      }),
      options,
    );
    expect(doc.policies.map((p) => [p.name, p.scope, p.action])).toEqual([
      ['allow-client', 'WORKLOAD_SELECTOR', 'ALLOW'],
      ['deny-ns', 'NAMESPACE', 'DENY'],
    ]);
    expect(doc.workloads.find((w) => w.name === 'backend')?.authorizationPolicies).toEqual(['demo/allow-client']);
    expect(doc.workloads.find((w) => w.name === 'client')?.authorizationPolicies).toBeUndefined();
    expect(() => parseLocalConfig(JSON.parse(JSON.stringify(doc)), 'test', '/')).not.toThrow();
  });

  it('turns a namespace STRICT PeerAuthentication into a DENY-without-principal policy on every workload, unless a workload policy says PERMISSIVE', () => {
    const doc = renderNodeConfig(
      view({
        pa: [
          sec('PeerAuthentication', 'strict', 'demo', { mtls: { mode: 'STRICT' } }),
          sec('PeerAuthentication', 'client-open', 'demo', { selector: { matchLabels: { app: 'client' } }, mtls: { mode: 'PERMISSIVE' } }),
        ],
      }),
      options,
    );
    expect(doc.policies).toEqual([
      { name: 'istio_converted_peer_authentication_strict', namespace: 'demo', scope: 'WORKLOAD_SELECTOR', action: 'DENY', rules: [{ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }] }] }] }] },
    ]);
    expect(doc.workloads.find((w) => w.name === 'backend')?.authorizationPolicies).toEqual(['demo/istio_converted_peer_authentication_strict']);
    expect(doc.workloads.find((w) => w.name === 'client')?.authorizationPolicies).toBeUndefined();
    expect(() => parseLocalConfig(JSON.parse(JSON.stringify(doc)), 'test', '/')).not.toThrow();
  });
});
