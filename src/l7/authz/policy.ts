/**
 * One L7Policy compiled into predicates, and the question "does rule N of it match this
 * request?" (Istio semantics, https://istio.io/latest/docs/reference/config/security/authorization-policy/):
 * - a rule matches when every present part holds: `from` (any entry), `to` (any entry), every
 *   `when` condition; within an entry every present field holds; a field holds when a value
 *   matches (`principals`) or when none does (`notPrincipals`); an absent attribute (no peer
 *   identity, no token) matches no value, so it satisfies every `notX`;
 * - on an opaque TCP connection the HTTP-only fields (hosts, methods, paths, requestPrincipals,
 *   `request.*` conditions) cannot be checked: an ALLOW (or AUDIT) rule using any of them never
 *   matches, a DENY rule is checked without them — both err on the side of less access, as
 *   Istio's TCP filter generation does. A condition key the engine does not know is treated the
 *   same way on every connection.
 */
import type { L7Condition, L7Operation, L7Policy, L7Rule, L7Source } from '../config.js';
import { anyOf, hostMatcher, ipMatcher, pathMatcher, portMatcher, stringMatcher, type ValueMatcher } from './matchers.js';
import type { RequestAttributes } from './types.js';

/** A token the JWT step verified. */
export interface VerifiedJwt {
  /** `iss/sub`. */
  principal: string;
  claims: Readonly<Record<string, unknown>>;
  audiences: string[];
  presenter?: string;
}

/** What the predicates read, derived once per request. */
export interface EvalContext {
  attrs: RequestAttributes;
  /** The peer identity without `spiffe://` (Istio's principal form); '' when unknown. */
  principal: string;
  /** The namespace of the peer identity; '' when unknown. */
  namespace: string;
  jwt?: VerifiedJwt;
}

const SPIFFE = 'spiffe://';

export function evalContext(attrs: RequestAttributes, jwt?: VerifiedJwt): EvalContext {
  const principal = attrs.peerIdentity.startsWith(SPIFFE) ? attrs.peerIdentity.slice(SPIFFE.length) : attrs.peerIdentity;
  const ns = /\/ns\/([^/]+)\//.exec(`${principal}/`);
  return { attrs, principal, namespace: ns?.[1] ?? '', ...(jwt ? { jwt } : {}) };
}

type Getter = (ctx: EvalContext) => string | readonly string[] | undefined;

interface Check {
  /** Needs HTTP (unknowable on opaque TCP). */
  http: boolean;
  /** The engine cannot evaluate it (unknown condition key). */
  unsupported: boolean;
  test(ctx: EvalContext): boolean;
}

function valuesOf(v: string | readonly string[] | undefined): readonly string[] {
  if (v === undefined) return [];
  return typeof v === 'string' ? [v] : v;
}

function check(get: Getter, matcher: ValueMatcher, negate: boolean, http: boolean): Check {
  return {
    http,
    unsupported: false,
    test: (ctx) => valuesOf(get(ctx)).some(matcher) !== negate,
  };
}

const UNSUPPORTED: Check = { http: false, unsupported: true, test: () => false };

/** Adds the check for `values` (positive) and `notValues` (negated) when present. */
function addPair(out: Check[], values: readonly string[] | undefined, notValues: readonly string[] | undefined, get: Getter, make: (values: readonly string[]) => ValueMatcher, http: boolean): void {
  if (values && values.length > 0) out.push(check(get, make(values), false, http));
  if (notValues && notValues.length > 0) out.push(check(get, make(notValues), true, http));
}

const strings = (values: readonly string[]): ValueMatcher => anyOf(values, (p) => stringMatcher(p));
const hosts = (values: readonly string[]): ValueMatcher => anyOf(values, hostMatcher);
const paths = (values: readonly string[]): ValueMatcher => anyOf(values, pathMatcher);
const ports = (values: readonly string[]): ValueMatcher => anyOf(values, portMatcher);
const ips = (values: readonly string[]): ValueMatcher => ipMatcher(values);

const nonEmpty = (v: string): string | undefined => (v === '' ? undefined : v);
const get = {
  principal: (ctx: EvalContext) => nonEmpty(ctx.principal),
  namespace: (ctx: EvalContext) => nonEmpty(ctx.namespace),
  requestPrincipal: (ctx: EvalContext) => ctx.jwt?.principal,
  sourceIp: (ctx: EvalContext) => nonEmpty(ctx.attrs.sourceIp),
  remoteIp: (ctx: EvalContext) => nonEmpty(ctx.attrs.remoteIp),
  destinationIp: (ctx: EvalContext) => nonEmpty(ctx.attrs.destinationIp),
  destinationPort: (ctx: EvalContext) => (ctx.attrs.destinationPort > 0 ? String(ctx.attrs.destinationPort) : undefined),
  host: (ctx: EvalContext) => ctx.attrs.http?.host,
  method: (ctx: EvalContext) => ctx.attrs.http?.method,
  path: (ctx: EvalContext) => ctx.attrs.http?.path,
} satisfies Record<string, Getter>;

function sourceChecks(s: L7Source): Check[] {
  const out: Check[] = [];
  addPair(out, s.principals, s.notPrincipals, get.principal, strings, false);
  addPair(out, s.requestPrincipals, s.notRequestPrincipals, get.requestPrincipal, strings, true);
  addPair(out, s.namespaces, s.notNamespaces, get.namespace, strings, false);
  addPair(out, s.ipBlocks, s.notIpBlocks, get.sourceIp, ips, false);
  addPair(out, s.remoteIpBlocks, s.notRemoteIpBlocks, get.remoteIp, ips, false);
  return out;
}

function operationChecks(o: L7Operation): Check[] {
  const out: Check[] = [];
  addPair(out, o.hosts, o.notHosts, get.host, hosts, true);
  addPair(out, o.ports, o.notPorts, get.destinationPort, ports, false);
  addPair(out, o.methods, o.notMethods, get.method, strings, true);
  addPair(out, o.paths, o.notPaths, get.path, paths, true);
  return out;
}

/** `[a][b]` → ['a', 'b']; undefined when the brackets are malformed. */
export function bracketPath(rest: string): string[] | undefined {
  const parts: string[] = [];
  const re = /\[([^\][]+)\]/y;
  let at = 0;
  while (at < rest.length) {
    re.lastIndex = at;
    const m = re.exec(rest);
    if (!m) return undefined;
    parts.push(m[1] as string);
    at = re.lastIndex;
  }
  return parts.length > 0 ? parts : undefined;
}

/** A claim as strings: a string, a number or boolean as text, or the strings of a list. */
function claimValues(claims: Readonly<Record<string, unknown>> | undefined, path: readonly string[]): readonly string[] | undefined {
  let v: unknown = claims;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  const scalar = (x: unknown): string | undefined => (typeof x === 'string' ? x : typeof x === 'number' || typeof x === 'boolean' ? String(x) : undefined);
  if (Array.isArray(v)) return v.map(scalar).filter((x): x is string => x !== undefined);
  const s = scalar(v);
  return s === undefined ? undefined : [s];
}

/** The getter, matcher family and HTTP-ness of a `when` key; undefined for an unknown key. */
export function conditionKey(key: string): { get: Getter; make: (values: readonly string[]) => ValueMatcher; http: boolean } | undefined {
  switch (key) {
    case 'source.ip':
      return { get: get.sourceIp, make: ips, http: false };
    case 'remote.ip':
      return { get: get.remoteIp, make: ips, http: false };
    case 'source.namespace':
      return { get: get.namespace, make: strings, http: false };
    case 'source.principal':
      return { get: get.principal, make: strings, http: false };
    case 'destination.ip':
      return { get: get.destinationIp, make: ips, http: false };
    case 'destination.port':
      return { get: get.destinationPort, make: ports, http: false };
    case 'request.auth.principal':
      return { get: get.requestPrincipal, make: strings, http: true };
    case 'request.auth.audiences':
      return { get: (ctx) => ctx.jwt?.audiences, make: strings, http: true };
    case 'request.auth.presenter':
      return { get: (ctx) => ctx.jwt?.presenter, make: strings, http: true };
  }
  if (key.startsWith('request.headers[')) {
    const path = bracketPath(key.slice('request.headers'.length));
    if (path?.length !== 1) return undefined;
    const name = (path[0] as string).toLowerCase();
    return { get: (ctx) => ctx.attrs.http?.headers[name], make: strings, http: true };
  }
  if (key.startsWith('request.auth.claims[')) {
    const path = bracketPath(key.slice('request.auth.claims'.length));
    if (!path) return undefined;
    return { get: (ctx) => claimValues(ctx.jwt?.claims, path), make: strings, http: true };
  }
  return undefined;
}

function conditionChecks(c: L7Condition): Check[] {
  const k = conditionKey(c.key);
  if (!k) return [UNSUPPORTED];
  const out: Check[] = [];
  addPair(out, c.values, c.notValues, k.get, k.make, k.http);
  return out;
}

export interface CompiledRule {
  from?: Check[][];
  to?: Check[][];
  when: Check[];
  /** Any check needs HTTP / cannot be evaluated: decides the rule on TCP / always for ALLOW. */
  hasHttp: boolean;
  hasUnsupported: boolean;
}

export function compileRule(rule: L7Rule): CompiledRule {
  const from = rule.from && rule.from.length > 0 ? rule.from.map(sourceChecks) : undefined;
  const to = rule.to && rule.to.length > 0 ? rule.to.map(operationChecks) : undefined;
  const when = (rule.when ?? []).flatMap(conditionChecks);
  const all = [...(from ?? []).flat(), ...(to ?? []).flat(), ...when];
  return { ...(from ? { from } : {}), ...(to ? { to } : {}), when, hasHttp: all.some((c) => c.http), hasUnsupported: all.some((c) => c.unsupported) };
}

/**
 * `lenient` (DENY): checks that cannot be evaluated are skipped (the rule matches more);
 * otherwise (ALLOW, AUDIT) a rule with such a check does not match at all.
 */
export function ruleMatches(rule: CompiledRule, ctx: EvalContext, lenient: boolean): boolean {
  const tcp = ctx.attrs.http === undefined;
  if (!lenient && (rule.hasUnsupported || (tcp && rule.hasHttp))) return false;
  const holds = (checks: readonly Check[]): boolean => {
    for (const c of checks) {
      if (c.unsupported || (tcp && c.http)) continue;
      if (!c.test(ctx)) return false;
    }
    return true;
  };
  if (rule.from && !rule.from.some(holds)) return false;
  if (rule.to && !rule.to.some(holds)) return false;
  return holds(rule.when);
}

export interface CompiledPolicy {
  name: string;
  action: L7Policy['action'];
  rules: CompiledRule[];
}

export function compilePolicy(policy: L7Policy): CompiledPolicy {
  return { name: policy.name, action: policy.action, rules: policy.rules.map(compileRule) };
}

/** The index of the first matching rule, or -1. A policy without rules matches nothing. */
export function firstMatchingRule(policy: CompiledPolicy, ctx: EvalContext): number {
  const lenient = policy.action === 'DENY';
  return policy.rules.findIndex((r) => ruleMatches(r, ctx, lenient));
}
