/**
 * The loop every sandbox controller runs in, like client-go's workqueue + informer pair:
 *
 * - Watches turn store events into keys; a key sits in the queue at most once (dirty set), so
 *   a burst of events for one object costs one reconcile.
 * - Reconciles run one at a time per controller, on a macrotask, never inside a store write.
 * - A reconcile that throws is retried for that key with exponential back-off (5 ms doubling to
 *   10 s); a 409 Conflict is expected under concurrent writers and logged at debug, anything
 *   else at warn. Success resets the key's back-off. Nothing escapes the runner.
 * - A reconcile may ask to be run again after a delay (time-based conditions such as
 *   minReadySeconds or a failed-pod back-off); those timers do not count as pending work.
 *
 * `pendingWork()` lets `idle()` tell when the controller has nothing queued, running or
 * waiting to retry.
 */
import type { Logger } from 'pino';
import { ApiError, type ClusterStore, type KubeObject, type WatchEvent, type WatchOptions } from '../apiserver/types.js';

export interface WatchSource {
  apiVersion: string;
  kind: string;
  options?: WatchOptions;
  /** The keys an event concerns; may consult the store (e.g. pod → the services selecting it). */
  keys(event: WatchEvent): string[];
}

export interface ReconcileOutcome {
  /** Run this key again after this many milliseconds. */
  requeueAfterMs?: number;
}

export interface ControllerDefinition {
  name: string;
  watches: WatchSource[];
  reconcile(key: string): ReconcileOutcome | void;
}

export interface RunningController {
  readonly name: string;
  /** Keys queued, a reconcile running, or an error retry waiting. */
  pendingWork(): number;
  enqueue(key: string): void;
  stop(): void;
}

const RETRY_BASE_MS = 5;
const RETRY_MAX_MS = 10_000;

export function runController(definition: ControllerDefinition, store: ClusterStore, log: Logger): RunningController {
  const queue = new Set<string>();
  const failures = new Map<string, number>();
  const retryTimers = new Map<string, NodeJS.Timeout>();
  const delayedTimers = new Map<string, NodeJS.Timeout>();
  const stopWatches: Array<() => void> = [];
  let running = false;
  let scheduled: NodeJS.Immediate | undefined;
  let stopped = false;

  function enqueue(key: string): void {
    if (stopped) return;
    queue.add(key);
    schedule();
  }

  function schedule(): void {
    if (scheduled || running || queue.size === 0) return;
    scheduled = setImmediate(drain);
  }

  function drain(): void {
    scheduled = undefined;
    running = true;
    try {
      // Bounded batch per turn so watch deliveries and other controllers interleave.
      for (let processed = 0; processed < 64 && queue.size > 0 && !stopped; processed++) {
        const key = queue.values().next().value as string;
        queue.delete(key);
        processOne(key);
      }
    } finally {
      running = false;
      schedule();
    }
  }

  function processOne(key: string): void {
    try {
      const outcome = definition.reconcile(key);
      failures.delete(key);
      if (outcome?.requeueAfterMs !== undefined) requeueAfter(key, outcome.requeueAfterMs, delayedTimers);
    } catch (err) {
      const attempts = (failures.get(key) ?? 0) + 1;
      failures.set(key, attempts);
      const delayMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempts - 1));
      const conflict = err instanceof ApiError && err.code === 409;
      const fields = { controller: definition.name, key, attempts, retryInMs: delayMs, err: err instanceof Error ? err.message : String(err) };
      if (conflict) log.debug(fields, 'reconcile conflicted, retrying');
      else log.warn(fields, 'reconcile failed, retrying');
      requeueAfter(key, delayMs, retryTimers);
    }
  }

  function requeueAfter(key: string, delayMs: number, timers: Map<string, NodeJS.Timeout>): void {
    if (stopped || timers.has(key)) return;
    const timer = setTimeout(() => {
      timers.delete(key);
      enqueue(key);
    }, Math.max(0, delayMs));
    timer.unref();
    timers.set(key, timer);
  }

  function startWatch(source: WatchSource): void {
    if (!store.resourceType(source.apiVersion, source.kind)) {
      log.warn({ controller: definition.name, apiVersion: source.apiVersion, kind: source.kind }, 'store does not serve this kind; not watching it');
      return;
    }
    const stopWatch = store.watch(source.apiVersion, source.kind, source.options ?? {}, (event) => {
      if (stopped || event.type === 'BOOKMARK') return;
      if (event.type === 'ERROR') {
        // The in-memory store only errors a watch when it expired; start over from a fresh list.
        log.warn({ controller: definition.name, kind: source.kind }, 'watch ended with an error; restarting it');
        stopWatch();
        startWatch(source);
        return;
      }
      let keys: string[];
      try {
        keys = source.keys(event);
      } catch (err) {
        log.warn({ controller: definition.name, kind: source.kind, name: (event.object as KubeObject).metadata?.name, err: err instanceof Error ? err.message : String(err) }, 'mapping a watch event to keys failed');
        return;
      }
      for (const key of keys) enqueue(key);
    });
    stopWatches.push(stopWatch);
  }

  for (const source of definition.watches) startWatch(source);

  return {
    name: definition.name,
    pendingWork: () => queue.size + (running ? 1 : 0) + retryTimers.size,
    enqueue,
    stop(): void {
      stopped = true;
      for (const stopWatch of stopWatches.splice(0)) stopWatch();
      for (const timer of [...retryTimers.values(), ...delayedTimers.values()]) clearTimeout(timer);
      retryTimers.clear();
      delayedTimers.clear();
      if (scheduled) clearImmediate(scheduled);
      scheduled = undefined;
      queue.clear();
    },
  };
}
