/**
 * GRPCRoute → waypoint routes: method matches become path matches, backends and filters as for
 * HTTPRoute, and the spec's precedence (longer service, longer method, more headers).
 */
import { describe, expect, it } from 'vitest';
import { translateGrpcRoute, type GrpcRouteObject } from '../../src/controller/translate/grpc-route.js';
import { compareRouteEntries } from '../../src/controller/translate/http-route.js';
import { BACKEND, routeContext } from '../helpers/route-fixtures.js';

const ctx = routeContext();
const backend = ctx.services.get(BACKEND)!;
const ALL = `outbound|80||${BACKEND}`;
const grpcRoute = (spec: unknown, name = 'g', creationTimestamp = '2026-01-01T00:00:00Z'): GrpcRouteObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'GRPCRoute',
  metadata: { name, namespace: 'demo', uid: `uid-${name}`, creationTimestamp },
  spec: spec as GrpcRouteObject['spec'],
});
const translate = (spec: unknown) => translateGrpcRoute(grpcRoute(spec), ctx, [{ service: backend }]);
const backends = [{ name: 'backend', port: 80 }];

describe('method matches', () => {
  it.each<[string, unknown, unknown]>([
    ['service and method → exact path', { service: 'helloworld.Greeter', method: 'SayHello' }, { kind: 'exact', value: '/helloworld.Greeter/SayHello' }],
    ['service only → prefix', { service: 'helloworld.Greeter' }, { kind: 'prefix', value: '/helloworld.Greeter/' }],
    ['method only → regex', { method: 'Say.Hello' }, { kind: 'regex', value: '/[^/]+/Say\\.Hello' }],
    ['RegularExpression', { type: 'RegularExpression', service: 'hello.*', method: 'Say[A-Z].*' }, { kind: 'regex', value: '/hello.*/Say[A-Z].*' }],
    ['RegularExpression, method only', { type: 'RegularExpression', method: 'Get.*' }, { kind: 'regex', value: '/[^/]+/Get.*' }],
  ])('%s', (_what, method, path) => {
    const t = translate({ rules: [{ matches: [{ method }], backendRefs: backends }] });
    expect(t.issues).toEqual([]);
    expect(t.entries[0]?.route.matches).toEqual([{ path }]);
  });

  it('headers, no method → any path', () => {
    const t = translate({ rules: [{ matches: [{ headers: [{ name: 'X-Tenant', value: 'a' }] }], backendRefs: backends }] });
    expect(t.entries[0]?.route).toEqual({
      name: 'GRPCRoute/demo/g#0',
      matches: [{ headers: [{ name: 'x-tenant', match: { kind: 'exact', value: 'a' } }] }],
      action: { kind: 'forward', backends: [{ cluster: ALL, weight: 1 }] },
    });
  });

  it.each([
    ['neither service nor method', { method: {} }, 'InvalidSpec spec.rules[0].matches[0].method: one of service or method is required'],
    ['a bad service regex', { method: { type: 'RegularExpression', service: '(' } }, 'InvalidRegex spec.rules[0].matches[0].method.service: "(" is not a valid regular expression'],
    ['a slash in an exact name', { method: { service: 'a/b' } }, 'InvalidSpec spec.rules[0].matches[0].method: service and method must not contain "/"'],
    ['a bad header regex', { headers: [{ type: 'RegularExpression', name: 'x', value: '[' }] }, 'InvalidRegex spec.rules[0].matches[0].headers[0].value: "[" is not a valid regular expression'],
  ])('rejects %s', (_what, match, message) => {
    const t = translate({ rules: [{ matches: [match], backendRefs: backends }] });
    expect(t.issues.map((i) => `${i.reason} ${i.message}`)).toEqual([message]);
    expect(t.entries).toEqual([]);
  });
});

describe('backends and filters', () => {
  it('weighted backends, header modifiers and a mirror', () => {
    const t = translate({
      rules: [
        {
          filters: [
            { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: '1' }] } },
            { type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['x-b'] } },
            { type: 'RequestMirror', requestMirror: { backendRef: { name: 'frontend', port: 80 } } },
          ],
          backendRefs: [
            { name: 'backend', port: 80, weight: 3 },
            { name: 'frontend', port: 80, weight: 1 },
          ],
        },
      ],
    });
    expect(t.entries[0]?.route).toMatchObject({
      action: {
        kind: 'forward',
        backends: [
          { cluster: ALL, weight: 3 },
          { cluster: 'outbound|80||frontend.demo.svc.cluster.local', weight: 1 },
        ],
      },
      requestHeaders: { set: { 'x-a': '1' } },
      responseHeaders: { remove: ['x-b'] },
      mirrors: [{ cluster: 'outbound|80||frontend.demo.svc.cluster.local' }],
    });
  });

  it.each([
    ['an unknown backend', { backendRefs: [{ name: 'nope', port: 80 }] }, 'InvalidDestination spec.rules[0].backendRefs[0].host: service nope.demo.svc.cluster.local not found'],
    [
      'weights totalling 0',
      { backendRefs: [{ name: 'backend', port: 80, weight: 0 }] },
      'InvalidWeights spec.rules[0].backendRefs: the weights total 0: no backend can be chosen',
    ],
    ['an HTTP-only filter', { filters: [{ type: 'URLRewrite', urlRewrite: {} }], backendRefs: backends }, 'UnsupportedValue spec.rules[0].filters[0].type: URLRewrite is not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror)'],
  ])('rejects %s', (_what, rule, message) => {
    expect(translate({ rules: [rule] }).issues.map((i) => `${i.reason} ${i.message}`)).toEqual([message]);
  });
});

describe('precedence', () => {
  it('longer service, then longer method, then more headers; ties by age and name', () => {
    const t = translate({
      rules: [
        { matches: [{ headers: [{ name: 'x', value: '1' }] }], backendRefs: backends },
        { matches: [{ method: { service: 'a.B' } }], backendRefs: backends },
        { matches: [{ method: { service: 'a.B', method: 'Get' } }], backendRefs: backends },
        { matches: [{ method: { service: 'a.B', method: 'Get' }, headers: [{ name: 'x', value: '1' }] }], backendRefs: backends },
        { matches: [{ method: { service: 'a.Longer' } }], backendRefs: backends },
      ],
    });
    expect([...t.entries].sort(compareRouteEntries).map((e) => e.route.name)).toEqual(['GRPCRoute/demo/g#4', 'GRPCRoute/demo/g#3', 'GRPCRoute/demo/g#2', 'GRPCRoute/demo/g#1', 'GRPCRoute/demo/g#0']);
  });
});
