/**
 * The authz engine's public types (re-exported by engine.ts, the module callers import). Kept
 * apart so the engine's parts (policy evaluation, JWT) share them without an import cycle.
 */

/** What a policy can look at, for one request (or one opaque TCP connection: no HTTP fields). */
export interface RequestAttributes {
  /** The service key (`namespace/hostname`) the request is for; '' when workload-addressed. */
  service: string;
  /** Absent for an opaque TCP connection. */
  http?: {
    method: string;
    /** Path without the query. */
    path: string;
    /** Raw query without `?` ('' when none), for JWT `fromParams`. */
    query: string;
    /** Host / :authority as received (may carry a port). */
    host: string;
    /** Lower-case names. */
    headers: Readonly<Record<string, string | string[] | undefined>>;
  };
  /** The HBONE peer's SPIFFE URI (`spiffe://td/ns/x/sa/y`); '' when unknown. */
  peerIdentity: string;
  /** The original client's IP (HBONE `forwarded`), else the peer's. */
  sourceIp: string;
  /** The client as the request says (first `x-forwarded-for` entry), else sourceIp. */
  remoteIp: string;
  /** The address and port the client dialled (service VIP or workload address). */
  destinationIp: string;
  destinationPort: number;
}

export type AuthzOutcome =
  | {
      allowed: true;
      /** `ns/name rule N` of the ALLOW policy that let the request in (absent when none applies). */
      policy?: string;
      /** `ns/name rule N` of each AUDIT policy that matched (for the access log). */
      audit?: string[];
      /** Request header changes the JWT filter asks for (token removed, payload added). */
      removeHeaders?: string[];
      setHeaders?: Record<string, string>;
      /** The verified JWT principal `iss/sub`, when a token was verified. */
      requestPrincipal?: string;
    }
  | {
      allowed: false;
      /** 401 (JWT invalid) or 403 (RBAC, or a JWT whose audience is not allowed, as Envoy). */
      status: 401 | 403;
      /** Response body: `RBAC: access denied` / `Jwt is expired` / `Jwt issuer is not configured` ... */
      body: string;
      /** `ns/name` of the deciding policy and rule (`ns/name rule N`), or why none allowed. */
      policy: string;
      /** For the access log / debug: short reason. */
      reason: string;
    };

export interface CompiledAuthz {
  /** True when nothing is configured: callers may skip the check entirely. */
  readonly empty: boolean;
  /** Synchronous unless a JWT must be verified (JWKS lookup). Never throws: failures deny. */
  check(attrs: RequestAttributes): AuthzOutcome | Promise<AuthzOutcome>;
}

export interface AuthzDeps {
  /** Fetches a JWKS document (JSON text) from a URL; the engine caches results. */
  fetchJwks?: (uri: string) => Promise<string>;
  now?: () => number;
  /** A fetched JWKS is refreshed after this long (default 20 min, as istiod's JWKS resolver). */
  jwksRefreshMs?: number;
  /** After a failed fetch, requests fail fast for this long before the next attempt (default 5 s). */
  jwksRetryMs?: number;
  /** Told about JWKS fetch failures (the engine itself never logs). */
  onJwksError?: (uri: string, err: unknown) => void;
}
