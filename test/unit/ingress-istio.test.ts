/**
 * Istio Gateways + VirtualServices in computeIngress: selectors, server protocols and TLS modes,
 * conflicts between Gateways, server host namespaces, Envoy virtual-host precedence, match
 * narrowing (gateways, port, authority), TLS passthrough and TCP routes, warnings for ignored
 * fields, and the last valid VirtualService kept when it turns invalid.
 */
import { describe, expect, it } from 'vitest';
import type { KubeObjectLike } from '../../src/controller/mesh/compute-mesh-resources.js';
import { assertValid, compute, condition, configOf, DEMO, FRONTEND, loadYaml, NGINX, routeOf, tlsSecret, viewOf } from '../helpers/ingress-fixtures.js';

const BACKEND = 'outbound|80||backend.demo.svc.cluster.local';
const DEFAULT_KEY = 'amesh-system/amesh-ingressgateway';

function istioGateway(name: string, servers: unknown[], extra: { namespace?: string; selector?: Record<string, string>; spec?: Record<string, unknown> } = {}): KubeObjectLike {
  return { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name, namespace: extra.namespace ?? 'demo' }, spec: { selector: extra.selector ?? { istio: 'ingressgateway' }, servers, ...extra.spec } };
}

function virtualService(name: string, spec: Record<string, unknown>, namespace = 'demo', meta: Partial<KubeObjectLike['metadata']> = {}): KubeObjectLike {
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace, ...meta }, spec };
}

const http = (port = 80, hosts = ['*'], extra: Record<string, unknown> = {}) => ({ port: { number: port, name: `http-${port}`, protocol: 'HTTP' }, hosts, ...extra });
const to = (host: string) => [{ route: [{ destination: { host } }] }];

function run(objects: KubeObjectLike[], extra: Parameters<typeof viewOf>[1] = {}) {
  return compute(viewOf([...loadYaml(DEMO), ...loadYaml('samples/gateway/nginx.yaml').filter((o) => o.kind !== 'VirtualService'), ...objects], extra));
}

describe('Istio Gateways', () => {
  it('a selector the default ingress gateway does not satisfy: ReferencedResourceNotFound, no default deployment', () => {
    const result = run([istioGateway('custom', [http()], { selector: { app: 'my-gateway' } })]);
    expect(result.deployments.size).toBe(0);
    const accepted = condition(result.status.get('IstioGateway/demo/custom'), 'Accepted');
    expect(accepted).toMatchObject({ status: 'False', reason: 'ReferencedResourceNotFound' });
    expect(accepted?.message).toContain('app=my-gateway');
  });

  it('the default ingress gateway runs in the controller’s namespace', () => {
    const result = compute(viewOf([...loadYaml(DEMO), istioGateway('gw', [http()])]), { controllerNamespace: 'mesh-system' });
    expect([...result.deployments.keys()]).toEqual(['mesh-system/amesh-ingressgateway']);
    expect(configOf(result, 'mesh-system/amesh-ingressgateway').identity).toBe('spiffe://cluster.local/ns/mesh-system/sa/amesh-ingressgateway');
  });

  it.each([
    [{ port: { number: 443, name: 'mtls', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'MUTUAL', credentialName: 'c' } }, 'UnsupportedValue', 'MUTUAL'],
    [{ port: { number: 443, name: 'im', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'ISTIO_MUTUAL' } }, 'UnsupportedValue', 'ISTIO_MUTUAL'],
    [{ port: { number: 15443, name: 'ap', protocol: 'TLS' }, hosts: ['*'], tls: { mode: 'AUTO_PASSTHROUGH' } }, 'UnsupportedValue', 'AUTO_PASSTHROUGH'],
    [{ port: { number: 9443, name: 'tt', protocol: 'TLS' }, hosts: ['*'], tls: { mode: 'SIMPLE', credentialName: 'c' } }, 'UnsupportedValue', 'TLS termination'],
    [{ port: { number: 443, name: 'files', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'SIMPLE', serverCertificate: '/etc/cert.pem' } }, 'InvalidGatewayCredential', 'credentialName is required'],
    [{ port: { number: 27017, name: 'mongo', protocol: 'MONGO' }, hosts: ['*'] }, 'UnsupportedValue', 'MONGO'],
    [{ port: { number: 81, name: 'nohosts', protocol: 'HTTP' }, hosts: [] }, 'InvalidSpec', 'at least one host'],
    [{ port: { number: 15021, name: 'ready', protocol: 'HTTP' }, hosts: ['*'] }, 'UnsupportedValue', 'used by the gateway itself'],
  ])('server %j → Programmed=False/%s, the other servers served', (server, reason, text) => {
    const result = run([istioGateway('gw', [server, http()])]);
    const programmed = condition(result.status.get('IstioGateway/demo/gw'), 'Programmed');
    expect(programmed).toMatchObject({ status: 'False', reason });
    expect(programmed?.message).toContain(text);
    expect(programmed?.message).toContain('the other servers are served');
    const config = configOf(result, DEFAULT_KEY);
    assertValid(config);
    expect(config.listeners?.map((l) => l.port)).toEqual([80]);
  });

  it('a port one Gateway uses for HTTP cannot be HTTPS for a newer one: ConflictingGateways', async () => {
    const secret = await tlsSecret('demo', 'cert');
    const result = run(
      [
        { ...istioGateway('older', [http(8443)]), metadata: { name: 'older', namespace: 'demo', creationTimestamp: '2025-01-01T00:00:00Z' } },
        istioGateway('newer', [{ port: { number: 8443, name: 'https', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'SIMPLE', credentialName: 'cert' } }, http(80)]),
      ],
      { extra: { secrets: [secret] } },
    );
    expect(condition(result.status.get('IstioGateway/demo/older'), 'Programmed')).toMatchObject({ status: 'True' });
    const newer = condition(result.status.get('IstioGateway/demo/newer'), 'Programmed');
    expect(newer).toMatchObject({ status: 'False', reason: 'ConflictingGateways' });
    expect(newer?.message).toContain('IstioGateway demo/older');
    expect(configOf(result, DEFAULT_KEY).listeners?.map((l) => `${l.protocol}/${l.port}`)).toEqual(['HTTP/80', 'HTTP/8443']);
  });

  it('HTTPS servers of several Gateways on one port share it with one certificate each (SNI)', async () => {
    const a = await tlsSecret('demo', 'a-cert');
    const b = await tlsSecret('demo', 'b-cert');
    const https = (host: string, cert: string) => ({ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: [host], tls: { mode: 'SIMPLE', credentialName: cert } });
    const result = run([istioGateway('a', [https('a.example.com', 'a-cert')]), istioGateway('b', [https('*.b.example.com', 'b-cert')]), virtualService('a', { hosts: ['a.example.com'], gateways: ['a'], http: to('frontend') }), virtualService('b', { hosts: ['*.b.example.com'], gateways: ['b'], http: to('backend') })], {
      extra: { secrets: [a, b] },
    });
    const config = configOf(result, DEFAULT_KEY);
    assertValid(config);
    expect(config.listeners?.[0]?.certificates?.map((c) => `${c.name} ${c.hostnames.join(',')}`)).toEqual(['demo/a-cert a.example.com', 'demo/b-cert *.b.example.com']);
    expect(routeOf(config, 443, 'a.example.com')).toBe(FRONTEND);
    expect(routeOf(config, 443, 'x.b.example.com')).toBe(BACKEND);
    expect(routeOf(config, 443, 'b.example.com')).toBe('404');
  });

  it('credentialName also takes Istio’s generic Secret format (cert / key)', async () => {
    const tls = await tlsSecret('demo', 'generic');
    const generic = { ...tls, type: 'Opaque', data: { cert: tls.data['tls.crt'] ?? '', key: tls.data['tls.key'] ?? '' } };
    const result = run([istioGateway('gw', [{ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'SIMPLE', credentialName: 'generic' } }])], { extra: { secrets: [generic] } });
    const config = configOf(result, DEFAULT_KEY);
    assertValid(config);
    expect(config.listeners?.[0]?.certificates?.[0]).toMatchObject({ name: 'demo/generic', hostnames: [] });
    expect(config.listeners?.[0]?.certificates?.[0]?.certChain).toContain('BEGIN CERTIFICATE');
  });

  it('warns about ignored Gateway, server and tls fields', async () => {
    const secret = await tlsSecret('demo', 'cert');
    const result = run([istioGateway('gw', [{ ...http(), bind: '0.0.0.0', defaultEndpoint: '127.0.0.1:8080' }, { port: { number: 443, name: 'https', protocol: 'HTTPS', targetPort: 8443 }, hosts: ['*'], tls: { mode: 'SIMPLE', credentialName: 'cert', minProtocolVersion: 'TLSV1_3', cipherSuites: ['x'] } }], { spec: { extra: true } })], {
      extra: { secrets: [secret] },
    });
    const warning = condition(result.status.get('IstioGateway/demo/gw'), 'Warning');
    expect(warning).toMatchObject({ status: 'True', reason: 'IgnoredFields' });
    for (const field of ['spec.extra', 'spec.servers[0].bind', 'spec.servers[0].defaultEndpoint', 'spec.servers[1].port.targetPort', 'spec.servers[1].tls.minProtocolVersion', 'spec.servers[1].tls.cipherSuites']) expect(warning?.message).toContain(field);
    expect(condition(result.status.get('IstioGateway/demo/gw'), 'Programmed')).toMatchObject({ status: 'True' });
  });
});

describe('VirtualServices bound to Gateways', () => {
  it('virtual hosts by specificity: exact, longer wildcard, *; a host’s unmatched paths are 404, not the next host’s', () => {
    const result = run([
      istioGateway('gw', [http()]),
      virtualService('all', { hosts: ['*'], gateways: ['gw'], http: to('frontend') }),
      virtualService('wild', { hosts: ['*.example.com'], gateways: ['gw'], http: to('backend') }),
      virtualService('exact', { hosts: ['myapp.example.com'], gateways: ['demo/gw'], http: [{ match: [{ uri: { prefix: '/app' } }], route: [{ destination: { host: 'nginx' } }] }] }),
    ]);
    const config = configOf(result, DEFAULT_KEY);
    assertValid(config);
    expect(routeOf(config, 80, 'myapp.example.com', '/app/x')).toBe(NGINX);
    expect(routeOf(config, 80, 'myapp.example.com', '/other')).toBe('404');
    expect(routeOf(config, 80, 'www.example.com')).toBe(BACKEND);
    expect(routeOf(config, 80, 'example.org')).toBe(FRONTEND);
  });

  it('hosts with a dot are external names as written; a short name is the service’s FQDN', () => {
    const result = run([istioGateway('gw', [http()]), virtualService('apex', { hosts: ['Example.com', 'frontend'], gateways: ['gw'], http: to('frontend') })]);
    const config = configOf(result, DEFAULT_KEY);
    expect(routeOf(config, 80, 'example.com')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'frontend.demo.svc.cluster.local')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'example.com.svc.cluster.local')).toBe('404');
  });

  it('several VirtualServices for one host: their rules merged, oldest first', () => {
    const result = run([
      istioGateway('gw', [http()]),
      virtualService('second', { hosts: ['a.example.com'], gateways: ['gw'], http: to('backend') }, 'demo', { creationTimestamp: '2026-06-01T00:00:00Z' }),
      virtualService('first', { hosts: ['a.example.com'], gateways: ['gw'], http: [{ match: [{ uri: { exact: '/one' } }], route: [{ destination: { host: 'frontend' } }] }] }, 'demo', { creationTimestamp: '2025-06-01T00:00:00Z' }),
    ]);
    const config = configOf(result, DEFAULT_KEY);
    expect(routeOf(config, 80, 'a.example.com', '/one')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'a.example.com', '/two')).toBe(BACKEND);
  });

  it('server hosts `ns/host` admit only VirtualServices of that namespace (`.` = the Gateway’s)', () => {
    const web = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'team' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80 }] } };
    const result = run([
      istioGateway('gw', [http(80, ['./own.example.com', 'team/team.example.com'])]),
      virtualService('own', { hosts: ['own.example.com', 'team.example.com'], gateways: ['gw'], http: to('frontend') }),
      web,
      virtualService('team', { hosts: ['own.example.com', 'team.example.com'], gateways: ['demo/gw'], http: to('web') }, 'team'),
    ]);
    const config = configOf(result, DEFAULT_KEY);
    expect(routeOf(config, 80, 'own.example.com')).toBe(FRONTEND);
    expect(routeOf(config, 80, 'team.example.com')).toBe('outbound|80||web.team.svc.cluster.local');
    expect(condition(result.status.get('VirtualService/team/team'), 'Accepted')?.message).toContain('hosts team.example.com');
  });

  it('match.gateways narrows a match to the Gateways it names; match.port to the server port; match.authority is ANDed with the host', () => {
    const result = run([
      istioGateway('gw', [http(80), http(8080)]),
      istioGateway('other', [http(9090)]),
      virtualService('vs', {
        hosts: ['*.example.com'],
        gateways: ['gw', 'other', 'mesh'],
        http: [
          { match: [{ gateways: ['other'] }], route: [{ destination: { host: 'nginx' } }] },
          { match: [{ port: 8080 }], route: [{ destination: { host: 'backend' } }] },
          { match: [{ authority: { prefix: 'api.' } }], route: [{ destination: { host: 'backend' } }] },
          { match: [{ gateways: ['mesh'] }], route: [{ destination: { host: 'nginx' } }] },
          { route: [{ destination: { host: 'frontend' } }] },
        ],
      }),
    ]);
    const config = configOf(result, DEFAULT_KEY);
    assertValid(config);
    expect(routeOf(config, 9090, 'x.example.com')).toBe(NGINX);
    expect(routeOf(config, 80, 'x.example.com')).toBe(FRONTEND);
    expect(routeOf(config, 8080, 'x.example.com')).toBe(BACKEND);
    expect(routeOf(config, 80, 'api.example.com')).toBe(BACKEND);
    expect(routeOf(config, 80, 'api.other.com')).toBe('404');
  });

  it('TLS passthrough servers take `tls` routes by SNI, TCP servers `tcp` routes by port', () => {
    const result = run([
      istioGateway('gw', [
        { port: { number: 443, name: 'tls', protocol: 'TLS' }, hosts: ['*.example.com'], tls: { mode: 'PASSTHROUGH' } },
        { port: { number: 8443, name: 'https-pass', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'PASSTHROUGH' } },
        { port: { number: 5432, name: 'tcp', protocol: 'TCP' }, hosts: ['*'] },
      ]),
      virtualService('pass', {
        hosts: ['*.example.com'],
        gateways: ['gw'],
        tls: [
          { match: [{ port: 443, sniHosts: ['a.example.com'] }], route: [{ destination: { host: 'frontend', port: { number: 80 } } }] },
          { match: [{ sniHosts: ['b.example.com', 'c.other.org'] }], route: [{ destination: { host: 'backend' }, weight: 30 }, { destination: { host: 'nginx' }, weight: 70 }] },
        ],
        tcp: [{ match: [{ port: 5432 }], route: [{ destination: { host: 'backend', port: { number: 80 } } }] }, { match: [{ port: 9999 }], route: [{ destination: { host: 'frontend' } }] }],
      }),
    ]);
    const config = configOf(result, DEFAULT_KEY);
    assertValid(config);
    const listener = (port: number) => config.listeners?.find((l) => l.port === port);
    expect(listener(443)).toEqual({
      name: 'IstioGateway/demo/gw/tls',
      port: 443,
      protocol: 'TLS',
      l4Routes: [
        { name: 'VirtualService/demo/pass#0', hostnames: ['a.example.com'], backends: [{ cluster: FRONTEND, weight: 100 }] },
        {
          name: 'VirtualService/demo/pass#1',
          hostnames: ['b.example.com'],
          backends: [
            { cluster: BACKEND, weight: 30 },
            { cluster: NGINX, weight: 70 },
          ],
        },
      ],
    });
    expect(listener(8443)?.protocol).toBe('TLS');
    expect(listener(8443)?.l4Routes?.map((r) => `${r.name} ${r.hostnames?.join(',') ?? ''}`)).toEqual(['VirtualService/demo/pass#1 b.example.com']);
    expect(listener(5432)).toEqual({ name: 'IstioGateway/demo/gw/tcp', port: 5432, protocol: 'TCP', l4Routes: [{ name: 'VirtualService/demo/pass#0', backends: [{ cluster: BACKEND, weight: 100 }] }] });
    expect(config.services).toEqual([]);
    expect(config.clusters.map((c) => c.name)).toEqual([BACKEND, FRONTEND, NGINX]);
  });

  it('an invalid VirtualService: Accepted=False naming the field, nothing of it applied; its last valid spec keeps serving', () => {
    const gw = istioGateway('gw', [http()]);
    const meta = { uid: 'uid-vs', generation: 1 };
    const good = virtualService('vs', { hosts: ['*'], gateways: ['gw'], http: to('frontend') }, 'demo', meta);
    const first = run([gw, good]);
    const bad = virtualService('vs', { hosts: ['*'], gateways: ['gw'], http: to('nope') }, 'demo', { ...meta, generation: 2 });
    const broken = run([gw, bad]);
    const accepted = condition(broken.status.get('VirtualService/demo/vs'), 'Accepted');
    expect(accepted).toMatchObject({ status: 'False', reason: 'InvalidDestination' });
    expect(accepted?.message).toContain('spec.http[0].route[0].destination.host');
    expect(routeOf(configOf(broken, DEFAULT_KEY), 80, 'x')).toBe('404');
    const kept = compute(viewOf([...loadYaml(DEMO), gw, bad]), { lastValid: first.valid });
    expect(routeOf(configOf(kept, DEFAULT_KEY), 80, 'x')).toBe(FRONTEND);
    expect(condition(kept.status.get('VirtualService/demo/vs'), 'Accepted')?.message).toContain('keeps serving the last valid version of this VirtualService (generation 1)');
    // Another object with the same name (new uid) does not inherit it.
    const recreated = compute(viewOf([...loadYaml(DEMO), gw, { ...bad, metadata: { ...bad.metadata, uid: 'uid-new' } }]), { lastValid: first.valid });
    expect(routeOf(configOf(recreated, DEFAULT_KEY), 80, 'x')).toBe('404');
  });

  it('warns about ignored VirtualService fields and names a Gateway that does not exist', () => {
    const result = run([istioGateway('gw', [http()]), virtualService('vs', { hosts: ['*'], gateways: ['gw', 'missing'], exportTo: ['.'], extra: 1, http: [{ route: [{ destination: { host: 'frontend' } }], corsPolicy: {} }] })]);
    const warning = condition(result.status.get('VirtualService/demo/vs'), 'Warning');
    for (const text of ['spec.exportTo', 'spec.extra', 'spec.http[0].corsPolicy', 'Gateway demo/missing not found']) expect(warning?.message).toContain(text);
    expect(condition(result.status.get('VirtualService/demo/vs'), 'Accepted')).toMatchObject({ status: 'True' });
  });

  it('mesh-only VirtualServices are not the ingress translator’s', () => {
    const result = run([istioGateway('gw', [http()]), virtualService('mesh-only', { hosts: ['frontend'], http: to('frontend') })]);
    expect(result.status.has('VirtualService/demo/mesh-only')).toBe(false);
  });

  it('HTTP2 / GRPC servers make an HTTP2 port', () => {
    const result = run([istioGateway('gw', [{ port: { number: 50051, name: 'grpc', protocol: 'GRPC' }, hosts: ['*'] }]), virtualService('vs', { hosts: ['*'], gateways: ['gw'], http: to('backend') })]);
    const config = configOf(result, DEFAULT_KEY);
    expect(config.listeners).toEqual([{ name: 'IstioGateway/demo/gw/grpc', port: 50051, protocol: 'HTTP' }]);
    expect(config.services[0]?.ports[0]?.protocol).toBe('HTTP2');
  });
});
