/**
 * AuthorizationPolicy → L7Policy (waypoints), its targets, and waypointPolicies (which policies
 * one waypoint enforces, for which services) — table-tested; the seeds' example is also run
 * through the engine to show the translation decides traffic as Istio would.
 */
import { describe, expect, it } from 'vitest';
import type { AuthorizationPolicyObject } from '../../src/controller/translate/authorization-policy.js';
import { policyTargets, translateL7AuthorizationPolicy } from '../../src/controller/translate/l7-authorization-policy.js';
import type { RequestAuthenticationObject } from '../../src/controller/translate/request-authentication.js';
import { attachment, placement, waypointPolicies, type BoundService, type PlacementContext } from '../../src/controller/translate/waypoint-policies.js';
import { compileAuthz, type AuthzOutcome, type RequestAttributes } from '../../src/l7/authz/engine.js';
import { waypointConfigSchema } from '../../src/l7/config-schema.js';

const ROOT = 'amesh-system';
const GW = 'gateway.networking.k8s.io';
const ap = (spec: AuthorizationPolicyObject['spec'], name = 'p', namespace = 'demo', annotations?: Record<string, string>): AuthorizationPolicyObject =>
  ({ metadata: { name, namespace, ...(annotations ? { annotations } : {}) }, spec }) as AuthorizationPolicyObject;
const gatewayRef = (name = 'waypoint') => ({ group: GW, kind: 'Gateway', name });
const serviceRef = (name = 'backend') => ({ kind: 'Service', group: '', name });

const BACKEND: BoundService = { key: 'demo/backend.demo.svc.cluster.local', namespace: 'demo', name: 'backend' };
const OTHER: BoundService = { key: 'demo/other.demo.svc.cluster.local', namespace: 'demo', name: 'other' };
const WAYPOINT = { namespace: 'demo', name: 'waypoint' };

describe('policyTargets', () => {
  it.each<[string, Parameters<typeof policyTargets>[0], string, unknown[], string[]]>([
    ['Gateway', { targetRefs: [gatewayRef()] }, 'demo', [{ kind: 'Gateway', namespace: 'demo', name: 'waypoint', field: 'spec.targetRefs[0]' }], []],
    ['Service (core group spelled "core")', { targetRefs: [{ group: 'core', kind: 'Service', name: 'backend' }] }, 'demo', [{ kind: 'Service', namespace: 'demo', name: 'backend', field: 'spec.targetRefs[0]' }], []],
    ['singular targetRef', { targetRef: serviceRef() }, 'demo', [{ kind: 'Service', namespace: 'demo', name: 'backend', field: 'spec.targetRef' }], []],
    ['GatewayClass in the root namespace', { targetRefs: [{ group: GW, kind: 'GatewayClass', name: 'istio-waypoint' }] }, ROOT, [{ kind: 'GatewayClass', name: 'istio-waypoint', field: 'spec.targetRefs[0]' }], []],
    ['GatewayClass elsewhere', { targetRefs: [{ group: GW, kind: 'GatewayClass', name: 'istio-waypoint' }] }, 'demo', [], ['spec.targetRefs[0]: a GatewayClass target needs the policy in the root namespace amesh-system, ignored']],
    ['GatewayClass not a waypoint class', { targetRefs: [{ group: GW, kind: 'GatewayClass', name: 'istio' }] }, ROOT, [], ['spec.targetRefs[0]: GatewayClass istio is not a waypoint class (istio-waypoint), ignored']],
    ['ServiceEntry unsupported', { targetRefs: [{ group: 'networking.istio.io', kind: 'ServiceEntry', name: 'x' }] }, 'demo', [], ['spec.targetRefs[0]: networking.istio.io/ServiceEntry is not supported (Gateway, Service or GatewayClass), ignored']],
    ['cross-namespace', { targetRefs: [{ ...serviceRef(), namespace: 'prod' }] }, 'demo', [], ["spec.targetRefs[0].namespace: prod is not the policy's namespace; cross-namespace targets are not allowed, ignored"]],
    ['selector', { selector: { matchLabels: { app: 'x' } } }, 'demo', [{ kind: 'Selector', namespace: 'demo', matchLabels: { app: 'x' }, field: 'spec.selector' }], []],
    ['selector with targetRefs', { selector: { matchLabels: { app: 'x' } }, targetRefs: [gatewayRef()] }, 'demo', [{ kind: 'Gateway', namespace: 'demo', name: 'waypoint', field: 'spec.targetRefs[0]' }], ['spec.selector: ignored, the policy has targetRefs (they are mutually exclusive)']],
    ['namespace-wide', {}, 'demo', [], []],
  ])('%s', (_name, spec, namespace, targets, warnings) => {
    expect(policyTargets(spec, namespace, ROOT)).toEqual({ targets, warnings });
  });
});

describe('translateL7AuthorizationPolicy', () => {
  it('carries from/to/when in the engine form, name ns/name, default action ALLOW', () => {
    const t = translateL7AuthorizationPolicy(
      ap({
        targetRefs: [serviceRef()],
        rules: [
          {
            from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'], notIpBlocks: ['10.9.0.0/16'] } }],
            to: [{ operation: { methods: ['GET'], paths: ['/api/v1*'], ports: ['8080'] } }],
            when: [{ key: 'request.headers[x-team]', values: ['blue'] }],
          },
        ],
      }),
      ROOT,
    );
    expect(t.warnings).toEqual([]);
    expect(t.policy).toEqual({
      name: 'demo/p',
      action: 'ALLOW',
      rules: [
        {
          from: [{ principals: ['cluster.local/ns/demo/sa/frontend'], notIpBlocks: ['10.9.0.0/16'] }],
          to: [{ methods: ['GET'], paths: ['/api/v1*'], ports: ['8080'] }],
          when: [{ key: 'request.headers[x-team]', values: ['blue'] }],
        },
      ],
    });
  });

  it.each<[string, AuthorizationPolicyObject, unknown, string[]]>([
    ['CUSTOM is not enforced', ap({ action: 'CUSTOM', targetRefs: [gatewayRef()] }), undefined, ['spec.action: CUSTOM is not supported at waypoints (no external authorizer); the policy is not enforced']],
    ['dry-run is not enforced', ap({ targetRefs: [gatewayRef()] }, 'p', 'demo', { 'istio.io/dry-run': 'true' }), undefined, ['metadata.annotations[istio.io/dry-run]: dry-run policies are not supported; the policy is not enforced']],
    ['AUDIT is carried', ap({ action: 'AUDIT', targetRefs: [gatewayRef()], rules: [{}] }), { name: 'demo/p', action: 'AUDIT', rules: [{}] }, []],
    ['no rules: ALLOW nothing', ap({ targetRefs: [gatewayRef()] }), { name: 'demo/p', action: 'ALLOW', rules: [] }, []],
    [
      'ALLOW rule with a bad CIDR is dropped',
      ap({ targetRefs: [gatewayRef()], rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/40'] } }] }, {}] }),
      { name: 'demo/p', action: 'ALLOW', rules: [{}] },
      ['spec.rules[0].from[0].source.ipBlocks: "10.0.0.0/40" is not an IP address or CIDR', 'spec.rules[0]: dropped (an ALLOW rule with values the waypoint cannot check matches nothing)'],
    ],
    [
      'DENY rule loses the bad value only (denies more)',
      ap({ action: 'DENY', targetRefs: [gatewayRef()], rules: [{ to: [{ operation: { ports: ['http', '80'], methods: ['POST'] } }] }] }),
      { name: 'demo/p', action: 'DENY', rules: [{ to: [{ ports: ['80'], methods: ['POST'] }] }] },
      ['spec.rules[0].to[0].operation.ports: "http" is not a port number', 'spec.rules[0]: enforced without those values (denies more)'],
    ],
    [
      'unknown when key in an ALLOW rule drops it',
      ap({ targetRefs: [gatewayRef()], rules: [{ when: [{ key: 'connection.sni', values: ['x'] }] }] }),
      { name: 'demo/p', action: 'ALLOW', rules: [] },
      ['spec.rules[0].when[0].key: "connection.sni" is not supported at waypoints', 'spec.rules[0]: dropped (an ALLOW rule with values the waypoint cannot check matches nothing)'],
    ],
    [
      'bad source.ip value',
      ap({ action: 'DENY', targetRefs: [gatewayRef()], rules: [{ when: [{ key: 'source.ip', values: ['nope'] }] }] }),
      { name: 'demo/p', action: 'DENY', rules: [{}] },
      ['spec.rules[0].when[0].values: "nope" is not an IP address or CIDR', 'spec.rules[0]: enforced without those values (denies more)'],
    ],
    [
      'spiffe:// principals are normalised',
      ap({ targetRefs: [gatewayRef()], rules: [{ from: [{ source: { principals: ['spiffe://cluster.local/ns/demo/sa/a'] } }] }] }),
      { name: 'demo/p', action: 'ALLOW', rules: [{ from: [{ principals: ['cluster.local/ns/demo/sa/a'] }] }] },
      ['spec.rules[0].from[0].source.principals: principals are written without "spiffe://" (cluster.local/ns/<ns>/sa/<sa>); the prefix was removed'],
    ],
    [
      'claims and nested claims keys are accepted',
      ap({ targetRefs: [gatewayRef()], rules: [{ when: [{ key: 'request.auth.claims[org][team]', values: ['a'] }, { key: 'request.auth.principal', notValues: ['x'] }] }] }),
      { name: 'demo/p', action: 'ALLOW', rules: [{ when: [{ key: 'request.auth.claims[org][team]', values: ['a'] }, { key: 'request.auth.principal', notValues: ['x'] }] }] },
      [],
    ],
  ])('%s', (_name, object, policy, warnings) => {
    const t = translateL7AuthorizationPolicy(object, ROOT);
    expect(t.policy).toEqual(policy);
    expect(t.warnings).toEqual(warnings);
  });
});

describe('attachment', () => {
  const t = (spec: AuthorizationPolicyObject['spec'], namespace = 'demo') => policyTargets(spec, namespace, ROOT).targets;
  it.each<[string, ReturnType<typeof t>, unknown]>([
    ['its Gateway: all traffic', t({ targetRefs: [gatewayRef()] }), {}],
    ['another Gateway: not attached', t({ targetRefs: [gatewayRef('other')] }), undefined],
    ['a Gateway of that name in another namespace', t({ targetRefs: [gatewayRef()] }, 'prod'), undefined],
    ['a bound Service: that service', t({ targetRefs: [serviceRef()] }), { services: [BACKEND.key] }],
    ['two Services', t({ targetRefs: [serviceRef('other'), serviceRef()] }), { services: [BACKEND.key, OTHER.key] }],
    ['a Service not bound here', t({ targetRefs: [serviceRef('elsewhere')] }), undefined],
    ['Service and Gateway: all wins', t({ targetRefs: [serviceRef(), gatewayRef()] }), {}],
    ['GatewayClass: all', t({ targetRefs: [{ group: GW, kind: 'GatewayClass', name: 'istio-waypoint' }] }, ROOT), {}],
    ['selector of the waypoint pods', t({ selector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } } }), {}],
    ['selector of app pods', t({ selector: { matchLabels: { app: 'backend' } } }), undefined],
  ])('%s', (_name, targets, want) => expect(attachment(targets, WAYPOINT, [BACKEND, OTHER])).toEqual(want));
});

describe('waypointPolicies', () => {
  const seeds = ap(
    {
      targetRefs: [serviceRef()],
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/frontend'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/v1*'] } }] }],
    },
    'backend-policy',
  );
  const ra: RequestAuthenticationObject = {
    metadata: { name: 'jwt', namespace: 'demo' },
    spec: { targetRefs: [gatewayRef()], jwtRules: [{ issuer: 'https://issuer.example', jwksUri: 'http://keys.demo.svc/jwks.json', audiences: ['backend'] }] },
  };

  it('collects the policies and JWT rules of one waypoint, sorted, with their services', () => {
    const out = waypointPolicies({
      waypoint: WAYPOINT,
      services: [BACKEND, OTHER],
      authorizationPolicies: [
        seeds,
        ap({ action: 'DENY', targetRefs: [gatewayRef()], rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }, 'a-deny'),
        ap({ rules: [{}] }, 'l4-only'),
        ap({ targetRefs: [gatewayRef('other')], rules: [{}] }, 'other-waypoint'),
        ap({ action: 'CUSTOM', targetRefs: [gatewayRef()] }, 'custom'),
      ],
      requestAuthentications: [ra, { metadata: { name: 'node', namespace: 'demo' }, spec: { jwtRules: [{ issuer: 'x', jwks: '{"keys":[]}' }] } }],
      rootNamespace: ROOT,
    });
    expect(out.policies).toEqual([
      { name: 'demo/a-deny', action: 'DENY', rules: [{ to: [{ methods: ['DELETE'] }] }] },
      { name: 'demo/backend-policy', action: 'ALLOW', services: [BACKEND.key], rules: [{ from: [{ principals: ['cluster.local/ns/demo/sa/frontend'] }], to: [{ methods: ['GET'], paths: ['/api/v1*'] }] }] },
    ]);
    expect(out.jwtRules).toEqual([{ policy: 'demo/jwt', issuer: 'https://issuer.example', jwksUri: 'http://keys.demo.svc/jwks.json', audiences: ['backend'] }]);
    // What the waypoint will validate on receipt (a NACK would keep the old config).
    const parsed = waypointConfigSchema.safeParse({ namespace: 'demo', name: 'waypoint', identity: 'spiffe://cluster.local/ns/demo/sa/waypoint', services: [], clusters: [], ...out });
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
  });

  it('gives nothing to a waypoint no policy targets', () => {
    expect(waypointPolicies({ waypoint: { namespace: 'prod', name: 'w' }, services: [], authorizationPolicies: [seeds], requestAuthentications: [ra] })).toEqual({ policies: [], jwtRules: [] });
  });

  // The translation decides traffic as the seeds promise: only frontend may GET /api/v1*.
  it('runs the seeds example through the engine', () => {
    const { policies } = waypointPolicies({ waypoint: WAYPOINT, services: [BACKEND], authorizationPolicies: [seeds] });
    const authz = compileAuthz({ namespace: 'demo', name: 'waypoint', identity: '', services: [], clusters: [], policies });
    const attrs = (method: string, path: string, sa: string): RequestAttributes => ({
      service: BACKEND.key,
      http: { method, path, query: '', host: 'backend', headers: {} },
      peerIdentity: `spiffe://cluster.local/ns/demo/sa/${sa}`,
      sourceIp: '10.0.0.1',
      remoteIp: '10.0.0.1',
      destinationIp: '10.96.0.1',
      destinationPort: 80,
    });
    const allowed = (a: RequestAttributes): boolean => (authz.check(a) as AuthzOutcome).allowed;
    expect(allowed(attrs('GET', '/api/v1/x', 'frontend'))).toBe(true);
    expect(allowed(attrs('POST', '/api/v1/x', 'frontend'))).toBe(false);
    expect(allowed(attrs('GET', '/admin', 'frontend'))).toBe(false);
    expect(allowed(attrs('GET', '/api/v1/x', 'other'))).toBe(false);
  });
});

describe('placement', () => {
  const ctx: PlacementContext = {
    waypoints: [WAYPOINT],
    serviceBinding: (ns, name) => (name === 'backend' ? { waypoint: `${ns}/waypoint` } : { reason: 'no istio.io/use-waypoint label on the object or its namespace' }),
  };
  const t = (spec: AuthorizationPolicyObject['spec'], namespace = 'demo') => policyTargets(spec, namespace, ROOT).targets;
  it.each<[string, ReturnType<typeof t>, unknown]>([
    ['Gateway found', t({ targetRefs: [gatewayRef()] }), { enforcedBy: ['waypoint demo/waypoint'], unresolved: [], selectsWaypoint: false }],
    ['Gateway missing', t({ targetRefs: [gatewayRef('nope')] }), { enforcedBy: [], unresolved: ['spec.targetRefs[0]: waypoint demo/nope not found (no accepted waypoint Gateway of that name)'], selectsWaypoint: false }],
    ['Service bound', t({ targetRefs: [serviceRef()] }), { enforcedBy: ['waypoint demo/waypoint for service demo/backend'], unresolved: [], selectsWaypoint: false }],
    [
      'Service without waypoint',
      t({ targetRefs: [serviceRef('lonely')] }),
      { enforcedBy: [], unresolved: ['spec.targetRefs[0]: service demo/lonely has no waypoint bound (no istio.io/use-waypoint label on the object or its namespace); not enforced for it'], selectsWaypoint: false },
    ],
    ['GatewayClass', t({ targetRefs: [{ group: GW, kind: 'GatewayClass', name: 'istio-waypoint' }] }, ROOT), { enforcedBy: ['every waypoint (GatewayClass istio-waypoint, now 1)'], unresolved: [], selectsWaypoint: false }],
    [
      'selector of waypoint pods',
      t({ selector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } } }),
      { enforcedBy: ['waypoint demo/waypoint (spec.selector selects its pods; targetRefs is the recommended form)'], unresolved: [], selectsWaypoint: true },
    ],
    ['selector of app pods', t({ selector: { matchLabels: { app: 'x' } } }), { enforcedBy: [], unresolved: [], selectsWaypoint: false }],
  ])('%s', (_name, targets, want) => expect(placement(targets, ctx)).toEqual(want));
});
