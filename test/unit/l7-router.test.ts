import { describe, expect, it } from 'vitest';
import type { HttpRoute, RequestMatch, WaypointConfig, WaypointPort } from '../../src/l7/config.js';
import { authorityHost, buildRouteTable, lookupPort, pickWeightedIndex, routeRequest, routeTableFor, splitTarget, type RouteRequest } from '../../src/l7/router.js';

const fwd = (cluster: string): HttpRoute['action'] => ({ kind: 'forward', backends: [{ cluster, weight: 1 }] });
const route = (name: string, matches: RequestMatch[], extra: Partial<HttpRoute> = {}): HttpRoute => ({ name, matches, action: fwd(name), ...extra });

function config(routes: HttpRoute[], port: Partial<WaypointPort> = {}): WaypointConfig {
  return {
    namespace: 'demo',
    name: 'waypoint',
    identity: 'spiffe://cluster.local/ns/demo/sa/waypoint',
    services: [{ key: 'demo/backend.demo.svc.cluster.local', namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', addresses: ['10.96.0.10', 'fd00::10'], ports: [{ port: 80, protocol: 'HTTP', routes, defaultCluster: 'default', ...port }] }],
    clusters: [],
  };
}

const req = (over: Partial<RouteRequest> = {}): RouteRequest => ({ method: 'GET', path: '/', query: '', headers: {}, authority: 'backend.demo.svc.cluster.local:80', ...over });
const first = (): number => 0;

function decide(routes: HttpRoute[], r: Partial<RouteRequest>, random: () => number = first, defaultCluster = '') {
  const table = buildRouteTable(config(routes, { defaultCluster }));
  const port = lookupPort(table, '10.96.0.10', 80);
  if (!port) throw new Error('no port');
  return routeRequest(port, req(r), random);
}

describe('route matching (first match wins)', () => {
  const routes: HttpRoute[] = [
    route('exact', [{ path: { kind: 'exact', value: '/exact' } }]),
    route('prefix', [{ path: { kind: 'prefix', value: '/api/' } }]),
    route('regex', [{ path: { kind: 'regex', value: '/items/[0-9]+' } }]),
    route('method', [{ method: 'post', path: { kind: 'prefix', value: '/m' } }]),
    route('header-exact', [{ headers: [{ name: 'User-Group', match: { kind: 'exact', value: 'beta-tester' } }] }]),
    route('header-present', [{ headers: [{ name: 'x-debug' }] }]),
    route('header-inverted', [{ path: { kind: 'prefix', value: '/inv' }, headers: [{ name: 'x-canary', invert: true }] }]),
    route('query', [{ queryParams: [{ name: 'version', match: { kind: 'exact', value: '2' } }] }]),
    route('query-present', [{ queryParams: [{ name: 'flag' }] }]),
    route('authority', [{ authority: { kind: 'prefix', value: 'admin.' } }]),
    route('or', [{ path: { kind: 'exact', value: '/a' } }, { path: { kind: 'exact', value: '/b' } }]),
    route('two-fields', [{ path: { kind: 'prefix', value: '/both' }, headers: [{ name: 'x-a', match: { kind: 'regex', value: 'on|yes' } }] }]),
  ];
  it.each<[string, Partial<RouteRequest>, string]>([
    ['exact path', { path: '/exact' }, 'exact'],
    ['exact is not prefix', { path: '/exact/more' }, 'no-route'],
    ['prefix', { path: '/api/v1' }, 'prefix'],
    ['regex must match the whole path', { path: '/items/42' }, 'regex'],
    ['regex partial does not match', { path: '/items/42/x' }, 'no-route'],
    ['method (case-insensitive config)', { method: 'POST', path: '/mine' }, 'method'],
    ['method mismatch', { method: 'GET', path: '/mine' }, 'no-route'],
    ['header exact (config name case-insensitive)', { headers: { 'user-group': 'beta-tester' } }, 'header-exact'],
    ['header value mismatch', { headers: { 'user-group': 'alpha' } }, 'no-route'],
    ['header present, any value', { headers: { 'x-debug': '' } }, 'header-present'],
    ['inverted header: absent matches', { path: '/inv' }, 'header-inverted'],
    ['inverted header: present does not', { path: '/inv', headers: { 'x-canary': '1' } }, 'no-route'],
    ['query param', { query: 'a=1&version=2' }, 'query'],
    ['query param value mismatch', { query: 'version=3' }, 'no-route'],
    ['query param present', { query: 'flag' }, 'query-present'],
    ['authority without port, case-insensitive', { authority: 'Admin.example.com:8080' }, 'authority'],
    ['OR of matches (second)', { path: '/b' }, 'or'],
    ['AND within a match', { path: '/both', headers: { 'x-a': 'yes' } }, 'two-fields'],
    ['AND within a match, one fails', { path: '/both', headers: { 'x-a': 'maybe' } }, 'no-route'],
    ['multi-valued header joined', { path: '/both', headers: { 'x-a': ['on'] } }, 'two-fields'],
  ])('%s', (_name, r, expected) => {
    const d = decide(routes, r);
    expect(d.kind === 'no-route' ? 'no-route' : (d as { route: string }).route).toBe(expected);
  });

  it('the first matching route wins even when a later one is more specific', () => {
    const d = decide([route('catch-all', []), route('specific', [{ path: { kind: 'exact', value: '/x' } }])], { path: '/x' });
    expect(d).toMatchObject({ kind: 'forward', route: 'catch-all' });
  });

  it('unmatched requests (a port without routes too) go to the default cluster; without one, no-route', () => {
    expect(decide([], { path: '/anything', query: 'a=1' }, first, 'default')).toMatchObject({ kind: 'forward', route: 'default', cluster: 'default', path: '/anything?a=1', requestHeaders: [], mirrors: [] });
    expect(decide([route('only', [{ path: { kind: 'exact', value: '/only' } }])], { path: '/other' }, first, 'default')).toMatchObject({ kind: 'forward', route: 'default', cluster: 'default' });
    expect(decide([route('only', [{ path: { kind: 'exact', value: '/only' } }])], { path: '/other' })).toEqual({ kind: 'no-route' });
    expect(decide([], {})).toEqual({ kind: 'no-route' });
  });

  it('is served for every VIP of the service, IPv6 included', () => {
    const table = buildRouteTable(config([]));
    const served = [...table.byPort].flatMap(([port, byVip]) => [...byVip.keys()].map((vip) => `${vip}:${port}`));
    expect(served.sort()).toEqual(['10.96.0.10:80', 'fd00::10:80']);
  });

  it('lookupPort finds the service of a VIP and port, and the later service wins a shared VIP port', () => {
    const c = config([]);
    const other = { ...c.services[0]!, key: 'demo/other.demo.svc.cluster.local', hostname: 'other.demo.svc.cluster.local', addresses: ['10.96.0.10', '10.96.0.11'], ports: [{ port: 80, protocol: 'HTTP' as const, routes: [], defaultCluster: 'other' }, { port: 8080, protocol: 'HTTP' as const, routes: [], defaultCluster: 'other' }] };
    const table = buildRouteTable({ ...c, services: [...c.services, other] });
    const expected: Array<[string, number, string | undefined]> = [
      ['10.96.0.10', 80, 'demo/other.demo.svc.cluster.local'],
      ['10.96.0.11', 80, 'demo/other.demo.svc.cluster.local'],
      ['10.96.0.11', 8080, 'demo/other.demo.svc.cluster.local'],
      ['10.96.0.10', 8080, 'demo/other.demo.svc.cluster.local'],
      ['fd00::10', 80, 'demo/backend.demo.svc.cluster.local'],
      ['fd00::10', 8080, undefined],
      ['fd00::', 1080, undefined],
      ['10.96.0.1', 80, undefined],
      ['', 80, undefined],
    ];
    for (const [vip, port, service] of expected) expect(lookupPort(table, vip, port)?.service.key, `${vip}:${port}`).toBe(service);
  });
});

describe('actions', () => {
  it('forward: rewrite (prefix, host), mutations in order route then backend, mirrors, timeout', () => {
    const r: HttpRoute = {
      name: 'r',
      matches: [{ path: { kind: 'prefix', value: '/old/' } }],
      rewrite: { hostname: 'new.example', path: { kind: 'prefix', value: '/new/' } },
      requestHeaders: { set: { a: '1' } },
      responseHeaders: { add: { b: '2' } },
      mirrors: [{ cluster: 'shadow', percent: 10 }],
      timeoutMs: 1500,
      action: { kind: 'forward', backends: [{ cluster: 'c', weight: 1, requestHeaders: { set: { a: 'backend' } }, responseHeaders: { remove: ['b'] } }] },
    };
    expect(decide([r], { path: '/old/items', query: 'x=1' })).toEqual({
      kind: 'forward',
      route: 'r',
      backend: r.action.kind === 'forward' ? r.action.backends[0] : undefined,
      cluster: 'c',
      path: '/new/items?x=1',
      authority: 'new.example',
      requestHeaders: [{ set: { a: '1' } }, { set: { a: 'backend' } }],
      responseHeaders: [{ add: { b: '2' } }, { remove: ['b'] }],
      mirrors: [{ cluster: 'shadow', percent: 10 }],
      timeoutMs: 1500,
    });
  });

  it('full path rewrite keeps the query; exact match prefix rewrite replaces the whole path', () => {
    expect(decide([route('f', [], { rewrite: { path: { kind: 'full', value: '/fixed' } } })], { path: '/a/b', query: 'q=1' })).toMatchObject({ path: '/fixed?q=1', authority: 'backend.demo.svc.cluster.local:80' });
    expect(decide([route('e', [{ path: { kind: 'exact', value: '/a' } }], { rewrite: { path: { kind: 'prefix', value: '/b' } } })], { path: '/a' })).toMatchObject({ path: '/b' });
  });

  it('redirect and direct response carry the matched prefix and response headers', () => {
    expect(decide([route('redir', [{ path: { kind: 'prefix', value: '/v1' } }], { action: { kind: 'redirect', redirect: { statusCode: 308, path: { kind: 'prefix', value: '/v2' } } }, responseHeaders: { set: { x: 'y' } } })], { path: '/v1/a' })).toEqual({
      kind: 'redirect',
      route: 'redir',
      redirect: { statusCode: 308, path: { kind: 'prefix', value: '/v2' } },
      matchedPrefix: '/v1',
      responseHeaders: [{ set: { x: 'y' } }],
    });
    expect(decide([route('dr', [], { action: { kind: 'direct-response', status: 418, body: 'teapot' } })], {})).toEqual({ kind: 'direct-response', route: 'dr', status: 418, body: 'teapot', responseHeaders: [] });
  });

  it('weighted backends: drawn by random over the weights; weight 0 never; all zero = no-backend', () => {
    const split: HttpRoute = { name: 's', matches: [], action: { kind: 'forward', backends: [{ cluster: 'v1', weight: 90 }, { cluster: 'zero', weight: 0 }, { cluster: 'v2', weight: 10 }] } };
    expect(decide([split], {}, () => 0)).toMatchObject({ cluster: 'v1' });
    expect(decide([split], {}, () => 0.8999)).toMatchObject({ cluster: 'v1' });
    expect(decide([split], {}, () => 0.9)).toMatchObject({ cluster: 'v2' });
    expect(decide([split], {}, () => 0.999999999)).toMatchObject({ cluster: 'v2' });
    expect(decide([{ ...split, action: { kind: 'forward', backends: [{ cluster: 'a', weight: 0 }] } }], {})).toEqual({ kind: 'no-backend', route: 's' });
  });
});

describe('building the table', () => {
  it('refuses an invalid regex naming the field, and a negative weight', () => {
    expect(() => buildRouteTable(config([route('bad', [{ headers: [{ name: 'x', match: { kind: 'regex', value: '(' } }] }])]))).toThrow(/^services\[0\]\.ports\[0\]\.routes\[0\]\.matches\[0\]\.headers\[0\]: invalid regex "\("/);
    expect(() => buildRouteTable(config([{ name: 'w', matches: [], action: { kind: 'forward', backends: [{ cluster: 'a', weight: -1 }] } }]))).toThrow(/routes\[0\]\.action\.backends\[0\]\.weight/);
  });

  it('is compiled once per config object', () => {
    const c = config([]);
    expect(routeTableFor(c)).toBe(routeTableFor(c));
    expect(routeTableFor(config([]))).not.toBe(routeTableFor(c));
  });
});

describe('helpers', () => {
  it.each([
    ['a.example:80', 'a.example'],
    ['A.Example', 'a.example'],
    ['[fd00::1]:8080', '[fd00::1]'],
    ['10.0.0.1:80', '10.0.0.1'],
  ])('authorityHost(%s) = %s', (a, host) => expect(authorityHost(a)).toBe(host));

  it.each([
    ['/a?b=c', { path: '/a', query: 'b=c' }],
    ['/a', { path: '/a', query: '' }],
    ['?x', { path: '/', query: 'x' }],
    ['', { path: '/', query: '' }],
  ])('splitTarget(%s)', (t, out) => expect(splitTarget(t)).toEqual(out));

  it('pickWeightedIndex', () => {
    expect(pickWeightedIndex([1, 1, 3], 3, () => 0.5)).toBe(2);
    expect(pickWeightedIndex([], 0, () => 0.5)).toBe(-1);
  });
});
