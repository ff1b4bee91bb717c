/**
 * The sandbox's LoadBalancer support as pure decisions: pool allocation, the kube-proxy rules
 * for LoadBalancer addresses, host loopback port planning and its annotation, the outside
 * client namespace in the network plan, and which pod sysctls the kubelet sets or rejects.
 */
import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { podSysctls, SYSCTL_FORBIDDEN } from '../../src/sandbox/kubelet/pod-sysctls.js';
import type { Pod } from '../../src/sandbox/kubelet/pod-types.js';
import { planClusterNetwork } from '../../src/sandbox/network/cluster-network.js';
import { defaultHostPort, formatHostPorts, HOST_PORTS_ANNOTATION, parseHostPorts, planHostPorts } from '../../src/sandbox/network/host-ports.js';
import { buildServiceRoutes, renderKubeProxyRules } from '../../src/sandbox/network/kube-proxy-rules.js';
import { LOAD_BALANCER_CIDR, LoadBalancerPool, loadBalancerView, type LoadBalancerServiceView } from '../../src/sandbox/network/load-balancer-ipam.js';

function view(key: string, o: Partial<LoadBalancerServiceView> = {}): LoadBalancerServiceView {
  return { key, type: 'LoadBalancer', requestedIp: undefined, ingressIps: [], creationTimestamp: '2026-01-01T00:00:00Z', deleting: false, ...o };
}

describe('LoadBalancerPool', () => {
  const pool = new LoadBalancerPool();

  it('uses a pool that collides with no other sandbox range', () => {
    expect(LOAD_BALANCER_CIDR).toBe('10.252.0.0/24');
    for (const ip of ['10.244.1.2', '10.250.0.254', '10.250.0.253', '10.96.0.1']) expect(pool.contains(ip)).toBe(false);
    expect(pool.contains('10.252.0.0')).toBe(false);
    expect(pool.contains('10.252.0.255')).toBe(false);
    expect(pool.contains('10.252.0.1')).toBe(true);
    expect(pool.size).toBe(254);
  });

  it('hands out the lowest free address and keeps an address a Service already has', () => {
    const a = view('demo/a', { ingressIps: ['10.252.0.1'] });
    const b = view('demo/b', { ingressIps: ['10.252.0.3'] });
    const c = view('demo/c');
    expect(pool.decide(c, [a, b, c])).toEqual({ kind: 'assign', ip: '10.252.0.2' });
    expect(pool.decide(b, [a, b, c])).toEqual({ kind: 'assign', ip: '10.252.0.3' });
  });

  it('honours spec.loadBalancerIP when it is free, and says why when it is not', () => {
    const a = view('demo/a', { ingressIps: ['10.252.0.7'] });
    expect(pool.decide(view('demo/b', { requestedIp: '10.252.0.9' }), [a])).toEqual({ kind: 'assign', ip: '10.252.0.9' });
    // Moving to a newly requested address.
    expect(pool.decide(view('demo/b', { requestedIp: '10.252.0.9', ingressIps: ['10.252.0.1'] }), [a])).toEqual({ kind: 'assign', ip: '10.252.0.9' });
    const taken = pool.decide(view('demo/b', { requestedIp: '10.252.0.7' }), [a]);
    expect(taken).toMatchObject({ kind: 'assign', ip: '10.252.0.1' });
    expect(taken.kind === 'assign' && taken.warning).toMatch(/10\.252\.0\.7 is already assigned to Service demo\/a; assigned 10\.252\.0\.1 instead/);
    const outside = pool.decide(view('demo/b', { requestedIp: '192.168.1.1', ingressIps: ['10.252.0.4'] }), [a]);
    expect(outside).toMatchObject({ kind: 'assign', ip: '10.252.0.4' });
    expect(outside.kind === 'assign' && outside.warning).toMatch(/not in the sandbox LoadBalancer pool 10\.252\.0\.0\/24/);
  });

  it('releases on type change or deletion: the decision is none and the address is free for others', () => {
    const gone = view('demo/a', { type: 'ClusterIP', ingressIps: ['10.252.0.1'] });
    expect(pool.decide(gone, [gone])).toEqual({ kind: 'none' });
    expect(pool.decide(view('demo/b'), [gone])).toEqual({ kind: 'assign', ip: '10.252.0.1' });
    expect(pool.decide(view('demo/c', { deleting: true, ingressIps: ['10.252.0.2'] }), [])).toEqual({ kind: 'none' });
  });

  it('gives a doubly claimed address to the older Service', () => {
    const older = view('demo/z', { ingressIps: ['10.252.0.5'], creationTimestamp: '2026-01-01T00:00:00Z' });
    const newer = view('demo/a', { ingressIps: ['10.252.0.5'], creationTimestamp: '2026-01-02T00:00:00Z' });
    expect(pool.decide(older, [older, newer])).toEqual({ kind: 'assign', ip: '10.252.0.5' });
    expect(pool.decide(newer, [older, newer])).toEqual({ kind: 'assign', ip: '10.252.0.1' });
    // Same age: namespace/name order decides.
    const twinA = view('demo/a', { ingressIps: ['10.252.0.5'] });
    const twinB = view('demo/b', { ingressIps: ['10.252.0.5'] });
    expect(pool.decide(twinA, [twinA, twinB])).toEqual({ kind: 'assign', ip: '10.252.0.5' });
    expect(pool.decide(twinB, [twinA, twinB])).toEqual({ kind: 'assign', ip: '10.252.0.1' });
  });

  it('is pending with a warning when the pool is full', () => {
    const tiny = new LoadBalancerPool('10.252.0.0/30');
    const holders = [view('a/a', { ingressIps: ['10.252.0.1'] }), view('a/b', { ingressIps: ['10.252.0.2'] })];
    const decision = tiny.decide(view('a/c'), holders);
    expect(decision).toMatchObject({ kind: 'pending' });
    expect(decision.kind === 'pending' && decision.warning).toMatch(/no free address/);
  });

  it('reads the view from a Service object', () => {
    const service = {
      metadata: { namespace: 'demo', name: 'gw', creationTimestamp: 't' },
      spec: { type: 'LoadBalancer', loadBalancerIP: '10.252.0.8' },
      status: { loadBalancer: { ingress: [{ ip: '10.252.0.8' }, { hostname: 'x' }] } },
    };
    expect(loadBalancerView(service)).toEqual({ key: 'demo/gw', type: 'LoadBalancer', requestedIp: '10.252.0.8', ingressIps: ['10.252.0.8'], creationTimestamp: 't', deleting: false });
  });
});

function service(name: string, spec: Record<string, unknown>, status?: Record<string, unknown>, annotations?: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'demo', ...(annotations ? { annotations } : {}) }, spec, ...(status ? { status } : {}) };
}

const gatewaySpec = { type: 'LoadBalancer', clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] };
const lbStatus = { loadBalancer: { ingress: [{ ip: '10.252.0.1' }] } };
const gatewaySlice: KubeObject = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'gw-abc', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'gw' } },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true } }],
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
};

describe('kube-proxy rules for LoadBalancer addresses', () => {
  it('routes the LoadBalancer address like the ClusterIP, marked external', () => {
    const routes = buildServiceRoutes([service('gw', gatewaySpec, lbStatus)], [gatewaySlice]);
    expect(routes.map(({ vip, port, endpoints, external }) => ({ vip, port, endpoints, external }))).toEqual([
      { vip: '10.96.0.20', port: 80, endpoints: [{ ip: '10.244.1.5', port: 8080 }], external: undefined },
      { vip: '10.252.0.1', port: 80, endpoints: [{ ip: '10.244.1.5', port: 8080 }], external: true },
    ]);
  });

  it('ignores the status of Services that are not LoadBalancers and non-IPv4 entries', () => {
    const routes = buildServiceRoutes(
      [service('gw', { ...gatewaySpec, type: 'ClusterIP' }, lbStatus), service('h', { ...gatewaySpec, clusterIP: '10.96.0.21' }, { loadBalancer: { ingress: [{ hostname: 'lb.example' }, { ip: 'fd00::1' }] } })],
      [],
    );
    expect(routes.map((r) => r.vip)).toEqual(['10.96.0.20', '10.96.0.21']);
  });

  it('masquerades non-pod sources to LoadBalancer addresses and rejects the rest of the pool', () => {
    const text = renderKubeProxyRules(buildServiceRoutes([service('gw', gatewaySpec, lbStatus)], [gatewaySlice]), { loadBalancerCidr: LOAD_BALANCER_CIDR });
    const services = text.slice(text.indexOf('chain services {'), text.indexOf('chain no-endpoints {'));
    const lines = services.split('\n').map((l) => l.trim());
    const mark = lines.findIndex((l) => l.startsWith('ip daddr 10.252.0.1 tcp dport 80 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000'));
    const dispatch = lines.findIndex((l) => /^ip daddr 10\.252\.0\.1 tcp dport 80 goto svc\d+ /.test(l));
    expect(mark).toBeGreaterThan(0);
    expect(dispatch).toBe(mark + 1);
    // The ClusterIP route gets no masquerade mark.
    expect(lines.some((l) => l.startsWith('ip daddr 10.96.0.20 tcp dport 80 ip saddr'))).toBe(false);
    const noEndpoints = text.slice(text.indexOf('chain no-endpoints {'), text.indexOf('}', text.indexOf('chain no-endpoints {')));
    expect(noEndpoints).toContain('ip daddr 10.252.0.0/24 meta l4proto tcp reject with tcp reset');
    expect(noEndpoints).toContain('ip daddr 10.252.0.0/24 reject');
    // Without a pool nothing about it is rendered.
    expect(renderKubeProxyRules([])).not.toContain('10.252.0.0/24');
  });

  it('rejects a LoadBalancer port without endpoints like a ClusterIP port', () => {
    const text = renderKubeProxyRules(buildServiceRoutes([service('gw', gatewaySpec, lbStatus)], []));
    expect(text).toContain('ip daddr 10.252.0.1 tcp dport 80 reject with tcp reset');
  });
});

describe('host loopback ports', () => {
  it('maps privileged service ports to +8000 and keeps the others', () => {
    expect([80, 443, 1023, 1024, 15021].map(defaultHostPort)).toEqual([8080, 8443, 9023, 1024, 15021]);
  });

  it('parses and formats the annotation', () => {
    expect(formatHostPorts(new Map([[443, 8443], [80, 8080]]))).toBe('80=8080,443=8443');
    expect([...parseHostPorts('80=8080, 443=8443,junk,99999=1,7=')]).toEqual([
      [80, 8080],
      [443, 8443],
    ]);
    expect(parseHostPorts(undefined).size).toBe(0);
  });

  it('plans one TCP listener per port of LoadBalancer Services with an address; recorded ports first', () => {
    const plan = planHostPorts([
      service(
        'gw',
        { type: 'LoadBalancer', ports: [{ port: 443 }, { port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }, { port: 15021 }] },
        lbStatus,
        { [HOST_PORTS_ANNOTATION]: '80=41000' },
      ),
      service('pending', { type: 'LoadBalancer', ports: [{ port: 80 }] }),
      service('plain', { type: 'ClusterIP', ports: [{ port: 80 }] }, lbStatus),
    ]);
    expect(plan).toEqual([
      { service: 'demo/gw', port: 80, ip: '10.252.0.1', candidates: [41000, 8080] },
      { service: 'demo/gw', port: 443, ip: '10.252.0.1', candidates: [8443] },
      { service: 'demo/gw', port: 15021, ip: '10.252.0.1', candidates: [15021] },
    ]);
  });
});

describe('the outside client namespace in the network plan', () => {
  it('is <prefix>-outside at 10.250.0.253 with the LoadBalancer pool', () => {
    expect(planClusterNetwork({ prefix: 'amesh', nodes: ['amesh-worker'] })).toMatchObject({
      outsideNetns: 'amesh-outside',
      outsideNetnsPath: '/run/netns/amesh-outside',
      outsideIp: '10.250.0.253',
      loadBalancerCidr: '10.252.0.0/24',
    });
  });

  it('keeps the fabric off the outside address and node addresses below it', () => {
    expect(() => planClusterNetwork({ prefix: 'a', nodes: ['n'], fabricIp: '10.250.0.253' })).toThrow(/outside/);
    expect(() => planClusterNetwork({ prefix: 'a', nodes: Array.from({ length: 253 }, (_, i) => `n${i}`) })).toThrow(/at most 252/);
  });
});

describe('pod sysctls', () => {
  const pod = (sysctls: Array<{ name: string; value: string }>, hostNetwork = false): Pick<Pod, 'spec'> => ({ spec: { containers: [], hostNetwork, securityContext: { sysctls } } });

  it("sets the gateway's unprivileged port start and other per-namespace net sysctls", () => {
    expect(podSysctls(pod([{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }]))).toEqual({ sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }] });
    expect(podSysctls(pod([{ name: 'net/ipv4/ip_local_port_range', value: '1024 65000' }, { name: 'net.ipv4.conf.all.rp_filter', value: '0' }]))).toEqual({
      sysctls: [
        { name: 'net.ipv4.ip_local_port_range', value: '1024 65000' },
        { name: 'net.ipv4.conf.all.rp_filter', value: '0' },
      ],
    });
    expect(podSysctls({ spec: { containers: [] } })).toEqual({ sysctls: [] });
  });

  it.each([
    ['a non-network sysctl', [{ name: 'kernel.shm_rmid_forced', value: '1' }], false, /"kernel\.shm_rmid_forced" not allowlisted.*only network-namespace/],
    ['a global net sysctl', [{ name: 'net.core.rmem_max', value: '1' }], false, /"net\.core\.rmem_max" not allowlisted/],
    ['any sysctl in a hostNetwork pod', [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }], true, /hostNetwork/],
    ['a malformed name', [{ name: 'net..x', value: '1' }], false, /not a valid sysctl name/],
    ['a value with a newline', [{ name: 'net.ipv4.tcp_syncookies', value: '1\nkernel.x=1' }], false, /invalid value/],
    ['a duplicate', [{ name: 'net.ipv4.tcp_syncookies', value: '1' }, { name: 'net/ipv4/tcp_syncookies', value: '0' }], false, /listed twice/],
  ])('rejects %s as SysctlForbidden', (_what, sysctls, hostNetwork, message) => {
    const result = podSysctls(pod(sysctls, hostNetwork));
    expect(result).toMatchObject({ reason: SYSCTL_FORBIDDEN });
    expect('message' in result && result.message).toMatch(message);
  });
});
