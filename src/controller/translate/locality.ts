/**
 * A workload's locality (istio.workload.Locality), Istio's rule. Pure.
 *
 * - The pod's own label `topology.istio.io/locality` wins (legacy `istio-locality` too):
 *   `region.zone.subzone`, `.` separating because label values cannot hold `/` (a value with `/`
 *   is split on `/`); the subzone keeps any further dots.
 * - Otherwise its node's labels: `topology.kubernetes.io/region` / `topology.kubernetes.io/zone`
 *   (before them the deprecated `failure-domain.beta.kubernetes.io/*`, as Istio still reads) and
 *   `topology.istio.io/subzone`.
 * - No label anywhere (or the node not known yet) = no locality.
 *
 * Parts left empty are left out, so `{}` never goes on the wire.
 */
import type { Locality } from '../../node-agent/state/types.js';
import type { ObjectMeta, PodObject } from './enrolment.js';

export const POD_LOCALITY_LABELS = ['topology.istio.io/locality', 'istio-locality'] as const;
export const NODE_REGION_LABELS = ['topology.kubernetes.io/region', 'failure-domain.beta.kubernetes.io/region'] as const;
export const NODE_ZONE_LABELS = ['topology.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/zone'] as const;
export const NODE_SUBZONE_LABEL = 'topology.istio.io/subzone';
/** Every node label locality is read from (relevant-change.ts: other node changes do not count). */
export const NODE_LOCALITY_LABELS: readonly string[] = [...NODE_REGION_LABELS, ...NODE_ZONE_LABELS, NODE_SUBZONE_LABEL];

export interface NodeObject {
  metadata: ObjectMeta;
}

function first(labels: Readonly<Record<string, string>> | undefined, keys: readonly string[]): string {
  for (const k of keys) {
    const v = labels?.[k]?.trim();
    if (v) return v;
  }
  return '';
}

function locality(region: string, zone: string, subzone: string): Locality | undefined {
  const out: Locality = {};
  if (region) out.region = region;
  if (zone) out.zone = zone;
  if (subzone) out.subzone = subzone;
  return Object.keys(out).length ? out : undefined;
}

/** The locality a pod label states, or undefined without one. */
export function labelLocality(labels: Readonly<Record<string, string>> | undefined): Locality | undefined {
  const value = first(labels, POD_LOCALITY_LABELS);
  if (!value) return undefined;
  const parts = (value.includes('/') ? value.split('/') : value.split('.')).map((p) => p.trim());
  return locality(parts[0] ?? '', parts[1] ?? '', parts.slice(2).join(value.includes('/') ? '/' : '.'));
}

/** The locality of a node's topology labels, or undefined without any. */
export function nodeLocality(node: NodeObject | undefined): Locality | undefined {
  const labels = node?.metadata.labels;
  return locality(first(labels, NODE_REGION_LABELS), first(labels, NODE_ZONE_LABELS), first(labels, [NODE_SUBZONE_LABEL]));
}

/** The pod's label wins; else its node's labels (`node` = the Node named by `spec.nodeName`, if known). */
export function workloadLocality(pod: PodObject, node: NodeObject | undefined): Locality | undefined {
  return labelLocality(pod.metadata.labels) ?? nodeLocality(node);
}
