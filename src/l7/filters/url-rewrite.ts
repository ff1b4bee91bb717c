/**
 * URL rewrite (Istio `rewrite.uri`, Gateway API URLRewrite): `full` replaces the whole path,
 * `prefix` replaces the matched prefix and keeps the rest. Gateway API's rule that replacing
 * `/foo` with `/` turns `/foo/bar` into `/bar` (not `//bar`) is honoured, and an empty result
 * becomes `/`. Pure.
 */
export function rewritePath(path: string, matchedPrefix: string, rewrite: { kind: 'full' | 'prefix'; value: string }): string {
  if (rewrite.kind === 'full') return rewrite.value || '/';
  const rest = path.startsWith(matchedPrefix) ? path.slice(matchedPrefix.length) : path;
  let out: string;
  if (rewrite.value.endsWith('/') && rest.startsWith('/')) out = rewrite.value + rest.slice(1);
  else if (rewrite.value !== '' && !rewrite.value.endsWith('/') && rest !== '' && !rest.startsWith('/') && matchedPrefix.endsWith('/')) out = `${rewrite.value}/${rest}`;
  else out = rewrite.value + rest;
  return out.startsWith('/') ? out : `/${out}`;
}
