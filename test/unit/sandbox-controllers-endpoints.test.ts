import { describe, expect, it } from 'vitest';
import { computeEndpointSubsets } from '../../src/sandbox/controllers/endpoints-controller.js';
import { computeEndpointSlices, sliceLabels } from '../../src/sandbox/controllers/endpointslice-controller.js';
import { resolveIntOrPercent } from '../../src/sandbox/controllers/int-or-percent.js';
import type { Pod, Service } from '../../src/sandbox/controllers/kube-types.js';
import { matchesLabelSelector, matchesServiceSelector } from '../../src/sandbox/controllers/label-selector.js';
import { canonicalJson, templateHash } from '../../src/sandbox/controllers/template-hash.js';

function service(ports: NonNullable<Service['spec']>['ports'], extra: Partial<NonNullable<Service['spec']>> = {}): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop', uid: 'uid-svc', labels: { team: 'a' } }, spec: { selector: { app: 'web' }, ports, ...extra } };
}

function pod(name: string, ip: string | undefined, options: { ready?: boolean; deleting?: boolean; phase?: 'Running' | 'Failed'; portName?: string; containerPort?: number; labels?: Record<string, string> } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', uid: `uid-${name}`, labels: options.labels ?? { app: 'web' }, ...(options.deleting ? { deletionTimestamp: '2025-01-01T00:00:00Z' } : {}) },
    spec: { nodeName: 'sandbox-node1', containers: [{ name: 'c', ports: [{ name: options.portName ?? 'http', containerPort: options.containerPort ?? 8080 }] }] },
    status: { phase: options.phase ?? 'Running', ...(ip ? { podIP: ip } : {}), conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }] },
  };
}

describe('computeEndpointSubsets', () => {
  it.each([
    { name: 'numeric targetPort', targetPort: 9090 as number | string | undefined, want: 9090 },
    { name: 'numeric string targetPort', targetPort: '9091', want: 9091 },
    { name: 'named targetPort resolves to the container port', targetPort: 'http', want: 8080 },
    { name: 'no targetPort uses the service port', targetPort: undefined, want: 80 },
  ])('$name', ({ targetPort, want }) => {
    const subsets = computeEndpointSubsets(service([{ name: 'web', port: 80, ...(targetPort !== undefined ? { targetPort } : {}) }]), [pod('a', '10.244.1.2')]);
    expect(subsets).toEqual([
      { addresses: [{ ip: '10.244.1.2', nodeName: 'sandbox-node1', targetRef: { kind: 'Pod', namespace: 'shop', name: 'a', uid: 'uid-a' } }], ports: [{ name: 'web', port: want, protocol: 'TCP' }] },
    ]);
  });

  it('splits ready from not-ready, drops pods without IP, terminating, failed or unselected, sorts by IP', () => {
    const subsets = computeEndpointSubsets(service([{ port: 80, targetPort: 'http' }]), [
      pod('b', '10.244.1.10'),
      pod('a', '10.244.1.9'),
      pod('slow', '10.244.2.3', { ready: false }),
      pod('no-ip', undefined),
      pod('going', '10.244.2.4', { deleting: true }),
      pod('dead', '10.244.2.5', { phase: 'Failed' }),
      pod('other', '10.244.2.6', { labels: { app: 'db' } }),
    ]);
    expect(subsets).toHaveLength(1);
    expect(subsets[0]?.addresses?.map((a) => a.ip)).toEqual(['10.244.1.9', '10.244.1.10']);
    expect(subsets[0]?.notReadyAddresses?.map((a) => a.ip)).toEqual(['10.244.2.3']);
    expect(subsets[0]?.ports).toEqual([{ name: '', port: 8080, protocol: 'TCP' }]);
  });

  it('groups pods whose named port resolves differently, and leaves out pods lacking it', () => {
    const subsets = computeEndpointSubsets(service([{ name: 'web', port: 80, targetPort: 'http' }]), [
      pod('a', '10.244.1.2'),
      pod('b', '10.244.1.3', { containerPort: 9000 }),
      pod('c', '10.244.1.4', { portName: 'metrics' }),
    ]);
    expect(subsets.map((s) => [s.ports?.[0]?.port, s.addresses?.map((a) => a.ip)])).toEqual([
      [8080, ['10.244.1.2']],
      [9000, ['10.244.1.3']],
    ]);
  });

  it('publishNotReadyAddresses lists every pod as ready', () => {
    const subsets = computeEndpointSubsets(service([{ port: 80 }], { publishNotReadyAddresses: true }), [pod('a', '10.244.1.2', { ready: false })]);
    expect(subsets[0]?.addresses?.map((a) => a.ip)).toEqual(['10.244.1.2']);
    expect(subsets[0]?.notReadyAddresses).toBeUndefined();
  });
});

describe('computeEndpointSlices', () => {
  it('keeps terminating pods as not ready but terminating, with targetRef and nodeName', () => {
    const slices = computeEndpointSlices(service([{ name: 'web', port: 80, targetPort: 'http', appProtocol: 'http' }]), [pod('a', '10.244.1.2'), pod('b', '10.244.1.3', { deleting: true }), pod('c', '10.244.1.4', { ready: false })]);
    expect(slices).toHaveLength(1);
    expect(slices[0]?.ports).toEqual([{ name: 'web', port: 8080, protocol: 'TCP', appProtocol: 'http' }]);
    expect(slices[0]?.endpoints).toEqual([
      { addresses: ['10.244.1.2'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'sandbox-node1', targetRef: { kind: 'Pod', namespace: 'shop', name: 'a', uid: 'uid-a' } },
      { addresses: ['10.244.1.3'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'sandbox-node1', targetRef: { kind: 'Pod', namespace: 'shop', name: 'b', uid: 'uid-b' } },
      { addresses: ['10.244.1.4'], conditions: { ready: false, serving: false, terminating: false }, nodeName: 'sandbox-node1', targetRef: { kind: 'Pod', namespace: 'shop', name: 'c', uid: 'uid-c' } },
    ]);
  });

  it('keeps one empty placeholder slice when nothing is selected, and labels slices', () => {
    expect(computeEndpointSlices(service([{ port: 80 }]), [])).toEqual([{ ports: [], endpoints: [] }]);
    expect(sliceLabels(service([{ port: 80 }]))).toEqual({ team: 'a', 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' });
  });
});

describe('controller helpers', () => {
  it.each([
    { selector: { matchLabels: { app: 'web' } }, labels: { app: 'web', x: '1' }, want: true },
    { selector: { matchLabels: { app: 'web' } }, labels: { app: 'db' }, want: false },
    { selector: { matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['a', 'b'] }] }, labels: { tier: 'b' }, want: true },
    { selector: { matchExpressions: [{ key: 'tier', operator: 'NotIn' as const, values: ['a'] }] }, labels: {}, want: true },
    { selector: { matchExpressions: [{ key: 'tier', operator: 'Exists' as const }] }, labels: {}, want: false },
    { selector: { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' as const }] }, labels: { tier: 'a' }, want: false },
    { selector: {}, labels: { any: 'thing' }, want: true },
    { selector: undefined, labels: { any: 'thing' }, want: false },
  ])('label selector $selector on $labels → $want', ({ selector, labels, want }) => {
    expect(matchesLabelSelector(selector, labels as Record<string, string>)).toBe(want);
  });

  it('an empty service selector selects nothing', () => {
    expect(matchesServiceSelector({}, { app: 'web' })).toBe(false);
    expect(matchesServiceSelector({ app: 'web' }, { app: 'web', x: 'y' })).toBe(true);
  });

  it.each([
    { value: undefined, fallback: '25%', total: 3, roundUp: true, want: 1 },
    { value: undefined, fallback: '25%', total: 3, roundUp: false, want: 0 },
    { value: '50%', fallback: 1, total: 5, roundUp: true, want: 3 },
    { value: 2, fallback: '25%', total: 10, roundUp: false, want: 2 },
    { value: 'bogus', fallback: 1, total: 10, roundUp: false, want: 1 },
  ])('intOrPercent $value of $total (roundUp $roundUp) → $want', ({ value, fallback, total, roundUp, want }) => {
    expect(resolveIntOrPercent(value, fallback, total, roundUp)).toBe(want);
  });

  it('template hashes are stable across key order, differ per template and use the safe alphabet', () => {
    const a = { metadata: { labels: { app: 'web', tier: 'x' } }, spec: { containers: [{ name: 'c', image: 'v1' }] } };
    const b = { spec: { containers: [{ image: 'v1', name: 'c' }] }, metadata: { labels: { tier: 'x', app: 'web' } } };
    expect(templateHash(a)).toBe(templateHash(b));
    expect(templateHash(a)).not.toBe(templateHash({ ...a, spec: { containers: [{ name: 'c', image: 'v2' }] } }));
    expect(templateHash(a)).not.toBe(templateHash(a, 1));
    expect(templateHash(a)).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
    expect(canonicalJson({ b: 1, a: [true, null], c: undefined })).toBe('{"a":[true,null],"b":1}');
  });
});
