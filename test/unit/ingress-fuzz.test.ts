/**
 * computeIngress over seeded random mixes of Gateways (both APIs), routes, hosts, ports and
 * Secrets: it never throws, every config it produces passes the schema the gateway decodes with
 * (unique route names per port, every cluster defined, HTTPS listeners with a certificate, ports
 * unique), and every deployment's ports are exactly its config's listener ports, sorted.
 */
import { describe, expect, it } from 'vitest';
import type { KubeObjectLike } from '../../src/controller/mesh/compute-mesh-resources.js';
import { assertValid, compute, DEMO, loadYaml, tlsSecret, viewOf } from '../helpers/ingress-fixtures.js';
import { seededRandom } from '../helpers/seeded-random.js';

const HOSTS = ['*', 'a.example.com', '*.example.com', 'b.example.com', '*.b.example.com', 'other.org', 'frontend', 'A.Example.com'];
const PORTS = [80, 443, 8080, 8443, 9000];
const SERVICES = ['frontend', 'backend', 'missing'];

describe('ingress translator fuzz', async () => {
  const secrets = [await tlsSecret('demo', 'cert-a'), await tlsSecret('demo', 'cert-b')];
  const stats = { configs: 0, routes: 0 };

  it.each(Array.from({ length: 60 }, (_, i) => i + 1))('seed %i', (seed) => {
    const random = seededRandom(seed);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
    const some = <T>(list: readonly T[], max = 3): T[] => Array.from({ length: 1 + Math.floor(random() * max) }, () => pick(list));
    const objects: KubeObjectLike[] = [];
    const gatewayNames = ['g1', 'g2'];
    for (const name of gatewayNames) {
      objects.push({
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name, namespace: 'demo' },
        spec: {
          selector: random() < 0.9 ? { istio: 'ingressgateway' } : { app: 'x' },
          servers: Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => {
            const protocol = pick(['HTTP', 'HTTPS', 'HTTPS', 'TLS', 'TCP', 'GRPC']);
            const tls = protocol === 'HTTPS' ? { mode: pick(['SIMPLE', 'SIMPLE', 'PASSTHROUGH', 'MUTUAL']), credentialName: pick(['cert-a', 'cert-b', 'nope']) } : protocol === 'HTTP' && random() < 0.3 ? { httpsRedirect: true } : undefined;
            return { port: { number: pick(PORTS), name: `s${i}`, protocol }, hosts: some(HOSTS.filter((h) => h !== 'frontend')), ...(tls ? { tls } : {}) };
          }),
        },
      });
      objects.push({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: `api-${name}`, namespace: 'demo' },
        spec: {
          gatewayClassName: pick(['amesh', 'istio']),
          listeners: Array.from({ length: 1 + Math.floor(random() * 4) }, (_, i) => {
            const protocol = pick(['HTTP', 'HTTPS', 'HTTPS', 'TCP']);
            const host = pick([undefined, 'a.example.com', '*.example.com', 'b.example.com']);
            return { name: `l${i}`, port: pick(PORTS), protocol, ...(host ? { hostname: host } : {}), ...(protocol === 'HTTPS' ? { tls: { certificateRefs: [{ name: pick(['cert-a', 'cert-b', 'nope']) }] } } : {}) };
          }),
        },
      });
    }
    for (let v = 0; v < 4; v += 1) {
      objects.push({
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: `vs${v}`, namespace: 'demo' },
        spec: {
          hosts: some(HOSTS),
          gateways: some([...gatewayNames, 'mesh', 'missing'], 2),
          http: Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({
            ...(random() < 0.6 ? { match: [{ ...(random() < 0.5 ? { uri: { prefix: pick(['/', '/a', '/b']) } } : {}), ...(random() < 0.3 ? { authority: pick([{ exact: 'a.example.com' }, { prefix: 'b.' }, { regex: '.*\\.org' }]) } : {}), ...(random() < 0.2 ? { port: pick(PORTS) } : {}), ...(random() < 0.2 ? { gateways: [pick(gatewayNames)] } : {}) }] } : {}),
            route: [{ destination: { host: pick(SERVICES) } }],
          })),
          ...(random() < 0.4 ? { tls: [{ match: [{ sniHosts: some(['a.example.com', 'b.example.com', 'x.other.org']) }], route: [{ destination: { host: pick(SERVICES), port: { number: 80 } } }] }] } : {}),
          ...(random() < 0.4 ? { tcp: [{ route: [{ destination: { host: pick(SERVICES), port: { number: 80 } } }] }] } : {}),
        },
      });
      objects.push({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: `hr${v}`, namespace: 'demo' },
        spec: {
          parentRefs: [{ name: `api-${pick(gatewayNames)}`, ...(random() < 0.3 ? { port: pick(PORTS) } : {}) }],
          ...(random() < 0.5 ? { hostnames: some(['a.example.com', '*.example.com', 'b.example.com', 'x.other.org']) } : {}),
          rules: [{ matches: [{ path: { type: pick(['PathPrefix', 'Exact']), value: pick(['/', '/a', '/a/b']) } }], backendRefs: [{ name: pick(SERVICES), port: 80 }] }],
        },
      });
    }
    const result = compute(viewOf([...loadYaml(DEMO), ...objects], { extra: { secrets } }));
    stats.configs += result.configs.size;
    for (const c of result.configs.values()) stats.routes += c.services.reduce((n, s) => n + s.ports.reduce((m, p) => m + p.routes.length, 0), 0) + (c.listeners ?? []).reduce((n, l) => n + (l.l4Routes?.length ?? 0) + (l.certificates?.length ?? 0), 0);
    for (const [key, config] of result.configs) {
      assertValid(config);
      const ports = (config.listeners ?? []).map((l) => l.port);
      expect(result.deployments.get(key)?.ports.map((p) => p.port)).toEqual(ports);
      expect([...ports].sort((a, b) => a - b)).toEqual(ports);
    }
  });

  it('exercised real configs (not only empty ones)', () => {
    expect(stats.configs).toBeGreaterThan(100);
    expect(stats.routes).toBeGreaterThan(400);
  });
});
