// Host name patterns and SNI certificate selection of the ingress gateway (pure), and the
// listener plan's TLS contexts: most specific certificate per SNI, no SNI / no match → the first,
// a certificate Node refuses left out with its reason, contexts reused by content across configs.
import { describe, expect, it } from 'vitest';
import { buildListenerPlan, l4RouteFor, pickL4Backend, SecureContextCache } from '../../src/gateway/listener-plan.js';
import { firstMatching, hostnamesScore, patternScore, selectBySni } from '../../src/gateway/sni-match.js';
import type { GatewayCertificate, GatewayListener } from '../../src/l7/config.js';
import { createServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';

describe('host name patterns', () => {
  it.each<[string, string, boolean]>([
    ['a.example.com', 'a.example.com', true],
    ['A.Example.com', 'a.example.com', true],
    ['a.example.com', 'b.example.com', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'x.y.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'badexample.com', false],
    ['*', 'anything.at.all', true],
  ])('%s matches %s: %s', (pattern, host, matches) => expect(patternScore(pattern, host) >= 0).toBe(matches));

  it('exact beats the longest wildcard, which beats a shorter one and `*`', () => {
    const host = 'api.shop.example.com';
    const scores = ['api.shop.example.com', '*.shop.example.com', '*.example.com', '*'].map((p) => patternScore(p, host));
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(new Set(scores).size).toBe(4);
  });

  it('no patterns match anything; without an SNI only `*` or no patterns match', () => {
    expect(hostnamesScore([], 'x')).toBe(0);
    expect(hostnamesScore(undefined, undefined)).toBe(0);
    expect(hostnamesScore(['a.example.com'], undefined)).toBe(-1);
    expect(hostnamesScore(['a.example.com', '*'], undefined)).toBe(0);
  });

  const certs = [
    { name: 'default', hostnames: ['*.example.com'] },
    { name: 'shop', hostnames: ['*.shop.example.com'] },
    { name: 'api', hostnames: ['other.example.org', 'api.shop.example.com'] },
    { name: 'any', hostnames: [] },
  ];
  it.each<[string | undefined, string]>([
    ['api.shop.example.com', 'api'],
    ['API.SHOP.EXAMPLE.COM', 'api'],
    ['www.shop.example.com', 'shop'],
    ['www.example.com', 'default'],
    ['www.example.net', 'any'],
    [undefined, 'default'],
  ])('SNI %s → certificate %s', (sni, name) => expect(selectBySni(certs, (c) => c.hostnames, sni)?.name).toBe(name));

  it('no match at all → the first; ties → the earlier', () => {
    const two = [
      { name: 'a', hostnames: ['a.example.com'] },
      { name: 'b', hostnames: ['b.example.com'] },
    ];
    expect(selectBySni(two, (c) => c.hostnames, 'c.example.com')?.name).toBe('a');
    const tie = [
      { name: 'first', hostnames: ['*.example.com'] },
      { name: 'second', hostnames: ['*.example.com'] },
    ];
    expect(selectBySni(tie, (c) => c.hostnames, 'x.example.com')?.name).toBe('first');
  });

  it('L4 routes: the first match wins, in config order', () => {
    const routes = [
      { name: 'wild', hostnames: ['*.pass.example'] },
      { name: 'exact', hostnames: ['one.pass.example'] },
      { name: 'rest', hostnames: undefined },
    ];
    expect(firstMatching(routes, (r) => r.hostnames, 'one.pass.example')?.name).toBe('wild');
    expect(firstMatching(routes, (r) => r.hostnames, 'other.example')?.name).toBe('rest');
    expect(firstMatching(routes, (r) => r.hostnames, undefined)?.name).toBe('rest');
  });
});

describe('listener plan', () => {
  it('prebuilds contexts, selects them by SNI, leaves a bad certificate out, and reuses contexts by content', async () => {
    const [a, b] = await Promise.all([createServingCertificates({ dnsNames: ['a.example.com'], ipAddresses: [] }), createServingCertificates({ dnsNames: ['*.b.example.com'], ipAddresses: [] })]);
    const cert = (name: string, pem: { certPem: string; keyPem: string }, hostnames: string[]): GatewayCertificate => ({ name, hostnames, certChain: pem.certPem, privateKey: pem.keyPem });
    const broken: GatewayCertificate = { name: 'demo/broken', hostnames: ['c.example.com'], certChain: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n', privateKey: 'nope' };
    const listeners: GatewayListener[] = [{ name: 'https', port: 443, protocol: 'HTTPS', certificates: [cert('demo/a', a, ['a.example.com']), broken, cert('demo/b', b, ['*.b.example.com'])] }];
    const cache = new SecureContextCache();
    const plan = buildListenerPlan(listeners, cache);
    const https = plan.byPort.get(443)?.tls;
    expect(https?.certificates.map((c) => c.certificate.name)).toEqual(['demo/a', 'demo/b']);
    expect(https?.errors).toEqual([expect.stringMatching(/^demo\/broken: /)]);
    const [ctxA, ctxB] = https?.certificates.map((c) => c.context) ?? [];
    expect(https?.contextFor('x.b.example.com')).toBe(ctxB);
    expect(https?.contextFor('a.example.com')).toBe(ctxA);
    expect(https?.contextFor(undefined)).toBe(ctxA);
    expect(https?.contextFor('c.example.com')).toBe(ctxA);
    expect(cache.size).toBe(2);

    // The same PEMs in a new config: the same contexts; a removed certificate's context is dropped.
    const again = buildListenerPlan([{ ...listeners[0]!, certificates: [cert('demo/a-renamed', a, ['a.example.com'])] }], cache);
    cache.retain(again);
    expect(again.byPort.get(443)?.tls?.contextFor('a.example.com')).toBe(ctxA);
    expect(cache.size).toBe(1);
  });

  it('TCP takes the first route; TLS the first matching one; weights pick backends', () => {
    const plan = buildListenerPlan(
      [
        { name: 'tcp', port: 9000, protocol: 'TCP', l4Routes: [{ name: 'r0', hostnames: ['ignored.example'], backends: [{ cluster: 'c0', weight: 1 }] }, { name: 'r1', backends: [{ cluster: 'c1', weight: 1 }] }] },
        { name: 'tls', port: 8443, protocol: 'TLS', l4Routes: [{ name: 't0', hostnames: ['a.example'], backends: [{ cluster: 'zero', weight: 0 }, { cluster: 'a', weight: 3 }] }] },
      ],
      new SecureContextCache(),
    );
    const tcp = plan.byPort.get(9000)!;
    const tlsListener = plan.byPort.get(8443)!;
    expect(l4RouteFor(tcp, undefined)?.route.name).toBe('r0');
    expect(l4RouteFor(tlsListener, 'a.example')?.route.name).toBe('t0');
    expect(l4RouteFor(tlsListener, 'b.example')).toBeUndefined();
    expect(l4RouteFor(tlsListener, undefined)).toBeUndefined();
    const route = l4RouteFor(tlsListener, 'a.example')!;
    for (const r of [0, 0.5, 0.999]) expect(pickL4Backend(route, () => r)?.cluster).toBe('a');
  });
});
