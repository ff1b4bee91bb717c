/**
 * URL → route, as kube-apiserver lays out its paths. Pure; the handler decides what to do.
 *
 *   /api | /apis | /apis/<g>                          discovery
 *   /api/v1 | /apis/<g>/<v>                           APIResourceList
 *   <prefix>[/watch]/<plural>[/<name>[/<sub>]]              cluster-scoped, or all namespaces
 *   <prefix>[/watch]/namespaces/<ns>/<plural>[/<name>[/<sub>]]
 *   <prefix>/namespaces/<name>/<sub>                  a Namespace's own subresource (status, finalize)
 */
export type Route =
  | { kind: 'version' | 'healthz' | 'readyz' | 'livez' | 'api' | 'apis' | 'openapi-v2' | 'openapi-v3' }
  | { kind: 'openapi-v3-group-version'; group: string; version: string }
  | { kind: 'group'; group: string }
  | { kind: 'resource-list'; group: string; version: string }
  | ResourceRoute
  | { kind: 'unknown' };

export interface ResourceRoute {
  kind: 'resource';
  group: string;
  version: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** The legacy `/watch/` path form. */
  watch: boolean;
}

const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

export function parseRoute(pathname: string): Route {
  const raw = pathname.replace(/\/+$/, '').split('/').slice(1);
  const segments: string[] = [];
  for (const s of raw) {
    const d = decode(s);
    if (d === undefined || d === '' || d === '.' || d === '..') return { kind: 'unknown' };
    segments.push(d);
  }
  const [first, ...rest] = segments;
  switch (pathname.replace(/\/+$/, '')) {
    case '/version':
      return { kind: 'version' };
    case '/healthz':
    case '/readyz':
    case '/livez':
      return { kind: pathname.slice(1).replace(/\/+$/, '') as 'healthz' | 'readyz' | 'livez' };
    case '/api':
      return { kind: 'api' };
    case '/apis':
      return { kind: 'apis' };
    case '/openapi/v2':
      return { kind: 'openapi-v2' };
    case '/openapi/v3':
      return { kind: 'openapi-v3' };
  }
  if (first === 'healthz' || first === 'readyz' || first === 'livez') return { kind: first };
  if (first === 'openapi' && rest[0] === 'v3') {
    if (rest[1] === 'api' && rest.length === 3) return { kind: 'openapi-v3-group-version', group: '', version: rest[2] ?? '' };
    if (rest[1] === 'apis' && rest.length === 4) return { kind: 'openapi-v3-group-version', group: rest[2] ?? '', version: rest[3] ?? '' };
    return { kind: 'unknown' };
  }
  let group: string;
  let version: string;
  let tail: string[];
  if (first === 'api') {
    if (rest.length === 0) return { kind: 'api' };
    group = '';
    version = rest[0] ?? '';
    tail = rest.slice(1);
  } else if (first === 'apis') {
    if (rest.length === 0) return { kind: 'apis' };
    if (rest.length === 1) return { kind: 'group', group: rest[0] ?? '' };
    group = rest[0] ?? '';
    version = rest[1] ?? '';
    tail = rest.slice(2);
  } else {
    return { kind: 'unknown' };
  }
  if (tail.length === 0) return { kind: 'resource-list', group, version };
  let watch = false;
  if (tail[0] === 'watch') {
    watch = true;
    tail = tail.slice(1);
    if (tail.length === 0) return { kind: 'unknown' };
  }
  const base = { kind: 'resource' as const, group, version, watch };
  if (tail[0] === 'namespaces' && tail.length >= 3) {
    const namespace = tail[1] ?? '';
    // /api/v1/namespaces/<ns>/status is the Namespace's own subresource, not a resource named "status".
    if (tail.length === 3 && NAMESPACE_SUBRESOURCES.has(tail[2] ?? '')) return { ...base, plural: 'namespaces', name: namespace, subresource: tail[2] };
    const [, , plural, name, subresource, ...extra] = tail;
    if (extra.length > 0 || !plural) return { kind: 'unknown' };
    return { ...base, plural, namespace, ...(name ? { name } : {}), ...(subresource ? { subresource } : {}) };
  }
  const [plural, name, subresource, ...extra] = tail;
  if (extra.length > 0 || !plural) return { kind: 'unknown' };
  return { ...base, plural, ...(name ? { name } : {}), ...(subresource ? { subresource } : {}) };
}
