/**
 * Which AuthorizationPolicies and RequestAuthentications one waypoint enforces, and for which of
 * its services (pure; waypoint-config.ts calls it per waypoint, policy-status.ts uses `placement`
 * to tell each policy where it is enforced).
 *
 * A policy attaches to a waypoint through a target (l7-authorization-policy.ts policyTargets):
 * - Gateway `<ns>/<waypoint>` or GatewayClass istio-waypoint (root namespace) → all of the
 *   waypoint's traffic (`services` absent);
 * - Service `<ns>/<name>` bound to this waypoint → traffic to that service (`services: [key]`);
 * - a selector in the waypoint's namespace that selects the waypoint's pods → all its traffic.
 * Several targets of one policy add up; any "all" wins. Output is sorted by policy name, so the
 * config (and its xDS version) does not change with informer order.
 */
import type { JwtRule, L7Policy } from '../../l7/config.js';
import { DEFAULT_ROOT_NAMESPACE, type AuthorizationPolicyObject } from './authorization-policy.js';
import { translateL7AuthorizationPolicy, type PolicyTarget } from './l7-authorization-policy.js';
import { translateRequestAuthentication, type RequestAuthenticationObject } from './request-authentication.js';
import { selectorMatches } from './workload.js';

/** The label every waypoint pod carries (Gateway API's, set by the waypoint template). */
export const WAYPOINT_POD_GATEWAY_LABEL = 'gateway.networking.k8s.io/gateway-name';

export interface WaypointRef {
  namespace: string;
  name: string;
  /** Its pods' labels, for selector policies; default `{gateway.networking.k8s.io/gateway-name: <name>}`. */
  podLabels?: Readonly<Record<string, string>>;
}

export interface BoundService {
  /** `namespace/hostname`, as WaypointService.key. */
  key: string;
  namespace: string;
  /** The Service object's name. */
  name: string;
}

export interface WaypointPoliciesInput {
  waypoint: WaypointRef;
  /** The services bound to this waypoint. */
  services: readonly BoundService[];
  authorizationPolicies?: readonly AuthorizationPolicyObject[];
  requestAuthentications?: readonly RequestAuthenticationObject[];
  /** Where GatewayClass-targeted (mesh-wide) waypoint policies live; default amesh-system. */
  rootNamespace?: string;
}

export function waypointPodLabels(waypoint: WaypointRef): Readonly<Record<string, string>> {
  return waypoint.podLabels ?? { [WAYPOINT_POD_GATEWAY_LABEL]: waypoint.name };
}

/** Does a selector target select this waypoint's pods? */
export function selectsWaypoint(target: Extract<PolicyTarget, { kind: 'Selector' }>, waypoint: WaypointRef): boolean {
  return target.namespace === waypoint.namespace && selectorMatches(target.matchLabels, waypointPodLabels(waypoint) as Record<string, string>);
}

/** `{}` = all traffic of the waypoint, `{ services }` = those services, undefined = not attached. */
export function attachment(targets: readonly PolicyTarget[], waypoint: WaypointRef, services: readonly BoundService[]): { services?: string[] } | undefined {
  const keys: string[] = [];
  for (const t of targets) {
    if (t.kind === 'GatewayClass') return {};
    if (t.kind === 'Gateway' && t.namespace === waypoint.namespace && t.name === waypoint.name) return {};
    if (t.kind === 'Selector' && selectsWaypoint(t, waypoint)) return {};
    if (t.kind === 'Service') {
      const bound = services.find((s) => s.namespace === t.namespace && s.name === t.name);
      if (bound && !keys.includes(bound.key)) keys.push(bound.key);
    }
  }
  return keys.length > 0 ? { services: keys.sort() } : undefined;
}

const byName = <T extends { metadata: { namespace?: string; name?: string } }>(a: T, b: T): number =>
  `${a.metadata.namespace ?? 'default'}/${a.metadata.name ?? ''}`.localeCompare(`${b.metadata.namespace ?? 'default'}/${b.metadata.name ?? ''}`);

export function waypointPolicies(input: WaypointPoliciesInput): { policies: L7Policy[]; jwtRules: JwtRule[] } {
  const root = input.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const policies: L7Policy[] = [];
  for (const object of [...(input.authorizationPolicies ?? [])].sort(byName)) {
    const t = translateL7AuthorizationPolicy(object, root);
    if (!t.policy) continue;
    // Selector policies not selecting a waypoint are the node agents' (authorization-policy.ts).
    const at = attachment(t.targets, input.waypoint, input.services);
    if (at) policies.push({ ...t.policy, ...at });
  }
  const jwtRules: JwtRule[] = [];
  for (const object of [...(input.requestAuthentications ?? [])].sort(byName)) {
    const t = translateRequestAuthentication(object, root);
    const at = t.rules.length > 0 ? attachment(t.targets, input.waypoint, input.services) : undefined;
    if (at) for (const rule of t.rules) jwtRules.push({ ...rule, ...at });
  }
  return { policies, jwtRules };
}

// ---- placement: where a policy is enforced, for its status ----

export interface PlacementContext {
  /** The accepted waypoints. */
  waypoints: readonly WaypointRef[];
  /** The waypoint (`ns/name`) bound to a Service, or why there is none. */
  serviceBinding(namespace: string, name: string): { waypoint: string } | { reason: string };
}

export interface Placement {
  /** "waypoint demo/waypoint", "waypoint demo/waypoint for service demo/backend", … */
  enforcedBy: string[];
  /** Targets that attach nowhere, each with its field and why. */
  unresolved: string[];
  /** A selector target that selects a waypoint's pods (the policy is a waypoint policy). */
  selectsWaypoint: boolean;
}

export function placement(targets: readonly PolicyTarget[], ctx: PlacementContext): Placement {
  const enforcedBy: string[] = [];
  const unresolved: string[] = [];
  let selects = false;
  for (const t of targets) {
    switch (t.kind) {
      case 'GatewayClass':
        enforcedBy.push(`every waypoint (GatewayClass ${t.name}${ctx.waypoints.length ? `, now ${ctx.waypoints.length}` : ', none yet'})`);
        break;
      case 'Gateway':
        if (ctx.waypoints.some((w) => w.namespace === t.namespace && w.name === t.name)) enforcedBy.push(`waypoint ${t.namespace}/${t.name}`);
        else unresolved.push(`${t.field}: waypoint ${t.namespace}/${t.name} not found (no accepted waypoint Gateway of that name)`);
        break;
      case 'Service': {
        const b = ctx.serviceBinding(t.namespace, t.name);
        if ('waypoint' in b) enforcedBy.push(`waypoint ${b.waypoint} for service ${t.namespace}/${t.name}`);
        else unresolved.push(`${t.field}: service ${t.namespace}/${t.name} has no waypoint bound (${b.reason}); not enforced for it`);
        break;
      }
      case 'Selector':
        for (const w of ctx.waypoints) {
          if (!selectsWaypoint(t, w)) continue;
          selects = true;
          enforcedBy.push(`waypoint ${w.namespace}/${w.name} (spec.selector selects its pods; targetRefs is the recommended form)`);
        }
        break;
    }
  }
  return { enforcedBy, unresolved, selectsWaypoint: selects };
}
