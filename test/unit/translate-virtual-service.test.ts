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

  it('warns about corsPolicy, tcp and exportTo, naming each field (retries and fault are carried)', () => {
    const t = translateVirtualService(
      virtualService({ hosts: ['backend'], exportTo: ['.'], tcp: [{}], http: [{ retries: { attempts: 2 }, fault: { delay: { fixedDelay: '1s' } }, corsPolicy: {}, route: [to()] }] }),
      ctx,
    );
    expect(t.issues).toEqual([]);
    expect(t.warnings).toEqual([
      'spec.tcp: not supported by amesh waypoints; TCP traffic goes to the service as addressed',
      'spec.exportTo: visibility is not enforced by amesh waypoints; ignored',
      'spec.http[0].corsPolicy: not supported by amesh waypoints; ignored',
    ]);
    expect(t.entries).toHaveLength(1);
    expect(t.entries[0]?.route).toMatchObject({ retries: { attempts: 2 }, fault: { delay: { percent: 100, delayMs: 1000 } } });
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

describe('retries (Istio HTTPRetry → RetryPolicy)', () => {
  const DEFAULT_ON = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'];
  it.each<[string, Record<string, unknown>, unknown]>([
    ['attempts only: Istio’s default conditions, another endpoint', { attempts: 3 }, { attempts: 3, retryOn: DEFAULT_ON, otherHost: true }],
    ['the issue’s example', { attempts: 3, retryOn: '5xx' }, { attempts: 3, retryOn: ['5xx'], otherHost: true }],
    [
      'every field',
      { attempts: 2, perTryTimeout: '500ms', retryOn: 'gateway-error, connect-failure,reset', backoff: '100ms', retryIgnorePreviousHosts: false },
      { attempts: 2, perTryTimeoutMs: 500, retryOn: ['gateway-error', 'connect-failure', 'reset'], backoffBaseMs: 100, otherHost: false },
    ],
    ['status codes mean retriable-status-codes, added when missing', { attempts: 1, retryOn: '503,429' }, { attempts: 1, retryOn: ['retriable-status-codes'], retriableStatusCodes: [503, 429], otherHost: true }],
    ['codes next to the condition are not doubled', { attempts: 1, retryOn: 'retriable-status-codes,503,503,5xx' }, { attempts: 1, retryOn: ['retriable-status-codes', '5xx'], retriableStatusCodes: [503], otherHost: true }],
    ['gRPC conditions', { attempts: 1, retryOn: 'cancelled,deadline-exceeded,internal,resource-exhausted,unavailable' }, { attempts: 1, retryOn: ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'], otherHost: true }],
    ['an empty retryOn keeps the default', { attempts: 1, retryOn: '' }, { attempts: 1, retryOn: DEFAULT_ON, otherHost: true }],
    ['attempts 0: explicitly off', { attempts: 0 }, { attempts: 0, retryOn: [], otherHost: false }],
  ])('%s', (_what, retries, want) => {
    const r = rule({ retries, route: [to()] });
    expect(r.issues).toEqual([]);
    expect(r.routes[0]?.retries).toEqual(want);
  });

  it('no retries field: none here (waypoint-config.ts applies Istio’s default)', () => {
    expect(rule({ route: [to()] }).routes[0]?.retries).toBeUndefined();
  });

  it.each<[string, Record<string, unknown>, string[]]>([
    ['unknown retryOn conditions, by name', { attempts: 2, retryOn: '5xx,retriable-headers,999,envoy-ratelimited' }, ['spec.http[0].retries.retryOn: "retriable-headers", "999", "envoy-ratelimited" not supported (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or an HTTP status); ignored']],
    ['retryRemoteLocalities', { attempts: 2, retryRemoteLocalities: true }, ['spec.http[0].retries.retryRemoteLocalities: retries do not prefer other localities in amesh waypoints; ignored']],
    ['retryOn without attempts (Istio: off)', { retryOn: '5xx', perTryTimeout: '1s' }, ['spec.http[0].retries.attempts: unset, so retries are off (Istio) and spec.http[0].retries.perTryTimeout, spec.http[0].retries.retryOn ignored']],
    ['an unknown field', { attempts: 1, budget: 3 }, ['spec.http[0].retries.budget: unknown field; ignored']],
  ])('warns: %s', (_what, retries, warnings) => {
    const r = rule({ retries, route: [to()] });
    expect(r.issues).toEqual([]);
    expect(r.warnings).toEqual(warnings);
  });

  it('keeps a retry on the hashed endpoint when the destination balances by consistent hash', () => {
    const hashed = routeContext({
      rules: { [BACKEND]: { rule: 'demo/backend', policy: { loadBalancer: { hash: { kind: 'header', name: 'x-user' } } }, subsets: new Map([['v1', { labels: { version: 'v1' } }]]) } },
    });
    const t = translateVirtualService(virtualService({ hosts: ['backend'], http: [{ retries: { attempts: 2 }, route: [to('backend', 'v1')] }] }), hashed);
    expect(t.entries[0]?.route.retries?.otherHost).toBe(false);
    const explicit = translateVirtualService(virtualService({ hosts: ['backend'], http: [{ retries: { attempts: 2, retryIgnorePreviousHosts: true }, route: [to('backend', 'v1')] }] }), hashed);
    expect(explicit.entries[0]?.route.retries?.otherHost).toBe(true);
  });

  it('a redirect ignores retries, with a warning', () => {
    const r = rule({ redirect: { uri: '/x' }, retries: { attempts: 2 } });
    expect(r.routes[0]?.retries).toBeUndefined();
    expect(r.warnings).toEqual(['spec.http[0].retries: ignored, the rule answers itself (redirect)']);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['negative attempts', { attempts: -1 }, 'InvalidSpec spec.http[0].retries.attempts: -1 is not a non-negative integer'],
    ['fractional attempts', { attempts: 1.5 }, 'InvalidSpec spec.http[0].retries.attempts: 1.5 is not a non-negative integer'],
    ['a bad perTryTimeout', { attempts: 1, perTryTimeout: 'soon' }, 'InvalidDuration spec.http[0].retries.perTryTimeout: "soon" is not a duration (e.g. "1.5s")'],
    ['a zero perTryTimeout (Istio: at least 1ms)', { attempts: 1, perTryTimeout: '0s' }, 'InvalidDuration spec.http[0].retries.perTryTimeout: "0s" is shorter than 1ms'],
    ['a bad backoff', { attempts: 1, backoff: '10' }, 'InvalidDuration spec.http[0].retries.backoff: "10" is not a duration (e.g. "1.5s")'],
    ['retryOn not a string', { attempts: 1, retryOn: ['5xx'] }, 'InvalidSpec spec.http[0].retries.retryOn: ["5xx"] is not a comma-separated list'],
  ])('rejects %s', (_what, retries, message) => expect(rule({ retries, route: [to()] }).issues).toEqual([message]));
});

describe('fault (Istio HTTPFaultInjection → FaultPolicy)', () => {
  it.each<[string, Record<string, unknown>, unknown]>([
    ['delay with percentage', { delay: { fixedDelay: '2s', percentage: { value: 10 } } }, { delay: { percent: 10, delayMs: 2000 } }],
    ['delay with a fractional percentage', { delay: { fixedDelay: '5ms', percentage: { value: 0.1 } } }, { delay: { percent: 0.1, delayMs: 5 } }],
    ['delay with the old integer percent', { delay: { fixedDelay: '1s', percent: 30 } }, { delay: { percent: 30, delayMs: 1000 } }],
    ['no percentage: every request (FAULT_DEFAULT_PERCENT)', { delay: { fixedDelay: '1s' } }, { delay: { percent: 100, delayMs: 1000 } }],
    ['abort with an HTTP status', { abort: { httpStatus: 500, percentage: { value: 20 } } }, { abort: { percent: 20, httpStatus: 500 } }],
    ['abort with a gRPC status name', { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 50 } } }, { abort: { percent: 50, grpcStatus: 14 } }],
    ['gRPC status names are case-insensitive; OK is 0', { abort: { grpcStatus: 'ok' } }, { abort: { percent: 100, grpcStatus: 0 } }],
    ['both', { delay: { fixedDelay: '2s', percentage: { value: 10 } }, abort: { httpStatus: 503, percent: 20 } }, { delay: { percent: 10, delayMs: 2000 }, abort: { percent: 20, httpStatus: 503 } }],
    ['percentage 0 stays 0', { abort: { httpStatus: 503, percentage: { value: 0 } } }, { abort: { percent: 0, httpStatus: 503 } }],
  ])('%s', (_what, fault, want) => {
    const r = rule({ fault, route: [to()] });
    expect(r.issues).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.routes[0]?.fault).toEqual(want);
  });

  it('applies to a direct response too (the fault filter runs before the action)', () => {
    expect(rule({ fault: { abort: { httpStatus: 500 } }, directResponse: { status: 200 } }).routes[0]?.fault).toEqual({ abort: { percent: 100, httpStatus: 500 } });
  });

  it.each<[string, Record<string, unknown>, unknown, string[]]>([
    ['exponentialDelay', { delay: { exponentialDelay: '1s' } }, undefined, ['spec.http[0].fault.delay.exponentialDelay: not supported (as in Istio); no delay is injected']],
    ['http2Error', { abort: { http2Error: 'REFUSED_STREAM' }, delay: { fixedDelay: '1s' } }, { delay: { percent: 100, delayMs: 1000 } }, ['spec.http[0].fault.abort.http2Error: not supported by amesh waypoints; no abort is injected']],
  ])('warns and ignores %s', (_what, fault, want, warnings) => {
    const r = rule({ fault, route: [to()] });
    expect(r.issues).toEqual([]);
    expect(r.routes[0]?.fault).toEqual(want);
    expect(r.warnings).toEqual(warnings);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['an empty fault', {}, 'InvalidSpec spec.http[0].fault: one of delay or abort is required'],
    ['a delay without fixedDelay', { delay: { percentage: { value: 5 } } }, 'InvalidSpec spec.http[0].fault.delay.fixedDelay: required'],
    ['a bad fixedDelay', { delay: { fixedDelay: 'later' } }, 'InvalidDuration spec.http[0].fault.delay.fixedDelay: "later" is not a duration (e.g. "1.5s")'],
    ['a percentage over 100', { delay: { fixedDelay: '1s', percentage: { value: 150 } } }, 'InvalidSpec spec.http[0].fault.delay.percentage.value: 150 is not a percentage (0-100)'],
    ['a fractional old percent', { abort: { httpStatus: 500, percent: 2.5 } }, 'InvalidSpec spec.http[0].fault.abort.percent: 2.5 is not an integer percentage (0-100)'],
    ['an abort status outside 200-599', { abort: { httpStatus: 600 } }, 'InvalidSpec spec.http[0].fault.abort.httpStatus: 600 is not an HTTP status (200-599)'],
    ['an abort status of 100', { abort: { httpStatus: 100 } }, 'InvalidSpec spec.http[0].fault.abort.httpStatus: 100 is not an HTTP status (200-599)'],
    ['an unknown gRPC status', { abort: { grpcStatus: 'BROKEN' } }, 'InvalidSpec spec.http[0].fault.abort.grpcStatus: "BROKEN" is not a gRPC status (e.g. UNAVAILABLE)'],
    ['an abort without a status', { abort: { percentage: { value: 1 } } }, 'InvalidSpec spec.http[0].fault.abort: one of httpStatus, grpcStatus is required'],
    ['two statuses', { abort: { httpStatus: 500, grpcStatus: 'INTERNAL' } }, 'InvalidSpec spec.http[0].fault.abort: set only one of httpStatus, grpcStatus, http2Error (got httpStatus, grpcStatus)'],
  ])('rejects %s', (_what, fault, message) => expect(rule({ fault, route: [to()] }).issues).toEqual([message]));
});

const CANARY = { hosts: ['backend'], http: [{ match: [{ headers: { 'user-group': { exact: 'beta-tester' } } }], route: [to('backend', 'v2')] }, { route: [to('backend', 'v1')] }] };
