/**
 * Host patterns at the ingress: intersection (listener/server ∩ route hosts), Envoy's
 * virtual-host order, and the authority match (with an existing match ANDed in), checked by
 * compiling the result with the router's own rules.
 */
import { describe, expect, it } from 'vitest';
import { authorityFor, compareHostSpecificity, intersectHosts, patternCovers, restrictAuthority } from '../../src/controller/translate/ingress-hosts.js';
import type { StringMatch } from '../../src/l7/config.js';

describe('intersectHosts', () => {
  it.each([
    ['*', 'a.example.com', 'a.example.com'],
    ['a.example.com', '*', 'a.example.com'],
    ['*', '*', '*'],
    ['a.example.com', 'a.example.com', 'a.example.com'],
    ['a.example.com', 'b.example.com', undefined],
    ['*.example.com', 'a.example.com', 'a.example.com'],
    ['*.example.com', 'a.b.example.com', 'a.b.example.com'],
    ['*.example.com', 'example.com', undefined],
    ['foo.example.com', '*.example.com', 'foo.example.com'],
    ['*.example.com', '*.b.example.com', '*.b.example.com'],
    ['*.b.example.com', '*.example.com', '*.b.example.com'],
    ['*.a.com', '*.b.com', undefined],
  ])('%s ∩ %s = %s', (a, b, expected) => {
    expect(intersectHosts(a, b)).toBe(expected);
  });

  it('a wildcard never covers its bare suffix', () => {
    expect(patternCovers('*.example.com', 'example.com')).toBe(false);
    expect(patternCovers('*.example.com', 'x.example.com')).toBe(true);
  });
});

describe('compareHostSpecificity', () => {
  it('exact hosts first, then longer wildcard suffixes, then *', () => {
    expect(['*', '*.example.com', 'b.example.com', '*.a.example.com', 'a.example.com'].sort(compareHostSpecificity)).toEqual(['a.example.com', 'b.example.com', '*.a.example.com', '*.example.com', '*']);
  });
});

/** The router's reading of an authority match: whole-value, case-insensitive. */
function accepts(m: StringMatch | undefined, host: string): boolean {
  if (!m) return true;
  if (m.kind === 'exact') return host.toLowerCase() === m.value.toLowerCase();
  if (m.kind === 'prefix') return host.toLowerCase().startsWith(m.value.toLowerCase());
  return new RegExp(`^(?:${m.value})$`, 'i').test(host);
}

describe('authority matches', () => {
  it('confine to exact hosts and to wildcards of one or more labels', () => {
    expect(authorityFor('*')).toBeUndefined();
    expect(authorityFor('a.example.com')).toEqual({ kind: 'exact', value: 'a.example.com' });
    const wild = authorityFor('*.example.com');
    expect(['x.example.com', 'x.y.example.com', 'X.Example.COM'].map((h) => accepts(wild, h))).toEqual([true, true, true]);
    expect(['example.com', 'xexample.com', 'x.example.com.evil'].map((h) => accepts(wild, h))).toEqual([false, false, false]);
  });

  it.each<[StringMatch, string, Array<[string, boolean]>]>([
    [{ kind: 'exact', value: 'a.example.com' }, '*.example.com', [['a.example.com', true], ['b.example.com', false]]],
    [{ kind: 'prefix', value: 'api.' }, '*.example.com', [['api.example.com', true], ['web.example.com', false], ['api.other.com', false]]],
    [{ kind: 'regex', value: '(a|b)\\..*' }, '*.example.com', [['a.example.com', true], ['b.x.example.com', true], ['c.example.com', false], ['a.other.com', false]]],
    [{ kind: 'prefix', value: 'my' }, 'myapp.example.com', [['myapp.example.com', true], ['myother.example.com', false]]],
    [{ kind: 'exact', value: 'x' }, '*', [['x', true], ['y', false]]],
  ])('%j AND %s', (existing, pattern, cases) => {
    const { match, never } = restrictAuthority(existing, pattern);
    expect(never).toBeUndefined();
    for (const [host, expected] of cases) expect(accepts(match, host), host).toBe(expected);
  });

  it('says never when no host satisfies both', () => {
    expect(restrictAuthority({ kind: 'exact', value: 'a.other.com' }, '*.example.com')).toEqual({ never: true });
    expect(restrictAuthority({ kind: 'prefix', value: 'web' }, 'myapp.example.com')).toEqual({ never: true });
    expect(restrictAuthority({ kind: 'regex', value: 'x+' }, 'myapp.example.com')).toEqual({ never: true });
  });
});
