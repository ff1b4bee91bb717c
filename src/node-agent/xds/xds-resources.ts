/**
 * What the node agent accepts over xDS, decided purely: decode each resource (src/xds/codec.ts),
 * check it with the same schemas as the local config (src/config/local-config.ts) plus what
 * only matters across resources, and apply a response's upserts and removals to the last good
 * resources of its type.
 *
 * Rules (DESIGN §6: invalid resources are NACKed per resource, the rest applied):
 * - a resource that does not decode, breaks a schema rule, carries an identity that is no valid
 *   SPIFFE ID, or whose resource name is not the one the workload API defines (workload → uid,
 *   service → namespace/hostname, authorization → namespace/name) is rejected with a reason;
 * - a workload may not claim an address another workload holds (the data path looks workloads
 *   up by IP): the newcomer is rejected, the holder kept. Removals apply before upserts, so a
 *   pod replaced within one response may reuse its predecessor's IP;
 * - a rejected resource leaves the previous good version of that name in place.
 * Telemetry resources (TELEMETRY_TYPE_URL, one per namespace, named after it) follow the same
 * rules; they do not take part in the mesh snapshot.
 */
import { authorizationSchema, describeIssues, serviceSchema, workloadSchema } from '../../config/local-config.js';
import { describeError } from '../../errors/amesh-error.js';
import { isValidTrustDomain, isValidWorkloadIdentity } from '../../identity/spiffe.js';
import type { NamespaceTelemetry } from '../../telemetry/telemetry-config.js';
import { authorizationResourceName, decodeAddress, decodeAuthorization, serviceResourceName, workloadResourceName, type DecodedAddress } from '../../xds/codec.js';
import { decodeTelemetry } from '../../xds/telemetry-codec.js';
import type { Authorization, MeshSnapshot, Service, Workload } from '../state/types.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

function firstLine(err: unknown): string {
  return describeError(err).split('\n')[0] ?? 'invalid resource';
}

function checkWorkload(name: string, decoded: Workload, trustDomain: string): Checked<DecodedAddress> {
  // ztunnel's defaults for fields istiod may leave empty.
  const candidate = { ...decoded, serviceAccount: decoded.serviceAccount || 'default' };
  const parsed = workloadSchema.safeParse(candidate);
  if (!parsed.success) return { ok: false, reason: describeIssues(parsed.error, 'workload', 3).join('; ') };
  const w = parsed.data as Workload;
  if (workloadResourceName(w) !== name) return { ok: false, reason: `resource name ${JSON.stringify(name)} is not the workload's uid ${JSON.stringify(w.uid)}` };
  if (w.trustDomain !== undefined && !isValidTrustDomain(w.trustDomain)) return { ok: false, reason: `workload.trustDomain: ${JSON.stringify(w.trustDomain)} is not a SPIFFE trust domain` };
  const identity = { trustDomain: w.trustDomain ?? trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount };
  if (!isValidWorkloadIdentity(identity)) return { ok: false, reason: `workload: namespace ${JSON.stringify(w.namespace)} and service account ${JSON.stringify(w.serviceAccount)} make no valid SPIFFE identity` };
  return { ok: true, value: { kind: 'workload', workload: w } };
}

function checkService(name: string, decoded: Service): Checked<DecodedAddress> {
  const parsed = serviceSchema.safeParse(decoded);
  if (!parsed.success) return { ok: false, reason: describeIssues(parsed.error, 'service', 3).join('; ') };
  const s = parsed.data as Service;
  if (serviceResourceName(s) !== name) return { ok: false, reason: `resource name ${JSON.stringify(name)} is not the service's namespace/hostname ${JSON.stringify(serviceResourceName(s))}` };
  return { ok: true, value: { kind: 'service', service: s } };
}

/** One `istio.workload.Address` resource, decoded and checked on its own. */
export function checkAddressResource(name: string, bytes: Uint8Array, trustDomain: string): Checked<DecodedAddress> {
  let decoded: DecodedAddress;
  try {
    decoded = decodeAddress(bytes);
  } catch (err) {
    return { ok: false, reason: firstLine(err) };
  }
  return decoded.kind === 'workload' ? checkWorkload(name, decoded.workload, trustDomain) : checkService(name, decoded.service);
}

/** One `istio.security.Authorization` resource, decoded and checked on its own. */
export function checkAuthorizationResource(name: string, bytes: Uint8Array): Checked<Authorization> {
  let decoded: Authorization;
  try {
    decoded = decodeAuthorization(bytes);
  } catch (err) {
    return { ok: false, reason: firstLine(err) };
  }
  const parsed = authorizationSchema.safeParse(decoded);
  if (!parsed.success) return { ok: false, reason: describeIssues(parsed.error, 'authorization', 3).join('; ') };
  const a = parsed.data as Authorization;
  if (authorizationResourceName(a) !== name) return { ok: false, reason: `resource name ${JSON.stringify(name)} is not the policy's namespace/name ${JSON.stringify(authorizationResourceName(a))}` };
  return { ok: true, value: a };
}

/** One `amesh.telemetry.v1.Telemetry` resource: decoded, schema-checked, named after its namespace. */
export function checkTelemetryResource(name: string, bytes: Uint8Array): Checked<NamespaceTelemetry> {
  let t: NamespaceTelemetry;
  try {
    t = decodeTelemetry(bytes);
  } catch (err) {
    return { ok: false, reason: firstLine(err) };
  }
  if (t.namespace !== name) return { ok: false, reason: `resource name ${JSON.stringify(name)} is not the Telemetry's namespace ${JSON.stringify(t.namespace)}` };
  return { ok: true, value: t };
}

export interface AppliedUpdate<T> {
  next: ReadonlyMap<string, T>;
  /** name → reason, for the NACK. */
  rejected: Map<string, string>;
  /** Names whose upsert or removal took effect. */
  changed: string[];
}

/** Refuses upserts that clash with resources applied so far; told about each accepted one. */
export interface UpsertGuard<T> {
  refuse(name: string, value: T): string | undefined;
  accepted(name: string, previous: T | undefined, value: T): void;
}

/**
 * Applies one response of a type: removals first, then each checked upsert, which `guard`
 * (built over the resources after the removals) may refuse.
 */
export function applyUpdate<T>(
  current: ReadonlyMap<string, T>,
  upserts: ReadonlyArray<{ name: string; checked: Checked<T> }>,
  removed: readonly string[],
  makeGuard?: (resources: ReadonlyMap<string, T>) => UpsertGuard<T>,
): AppliedUpdate<T> {
  const next = new Map(current);
  const rejected = new Map<string, string>();
  const changed: string[] = [];
  for (const name of removed) if (next.delete(name)) changed.push(name);
  const guard = makeGuard?.(next);
  for (const { name, checked } of upserts) {
    if (!checked.ok) {
      rejected.set(name, checked.reason);
      continue;
    }
    const why = guard?.refuse(name, checked.value);
    if (why !== undefined) {
      rejected.set(name, why);
      continue;
    }
    guard?.accepted(name, next.get(name), checked.value);
    next.set(name, checked.value);
    changed.push(name);
  }
  return { next, rejected, changed };
}

/** The address rule, with an index so a full state of n workloads is checked in O(n). */
export function addressGuard(resources: ReadonlyMap<string, DecodedAddress>): UpsertGuard<DecodedAddress> {
  const holder = new Map<string, { name: string; uid: string }>();
  for (const [name, r] of resources) if (r.kind === 'workload') for (const a of r.workload.addresses) holder.set(a, { name, uid: r.workload.uid });
  return {
    refuse(name, value) {
      if (value.kind !== 'workload') return undefined;
      for (const a of value.workload.addresses) {
        const h = holder.get(a);
        if (h && h.name !== name) return `workload.addresses: ${a} is also used by workload ${h.uid}`;
      }
      return undefined;
    },
    accepted(name, previous, value) {
      if (previous?.kind === 'workload') for (const a of previous.workload.addresses) if (holder.get(a)?.name === name) holder.delete(a);
      if (value.kind === 'workload') for (const a of value.workload.addresses) holder.set(a, { name, uid: value.workload.uid });
    },
  };
}

const byName = <T>(map: ReadonlyMap<string, T>): T[] => [...map.keys()].sort().map((k) => map.get(k) as T);

export function buildSnapshot(trustDomain: string, addresses: ReadonlyMap<string, DecodedAddress>, authorizations: ReadonlyMap<string, Authorization>): MeshSnapshot {
  const workloads: Workload[] = [];
  const services: Service[] = [];
  for (const a of byName(addresses)) {
    if (a.kind === 'workload') workloads.push(a.workload);
    else services.push(a.service);
  }
  return { trustDomain, workloads, services, policies: byName(authorizations) };
}
