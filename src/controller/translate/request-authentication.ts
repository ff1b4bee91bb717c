/**
 * security.istio.io RequestAuthentication → the JwtRules a waypoint enforces (src/l7/config.ts).
 * Pure; https://istio.io/latest/docs/reference/config/security/request_authentication/
 *
 * - Attachment as for AuthorizationPolicy (l7-authorization-policy.ts policyTargets): targetRefs
 *   to a waypoint Gateway, a Service (its waypoint), the waypoint GatewayClass (root namespace);
 *   a selector that selects a waypoint's pods. Without any of these the policy is for node
 *   agents, which do not check JWTs (neither does ztunnel): it is not enforced, and its status
 *   says so.
 * - Each `jwtRules` entry: `issuer` required; keys from `jwks` (inline, must be a JSON JWKS) or
 *   `jwksUri` (http/https, fetched and cached by the waypoint). Without either, istiod would
 *   discover the keys through OpenID discovery; we do not, so such a rule (like one with an invalid
 *   jwks or jwksUri) gets an empty key set — tokens of that issuer are refused (fail closed). `fromHeaders`, `fromParams`,
 *   `forwardOriginalToken`, `outputPayloadToHeader` and `audiences` are carried; `fromCookies`,
 *   `outputClaimToHeaders` and `timeout` are not supported (named in a warning).
 */
import type { JwtRule } from '../../l7/config.js';
import { policyTargets, type PolicyTarget } from './l7-authorization-policy.js';
import { contained } from './contain.js';

export interface JwtRuleSpec {
  issuer?: string;
  audiences?: string[];
  jwksUri?: string;
  jwks?: string;
  fromHeaders?: Array<{ name?: string; prefix?: string }>;
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  outputClaimToHeaders?: unknown[];
  forwardOriginalToken?: boolean;
  timeout?: string;
}

export interface RequestAuthenticationObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; namespace?: string; uid?: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: {
    selector?: { matchLabels?: Record<string, string> } | null;
    targetRef?: unknown;
    targetRefs?: unknown[] | null;
    jwtRules?: Array<JwtRuleSpec | null> | null;
  } | null;
  status?: unknown;
}

export interface RequestAuthenticationTranslation {
  /** The rules a waypoint enforces (without `services`, which depends on the waypoint). */
  rules: Array<Omit<JwtRule, 'services'>>;
  targets: PolicyTarget[];
  warnings: string[];
}

function jwksProblem(text: string): string | undefined {
  try {
    const json = JSON.parse(text) as unknown;
    if (json === null || typeof json !== 'object' || !Array.isArray((json as { keys?: unknown }).keys)) return 'is not a JWKS (no "keys" array)';
    return undefined;
  } catch {
    return 'is not valid JSON';
  }
}

/**
 * The key set of a rule whose keys cannot be had: no key verifies, so every token of the issuer
 * is refused (istiod does the same with a fake JWKS) — never dropping the rule, which would let
 * those tokens through unchecked.
 */
const NO_KEYS = '{"keys":[]}';

function uriProblem(uri: string): string | undefined {
  try {
    const url = new URL(uri);
    return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : `scheme ${url.protocol} is not supported (http or https)`;
  } catch {
    return 'is not a URL';
  }
}

function translateRule(spec: JwtRuleSpec, field: string, policy: string, warnings: string[]): Omit<JwtRule, 'services'> | undefined {
  const issuer = spec.issuer?.trim() ?? '';
  if (!issuer) {
    warnings.push(`${field}.issuer: required; rule dropped`);
    return undefined;
  }
  const rule: Omit<JwtRule, 'services'> = { policy, issuer };
  if (spec.jwks !== undefined && spec.jwks !== '') {
    const problem = jwksProblem(spec.jwks);
    if (problem) {
      warnings.push(`${field}.jwks: ${problem}; no usable keys, tokens of ${issuer} are refused (401)`);
      rule.jwks = NO_KEYS;
    } else rule.jwks = spec.jwks;
    if (spec.jwksUri) warnings.push(`${field}.jwksUri: ignored, jwks is set`);
  } else if (spec.jwksUri) {
    const problem = uriProblem(spec.jwksUri);
    if (problem) {
      warnings.push(`${field}.jwksUri: ${JSON.stringify(spec.jwksUri)} ${problem}; no usable keys, tokens of ${issuer} are refused (401)`);
      rule.jwks = NO_KEYS;
    } else rule.jwksUri = spec.jwksUri;
  } else {
    warnings.push(`${field}: neither jwks nor jwksUri is set and OpenID discovery is not supported; no usable keys, tokens of ${issuer} are refused (401)`);
    rule.jwks = NO_KEYS;
  }
  const audiences = (spec.audiences ?? []).filter((a) => a !== '');
  if (audiences.length) rule.audiences = audiences;
  const headers: Array<{ name: string; prefix?: string }> = [];
  (spec.fromHeaders ?? []).forEach((h, i) => {
    if (!h?.name) warnings.push(`${field}.fromHeaders[${i}].name: required; ignored`);
    else headers.push({ name: h.name.toLowerCase(), ...(h.prefix ? { prefix: h.prefix } : {}) });
  });
  if (headers.length) rule.fromHeaders = headers;
  const params = (spec.fromParams ?? []).filter((p) => p !== '');
  if (params.length) rule.fromParams = params;
  if (spec.forwardOriginalToken) rule.forwardOriginalToken = true;
  if (spec.outputPayloadToHeader) rule.outputPayloadToHeader = spec.outputPayloadToHeader.toLowerCase();
  if (spec.fromCookies?.length) {
    warnings.push(`${field}.fromCookies: not supported, ignored${headers.length + params.length === 0 ? ' (the default locations are used: Authorization: Bearer, access_token)' : ''}`);
  }
  if (spec.outputClaimToHeaders?.length) warnings.push(`${field}.outputClaimToHeaders: not supported, ignored`);
  if (spec.timeout) warnings.push(`${field}.timeout: not supported, ignored (the waypoint's JWKS fetch timeout applies)`);
  return rule;
}

/** translateRequestAuthentication, a throw on a value of the wrong type contained to this object (contain.ts). */
export function translateRequestAuthentication(object: RequestAuthenticationObject, rootNamespace: string): RequestAuthenticationTranslation {
  return contained(() => translateRequestAuthenticationUnchecked(object, rootNamespace), (reason) => ({ rules: [], targets: [], warnings: [`spec: ${reason}; no JWT rule of this object is enforced`] }));
}

function translateRequestAuthenticationUnchecked(object: RequestAuthenticationObject, rootNamespace: string): RequestAuthenticationTranslation {
  const namespace = object.metadata.namespace ?? 'default';
  const policy = `${namespace}/${object.metadata.name ?? ''}`;
  const spec = object.spec ?? {};
  const { targets, warnings } = policyTargets(spec, namespace, rootNamespace);
  const rules: Array<Omit<JwtRule, 'services'>> = [];
  (spec.jwtRules ?? []).forEach((r, i) => {
    const rule = translateRule(r ?? {}, `spec.jwtRules[${i}]`, policy, warnings);
    if (rule) rules.push(rule);
  });
  return { rules, targets, warnings };
}
