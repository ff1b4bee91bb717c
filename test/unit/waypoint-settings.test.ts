import { describe, expect, it } from 'vitest';
import { readWaypointSettings, waypointIdentityUri, waypointResourceName } from '../../src/waypoint/settings.js';

const POD = { AMESH_WAYPOINT_NAME: 'waypoint', POD_NAMESPACE: 'demo', AMESH_CA_ADDRESS: 'amesh-controller.amesh-system.svc:15012', AMESH_XDS_ADDRESS: 'amesh-controller.amesh-system.svc:15012' };

describe('waypoint settings', () => {
  it('reads the Pod contract with defaults', () => {
    const s = readWaypointSettings({ ...POD, POD_NAME: 'waypoint-7d9f', INSTANCE_IP: '10.244.1.9', NODE_NAME: 'node1', AMESH_TRUST_DOMAIN: 'example.org' });
    expect(s).toMatchObject({ waypointName: 'waypoint', podNamespace: 'demo', podIp: '10.244.1.9', hbonePort: 15008, upstreamHbonePort: 15008, readinessPort: 15021, adminPort: 15000, metricsPort: 15020, listenAddress4: '0.0.0.0', listenAddress6: '::', sniffTimeoutMs: 200 });
    // xDS and CA on one host: the xDS server name is the CA's.
    expect([s.caServerName, s.xdsServerName]).toEqual(['amesh-controller.amesh-system.svc', 'amesh-controller.amesh-system.svc']);
    expect(waypointIdentityUri(s)).toBe('spiffe://example.org/ns/demo/sa/waypoint');
    expect(waypointResourceName(s)).toBe('demo/waypoint');
    expect(Object.isFrozen(s)).toBe(true);
  });

  it.each<[string, NodeJS.ProcessEnv, RegExp]>([
    ['the gateway name is required', { ...POD, AMESH_WAYPOINT_NAME: '' }, /AMESH_WAYPOINT_NAME is not set/],
    ['the namespace is required', { ...POD, POD_NAMESPACE: '' }, /POD_NAMESPACE is not set/],
    ['the CA is required', { ...POD, AMESH_CA_ADDRESS: '' }, /AMESH_CA_ADDRESS is not set/],
    ['xDS is required', { ...POD, AMESH_XDS_ADDRESS: '' }, /AMESH_XDS_ADDRESS is not set/],
    ['a bad address names the variable', { ...POD, AMESH_XDS_ADDRESS: 'no-port' }, /^AMESH_XDS_ADDRESS="no-port" is invalid: expected host:port/],
    ['a bad port', { ...POD, AMESH_HBONE_PORT: '70000' }, /^AMESH_HBONE_PORT="70000" is invalid/],
    ['a bad name', { ...POD, AMESH_WAYPOINT_NAME: 'Not_A_Name' }, /^AMESH_WAYPOINT_NAME="Not_A_Name" is invalid/],
    ['unknown AMESH_ variables are refused', { ...POD, AMESH_WAYPOINT_NAEM: 'typo' }, /^unknown setting AMESH_WAYPOINT_NAEM/],
  ])('%s', (_n, env, error) => expect(() => readWaypointSettings(env)).toThrow(error));

  it('tests may run without a control plane; `none` turns the IPv6 listener off', () => {
    const s = readWaypointSettings({ AMESH_WAYPOINT_NAME: 'w', POD_NAMESPACE: 'demo', AMESH_LISTEN_ADDRESS6: 'none' }, { requireControlPlane: false });
    expect([s.caAddress, s.xdsAddress, s.listenAddress6]).toEqual(['', '', '']);
  });
});
