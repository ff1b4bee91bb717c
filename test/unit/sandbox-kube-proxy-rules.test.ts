import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import {
  buildServiceRoutes,
  defaultFixedRoutes,
  renderKubeProxyRemoval,
  renderKubeProxyRules,
  type ServiceRoute,
} from '../../src/sandbox/network/kube-proxy-rules.js';

function service(name: string, spec: Record<string, unknown>, namespace = 'demo'): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec };
}

function slice(serviceName: string, endpoints: unknown[], ports: unknown[], extra: Record<string, unknown> = {}, namespace = 'demo'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${serviceName}-abc`, namespace, labels: { 'kubernetes.io/service-name': serviceName } },
    addressType: 'IPv4',
    endpoints,
    ports,
    ...extra,
  };
}

const web = service('web', { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] });
const ready = (ip: string, isReady: boolean | undefined = true): unknown => ({ addresses: [ip], ...(isReady === undefined ? {} : { conditions: { ready: isReady } }) });
const httpPort = [{ name: 'http', port: 8080, protocol: 'TCP' }];

describe('buildServiceRoutes', () => {
  it.each<[string, KubeObject[], KubeObject[], Array<Pick<ServiceRoute, 'vip' | 'port' | 'protocol' | 'endpoints'>>]>([
    [
      'ready endpoints, sorted, unready dropped, unset readiness counts as ready',
      [web],
      [slice('web', [ready('10.244.2.3'), ready('10.244.1.9', false), ready('10.244.1.2', undefined)], httpPort)],
      [{ vip: '10.96.0.20', port: 80, protocol: 'tcp', endpoints: [{ ip: '10.244.1.2', port: 8080 }, { ip: '10.244.2.3', port: 8080 }] }],
    ],
    ['no slice: the port rejects', [web], [], [{ vip: '10.96.0.20', port: 80, protocol: 'tcp', endpoints: [] }]],
    [
      'ports matched by name and protocol across several slices',
      [service('dns', { clusterIP: '10.96.0.30', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] })],
      [
        slice('dns', [ready('10.244.1.5')], [{ name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'dns-tcp', port: 5354, protocol: 'TCP' }]),
        slice('dns', [ready('10.244.2.5')], [{ name: 'dns', port: 5353, protocol: 'UDP' }]),
      ],
      [
        { vip: '10.96.0.30', port: 53, protocol: 'tcp', endpoints: [{ ip: '10.244.1.5', port: 5354 }] },
        { vip: '10.96.0.30', port: 53, protocol: 'udp', endpoints: [{ ip: '10.244.1.5', port: 5353 }, { ip: '10.244.2.5', port: 5353 }] },
      ],
    ],
    [
      'headless, ExternalName and IPv6 slices are ignored',
      [
        service('headless', { clusterIP: 'None', ports: [{ port: 80 }] }),
        service('ext', { type: 'ExternalName', externalName: 'example.com', ports: [{ port: 80 }] }),
        web,
      ],
      [slice('web', [ready('fd00::1')], httpPort, { addressType: 'IPv6' })],
      [{ vip: '10.96.0.20', port: 80, protocol: 'tcp', endpoints: [] }],
    ],
    [
      'a slice of another namespace does not count',
      [web],
      [slice('web', [ready('10.244.1.2')], httpPort, {}, 'other')],
      [{ vip: '10.96.0.20', port: 80, protocol: 'tcp', endpoints: [] }],
    ],
    [
      'unnamed single port; slice without ports falls back to a numeric targetPort',
      [service('plain', { clusterIP: '10.96.0.40', ports: [{ port: 81, targetPort: 9000 }] })],
      [slice('plain', [ready('10.244.1.7')], [])],
      [{ vip: '10.96.0.40', port: 81, protocol: 'tcp', endpoints: [{ ip: '10.244.1.7', port: 9000 }] }],
    ],
  ])('%s', (_what, services, slices, expected) => {
    expect(buildServiceRoutes(services, slices).map(({ vip, port, protocol, endpoints }) => ({ vip, port, protocol, endpoints }))).toEqual(expected);
  });

  it('adds the API server and DNS defaults, but slices with endpoints win', () => {
    const fixed = defaultFixedRoutes('10.250.0.254');
    const routes = buildServiceRoutes([], [], fixed);
    expect(routes.map((r) => `${r.vip}:${r.port}/${r.protocol} -> ${r.endpoints.map((e) => `${e.ip}:${e.port}`).join(',')}`)).toEqual([
      '10.96.0.1:443/tcp -> 10.250.0.254:6443',
      '10.96.0.10:53/tcp -> 10.250.0.254:53',
      '10.96.0.10:53/udp -> 10.250.0.254:53',
    ]);
    const kubernetes = service('kubernetes', { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, targetPort: 6443 }] }, 'default');
    const withSlice = buildServiceRoutes([kubernetes], [slice('kubernetes', [ready('10.250.0.253')], [{ name: 'https', port: 7443, protocol: 'TCP' }], {}, 'default')], fixed);
    expect(withSlice[0]).toMatchObject({ name: 'default/kubernetes:https/tcp', endpoints: [{ ip: '10.250.0.253', port: 7443 }] });
    const withoutEndpoints = buildServiceRoutes([kubernetes], [], fixed);
    expect(withoutEndpoints[0]?.endpoints).toEqual([{ ip: '10.250.0.254', port: 6443 }]);
  });
});

describe('renderKubeProxyRules', () => {
  const routes: ServiceRoute[] = [
    { name: 'demo/web:http/tcp', vip: '10.96.0.20', port: 80, protocol: 'tcp', endpoints: [{ ip: '10.244.1.2', port: 8080 }, { ip: '10.244.2.3', port: 8080 }] },
    { name: 'demo/one:53/udp', vip: '10.96.0.21', port: 53, protocol: 'udp', endpoints: [{ ip: '10.244.1.4', port: 5353 }] },
    { name: 'demo/empty:http/tcp', vip: '10.96.0.22', port: 80, protocol: 'tcp', endpoints: [] },
    { name: 'demo/empty:dns/udp', vip: '10.96.0.22', port: 53, protocol: 'udp', endpoints: [] },
  ];
  const text = renderKubeProxyRules(routes);

  it('replaces the table atomically: declare, delete, recreate', () => {
    expect(text.startsWith('table ip amesh-kube-proxy\ndelete table ip amesh-kube-proxy\ntable ip amesh-kube-proxy {\n')).toBe(true);
    expect(renderKubeProxyRemoval()).toBe('table ip amesh-kube-proxy\ndelete table ip amesh-kube-proxy\n');
  });

  it.each([
    ['dispatch by VIP, protocol and port', 'ip daddr 10.96.0.20 tcp dport 80 goto svc0 comment "demo/web:http/tcp"'],
    ['random choice among endpoints', 'numgen random mod 2 vmap { 0 : goto svc0-ep0, 1 : goto svc0-ep1 }'],
    ['DNAT to the endpoint', 'meta l4proto tcp dnat to 10.244.2.3:8080'],
    ['hairpin marks for masquerade', 'ip saddr 10.244.1.2 meta mark set meta mark | 0x4000'],
    ['one endpoint: a plain goto', '\t\tgoto svc1-ep0\n'],
    ['UDP DNAT', 'meta l4proto udp dnat to 10.244.1.4:5353'],
    ['TCP without endpoints is reset', 'ip daddr 10.96.0.22 tcp dport 80 reject with tcp reset comment "demo/empty:http/tcp has no endpoints"'],
    ['UDP without endpoints gets port unreachable', 'ip daddr 10.96.0.22 udp dport 53 reject comment'],
    ['pod traffic', 'type nat hook prerouting priority dstnat; policy accept;\n\t\tmeta mark & 0xfff == 0x111 return\n\t\tjump services'],
    ['local processes', 'type nat hook output priority -100; policy accept;\n\t\tmeta mark & 0xfff == 0x111 return\n\t\tjump services'],
    ['masquerade only marked, non-local traffic', 'meta mark & 0x4000 == 0x4000 oifname != "lo" masquerade'],
    ['rejects in filter chains, captured traffic exempt', 'type filter hook forward priority filter; policy accept;\n\t\tmeta mark & 0xfff == 0x111 return\n\t\tjump no-endpoints'],
  ])('%s', (_what, fragment) => {
    expect(text).toContain(fragment);
  });

  it('captured packets are skipped before any DNAT, with a configurable mark', () => {
    const custom = renderKubeProxyRules(routes, { captureMark: 0x539 });
    expect(custom).toContain('meta mark & 0xfff == 0x539 return');
    expect(custom).not.toContain('0x111');
  });

  it('an empty route list still yields a valid, complete table', () => {
    const empty = renderKubeProxyRules([]);
    expect(empty).toContain('\tchain services {\n\t}');
    expect(empty).toContain('\tchain no-endpoints {\n\t}');
    expect(empty.trimEnd().endsWith('}')).toBe(true);
  });

  it('comments cannot break out of their string', () => {
    const hostile = renderKubeProxyRules([{ name: 'a"; flush ruleset; "', vip: '10.96.0.5', port: 1, protocol: 'tcp', endpoints: [] }]);
    expect(hostile).toContain('comment "a_; flush ruleset; _ has no endpoints"');
  });
});
