import { describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { parseLocalConfig } from '../../src/config/local-config.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';

describe('readAgentConfig', () => {
  it('has documented defaults and a node-specific pin root', () => {
    const c = readAgentConfig({}, 'node1');
    expect(c).toMatchObject({ outboundPort: 15001, inboundPlaintextPort: 15006, hbonePort: 15008, readinessPort: 15021, captureMode: 'auto', bpfPinRoot: '/sys/fs/bpf/amesh/v1/node1', failOpen: false });
    expect(Object.isFrozen(c)).toBe(true);
  });
  it.each([
    [{ AMESH_HBONE_PORT: 'abc' }, 'AMESH_HBONE_PORT'],
    [{ AMESH_CAPTURE_MODE: 'magic' }, 'AMESH_CAPTURE_MODE'],
    [{ AMESH_FAIL_OPEN: 'maybe' }, 'AMESH_FAIL_OPEN'],
    [{ AMESH_TYPO: '1' }, 'AMESH_TYPO'],
    [{ AMESH_SOCKET_MARK: '0x111' }, 'AMESH_SOCKET_MARK'],
    [{ AMESH_HBONE_POOL_MAX_STREAMS: '0' }, 'AMESH_HBONE_POOL_MAX_STREAMS'],
    [{ AMESH_HBONE_POOL_IDLE_TIMEOUT_MS: '-1' }, 'AMESH_HBONE_POOL_IDLE_TIMEOUT_MS'],
  ])('rejects %j naming the setting', (env, name) => {
    expect(() => readAgentConfig(env, 'n')).toThrow(name);
  });
  it('pools HBONE connections by default (100 open streams each, 5 min idle) and takes a handshake-per-connection setting', () => {
    expect(readAgentConfig({}, 'n')).toMatchObject({ hbonePoolMaxStreams: 100, hbonePoolIdleTimeoutMs: 300_000 });
    expect(readAgentConfig({ AMESH_HBONE_POOL_MAX_STREAMS: '1', AMESH_HBONE_POOL_IDLE_TIMEOUT_MS: '0' }, 'n')).toMatchObject({ hbonePoolMaxStreams: 1, hbonePoolIdleTimeoutMs: 0 });
  });
  it('parses hex marks', () => {
    expect(readAgentConfig({ AMESH_CAPTURE_MARK: '0x222' }, 'n').captureMark).toBe(0x222);
  });
});

describe('readAgentConfig: xDS mode (issue #5)', () => {
  const xds = { AMESH_XDS_ADDRESS: 'istiod.istio-system.svc:15012', AMESH_CA_ADDRESS: 'istiod.istio-system.svc:15012' };
  it('defaults to file mode', () => {
    expect(readAgentConfig({}, 'node1')).toMatchObject({ xdsAddress: '', xdsServerName: '', nodeName: 'node1', trustDomain: 'cluster.local', uplinks: undefined, podName: '', podNamespace: '', podIp: '' });
  });
  it('takes the node from AMESH_NODE_NAME, else NODE_NAME, and pins maps under it', () => {
    expect(readAgentConfig({ ...xds, NODE_NAME: 'n2' })).toMatchObject({ nodeName: 'n2', bpfPinRoot: '/sys/fs/bpf/amesh/v1/n2' });
    expect(readAgentConfig({ ...xds, NODE_NAME: 'n2', AMESH_NODE_NAME: 'n3' }).nodeName).toBe('n3');
  });
  it('reads trust domain, uplinks and the pod identity for the node id', () => {
    const c = readAgentConfig({ ...xds, NODE_NAME: 'n', AMESH_TRUST_DOMAIN: 'example.org', AMESH_UPLINKS: 'eth0, eth1', POD_NAME: 'ztunnel-abc', POD_NAMESPACE: 'istio-system', INSTANCE_IP: '10.0.0.5' });
    expect(c).toMatchObject({ trustDomain: 'example.org', uplinks: ['eth0', 'eth1'], podName: 'ztunnel-abc', podNamespace: 'istio-system', podIp: '10.0.0.5' });
  });
  it.each([
    ['the CA server name when xDS and CA share a host', { ...xds, AMESH_CA_ADDRESS: '10.96.0.10:15012', AMESH_XDS_ADDRESS: '10.96.0.10:15010', AMESH_CA_SERVER_NAME: 'istiod.istio-system.svc' }, 'istiod.istio-system.svc'],
    ['the xDS host otherwise', { ...xds, AMESH_XDS_ADDRESS: 'amesh-controller.amesh-system.svc:15012' }, 'amesh-controller.amesh-system.svc'],
    ['an explicit AMESH_XDS_SERVER_NAME', { ...xds, AMESH_XDS_SERVER_NAME: 'xds.example' }, 'xds.example'],
  ])('server name: %s', (_name, env, expected) => {
    expect(readAgentConfig({ ...env, NODE_NAME: 'n' }).xdsServerName).toBe(expected);
  });
  it.each([
    [{ ...xds }, 'NODE_NAME'],
    [{ AMESH_XDS_ADDRESS: 'istiod:15012', NODE_NAME: 'n' }, 'AMESH_CA_ADDRESS'],
    [{ ...xds, NODE_NAME: 'n', AMESH_XDS_ADDRESS: 'istiod' }, 'AMESH_XDS_ADDRESS'],
    [{ ...xds, NODE_NAME: 'n', AMESH_TRUST_DOMAIN: 'Not A Domain' }, 'AMESH_TRUST_DOMAIN'],
    [{ ...xds, NODE_NAME: 'n', INSTANCE_IP: '10.0.0' }, 'INSTANCE_IP'],
  ])('rejects %j naming the setting', (env, name) => {
    expect(() => readAgentConfig(env)).toThrow(name);
  });
});

describe('parseLocalConfig', () => {
  const good = {
    node: 'node1',
    ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' },
    workloads: [{ uid: 'demo/a', name: 'a', namespace: 'demo', serviceAccount: 'sa-a', node: 'node1', addresses: ['10.244.1.2'], tunnelProtocol: 'HBONE', services: { 'demo/b.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } } }],
    services: [{ name: 'b', namespace: 'demo', hostname: 'b.demo.svc.cluster.local', addresses: ['10.96.0.20'], ports: [{ servicePort: 80, targetPort: 8080 }] }],
    policies: [{ name: 'strict', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }] }] }] }] }],
  };
  it('accepts the documented example and resolves CA paths against the file', () => {
    const c = parseLocalConfig(good, 'f.yaml', '/etc/amesh');
    expect(c.ca?.certFile).toBe('/etc/amesh/ca.pem');
    expect(c.trustDomain).toBe('cluster.local');
    expect(c.workloads[0]!.tunnelProtocol).toBe('HBONE');
  });
  it('accepts a load-balancing capacity', () => {
    expect(parseLocalConfig({ ...good, workloads: [{ ...good.workloads[0], capacity: 3 }] }, 'f.yaml', '/').workloads[0]!.capacity).toBe(3);
  });
  it.each([
    [{ ...good, workloads: [{ ...good.workloads[0], addresses: ['10.244.1'] }] }, 'workloads[0].addresses[0]: not an IP address'],
    [{ ...good, workloads: [{ ...good.workloads[0], tunnelProtocol: 'GRE' }] }, 'workloads[0].tunnelProtocol'],
    [{ ...good, services: [{ ...good.services[0], ports: [{ servicePort: 70000 }] }] }, 'services[0].ports[0].servicePort'],
    [{ ...good, policies: [{ ...good.policies[0], action: 'MAYBE' }] }, 'policies[0].action'],
    [{ ...good, bogus: 1 }, 'bogus'],
    [{ ...good, node: undefined }, 'node'],
    [{ ...good, workloads: [good.workloads[0], { ...good.workloads[0], uid: 'demo/dup' }] }, 'also used by workload demo/a'],
    [{ ...good, workloads: [{ ...good.workloads[0], capacity: -1 }] }, 'workloads[0].capacity'],
  ])('rejects bad field %#', (doc, fragment) => {
    try {
      parseLocalConfig(doc, 'f.yaml', '/');
      expect.fail('accepted an invalid config');
    } catch (err) {
      expect(isAmeshError(err, 'AMESH_LOCAL_CONFIG_INVALID')).toBe(true);
      expect((err as Error).message).toContain(fragment);
    }
  });
});
