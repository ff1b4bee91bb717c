import { describe, expect, it } from 'vitest';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from '../../src/sandbox/apiserver/selectors.js';
import { parseRoute } from '../../src/sandbox/apiserver/routes.js';
import { compareVersionPriority, ResourceRegistry } from '../../src/sandbox/apiserver/registry.js';
import { humanDuration, podStatusText } from '../../src/sandbox/apiserver/table.js';
import { ApiError } from '../../src/sandbox/apiserver/types.js';

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front', 'istio.io/dataplane-mode': 'ambient' };
  it.each([
    ['app=web', true],
    ['app==web', true],
    ['app!=web', false],
    ['app!=db', true],
    ['missing!=x', true],
    ['app in (web,db)', true],
    ['app notin (web,db)', false],
    ['missing notin (web)', true],
    ['app in (db)', false],
    ['tier', true],
    ['!tier', false],
    ['!missing', true],
    ['app=web,tier=front', true],
    ['app=web,tier in (back, middle)', false],
    ['istio.io/dataplane-mode=ambient', true],
    ['', true],
  ])('%s → %s', (selector, expected) => {
    expect(matchesLabels(parseLabelSelector(selector), labels)).toBe(expected);
  });

  it('rejects malformed selectors with 400 naming the selector', () => {
    for (const bad of ['a b', 'app=(x', '=x', 'app in x']) {
      try {
        parseLabelSelector(bad);
        expect.unreachable(`${bad} should not parse`);
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).code).toBe(400);
      }
    }
  });
});

describe('field selectors', () => {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'demo' }, spec: { nodeName: 'sandbox-node1' }, status: { phase: 'Running' } };
  it.each([
    ['metadata.name=p', true],
    ['metadata.name=q', false],
    ['metadata.namespace=demo,spec.nodeName=sandbox-node1', true],
    ['spec.nodeName!=sandbox-node1', false],
    ['status.phase!=Succeeded', true],
    ['spec.nodeName=', false],
    ['spec.missing=', true],
  ])('%s → %s', (selector, expected) => {
    expect(matchesFields(parseFieldSelector(selector), pod)).toBe(expected);
  });
  it('rejects a requirement without an operator', () => {
    expect(() => parseFieldSelector('metadata.name')).toThrow(/invalid field selector/);
  });
});

describe('routes', () => {
  it.each([
    ['/api', { kind: 'api' }],
    ['/apis/apps', { kind: 'group', group: 'apps' }],
    ['/api/v1', { kind: 'resource-list', group: '', version: 'v1' }],
    ['/api/v1/pods', { kind: 'resource', group: '', version: 'v1', plural: 'pods', watch: false }],
    ['/api/v1/namespaces/demo/pods/web/status', { kind: 'resource', group: '', version: 'v1', plural: 'pods', namespace: 'demo', name: 'web', subresource: 'status', watch: false }],
    ['/api/v1/namespaces/demo', { kind: 'resource', group: '', version: 'v1', plural: 'namespaces', name: 'demo', watch: false }],
    ['/api/v1/namespaces/demo/status', { kind: 'resource', group: '', version: 'v1', plural: 'namespaces', name: 'demo', subresource: 'status', watch: false }],
    ['/apis/apps/v1/watch/namespaces/x/deployments', { kind: 'resource', group: 'apps', version: 'v1', plural: 'deployments', namespace: 'x', watch: true }],
    ['/openapi/v3/apis/apps/v1', { kind: 'openapi-v3-group-version', group: 'apps', version: 'v1' }],
    ['/healthz/ping', { kind: 'healthz' }],
    ['/nope', { kind: 'unknown' }],
    ['/api/v1/pods/a/b/c', { kind: 'unknown' }],
    ['/api/v1/%E0%A4%A', { kind: 'unknown' }],
  ])('%s', (path, expected) => {
    expect(parseRoute(path)).toEqual(expected);
  });
});

describe('registry', () => {
  it('orders versions GA > beta > alpha', () => {
    expect(['v1alpha3', 'v1', 'v1beta1', 'v2beta1'].sort(compareVersionPriority)).toEqual(['v1', 'v2beta1', 'v1beta1', 'v1alpha3']);
  });
  it('serves Istio kinds under every version with v1 preferred', () => {
    const registry = new ResourceRegistry();
    expect(registry.byPlural('networking.istio.io', 'v1alpha3', 'virtualservices')?.kind).toBe('VirtualService');
    expect(registry.groups().find((g) => g.name === 'networking.istio.io')?.versions).toEqual(['v1', 'v1beta1', 'v1alpha3']);
    expect(registry.byKind('v1', 'Node')?.namespaced).toBe(false);
    expect(registry.byKind('apps/v1', 'Deployment')?.shortNames).toEqual(['deploy']);
  });
});

describe('table printing helpers', () => {
  it.each([
    [5_000, '5s'],
    [119_000, '119s'],
    [150_000, '2m30s'],
    [600_000, '10m'],
    [4 * 3600_000 + 60_000, '4h1m'],
    [30 * 3600_000, '30h'],
    [3 * 86400_000 + 3600_000, '3d1h'],
  ])('humanDuration(%d) = %s', (ms, text) => {
    expect(humanDuration(ms)).toBe(text);
  });
  it('shows Terminating and container waiting reasons like kubectl', () => {
    const base = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } };
    expect(podStatusText({ ...base, status: { phase: 'Running' } })).toBe('Running');
    expect(podStatusText({ ...base, status: { phase: 'Pending', containerStatuses: [{ state: { waiting: { reason: 'ErrImagePull' } } }] } })).toBe('ErrImagePull');
    expect(podStatusText({ ...base, metadata: { name: 'p', deletionTimestamp: '2026-01-01T00:00:00Z' }, status: { phase: 'Running' } })).toBe('Terminating');
  });
});
