/**
 * PeerAuthentication → effective mTLS mode per workload → the DENY policy node agents enforce,
 * table-tested for Istio's precedence and port-level modes, and checked with the agents' evaluator.
 */
import { describe, expect, it } from 'vitest';
import { effectiveMtls, peerAuthenticationAuthorization, type PeerAuthenticationObject } from '../../src/controller/translate/peer-authentication.js';
import { evaluateL4 } from '../../src/policy/l4-authorization.js';

const pa = (namespace: string, name: string, spec: PeerAuthenticationObject['spec'], created = '2026-01-01T00:00:00Z'): PeerAuthenticationObject => ({
  metadata: { namespace, name, creationTimestamp: created },
  spec,
});
const web = { namespace: 'demo', labels: { app: 'web' } };

describe('effectiveMtls: Istio precedence', () => {
  it.each<[string, PeerAuthenticationObject[], string, Record<number, string>]>([
    ['nothing → PERMISSIVE', [], 'PERMISSIVE', {}],
    ['mesh STRICT', [pa('amesh-system', 'mesh', { mtls: { mode: 'STRICT' } })], 'STRICT', {}],
    ['namespace PERMISSIVE beats mesh STRICT', [pa('amesh-system', 'mesh', { mtls: { mode: 'STRICT' } }), pa('demo', 'ns', { mtls: { mode: 'PERMISSIVE' } })], 'PERMISSIVE', {}],
    ['workload PERMISSIVE beats namespace STRICT', [pa('demo', 'ns', { mtls: { mode: 'STRICT' } }), pa('demo', 'w', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'PERMISSIVE' } })], 'PERMISSIVE', {}],
    ['workload UNSET inherits namespace STRICT', [pa('demo', 'ns', { mtls: { mode: 'STRICT' } }), pa('demo', 'w', { selector: { matchLabels: { app: 'web' } } })], 'STRICT', {}],
    ['a selector that does not match is ignored', [pa('demo', 'ns', { mtls: { mode: 'STRICT' } }), pa('demo', 'w', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'PERMISSIVE' } })], 'STRICT', {}],
    ['another namespace is ignored', [pa('other', 'ns', { mtls: { mode: 'STRICT' } })], 'PERMISSIVE', {}],
    ['DISABLE acts as PERMISSIVE', [pa('amesh-system', 'mesh', { mtls: { mode: 'STRICT' } }), pa('demo', 'ns', { mtls: { mode: 'DISABLE' } })], 'PERMISSIVE', {}],
    ['the oldest of two namespace policies wins', [pa('demo', 'b', { mtls: { mode: 'PERMISSIVE' } }, '2026-02-01T00:00:00Z'), pa('demo', 'a', { mtls: { mode: 'STRICT' } }, '2026-01-15T00:00:00Z')], 'STRICT', {}],
    ['port-level PERMISSIVE under STRICT', [pa('demo', 'w', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } })], 'STRICT', { 8080: 'PERMISSIVE' }],
    ['port-level STRICT under an inherited PERMISSIVE', [pa('demo', 'w', { selector: { matchLabels: { app: 'web' } }, portLevelMtls: { '9090': { mode: 'STRICT' }, '80': { mode: 'UNSET' } } })], 'PERMISSIVE', { 9090: 'STRICT' }],
  ])('%s', (_name, policies, mode, ports) => {
    const e = effectiveMtls(policies, web);
    expect(e.mode).toBe(mode);
    expect(e.ports).toEqual(ports);
  });

  it('names what it cannot use', () => {
    const e = effectiveMtls([pa('demo', 'ns', { mtls: { mode: 'STRICTER' }, portLevelMtls: { '80': { mode: 'STRICT' } } }), pa('demo', 'w', { selector: { matchLabels: { app: 'web' } }, portLevelMtls: { http: { mode: 'STRICT' } } })], web);
    expect(e.mode).toBe('PERMISSIVE');
    expect(e.warnings).toEqual([
      'PeerAuthentication demo/ns spec.mtls.mode: unknown mode "STRICTER", treated as UNSET',
      'PeerAuthentication demo/ns spec.portLevelMtls: ignored, port-level modes need a workload selector',
      'PeerAuthentication demo/w spec.portLevelMtls[http]: not a port number',
    ]);
  });
});

describe('peerAuthenticationAuthorization', () => {
  const decide = (policy: ReturnType<typeof peerAuthenticationAuthorization>, identity: string | null, port: number): boolean =>
    evaluateL4(policy ? [policy] : [], { sourceIdentity: identity, sourceIp: '10.244.1.2', destinationIp: '10.244.2.2', destinationPort: port }).allowed;
  const peer = 'spiffe://cluster.local/ns/demo/sa/frontend';

  it('STRICT refuses plaintext on every port and accepts mTLS', () => {
    const p = peerAuthenticationAuthorization('demo', { mode: 'STRICT', ports: {} });
    expect(p).toMatchObject({ name: 'istio_converted_peer_authentication_strict', scope: 'WORKLOAD_SELECTOR', action: 'DENY' });
    expect([decide(p, null, 80), decide(p, peer, 80)]).toEqual([false, true]);
  });

  it('STRICT with a PERMISSIVE port accepts plaintext only there', () => {
    const p = peerAuthenticationAuthorization('demo', { mode: 'STRICT', ports: { 8080: 'PERMISSIVE' } });
    expect(p?.name).toBe('istio_converted_peer_authentication_strict_except_8080');
    expect([decide(p, null, 8080), decide(p, null, 80), decide(p, peer, 80)]).toEqual([true, false, true]);
  });

  it('PERMISSIVE with a STRICT port refuses plaintext only there; plain PERMISSIVE needs no policy', () => {
    const p = peerAuthenticationAuthorization('demo', { mode: 'PERMISSIVE', ports: { 9090: 'STRICT' } });
    expect([decide(p, null, 9090), decide(p, null, 80), decide(p, peer, 9090)]).toEqual([false, true, true]);
    expect(peerAuthenticationAuthorization('demo', { mode: 'PERMISSIVE', ports: {} })).toBeUndefined();
  });
});
