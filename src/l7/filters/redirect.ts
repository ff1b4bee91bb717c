/**
 * Redirect responses (Istio `redirect`, Gateway API RequestRedirect): the Location is the
 * request URL with the configured parts replaced — scheme, host, port, and the path (full, or
 * the matched prefix replaced) — keeping the query. The port is kept from the request unless the
 * redirect sets one or changes the scheme (then the scheme's default applies, as Gateway API
 * specifies). Status defaults to 301. Pure.
 */
import type { Redirect } from '../config.js';
import { rewritePath } from './url-rewrite.js';

export interface RedirectRequest {
  scheme: 'http' | 'https';
  /** Host / :authority as received. */
  authority: string;
  path: string;
  query: string;
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;

function splitAuthority(authority: string): { host: string; port?: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(authority.trim());
  if (!m) return { host: authority };
  return { host: m[1] as string, ...(m[2] ? { port: Number(m[2]) } : {}) };
}

export function buildRedirect(req: RedirectRequest, redirect: Redirect, matchedPrefix: string): { status: number; location: string } {
  const scheme = redirect.scheme ?? req.scheme;
  const requested = splitAuthority(req.authority);
  const host = redirect.hostname ?? requested.host;
  let port: number | undefined;
  if (redirect.port !== undefined) port = redirect.port;
  else if (redirect.scheme === undefined || redirect.scheme === req.scheme) port = requested.port;
  const portPart = port === undefined || port === DEFAULT_PORT[scheme] ? '' : `:${port}`;
  const path = redirect.path ? rewritePath(req.path, matchedPrefix, redirect.path) : req.path;
  const status = [301, 302, 303, 307, 308].includes(redirect.statusCode) ? redirect.statusCode : 301;
  return { status, location: `${scheme}://${host}${portPart}${path}${req.query ? `?${req.query}` : ''}` };
}
