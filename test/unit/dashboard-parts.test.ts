import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { dashboardOptions } from '../../src/cli/dashboard.js';
import { summariseNamespaces, waypointWorkloads, type NamespaceInventory } from '../../src/dashboard/namespaces.js';
import { parseMetricsUrl, podRole, podSource, Scraper, type MetricsSource } from '../../src/dashboard/scraper.js';
import { allowedHost } from '../../src/dashboard/server.js';
import type { PodHttp } from '../../src/cli/inspect/pod-http.js';

describe('dashboard flags', () => {
  it('defaults and validation', () => {
    expect(dashboardOptions({})).toEqual({ port: 15030, address: '127.0.0.1', intervalMs: 5000, metricsUrls: [], discovery: true, open: false });
    expect(dashboardOptions({ port: '0', interval: '1m', discovery: false, metricsUrl: ['http://a/metrics'] })).toMatchObject({ port: 0, intervalMs: 60_000, discovery: false });
    expect(() => dashboardOptions({ port: '70000' })).toThrow(/--port/);
    expect(() => dashboardOptions({ interval: '0s' })).toThrow(/--interval/);
    expect(() => dashboardOptions({ interval: 'soon' })).toThrow(/--interval/);
  });

  it('--metrics-url takes an optional workload', () => {
    expect(parseMetricsUrl('http://127.0.0.1:15020/metrics')).toEqual({ url: 'http://127.0.0.1:15020/metrics' });
    expect(parseMetricsUrl('demo/waypoint=http://127.0.0.1:1/metrics')).toEqual({ url: 'http://127.0.0.1:1/metrics', workload: { namespace: 'demo', name: 'waypoint' } });
    expect(() => parseMetricsUrl('127.0.0.1:15020')).toThrow(/expected \[NAMESPACE\/WORKLOAD=\]/);
    expect(() => parseMetricsUrl('Demo/x=http://a')).toThrow();
  });
});

describe('targets from pods', () => {
  const pod = (labels: Record<string, string>, name = 'p', owner?: string): V1Pod => ({
    metadata: { name, namespace: 'demo', labels, ...(owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: owner, uid: 'u', controller: true }] } : {}) },
  });

  it('knows agents, waypoints and gateways by their labels', () => {
    expect(podRole(pod({ app: 'amesh-node' }))).toBe('agent');
    expect(podRole(pod({ 'gateway.networking.k8s.io/gateway-name': 'waypoint' }))).toBe('waypoint');
    expect(podRole(pod({ 'gateway.networking.k8s.io/gateway-name': 'web', 'app.kubernetes.io/component': 'ingress-gateway' }))).toBe('gateway');
    expect(podRole(pod({ app: 'frontend' }))).toBe('unknown');
  });

  it('scrapes :15020/metrics through PodHttp and names the waypoint workload', async () => {
    const calls: string[] = [];
    const podHttp: PodHttp = {
      async get(p, port, path) {
        calls.push(`${p.metadata?.name}:${port}${path}`);
        return { status: 200, body: 'up 1\n' };
      },
      close() {},
    };
    const source = podSource(pod({ 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'pod-template-hash': 'abc12' }, 'waypoint-abc12-xyz', 'waypoint-abc12'), podHttp);
    expect(source.target).toEqual({ id: 'pod:demo/waypoint-abc12-xyz', role: 'waypoint', workload: { namespace: 'demo', name: 'waypoint' } });
    expect(await source.fetch(1000)).toBe('up 1\n');
    expect(calls).toEqual(['waypoint-abc12-xyz:15020/metrics']);
  });
});

describe('Scraper', () => {
  it('runs every source in parallel, turns failures into failed results and never overlaps rounds', async () => {
    let t = 1000;
    const ok: MetricsSource = { target: { id: 'ok', role: 'unknown' }, fetch: async () => 'istio_tcp_connections_opened_total{reporter="source"} 1\nbad line here\n' };
    const broken: MetricsSource = {
      target: { id: 'broken', role: 'agent' },
      fetch: async () => {
        throw new Error('ECONNREFUSED');
      },
    };
    const rounds: number[] = [];
    const scraper = new Scraper({ sources: async () => [ok, broken], intervalMs: 60_000, now: () => (t += 1), onRound: (r) => rounds.push(r.length) });
    const results = await scraper.round();
    expect(results.map((r) => [r.target.id, r.families !== undefined, r.error, r.problems])).toEqual([
      ['ok', true, undefined, 1],
      ['broken', false, 'ECONNREFUSED', undefined],
    ]);
    expect(rounds).toEqual([2]);
    scraper.start();
    await scraper.stop(); // waits for the round in flight, schedules nothing more
    expect(rounds).toEqual([2, 2]);
  });
});

describe('namespace summary', () => {
  it('counts enrolment, waypoints and policies per namespace', () => {
    const inv: NamespaceInventory = {
      namespaces: [{ metadata: { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } }, { metadata: { name: 'plain' } }],
      pods: [
        { metadata: { name: 'a', namespace: 'demo', annotations: { 'ambient.istio.io/redirection': 'enabled' } }, status: { phase: 'Running' } },
        { metadata: { name: 'b', namespace: 'demo', labels: { 'istio.io/dataplane-mode': 'none' } }, status: { phase: 'Running' } },
        { metadata: { name: 'c', namespace: 'demo' }, status: { phase: 'Running' } },
        { metadata: { name: 'done', namespace: 'demo' }, status: { phase: 'Succeeded' } },
        { metadata: { name: 'x', namespace: 'plain', labels: { 'istio.io/dataplane-mode': 'ambient' } }, status: { phase: 'Running' } },
      ],
      gateways: [
        { metadata: { name: 'waypoint', namespace: 'demo' }, spec: { gatewayClassName: 'istio-waypoint' }, status: { conditions: [{ type: 'Programmed', status: 'True' }] } },
        { metadata: { name: 'sa-waypoint', namespace: 'demo', labels: { 'istio.io/waypoint-for': 'workload' } }, spec: { gatewayClassName: 'amesh-waypoint' } },
        { metadata: { name: 'web', namespace: 'demo' }, spec: { gatewayClassName: 'istio' } },
      ],
      authorizationPolicies: [
        { metadata: { name: 'deny-all', namespace: 'demo' }, spec: { action: 'DENY' } },
        { metadata: { name: 'allow-frontend', namespace: 'demo' }, spec: { selector: { matchLabels: { app: 'backend' } } } },
      ],
      peerAuthentications: [{ metadata: { name: 'strict', namespace: 'plain' }, spec: { mtls: { mode: 'STRICT' } } }],
    };
    const [demo, plain] = summariseNamespaces(inv);
    expect(demo).toEqual({
      name: 'demo',
      dataplaneMode: 'ambient',
      useWaypoint: 'waypoint',
      pods: { total: 3, enrolled: 2, redirected: 1, pending: 0 },
      waypoints: [
        { name: 'sa-waypoint', for: 'workload', programmed: 'Unknown' },
        { name: 'waypoint', for: 'service', programmed: 'True' },
      ],
      authorizationPolicies: [
        { name: 'allow-frontend', action: 'ALLOW', scope: 'selector' },
        { name: 'deny-all', action: 'DENY', scope: 'namespace' },
      ],
      peerAuthentications: [],
    });
    expect(plain).toMatchObject({ dataplaneMode: undefined, pods: { total: 1, enrolled: 1, redirected: 0, pending: 0 }, peerAuthentications: [{ name: 'strict', mode: 'STRICT' }] });
    expect(waypointWorkloads(inv.gateways)).toEqual(['demo/waypoint', 'demo/sa-waypoint']);
  });
});

describe('server', () => {
  it('accepts IP literals and localhost as Host only', () => {
    for (const host of ['127.0.0.1:15030', 'localhost:15030', 'localhost', '[::1]:15030', '10.0.0.5']) expect(allowedHost(host), host).toBe(true);
    for (const host of ['evil.example:15030', 'evil.example', '', undefined]) expect(allowedHost(host), String(host)).toBe(false);
  });
});
