import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { decideAdsCaller } from '../../src/controller/xds/ads-auth.js';
import { WAYPOINT_CONFIG_TYPE_URL } from '../../src/l7/config.js';

const TRUSTED = ['amesh-system/amesh-node'];
const token = (sa: string, extra?: Record<string, string[]>) => ({ authenticated: true, username: `system:serviceaccount:${sa.replace('/', ':')}`, ...(extra ? { extra } : {}) });
const waypoints = (caller: string): string | undefined => (caller === 'demo/waypoint' ? 'demo/waypoint' : undefined);

describe('decideAdsCaller', () => {
  it('admits a trusted node agent with no scope, carrying the node its token is bound to', () => {
    expect(decideAdsCaller(token('amesh-system/amesh-node', { 'authentication.kubernetes.io/node-name': ['n1'] }), TRUSTED, waypoints)).toEqual({ ok: true, caller: 'amesh-system/amesh-node', boundNode: 'n1', role: 'node-agent' });
  });

  it('admits a waypoint to its own WaypointConfig only', () => {
    expect(decideAdsCaller(token('demo/waypoint'), TRUSTED, waypoints)).toEqual({ ok: true, caller: 'demo/waypoint', role: 'waypoint', scope: { typeUrls: [WAYPOINT_CONFIG_TYPE_URL], names: ['demo/waypoint'] } });
  });

  it.each([
    ['an ordinary workload', token('demo/default'), grpc.status.PERMISSION_DENIED],
    ['a user, not a service account', { authenticated: true, username: 'alice' }, grpc.status.UNAUTHENTICATED],
    ['an unauthenticated token', { authenticated: false, error: 'expired' }, grpc.status.UNAUTHENTICATED],
  ])('refuses %s', (_what, reviewed, code) => {
    const result = decideAdsCaller(reviewed, TRUSTED, waypoints);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.code).toBe(code);
  });

  it('admits an ingress gateway with the gateway role', () => {
    expect(decideAdsCaller(token('amesh-system/amesh-ingressgateway'), TRUSTED, () => ({ name: 'amesh-system/amesh-ingressgateway', role: 'gateway' }))).toEqual({
      ok: true,
      caller: 'amesh-system/amesh-ingressgateway',
      role: 'gateway',
      scope: { typeUrls: [WAYPOINT_CONFIG_TYPE_URL], names: ['amesh-system/amesh-ingressgateway'] },
    });
  });

  it('refuses a waypoint account when no waypoint lookup is configured', () => expect(decideAdsCaller(token('demo/waypoint'), TRUSTED).ok).toBe(false));
});
