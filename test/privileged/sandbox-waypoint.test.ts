/**
 * Issue #6 end to end in the sandbox, with real kubectl and the amesh CLI: a waypoint deployed by
 * `amesh waypoint apply -n demo --enroll-namespace --wait` becomes Programmed and the node agents
 * hand demo's service traffic to it, so
 * - the canary (DestinationRule subsets v1/v2 + VirtualService 90/10) splits 1 000 requests 90/10
 *   within ±3 points; 50/50 applies within 2 s without failing requests in flight;
 * - the header rule (`user-group: beta-tester` → v2) and its HTTPRoute equivalent route right;
 * - a URL rewrite and a header set are visible to the backend (httpbin echoes them);
 * - bad input (unknown subset, malformed regex, weights totalling 0) gets a condition naming the
 *   problem while traffic keeps the last valid routes;
 * - a per-service-account waypoint handles only that account's workloads;
 * - deleting the waypoint returns traffic to L4 without breaking it.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';

const guard = requireRoot('sandbox waypoints', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'unshare'] });
const REPO = join(import.meta.dirname, '..', '..');
const SAMPLES = join(REPO, 'samples', 'waypoint');

describe.skipIf(!guard.run)('waypoints and L7 routing (privileged sandbox)', () => {
  const name = `aw${Math.random().toString(16).slice(2, 5)}`;
  let dir = '';
  const { kubectl, kubectlOk, apply, amesh, exec } = sandboxCli(() => dir);
  /** `count` requests from demo/client on one keep-alive connection (curl URL globbing); versions seen. */
  const versions = (count: number, headers: string[] = []): { v1: number; v2: number; other: number; stderr: string } => {
    const r = exec('demo/client', 'curl', '-s', '-S', '--max-time', '120', ...headers.flatMap((h) => ['-H', h]), `http://backend.demo/?[1-${count}]`);
    const v1 = (r.stdout.match(/Version: 1\.0\.0/g) ?? []).length;
    const v2 = (r.stdout.match(/Version: 2\.0\.0/g) ?? []).length;
    return { v1, v2, other: count - v1 - v2, stderr: r.stderr };
  };
  const condition = (kind: string, object: string, type = 'Accepted'): string =>
    kubectlOk('get', kind, '-n', 'demo', object, '-o', `jsonpath={.status.conditions[?(@.type=="${type}")].status} {.status.conditions[?(@.type=="${type}")].message}`);

  /** When a waypoint does not become Programmed: its pods, their status and log tails. */
  const waypointDiagnostics = (gateway: string): string => {
    const pods = kubectl('get', 'pods', '-n', 'demo', '-l', `gateway.networking.k8s.io/gateway-name=${gateway}`, '-o', 'wide').stdout;
    const names = kubectl('get', 'pods', '-n', 'demo', '-l', `gateway.networking.k8s.io/gateway-name=${gateway}`, '-o', 'jsonpath={.items[*].metadata.name}').stdout.split(' ').filter(Boolean);
    const details = names.map((pod) => {
      const status = kubectl('get', 'pod', '-n', 'demo', pod, '-o', 'jsonpath={.status}').stdout;
      const log = amesh('sandbox', 'logs', '--dir', dir, `demo/${pod}`).stdout.split('\n').slice(-30).join('\n');
      return `--- ${pod} status: ${status}\n--- ${pod} log tail:\n${log}`;
    });
    return `waypoint pods:\n${pods}\n${details.join('\n')}`;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-waypoint-test-'));
    await sandboxUp({ dir, name, nodes: 2 });
    kubectlOk('apply', '-f', join(REPO, 'samples', 'demo', 'demo.yaml'));
    apply(
      [
        'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: httpbin, namespace: demo}\nspec: {selector: {matchLabels: {app: httpbin}}, template: {metadata: {labels: {app: httpbin}}, spec: {containers: [{name: httpbin, image: mccutchen/go-httpbin, ports: [{containerPort: 8080}]}]}}}',
        'apiVersion: v1\nkind: Service\nmetadata: {name: httpbin, namespace: demo}\nspec: {selector: {app: httpbin}, ports: [{name: http, port: 80, targetPort: 8080}]}',
      ].join('\n---\n'),
    );
    kubectlOk('label', 'ns', 'demo', 'istio.io/dataplane-mode=ambient');
    await eventually(
      () => {
        const r = kubectlOk('get', 'deploy', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas} {end}');
        expect(r.trim().split(' ').sort()).toEqual(['backend-v1=1', 'backend-v2=1', 'client=1', 'frontend=1', 'httpbin=1']);
        const seen = versions(20);
        expect(seen.v1 + seen.v2, seen.stderr).toBe(20);
      },
      { timeoutMs: 90_000, intervalMs: 1000, description: 'demo running in the mesh' },
    );
  }, 240_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('`amesh waypoint apply -n demo --enroll-namespace --wait` deploys a waypoint that becomes Programmed', () => {
    const r = amesh('waypoint', 'apply', '-n', 'demo', '--enroll-namespace', '--wait', '--timeout', '120s');
    expect(r.status, `${r.stdout}\n${r.stderr}\n${waypointDiagnostics('waypoint')}`).toBe(0);
    expect(kubectlOk('get', 'gateway', '-n', 'demo', 'waypoint', '-o', 'jsonpath={.status.conditions[?(@.type=="Programmed")].status}')).toBe('True');
    expect(kubectlOk('get', 'ns', 'demo', '-o', 'jsonpath={.metadata.labels.istio\\.io/use-waypoint}')).toBe('waypoint');
    const list = amesh('waypoint', 'list', '-n', 'demo');
    expect(list.stdout).toMatch(/waypoint\s/);
    expect(kubectlOk('get', 'svc', '-n', 'demo', 'backend', '-o', 'jsonpath={.status.conditions[?(@.type=="istio.io/WaypointBound")].status}')).toBe('True');
  }, 180_000);

  it('splits 1 000 requests 90/10 within ±3 points; 50/50 applies within 2 s without failing requests in flight', async () => {
    kubectlOk('apply', '-f', join(SAMPLES, 'destination-rule.yaml'), '-f', join(SAMPLES, 'canary-virtual-service.yaml'));
    await eventually(() => expect(versions(100).v1).toBeGreaterThan(75), { timeoutMs: 15_000, intervalMs: 500, description: 'the canary route in force' });
    const canary = versions(1000);
    console.log(`90/10 canary over 1 000 requests: v1 ${canary.v1}, v2 ${canary.v2}, other ${canary.other}`);
    expect(canary.other, canary.stderr).toBe(0);
    expect(canary.v2).toBeGreaterThanOrEqual(70);
    expect(canary.v2).toBeLessThanOrEqual(130);

    // Requests in flight while the weights change: every one must be answered by a backend.
    const inFlight = new Promise<ReturnType<typeof versions>>((resolve) => setImmediate(() => resolve(versions(1500))));
    await new Promise((r) => setTimeout(r, 300));
    kubectlOk('patch', 'virtualservice', '-n', 'demo', 'backend', '--type=json', '-p', '[{"op":"replace","path":"/spec/http/0/route/0/weight","value":50},{"op":"replace","path":"/spec/http/0/route/1/weight","value":50}]');
    const changedAt = Date.now();
    const during = await inFlight;
    expect(during.other, `requests failed while the weights changed: ${during.stderr}`).toBe(0);
    const wait = 2000 - (Date.now() - changedAt);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const even = versions(600);
    console.log(`50/50 after 2 s over 600 requests: v1 ${even.v1}, v2 ${even.v2}`);
    expect(even.other).toBe(0);
    expect(even.v2).toBeGreaterThanOrEqual(240);
    expect(even.v2).toBeLessThanOrEqual(360);
  }, 180_000);

  it('routes by header with the VirtualService and with an equivalent HTTPRoute', async () => {
    kubectlOk('apply', '-f', join(SAMPLES, 'header-virtual-service.yaml'));
    await eventually(
      () => {
        expect(versions(40, ['user-group: beta-tester'])).toMatchObject({ v1: 0, v2: 40 });
        expect(versions(40)).toMatchObject({ v1: 40, v2: 0 });
      },
      { timeoutMs: 15_000, intervalMs: 500, description: 'beta testers on v2, everyone else on v1 (VirtualService)' },
    );
    kubectlOk('delete', 'virtualservice', '-n', 'demo', 'backend');
    kubectlOk('apply', '-f', join(SAMPLES, 'canary-http-route.yaml'));
    await eventually(
      () => {
        expect(versions(40, ['user-group: beta-tester'])).toMatchObject({ v1: 0, v2: 40 });
        const rest = versions(400);
        expect(rest.other).toBe(0);
        expect(rest.v2).toBeGreaterThanOrEqual(20);
        expect(rest.v2).toBeLessThanOrEqual(60);
      },
      { timeoutMs: 15_000, intervalMs: 500, description: 'the HTTPRoute: beta testers on v2, 90/10 for the rest' },
    );
    kubectlOk('delete', 'httproute', '-n', 'demo', 'backend');
  }, 120_000);

  it('a URL rewrite and a header set are visible to the backend', async () => {
    apply(
      'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: httpbin, namespace: demo}\nspec: {hosts: [httpbin], http: [{match: [{uri: {prefix: /old}}], rewrite: {uri: /anything/new}, headers: {request: {set: {x-amesh-test: rewritten}}}, route: [{destination: {host: httpbin}}]}]}',
    );
    await eventually(
      () => {
        const r = exec('demo/client', 'curl', '-s', '--max-time', '5', 'http://httpbin.demo/old/page');
        const echoed = JSON.parse(r.stdout) as { path: string; headers: Record<string, string[]> };
        expect(echoed.path).toBe('/anything/new/page');
        const header = Object.entries(echoed.headers).find(([k]) => k.toLowerCase() === 'x-amesh-test')?.[1];
        expect(header).toEqual(['rewritten']);
      },
      { timeoutMs: 15_000, intervalMs: 500, description: 'httpbin sees the rewritten path and the header' },
    );
  }, 60_000);

  it('bad input gets a condition naming the problem; traffic keeps the last valid routes', async () => {
    kubectlOk('apply', '-f', join(SAMPLES, 'header-virtual-service.yaml'));
    await eventually(() => expect(versions(20, ['user-group: beta-tester'])).toMatchObject({ v2: 20 }), { timeoutMs: 15_000, intervalMs: 500, description: 'header route in force' });
    const cases: Array<{ patch: string; mentions: RegExp }> = [
      { patch: '[{"op":"replace","path":"/spec/http/0/route/0/destination/subset","value":"v3"}]', mentions: /v3/ },
      { patch: '[{"op":"replace","path":"/spec/http/0/match/0/headers/user-group","value":{"regex":"beta-(tester"}}]', mentions: /regex/i },
      { patch: '[{"op":"add","path":"/spec/http/1/route/0/weight","value":0}]', mentions: /weight/i },
    ];
    for (const { patch, mentions } of cases) {
      kubectlOk('apply', '-f', join(SAMPLES, 'header-virtual-service.yaml'));
      await eventually(() => expect(condition('virtualservice', 'backend')).toMatch(/^True/), { timeoutMs: 10_000, intervalMs: 300, description: 'valid again' });
      kubectlOk('patch', 'virtualservice', '-n', 'demo', 'backend', '--type=json', '-p', patch);
      await eventually(() => expect(condition('virtualservice', 'backend')).toMatch(new RegExp(`^False .*${mentions.source}`, mentions.flags)), {
        timeoutMs: 10_000,
        intervalMs: 300,
        description: `a condition naming the problem (${mentions})`,
      });
      expect(versions(20, ['user-group: beta-tester']), 'the last valid routes still apply').toMatchObject({ v1: 0, v2: 20 });
      expect(versions(20)).toMatchObject({ v1: 20, v2: 0 });
    }
    kubectlOk('delete', 'virtualservice', '-n', 'demo', 'backend');
  }, 120_000);

  it('a per-service-account waypoint handles only that account’s workloads', async () => {
    const del = amesh('waypoint', 'delete', '-n', 'demo', 'waypoint');
    expect(del.status, del.stderr).toBe(0);
    const r = amesh('waypoint', 'apply', '-n', 'demo', '--service-account', 'backend-sa', '--wait', '--timeout', '120s');
    expect(r.status, `${r.stdout}\n${r.stderr}\n${waypointDiagnostics('backend-sa-waypoint')}`).toBe(0);
    kubectlOk('apply', '-f', join(SAMPLES, 'header-virtual-service.yaml'));
    await eventually(() => expect(versions(20, ['user-group: beta-tester'])).toMatchObject({ v2: 20 }), { timeoutMs: 20_000, intervalMs: 500, description: 'backend (backend-sa) goes through its waypoint' });
    // frontend runs as frontend-sa: reached directly; the waypoint's access log never names it.
    expect(exec('demo/client', 'curl', '-s', '--max-time', '5', 'http://frontend.demo').stdout).toContain('hello from the frontend');
    const wpPod = kubectlOk('get', 'pods', '-n', 'demo', '-l', 'gateway.networking.k8s.io/gateway-name=backend-sa-waypoint', '-o', 'jsonpath={.items[0].metadata.name}');
    const log = amesh('sandbox', 'logs', '--dir', dir, `demo/${wpPod}`).stdout;
    expect(log).toMatch(/backend/);
    expect(log).not.toMatch(/frontend\.demo|"authority":"[^"]*frontend/);
  }, 180_000);

  it('deleting the waypoint returns traffic to L4 without breaking it', async () => {
    const del = amesh('waypoint', 'delete', '-n', 'demo', '--all');
    expect(del.status, del.stderr).toBe(0);
    await eventually(
      () => {
        // The VirtualService is not applied at L4: a beta tester now reaches both versions. L4
        // balancing is per connection, so each request gets its own.
        const seen = versions(60, ['user-group: beta-tester', 'Connection: close']);
        expect(seen.other, seen.stderr).toBe(0);
        expect(seen.v1).toBeGreaterThan(0);
        expect(seen.v2).toBeGreaterThan(0);
      },
      { timeoutMs: 30_000, intervalMs: 1000, description: 'L4 only: both backends, no failures' },
    );
    // The Deployment goes with its Gateway (owner-reference garbage collection).
    await eventually(() => expect(kubectlOk('get', 'deploy', '-n', 'demo', '-o', 'jsonpath={.items[*].metadata.name}')).not.toMatch(/waypoint/), {
      timeoutMs: 30_000,
      intervalMs: 500,
      description: 'waypoint Deployments garbage-collected',
    });
  }, 90_000);
});
