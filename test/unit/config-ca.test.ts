// The node agent's CA settings (issue #4): defaults keep local mode, AMESH_CA_ADDRESS is
// validated, the TLS server name defaults to its host, and the local config's `ca` is optional.
import { describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { parseLocalConfig } from '../../src/config/local-config.js';

describe('CA settings', () => {
  it('default to local mode with Istio’s mount paths', () => {
    expect(readAgentConfig({}, 'n')).toMatchObject({
      caAddress: '',
      caRootCertFile: '/var/run/secrets/istio/root-cert.pem',
      caTokenFile: '/var/run/secrets/tokens/istio-token',
      caServerName: '',
      trustBundlePollMs: 1000,
    });
  });

  it.each([
    ['istiod.istio-system.svc:15012', 'istiod.istio-system.svc'],
    ['10.96.0.10:15012', '10.96.0.10'],
    ['[fd00::10]:15012', 'fd00::10'],
  ])('take the server name from the host of %s', (address, host) => {
    expect(readAgentConfig({ AMESH_CA_ADDRESS: address }, 'n')).toMatchObject({ caAddress: address, caServerName: host });
  });

  it('keep an explicit server name', () => {
    expect(readAgentConfig({ AMESH_CA_ADDRESS: '10.96.0.10:15012', AMESH_CA_SERVER_NAME: 'istiod.istio-system.svc' }, 'n').caServerName).toBe('istiod.istio-system.svc');
  });

  it.each([
    [{ AMESH_CA_ADDRESS: 'istiod' }, 'AMESH_CA_ADDRESS'],
    [{ AMESH_CA_ADDRESS: 'istiod:0' }, 'AMESH_CA_ADDRESS'],
    [{ AMESH_CA_ADDRESS: 'fd00::10:15012' }, 'AMESH_CA_ADDRESS'],
    [{ AMESH_TRUST_BUNDLE_POLL_MS: '10' }, 'AMESH_TRUST_BUNDLE_POLL_MS'],
  ])('reject %j naming the setting', (env, name) => {
    expect(() => readAgentConfig(env, 'n')).toThrow(name);
  });
});

describe('local config without a CA', () => {
  it('is accepted (certificates then come from AMESH_CA_ADDRESS)', () => {
    const c = parseLocalConfig({ node: 'node1' }, 'f.yaml', '/etc/amesh');
    expect(c.ca).toBeUndefined();
    expect('ca' in c).toBe(false);
  });
  it('still checks a CA when one is given', () => {
    expect(() => parseLocalConfig({ node: 'node1', ca: { certFile: 'ca.pem' } }, 'f.yaml', '/')).toThrow('ca.keyFile');
  });
});
