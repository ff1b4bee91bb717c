/**
 * The pod annotation `ambient.istio.io/redirection` (DESIGN §7), Istio's name and values:
 * `enabled` — enrolled and its node agent has confirmed it captures the pod (an xDS ACK);
 * `pending` — enrolled, not confirmed yet; `disabled` — not (or no longer) enrolled.
 *
 * Decisions (pure, `redirectionWrite`): host-network pods are never annotated (never enrolled,
 * and their object is not ours to decorate); finished or deleting pods are left alone; an
 * unenrolled pod without the annotation is left without it — absent already means disabled, and
 * annotating every pod of a cluster that uses the mesh in one namespace would be noise and load.
 *
 * Writes (`PodRedirectionWriter`): a JSON merge patch of that one annotation, only when the value
 * differs from the pod's; at most `concurrency` in flight; one queued write per pod (the latest
 * wins); retried with backoff on 409/429/5xx/network errors, dropped on 404 (the pod is gone).
 * A write we just made is not repeated while the informer cache still shows the pod as it was
 * before the write (the watch event is on its way).
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../telemetry/logger.js';
import { statusCodeOf } from '../kube/informer.js';
import { isEnrolled, type NamespaceObject, type PodObject } from '../translate/enrolment.js';

export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';

export type RedirectionState = 'enabled' | 'pending' | 'disabled';

export function redirectionAnnotation(enrolled: boolean, capturedByAgent: boolean): RedirectionState {
  if (!enrolled) return 'disabled';
  return capturedByAgent ? 'enabled' : 'pending';
}

/**
 * The value to write on the pod now, or undefined when nothing should be written.
 * `capturedByAgent` undefined = not known yet (the pod's node agent has not answered since the
 * controller started): an enrolled pod keeps whatever it has, so a controller restart does not
 * flip every pod to `pending` and back.
 */
export function redirectionWrite(pod: PodObject, namespace: NamespaceObject | undefined, capturedByAgent: boolean | undefined): RedirectionState | undefined {
  if (pod.spec?.hostNetwork) return undefined;
  if (pod.metadata.deletionTimestamp) return undefined;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  const enrolled = isEnrolled(pod, namespace);
  if (enrolled && capturedByAgent === undefined) return undefined;
  const desired = redirectionAnnotation(enrolled, capturedByAgent ?? false);
  const current = pod.metadata.annotations?.[REDIRECTION_ANNOTATION];
  if (current === desired) return undefined;
  if (desired === 'disabled' && current === undefined) return undefined;
  return desired;
}

/** Merge-patches annotations onto a pod; rejects with an error carrying the HTTP status (`code`/`statusCode`). */
export type PodAnnotationPatcher = (namespace: string, name: string, annotations: Record<string, string>) => Promise<void>;

export function kubePodAnnotationPatcher(kubeConfig: KubeConfig): PodAnnotationPatcher {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return async (namespace, name, annotations) => {
    await core.patchNamespacedPod({ namespace, name, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  };
}

export function isRetryable(err: unknown): boolean {
  const status = statusCodeOf(err);
  if (status === undefined) return true; // network error
  return status === 409 || status === 429 || status >= 500;
}

export interface PodRedirectionWriterOptions {
  /** Patches pods (default: through the API server of `kubeConfig`). */
  patch?: PodAnnotationPatcher;
  kubeConfig?: KubeConfig;
  /** Has the pod's node agent confirmed it captures this pod (xDS ACK)? */
  capturedByAgent: (podUid: string) => boolean | undefined;
  log: Logger;
  concurrency?: number;
  maxAttempts?: number;
  retryBaseMs?: number;
}

interface Job {
  namespace: string;
  name: string;
  value: RedirectionState;
  /** The pod's resourceVersion when we decided. */
  seenVersion: string | undefined;
  attempt: number;
}

export class PodRedirectionWriter {
  readonly #patch: PodAnnotationPatcher;
  readonly #captured: (podUid: string) => boolean | undefined;
  readonly #log: Logger;
  readonly #concurrency: number;
  readonly #maxAttempts: number;
  readonly #retryBaseMs: number;
  readonly #pending = new Map<string, Job>();
  readonly #inFlight = new Set<string>();
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  /** Our last successful write per pod, until the cache shows the pod changed. */
  readonly #written = new Map<string, { value: RedirectionState; seenVersion: string | undefined }>();
  readonly #idleWaiters: Array<() => void> = [];
  #stopped = false;

  constructor(opts: PodRedirectionWriterOptions) {
    if (opts.patch) this.#patch = opts.patch;
    else if (opts.kubeConfig) this.#patch = kubePodAnnotationPatcher(opts.kubeConfig);
    else throw new TypeError('PodRedirectionWriter needs patch or kubeConfig');
    this.#captured = opts.capturedByAgent;
    this.#log = opts.log.child({ component: 'redirection-status' });
    this.#concurrency = Math.max(1, opts.concurrency ?? 4);
    this.#maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.#retryBaseMs = opts.retryBaseMs ?? 200;
  }

  /** Queues a write for every pod whose annotation should change. */
  reconcile(pods: Iterable<PodObject>, namespaceOf: (name: string) => NamespaceObject | undefined): void {
    if (this.#stopped) return;
    for (const pod of pods) {
      const namespace = pod.metadata.namespace ?? 'default';
      const name = pod.metadata.name ?? '';
      const key = `${namespace}/${name}`;
      const version = pod.metadata.resourceVersion;
      const written = this.#written.get(key);
      if (written && written.seenVersion !== version) this.#written.delete(key);
      const value = redirectionWrite(pod, namespaceOf(namespace), this.#captured(pod.metadata.uid ?? ''));
      if (value === undefined) {
        this.#pending.delete(key);
        continue;
      }
      if (this.#written.get(key)?.value === value) continue; // the cache has not caught up yet
      this.#pending.set(key, { namespace, name, value, seenVersion: version, attempt: 1 });
    }
    this.#pump();
  }

  /** Resolves when nothing is queued, in flight or waiting for a retry. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  stop(): void {
    this.#stopped = true;
    this.#pending.clear();
    for (const t of this.#retryTimers) clearTimeout(t);
    this.#retryTimers.clear();
    this.#settle();
  }

  #isIdle(): boolean {
    return this.#pending.size === 0 && this.#inFlight.size === 0 && this.#retryTimers.size === 0;
  }

  #settle(): void {
    if (this.#isIdle()) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  #pump(): void {
    for (const [key, job] of this.#pending) {
      if (this.#inFlight.size >= this.#concurrency) break;
      if (this.#inFlight.has(key)) continue;
      this.#pending.delete(key);
      void this.#run(key, job);
    }
    this.#settle();
  }

  async #run(key: string, job: Job): Promise<void> {
    this.#inFlight.add(key);
    try {
      await this.#patch(job.namespace, job.name, { [REDIRECTION_ANNOTATION]: job.value });
      this.#written.set(key, { value: job.value, seenVersion: job.seenVersion });
      this.#log.debug({ pod: key, value: job.value }, 'redirection annotation written');
    } catch (err) {
      const status = statusCodeOf(err);
      if (status === 404) {
        this.#log.debug({ pod: key }, 'pod gone before its redirection annotation was written');
      } else if (isRetryable(err) && job.attempt < this.#maxAttempts && !this.#stopped) {
        const delay = Math.min(this.#retryBaseMs * 2 ** (job.attempt - 1), 10_000);
        this.#log.warn({ pod: key, status, attempt: job.attempt, retryInMs: delay, err: err instanceof Error ? err.message : String(err) }, 'writing the redirection annotation failed; retrying');
        const timer = setTimeout(() => {
          this.#retryTimers.delete(timer);
          if (this.#stopped) return this.#settle();
          // A newer decision for the pod, queued meanwhile, wins.
          if (!this.#pending.has(key)) this.#pending.set(key, { ...job, attempt: job.attempt + 1 });
          this.#pump();
        }, delay);
        timer.unref();
        this.#retryTimers.add(timer);
      } else {
        this.#log.warn({ pod: key, status, attempts: job.attempt, err: err instanceof Error ? err.message : String(err) }, 'writing the redirection annotation failed; giving up until the next reconcile');
      }
    } finally {
      this.#inFlight.delete(key);
      this.#pump();
    }
  }
}
