/**
 * Does an informer update change anything the mesh is computed from?
 *
 * The controller itself writes to the objects it watches — pod annotations
 * (`ambient.istio.io/redirection`, the waypoint explanation) and the status of Services, policies,
 * routes and Gateways. Each write comes back as an update event; recomputing and re-encoding the
 * whole mesh for it fed a loop that kept a core busy for tens of seconds after every start at
 * 2 000 pods (bench:xds). Only the fields read by the translators count:
 * - Pods: uid, labels, owner references, deletion, node, host network, service account, container ports, phase,
 *   IPs and the Ready condition — not annotations, not other status.
 * - Secrets: type and data (ingress certificates); they have no spec. ConfigMaps (the mesh
 *   config): data.
 * - Nodes: only the topology labels locality is read from (translate/locality.ts) — a Node's
 *   status (heartbeats), annotations and other labels change often and matter to no Workload.
 * - EndpointSlices: the Service they belong to, the address type, the addresses with their ready
 *   condition, and the ports (translate/endpoint-slice.ts) — not the other conditions or hints.
 * - Everything else: labels, annotations and spec — never status or bookkeeping metadata.
 * Adds and deletes always count.
 */
import { SERVICE_NAME_LABEL, type EndpointSliceObject } from '../translate/endpoint-slice.js';
import { NODE_LOCALITY_LABELS } from '../translate/locality.js';

interface Meta {
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  /** Pods: the workload name (translate/workload.ts podWorkloadName). */
  ownerReferences?: unknown;
}

interface AnyObject {
  metadata?: Meta;
  spec?: unknown;
  status?: unknown;
}

interface SecretLike {
  metadata?: Meta;
  type?: string;
  data?: Record<string, string>;
}

interface PodLike {
  metadata?: Meta;
  spec?: { nodeName?: string; hostNetwork?: boolean; serviceAccountName?: string; containers?: Array<{ ports?: unknown }> };
  status?: { phase?: string; podIP?: string; podIPs?: unknown; conditions?: Array<{ type?: string; status?: string }> };
}

function podInputs(pod: PodLike): string {
  const m = pod.metadata ?? {};
  const s = pod.spec ?? {};
  const st = pod.status ?? {};
  return JSON.stringify([
    m.uid,
    m.labels ?? {},
    m.ownerReferences ?? [],
    m.deletionTimestamp ?? null,
    s.nodeName,
    s.hostNetwork ?? false,
    s.serviceAccountName,
    (s.containers ?? []).map((c) => c.ports ?? []),
    st.phase,
    st.podIP,
    st.podIPs ?? [],
    st.conditions?.find((c) => c.type === 'Ready')?.status ?? null,
  ]);
}

function objectInputs(object: AnyObject): string {
  const m = object.metadata ?? {};
  return JSON.stringify([m.uid, m.labels ?? {}, m.annotations ?? {}, m.deletionTimestamp ?? null, object.spec ?? null]);
}

function secretInputs(secret: SecretLike): string {
  const m = secret.metadata ?? {};
  return JSON.stringify([m.uid, m.labels ?? {}, m.deletionTimestamp ?? null, secret.type ?? null, secret.data ?? {}]);
}

function nodeInputs(node: AnyObject): string {
  const labels = node.metadata?.labels ?? {};
  return JSON.stringify(NODE_LOCALITY_LABELS.map((l) => labels[l] ?? null));
}

function sliceInputs(slice: EndpointSliceObject): string {
  return JSON.stringify([
    slice.metadata.labels?.[SERVICE_NAME_LABEL] ?? null,
    slice.addressType ?? null,
    (slice.endpoints ?? []).map((e) => [e.addresses ?? [], e.conditions?.ready ?? null]),
    slice.ports ?? [],
  ]);
}

export function meshInputsChanged(kind: string, previous: unknown, object: unknown): boolean {
  if (previous === undefined) return true;
  if (kind === 'nodes') return nodeInputs(previous as AnyObject) !== nodeInputs(object as AnyObject);
  if (kind === 'endpointSlices') return sliceInputs(previous as EndpointSliceObject) !== sliceInputs(object as EndpointSliceObject);
  if (kind === 'pods') return podInputs(previous as PodLike) !== podInputs(object as PodLike);
  if (kind === 'secrets' || kind === 'meshConfigMaps') return secretInputs(previous as SecretLike) !== secretInputs(object as SecretLike);
  return objectInputs(previous as AnyObject) !== objectInputs(object as AnyObject);
}
