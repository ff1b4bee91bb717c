/**
 * HTTPRoute → waypoint routes: attachment, matches, backends, filters, timeouts and retries, and the spec's
 * precedence across matches and routes (not array order).
 */
import { describe, expect, it } from 'vitest';
import { compareRouteEntries, routeParents, translateHttpRoute, type HttpRouteObject, type OrderedEntry } from '../../src/controller/translate/http-route.js';
import type { HttpRoute, RetryOn } from '../../src/l7/config.js';
import { BACKEND, httpRoute, routeContext } from '../helpers/route-fixtures.js';

const ctx = routeContext();
const backend = ctx.services.get(BACKEND)!;
const ALL = `outbound|80||${BACKEND}`;
const FRONT = 'outbound|80||frontend.demo.svc.cluster.local';
const ref = (name = 'backend', port = 80, weight?: number) => ({ name, port, ...(weight !== undefined ? { weight } : {}) });

function translate(spec: unknown, extra = {}) {
  return translateHttpRoute(httpRoute(spec, 'r', extra) as HttpRouteObject, ctx, [{ service: backend }]);
}
const routesOf = (spec: unknown): HttpRoute[] => translate(spec).entries.map((e) => e.route);
const issuesOf = (spec: unknown): string[] => translate(spec).issues.map((i) => `${i.reason} ${i.message}`);

describe('routeParents', () => {
  it('Service parents (core group) in the route’s namespace, waypoint Gateways; ingress parents are skipped by the caller', () => {
    const { parents, issues } = routeParents(
      httpRoute({
        parentRefs: [
          { group: '', kind: 'Service', name: 'backend', port: 80 },
          { group: 'core', kind: 'Service', name: 'frontend' },
          { name: 'waypoint' },
          { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw', namespace: 'ingress' },
          { group: '', kind: 'Service', name: 'x', namespace: 'other' },
          { group: 'example.com', kind: 'Thing', name: 'y' },
        ],
      }),
      'cluster.local',
    );
    expect(parents.map((p) => [p.kind, `${p.namespace}/${p.name}`, p.kind === 'Service' ? p.port : undefined])).toEqual([
      ['Service', 'demo/backend', 80],
      ['Service', 'demo/frontend', undefined],
      ['Gateway', 'demo/waypoint', undefined],
      ['Gateway', 'ingress/gw', undefined],
    ]);
    expect(issues.map((i) => i.message)).toEqual(['spec.parentRefs[4].namespace: consumer routes (a Service in another namespace, other) are not supported; attach the route in other']);
  });
});

describe('matches', () => {
  it.each<[string, unknown, unknown[]]>([
    ['no match = prefix /', undefined, [{ path: { kind: 'prefix', value: '/' } }]],
    ['Exact', { path: { type: 'Exact', value: '/a' } }, [{ path: { kind: 'exact', value: '/a' } }]],
    [
      'PathPrefix is per path element',
      { path: { type: 'PathPrefix', value: '/api' } },
      [{ path: { kind: 'exact', value: '/api' } }, { path: { kind: 'prefix', value: '/api/' } }],
    ],
    [
      'PathPrefix ignores a trailing slash',
      { path: { value: '/api/' } },
      [{ path: { kind: 'exact', value: '/api' } }, { path: { kind: 'prefix', value: '/api/' } }],
    ],
    ['RegularExpression', { path: { type: 'RegularExpression', value: '/u/[0-9]+' } }, [{ path: { kind: 'regex', value: '/u/[0-9]+' } }]],
    [
      'headers, query, method',
      { path: { type: 'Exact', value: '/a' }, method: 'post', headers: [{ name: 'X-A', value: '1' }, { type: 'RegularExpression', name: 'x-b', value: 'b+' }], queryParams: [{ name: 'q', value: 'v' }] },
      [
        {
          path: { kind: 'exact', value: '/a' },
          method: 'POST',
          headers: [
            { name: 'x-a', match: { kind: 'exact', value: '1' } },
            { name: 'x-b', match: { kind: 'regex', value: 'b+' } },
          ],
          queryParams: [{ name: 'q', match: { kind: 'exact', value: 'v' } }],
        },
      ],
    ],
  ])('%s', (_what, match, want) => {
    expect(routesOf({ rules: [{ ...(match ? { matches: [match] } : {}), backendRefs: [ref()] }] })[0]?.matches).toEqual(want);
  });

  it.each([
    ['a bad path regex', { path: { type: 'RegularExpression', value: '(' } }, 'InvalidRegex spec.rules[0].matches[0].path.value: "(" is not a valid regular expression'],
    ['a bad header regex', { headers: [{ type: 'RegularExpression', name: 'x', value: '[' }] }, 'InvalidRegex spec.rules[0].matches[0].headers[0].value: "[" is not a valid regular expression'],
    ['a relative path', { path: { type: 'Exact', value: 'a' } }, 'InvalidSpec spec.rules[0].matches[0].path.value: "a" must start with "/"'],
    ['an unknown path type', { path: { type: 'Suffix', value: '/a' } }, 'UnsupportedValue spec.rules[0].matches[0].path.type: Suffix is not supported (Exact, PathPrefix, RegularExpression)'],
  ])('rejects %s', (_what, match, message) => expect(issuesOf({ rules: [{ matches: [match], backendRefs: [ref()] }] })).toEqual([message]));
});

describe('backends', () => {
  it('weights default to 1; backendRef header filters go with the backend', () => {
    expect(routesOf({ rules: [{ backendRefs: [ref(), { ...ref('frontend', 80, 3), filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'X-F', value: '1' }] } }] }] }] })[0]?.action).toEqual({
      kind: 'forward',
      backends: [
        { cluster: ALL, weight: 1 },
        { cluster: FRONT, weight: 3, requestHeaders: { add: { 'x-f': '1' } } },
      ],
    });
  });

  it('a rule without backendRefs answers 500 (spec)', () => {
    expect(routesOf({ rules: [{}] })[0]?.action).toEqual({ kind: 'direct-response', status: 500 });
  });

  it.each([
    ['weights totalling 0', [ref('backend', 80, 0), ref('frontend', 80, 0)], 'InvalidWeights spec.rules[0].backendRefs: the weights total 0: no backend can be chosen'],
    ['an unknown service', [ref('nope')], 'InvalidDestination spec.rules[0].backendRefs[0].host: service nope.demo.svc.cluster.local not found'],
    ['a missing port', [{ name: 'backend' }], 'InvalidDestination spec.rules[0].backendRefs[0].port: required for a Service backend'],
    ['a port the service lacks', [ref('backend', 81)], 'InvalidDestination spec.rules[0].backendRefs[0].port.number: service backend.demo.svc.cluster.local has no port 81'],
    ['another kind', [{ group: 'networking.istio.io', kind: 'ServiceEntry', name: 'x', port: 80 }], 'InvalidDestination spec.rules[0].backendRefs[0].kind: networking.istio.io/ServiceEntry is not supported; only Services'],
    ['another namespace', [{ name: 'backend', namespace: 'other', port: 80 }], 'InvalidDestination spec.rules[0].backendRefs[0].namespace: cross-namespace backend other/backend needs a ReferenceGrant, which amesh does not support yet'],
  ])('rejects %s', (_what, backendRefs, message) => {
    const t = translate({ rules: [{ backendRefs }] });
    expect(t.issues.map((i) => `${i.reason} ${i.message}`)).toEqual([message]);
    expect(t.entries).toEqual([]);
  });
});

describe('filters', () => {
  it('header modifiers, URLRewrite ReplaceFullPath + hostname, mirror, timeouts.request', () => {
    expect(
      routesOf({
        rules: [
          {
            matches: [{ path: { type: 'Exact', value: '/a' } }],
            filters: [
              { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Set', value: '1' }], remove: ['X-Gone'] } },
              { type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-r', value: '2' }] } },
              { type: 'URLRewrite', urlRewrite: { hostname: 'new.example', path: { type: 'ReplaceFullPath', replaceFullPath: '/b' } } },
              { type: 'RequestMirror', requestMirror: { backendRef: ref('frontend'), percent: 10 } },
            ],
            timeouts: { request: '2s' },
            backendRefs: [ref()],
          },
        ],
      }),
    ).toEqual([
      {
        name: 'HTTPRoute/demo/r#0',
        matches: [{ path: { kind: 'exact', value: '/a' } }],
        action: { kind: 'forward', backends: [{ cluster: ALL, weight: 1 }] },
        requestHeaders: { set: { 'x-set': '1' }, remove: ['x-gone'] },
        responseHeaders: { add: { 'x-r': '2' } },
        rewrite: { hostname: 'new.example', path: { kind: 'full', value: '/b' } },
        mirrors: [{ cluster: FRONT, percent: 10 }],
        timeoutMs: 2000,
      },
    ]);
  });

  it('ReplacePrefixMatch: /foo → /bar rewrites /foo to /bar and /foo/x to /bar/x', () => {
    const routes = routesOf({ rules: [{ matches: [{ path: { value: '/foo' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/bar' } } }], backendRefs: [ref()] }] });
    expect(routes.map((r) => [r.name, r.matches, r.rewrite])).toEqual([
      ['HTTPRoute/demo/r#0:exact', [{ path: { kind: 'exact', value: '/foo' } }], { path: { kind: 'full', value: '/bar' } }],
      ['HTTPRoute/demo/r#0:prefix', [{ path: { kind: 'prefix', value: '/foo/' } }], { path: { kind: 'prefix', value: '/bar/' } }],
    ]);
  });

  it('RequestRedirect: default 302, path modifier on the Location', () => {
    expect(routesOf({ rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'x.example', port: 8443, path: { type: 'ReplaceFullPath', replaceFullPath: '/n' } } }] }] })[0]?.action).toEqual({
      kind: 'redirect',
      redirect: { statusCode: 302, scheme: 'https', hostname: 'x.example', port: 8443, path: { kind: 'full', value: '/n' } },
    });
  });

  it('warns about CORS and hostnames', () => {
    const t = translate({ hostnames: ['backend'], rules: [{ retry: { attempts: 2 }, timeouts: { backendRequest: '1s' }, filters: [{ type: 'CORS', cors: {} }], backendRefs: [ref()] }] });
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual(['spec.hostnames: ignored for mesh routes (GAMMA): the parent service decides', 'spec.rules[0].filters[0]: CORS is not supported by amesh waypoints; ignored']);
  });

  it.each([
    ['a bad redirect code', [{ type: 'RequestRedirect', requestRedirect: { statusCode: 305 } }], 'InvalidRedirect spec.rules[0].filters[0].requestRedirect.statusCode: 305 is not a redirect code (301, 302, 303, 307, 308)'],
    ['ExtensionRef', [{ type: 'ExtensionRef', extensionRef: { name: 'x' } }], 'UnsupportedValue spec.rules[0].filters[0].type: ExtensionRef is not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror)'],
    ['a mirror to nowhere', [{ type: 'RequestMirror', requestMirror: { backendRef: ref('nope') } }], 'InvalidDestination spec.rules[0].filters[0].requestMirror.backendRef.host: service nope.demo.svc.cluster.local not found'],
  ])('rejects %s', (_what, filters, message) => expect(issuesOf({ rules: [{ filters, backendRefs: [ref()] }] })).toEqual([message]));

  it('rejects ReplacePrefixMatch without a PathPrefix match, and a bad timeout', () => {
    expect(issuesOf({ rules: [{ matches: [{ path: { type: 'Exact', value: '/a' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }], backendRefs: [ref()] }] })).toEqual([
      'InvalidSpec spec.rules[0].filters: ReplacePrefixMatch needs a PathPrefix match (spec.rules[0].matches[0] is Exact)',
    ]);
    expect(issuesOf({ rules: [{ timeouts: { request: 'never' }, backendRefs: [ref()] }] })).toEqual(['InvalidDuration spec.rules[0].timeouts.request: "never" is not a duration (e.g. "10s", "500ms")']);
  });
});

describe('timeouts and retry (GEP-1742, GEP-1731, as Istio converts them)', () => {
  const CONN: RetryOn[] = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled'];
  it.each<[string, Record<string, unknown>, Pick<HttpRoute, 'timeoutMs' | 'retries'>]>([
    ['request only', { timeouts: { request: '2s' } }, { timeoutMs: 2000 }],
    ['"0s" is no timeout', { timeouts: { request: '0s', backendRequest: '0s' } }, {}],
    ['backendRequest without retry: the route timeout (one try)', { timeouts: { backendRequest: '1s' } }, { timeoutMs: 1000 }],
    ['both without retry: the shorter', { timeouts: { request: '3s', backendRequest: '1s' } }, { timeoutMs: 1000 }],
    ['backendRequest with retry: per try', { timeouts: { request: '3s', backendRequest: '1s' }, retry: { attempts: 2 } }, { timeoutMs: 3000, retries: { attempts: 2, retryOn: CONN, otherHost: true, perTryTimeoutMs: 1000 } }],
    ['retry: attempts default to 2, connection errors only', { retry: {} }, { retries: { attempts: 2, retryOn: CONN, otherHost: true } }],
    [
      'retry with codes and backoff',
      { retry: { codes: [503, 500, 503], attempts: 3, backoff: '100ms' } },
      { retries: { attempts: 3, retryOn: [...CONN, 'retriable-status-codes'], retriableStatusCodes: [503, 500], otherHost: true, backoffBaseMs: 100 } },
    ],
    ['retry attempts 0: explicitly off', { retry: { attempts: 0, codes: [503] } }, { retries: { attempts: 0, retryOn: [], otherHost: false } }],
    ['no retry: none here (waypoint-config.ts applies Istio’s default)', {}, {}],
  ])('%s', (_what, rule, want) => {
    const t = translate({ rules: [{ ...rule, backendRefs: [ref()] }] });
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual([]);
    const route = t.entries[0]?.route;
    expect({ ...(route?.timeoutMs !== undefined ? { timeoutMs: route.timeoutMs } : {}), ...(route?.retries ? { retries: route.retries } : {}) }).toEqual(want);
  });

  it('a retry stays on the hashed endpoint when the backend balances by consistent hash', () => {
    const hashed = routeContext({ rules: { [BACKEND]: { rule: 'demo/backend', policy: { loadBalancer: { hash: { kind: 'source-ip' } } }, subsets: new Map() } } });
    const t = translateHttpRoute(httpRoute({ rules: [{ retry: { attempts: 1 }, backendRefs: [ref()] }] }, 'r') as HttpRouteObject, hashed, [{ service: backend }]);
    expect(t.entries[0]?.route.retries?.otherHost).toBe(false);
  });

  it('a redirecting rule ignores retry, with a warning', () => {
    const t = translate({ rules: [{ retry: { attempts: 2 }, filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'x' } }] }] });
    expect(t.entries[0]?.route.retries).toBeUndefined();
    expect(t.warnings).toEqual(['spec.rules[0].retry: ignored, the rule redirects']);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a bad backendRequest', { timeouts: { backendRequest: 'x' } }, 'InvalidDuration spec.rules[0].timeouts.backendRequest: "x" is not a duration (e.g. "10s", "500ms")'],
    ['backendRequest longer than request', { timeouts: { request: '1s', backendRequest: '2s' } }, 'InvalidSpec spec.rules[0].timeouts.backendRequest: 2s must not be longer than timeouts.request (1s)'],
    ['negative attempts', { retry: { attempts: -1 } }, 'InvalidSpec spec.rules[0].retry.attempts: -1 is not a non-negative integer'],
    ['a code outside 400-599', { retry: { codes: [200] } }, 'InvalidSpec spec.rules[0].retry.codes[0]: 200 is not a retriable status (400-599)'],
    ['a bad backoff', { retry: { backoff: 'fast' } }, 'InvalidDuration spec.rules[0].retry.backoff: "fast" is not a duration (e.g. "100ms")'],
  ])('rejects %s', (_what, rule, message) => expect(issuesOf({ rules: [{ ...rule, backendRefs: [ref()] }] })).toEqual([message]));
});

describe('precedence (Gateway API spec), not array order', () => {
  const order = (entries: OrderedEntry[]): string[] => [...entries].sort(compareRouteEntries).map((e) => e.route.name);

  it('exact > longest prefix > regex > method > more headers > more query params', () => {
    const t = translate({
      rules: [
        { matches: [{ path: { value: '/' } }], backendRefs: [ref()] },
        { matches: [{ path: { type: 'RegularExpression', value: '/.*' } }], backendRefs: [ref()] },
        { matches: [{ path: { value: '/a' } }], backendRefs: [ref()] },
        { matches: [{ path: { value: '/a/b' } }], backendRefs: [ref()] },
        { matches: [{ path: { type: 'Exact', value: '/a' } }], backendRefs: [ref()] },
        { matches: [{ path: { value: '/a' }, method: 'GET' }], backendRefs: [ref()] },
        { matches: [{ path: { value: '/a' }, method: 'GET', headers: [{ name: 'x', value: '1' }] }], backendRefs: [ref()] },
        { matches: [{ path: { value: '/a' }, method: 'GET', headers: [{ name: 'x', value: '1' }], queryParams: [{ name: 'q', value: '1' }] }], backendRefs: [ref()] },
      ],
    });
    expect(order(t.entries)).toEqual(['HTTPRoute/demo/r#4', 'HTTPRoute/demo/r#3', 'HTTPRoute/demo/r#7', 'HTTPRoute/demo/r#6', 'HTTPRoute/demo/r#5', 'HTTPRoute/demo/r#2', 'HTTPRoute/demo/r#0', 'HTTPRoute/demo/r#1']);
  });

  it('each match of a rule ranks on its own', () => {
    const t = translate({ rules: [{ matches: [{ path: { value: '/' } }, { path: { type: 'Exact', value: '/x' } }], backendRefs: [ref()] }, { matches: [{ path: { value: '/y' } }], backendRefs: [ref()] }] });
    expect(order(t.entries)).toEqual(['HTTPRoute/demo/r#0.1', 'HTTPRoute/demo/r#1', 'HTTPRoute/demo/r#0.0']);
  });

  it('ties: the older route, then namespace/name, then rule order', () => {
    const rules = { rules: [{ matches: [{ path: { value: '/a' } }], backendRefs: [ref()] }, { matches: [{ path: { value: '/a' } }], backendRefs: [ref()] }] };
    const route = (name: string, creationTimestamp: string) => translateHttpRoute(httpRoute(rules, name, { creationTimestamp }) as HttpRouteObject, ctx, [{ service: backend }]).entries;
    expect(order([...route('b-new', '2026-02-01T00:00:00Z'), ...route('z-old', '2025-01-01T00:00:00Z'), ...route('a-new', '2026-02-01T00:00:00Z')])).toEqual([
      'HTTPRoute/demo/z-old#0',
      'HTTPRoute/demo/z-old#1',
      'HTTPRoute/demo/a-new#0',
      'HTTPRoute/demo/a-new#1',
      'HTTPRoute/demo/b-new#0',
      'HTTPRoute/demo/b-new#1',
    ]);
  });
});

describe('targets', () => {
  it('every port of the service, or the parentRef’s port', () => {
    const multi = ctx.services.get('multi.demo.svc.cluster.local')!;
    const spec = { rules: [{ backendRefs: [ref()] }] };
    expect(translateHttpRoute(httpRoute(spec) as HttpRouteObject, ctx, [{ service: multi }]).entries.map((e) => e.port)).toEqual([80, 8080]);
    expect(translateHttpRoute(httpRoute(spec) as HttpRouteObject, ctx, [{ service: multi, port: 8080 }]).entries.map((e) => e.port)).toEqual([8080]);
    expect(translateHttpRoute(httpRoute(spec) as HttpRouteObject, ctx, []).entries).toEqual([]);
  });
});
