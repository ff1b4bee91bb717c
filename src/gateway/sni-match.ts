/**
 * Host name patterns of an ingress gateway (certificate hostnames, TLS-route SNI hosts), pure:
 * `exact.host`, `*.suffix` (one or more labels before the suffix, as Envoy's server_names and
 * Istio's hosts), `*` (anything). Case-insensitive. An entry with no patterns matches anything.
 *
 * Selection (certificates by SNI, Envoy's filter-chain match order): the most specific matching
 * pattern wins — an exact name, then the longest wildcard suffix, then `*` / no patterns; ties go
 * to the earlier entry. TLS routes instead take the FIRST entry that matches (the controller
 * already ordered them by precedence).
 */

/** How specific `pattern` is when it matches `host`; -1 when it does not. */
export function patternScore(pattern: string, host: string): number {
  const p = pattern.toLowerCase();
  if (p === '*' || p === '') return 0;
  if (p.startsWith('*.')) {
    const suffix = p.slice(1); // `.example.com`
    return host.length > suffix.length && host.endsWith(suffix) ? suffix.length : -1;
  }
  // Exact names beat every wildcard (a suffix is shorter than the longest possible host name).
  return p === host ? 1000 + p.length : -1;
}

/** The best score of `patterns` for `host` (0 for no patterns: matches anything); -1 = no match. */
export function hostnamesScore(patterns: readonly string[] | undefined, host: string | undefined): number {
  if (!patterns || patterns.length === 0) return 0;
  if (host === undefined) return patterns.includes('*') ? 0 : -1;
  let best = -1;
  for (const p of patterns) {
    const s = patternScore(p, host);
    if (s > best) best = s;
  }
  return best;
}

/** The entry whose patterns match `sni` most specifically; no SNI or no match → the first. */
export function selectBySni<T>(entries: readonly T[], patterns: (entry: T) => readonly string[], sni: string | undefined): T | undefined {
  if (sni === undefined) return entries[0];
  const host = sni.toLowerCase();
  let best: T | undefined;
  let bestScore = -1;
  for (const e of entries) {
    const s = hostnamesScore(patterns(e), host);
    if (s > bestScore) {
      best = e;
      bestScore = s;
    }
  }
  return best ?? entries[0];
}

/** The first entry whose patterns match `sni` (absent/empty patterns match any, SNI or not). */
export function firstMatching<T>(entries: readonly T[], patterns: (entry: T) => readonly string[] | undefined, sni: string | undefined): T | undefined {
  const host = sni?.toLowerCase();
  return entries.find((e) => hostnamesScore(patterns(e), host) >= 0);
}
