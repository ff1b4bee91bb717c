/**
 * L4 authorization, evaluated exactly as Istio's ztunnel does (DESIGN §6):
 *   any matching DENY → deny; no ALLOW policies → allow; any matching ALLOW → allow; else deny.
 * A policy matches when any of its rules matches; a rule is an AND of clauses; a clause is an
 * OR of matches; within a match every present field must hold. Dry-run policies are evaluated
 * and reported but never enforced.
 *
 * Pure: the result explains itself (which policy, which rule) so every decision can be logged.
 */
import { isIP } from 'node:net';
import type { AddressMatch, Authorization, Match, Rule, StringMatch } from '../node-agent/state/types.js';

export interface L4Connection {
  /** SPIFFE URI of the peer, or null for plaintext. */
  sourceIdentity: string | null;
  sourceIp: string;
  destinationIp: string;
  destinationPort: number;
}

/** The rule that decided: its index in the policy and a short human-readable summary. */
export interface L4RuleRef {
  index: number;
  description: string;
}

export interface L4Decision {
  allowed: boolean;
  /** "namespace/name" of the deciding policy, when one decided. */
  policy?: string;
  /** The matching rule of `policy`; absent when no rule decided (no policies, or no ALLOW matched). */
  rule?: L4RuleRef;
  /** Implicit deny (ALLOW policies apply, none matched): the ALLOW policies that were tried. */
  unmatchedAllowPolicies?: string[];
  reason: string;
  /** Dry-run policies that would have changed the outcome. */
  dryRunWouldDeny?: string[];
}

function matchString(m: StringMatch, value: string | null): boolean {
  if (value === null) return false;
  if ('exact' in m) return value === m.exact;
  if ('prefix' in m) return value.startsWith(m.prefix);
  if ('suffix' in m) return value.endsWith(m.suffix);
  return value.length > 0;
}

function ipToBigInt(ip: string): { family: 4 | 6; value: bigint } | null {
  const family = isIP(ip);
  if (family === 4) return { family: 4, value: ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  if (family !== 6) return null;
  let text = ip;
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4Tail?.[1]) {
    const v4 = ipToBigInt(v4Tail[1])!.value;
    text = text.slice(0, -v4Tail[1].length) + `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const zeros = new Array(8 - headParts.length - tailParts.length).fill('0');
  const parts = tail === undefined ? headParts : [...headParts, ...zeros, ...tailParts];
  return { family: 6, value: parts.reduce((acc, p) => (acc << 16n) | BigInt(parseInt(p, 16)), 0n) };
}

export function ipInPrefix(ip: string, prefix: AddressMatch): boolean {
  const a = ipToBigInt(ip);
  const p = ipToBigInt(prefix.address);
  if (!a || !p || a.family !== p.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const shift = BigInt(bits - prefix.length);
  return a.value >> shift === p.value >> shift;
}

/** The principal form Istio policies use: the SPIFFE id without `spiffe://`. */
export function principalOf(identity: string | null): string | null {
  return identity === null ? null : identity.replace(/^spiffe:\/\//, '');
}

function namespaceOf(identity: string | null): string | null {
  const m = identity === null ? null : /\/ns\/([^/]+)\//.exec(identity);
  return m?.[1] ?? null;
}

function any<T>(list: T[] | undefined, test: (item: T) => boolean): boolean | undefined {
  return list === undefined || list.length === 0 ? undefined : list.some(test);
}

export function matchHolds(m: Match, c: L4Connection): boolean {
  const principal = principalOf(c.sourceIdentity);
  const namespace = namespaceOf(c.sourceIdentity);
  const positives = [
    any(m.namespaces, (s) => matchString(s, namespace)),
    any(m.principals, (s) => matchString(s, principal)),
    any(m.sourceIps, (a) => ipInPrefix(c.sourceIp, a)),
    any(m.destinationIps, (a) => ipInPrefix(c.destinationIp, a)),
    any(m.destinationPorts, (p) => p === c.destinationPort),
  ];
  const negatives = [
    any(m.notNamespaces, (s) => matchString(s, namespace)),
    any(m.notPrincipals, (s) => matchString(s, principal)),
    any(m.notSourceIps, (a) => ipInPrefix(c.sourceIp, a)),
    any(m.notDestinationIps, (a) => ipInPrefix(c.destinationIp, a)),
    any(m.notDestinationPorts, (p) => p === c.destinationPort),
  ];
  return positives.every((r) => r !== false) && negatives.every((r) => r !== true);
}

function ruleHolds(rule: Rule, c: L4Connection): boolean {
  return rule.clauses.every((clause) => clause.matches.length === 0 || clause.matches.some((m) => matchHolds(m, c)));
}

/** Index of the first matching rule, or -1. A policy with no rules matches nothing for DENY
 * and nothing for ALLOW, as in Istio (an empty ALLOW policy denies everything). */
function matchingRule(policy: Authorization, c: L4Connection): number {
  return policy.rules.findIndex((r) => ruleHolds(r, c));
}

const id = (p: Authorization): string => `${p.namespace}/${p.name}`;

function describeStringMatch(m: StringMatch): string {
  if ('exact' in m) return m.exact;
  if ('prefix' in m) return `${m.prefix}*`;
  if ('suffix' in m) return `*${m.suffix}`;
  return '*';
}

const MATCH_FIELDS = ['namespaces', 'notNamespaces', 'principals', 'notPrincipals', 'sourceIps', 'notSourceIps', 'destinationIps', 'notDestinationIps', 'destinationPorts', 'notDestinationPorts'] as const;

function describeMatch(m: Match): string {
  const parts: string[] = [];
  for (const field of MATCH_FIELDS) {
    const values = m[field];
    if (!values || values.length === 0) continue;
    const text = values.map((v) => (typeof v === 'number' ? String(v) : 'length' in v ? `${v.address}/${v.length}` : describeStringMatch(v)));
    parts.push(`${field}=${text.join('|')}`);
  }
  return parts.length ? parts.join(' ') : 'any';
}

const RULE_DESCRIPTION_MAX = 200;

/**
 * A one-line summary of a rule for logs: clauses joined by AND, matches within one by OR
 * (`notPrincipals=* AND (destinationPorts=80 OR namespaces=prod*)`); capped so a huge
 * rule never floods a denial log.
 */
export function describeRule(rule: Rule): string {
  const clauses = rule.clauses.filter((c) => c.matches.length > 0).map((c) => (c.matches.length === 1 ? describeMatch(c.matches[0]!) : `(${c.matches.map(describeMatch).join(' OR ')})`));
  const text = clauses.length ? clauses.join(' AND ') : 'any connection';
  return text.length > RULE_DESCRIPTION_MAX ? `${text.slice(0, RULE_DESCRIPTION_MAX - 1)}…` : text;
}

function ruleRef(p: Authorization, index: number): L4RuleRef {
  return { index, description: describeRule(p.rules[index]!) };
}

export function evaluateL4(policies: Authorization[], c: L4Connection): L4Decision {
  const enforced = policies.filter((p) => !p.dryRun);
  const dryRunWouldDeny = policies
    .filter((p) => p.dryRun && p.action === 'DENY' && matchingRule(p, c) >= 0)
    .map(id);
  const extra = dryRunWouldDeny.length ? { dryRunWouldDeny } : {};

  for (const p of enforced) {
    if (p.action !== 'DENY') continue;
    const rule = matchingRule(p, c);
    if (rule >= 0) return { allowed: false, policy: id(p), rule: ruleRef(p, rule), reason: `denied by DENY policy ${id(p)} rule ${rule}`, ...extra };
  }
  const allows = enforced.filter((p) => p.action === 'ALLOW');
  if (allows.length === 0) return { allowed: true, reason: 'no ALLOW policies apply', ...extra };
  for (const p of allows) {
    const rule = matchingRule(p, c);
    if (rule >= 0) return { allowed: true, policy: id(p), rule: ruleRef(p, rule), reason: `allowed by ALLOW policy ${id(p)} rule ${rule}`, ...extra };
  }
  return { allowed: false, unmatchedAllowPolicies: allows.map(id), reason: `no rule of the ALLOW policies (${allows.map(id).join(', ')}) matches`, ...extra };
}

/**
 * What every policy log line names (issue #5: "every denial is logged with the policy name and
 * the rule that matched"). An implicit deny has no matching rule; it names the ALLOW policies
 * none of whose rules matched.
 */
export function decisionLogFields(d: L4Decision): { policy: string; rule: string } {
  const policy = d.policy ?? (d.unmatchedAllowPolicies ? d.unmatchedAllowPolicies.join(', ') : '(none)');
  const rule = d.rule ? `${d.rule.index}: ${d.rule.description}` : d.unmatchedAllowPolicies ? 'no ALLOW rule matched' : '(none)';
  return { policy, rule };
}
