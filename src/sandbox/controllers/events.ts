/**
 * core/v1 Events for what controllers do (`kubectl describe` shows them). Best effort, like
 * client-go's recorder: a failed Event write is logged and never fails the reconcile.
 */
import type { Logger } from 'pino';
import type { ClusterStore, KubeObject } from '../apiserver/types.js';
import { kubeTime } from './conditions.js';
import { API } from './kube-types.js';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  record(involved: KubeObject, type: EventType, reason: string, message: string): void;
}

export function createEventRecorder(store: ClusterStore, component: string, now: () => number, log: Logger): EventRecorder {
  let sequence = 0;
  return {
    record(involved, type, reason, message) {
      const at = now();
      const timestamp = kubeTime(at);
      // Kubernetes names events `<object>.<unix nanos in hex>`; a sequence keeps them unique
      // when several are recorded within one millisecond.
      const suffix = (BigInt(at) * 1_000_000n + BigInt(sequence++ % 1_000_000)).toString(16);
      try {
        store.create({
          apiVersion: API.event.apiVersion,
          kind: API.event.kind,
          metadata: { name: `${involved.metadata.name ?? 'unknown'}.${suffix}`, namespace: involved.metadata.namespace ?? 'default' },
          involvedObject: {
            apiVersion: involved.apiVersion,
            kind: involved.kind,
            name: involved.metadata.name,
            namespace: involved.metadata.namespace,
            uid: involved.metadata.uid,
            resourceVersion: involved.metadata.resourceVersion,
          },
          reason,
          message,
          type,
          source: { component },
          count: 1,
          firstTimestamp: timestamp,
          lastTimestamp: timestamp,
          reportingComponent: component,
        });
      } catch (err) {
        log.debug({ component, reason, object: involved.metadata.name, err: err instanceof Error ? err.message : String(err) }, 'could not record event');
      }
    },
  };
}
