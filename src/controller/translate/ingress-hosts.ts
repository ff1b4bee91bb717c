/**
 * Hostname patterns at an ingress gateway, pure: Gateway API listener `hostname` / HTTPRoute
 * `hostnames`, Istio server `hosts` / VirtualService `hosts`. A pattern is an exact host
 * (`myapp.example.com`), a wildcard (`*.example.com`: one or more labels before the suffix, never
 * the suffix itself — both APIs say so) or `*` (any host). All lower case.
 *
 * - `intersectHosts`: the hosts both patterns cover, as one pattern (the more specific one), or
 *   undefined when they cover nothing in common — how a route's hostnames are narrowed by the
 *   listener or server it attaches to.
 * - `compareHostSpecificity`: Envoy's virtual-host order, which Gateway API precedence and Istio
 *   both follow: exact hosts first, then wildcards by longer suffix, then `*`.
 * - `authorityFor` / `restrictAuthority`: the `authority` match that confines a route to a
 *   pattern, combined with an authority match the route already has (an AND in one StringMatch:
 *   decided statically when it can be, else one regex with a lookahead — the router compiles
 *   regexes as whole-value JavaScript RegExps).
 */
import type { StringMatch } from '../../l7/config.js';

export const ANY_HOST = '*';

export function normaliseHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}

export function isWildcard(pattern: string): boolean {
  return pattern.startsWith('*.');
}

/** Does `pattern` cover the concrete host `host`? */
export function patternCovers(pattern: string, host: string): boolean {
  if (pattern === ANY_HOST) return true;
  if (isWildcard(pattern)) return host.length > pattern.length - 1 && host.endsWith(pattern.slice(1));
  return pattern === host;
}

/** The pattern both cover, or undefined. */
export function intersectHosts(a: string, b: string): string | undefined {
  if (a === ANY_HOST) return b;
  if (b === ANY_HOST) return a;
  if (!isWildcard(a) && !isWildcard(b)) return a === b ? a : undefined;
  if (isWildcard(a) && !isWildcard(b)) return patternCovers(a, b) ? b : undefined;
  if (!isWildcard(a) && isWildcard(b)) return patternCovers(b, a) ? a : undefined;
  // Two wildcards: the longer one, when its suffix ends with the shorter's.
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  return long === short || long.endsWith(short.slice(1)) ? long : undefined;
}

/** Envoy's virtual-host order: exact, then longer wildcard suffix, then `*`; ties by name. */
export function compareHostSpecificity(a: string, b: string): number {
  const rank = (h: string): number => (h === ANY_HOST ? 2 : isWildcard(h) ? 1 : 0);
  return rank(a) - rank(b) || b.length - a.length || a.localeCompare(b);
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The regex (whole-value) of a pattern. */
function patternRegex(pattern: string): string {
  if (pattern === ANY_HOST) return '.*';
  if (isWildcard(pattern)) return `.+${escapeRegex(pattern.slice(1))}`;
  return escapeRegex(pattern);
}

/** The authority match confining a route to `pattern`; undefined for `*`. */
export function authorityFor(pattern: string): StringMatch | undefined {
  if (pattern === ANY_HOST) return undefined;
  if (isWildcard(pattern)) return { kind: 'regex', value: patternRegex(pattern) };
  return { kind: 'exact', value: pattern };
}

function userMatches(m: StringMatch, host: string): boolean {
  const value = m.value.toLowerCase();
  if (m.kind === 'exact') return host === value;
  if (m.kind === 'prefix') return host.startsWith(value);
  try {
    return new RegExp(`^(?:${m.value})$`, 'i').test(host);
  } catch {
    return false;
  }
}

/**
 * `existing` AND `pattern` as one authority match: `{ match }` (absent = any host), or
 * `{ never: true }` when no host satisfies both.
 */
export function restrictAuthority(existing: StringMatch | undefined, pattern: string): { match?: StringMatch; never?: true } {
  const own = authorityFor(pattern);
  if (!existing) return own ? { match: own } : {};
  if (!own) return { match: existing };
  if (existing.kind === 'exact') return patternCovers(pattern, normaliseHost(existing.value)) ? { match: { kind: 'exact', value: normaliseHost(existing.value) } } : { never: true };
  if (!isWildcard(pattern)) return userMatches(existing, pattern) ? { match: own } : { never: true };
  const user = existing.kind === 'prefix' ? `${escapeRegex(existing.value.toLowerCase())}.*` : existing.value;
  return { match: { kind: 'regex', value: `(?=(?:${user})$)${patternRegex(pattern)}` } };
}
