import { describe, expect, it } from 'vitest';
import { buildBaggage, buildForwarded, formatAuthority, newTraceparent, parseAuthority, parseBaggage, parseForwardedFor, parseTraceparent } from '../../src/hbone/headers.js';

describe(':authority', () => {
  const round: Array<[string, number, string]> = [
    ['10.0.0.1', 8080, '10.0.0.1:8080'],
    ['::1', 443, '[::1]:443'],
    ['fd00:10:244::5', 9080, '[fd00:10:244::5]:9080'],
    ['reviews.default.svc.cluster.local', 9080, 'reviews.default.svc.cluster.local:9080'],
  ];
  for (const [host, port, text] of round) {
    it(`formats and parses ${text}`, () => {
      expect(formatAuthority(host, port)).toBe(text);
      expect(parseAuthority(text)).toEqual({ host, port });
    });
  }
  const bad = ['', 'garbage', '10.0.0.1', '10.0.0.1:', ':80', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:-1', '10.0.0.1:8o', '10.0.0.1:080x', '::1:80', '[::1]', '[::1]80', '[10.0.0.1]:80', '[::1]:', '[zz::1]:80', 'a b:80', 'host_name:80', '10.0.0.256:80', '1.2.3:80', 'http://x:80', 'x:80/path'];
  for (const s of bad) it(`rejects ${JSON.stringify(s)}`, () => expect(parseAuthority(s)).toBeNull());
  it('rejects non-strings', () => {
    expect(parseAuthority(undefined)).toBeNull();
    expect(parseAuthority(null)).toBeNull();
  });
});

describe('forwarded', () => {
  it('builds Istio\'s shape', () => {
    expect(buildForwarded({ clientAddress: '10.244.1.5', clientPort: 43210 })).toBe('for="10.244.1.5:43210"');
    expect(buildForwarded({ clientAddress: '::1', clientPort: 1234 })).toBe('for="[::1]:1234"');
    expect(buildForwarded({ clientAddress: '10.0.0.1', clientPort: 1, host: 'reviews.default.svc.cluster.local' })).toBe('for="10.0.0.1:1";host=reviews.default.svc.cluster.local');
    expect(buildForwarded({ clientAddress: '10.0.0.1', clientPort: 1, host: 'a b' })).toBe('for="10.0.0.1:1";host="a b"');
  });
  const table: Array<[string, { address: string; port: number } | null]> = [
    ['for="10.244.1.5:43210"', { address: '10.244.1.5', port: 43210 }],
    ['for="[::1]:1234"', { address: '::1', port: 1234 }],
    ['for="[fd00::5]"', { address: 'fd00::5', port: 0 }],
    ['for=10.0.0.1', { address: '10.0.0.1', port: 0 }],
    ['for="10.0.0.1:80";host=x.svc', { address: '10.0.0.1', port: 80 }],
    ['host=x.svc;for="10.0.0.1:80"', { address: '10.0.0.1', port: 80 }],
    ['For="10.0.0.1:80"', { address: '10.0.0.1', port: 80 }],
    ['for="10.0.0.1:80", for="10.0.0.2:81"', { address: '10.0.0.1', port: 80 }],
    ['for=unknown', null],
    ['for="_hidden"', null],
    ['for="[::1"', null],
    ['for="::1:80"', null],
    ['for="10.0.0.1:99999"', null],
    ['for="10.0.0.1:80', null],
    ['host=x', null],
    ['garbage', null],
    ['', null],
  ];
  for (const [value, want] of table) it(`parses ${JSON.stringify(value)}`, () => expect(parseForwardedFor(value)).toEqual(want));
  it('round-trips', () => {
    for (const [a, p] of [['10.1.2.3', 5], ['fd00::1', 65535]] as const) {
      expect(parseForwardedFor(buildForwarded({ clientAddress: a, clientPort: p, host: 'h.svc' }))).toEqual({ address: a, port: p });
    }
  });
});

describe('traceparent', () => {
  it('creates valid, distinct, unsampled ids', () => {
    const a = newTraceparent();
    expect(a).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(newTraceparent()).not.toBe(a);
    expect(parseTraceparent(a)).toEqual({ version: '00', traceId: a.slice(3, 35), spanId: a.slice(36, 52), flags: '00' });
  });
  it('stays well formed and distinct across refills of its random pool (4 KiB: 170 ids each)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceparent();
      expect(t).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      seen.add(t.slice(3, 35));
      seen.add(t.slice(36, 52));
    }
    expect(seen.size).toBe(2000);
  });
  const bad = ['', '00-00000000000000000000000000000000-0000000000000001-00', '00-0000000000000000000000000000000a-0000000000000000-00', 'ff-0000000000000000000000000000000a-0000000000000001-00', '00-0000000000000000000000000000000A-0000000000000001-00', '00-abc-def-00', '00-0000000000000000000000000000000a-0000000000000001-00-extra'];
  for (const v of bad) it(`rejects ${JSON.stringify(v)}`, () => expect(parseTraceparent(v)).toBeNull());
  it('accepts future versions with a suffix', () => {
    expect(parseTraceparent('01-0000000000000000000000000000000a-0000000000000001-01-what')?.version).toBe('01');
  });
});

describe('baggage', () => {
  it('builds the Istio keys', () => {
    const b = buildBaggage({ cluster: 'Kubernetes', namespace: 'default', workloadType: 'deployment', workloadName: 'productpage-v1', service: 'productpage', version: 'v1' });
    expect(b).toBe('k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1');
    expect(Object.fromEntries(parseBaggage(b))).toEqual({
      'k8s.cluster.name': 'Kubernetes',
      'k8s.namespace.name': 'default',
      'k8s.deployment.name': 'productpage-v1',
      'service.name': 'productpage',
      'service.version': 'v1',
    });
  });
  it('encodes unsafe values and ignores garbage members', () => {
    const b = buildBaggage({ cluster: 'a,b', namespace: 'n', workloadType: 'Pod', workloadName: 'p', service: 's', version: 'v 1' });
    expect(b).toContain('k8s.pod.name=p');
    expect(parseBaggage(b).get('k8s.cluster.name')).toBe('a,b');
    expect(parseBaggage(b).get('service.version')).toBe('v 1');
    expect([...parseBaggage('=x,novalue,k=%zz,ok=1;prop=2').entries()]).toEqual([['ok', '1']]);
  });
});
