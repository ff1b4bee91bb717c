/**
 * RequestAuthentication at the waypoint: Envoy's jwt_authn filter as Istio configures it
 * (https://istio.io/latest/docs/reference/config/security/request_authentication/):
 * - the token is looked for where the rules say (`fromHeaders` with an optional prefix,
 *   `fromParams`), by default in `Authorization: Bearer <token>` and the `access_token` query
 *   parameter;
 * - no token: the request passes, unauthenticated (Istio: "a request without token is accepted,
 *   but has no request principal" — an AuthorizationPolicy decides whether that is enough);
 * - a token must verify against a rule at its location whose `issuer` equals the token's `iss`
 *   (signature against the rule's JWKS, `exp`/`nbf` with Envoy's 60 s clock skew, `aud` against
 *   `audiences` when set), else the request is refused with Envoy's status and body: 401 `Jwt is
 *   expired`, `Jwt issuer is not configured`, `Jwt verification fails` …; 403 `Audiences in Jwt
 *   are not allowed` (Envoy answers that one Forbidden);
 * - verified: the request principal is `iss/sub`; the token's header is removed upstream unless
 *   `forwardOriginalToken`; `outputPayloadToHeader` carries the payload (base64url JSON, the
 *   token's own payload segment, as Envoy).
 * jose does the JOSE work (signature, claims); this file only decides which token, which rule.
 */
import { decodeJwt, errors, jwtVerify, type JWTPayload } from 'jose';
import type { JwtRule } from '../config.js';
import { jwksCacheFor, type KeySet } from './jwks-cache.js';
import type { VerifiedJwt } from './policy.js';
import type { AuthzDeps, RequestAttributes } from './types.js';

/** Envoy's default `clock_skew_seconds`. */
export const JWT_CLOCK_SKEW_SECONDS = 60;

export const JWT_BODY = {
  expired: 'Jwt is expired',
  notYetValid: 'Jwt not yet valid',
  unknownIssuer: 'Jwt issuer is not configured',
  verificationFails: 'Jwt verification fails',
  audience: 'Audiences in Jwt are not allowed',
  badFormat: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  noKey: "Jwks doesn't have key to match kid or alg from Jwt",
  jwksFetch: 'Jwks remote fetch is failed',
} as const;

export type JwtResult =
  | { ok: true; jwt?: VerifiedJwt; removeHeaders?: string[]; setHeaders?: Record<string, string> }
  | { ok: false; status: 401 | 403; body: string; policy: string; reason: string };

type Location = { kind: 'header'; name: string; prefix: string } | { kind: 'param'; name: string };

const DEFAULT_LOCATIONS: readonly Location[] = [
  { kind: 'header', name: 'authorization', prefix: 'Bearer ' },
  { kind: 'param', name: 'access_token' },
];

function locationsOf(rule: JwtRule): readonly Location[] {
  const headers = (rule.fromHeaders ?? []).map((h): Location => ({ kind: 'header', name: h.name.toLowerCase(), prefix: h.prefix ?? '' }));
  const params = (rule.fromParams ?? []).map((name): Location => ({ kind: 'param', name }));
  return headers.length + params.length > 0 ? [...headers, ...params] : DEFAULT_LOCATIONS;
}

const locationKey = (l: Location): string => (l.kind === 'header' ? `h:${l.name}:${l.prefix}` : `q:${l.name}`);

function tokenAt(location: Location, http: NonNullable<RequestAttributes['http']>): string | undefined {
  if (location.kind === 'header') {
    const raw = http.headers[location.name];
    for (const value of typeof raw === 'string' ? [raw] : (raw ?? [])) {
      if (value.length < location.prefix.length || value.slice(0, location.prefix.length).toLowerCase() !== location.prefix.toLowerCase()) continue;
      const token = value.slice(location.prefix.length).trim();
      if (token) return token;
    }
    return undefined;
  }
  if (!http.query) return undefined;
  for (const [name, value] of new URLSearchParams(http.query)) if (name === location.name && value) return value;
  return undefined;
}

/** A token found in the request and the rules configured for where it was found. */
export interface FoundToken {
  token: string;
  location: Location;
  rules: JwtRule[];
}

export function findTokens(rules: readonly JwtRule[], http: NonNullable<RequestAttributes['http']>): FoundToken[] {
  const byLocation = new Map<string, { location: Location; rules: JwtRule[] }>();
  for (const rule of rules) {
    for (const location of locationsOf(rule)) {
      const key = locationKey(location);
      const entry = byLocation.get(key);
      if (entry) entry.rules.push(rule);
      else byLocation.set(key, { location, rules: [rule] });
    }
  }
  const found: FoundToken[] = [];
  for (const { location, rules: at } of byLocation.values()) {
    const token = tokenAt(location, http);
    if (token !== undefined) found.push({ token, location, rules: at });
  }
  return found;
}

function claimCode(err: unknown): string | undefined {
  return err instanceof errors.JWTClaimValidationFailed ? err.claim : undefined;
}

/** A jose (or JWKS fetch) failure as Envoy's status and body. */
export function failureOf(err: unknown): { status: 401 | 403; body: string; reason: string } {
  if (err instanceof errors.JWTExpired) return { status: 401, body: JWT_BODY.expired, reason: 'jwt expired' };
  const claim = claimCode(err);
  if (claim === 'nbf') return { status: 401, body: JWT_BODY.notYetValid, reason: 'jwt not yet valid' };
  if (claim === 'aud') return { status: 403, body: JWT_BODY.audience, reason: 'jwt audience not allowed' };
  if (claim === 'iss') return { status: 401, body: JWT_BODY.unknownIssuer, reason: 'jwt issuer not configured' };
  if (err instanceof errors.JWKSNoMatchingKey) return { status: 401, body: JWT_BODY.noKey, reason: 'jwt key not found in jwks' };
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return { status: 401, body: JWT_BODY.badFormat, reason: 'jwt malformed' };
  if (err instanceof JwksUnavailable) return { status: 401, body: JWT_BODY.jwksFetch, reason: `jwks unavailable: ${err.message}` };
  return { status: 401, body: JWT_BODY.verificationFails, reason: `jwt verification failed${err instanceof Error ? `: ${err.message}` : ''}` };
}

/** The JWKS of a rule could not be obtained (fetch failed, invalid document). */
class JwksUnavailable extends Error {}

async function keysOf(rule: JwtRule, deps: AuthzDeps): Promise<KeySet> {
  const cache = jwksCacheFor(deps);
  try {
    if (rule.jwks !== undefined) return cache.inline(rule.jwks);
    if (rule.jwksUri) return await cache.remote(rule.jwksUri);
  } catch (err) {
    throw new JwksUnavailable(err instanceof Error ? err.message : String(err), { cause: err });
  }
  throw new JwksUnavailable(`RequestAuthentication ${rule.policy} names neither jwks nor jwksUri for ${rule.issuer}`);
}

async function verifyWith(token: string, rule: JwtRule, deps: AuthzDeps): Promise<JWTPayload> {
  const options = {
    issuer: rule.issuer,
    ...(rule.audiences && rule.audiences.length > 0 ? { audience: rule.audiences } : {}),
    clockTolerance: JWT_CLOCK_SKEW_SECONDS,
    currentDate: new Date(deps.now?.() ?? Date.now()),
  };
  const keys = await keysOf(rule, deps);
  try {
    return (await jwtVerify(token, keys, options)).payload;
  } catch (err) {
    // Keys rotated since the last fetch: one re-fetch (rate-limited by the cache), one retry.
    if (!(err instanceof errors.JWKSNoMatchingKey) || !rule.jwksUri || rule.jwks !== undefined) throw err;
    const fresh = await jwksCacheFor(deps).refetchForUnknownKey(rule.jwksUri);
    if (!fresh) throw err;
    return (await jwtVerify(token, fresh, options)).payload;
  }
}

function verified(payload: JWTPayload): VerifiedJwt {
  const aud = payload.aud;
  const azp = payload['azp'];
  return {
    principal: `${payload.iss ?? ''}/${payload.sub ?? ''}`,
    claims: payload as Record<string, unknown>,
    audiences: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [],
    ...(typeof azp === 'string' ? { presenter: azp } : {}),
  };
}

const policiesOf = (rules: readonly JwtRule[]): string => [...new Set(rules.map((r) => r.policy))].join(', ');

/**
 * Authenticates a request by the tokens findTokens found in it (none: passes unauthenticated).
 * Every token found must verify; the first one gives the request principal.
 */
export async function authenticate(found: readonly FoundToken[], deps: AuthzDeps): Promise<JwtResult> {
  if (found.length === 0) return { ok: true };
  let first: VerifiedJwt | undefined;
  const removeHeaders: string[] = [];
  const setHeaders: Record<string, string> = {};
  for (const { token, location, rules: at } of found) {
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch (err) {
      return { ok: false, ...failureOf(err), policy: policiesOf(at) };
    }
    const candidates = at.filter((r) => r.issuer === iss);
    if (candidates.length === 0) return { ok: false, status: 401, body: JWT_BODY.unknownIssuer, policy: policiesOf(at), reason: `jwt issuer ${JSON.stringify(iss ?? '')} is not configured` };
    let failure: { rule: JwtRule; err: unknown } | undefined;
    let success: { rule: JwtRule; payload: JWTPayload } | undefined;
    for (const rule of candidates) {
      try {
        success = { rule, payload: await verifyWith(token, rule, deps) };
        break;
      } catch (err) {
        failure ??= { rule, err };
      }
    }
    if (!success) {
      const f = failure as { rule: JwtRule; err: unknown };
      return { ok: false, ...failureOf(f.err), policy: f.rule.policy };
    }
    first ??= verified(success.payload);
    if (location.kind === 'header' && !success.rule.forwardOriginalToken && !removeHeaders.includes(location.name)) removeHeaders.push(location.name);
    const out = success.rule.outputPayloadToHeader;
    if (out) setHeaders[out.toLowerCase()] = token.split('.')[1] ?? '';
  }
  return {
    ok: true,
    ...(first ? { jwt: first } : {}),
    ...(removeHeaders.length ? { removeHeaders } : {}),
    ...(Object.keys(setHeaders).length ? { setHeaders } : {}),
  };
}
