/**
 * computeIngress on the seed files of #8 (samples/gateway/*.yaml over samples/demo/demo.yaml),
 * parsed as they are applied: the deployments, the gateway configs (checked with the schema the
 * gateway decodes with, and routed with the real router), and the conditions.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_INGRESS_LABELS } from '../../src/controller/translate/ingress-model.js';
import { assertValid, compute, condition, configOf, DEMO, FRONTEND, gatewaySample, NGINX, routeOf, seedView, tlsSecret } from '../helpers/ingress-fixtures.js';

const DEFAULT_KEY = 'amesh-system/amesh-ingressgateway';
const FRONTEND_META = { workloadName: 'frontend-0', namespace: 'demo', canonicalName: 'frontend', canonicalRevision: 'v1' };

describe('demo-gateway.yaml (Gateway API, class istio)', () => {
  const result = compute(seedView([DEMO, gatewaySample('demo-gateway.yaml')]));

  it('deploys demo-gateway-istio in demo with port 80, owned by the Gateway', () => {
    expect([...result.deployments.keys()]).toEqual(['demo/demo-gateway-istio']);
    expect(result.deployments.get('demo/demo-gateway-istio')).toEqual({
      namespace: 'demo',
      name: 'demo-gateway-istio',
      source: { kind: 'Gateway', namespace: 'demo', name: 'demo-gateway', uid: 'uid-Gateway-demo-demo-gateway' },
      ports: [{ name: 'http-80', port: 80 }],
      labels: {},
      annotations: {},
    });
  });

  it('serves / → frontend over HBONE with the gateway identity, 404 for nothing else', () => {
    const config = configOf(result, 'demo/demo-gateway-istio');
    assertValid(config);
    expect(config).toMatchObject({ kind: 'gateway', namespace: 'demo', name: 'demo-gateway-istio', identity: 'spiffe://cluster.local/ns/demo/sa/demo-gateway-istio' });
    expect(config.listeners).toEqual([{ name: 'Gateway/demo/demo-gateway/http', port: 80, protocol: 'HTTP' }]);
    expect(routeOf(config, 80, 'anything.example')).toBe(FRONTEND);
    expect(routeOf(config, 80, '192.0.2.1:80', '/x/y')).toBe(FRONTEND);
    expect(config.services[0]?.ports[0]?.defaultCluster).toBe('');
    expect(config.clusters).toEqual([
      {
        name: FRONTEND,
        service: 'demo/frontend.demo.svc.cluster.local',
        port: 80,
        lb: 'LEAST_REQUEST',
        endpoints: [{ address: '10.0.0.1', port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/frontend-sa', hbone: true, workload: 'uid-pod-demo-frontend-0', meta: FRONTEND_META }],
      },
    ]);
  });

  it('reports the Gateway accepted, the listener programmed with 1 attached route, and the route accepted', () => {
    const status = result.gateways.get('demo/demo-gateway');
    expect(condition(status?.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(status?.listeners).toHaveLength(1);
    const listener = status?.listeners[0];
    expect(listener).toMatchObject({ name: 'http', attachedRoutes: 1, supportedKinds: [
        { group: 'gateway.networking.k8s.io', kind: 'GRPCRoute' },
        { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' },
      ] });
    expect(listener?.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Accepted=True/Accepted', 'Programmed=True/Programmed', 'ResolvedRefs=True/ResolvedRefs', 'Conflicted=False/NoConflicts']);
    const parent = result.status.get('HTTPRoute/demo/frontend@demo/demo-gateway');
    expect(condition(parent, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(condition(parent, 'ResolvedRefs')).toMatchObject({ status: 'True', reason: 'ResolvedRefs' });
  });

  it('sends plain TCP to pods outside the mesh', () => {
    const plain = compute(seedView([DEMO, gatewaySample('demo-gateway.yaml')], { ambient: false }));
    expect(configOf(plain, 'demo/demo-gateway-istio').clusters[0]?.endpoints).toEqual([{ address: '10.0.0.1', port: 8080, identity: 'spiffe://cluster.local/ns/demo/sa/frontend-sa', hbone: false, workload: 'uid-pod-demo-frontend-0', meta: FRONTEND_META }]);
  });
});

describe('frontend-gateway.yaml + nginx.yaml (Istio Gateway on the default ingress gateway)', () => {
  const result = compute(seedView([DEMO, gatewaySample('frontend-gateway.yaml'), gatewaySample('nginx.yaml')]));
  const config = configOf(result, DEFAULT_KEY);

  it('runs the default ingress gateway in amesh-system with the selected labels and port 80', () => {
    expect([...result.deployments.keys()]).toEqual([DEFAULT_KEY]);
    expect(result.deployments.get(DEFAULT_KEY)).toEqual({ namespace: 'amesh-system', name: 'amesh-ingressgateway', source: { kind: 'default' }, ports: [{ name: 'http-80', port: 80 }], labels: { ...DEFAULT_INGRESS_LABELS }, annotations: {} });
    expect(config.identity).toBe('spiffe://cluster.local/ns/amesh-system/sa/amesh-ingressgateway');
    assertValid(config);
  });

  it('routes Host myapp.example.com to nginx and every other host to the frontend (exact host before *)', () => {
    expect(routeOf(config, 80, 'myapp.example.com')).toBe(NGINX);
    expect(routeOf(config, 80, 'MyApp.Example.com:80', '/index.html')).toBe(NGINX);
    expect(routeOf(config, 80, 'other.example.com')).toBe(FRONTEND);
    expect(routeOf(config, 80, '192.0.2.10')).toBe(FRONTEND);
    const names = config.services[0]?.ports[0]?.routes.map((r) => r.name);
    expect(names).toEqual(['VirtualService/demo/myapp#0@myapp.example.com', 'no-route@myapp.example.com', 'VirtualService/demo/frontend#0', 'no-route']);
  });

  it('accepts both VirtualServices and the Istio Gateway', () => {
    expect(condition(result.status.get('VirtualService/demo/frontend'), 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(condition(result.status.get('VirtualService/demo/myapp'), 'Accepted')?.message).toContain('myapp.example.com');
    const gw = result.status.get('IstioGateway/demo/frontend-gateway');
    expect(condition(gw, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(condition(gw, 'Programmed')).toMatchObject({ status: 'True', reason: 'Programmed' });
    expect(condition(gw, 'Warning')).toBeUndefined();
  });

  it('only the frontend VirtualService without nginx.yaml: every host → frontend', () => {
    const alone = configOf(compute(seedView([DEMO, gatewaySample('frontend-gateway.yaml')])), DEFAULT_KEY);
    expect(routeOf(alone, 80, 'myapp.example.com')).toBe(FRONTEND);
  });
});

describe('https-gateway.yaml (SIMPLE TLS with credentialName, httpsRedirect)', async () => {
  const secret = await tlsSecret('demo', 'myapp-credential');
  const files = [DEMO, gatewaySample('frontend-gateway.yaml'), gatewaySample('nginx.yaml'), gatewaySample('https-gateway.yaml')];
  const result = compute(seedView(files, { extra: { secrets: [secret] } }));
  const config = configOf(result, DEFAULT_KEY);

  it('opens 80 and 443, HTTPS with the Secret’s PEMs for myapp.example.com', () => {
    assertValid(config);
    expect(result.deployments.get(DEFAULT_KEY)?.ports).toEqual([
      { name: 'http-80', port: 80 },
      { name: 'https-443', port: 443 },
    ]);
    const https = config.listeners?.find((l) => l.port === 443);
    expect(https?.protocol).toBe('HTTPS');
    expect(https?.certificates).toEqual([
      { name: 'demo/myapp-credential', hostnames: ['myapp.example.com'], certChain: Buffer.from(secret.data['tls.crt'] ?? '', 'base64').toString(), privateKey: Buffer.from(secret.data['tls.key'] ?? '', 'base64').toString() },
    ]);
    expect(config.listeners?.find((l) => l.port === 80)?.name).toBe('IstioGateway/demo/frontend-gateway/http,IstioGateway/demo/myapp-https/http-redirect');
  });

  it('redirects myapp.example.com on 80 to https (301) ahead of the nginx route, other hosts still reach the frontend', () => {
    expect(routeOf(config, 80, 'myapp.example.com', '/path')).toBe('301 https');
    expect(routeOf(config, 80, 'frontend.example.com')).toBe(FRONTEND);
    expect(routeOf(config, 443, 'myapp.example.com')).toBe(NGINX);
    expect(routeOf(config, 443, 'other.example.com')).toBe('404');
  });

  it('a missing credential: the HTTPS server is not served, a condition names the Secret, port 80 keeps serving', () => {
    const missing = compute(seedView(files));
    const c = configOf(missing, DEFAULT_KEY);
    assertValid(c);
    expect(c.listeners?.map((l) => l.port)).toEqual([80]);
    expect(routeOf(c, 80, 'frontend.example.com')).toBe(FRONTEND);
    const programmed = condition(missing.status.get('IstioGateway/demo/myapp-https'), 'Programmed');
    expect(programmed).toMatchObject({ status: 'False', reason: 'InvalidGatewayCredential' });
    expect(programmed?.message).toContain('demo/myapp-credential not found');
    expect(programmed?.message).toContain('amesh-system/myapp-credential not found');
  });

  it('finds the credential in the deployment’s namespace when the Gateway’s has none', async () => {
    const other = await tlsSecret('amesh-system', 'myapp-credential');
    const c = configOf(compute(seedView(files, { extra: { secrets: [other] } })), DEFAULT_KEY);
    expect(c.listeners?.find((l) => l.port === 443)?.certificates?.[0]?.name).toBe('amesh-system/myapp-credential');
  });
});

describe('gateway-api-https.yaml (listener with a missing Secret)', async () => {
  const files = [DEMO, gatewaySample('gateway-api-https.yaml')];
  const result = compute(seedView(files));
  const status = result.gateways.get('demo/secure-gateway');
  const https = status?.listeners.find((l) => l.name === 'https');

  it('names demo/frontend-credential in ResolvedRefs=False/InvalidCertificateRef; the listener is not programmed', () => {
    expect(condition(https?.conditions, 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'InvalidCertificateRef' });
    expect(condition(https?.conditions, 'ResolvedRefs')?.message).toContain('Secret demo/frontend-credential not found');
    expect(condition(https?.conditions, 'Programmed')).toMatchObject({ status: 'False', reason: 'Invalid' });
    expect(condition(status?.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'ListenersNotValid' });
  });

  it('keeps serving the http listener', () => {
    const config = configOf(result, 'demo/secure-gateway-amesh');
    assertValid(config);
    expect(config.listeners?.map((l) => `${l.protocol}/${l.port}`)).toEqual(['HTTP/80']);
    expect(result.deployments.get('demo/secure-gateway-amesh')?.ports).toEqual([{ name: 'http-80', port: 80 }]);
    expect(routeOf(config, 80, 'frontend.example.com')).toBe(FRONTEND);
    expect(condition(status?.listeners.find((l) => l.name === 'http')?.conditions, 'Programmed')).toMatchObject({ status: 'True' });
  });

  it('serves HTTPS for frontend.example.com once the Secret exists', async () => {
    const secret = await tlsSecret('demo', 'frontend-credential');
    const fixed = compute(seedView(files, { extra: { secrets: [secret] } }));
    const config = configOf(fixed, 'demo/secure-gateway-amesh');
    assertValid(config);
    expect(config.listeners?.map((l) => `${l.protocol}/${l.port}`)).toEqual(['HTTP/80', 'HTTPS/443']);
    expect(config.listeners?.[1]?.certificates?.[0]).toMatchObject({ name: 'demo/frontend-credential', hostnames: ['frontend.example.com'] });
    expect(routeOf(config, 443, 'frontend.example.com')).toBe(FRONTEND);
    expect(routeOf(config, 443, 'other.example.com')).toBe('404');
    const listener = fixed.gateways.get('demo/secure-gateway')?.listeners.find((l) => l.name === 'https');
    expect(condition(listener?.conditions, 'ResolvedRefs')).toMatchObject({ status: 'True' });
    expect(listener?.attachedRoutes).toBe(1);
    expect(condition(fixed.gateways.get('demo/secure-gateway')?.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
  });
});

describe('all seeds together', async () => {
  const secrets = [await tlsSecret('demo', 'myapp-credential'), await tlsSecret('demo', 'frontend-credential')];
  const files = [DEMO, ...['demo-gateway.yaml', 'frontend-gateway.yaml', 'nginx.yaml', 'https-gateway.yaml', 'gateway-api-https.yaml', 'strict-mtls.yaml'].map(gatewaySample)];
  const result = compute(seedView(files, { extra: { secrets } }));

  it('gives three deployments, each config valid for the gateway', () => {
    expect([...result.deployments.keys()].sort()).toEqual([DEFAULT_KEY, 'demo/demo-gateway-istio', 'demo/secure-gateway-amesh']);
    for (const config of result.configs.values()) assertValid(config);
  });

  it('remembers every routing object it used as the next round’s last valid spec', () => {
    expect([...result.valid.keys()].sort()).toEqual(['HTTPRoute/demo/frontend', 'HTTPRoute/demo/secure-frontend', 'VirtualService/demo/frontend', 'VirtualService/demo/myapp', 'VirtualService/demo/myapp-https']);
  });

  it('is the same whatever the order of the lists (pure and total)', () => {
    // Creation times follow file order (ages matter); the lists themselves are reversed.
    const view = seedView(files, { extra: { secrets } });
    const shuffled = { ...view, services: [...view.services].reverse(), pods: [...view.pods].reverse(), virtualServices: [...(view.virtualServices ?? [])].reverse(), istioGateways: [...(view.istioGateways ?? [])].reverse(), httpRoutes: [...(view.httpRoutes ?? [])].reverse(), gateways: [...(view.gateways ?? [])].reverse() };
    const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
    const a = compute(view);
    const b = compute(shuffled);
    expect(JSON.stringify(sorted(b.configs))).toBe(JSON.stringify(sorted(a.configs)));
    expect(JSON.stringify(sorted(b.status))).toBe(JSON.stringify(sorted(a.status)));
    expect(JSON.stringify(sorted(b.deployments))).toBe(JSON.stringify(sorted(a.deployments)));
  });

  it('no Istio Gateway → no default ingress gateway', () => {
    const without = compute(seedView([DEMO, gatewaySample('demo-gateway.yaml'), gatewaySample('nginx.yaml')]));
    expect(without.deployments.has(DEFAULT_KEY)).toBe(false);
    expect(without.configs.has(DEFAULT_KEY)).toBe(false);
    // nginx.yaml's VirtualService names a Gateway that does not exist.
    expect(condition(without.status.get('VirtualService/demo/myapp'), 'Warning')?.message).toContain('Gateway demo/frontend-gateway not found');
  });
});
