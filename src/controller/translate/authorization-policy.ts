/**
 * security.istio.io AuthorizationPolicy → istio.security.Authorization, the L4 policy node agents
 * enforce (DESIGN §6–§7), as istiod converts it for ztunnel. Pure: the controller feeds it the
 * object and publishes the result; every field it cannot enforce at L4 comes back as a warning
 * naming the field, for the policy's status.
 *
 * - Scope: the root namespace without a selector → GLOBAL; no selector → NAMESPACE; a selector →
 *   WORKLOAD_SELECTOR (the controller lists the policy on the selected workloads).
 * - Policies with `targetRef`/`targetRefs` belong to waypoints (L7): not translated here.
 * - Actions ALLOW and DENY; AUDIT and CUSTOM are not enforced by node agents (warning).
 * - A rule is an AND of clauses: one clause for `from` (its entries OR'ed), one for `to`, one per
 *   `when` condition. Within a Match every present field must hold.
 * - L7-only fields (methods, paths, hosts, requestPrincipals, request.* conditions …): an ALLOW
 *   rule containing them is dropped, which only ever allows less; a DENY rule keeps its L4 part,
 *   which only ever denies more. Both produce a warning.
 * - String values: `*` → presence, `prefix*` → prefix, `*suffix` → suffix, else exact.
 */
import type { AddressMatch, Authorization, Clause, Match, PolicyScope, Rule, StringMatch } from '../../node-agent/state/types.js';
import { contained } from './contain.js';

// Istio's root namespace is istiod's own (istio-system); ours is the controller's (AMESH_ROOT_NAMESPACE).
export const DEFAULT_ROOT_NAMESPACE = 'amesh-system';

export interface AuthorizationPolicyObject {
  metadata: { name?: string; namespace?: string };
  spec?: {
    selector?: { matchLabels?: Record<string, string> } | null;
    targetRef?: unknown;
    targetRefs?: unknown[];
    action?: string;
    rules?: Array<RuleSpec | null> | null;
  } | null;
}

interface RuleSpec {
  from?: Array<{ source?: SourceSpec }> | null;
  to?: Array<{ operation?: OperationSpec }> | null;
  when?: Array<{ key?: string; values?: string[]; notValues?: string[] }> | null;
}

interface SourceSpec {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
}

interface OperationSpec {
  ports?: string[];
  notPorts?: string[];
  hosts?: string[];
  notHosts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

export interface TranslatedPolicy {
  /** Absent when nothing is enforced by node agents (waypoint policy, unsupported action). */
  authorization?: Authorization;
  /** One line per field that node agents do not enforce, naming it and what happened. */
  warnings: string[];
}

/** Istio's string match syntax. */
export function stringMatch(value: string): StringMatch {
  if (value === '*') return { presence: {} };
  if (value.length > 1 && value.endsWith('*')) return { prefix: value.slice(0, -1) };
  if (value.length > 1 && value.startsWith('*')) return { suffix: value.slice(1) };
  return { exact: value };
}

/** `10.0.0.0/8`, `10.1.2.3` (→ /32), `fd00::/8`; undefined when malformed. */
export function addressMatch(value: string): AddressMatch | undefined {
  const [address = '', bits] = value.trim().split('/');
  const v4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(address) && address.split('.').every((o) => Number(o) <= 255);
  const v6 = !v4 && address.includes(':') && /^[0-9a-fA-F:.]+$/.test(address);
  if (!v4 && !v6) return undefined;
  const max = v4 ? 32 : 128;
  const length = bits === undefined ? max : Number(bits);
  if (!Number.isInteger(length) || length < 0 || length > max) return undefined;
  return { address, length };
}

function port(value: string): number | undefined {
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/** Per-rule conversion state: the L4 clauses and the L7 fields met. */
interface RuleResult {
  clauses: Clause[];
  l7: string[];
  invalid: string[];
}

function setIfAny<K extends keyof Match>(match: Match, key: K, values: Match[K] & unknown[]): void {
  if (values.length > 0) match[key] = values;
}

function addresses(values: string[] | undefined, field: string, invalid: string[]): AddressMatch[] {
  const out: AddressMatch[] = [];
  for (const v of values ?? []) {
    const a = addressMatch(v);
    if (a) out.push(a);
    else invalid.push(`${field}: ${JSON.stringify(v)} is not an IP address or CIDR`);
  }
  return out;
}

function ports(values: string[] | undefined, field: string, invalid: string[]): number[] {
  const out: number[] = [];
  for (const v of values ?? []) {
    const p = port(v);
    if (p !== undefined) out.push(p);
    else invalid.push(`${field}: ${JSON.stringify(v)} is not a port number`);
  }
  return out;
}

function sourceMatch(source: SourceSpec, field: string, r: RuleResult): Match {
  const m: Match = {};
  setIfAny(m, 'principals', (source.principals ?? []).map(stringMatch));
  setIfAny(m, 'notPrincipals', (source.notPrincipals ?? []).map(stringMatch));
  setIfAny(m, 'namespaces', (source.namespaces ?? []).map(stringMatch));
  setIfAny(m, 'notNamespaces', (source.notNamespaces ?? []).map(stringMatch));
  // At L4 the peer address is the connection's source: ipBlocks and remoteIpBlocks are the same.
  setIfAny(m, 'sourceIps', [...addresses(source.ipBlocks, `${field}.ipBlocks`, r.invalid), ...addresses(source.remoteIpBlocks, `${field}.remoteIpBlocks`, r.invalid)]);
  setIfAny(m, 'notSourceIps', [...addresses(source.notIpBlocks, `${field}.notIpBlocks`, r.invalid), ...addresses(source.notRemoteIpBlocks, `${field}.notRemoteIpBlocks`, r.invalid)]);
  for (const key of ['requestPrincipals', 'notRequestPrincipals'] as const) if (source[key]?.length) r.l7.push(`${field}.${key}`);
  return m;
}

function operationMatch(operation: OperationSpec, field: string, r: RuleResult): Match {
  const m: Match = {};
  setIfAny(m, 'destinationPorts', ports(operation.ports, `${field}.ports`, r.invalid));
  setIfAny(m, 'notDestinationPorts', ports(operation.notPorts, `${field}.notPorts`, r.invalid));
  for (const key of ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const) if (operation[key]?.length) r.l7.push(`${field}.${key}`);
  return m;
}

/** A `when` condition at L4, or undefined (with the reason recorded) when it is L7 or unknown. */
function conditionMatch(condition: { key?: string; values?: string[]; notValues?: string[] }, field: string, r: RuleResult): Match | undefined {
  const key = condition.key ?? '';
  const values = condition.values ?? [];
  const notValues = condition.notValues ?? [];
  const m: Match = {};
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
      setIfAny(m, 'sourceIps', addresses(values, `${field}.values`, r.invalid));
      setIfAny(m, 'notSourceIps', addresses(notValues, `${field}.notValues`, r.invalid));
      return m;
    case 'source.namespace':
      setIfAny(m, 'namespaces', values.map(stringMatch));
      setIfAny(m, 'notNamespaces', notValues.map(stringMatch));
      return m;
    case 'source.principal':
      setIfAny(m, 'principals', values.map(stringMatch));
      setIfAny(m, 'notPrincipals', notValues.map(stringMatch));
      return m;
    case 'destination.ip':
      setIfAny(m, 'destinationIps', addresses(values, `${field}.values`, r.invalid));
      setIfAny(m, 'notDestinationIps', addresses(notValues, `${field}.notValues`, r.invalid));
      return m;
    case 'destination.port':
      setIfAny(m, 'destinationPorts', ports(values, `${field}.values`, r.invalid));
      setIfAny(m, 'notDestinationPorts', ports(notValues, `${field}.notValues`, r.invalid));
      return m;
    default:
      if (key.startsWith('request.') || key.startsWith('connection.') || key.startsWith('experimental.') || key === 'source.user') r.l7.push(`${field} (key ${key})`);
      else r.invalid.push(`${field}: unknown condition key ${JSON.stringify(key)}`);
      return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function translateRule(rule: RuleSpec, index: number): RuleResult {
  const r: RuleResult = { clauses: [], l7: [], invalid: [] };
  const base = `spec.rules[${index}]`;
  // A list field that is no list, or an entry that is no object, would otherwise drop out of
  // the rule silently — and an emptied rule matches everything (an ALLOW would allow all).
  for (const [field, list, inner] of [['from', rule.from, 'source'], ['to', rule.to, 'operation'], ['when', rule.when, undefined]] as const) {
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) r.invalid.push(`${base}.${field}: not a list`);
    else
      list.forEach((entry: unknown, i) => {
        const value = inner && isObject(entry) ? entry[inner] : entry;
        if (!isObject(entry) || !isObject(value)) r.invalid.push(`${base}.${field}[${i}]${inner ? `.${inner}` : ''}: not an object`);
      });
  }
  if (r.invalid.length > 0) return r;
  const from = rule.from ?? [];
  if (from.length > 0) r.clauses.push({ matches: from.map((f, i) => sourceMatch(f.source ?? {}, `${base}.from[${i}].source`, r)) });
  const to = rule.to ?? [];
  if (to.length > 0) r.clauses.push({ matches: to.map((t, i) => operationMatch(t.operation ?? {}, `${base}.to[${i}].operation`, r)) });
  (rule.when ?? []).forEach((condition, i) => {
    const m = conditionMatch(condition, `${base}.when[${i}]`, r);
    if (m) r.clauses.push({ matches: [m] });
  });
  // A clause whose every match lost all its fields to L7 would match anything: drop it.
  r.clauses = r.clauses.filter((c) => c.matches.some((m) => Object.keys(m).length > 0) || c.matches.length === 0);
  return r;
}

export function translateAuthorizationPolicy(policy: AuthorizationPolicyObject, rootNamespace = DEFAULT_ROOT_NAMESPACE): TranslatedPolicy {
  const name = policy.metadata.name ?? '';
  const namespace = policy.metadata.namespace ?? '';
  const spec = policy.spec ?? {};
  const warnings: string[] = [];
  if (spec.targetRef || (spec.targetRefs && spec.targetRefs.length > 0)) {
    return { warnings: ['spec.targetRefs: the policy applies at a waypoint (L7), not at node agents'] };
  }
  const action = spec.action ?? 'ALLOW';
  if (action !== 'ALLOW' && action !== 'DENY') {
    return { warnings: [`spec.action: ${action} is not enforced by node agents (ALLOW and DENY are)`] };
  }
  const hasSelector = Object.keys(spec.selector?.matchLabels ?? {}).length > 0;
  const scope: PolicyScope = hasSelector ? 'WORKLOAD_SELECTOR' : namespace === rootNamespace ? 'GLOBAL' : 'NAMESPACE';
  const rules: Rule[] = [];
  if (spec.rules !== undefined && spec.rules !== null && !Array.isArray(spec.rules)) {
    // Unreadable rules fail closed: an ALLOW policy allows nothing, a DENY policy denies everything.
    warnings.push(`spec.rules: not a list; ${action === 'ALLOW' ? 'the policy allows nothing' : 'the policy denies all traffic in its scope'}`);
    return { authorization: { name, namespace, scope, action, rules: action === 'ALLOW' ? [] : [{ clauses: [] }] }, warnings };
  }
  (spec.rules ?? []).forEach((rule, i) => {
    const r = contained(
      () => translateRule(rule ?? {}, i),
      (reason): RuleResult => ({ clauses: [], l7: [], invalid: [`spec.rules[${i}]: ${reason}`] }),
    );
    warnings.push(...r.invalid);
    if (r.invalid.length > 0) {
      // A value we cannot read must not widen or narrow the policy silently: drop an ALLOW rule
      // (allows less), keep the rest of a DENY rule (denies more).
      if (action === 'ALLOW') {
        warnings.push(`spec.rules[${i}]: dropped (an ALLOW rule with invalid values allows nothing)`);
        return;
      }
    }
    if (r.l7.length > 0) {
      if (action === 'ALLOW') {
        warnings.push(`spec.rules[${i}]: dropped: node agents cannot check ${r.l7.join(', ')} (bind the policy to a waypoint with targetRefs)`);
        return;
      }
      warnings.push(`spec.rules[${i}]: only its L4 part is enforced; node agents cannot check ${r.l7.join(', ')}`);
    }
    rules.push({ clauses: r.clauses });
  });
  return { authorization: { name, namespace, scope, action, rules }, warnings };
}
