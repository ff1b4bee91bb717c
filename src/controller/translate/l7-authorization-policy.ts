/**
 * security.istio.io AuthorizationPolicy → the L7Policy a waypoint enforces (src/l7/config.ts),
 * and where it attaches. Pure; waypoint-policies.ts decides which waypoints get it, policy-status
 * writes the outcome on the object.
 *
 * Attachment (Istio ambient, https://istio.io/latest/docs/ambient/usage/l7-features/):
 * - `targetRefs` (or the older single `targetRef`), same namespace as the policy:
 *   Gateway (gateway.networking.k8s.io) → that waypoint, all its traffic; Service (core) → the
 *   waypoint bound to the Service, for traffic to it; GatewayClass `istio-waypoint` (policy in
 *   the root namespace) → every waypoint. Other kinds are named in a warning.
 * - A `selector` that selects a waypoint's pods (`gateway.networking.k8s.io/gateway-name`)
 *   also attaches to that waypoint, as Istio does (targetRefs is the recommended form).
 * - Otherwise the policy is a node-agent (L4) policy: authorization-policy.ts.
 * Actions ALLOW, DENY, AUDIT; CUSTOM (ext_authz) is not supported and the policy is not
 * enforced; nor is a dry-run policy (`istio.io/dry-run: "true"`), since enforcing it would deny
 * what the user only meant to observe.
 * Values the engine cannot read (bad CIDRs, ports, unknown `when` keys) never widen access: an
 * ALLOW/AUDIT rule holding one is dropped (allows less); in a DENY rule the value is removed (an
 * emptied field no longer constrains the rule: it denies more). Each is named in a warning.
 */
import type { L7Condition, L7Operation, L7Policy, L7Rule, L7Source } from '../../l7/config.js';
import { parseCidr } from '../../l7/authz/matchers.js';
import { conditionKey } from '../../l7/authz/policy.js';
import type { AuthorizationPolicyObject } from './authorization-policy.js';
import { contained } from './contain.js';
import { WAYPOINT_CLASSES } from './waypoint-binding.js';

export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** Where a waypoint policy (AuthorizationPolicy or RequestAuthentication) attaches. */
export type PolicyTarget =
  | { kind: 'Gateway'; namespace: string; name: string; field: string }
  | { kind: 'Service'; namespace: string; name: string; field: string }
  | { kind: 'GatewayClass'; name: string; field: string }
  | { kind: 'Selector'; namespace: string; matchLabels: Record<string, string>; field: string };

export interface TargetRefSpec {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

interface TargetedSpec {
  selector?: { matchLabels?: Record<string, string> } | null;
  targetRef?: unknown;
  targetRefs?: unknown[] | null;
}

export function hasTargetRefs(spec: TargetedSpec | null | undefined): boolean {
  return Boolean(spec?.targetRef) || (spec?.targetRefs?.length ?? 0) > 0;
}

/** policyTargets, a throw on a value of the wrong type contained to this object (contain.ts). */
export function policyTargets(spec: TargetedSpec | null | undefined, namespace: string, rootNamespace: string): { targets: PolicyTarget[]; warnings: string[] } {
  return contained(() => policyTargetsUnchecked(spec, namespace, rootNamespace), (reason) => ({ targets: [], warnings: [`spec.targetRefs / spec.selector: ${reason}; the policy attaches nowhere`] }));
}

/**
 * The targets of a policy's `targetRefs`/`targetRef`, or its selector when it has none; each
 * reference that cannot be used comes back as a warning naming its field.
 */
function policyTargetsUnchecked(spec: TargetedSpec | null | undefined, namespace: string, rootNamespace: string): { targets: PolicyTarget[]; warnings: string[] } {
  const targets: PolicyTarget[] = [];
  const warnings: string[] = [];
  const refs: Array<{ ref: unknown; field: string }> = [];
  if (spec?.targetRef) refs.push({ ref: spec.targetRef, field: 'spec.targetRef' });
  (spec?.targetRefs ?? []).forEach((ref, i) => refs.push({ ref, field: `spec.targetRefs[${i}]` }));
  if (refs.length === 0) {
    const labels = spec?.selector?.matchLabels ?? {};
    if (Object.keys(labels).length > 0) targets.push({ kind: 'Selector', namespace, matchLabels: { ...labels }, field: 'spec.selector' });
    return { targets, warnings };
  }
  if (Object.keys(spec?.selector?.matchLabels ?? {}).length > 0) warnings.push('spec.selector: ignored, the policy has targetRefs (they are mutually exclusive)');
  for (const { ref, field } of refs) {
    const r = (ref ?? {}) as TargetRefSpec;
    const group = r.group ?? '';
    const kind = r.kind ?? '';
    const name = r.name ?? '';
    if (!name) {
      warnings.push(`${field}.name: required`);
      continue;
    }
    if (r.namespace && r.namespace !== namespace) {
      warnings.push(`${field}.namespace: ${r.namespace} is not the policy's namespace; cross-namespace targets are not allowed, ignored`);
      continue;
    }
    if (kind === 'Gateway' && (group === GATEWAY_GROUP || group === '')) targets.push({ kind: 'Gateway', namespace, name, field });
    else if (kind === 'Service' && (group === '' || group === 'core')) targets.push({ kind: 'Service', namespace, name, field });
    else if (kind === 'GatewayClass' && (group === GATEWAY_GROUP || group === '')) {
      if (!WAYPOINT_CLASSES.has(name)) warnings.push(`${field}: GatewayClass ${name} is not a waypoint class (istio-waypoint), ignored`);
      else if (namespace !== rootNamespace) warnings.push(`${field}: a GatewayClass target needs the policy in the root namespace ${rootNamespace}, ignored`);
      else targets.push({ kind: 'GatewayClass', name, field });
    } else warnings.push(`${field}: ${group ? `${group}/` : ''}${kind || '(no kind)'} is not supported (Gateway, Service or GatewayClass), ignored`);
  }
  return { targets, warnings };
}

export interface L7PolicyTranslation {
  /** The policy as a waypoint enforces it; absent when it is not enforced (CUSTOM, dry-run). */
  policy?: Omit<L7Policy, 'services'>;
  targets: PolicyTarget[];
  /** Every ignored, dropped or unsupported field, by name. */
  warnings: string[];
}

type RuleSpec = NonNullable<NonNullable<NonNullable<AuthorizationPolicyObject['spec']>['rules']>[number]>;
type SourceSpec = NonNullable<NonNullable<RuleSpec['from']>[number]['source']>;
type OperationSpec = NonNullable<NonNullable<RuleSpec['to']>[number]['operation']>;

/** Per-rule bookkeeping: values that could not be read. */
interface RuleIssues {
  invalid: string[];
  notes: string[];
}

const SPIFFE = 'spiffe://';

/** Copies the non-empty lists, validating each value with `valid`. */
function list(values: string[] | undefined, field: string, issues: RuleIssues, valid?: (v: string) => string | undefined): string[] | undefined {
  if (!values || values.length === 0) return undefined;
  const out: string[] = [];
  for (const v of values) {
    const problem = valid?.(v);
    if (problem) issues.invalid.push(`${field}: ${JSON.stringify(v)} ${problem}`);
    else out.push(v);
  }
  return out.length > 0 ? out : undefined;
}

const cidr = (v: string): string | undefined => (parseCidr(v) ? undefined : 'is not an IP address or CIDR');
const port = (v: string): string | undefined => (/^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535 ? undefined : 'is not a port number');

function principals(values: string[] | undefined, field: string, issues: RuleIssues): string[] | undefined {
  const out = list(values, field, issues);
  if (!out?.some((v) => v.startsWith(SPIFFE))) return out;
  issues.notes.push(`${field}: principals are written without "spiffe://" (cluster.local/ns/<ns>/sa/<sa>); the prefix was removed`);
  return out.map((v) => (v.startsWith(SPIFFE) ? v.slice(SPIFFE.length) : v));
}

function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function source(s: SourceSpec, field: string, issues: RuleIssues): L7Source {
  const out: L7Source = {};
  assign(out, 'principals', principals(s.principals, `${field}.principals`, issues));
  assign(out, 'notPrincipals', principals(s.notPrincipals, `${field}.notPrincipals`, issues));
  assign(out, 'requestPrincipals', list(s.requestPrincipals, `${field}.requestPrincipals`, issues));
  assign(out, 'notRequestPrincipals', list(s.notRequestPrincipals, `${field}.notRequestPrincipals`, issues));
  assign(out, 'namespaces', list(s.namespaces, `${field}.namespaces`, issues));
  assign(out, 'notNamespaces', list(s.notNamespaces, `${field}.notNamespaces`, issues));
  assign(out, 'ipBlocks', list(s.ipBlocks, `${field}.ipBlocks`, issues, cidr));
  assign(out, 'notIpBlocks', list(s.notIpBlocks, `${field}.notIpBlocks`, issues, cidr));
  assign(out, 'remoteIpBlocks', list(s.remoteIpBlocks, `${field}.remoteIpBlocks`, issues, cidr));
  assign(out, 'notRemoteIpBlocks', list(s.notRemoteIpBlocks, `${field}.notRemoteIpBlocks`, issues, cidr));
  return out;
}

function operation(o: OperationSpec, field: string, issues: RuleIssues): L7Operation {
  const out: L7Operation = {};
  assign(out, 'hosts', list(o.hosts, `${field}.hosts`, issues));
  assign(out, 'notHosts', list(o.notHosts, `${field}.notHosts`, issues));
  assign(out, 'ports', list(o.ports, `${field}.ports`, issues, port));
  assign(out, 'notPorts', list(o.notPorts, `${field}.notPorts`, issues, port));
  assign(out, 'methods', list(o.methods, `${field}.methods`, issues));
  assign(out, 'notMethods', list(o.notMethods, `${field}.notMethods`, issues));
  assign(out, 'paths', list(o.paths, `${field}.paths`, issues));
  assign(out, 'notPaths', list(o.notPaths, `${field}.notPaths`, issues));
  return out;
}

const IP_KEYS = new Set(['source.ip', 'remote.ip', 'destination.ip']);

function condition(c: { key?: string; values?: string[]; notValues?: string[] }, field: string, issues: RuleIssues): L7Condition | undefined {
  const key = c.key ?? '';
  if (!conditionKey(key)) {
    issues.invalid.push(`${field}.key: ${JSON.stringify(key)} is not supported at waypoints`);
    return undefined;
  }
  const valid = IP_KEYS.has(key) ? cidr : key === 'destination.port' ? port : undefined;
  const values = list(c.values, `${field}.values`, issues, valid);
  const notValues = list(c.notValues, `${field}.notValues`, issues, valid);
  if (!values && !notValues) {
    if ((c.values?.length ?? 0) + (c.notValues?.length ?? 0) === 0) issues.invalid.push(`${field}: needs values or notValues`);
    return undefined;
  }
  return { key, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) };
}

function rule(spec: RuleSpec, index: number, issues: RuleIssues): L7Rule {
  const base = `spec.rules[${index}]`;
  const out: L7Rule = {};
  const from = (spec.from ?? []).map((f, i) => source(f.source ?? {}, `${base}.from[${i}].source`, issues));
  const to = (spec.to ?? []).map((t, i) => operation(t.operation ?? {}, `${base}.to[${i}].operation`, issues));
  const when = (spec.when ?? []).map((c, i) => condition(c, `${base}.when[${i}]`, issues)).filter((c): c is L7Condition => c !== undefined);
  if (from.length) out.from = from;
  if (to.length) out.to = to;
  if (when.length) out.when = when;
  return out;
}

export function translateL7AuthorizationPolicy(object: AuthorizationPolicyObject, rootNamespace: string): L7PolicyTranslation {
  const namespace = object.metadata.namespace ?? 'default';
  const name = object.metadata.name ?? '';
  const spec = object.spec ?? {};
  const { targets, warnings } = policyTargets(spec, namespace, rootNamespace);
  const action = spec.action ?? 'ALLOW';
  if (action !== 'ALLOW' && action !== 'DENY' && action !== 'AUDIT') {
    warnings.push(`spec.action: ${action} is not supported at waypoints (no external authorizer); the policy is not enforced`);
    return { targets, warnings };
  }
  const annotations = (object.metadata as { annotations?: Record<string, string> }).annotations ?? {};
  if (annotations[DRY_RUN_ANNOTATION] === 'true') {
    warnings.push(`metadata.annotations[${DRY_RUN_ANNOTATION}]: dry-run policies are not supported; the policy is not enforced`);
    return { targets, warnings };
  }
  const rules: L7Rule[] = [];
  if (spec.rules !== undefined && spec.rules !== null && !Array.isArray(spec.rules)) {
    // Unreadable rules fail closed: an ALLOW policy allows nothing, a DENY policy denies everything.
    warnings.push(`spec.rules: not a list; ${action === 'DENY' ? 'the policy denies all traffic it applies to' : 'the policy matches nothing'}`);
    return { policy: { name: `${namespace}/${name}`, action, rules: action === 'DENY' ? [{}] : [] }, targets, warnings };
  }
  (spec.rules ?? []).forEach((r, i) => {
    const issues: RuleIssues = { invalid: [], notes: [] };
    const translated = contained(
      () => rule(r ?? {}, i, issues),
      (reason): L7Rule => {
        issues.invalid.push(`spec.rules[${i}]: ${reason}`);
        return {};
      },
    );
    warnings.push(...issues.notes, ...issues.invalid);
    if (issues.invalid.length > 0 && action !== 'DENY') {
      warnings.push(`spec.rules[${i}]: dropped (an ${action} rule with values the waypoint cannot check matches nothing)`);
      return;
    }
    if (issues.invalid.length > 0) warnings.push(`spec.rules[${i}]: enforced without those values (denies more)`);
    rules.push(translated);
  });
  return { policy: { name: `${namespace}/${name}`, action, rules }, targets, warnings };
}
