/**
 * The status of a waypoint Gateway (Gateway API conditions), decided purely from what the
 * deployer knows: acceptance (acceptance.ts), the outcome of applying the rendered objects, and
 * the cached Deployment, Service and pods.
 *
 * - `Accepted`: True/`Accepted`, or False/`InvalidParameters` | `ListenersNotValid`.
 * - `Programmed`: True/`Programmed` once the Deployment has ≥ 1 available replica and the
 *   Service has a ClusterIP; else False with `Invalid` (not accepted), `NoResources` (applying
 *   failed, or an object of that name exists and is not ours), `AddressNotAssigned` (no ClusterIP
 *   yet) or `Pending` (replicas not available yet — the message names a waiting pod's reason,
 *   such as ErrImagePull, when one is known).
 * - `addresses`: the Service's ClusterIP (type IPAddress) and its DNS name (type Hostname).
 */
import type { Acceptance } from './acceptance.js';
import type { ConditionSpec } from './conditions.js';

export const GATEWAY_CONDITION_TYPES = ['Accepted', 'Programmed'] as const;

export interface GatewayAddressStatus {
  type: 'IPAddress' | 'Hostname';
  value: string;
}

export interface DeploymentLike {
  metadata: { name?: string; namespace?: string; generation?: number };
  spec?: { replicas?: number };
  status?: { replicas?: number; availableReplicas?: number; readyReplicas?: number; observedGeneration?: number; conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }> };
}

export interface ServiceLike {
  spec?: { clusterIP?: string };
}

export interface PodLike {
  metadata: { name?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    containerStatuses?: Array<{ name?: string; state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string; message?: string; exitCode?: number } } }>;
  };
}

export interface GatewayStatusInput {
  name: string;
  namespace: string;
  acceptance: Acceptance;
  /** Why the objects could not be applied (API error, or an object that is not ours). */
  problem?: string;
  deployment?: DeploymentLike;
  service?: ServiceLike;
  /** The waypoint's pods (for the reason they are not available). */
  pods?: readonly PodLike[];
  clusterDomain?: string;
}

export interface DesiredGatewayStatus {
  conditions: ConditionSpec[];
  addresses: GatewayAddressStatus[];
}

export function clusterIpOf(service: ServiceLike | undefined): string | undefined {
  const ip = service?.spec?.clusterIP;
  return ip && ip !== 'None' ? ip : undefined;
}

/** The first reason a pod gives for not running, e.g. "pod waypoint-abc: ErrImagePull: …". */
export function podProblem(pods: readonly PodLike[] | undefined): string | undefined {
  for (const pod of pods ?? []) {
    for (const c of pod.status?.containerStatuses ?? []) {
      const waiting = c.state?.waiting;
      if (waiting?.reason && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') return `pod ${pod.metadata.name ?? '?'}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
      const terminated = c.state?.terminated;
      if (terminated?.reason) return `pod ${pod.metadata.name ?? '?'}: ${terminated.reason}${terminated.exitCode !== undefined ? ` (exit ${terminated.exitCode})` : ''}${terminated.message ? `: ${terminated.message}` : ''}`;
    }
    if (pod.status?.phase === 'Pending' && pod.status.reason) return `pod ${pod.metadata.name ?? '?'}: ${pod.status.reason}${pod.status.message ? `: ${pod.status.message}` : ''}`;
  }
  return undefined;
}

/**
 * Programmed=False/Pending while the Deployment `ref` is missing or has no available replica
 * (naming a pod's or the Deployment's reason when one is known); else the available count.
 */
export function deploymentProgress(ref: string, d: DeploymentLike | undefined, pods: readonly PodLike[] | undefined): { pending: ConditionSpec } | { available: number } {
  if (!d) return { pending: { type: 'Programmed', status: 'False', reason: 'Pending', message: `waiting for Deployment ${ref} to be created` } };
  const available = d.status?.availableReplicas ?? 0;
  if (available >= 1) return { available };
  const wanted = d.spec?.replicas ?? 1;
  const failing = d.status?.conditions?.find((c) => (c.type === 'ReplicaFailure' && c.status === 'True') || (c.type === 'Progressing' && c.status === 'False'));
  const hint = podProblem(pods) ?? (failing?.message ? `${failing.reason ?? failing.type}: ${failing.message}` : undefined);
  return { pending: { type: 'Programmed', status: 'False', reason: 'Pending', message: `waiting for Deployment ${ref}: ${available} of ${wanted} replicas available${hint ? `; ${hint}` : ''}` } };
}

export function replicasAvailableAt(available: number, address: string): string {
  return `${available} replica${available === 1 ? '' : 's'} available at ${address}`;
}

function programmed(input: GatewayStatusInput, ip: string | undefined): ConditionSpec {
  const ref = `${input.namespace}/${input.name}`;
  if (!input.acceptance.accepted) return { type: 'Programmed', status: 'False', reason: 'Invalid', message: `not deployed: ${input.acceptance.message}` };
  if (input.problem) return { type: 'Programmed', status: 'False', reason: 'NoResources', message: input.problem };
  const progress = deploymentProgress(ref, input.deployment, input.pods);
  if ('pending' in progress) return progress.pending;
  if (!ip) return { type: 'Programmed', status: 'False', reason: 'AddressNotAssigned', message: `waiting for Service ${ref} to get a ClusterIP` };
  return { type: 'Programmed', status: 'True', reason: 'Programmed', message: replicasAvailableAt(progress.available, ip) };
}

export function desiredGatewayStatus(input: GatewayStatusInput): DesiredGatewayStatus {
  const accepted: ConditionSpec = input.acceptance.accepted
    ? { type: 'Accepted', status: 'True', reason: 'Accepted', message: input.acceptance.message }
    : { type: 'Accepted', status: 'False', reason: input.acceptance.reason, message: input.acceptance.message };
  const ip = input.acceptance.accepted ? clusterIpOf(input.service) : undefined;
  const addresses: GatewayAddressStatus[] = [];
  if (ip) addresses.push({ type: 'IPAddress', value: ip });
  if (input.acceptance.accepted) addresses.push({ type: 'Hostname', value: `${input.name}.${input.namespace}.svc.${input.clusterDomain ?? 'cluster.local'}` });
  return { conditions: [accepted, programmed(input, ip)], addresses };
}
