/**
 * security.istio.io PeerAuthentication → what node agents enforce (DESIGN §6–§7). Pure.
 *
 * Node agents always accept mutual TLS; what PeerAuthentication changes is whether *plaintext*
 * (a connection without a peer principal) is refused. So for each workload the controller works
 * out its effective mode, Istio's precedence:
 *   workload PeerAuthentication (selector matches the pod's labels) > namespace-wide one (no
 *   selector) > mesh-wide one (root namespace, no selector) > PERMISSIVE;
 * UNSET inherits, DISABLE counts as PERMISSIVE (an ambient workload cannot turn mTLS off for
 * meshed peers, only accept plaintext too); when several policies tie, the oldest wins, as in
 * Istio. Port-level modes (`portLevelMtls`, target ports) come from the workload policy only.
 *
 * The effective mode becomes at most one DENY policy, scoped to the workloads that share it
 * (WORKLOAD_SELECTOR; the controller lists its name on each of them), denying connections without
 * a peer principal — on every port, or only on the STRICT ports, or on all but the PERMISSIVE ones.
 * Deriving one policy per effective mode (rather than one per PeerAuthentication object) keeps a
 * workload-level PERMISSIVE able to override a namespace-level STRICT, which two separate DENY
 * policies could not express.
 */
import type { Authorization } from '../../node-agent/state/types.js';
import { DEFAULT_ROOT_NAMESPACE } from './authorization-policy.js';

export type MtlsMode = 'STRICT' | 'PERMISSIVE';

export interface PeerAuthenticationObject {
  metadata: { name?: string; namespace?: string; creationTimestamp?: string };
  spec?: {
    selector?: { matchLabels?: Record<string, string> } | null;
    mtls?: { mode?: string } | null;
    portLevelMtls?: Record<string, { mode?: string } | null> | null;
  } | null;
}

export interface EffectiveMtls {
  mode: MtlsMode;
  /** Target ports whose mode differs from `mode`. */
  ports: Record<number, MtlsMode>;
  /** `namespace/name` of the policies that decided, most specific first. */
  decidedBy: string[];
  /** Fields that could not be used, naming the policy and the field. */
  warnings: string[];
}

const key = (pa: PeerAuthenticationObject): string => `${pa.metadata.namespace ?? ''}/${pa.metadata.name ?? ''}`;

function oldest(list: PeerAuthenticationObject[]): PeerAuthenticationObject | undefined {
  return [...list].sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || key(a).localeCompare(key(b)))[0];
}

function selects(pa: PeerAuthenticationObject, labels: Record<string, string>): boolean {
  const wanted = pa.spec?.selector?.matchLabels ?? {};
  const entries = Object.entries(wanted);
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** STRICT / PERMISSIVE, undefined for UNSET (inherit); DISABLE → PERMISSIVE. */
function modeOf(raw: string | undefined, field: string, warnings: string[]): MtlsMode | undefined {
  switch (raw ?? 'UNSET') {
    case 'UNSET':
      return undefined;
    case 'STRICT':
      return 'STRICT';
    case 'PERMISSIVE':
      return 'PERMISSIVE';
    case 'DISABLE':
      warnings.push(`${field}: DISABLE acts as PERMISSIVE for ambient workloads (plaintext is accepted, mTLS still used between meshed peers)`);
      return 'PERMISSIVE';
    default:
      warnings.push(`${field}: unknown mode ${JSON.stringify(raw)}, treated as UNSET`);
      return undefined;
  }
}

export function effectiveMtls(
  policies: readonly PeerAuthenticationObject[],
  workload: { namespace: string; labels: Record<string, string> },
  rootNamespace = DEFAULT_ROOT_NAMESPACE,
): EffectiveMtls {
  const warnings: string[] = [];
  const noSelector = (pa: PeerAuthenticationObject): boolean => Object.keys(pa.spec?.selector?.matchLabels ?? {}).length === 0;
  const workloadPolicy = oldest(policies.filter((pa) => pa.metadata.namespace === workload.namespace && selects(pa, workload.labels)));
  const namespacePolicy = workload.namespace === rootNamespace ? undefined : oldest(policies.filter((pa) => pa.metadata.namespace === workload.namespace && noSelector(pa)));
  const meshPolicy = oldest(policies.filter((pa) => pa.metadata.namespace === rootNamespace && noSelector(pa)));
  const decidedBy: string[] = [];
  let mode: MtlsMode | undefined;
  for (const pa of [workloadPolicy, namespacePolicy, meshPolicy]) {
    if (!pa || mode) continue;
    mode = modeOf(pa.spec?.mtls?.mode, `PeerAuthentication ${key(pa)} spec.mtls.mode`, warnings);
    if (mode) decidedBy.push(key(pa));
  }
  const base: MtlsMode = mode ?? 'PERMISSIVE';
  const ports: Record<number, MtlsMode> = {};
  for (const pa of [namespacePolicy, meshPolicy]) {
    if (pa && Object.keys(pa.spec?.portLevelMtls ?? {}).length > 0) warnings.push(`PeerAuthentication ${key(pa)} spec.portLevelMtls: ignored, port-level modes need a workload selector`);
  }
  if (workloadPolicy) {
    for (const [portText, setting] of Object.entries(workloadPolicy.spec?.portLevelMtls ?? {})) {
      const port = Number(portText);
      const field = `PeerAuthentication ${key(workloadPolicy)} spec.portLevelMtls[${portText}]`;
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        warnings.push(`${field}: not a port number`);
        continue;
      }
      const portMode = modeOf(setting?.mode, `${field}.mode`, warnings) ?? base;
      if (portMode !== base) ports[port] = portMode;
    }
    if (Object.keys(ports).length > 0 && !decidedBy.includes(key(workloadPolicy))) decidedBy.unshift(key(workloadPolicy));
  }
  return { mode: base, ports, decidedBy, warnings };
}

/** A stable name for the policy of one effective mode, shared by every workload with that mode. */
export function peerAuthenticationPolicyName(effective: Pick<EffectiveMtls, 'mode' | 'ports'>): string {
  const exceptions = Object.keys(effective.ports)
    .map(Number)
    .sort((a, b) => a - b);
  return `istio_converted_peer_authentication_${effective.mode.toLowerCase()}${exceptions.length ? `_except_${exceptions.join('_')}` : ''}`;
}

/**
 * The DENY policy for an effective mode in `namespace`, or undefined when plaintext is accepted
 * everywhere (PERMISSIVE without STRICT ports).
 */
export function peerAuthenticationAuthorization(namespace: string, effective: Pick<EffectiveMtls, 'mode' | 'ports'>): Authorization | undefined {
  const exceptions = Object.entries(effective.ports)
    .map(([port, mode]) => ({ port: Number(port), mode }))
    .sort((a, b) => a.port - b.port);
  const noPrincipal = [{ presence: {} as Record<string, never> }];
  let match;
  if (effective.mode === 'STRICT') {
    const open = exceptions.filter((e) => e.mode === 'PERMISSIVE').map((e) => e.port);
    match = open.length ? { notPrincipals: noPrincipal, notDestinationPorts: open } : { notPrincipals: noPrincipal };
  } else {
    const strict = exceptions.filter((e) => e.mode === 'STRICT').map((e) => e.port);
    if (strict.length === 0) return undefined;
    match = { notPrincipals: noPrincipal, destinationPorts: strict };
  }
  return { name: peerAuthenticationPolicyName(effective), namespace, scope: 'WORKLOAD_SELECTOR', action: 'DENY', rules: [{ clauses: [{ matches: [match] }] }] };
}
