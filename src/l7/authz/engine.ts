/**
 * L7 AuthorizationPolicy and RequestAuthentication (JWT) enforcement at the waypoint: a
 * WaypointConfig's `policies` and `jwtRules` compiled once per config (compileAuthz is called on
 * every update, so it stays cheap; caches that must survive updates — JWKS and imported keys —
 * live off `deps`, see jwks-cache.ts).
 *
 * check(attrs), Istio's order (https://istio.io/latest/docs/concepts/security/#authorization-policy-precedence):
 * 1. Applicable = no `services`, or `services` naming attrs.service. Nothing applicable: a
 *    constant "allowed", synchronously, no allocation (the common case on a busy waypoint).
 * 2. JWT (HTTP only): jwt.ts — an invalid token is refused (401, or 403 for a bad audience); a
 *    missing token passes without a request principal.
 * 3. DENY policies: any matching rule → 403 `RBAC: access denied`, `policy` = `ns/name rule N`.
 * 4. AUDIT policies: matching rules are reported with the allowed outcome (they never deny).
 * 5. ALLOW policies: if any applies, one of their rules must match, else 403 naming them.
 * The result is synchronous unless a token has to be verified. It never throws: an internal
 * error denies (fail closed) with the error in `reason`.
 */
import type { JwtRule, L7Policy, WaypointConfig } from '../config.js';
import { authenticate, findTokens, type JwtResult } from './jwt.js';
import { jwksCacheFor } from './jwks-cache.js';
import { compilePolicy, evalContext, firstMatchingRule, type CompiledPolicy, type VerifiedJwt } from './policy.js';
import type { AuthzDeps, AuthzOutcome, CompiledAuthz, RequestAttributes } from './types.js';

export type { AuthzDeps, AuthzOutcome, CompiledAuthz, RequestAttributes } from './types.js';
export { DEFAULT_JWKS_REFRESH_MS, DEFAULT_JWKS_RETRY_MS, JwksCache, jwksCacheFor } from './jwks-cache.js';
export { JWT_BODY, JWT_CLOCK_SKEW_SECONDS } from './jwt.js';

export const RBAC_DENIED_BODY = 'RBAC: access denied';

const ALLOWED: AuthzOutcome = Object.freeze({ allowed: true as const });

/** Used when the caller passes no deps: one shared object, so inline JWKS stay cached. */
const DEFAULT_DEPS: AuthzDeps = {};

/** What applies to one service, in config order. */
interface Applicable {
  deny: CompiledPolicy[];
  audit: CompiledPolicy[];
  allow: CompiledPolicy[];
  jwtRules: JwtRule[];
}

function bucket(policies: ReadonlyArray<{ services?: string[] | undefined; compiled: CompiledPolicy }>, jwtRules: readonly JwtRule[], service: string | undefined): Applicable {
  const applies = (services: string[] | undefined): boolean => services === undefined || (service !== undefined && services.includes(service));
  const picked = policies.filter((p) => applies(p.services)).map((p) => p.compiled);
  return {
    deny: picked.filter((p) => p.action === 'DENY'),
    audit: picked.filter((p) => p.action === 'AUDIT'),
    allow: picked.filter((p) => p.action === 'ALLOW'),
    jwtRules: jwtRules.filter((r) => applies(r.services)),
  };
}

const isEmpty = (a: Applicable): boolean => a.deny.length + a.audit.length + a.allow.length + a.jwtRules.length === 0;

function denied(status: 401 | 403, body: string, policy: string, reason: string): AuthzOutcome {
  return { allowed: false, status, body, policy, reason };
}

function internalError(err: unknown): AuthzOutcome {
  return denied(403, RBAC_DENIED_BODY, 'internal error', `authz failed closed: ${err instanceof Error ? err.message : String(err)}`);
}

/** RBAC over one request, after authentication. */
function authorize(a: Applicable, attrs: RequestAttributes, jwt: VerifiedJwt | undefined): AuthzOutcome {
  const ctx = evalContext(attrs, jwt);
  for (const p of a.deny) {
    const i = firstMatchingRule(p, ctx);
    if (i >= 0) return denied(403, RBAC_DENIED_BODY, `${p.name} rule ${i}`, 'matched a DENY policy');
  }
  let audit: string[] | undefined;
  for (const p of a.audit) {
    const i = firstMatchingRule(p, ctx);
    if (i >= 0) (audit ??= []).push(`${p.name} rule ${i}`);
  }
  if (a.allow.length === 0) return audit ? { allowed: true, audit } : ALLOWED;
  for (const p of a.allow) {
    const i = firstMatchingRule(p, ctx);
    if (i >= 0) return { allowed: true, policy: `${p.name} rule ${i}`, ...(audit ? { audit } : {}) };
  }
  return denied(403, RBAC_DENIED_BODY, `no ALLOW policy matched (${a.allow.map((p) => p.name).join(', ')})`, 'no ALLOW policy matched');
}

function afterJwt(a: Applicable, attrs: RequestAttributes, result: JwtResult): AuthzOutcome {
  if (!result.ok) return denied(result.status, result.body, result.policy, result.reason);
  const outcome = authorize(a, attrs, result.jwt);
  if (!outcome.allowed) return outcome;
  if (!result.jwt && !result.removeHeaders && !result.setHeaders) return outcome;
  return {
    ...outcome,
    ...(result.jwt ? { requestPrincipal: result.jwt.principal } : {}),
    ...(result.removeHeaders ? { removeHeaders: result.removeHeaders } : {}),
    ...(result.setHeaders ? { setHeaders: result.setHeaders } : {}),
  };
}

export function compileAuthz(config: WaypointConfig, deps: AuthzDeps = DEFAULT_DEPS): CompiledAuthz {
  const policies = (config.policies ?? []).map((p: L7Policy) => ({ services: p.services, compiled: compilePolicy(p) }));
  const jwtRules = config.jwtRules ?? [];
  if (policies.length === 0 && jwtRules.length === 0) return { empty: true, check: () => ALLOWED };

  // Key sets fetched now, not on the first request that needs them.
  const cache = jwksCacheFor(deps);
  for (const rule of jwtRules) if (rule.jwks === undefined && rule.jwksUri) cache.prefetch(rule.jwksUri);

  // One bucket per service any entry names or the config serves; everything else gets the
  // policies without `services` (a workload-addressed request, an unknown VIP).
  const byService = new Map<string, Applicable>();
  const named = new Set<string>([...config.services.map((s) => s.key), ...policies.flatMap((p) => p.services ?? []), ...jwtRules.flatMap((r) => r.services ?? [])]);
  for (const service of named) {
    const a = bucket(policies, jwtRules, service);
    if (!isEmpty(a)) byService.set(service, a);
  }
  const global = bucket(policies, jwtRules, undefined);
  const fallback = isEmpty(global) ? undefined : global;

  return {
    empty: false,
    check(attrs: RequestAttributes): AuthzOutcome | Promise<AuthzOutcome> {
      try {
        const a = byService.get(attrs.service) ?? fallback;
        if (!a) return ALLOWED;
        const tokens = a.jwtRules.length > 0 && attrs.http ? findTokens(a.jwtRules, attrs.http) : [];
        if (tokens.length > 0) {
          return authenticate(tokens, deps).then(
            (result) => {
              try {
                return afterJwt(a, attrs, result);
              } catch (err) {
                return internalError(err);
              }
            },
            (err: unknown) => denied(401, 'Jwt verification fails', a.jwtRules.map((r) => r.policy).join(', '), `jwt check failed: ${err instanceof Error ? err.message : String(err)}`),
          );
        }
        return authorize(a, attrs, undefined);
      } catch (err) {
        return internalError(err);
      }
    },
  };
}
