/**
 * Authentication for the sandbox API server: service-account tokens shaped like Kubernetes'
 * bound tokens (TokenRequest / projected volumes), and static bearer tokens for the admin
 * kubeconfig.
 *
 * Service-account tokens are ES256 JWTs signed with one sandbox key (jose). The key can be
 * persisted as PKCS#8 PEM (mode 0600) so a restarted sandbox still accepts the tokens it handed
 * to running pods. The claims match kube-apiserver's, so code that decodes a Kubernetes token
 * (Istio's `istio-ca` audience check, `kubectl auth whoami`) sees the same thing:
 * https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#bound-service-account-token-volume
 *
 * `verify` never throws for a bad token: it answers like a TokenReview, with `authenticated:
 * false` and the reason, because the HTTP layer turns that into a 401 or a TokenReview status.
 */
import { randomUUID, timingSafeEqual, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SignJWT, errors as joseErrors, exportPKCS8, generateKeyPair, importPKCS8, jwtVerify, type CryptoKey as JoseKey } from 'jose';
import { AmeshError } from '../../errors/amesh-error.js';

export const DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** kube-apiserver's default `--api-audiences` is the issuer. */
const ALGORITHM = 'ES256';
/** TokenRequest's default and minimum expiry (one hour, ten minutes). */
const DEFAULT_EXPIRATION_SECONDS = 3600;
const MIN_EXPIRATION_SECONDS = 600;
const SA_PREFIX = 'system:serviceaccount:';

export interface UserInfo {
  username: string;
  uid: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export interface TokenReviewResult {
  authenticated: boolean;
  user?: UserInfo;
  audiences?: string[];
  error?: string;
}

/** The private claims Kubernetes puts in a bound service-account token. */
export interface KubernetesClaims {
  namespace: string;
  serviceaccount: { name: string; uid: string };
  pod?: { name: string; uid: string };
  node?: { name: string; uid: string };
}

export interface ServiceAccountTokenClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': KubernetesClaims;
}

export interface TokenAuthorityOptions {
  /** PKCS#8 PEM signing key: loaded when present, else generated and written here (0600). */
  keyFile?: string;
  issuer?: string;
  /**
   * Whether the objects a token is bound to still exist (same uid). Kubernetes rejects the
   * token of a deleted pod or service account even before it expires; the store supplies this.
   */
  isBound?: (claims: ServiceAccountTokenClaims) => boolean;
  /** Clock, injectable for expiry tests. */
  now?: () => Date;
}

export interface IssueServiceAccountTokenOptions {
  namespace: string;
  serviceAccount: string;
  serviceAccountUid: string;
  pod?: { name: string; uid: string };
  node?: { name: string; uid: string };
  /** Default: the issuer (kube-apiserver's default API audience). */
  audiences?: string[];
  /** Default 3600; values under 600 are raised to 600 like TokenRequest does. */
  expirationSeconds?: number;
}

async function loadOrCreateKey(keyFile: string | undefined): Promise<{ privateKey: JoseKey; publicKey: JoseKey | webcrypto.CryptoKey }> {
  if (keyFile) {
    let pem: string | undefined;
    try {
      pem = await readFile(keyFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new AmeshError('AMESH_CERT_FAILED', `cannot read the service-account signing key ${keyFile}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (pem !== undefined) {
      try {
        const privateKey = await importPKCS8(pem, ALGORITHM, { extractable: true });
        return { privateKey, publicKey: await publicKeyOf(privateKey) };
      } catch (err) {
        throw new AmeshError('AMESH_CERT_FAILED', `the service-account signing key ${keyFile} is not an ECDSA P-256 PKCS#8 key: ${(err as Error).message}`, {
          cause: err,
          hint: 'delete the file to generate a new key (tokens issued with the old key stop working)',
        });
      }
    }
  }
  const pair = await generateKeyPair(ALGORITHM, { extractable: true });
  if (keyFile) {
    try {
      await mkdir(dirname(keyFile), { recursive: true });
      await writeFile(keyFile, await exportPKCS8(pair.privateKey), { mode: 0o600 });
      await chmod(keyFile, 0o600);
    } catch (err) {
      throw new AmeshError('AMESH_CERT_FAILED', `cannot write the service-account signing key ${keyFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  return pair;
}

/** Derives the public key from a private one via JWK (drop `d`), so only one PEM is stored. */
async function publicKeyOf(privateKey: JoseKey): Promise<webcrypto.CryptoKey> {
  const jwk = await webcrypto.subtle.exportKey('jwk', privateKey as webcrypto.CryptoKey);
  const { d: _d, key_ops: _ops, ...publicJwk } = jwk;
  return webcrypto.subtle.importKey('jwk', publicJwk, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function isKubernetesClaims(value: unknown): value is KubernetesClaims {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const sa = v['serviceaccount'] as Record<string, unknown> | undefined;
  return typeof v['namespace'] === 'string' && typeof sa === 'object' && sa !== null && typeof sa['name'] === 'string' && typeof sa['uid'] === 'string';
}

/** The user a service-account token authenticates as, exactly as kube-apiserver reports it. */
export function serviceAccountUser(claims: KubernetesClaims): UserInfo {
  const extra: Record<string, string[]> = {};
  if (claims.pod) {
    extra['authentication.kubernetes.io/pod-name'] = [claims.pod.name];
    extra['authentication.kubernetes.io/pod-uid'] = [claims.pod.uid];
  }
  if (claims.node) {
    extra['authentication.kubernetes.io/node-name'] = [claims.node.name];
    extra['authentication.kubernetes.io/node-uid'] = [claims.node.uid];
  }
  return {
    username: `${SA_PREFIX}${claims.namespace}:${claims.serviceaccount.name}`,
    uid: claims.serviceaccount.uid,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${claims.namespace}`, 'system:authenticated'],
    ...(Object.keys(extra).length > 0 ? { extra } : {}),
  };
}

export class TokenAuthority {
  private readonly staticTokens = new Map<string, UserInfo>();

  private constructor(
    readonly issuer: string,
    private readonly privateKey: JoseKey,
    private readonly publicKey: JoseKey | webcrypto.CryptoKey,
    private readonly now: () => Date,
    private readonly isBound: ((claims: ServiceAccountTokenClaims) => boolean) | undefined,
  ) {}

  static async create(options: TokenAuthorityOptions = {}): Promise<TokenAuthority> {
    const { privateKey, publicKey } = await loadOrCreateKey(options.keyFile);
    return new TokenAuthority(options.issuer ?? DEFAULT_ISSUER, privateKey, publicKey, options.now ?? (() => new Date()), options.isBound);
  }

  /** The audiences a token gets when the request names none (kube-apiserver's `--api-audiences`). */
  get defaultAudiences(): string[] {
    return [this.issuer];
  }

  async issueServiceAccountToken(o: IssueServiceAccountTokenOptions): Promise<string> {
    const issuedAt = Math.floor(this.now().getTime() / 1000);
    const lifetime = Math.max(o.expirationSeconds ?? DEFAULT_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS);
    const kubernetes: KubernetesClaims = {
      namespace: o.namespace,
      serviceaccount: { name: o.serviceAccount, uid: o.serviceAccountUid },
      ...(o.pod ? { pod: { name: o.pod.name, uid: o.pod.uid } } : {}),
      ...(o.node ? { node: { name: o.node.name, uid: o.node.uid } } : {}),
    };
    return new SignJWT({ 'kubernetes.io': kubernetes })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(`${SA_PREFIX}${o.namespace}:${o.serviceAccount}`)
      .setAudience(o.audiences && o.audiences.length > 0 ? o.audiences : this.defaultAudiences)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + lifetime)
      .setJti(randomUUID())
      .sign(this.privateKey);
  }

  /** A fixed bearer token (the admin kubeconfig's); replaces any user already under it. */
  addStaticToken(token: string, user: UserInfo): void {
    if (token.length === 0) throw new AmeshError('AMESH_CONFIG_INVALID', 'static API token must not be empty');
    this.staticTokens.set(token, user);
  }

  /**
   * TokenReview semantics: `audiences` are the ones the caller accepts (default: the issuer);
   * the token must carry at least one of them, and the answer lists the ones that matched.
   */
  async verify(token: string, options: { audiences?: string[] } = {}): Promise<TokenReviewResult> {
    const wanted = options.audiences && options.audiences.length > 0 ? options.audiences : this.defaultAudiences;
    for (const [candidate, user] of this.staticTokens) {
      // Static tokens are not audience-scoped (like kube-apiserver's token file): they answer for
      // whatever audiences the caller asked about.
      if (safeEqual(candidate, token)) return { authenticated: true, user: structuredClone(user), audiences: wanted };
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, {
        issuer: this.issuer,
        audience: wanted,
        algorithms: [ALGORITHM],
        currentDate: this.now(),
        requiredClaims: ['exp', 'iat', 'nbf', 'sub'],
      }));
    } catch (err) {
      return { authenticated: false, error: describeJoseFailure(err) };
    }
    const kubernetes = payload['kubernetes.io'];
    if (!isKubernetesClaims(kubernetes) || payload.sub !== `${SA_PREFIX}${kubernetes.namespace}:${kubernetes.serviceaccount.name}`) {
      return { authenticated: false, error: 'invalid bearer token: the kubernetes.io claims do not name a service account matching sub' };
    }
    const claims = payload as unknown as ServiceAccountTokenClaims;
    if (this.isBound && !this.isBound(claims)) {
      const boundTo = kubernetes.pod ? `pod ${kubernetes.namespace}/${kubernetes.pod.name}` : `service account ${kubernetes.namespace}/${kubernetes.serviceaccount.name}`;
      return { authenticated: false, error: `invalid bearer token: the token is bound to ${boundTo} (uid ${kubernetes.pod?.uid ?? kubernetes.serviceaccount.uid}), which no longer exists` };
    }
    const tokenAudiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    return { authenticated: true, user: serviceAccountUser(kubernetes), audiences: wanted.filter((a) => tokenAudiences.includes(a)) };
  }
}

/** Reasons in kube-apiserver's words where it has them ("token has expired"). */
function describeJoseFailure(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'invalid bearer token: token has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'invalid bearer token: token audiences do not match any of the accepted audiences';
    if (err.claim === 'iss') return 'invalid bearer token: token was issued by another issuer';
    if (err.claim === 'nbf') return 'invalid bearer token: token is not valid yet';
    return `invalid bearer token: claim ${err.claim} ${err.reason}`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'invalid bearer token: signature verification failed';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'invalid bearer token: unexpected signing algorithm';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'invalid bearer token: not a valid JWT';
  return `invalid bearer token: ${(err as Error).message}`;
}
