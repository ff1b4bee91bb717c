/**
 * The status of a Gateway API ingress Gateway, decided purely from the translator's verdict
 * (IngressGatewayStatus: Accepted and the listeners) and what the deployer knows (the outcome of
 * applying, the cached Deployment, LoadBalancer Service and pods).
 *
 * - `Accepted`: the translator's (True/Accepted when it gave none).
 * - `Programmed`: the translator's when it says False (the config could not be built); else
 *   False/Invalid when not accepted, False/NoResources when applying failed or an object of that
 *   name is not ours, False/Pending while the Deployment has no available replica (naming a pod's
 *   reason), False/AddressNotAssigned until the Service has `status.loadBalancer.ingress`, then
 *   True/Programmed.
 * - `addresses`: the Service's load-balancer ingress entries — `ip` as IPAddress, `hostname` as
 *   Hostname (Gateway API GatewayStatusAddress).
 * - `listeners`: the translator's, as they are (the writer adds times).
 */
import type { IngressGatewayStatus } from '../translate/ingress-model.js';
import type { ConditionSpec } from '../waypoint/conditions.js';
import { deploymentProgress, replicasAvailableAt, type DeploymentLike, type GatewayAddressStatus, type PodLike } from '../waypoint/gateway-status.js';
import type { ListenerStatusDesired } from '../waypoint/gateway-status-writer.js';

export const INGRESS_CONDITION_TYPES = ['Accepted', 'Programmed'] as const;

export interface LoadBalancerServiceLike {
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } };
}

export interface IngressStatusInput {
  /** `<namespace>/<name>` of the deployment serving the Gateway, when the translator asked for one. */
  deploymentRef?: string;
  translated?: IngressGatewayStatus;
  problem?: string;
  deployment?: DeploymentLike;
  service?: LoadBalancerServiceLike;
  pods?: readonly PodLike[];
  /** Listener ports not exposed because the gateway uses them itself. */
  reservedPorts?: readonly number[];
}

export interface DesiredIngressStatus {
  conditions: ConditionSpec[];
  addresses: GatewayAddressStatus[];
  listeners: ListenerStatusDesired[];
}

export function loadBalancerAddresses(service: LoadBalancerServiceLike | undefined): GatewayAddressStatus[] {
  const out: GatewayAddressStatus[] = [];
  for (const entry of service?.status?.loadBalancer?.ingress ?? []) {
    if (entry.ip) out.push({ type: 'IPAddress', value: entry.ip });
    else if (entry.hostname) out.push({ type: 'Hostname', value: entry.hostname });
  }
  return out;
}

function programmed(input: IngressStatusInput, accepted: ConditionSpec, addresses: readonly GatewayAddressStatus[]): ConditionSpec {
  const theirs = input.translated?.conditions.find((c) => c.type === 'Programmed');
  if (theirs?.status === 'False') return theirs;
  if (accepted.status !== 'True') return { type: 'Programmed', status: 'False', reason: 'Invalid', message: `not deployed: ${accepted.message}` };
  if (input.problem) return { type: 'Programmed', status: 'False', reason: 'NoResources', message: input.problem };
  const ref = input.deploymentRef;
  if (!ref) return { type: 'Programmed', status: 'False', reason: 'Invalid', message: 'no gateway deployment for this Gateway' };
  const progress = deploymentProgress(ref, input.deployment, input.pods);
  if ('pending' in progress) return progress.pending;
  const [first] = addresses;
  if (!first) return { type: 'Programmed', status: 'False', reason: 'AddressNotAssigned', message: `waiting for LoadBalancer Service ${ref} to get an address (status.loadBalancer.ingress)` };
  const reserved = input.reservedPorts?.length ? `; listener ports ${input.reservedPorts.join(', ')} are not exposed (the gateway uses them itself)` : '';
  return { type: 'Programmed', status: 'True', reason: 'Programmed', message: `${replicasAvailableAt(progress.available, first.value)}${reserved}` };
}

export function desiredIngressStatus(input: IngressStatusInput): DesiredIngressStatus {
  const accepted = input.translated?.conditions.find((c) => c.type === 'Accepted') ?? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'accepted by the amesh controller' };
  const addresses = accepted.status === 'True' ? loadBalancerAddresses(input.service) : [];
  const others = (input.translated?.conditions ?? []).filter((c) => c.type !== 'Accepted' && c.type !== 'Programmed');
  return {
    conditions: [accepted, programmed(input, accepted, addresses), ...others],
    addresses,
    listeners: (input.translated?.listeners ?? []).map((l) => ({ name: l.name, supportedKinds: l.supportedKinds, attachedRoutes: l.attachedRoutes, conditions: l.conditions })),
  };
}
