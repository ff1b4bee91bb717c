import { describe, expect, it } from 'vitest';
import { addForwardingHeaders } from '../../src/l7/filters/forwarding.js';
import { applyHeaderMutation, applyHeaderMutations, type MutableHeaders } from '../../src/l7/filters/header-mutation.js';
import { isUpgradeRequest, stripHopByHop } from '../../src/l7/filters/hop-by-hop.js';
import { MirrorBudget, shadowAuthority, shouldMirror } from '../../src/l7/filters/mirror.js';
import { buildRedirect, type RedirectRequest } from '../../src/l7/filters/redirect.js';
import { rewritePath } from '../../src/l7/filters/url-rewrite.js';

describe('header mutation', () => {
  it.each<[string, MutableHeaders, Parameters<typeof applyHeaderMutation>[1], MutableHeaders]>([
    ['set replaces', { a: '1' }, { set: { A: '2' } }, { a: '2' }],
    ['set adds when absent', {}, { set: { b: 'x' } }, { b: 'x' }],
    ['add appends to a value', { a: '1' }, { add: { a: '2' } }, { a: ['1', '2'] }],
    ['add appends to a list', { a: ['1', '2'] }, { add: { a: '3' } }, { a: ['1', '2', '3'] }],
    ['add creates', {}, { add: { a: '1' } }, { a: '1' }],
    ['remove', { a: '1', b: '2' }, { remove: ['A'] }, { b: '2' }],
    ['order: set, add, remove', { a: '0' }, { set: { a: '1' }, add: { a: '2' }, remove: ['a'] }, {}],
    ['pseudo headers are never touched', { ':path': '/' }, { set: { ':path': '/x' }, remove: [':path'] }, { ':path': '/' }],
  ])('%s', (_n, headers, m, expected) => {
    applyHeaderMutation(headers, m);
    expect(headers).toEqual(expected);
  });

  it('applies a list in order', () => {
    const h: MutableHeaders = {};
    applyHeaderMutations(h, [{ set: { a: 'route' } }, { set: { a: 'backend' } }]);
    expect(h).toEqual({ a: 'backend' });
  });
});

describe('hop-by-hop hygiene', () => {
  it.each<[string, MutableHeaders, boolean, MutableHeaders]>([
    ['the standard list', { connection: 'keep-alive', 'keep-alive': 'timeout=5', 'proxy-connection': 'x', 'proxy-authorization': 'y', 'proxy-authenticate': 'z', trailer: 'x', 'transfer-encoding': 'chunked', upgrade: 'websocket', te: 'gzip', host: 'h' }, false, { host: 'h' }],
    ['headers named by Connection', { connection: 'close, X-Custom', 'x-custom': '1', 'x-other': '2' }, false, { 'x-other': '2' }],
    ['te: trailers survives (gRPC)', { te: 'trailers' }, false, { te: 'trailers' }],
    ['te: gzip, trailers keeps trailers only', { te: 'gzip, trailers' }, false, { te: 'trailers' }],
    ['an upgrade being proxied keeps Connection: upgrade and Upgrade', { connection: 'Upgrade, x-a', upgrade: 'websocket', 'x-a': '1', 'keep-alive': '1' }, true, { connection: 'upgrade', upgrade: 'websocket' }],
  ])('%s', (_n, headers, upgrade, expected) => {
    stripHopByHop(headers, { upgrade });
    expect(headers).toEqual(expected);
  });

  it.each<[MutableHeaders, boolean]>([
    [{ connection: 'Upgrade', upgrade: 'websocket' }, true],
    [{ connection: 'keep-alive, upgrade', upgrade: 'h2c' }, true],
    [{ upgrade: 'websocket' }, false],
    [{ connection: 'upgrade' }, false],
  ])('isUpgradeRequest(%j) = %s', (h, expected) => expect(isUpgradeRequest(h)).toBe(expected));
});

describe('forwarding headers', () => {
  it.each<[string, MutableHeaders, string, MutableHeaders]>([
    ['fresh request', {}, '10.0.0.7', { 'x-forwarded-for': '10.0.0.7', forwarded: 'for=10.0.0.7;proto=http', 'x-forwarded-proto': 'http', 'x-request-id': 'id-1' }],
    ['appends to existing XFF and Forwarded', { 'x-forwarded-for': '1.1.1.1', forwarded: 'for=1.1.1.1', 'x-forwarded-proto': 'https', 'x-request-id': 'keep' }, '10.0.0.7', { 'x-forwarded-for': '1.1.1.1, 10.0.0.7', forwarded: 'for=1.1.1.1, for=10.0.0.7;proto=http', 'x-forwarded-proto': 'https', 'x-request-id': 'keep' }],
    ['IPv6 client is quoted in Forwarded', {}, 'fd00::7', { 'x-forwarded-for': 'fd00::7', forwarded: 'for="[fd00::7]";proto=http', 'x-forwarded-proto': 'http', 'x-request-id': 'id-1' }],
    ['no client address: only proto and id', {}, '', { 'x-forwarded-proto': 'http', 'x-request-id': 'id-1' }],
  ])('%s', (_n, headers, client, expected) => {
    const id = addForwardingHeaders(headers, { clientAddress: client, proto: 'http', newRequestId: () => 'id-1' });
    expect(headers).toEqual(expected);
    expect(id).toBe(expected['x-request-id']);
  });
});

describe('URL rewrite', () => {
  it.each<[string, string, { kind: 'full' | 'prefix'; value: string }, string]>([
    ['/foo/bar', '/foo', { kind: 'prefix', value: '/baz' }, '/baz/bar'],
    ['/foo/bar', '/foo', { kind: 'prefix', value: '/' }, '/bar'],
    ['/foo', '/foo', { kind: 'prefix', value: '/' }, '/'],
    ['/foo/bar', '/foo/', { kind: 'prefix', value: '/baz' }, '/baz/bar'],
    ['/foo/bar', '/foo/', { kind: 'prefix', value: '/baz/' }, '/baz/bar'],
    ['/ratings/1', '/ratings', { kind: 'prefix', value: '/v1/bookRatings' }, '/v1/bookRatings/1'],
    ['/x', '/', { kind: 'prefix', value: '/v1' }, '/v1/x'],
    ['/anything/here', '/anything/here', { kind: 'full', value: '/fixed' }, '/fixed'],
    ['/a', '/a', { kind: 'full', value: '' }, '/'],
  ])('%s (matched %s) with %j → %s', (path, prefix, rewrite, expected) => expect(rewritePath(path, prefix, rewrite)).toBe(expected));
});

describe('redirect', () => {
  const base: RedirectRequest = { scheme: 'http', authority: 'backend.demo:8080', path: '/old/page', query: 'a=1' };
  it.each<[string, Partial<RedirectRequest>, Parameters<typeof buildRedirect>[1], string, { status: number; location: string }]>([
    ['defaults: 301, same URL parts', {}, { statusCode: 301 }, '/', { status: 301, location: 'http://backend.demo:8080/old/page?a=1' }],
    ['full path + 302', {}, { statusCode: 302, path: { kind: 'full', value: '/new' } }, '/', { status: 302, location: 'http://backend.demo:8080/new?a=1' }],
    ['prefix replacement', {}, { statusCode: 307, path: { kind: 'prefix', value: '/fresh' } }, '/old', { status: 307, location: 'http://backend.demo:8080/fresh/page?a=1' }],
    ['scheme change drops the port (scheme default)', {}, { statusCode: 301, scheme: 'https' }, '/', { status: 301, location: 'https://backend.demo/old/page?a=1' }],
    ['explicit port', {}, { statusCode: 301, scheme: 'https', port: 8443 }, '/', { status: 301, location: 'https://backend.demo:8443/old/page?a=1' }],
    ['default port omitted', {}, { statusCode: 301, port: 80 }, '/', { status: 301, location: 'http://backend.demo/old/page?a=1' }],
    ['hostname, request without port, no query', { authority: 'a.example', query: '' }, { statusCode: 308, hostname: 'b.example' }, '/', { status: 308, location: 'http://b.example/old/page' }],
    ['bogus status becomes 301', {}, { statusCode: 200 }, '/', { status: 301, location: 'http://backend.demo:8080/old/page?a=1' }],
    ['IPv6 authority', { authority: '[fd00::1]:8080' }, { statusCode: 301 }, '/', { status: 301, location: 'http://[fd00::1]:8080/old/page?a=1' }],
  ])('%s', (_n, req, redirect, prefix, expected) => expect(buildRedirect({ ...base, ...req }, redirect, prefix)).toEqual(expected));
});

describe('mirror', () => {
  it.each<[number | undefined, number, boolean]>([
    [undefined, 0.99, true],
    [100, 0.99, true],
    [0, 0, false],
    [10, 0.0999, true],
    [10, 0.1, false],
    [50, 0.49, true],
  ])('percent %s with random %d → %s', (p, r, expected) => expect(shouldMirror(p, () => r)).toBe(expected));

  it.each([
    ['backend.demo:80', 'backend.demo-shadow:80'],
    ['backend.demo', 'backend.demo-shadow'],
    ['[fd00::1]:80', '[fd00::1]-shadow:80'],
  ])('shadow authority of %s', (a, expected) => expect(shadowAuthority(a)).toBe(expected));

  it('is bounded: beyond maxInFlight mirrors are skipped and counted', () => {
    const budget = new MirrorBudget({ maxInFlight: 2, maxBufferedBytes: 1 });
    expect([budget.tryAcquire(), budget.tryAcquire(), budget.tryAcquire()]).toEqual([true, true, false]);
    budget.release();
    expect(budget.tryAcquire()).toBe(true);
    expect(budget.stats()).toEqual({ inFlight: 2, sent: 3, skipped: 1 });
  });
});
