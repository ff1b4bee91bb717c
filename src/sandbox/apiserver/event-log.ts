/**
 * The bounded history of writes that lets a watch resume from a resourceVersion (what etcd's
 * revision history does for kube-apiserver). Once an entry falls out, a watch from before it
 * is answered with 410 Expired and the client re-lists — the same contract client-go and
 * client-node informers implement.
 */
import type { KubeObject } from './types.js';

export interface LoggedEvent {
  resourceVersion: number;
  storageKey: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The object after the write (for DELETED: its last state). Never mutated after logging. */
  object: KubeObject;
  /** The object before the write, so selector-filtered watches can tell entering from leaving. */
  previous?: KubeObject;
}

export class EventLog {
  readonly #capacity: number;
  #entries: LoggedEvent[] = [];
  #start = 0;
  #compactedThrough: number;

  /** `startAfter`: the resourceVersion the log begins after (history before it is unknown). */
  constructor(capacity: number, startAfter = 0) {
    this.#capacity = Math.max(1, capacity);
    this.#compactedThrough = startAfter;
  }

  append(event: LoggedEvent): void {
    this.#entries.push(event);
    if (this.#entries.length - this.#start > this.#capacity) {
      this.#compactedThrough = this.#entries[this.#start]?.resourceVersion ?? this.#compactedThrough;
      this.#start++;
      // Compact the backing array occasionally instead of shifting on every append.
      if (this.#start > this.#capacity) {
        this.#entries = this.#entries.slice(this.#start);
        this.#start = 0;
      }
    }
  }

  /** The newest resourceVersion no longer in the log: resuming from before it is impossible. */
  get compactedThrough(): number {
    return this.#compactedThrough;
  }

  /** Events after `resourceVersion`, or undefined when some of them have been dropped. */
  since(resourceVersion: number): LoggedEvent[] | undefined {
    if (resourceVersion < this.#compactedThrough) return undefined;
    const out: LoggedEvent[] = [];
    for (let i = this.#start; i < this.#entries.length; i++) {
      const entry = this.#entries[i];
      if (entry && entry.resourceVersion > resourceVersion) out.push(entry);
    }
    return out;
  }
}
