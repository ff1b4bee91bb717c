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
  ])('rejects %j naming the setting', (env, name) => {
    expect(() => readAgentConfig(env, 'n')).toThrow(name);
  });
  it('parses hex marks', () => {
    expect(readAgentConfig({ AMESH_CAPTURE_MARK: '0x222' }, 'n').captureMark).toBe(0x222);
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
  it.each([
    [{ ...good, workloads: [{ ...good.workloads[0], addresses: ['10.244.1'] }] }, 'workloads[0].addresses[0]: not an IP address'],
    [{ ...good, workloads: [{ ...good.workloads[0], tunnelProtocol: 'GRE' }] }, 'workloads[0].tunnelProtocol'],
    [{ ...good, services: [{ ...good.services[0], ports: [{ servicePort: 70000 }] }] }, 'services[0].ports[0].servicePort'],
    [{ ...good, policies: [{ ...good.policies[0], action: 'MAYBE' }] }, 'policies[0].action'],
    [{ ...good, bogus: 1 }, 'bogus'],
    [{ ...good, node: undefined }, 'node'],
    [{ ...good, workloads: [good.workloads[0], { ...good.workloads[0], uid: 'demo/dup' }] }, 'also used by workload demo/a'],
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
