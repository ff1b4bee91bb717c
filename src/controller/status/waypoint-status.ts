/**
 * Explaining waypoints on the objects they apply to (DESIGN §7: the Service or Pod says which
 * waypoint applies, or why none does). Decisions are pure; writes go through narrow patchers.
 *
 * - Services: condition `istio.io/WaypointBound` in `status.conditions` (Istio's type), merge-
 *   patched through the status subresource: True/`Bound` "bound to waypoint demo/waypoint
 *   (istio.io/use-waypoint on the namespace)", or False with `NotBound` | `WaypointNotFound` |
 *   `WaypointWrongKind` | `WaypointNotAccepted` and the reason.
 * - Pods: annotation `amesh.io/waypoint: <ns>/<name>` or `none: <reason>` (pod status conditions
 *   belong to the kubelet, which rewrites them).
 * Only objects a waypoint concerns are written — their own or their namespace's
 * `istio.io/use-waypoint`, or a per-service-account waypoint of their namespace covering them
 * (`WaypointBindingRecord.relevant`); the rest of the cluster is not patched. When an object
 * stops being concerned, our condition / annotation is removed again.
 *
 * Writes happen only when the value differs from the object's, and not again while the cache
 * still shows the object as it was before our write. 404 (object gone) is skipped; 405 (a server
 * without Service /status) is logged once. A reconcile while one runs replaces any queued one.
 */
import { LatestWorkQueue } from './latest-work-queue.js';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { statusCodeOf } from '../kube/informer.js';
import { waypointBindingKey, type MeshResources, type MeshView, type WaypointBindingRecord } from '../mesh/compute-mesh-resources.js';
import { mergeConditions, sameConditions, type Condition, type ConditionSpec } from '../waypoint/conditions.js';

export const WAYPOINT_BOUND_CONDITION = 'istio.io/WaypointBound';
export const WAYPOINT_ANNOTATION = 'amesh.io/waypoint';

/** The condition a Service should carry, or undefined when none should. */
export function waypointCondition(record: WaypointBindingRecord | undefined): ConditionSpec | undefined {
  if (!record?.relevant) return undefined;
  if (record.binding.waypoint) {
    const { namespace, name } = record.binding.waypoint.ref;
    return { type: WAYPOINT_BOUND_CONDITION, status: 'True', reason: 'Bound', message: `bound to waypoint ${namespace}/${name} (${record.detail})` };
  }
  return { type: WAYPOINT_BOUND_CONDITION, status: 'False', reason: record.reason, message: record.detail };
}

/** The annotation value a Pod should carry, or undefined when none should. */
export function waypointAnnotation(record: WaypointBindingRecord | undefined): string | undefined {
  if (!record?.relevant) return undefined;
  if (record.binding.waypoint) return `${record.binding.waypoint.ref.namespace}/${record.binding.waypoint.ref.name}`;
  return `none: ${record.detail}`;
}

interface ObjectShape {
  metadata: { name?: string; namespace?: string; generation?: number; resourceVersion?: string; annotations?: Record<string, string> };
  status?: unknown;
}

/** The Service's next conditions, or undefined when nothing is to be written. */
export function serviceConditionsWrite(service: ObjectShape, record: WaypointBindingRecord | undefined, now: Date): Condition[] | undefined {
  const current = (service.status as { conditions?: Condition[] } | undefined)?.conditions;
  const desired = waypointCondition(record);
  const hasOurs = current?.some((c) => c.type === WAYPOINT_BOUND_CONDITION) ?? false;
  if (!desired && !hasOurs) return undefined;
  const next = mergeConditions(desired ? [desired] : [], current, [WAYPOINT_BOUND_CONDITION], service.metadata.generation, now);
  return sameConditions(current, next) ? undefined : next;
}

/** The Pod's annotation write: a value, null to remove it, undefined for nothing. */
export function podAnnotationWrite(pod: ObjectShape, record: WaypointBindingRecord | undefined): string | null | undefined {
  const current = pod.metadata.annotations?.[WAYPOINT_ANNOTATION];
  const desired = waypointAnnotation(record);
  if (desired === current) return undefined;
  if (desired === undefined) return current === undefined ? undefined : null;
  return desired;
}

export type ServiceStatusPatcher = (namespace: string, name: string, status: { conditions: Condition[] }) => Promise<void>;
export type PodAnnotationsPatcher = (namespace: string, name: string, annotations: Record<string, string | null>) => Promise<void>;

export function kubeServiceStatusPatcher(kubeConfig: KubeConfig): ServiceStatusPatcher {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return async (namespace, name, status) => {
    await core.patchNamespacedServiceStatus({ namespace, name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  };
}

export function kubePodAnnotationsPatcher(kubeConfig: KubeConfig): PodAnnotationsPatcher {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return async (namespace, name, annotations) => {
    await core.patchNamespacedPod({ namespace, name, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  };
}

export interface WaypointStatusWriterOptions {
  kubeConfig?: KubeConfig;
  patchServiceStatus?: ServiceStatusPatcher;
  patchPodAnnotations?: PodAnnotationsPatcher;
  log: Logger;
  now?: () => Date;
  /** Writes in flight at once (default 4). */
  concurrency?: number;
}

interface Work {
  kind: 'Service' | 'Pod';
  namespace: string;
  name: string;
  seenVersion: string | undefined;
  /** What we write, for the "already written" check. */
  json: string;
  write: () => Promise<void>;
}

export class WaypointStatusWriter {
  readonly #patchService: ServiceStatusPatcher;
  readonly #patchPod: PodAnnotationsPatcher;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #queue: LatestWorkQueue<Work>;
  readonly #written = new Map<string, { json: string; seenVersion: string | undefined }>();
  #unsupportedLogged = false;

  constructor(opts: WaypointStatusWriterOptions) {
    const { kubeConfig } = opts;
    if (!kubeConfig && (!opts.patchServiceStatus || !opts.patchPodAnnotations)) throw new TypeError('WaypointStatusWriter needs kubeConfig or both patchers');
    this.#patchService = opts.patchServiceStatus ?? kubeServiceStatusPatcher(kubeConfig as KubeConfig);
    this.#patchPod = opts.patchPodAnnotations ?? kubePodAnnotationsPatcher(kubeConfig as KubeConfig);
    this.#log = opts.log.child({ component: 'waypoint-status' });
    this.#now = opts.now ?? (() => new Date());
    this.#queue = new LatestWorkQueue<Work>((item) => this.#write(item), Math.max(1, opts.concurrency ?? 4));
  }

  /** Queues the writes that bring Services and Pods in line with `resources.waypointBindings`. */
  reconcile(view: Pick<MeshView, 'services' | 'pods'>, resources: Pick<MeshResources, 'waypointBindings'>): void {
    if (this.#queue.stopped) return;
    const work: Work[] = [];
    const now = this.#now();
    const live = new Set<string>();
    for (const service of view.services) {
      const namespace = service.metadata.namespace ?? 'default';
      const name = service.metadata.name ?? '';
      const key = waypointBindingKey('Service', namespace, name);
      live.add(key);
      const next = serviceConditionsWrite(service, resources.waypointBindings.get(key), now);
      if (!next) continue;
      const json = JSON.stringify(next.map((c) => [c.type, c.status, c.reason, c.message]));
      work.push({ kind: 'Service', namespace, name, seenVersion: service.metadata.resourceVersion, json, write: () => this.#patchService(namespace, name, { conditions: next }) });
    }
    for (const pod of view.pods) {
      const namespace = pod.metadata.namespace ?? 'default';
      const name = pod.metadata.name ?? '';
      const key = waypointBindingKey('Pod', namespace, name);
      live.add(key);
      const value = podAnnotationWrite(pod, resources.waypointBindings.get(key));
      if (value === undefined) continue;
      work.push({ kind: 'Pod', namespace, name, seenVersion: pod.metadata.resourceVersion, json: JSON.stringify(value), write: () => this.#patchPod(namespace, name, { [WAYPOINT_ANNOTATION]: value }) });
    }
    for (const key of this.#written.keys()) if (!live.has(key)) this.#written.delete(key);
    this.#queue.replace(work);
  }

  /** Resolves when no reconcile is running or queued. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  stop(): void {
    this.#queue.stop();
  }

  async #write(item: Work): Promise<void> {
    const key = waypointBindingKey(item.kind, item.namespace, item.name);
    const written = this.#written.get(key);
    if (written && written.json === item.json && written.seenVersion === item.seenVersion) return; // the cache has not caught up yet
    try {
      await item.write();
      this.#written.set(key, { json: item.json, seenVersion: item.seenVersion });
      this.#log.debug({ kind: item.kind, object: `${item.namespace}/${item.name}`, value: item.json }, 'waypoint status written');
    } catch (err) {
      const status = statusCodeOf(err);
      if (status === 404) return;
      if (status === 405 && item.kind === 'Service') {
        if (!this.#unsupportedLogged) {
          this.#unsupportedLogged = true;
          this.#log.warn({ object: `${item.namespace}/${item.name}` }, 'the API server does not serve Service /status; waypoint conditions on Services are skipped');
        }
        return;
      }
      this.#log.warn({ kind: item.kind, object: `${item.namespace}/${item.name}`, status, err: err instanceof Error ? err.message : String(err) }, 'writing waypoint status failed; retried on the next change');
    }
  }
}
