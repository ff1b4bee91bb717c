/**
 * What an AuthorizationPolicy sees of a request (authz/engine.ts RequestAttributes), from the
 * tunnelled connection and, for HTTP, the request as received (before any route mutation —
 * Envoy's RBAC filter runs before the router).
 */
import type { RequestAttributes } from '../authz/engine.js';
import type { DownstreamConnection } from './downstream-connection.js';

type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** The first `x-forwarded-for` entry (the client as the request says), if any. */
function forwardedClient(headers: Headers): string | undefined {
  const raw = headers['x-forwarded-for'];
  const first = (Array.isArray(raw) ? raw[0] : raw)?.split(',')[0]?.trim();
  return first ? first : undefined;
}

export function requestAttributes(conn: DownstreamConnection, service: string, http?: { method: string; path: string; query: string; host: string; headers: Headers }): RequestAttributes {
  return {
    service,
    ...(http ? { http } : {}),
    peerIdentity: conn.peerIdentity,
    sourceIp: conn.clientAddress,
    remoteIp: (http && forwardedClient(http.headers)) ?? conn.clientAddress,
    destinationIp: conn.host,
    destinationPort: conn.port,
  };
}
