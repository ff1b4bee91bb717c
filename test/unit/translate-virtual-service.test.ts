/**
 * VirtualService → waypoint routes, table-tested against a fixed RouteContext (backend with
 * subsets v1/v2, frontend, and a two-port `multi`).
 */
import { describe, expect, it } from 'vitest';
import { isMeshVirtualService, translateVirtualService, virtualServiceHosts } from '../../src/controller/translate/virtual-service.js';
import type { HttpRoute } from '../../src/l7/config.js';
import { BACKEND, routeContext, virtualService } from '../helpers/route-fixtures.js';

const ctx = routeContext();
const V1 = `outbound|80|v1|${BACKEND}`;
const V2 = `outbound|80|v2|${BACKEND}`;
const ALL = `outbound|80||${BACKEND}`;
const to = (host = 'backend', subset?: string) => ({ destination: { host, ...(subset ? { subset } : {}) } });

/** The routes of a one-rule VirtualService for `backend`, port 80. */
function rule(r: Record<string, unknown>): { routes: HttpRoute[]; issues: string[]; warnings: string[] } {
  const t = translateVirtualService(virtualService({ hosts: ['backend'], http: [r] }), ctx);
  return { routes: t.entries.filter((e) => e.port === 80).map((e) => e.route), issues: t.issues.map((i) => `${i.reason} ${i.message}`), warnings: t.warnings };
}

describe('scope and hosts', () => {
  it.each([
    [undefined, true],
    [[], true],
    [['mesh'], true],
    [['istio-system/ingress', 'mesh'], true],
    [['istio-system/ingress'], false],
  ])('gateways %j → mesh %s', (gateways, want) => expect(isMeshVirtualService(virtualService({ hosts: ['backend'], ...(gateways ? { gateways } : {}) }))).toBe(want));

  it('resolves hosts relative to the namespace (short, name.ns, name.ns.svc, FQDN, wildcard)', () => {
    expect(virtualServiceHosts(virtualService({ hosts: ['backend', 'backend.other', 'backend.other.svc', 'x.example.com', '*.demo.svc.cluster.local'] }), 'cluster.local')).toEqual([
      BACKEND,
      'backend.other.svc.cluster.local',
      'backend.other.svc.cluster.local',
      'x.example.com',
      '*.demo.svc.cluster.local',
    ]);
  });

  it('a wildcard host covers every matching service, each port', () => {
    const t = translateVirtualService(virtualService({ hosts: ['*.demo.svc.cluster.local'], http: [{ route: [{ destination: { host: 'frontend' } }] }] }), ctx);
    expect(t.entries.map((e) => `${e.hostname}:${e.port}`)).toEqual([`${BACKEND}:80`, 'frontend.demo.svc.cluster.local:80', 'multi.demo.svc.cluster.local:80', 'multi.demo.svc.cluster.local:8080']);
  });

  it('warns about a host that matches no service', () => {
    expect(translateVirtualService(virtualService({ hosts: ['nope'], http: [{ route: [to()] }] }), ctx).warnings).toEqual(['spec.hosts[0]: nope.demo.svc.cluster.local matches no service; ignored']);
  });
});

describe('matches', () => {
  it.each<[string, Record<string, unknown>, unknown]>([
    ['uri exact', { uri: { exact: '/a' } }, { path: { kind: 'exact', value: '/a' } }],
    ['uri prefix', { uri: { prefix: '/a' } }, { path: { kind: 'prefix', value: '/a' } }],
    ['uri regex', { uri: { regex: '/a/[0-9]+' } }, { path: { kind: 'regex', value: '/a/[0-9]+' } }],
    ['method', { method: { exact: 'get' } }, { method: 'GET' }],
    ['authority', { authority: { prefix: 'backend' } }, { authority: { kind: 'prefix', value: 'backend' } }],
    [
      'headers + withoutHeaders (names lower-cased, {} = presence)',
      { headers: { 'User-Group': { exact: 'beta' }, 'x-present': {} }, withoutHeaders: { 'x-debug': { regex: '.*' } } },
      {
        headers: [
          { name: 'user-group', match: { kind: 'exact', value: 'beta' } },
          { name: 'x-present' },
          { name: 'x-debug', match: { kind: 'regex', value: '.*' }, invert: true },
        ],
      },
    ],
    ['queryParams', { queryParams: { v: { exact: '2' } } }, { queryParams: [{ name: 'v', match: { kind: 'exact', value: '2' } }] }],
  ])('%s', (_what, match, want) => {
    expect(rule({ match: [match], route: [to()] }).routes[0]?.matches).toEqual([want]);
  });

  it('match[].port limits the rule to that service port', () => {
    const t = translateVirtualService(virtualService({ hosts: ['multi'], http: [{ match: [{ port: 8080 }], route: [{ destination: { host: 'multi' } }] }, { route: [{ destination: { host: 'multi' } }] }] }), ctx);
    expect(t.entries.map((e) => `${e.port} ${e.route.name} ${JSON.stringify(e.route.action)}`)).toEqual([
      '80 VirtualService/demo/backend#1 {"kind":"forward","backends":[{"cluster":"outbound|80||multi.demo.svc.cluster.local","weight":100}]}',
      '8080 VirtualService/demo/backend#0 {"kind":"forward","backends":[{"cluster":"outbound|8080||multi.demo.svc.cluster.local","weight":100}]}',
      '8080 VirtualService/demo/backend#1 {"kind":"forward","backends":[{"cluster":"outbound|8080||multi.demo.svc.cluster.local","weight":100}]}',
    ]);
  });

  it('a match for other gateways only does not apply to the mesh', () => {
    expect(rule({ match: [{ gateways: ['ingress'] }], route: [to()] }).routes).toEqual([]);
  });

  it.each([
    ['sourceLabels', { sourceLabels: { app: 'x' } }, 'UnsupportedValue spec.http[0].match[0].sourceLabels: not supported by amesh waypoints (ignoring it would widen the match)'],
    ['scheme', { scheme: { exact: 'https' } }, 'UnsupportedValue spec.http[0].match[0].scheme: not supported by amesh waypoints (ignoring it would widen the match)'],
    ['method regex', { method: { regex: 'G.*' } }, 'UnsupportedValue spec.http[0].match[0].method.regex: only exact method matches are supported'],
    ['two kinds at once', { uri: { exact: '/a', prefix: '/b' } }, 'InvalidSpec spec.http[0].match[0].uri: set only one of exact, prefix, regex (got exact, prefix)'],
    ['bad header regex', { headers: { x: { regex: '[' } } }, 'InvalidRegex spec.http[0].match[0].headers.x.regex: "[" is not a valid regular expression'],
  ])('rejects %s', (_what, match, message) => {
    const r = rule({ match: [match], route: [to()] });
    expect(r.issues).toEqual([message]);
    expect(r.routes).toEqual([]);
  });
});

describe('destinations and weights', () => {
  it.each<[string, unknown[], unknown]>([
    ['one destination without a weight takes 100', [to('backend', 'v1')], [{ cluster: V1, weight: 100 }]],
    [
      'weights as written; a missing one is 0 among several',
      [{ ...to('backend', 'v1'), weight: 90 }, to('backend', 'v2')],
      [
        { cluster: V1, weight: 90 },
        { cluster: V2, weight: 0 },
      ],
    ],
    ['destination headers go with the backend', [{ ...to(), headers: { request: { set: { a: '1' } }, response: { remove: ['b'] } } }], [{ cluster: ALL, weight: 100, requestHeaders: { set: { a: '1' } }, responseHeaders: { remove: ['b'] } }]],
    ['FQDN host and explicit port', [{ destination: { host: BACKEND, port: { number: 80 } } }], [{ cluster: ALL, weight: 100 }]],
  ])('%s', (_what, route, want) => {
    expect(rule({ route }).routes[0]?.action).toEqual({ kind: 'forward', backends: want });
  });

  it('a multi-port destination without a port takes the request’s port', () => {
    const t = translateVirtualService(virtualService({ hosts: ['multi'], http: [{ route: [{ destination: { host: 'multi' } }] }] }), ctx);
    expect(t.entries.map((e) => (e.route.action.kind === 'forward' ? e.route.action.backends[0]?.cluster : ''))).toEqual(['outbound|80||multi.demo.svc.cluster.local', 'outbound|8080||multi.demo.svc.cluster.local']);
  });

  it('lists the clusters it references with the subset labels', () => {
    const t = translateVirtualService(virtualService({ hosts: ['backend'], http: [{ route: [to('backend', 'v2')] }] }), ctx);
    expect(t.clusters).toEqual([{ name: V2, service: `demo/${BACKEND}`, hostname: BACKEND, port: 80, subset: 'v2', subsetLabels: { version: 'v2' } }]);
  });

  it.each([
    ['a subset not in the rule', [to('backend', 'v3')], 'InvalidDestination spec.http[0].route[0].destination.subset: subset "v3" not defined in DestinationRule demo/backend'],
    ['a subset of a host without a rule', [to('frontend', 'v1')], 'InvalidDestination spec.http[0].route[0].destination.subset: subset "v1": no DestinationRule for frontend.demo.svc.cluster.local defines subsets'],
    ['an unknown service', [to('nope')], 'InvalidDestination spec.http[0].route[0].destination.host: service nope.demo.svc.cluster.local not found'],
    ['a port the service lacks', [{ destination: { host: 'backend', port: { number: 81 } } }], 'InvalidDestination spec.http[0].route[0].destination.port.number: service backend.demo.svc.cluster.local has no port 81'],
    ['a negative weight', [{ ...to(), weight: -5 }], 'InvalidWeights spec.http[0].route[0].weight: -5 is not a non-negative integer'],
    [
      'weights totalling 0',
      [
        { ...to('backend', 'v1'), weight: 0 },
        { ...to('backend', 'v2'), weight: 0 },
      ],
      'InvalidWeights spec.http[0].route: the weights total 0: no destination can be chosen',
    ],
    ['no destinations', [], 'InvalidDestination spec.http[0].route: at least one destination is required'],
  ])('rejects %s', (_what, route, message) => {
    expect(rule({ route }).issues).toEqual([message]);
  });
});

describe('actions and filters', () => {
  it('rewrite uri replaces the matched prefix after a prefix match, the path otherwise; rule headers; timeout', () => {
    const r = rule({
      match: [{ uri: { prefix: '/old' } }],
      rewrite: { uri: '/new', authority: 'b.example' },
      headers: { request: { set: { 'X-A': '1' }, add: { 'x-b': '2' }, remove: ['X-C'] }, response: { set: { 'x-d': '4' } } },
      timeout: '1.5s',
      route: [to()],
    });
    expect(r.routes).toEqual([
      {
        name: 'VirtualService/demo/backend#0',
        matches: [{ path: { kind: 'prefix', value: '/old' } }],
        action: { kind: 'forward', backends: [{ cluster: ALL, weight: 100 }] },
        requestHeaders: { set: { 'x-a': '1' }, add: { 'x-b': '2' }, remove: ['x-c'] },
        responseHeaders: { set: { 'x-d': '4' } },
        rewrite: { hostname: 'b.example', path: { kind: 'prefix', value: '/new' } },
        timeoutMs: 1500,
      },
    ]);
    expect(rule({ match: [{ uri: { exact: '/old' } }], rewrite: { uri: '/new' }, route: [to()] }).routes[0]?.rewrite).toEqual({ path: { kind: 'full', value: '/new' } });
    expect(rule({ rewrite: { uri: '/v2/' }, route: [to()] }).routes[0]).toMatchObject({ matches: [{ path: { kind: 'prefix', value: '/' } }], rewrite: { path: { kind: 'prefix', value: '/v2/' } } });
  });

  it('a rule mixing prefix and exact matches under a uri rewrite splits per match', () => {
    const r = rule({ match: [{ uri: { prefix: '/a' } }, { uri: { exact: '/b' } }], rewrite: { uri: '/c' }, route: [to()] });
    expect(r.routes.map((x) => [x.name, x.rewrite?.path?.kind])).toEqual([
      ['VirtualService/demo/backend#0.0', 'prefix'],
      ['VirtualService/demo/backend#0.1', 'full'],
    ]);
  });

  it.each([
    ['redirect defaults to 301', { redirect: { uri: '/new' } }, { kind: 'redirect', redirect: { statusCode: 301, path: { kind: 'full', value: '/new' } } }],
    ['redirect with everything', { redirect: { uri: '/n', authority: 'x.example', port: 8443, scheme: 'https', redirectCode: 308 } }, { kind: 'redirect', redirect: { statusCode: 308, scheme: 'https', hostname: 'x.example', port: 8443, path: { kind: 'full', value: '/n' } } }],
    ['direct response', { directResponse: { status: 503, body: { string: 'down' } } }, { kind: 'direct-response', status: 503, body: 'down' }],
  ])('%s', (_what, r, want) => expect(rule(r).routes[0]?.action).toEqual(want));

  it('mirror and mirrorPercentage, and mirrors[]', () => {
    expect(rule({ route: [to('backend', 'v1')], mirror: { host: 'backend', subset: 'v2' }, mirrorPercentage: { value: 25 } }).routes[0]?.mirrors).toEqual([{ cluster: V2, percent: 25 }]);
    expect(rule({ route: [to('backend', 'v1')], mirror: { host: 'backend', subset: 'v2' } }).routes[0]?.mirrors).toEqual([{ cluster: V2 }]);
    expect(rule({ route: [to('backend', 'v1')], mirrors: [{ destination: { host: 'frontend' }, percentage: { value: 5 } }] }).routes[0]?.mirrors).toEqual([{ cluster: 'outbound|80||frontend.demo.svc.cluster.local', percent: 5 }]);
  });

  it.each([
    ['500ms', 500],
    ['1m', 60000],
    ['0s', undefined],
  ])('timeout %s', (timeout, want) => expect(rule({ timeout, route: [to()] }).routes[0]?.timeoutMs).toBe(want));

  it.each([
    ['a bad redirect code', { redirect: { redirectCode: 200 } }, 'InvalidRedirect spec.http[0].redirect.redirectCode: 200 is not a redirect code (301, 302, 303, 307, 308)'],
    ['route and redirect together', { redirect: {}, route: [to()] }, 'InvalidSpec spec.http[0]: set only one of route, redirect, directResponse (got route, redirect)'],
    ['no action', {}, 'InvalidSpec spec.http[0]: one of route, redirect or directResponse is required'],
    ['delegate', { delegate: { name: 'x' } }, 'UnsupportedValue spec.http[0].delegate: delegation is not supported by amesh waypoints'],
    ['a bad timeout', { timeout: '1.5', route: [to()] }, 'InvalidDuration spec.http[0].timeout: "1.5" is not a duration (e.g. "1.5s")'],
    ['a mirror percentage over 100', { route: [to()], mirror: { host: 'backend' }, mirrorPercentage: { value: 101 } }, 'InvalidSpec spec.http[0].mirrorPercentage.value: 101 is not a percentage (0-100)'],
    ['uriRegexRewrite', { route: [to()], rewrite: { uriRegexRewrite: { match: 'a', rewrite: 'b' } } }, 'UnsupportedValue spec.http[0].rewrite.uriRegexRewrite: not supported by amesh waypoints'],
  ])('rejects %s', (_what, r, message) => expect(rule(r).issues).toEqual([message]));

  it('warns about retries, fault, corsPolicy, tcp and exportTo, naming each field', () => {
    const t = translateVirtualService(
      virtualService({ hosts: ['backend'], exportTo: ['.'], tcp: [{}], http: [{ retries: { attempts: 2 }, fault: { delay: { fixedDelay: '1s' } }, corsPolicy: {}, route: [to()] }] }),
      ctx,
    );
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual([
      'spec.tcp: not supported by amesh waypoints; TCP traffic goes to the service as addressed',
      'spec.exportTo: visibility is not enforced by amesh waypoints; ignored',
      'spec.http[0].retries: not supported yet (issue #7)',
      'spec.http[0].fault: not supported yet (issue #7)',
      'spec.http[0].corsPolicy: not supported by amesh waypoints; ignored',
    ]);
    expect(t.entries).toHaveLength(1);
  });

  it('keeps rule order (first match wins) and reports every problem of an invalid object', () => {
    const t = translateVirtualService(
      virtualService({ hosts: ['backend'], http: [{ match: [{ uri: { regex: '(' } }], route: [to()] }, { route: [to('backend', 'v9')] }, { route: [to()] }] }),
      ctx,
    );
    expect(t.issues.map((i) => i.reason)).toEqual(['InvalidRegex', 'InvalidDestination']);
    expect(t.entries).toEqual([]);
    expect(t.clusters).toEqual([]);
    const ok = translateVirtualService(virtualService(CANARY), ctx);
    expect(ok.entries.map((e) => e.route.name)).toEqual(['VirtualService/demo/backend#0', 'VirtualService/demo/backend#1']);
  });

  it('checks the rules even when no service is covered', () => {
    expect(translateVirtualService(virtualService({ hosts: ['nope'], http: [{ route: [to('backend', 'v3')] }] }), ctx).issues.map((i) => i.message)).toEqual([
      'spec.http[0].route[0].destination.subset: subset "v3" not defined in DestinationRule demo/backend',
    ]);
  });
});

const CANARY = { hosts: ['backend'], http: [{ match: [{ headers: { 'user-group': { exact: 'beta-tester' } } }], route: [to('backend', 'v2')] }, { route: [to('backend', 'v1')] }] };
