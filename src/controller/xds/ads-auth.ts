/**
 * Who may open an ADS stream: the same callers the CA trusts to impersonate — a node agent's
 * service account (DEFAULT_TRUSTED_NODE_AGENTS: amesh-node, ztunnel) presenting
 * `authorization: Bearer <token>`, checked with the TokenReviewer (DESIGN §5, §6). The xDS state
 * names every workload and policy of the mesh, so nothing else may read all of it.
 * A waypoint's or ingress gateway's service account (`waypointResource` knows which accounts are
 * theirs: both run as the ServiceAccount named like their xDS resource) is let in with a scope: its
 * own WaypointConfig resource (an ingress gateway's carries its TLS private keys), nothing else.
 *
 * The decision over a reviewed token is pure (`decideAdsCaller`); `tokenAuthenticator` adds the
 * token extraction and the review. The server takes any `AdsAuthenticator`, so tests stub it.
 */
import * as grpc from '@grpc/grpc-js';
import { describeError } from '../../errors/amesh-error.js';
import type { Logger } from '../../telemetry/logger.js';
import { EXTRA_NODE_NAME } from '../ca/authorizer.js';
import { WAYPOINT_CONFIG_TYPE_URL } from '../../l7/config.js';
import { CA_TOKEN_AUDIENCE, DEFAULT_TRUSTED_NODE_AGENTS, type ReviewedToken, type TokenReviewer } from '../ca/types.js';

const BEARER = /^Bearer\s+(\S+)\s*$/i;
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** What a scoped caller may subscribe to. */
export interface AdsScope {
  typeUrls: readonly string[];
  names: readonly string[];
}

/** What kind of proxy a stream serves (proxy-status, the connected-proxies metric). */
export type AdsRole = 'node-agent' | 'waypoint' | 'gateway';

export type AdsAuthResult =
  | {
      ok: true;
      /** `<namespace>/<serviceAccount>` */ caller: string;
      /** the node a node-bound token names */ boundNode?: string;
      /** absent = everything */ scope?: AdsScope;
      /** absent = node-agent (an authenticator that does not tell) */ role?: AdsRole;
    }
  | { ok: false; code: grpc.status; reason: string };

/** Authenticates the caller of one stream from its call metadata. Rejects only on bugs. */
export type AdsAuthenticator = (metadata: grpc.Metadata) => Promise<AdsAuthResult>;

/**
 * `<namespace>/<serviceAccount>` → the `<namespace>/<name>` WaypointConfig it may read, if it is a
 * waypoint's or an ingress gateway's (a bare name = a waypoint's).
 */
export type WaypointResourceOf = (caller: string) => string | { name: string; role: 'waypoint' | 'gateway' } | undefined;

export function decideAdsCaller(token: ReviewedToken, trustedNodeAgents: readonly string[], waypointResource?: WaypointResourceOf): AdsAuthResult {
  if (!token.authenticated) return { ok: false, code: grpc.status.UNAUTHENTICATED, reason: token.error ?? 'the token is not authenticated' };
  const match = SERVICE_ACCOUNT_USER.exec(token.username ?? '');
  if (!match) return { ok: false, code: grpc.status.UNAUTHENTICATED, reason: `${JSON.stringify(token.username ?? '')} is not a service account` };
  const caller = `${match[1]}/${match[2]}`;
  if (!trustedNodeAgents.includes(caller)) {
    const found = waypointResource?.(caller);
    const waypoint = typeof found === 'string' ? { name: found, role: 'waypoint' as const } : found;
    if (waypoint) return { ok: true, caller, role: waypoint.role, scope: { typeUrls: [WAYPOINT_CONFIG_TYPE_URL], names: [waypoint.name] } };
    return { ok: false, code: grpc.status.PERMISSION_DENIED, reason: `${caller} is neither a trusted node agent nor a waypoint or ingress gateway and may not read mesh configuration` };
  }
  const boundNode = token.extra?.[EXTRA_NODE_NAME]?.[0];
  return boundNode ? { ok: true, caller, boundNode, role: 'node-agent' } : { ok: true, caller, role: 'node-agent' };
}

export interface TokenAuthenticatorOptions {
  reviewer: TokenReviewer;
  /** `<namespace>/<serviceAccount>`; default DEFAULT_TRUSTED_NODE_AGENTS. */
  trustedNodeAgents?: readonly string[];
  /** Default [CA_TOKEN_AUDIENCE]: ztunnel sends its istio-ca token to xDS as well. */
  audiences?: string[];
  /** Which service accounts are waypoints' or ingress gateways' (default: none). */
  waypointResource?: WaypointResourceOf;
  log: Logger;
}

export function tokenAuthenticator(opts: TokenAuthenticatorOptions): AdsAuthenticator {
  const trusted = opts.trustedNodeAgents ?? DEFAULT_TRUSTED_NODE_AGENTS;
  const audiences = opts.audiences ?? [CA_TOKEN_AUDIENCE];
  return async (metadata) => {
    const values = metadata.get('authorization');
    const token = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0])?.[1] : undefined;
    if (!token) return { ok: false, code: grpc.status.UNAUTHENTICATED, reason: 'missing or malformed authorization metadata; expected "Bearer <service account token>"' };
    let reviewed: ReviewedToken;
    try {
      reviewed = await opts.reviewer.review(token, audiences);
    } catch (err) {
      opts.log.error({ err: describeError(err) }, 'token review failed');
      return { ok: false, code: grpc.status.UNAVAILABLE, reason: 'cannot review the token right now' };
    }
    return decideAdsCaller(reviewed, trusted, opts.waypointResource);
  };
}
