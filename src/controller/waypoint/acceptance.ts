/**
 * Is a waypoint Gateway acceptable as written? Pure; shared by the deployer (the `Accepted`
 * condition, and whether to deploy at all) and by the mesh computation (bindings to a rejected
 * waypoint are no bindings — traffic must never be sent to a waypoint that is not deployed).
 *
 * Decision (documented in the Gateway's condition): a Gateway we cannot honour as written is not
 * deployed. Deploying it "as the default would be" would serve traffic under rules the user did
 * not write (a typo `waypoint-for: services` is not `service`), so instead it gets
 * Accepted=False with the reason, nothing is deployed, and nothing binds to it; objects deployed
 * for an earlier valid spec are left in place (garbage-collected with the Gateway).
 *
 * Rules:
 * - `istio.io/waypoint-for`, when present, is one of service|workload|all|none
 *   (else InvalidParameters);
 * - `amesh.io/for-service-account`, when present, is a valid ServiceAccount name
 *   (else InvalidParameters);
 * - some listener is `{port: 15008, protocol: HBONE}` (else ListenersNotValid); other listeners
 *   are named in the Accepted message as ignored.
 */
import { contained } from '../translate/contain.js';
import { FOR_SERVICE_ACCOUNT_ANNOTATION, WAYPOINT_FOR_LABEL, WAYPOINT_HBONE_PORT, type GatewayObject } from '../translate/waypoint-binding.js';

export const WAYPOINT_FOR_VALUES = ['service', 'workload', 'all', 'none'] as const;

export type Acceptance = { accepted: true; message: string } | { accepted: false; reason: 'InvalidParameters' | 'ListenersNotValid'; message: string };

/** RFC 1123 subdomain, as Kubernetes names ServiceAccounts. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function isHbone(listener: { port?: number; protocol?: string }): boolean {
  return listener.port === WAYPOINT_HBONE_PORT && listener.protocol === 'HBONE';
}

/** waypointAcceptance, a throw on a value of the wrong type contained to this object (contain.ts). */
export function waypointAcceptance(gateway: GatewayObject): Acceptance {
  return contained(() => waypointAcceptanceUnchecked(gateway), (reason) => ({ accepted: false, reason: 'ListenersNotValid', message: `spec.listeners: ${reason}; the waypoint is not deployed` }));
}

function waypointAcceptanceUnchecked(gateway: GatewayObject): Acceptance {
  const forValue = gateway.metadata.labels?.[WAYPOINT_FOR_LABEL];
  if (forValue !== undefined && !(WAYPOINT_FOR_VALUES as readonly string[]).includes(forValue)) {
    return { accepted: false, reason: 'InvalidParameters', message: `label ${WAYPOINT_FOR_LABEL}=${JSON.stringify(forValue)} is not one of ${WAYPOINT_FOR_VALUES.join(', ')}; the waypoint is not deployed` };
  }
  const sa = gateway.metadata.annotations?.[FOR_SERVICE_ACCOUNT_ANNOTATION];
  if (sa !== undefined && (sa.trim().length > 253 || !DNS_SUBDOMAIN.test(sa.trim()))) {
    return { accepted: false, reason: 'InvalidParameters', message: `annotation ${FOR_SERVICE_ACCOUNT_ANNOTATION}=${JSON.stringify(sa)} is not a ServiceAccount name; the waypoint is not deployed` };
  }
  const listeners = gateway.spec?.listeners ?? [];
  if (!listeners.some(isHbone)) {
    return {
      accepted: false,
      reason: 'ListenersNotValid',
      message: `a waypoint needs a listener {port: ${WAYPOINT_HBONE_PORT}, protocol: HBONE}${listeners.length ? `; found ${listeners.map((l) => `${l.name ?? '(unnamed)'} ${l.port ?? '?'}/${l.protocol ?? '?'}`).join(', ')}` : '; it has none'}; the waypoint is not deployed`,
    };
  }
  const ignored = listeners.filter((l) => !isHbone(l));
  const base = 'accepted by the amesh controller';
  if (ignored.length === 0) return { accepted: true, message: base };
  return { accepted: true, message: `${base}; listeners other than HBONE ${WAYPOINT_HBONE_PORT} are ignored: ${ignored.map((l) => `${l.name ?? '(unnamed)'} ${l.port ?? '?'}/${l.protocol ?? '?'}`).join(', ')}` };
}
