// The config schema's ingress-gateway rules: kind, listeners (unique ports, HTTPS certificates,
// L4 routes only on TLS/TCP, their clusters defined), '' default clusters only for gateways,
// Endpoint.waypoint an IP — and the gateway settings (AMESH_GATEWAY_NAME).
import { describe, expect, it } from 'vitest';
import { gatewayIdentityUri, gatewayResourceName, readGatewaySettings } from '../../src/gateway/settings.js';
import { describeConfigIssues, waypointConfigSchema } from '../../src/l7/config-schema.js';
import { GATEWAY_LISTENER_ADDRESS, type GatewayListener, type WaypointConfig } from '../../src/l7/config.js';

const PEM = { certChain: '-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n', privateKey: '-----BEGIN PRIVATE KEY-----\n…\n-----END PRIVATE KEY-----\n' };

function gateway(listeners: GatewayListener[], over: Partial<WaypointConfig> = {}): WaypointConfig {
  return {
    namespace: 'istio-ingress',
    name: 'gw-istio',
    identity: 'spiffe://cluster.local/ns/istio-ingress/sa/gw-istio',
    kind: 'gateway',
    listeners,
    services: [{ key: 'istio-ingress/gw', namespace: 'istio-ingress', hostname: 'gw', addresses: [GATEWAY_LISTENER_ADDRESS], ports: [{ port: 80, protocol: 'HTTP', routes: [], defaultCluster: '' }] }],
    clusters: [{ name: 'backend', service: 'demo/backend', port: 80, lb: 'ROUND_ROBIN', endpoints: [{ address: '10.96.0.9', port: 80, identity: 'spiffe://cluster.local/ns/demo/sa/waypoint', hbone: true, waypoint: '10.244.0.20' }] }],
    ...over,
  };
}

function issues(config: unknown): string[] {
  const parsed = waypointConfigSchema.safeParse(config);
  return parsed.success ? [] : describeConfigIssues(parsed.error, 'c', 20);
}

describe('gateway config schema', () => {
  it('accepts a gateway with every listener kind, a 404 default, and an endpoint through a waypoint', () => {
    const config = gateway([
      { name: 'http', port: 80, protocol: 'HTTP' },
      { name: 'https', port: 443, protocol: 'HTTPS', certificates: [{ name: 'istio-ingress/cert', hostnames: ['*.example.com'], ...PEM }] },
      { name: 'tls', port: 8443, protocol: 'TLS', l4Routes: [{ name: 'VirtualService/demo/tls#0', hostnames: ['a.example.com'], backends: [{ cluster: 'backend', weight: 1 }] }] },
      { name: 'tcp', port: 9000, protocol: 'TCP', l4Routes: [] },
    ]);
    expect(issues(config)).toEqual([]);
  });

  it.each<[string, unknown, RegExp]>([
    ['duplicate ports', gateway([{ name: 'a', port: 80, protocol: 'HTTP' }, { name: 'b', port: 80, protocol: 'HTTPS', certificates: [{ name: 'c', hostnames: [], ...PEM }] }]), /^c\.listeners\[1\]\.port: duplicate listener port 80$/],
    ['HTTPS without certificates', gateway([{ name: 'a', port: 443, protocol: 'HTTPS' }]), /^c\.listeners\[0\]\.certificates: an HTTPS listener needs at least one certificate$/],
    ['an empty key', gateway([{ name: 'a', port: 443, protocol: 'HTTPS', certificates: [{ name: 'c', hostnames: [], certChain: PEM.certChain, privateKey: '' }] }]), /^c\.listeners\[0\]\.certificates\[0\]\.privateKey: /],
    ['certificates on HTTP', gateway([{ name: 'a', port: 80, protocol: 'HTTP', certificates: [{ name: 'c', hostnames: [], ...PEM }] }]), /certificates are for HTTPS listeners, not HTTP/],
    ['L4 routes on HTTP', gateway([{ name: 'a', port: 80, protocol: 'HTTP', l4Routes: [{ name: 'r', backends: [{ cluster: 'backend', weight: 1 }] }] }]), /l4Routes are for TLS and TCP listeners/],
    ['an unknown L4 cluster', gateway([{ name: 'a', port: 9000, protocol: 'TCP', l4Routes: [{ name: 'r', backends: [{ cluster: 'nope', weight: 1 }] }] }]), /^c\.listeners\[0\]\.l4Routes\[0\]\.backends\[0\]\.cluster: cluster "nope" is not defined/],
    ['L4 weights totalling 0', gateway([{ name: 'a', port: 9000, protocol: 'TCP', l4Routes: [{ name: 'r', backends: [{ cluster: 'backend', weight: 0 }] }] }]), /weights total 0/],
    ['an unknown protocol', gateway([{ name: 'a', port: 9000, protocol: 'UDP' as 'TCP' }]), /listeners\[0\]\.protocol/],
    ['an unknown kind', gateway([], { kind: 'sidecar' as 'gateway' }), /^c\.kind: /],
    ['listeners on a waypoint', gateway([{ name: 'a', port: 80, protocol: 'HTTP' }], { kind: 'waypoint' }), /^c\.listeners: listeners are for ingress gateways/],
    ['a waypoint port without a default cluster', gateway([], { kind: undefined, listeners: undefined }), /^c\.services\[0\]\.ports\[0\]\.defaultCluster: a waypoint port needs a default cluster/],
    [
      'a waypoint that is not an IP',
      gateway([], { clusters: [{ name: 'backend', service: 'demo/backend', port: 80, lb: 'ROUND_ROBIN', endpoints: [{ address: '10.96.0.9', port: 80, identity: '', hbone: true, waypoint: 'waypoint.demo' }] }] }),
      /^c\.clusters\[0\]\.endpoints\[0\]\.waypoint: must be an IP address/,
    ],
    [
      'a waypoint on a plain-TCP endpoint',
      gateway([], { clusters: [{ name: 'backend', service: 'demo/backend', port: 80, lb: 'ROUND_ROBIN', endpoints: [{ address: '10.96.0.9', port: 80, identity: '', hbone: false, waypoint: '10.244.0.20' }] }] }),
      /^c\.clusters\[0\]\.endpoints\[0\]\.waypoint: an endpoint reached through a waypoint is reached over HBONE/,
    ],
  ])('refuses %s', (_name, config, problem) => expect(issues(config)).toEqual(expect.arrayContaining([expect.stringMatching(problem)])));
});

describe('gateway settings', () => {
  const POD = { AMESH_GATEWAY_NAME: 'amesh-ingressgateway', POD_NAMESPACE: 'amesh-system', AMESH_CA_ADDRESS: 'amesh-controller.amesh-system.svc:15012', AMESH_XDS_ADDRESS: 'amesh-controller.amesh-system.svc:15012' };

  it('reads the Pod contract with defaults; identity and xDS resource follow the name', () => {
    const s = readGatewaySettings(POD);
    expect(s).toMatchObject({ gatewayName: 'amesh-ingressgateway', podNamespace: 'amesh-system', upstreamHbonePort: 15008, readinessPort: 15021, adminPort: 15000, metricsPort: 15020, handshakeTimeoutMs: 15_000, xdsServerName: 'amesh-controller.amesh-system.svc' });
    expect(gatewayIdentityUri(s)).toBe('spiffe://cluster.local/ns/amesh-system/sa/amesh-ingressgateway');
    expect(gatewayResourceName(s)).toBe('amesh-system/amesh-ingressgateway');
    expect(Object.isFrozen(s)).toBe(true);
  });

  it.each<[string, NodeJS.ProcessEnv, RegExp]>([
    ['the name is required', { ...POD, AMESH_GATEWAY_NAME: '' }, /AMESH_GATEWAY_NAME is not set/],
    ['the control plane is required', { ...POD, AMESH_XDS_ADDRESS: '' }, /AMESH_XDS_ADDRESS is not set/],
    ['a waypoint variable is unknown here', { ...POD, AMESH_WAYPOINT_NAME: 'w' }, /^unknown setting AMESH_WAYPOINT_NAME/],
    ['a bad timeout', { ...POD, AMESH_HANDSHAKE_TIMEOUT_MS: '0' }, /^AMESH_HANDSHAKE_TIMEOUT_MS="0" is invalid/],
  ])('%s', (_n, env, error) => expect(() => readGatewaySettings(env)).toThrow(error));
});
