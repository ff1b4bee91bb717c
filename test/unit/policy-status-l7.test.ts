/**
 * Status of waypoint policies: where an AuthorizationPolicy / RequestAuthentication is enforced
 * (which waypoint, for which service), or why it is not.
 */
import { describe, expect, it } from 'vitest';
import type { MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import { authorizationPolicyConditions, placementContext, PolicyStatusWriter, requestAuthenticationConditions } from '../../src/controller/status/policy-status.js';
import type { AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import type { RequestAuthenticationObject } from '../../src/controller/translate/request-authentication.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const GW = 'gateway.networking.k8s.io';
const waypointGateway = {
  metadata: { name: 'waypoint', namespace: 'demo' },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
};
const service = (name: string, labels?: Record<string, string>) => ({ metadata: { name, namespace: 'demo', ...(labels ? { labels } : {}) }, spec: { clusterIP: '10.96.0.9', ports: [{ port: 80 }] } });
const view: Pick<MeshView, 'gateways' | 'services' | 'namespaces' | 'pods'> = {
  gateways: [waypointGateway],
  services: [service('backend', { 'istio.io/use-waypoint': 'waypoint' }), service('lonely'), service('waypoint')],
  namespaces: [{ metadata: { name: 'demo' } }],
  pods: [{ metadata: { name: 'waypoint-abc', namespace: 'demo', labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'istio.io/dataplane-mode': 'none', app: 'wp' } } }],
} as unknown as Pick<MeshView, 'gateways' | 'services' | 'namespaces' | 'pods'>;
const ctx = placementContext(view);

const ap = (spec: AuthorizationPolicyObject['spec'], namespace = 'demo'): AuthorizationPolicyObject => ({ metadata: { name: 'p', namespace }, spec });
const ra = (spec: RequestAuthenticationObject['spec']): RequestAuthenticationObject => ({ metadata: { name: 'jwt', namespace: 'demo' }, spec });
const JWT_RULE = { issuer: 'https://issuer.example', jwksUri: 'http://keys.demo.svc/jwks.json' };

describe('authorizationPolicyConditions: waypoint policies', () => {
  it.each<[string, AuthorizationPolicyObject, unknown[]]>([
    ['Gateway target', ap({ targetRefs: [{ group: GW, kind: 'Gateway', name: 'waypoint' }], rules: [{}] }), [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint (L7)' }]],
    ['Service target bound to the waypoint', ap({ targetRefs: [{ kind: 'Service', name: 'backend' }] }), [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint for service demo/backend (L7)' }]],
    [
      'Service target without a waypoint',
      ap({ targetRefs: [{ kind: 'Service', name: 'lonely' }] }),
      [{ type: 'Accepted', status: 'False', reason: 'TargetNotFound', message: 'not enforced: spec.targetRefs[0]: service demo/lonely has no waypoint bound (no istio.io/use-waypoint label on the object or its namespace); not enforced for it' }],
    ],
    ['missing Service', ap({ targetRefs: [{ kind: 'Service', name: 'ghost' }] }), [{ type: 'Accepted', status: 'False', reason: 'TargetNotFound', message: expect.stringContaining('service demo/ghost has no waypoint bound (service demo/ghost not found)') }]],
    [
      'one target bound, one not: accepted with a warning',
      ap({ targetRefs: [{ kind: 'Service', name: 'backend' }, { kind: 'Service', name: 'lonely' }] }),
      [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint for service demo/backend (L7)' },
        { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: expect.stringContaining('spec.targetRefs[1]: service demo/lonely has no waypoint bound') },
      ],
    ],
    ['CUSTOM', ap({ action: 'CUSTOM', targetRefs: [{ group: GW, kind: 'Gateway', name: 'waypoint' }] }), [{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: expect.stringContaining('spec.action: CUSTOM') }]],
    [
      'GatewayClass in the root namespace',
      ap({ targetRefs: [{ group: GW, kind: 'GatewayClass', name: 'istio-waypoint' }] }, 'amesh-system'),
      [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by every waypoint (GatewayClass istio-waypoint, now 1) (L7)' }],
    ],
    [
      'selector on the waypoint pods',
      ap({ selector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } }, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
      [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint (spec.selector selects its pods; targetRefs is the recommended form) (L7)' }],
    ],
    [
      'ignored fields are named',
      ap({ targetRefs: [{ group: GW, kind: 'Gateway', name: 'waypoint' }], rules: [{ to: [{ operation: { ports: ['http'] } }] }] }),
      [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint (L7)' },
        { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: expect.stringContaining('spec.rules[0].to[0].operation.ports: "http" is not a port number') },
      ],
    ],
  ])('%s', (_name, policy, want) => expect(authorizationPolicyConditions(policy, 'amesh-system', ctx)).toEqual(want));

  it('leaves node-agent policies as they were', () => {
    expect(authorizationPolicyConditions(ap({ selector: { matchLabels: { app: 'x' } }, rules: [{}] }), 'amesh-system', ctx)).toEqual([
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by node agents (L4), on the selected workloads' },
    ]);
  });

  it('prefers the mesh binding records when given', () => {
    const withRecords = placementContext(view, {
      waypointBindings: new Map([['Service/demo/lonely', { kind: 'Service', namespace: 'demo', name: 'lonely', binding: { reason: 'waypoint demo/x does not exist' }, reason: 'WaypointNotFound', detail: 'waypoint demo/x (istio.io/use-waypoint on the service) does not exist', relevant: true }]]),
    });
    expect(withRecords.serviceBinding('demo', 'lonely')).toEqual({ reason: 'waypoint demo/x (istio.io/use-waypoint on the service) does not exist' });
    expect(withRecords.serviceBinding('demo', 'backend')).toEqual({ waypoint: 'demo/waypoint' });
  });
});

describe('requestAuthenticationConditions', () => {
  it.each<[string, RequestAuthenticationObject, unknown[]]>([
    ['targeting the waypoint', ra({ targetRefs: [{ group: GW, kind: 'Gateway', name: 'waypoint' }], jwtRules: [JWT_RULE] }), [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint (L7)' }]],
    ['targeting a bound Service', ra({ targetRefs: [{ kind: 'Service', name: 'backend' }], jwtRules: [JWT_RULE] }), [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint for service demo/backend (L7)' }]],
    [
      'namespace-wide: node agents do not check JWTs',
      ra({ jwtRules: [JWT_RULE] }),
      [{ type: 'Accepted', status: 'False', reason: 'NotEnforced', message: 'not enforced: node agents do not check JWTs; attach it to a waypoint with spec.targetRefs (its Gateway, or a Service bound to it)' }],
    ],
    ['a Service without waypoint', ra({ targetRefs: [{ kind: 'Service', name: 'lonely' }], jwtRules: [JWT_RULE] }), [{ type: 'Accepted', status: 'False', reason: 'TargetNotFound', message: expect.stringContaining('no waypoint bound') }]],
    [
      'a rule without usable keys refuses its tokens, and says so',
      ra({ targetRefs: [{ group: GW, kind: 'Gateway', name: 'waypoint' }], jwtRules: [{ issuer: 'x' }] }),
      [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint (L7)' },
        { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: expect.stringContaining('OpenID discovery is not supported; no usable keys, tokens of x are refused (401)') },
      ],
    ],
    [
      'ignored fields',
      ra({ targetRefs: [{ group: GW, kind: 'Gateway', name: 'waypoint' }], jwtRules: [{ ...JWT_RULE, fromCookies: ['c'] }] }),
      [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by waypoint demo/waypoint (L7)' },
        { type: 'Warning', status: 'True', reason: 'IgnoredFields', message: expect.stringContaining('spec.jwtRules[0].fromCookies: not supported') },
      ],
    ],
  ])('%s', (_name, policy, want) => expect(requestAuthenticationConditions(policy, 'amesh-system', ctx)).toEqual(want));
});

describe('PolicyStatusWriter with waypoint policies', () => {
  it('writes AuthorizationPolicy and RequestAuthentication status from the view', async () => {
    const writes: string[] = [];
    const writer = new PolicyStatusWriter({
      log: silentLogger,
      now: () => new Date('2026-03-03T00:00:00.000Z'),
      patch: async (resource, namespace, name, status) => {
        writes.push(`${resource.plural} ${namespace}/${name} ${status.conditions.map((c) => `${c.type}=${c.status}:${c.message}`).join(',')}`);
      },
    });
    writer.reconcile({
      ...view,
      authorizationPolicies: [ap({ targetRefs: [{ kind: 'Service', name: 'backend' }] })],
      requestAuthentications: [ra({ targetRefs: [{ group: GW, kind: 'Gateway', name: 'waypoint' }], jwtRules: [JWT_RULE] })],
    });
    await writer.idle();
    expect(writes).toEqual([
      'authorizationpolicies demo/p Accepted=True:enforced by waypoint demo/waypoint for service demo/backend (L7)',
      'requestauthentications demo/jwt Accepted=True:enforced by waypoint demo/waypoint (L7)',
    ]);
  });
});
