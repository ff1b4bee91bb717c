/**
 * What the controller serves over xDS: per type URL, the encoded resources `name → {version,
 * bytes}`. The translation layer replaces a whole type at once (`replaceAll`) or touches single
 * resources; the ADS server reads snapshots and listens for changes.
 *
 * Invariants:
 * - `version` is a short hash of the bytes, so re-publishing an unchanged resource keeps its
 *   version and is not a change (nothing is pushed), and every controller replica agrees on it.
 * - A snapshot (`resources(typeUrl)`) is never mutated: each change publishes a new map, so a
 *   reader can diff against the snapshot it holds without copying.
 * - One call makes at most one change event, listing every name upserted or removed; a call that
 *   changes nothing makes none.
 */
import { createHash } from 'node:crypto';

export interface StoredResource {
  readonly version: string;
  readonly bytes: Uint8Array;
}

export interface ResourceChange {
  typeUrl: string;
  /** Names added or whose bytes changed. */
  upserted: string[];
  /** Names no longer served. */
  removed: string[];
}

export type ResourceChangeListener = (change: ResourceChange) => void;

const EMPTY: ReadonlyMap<string, StoredResource> = new Map();

/** 16 hex digits of SHA-256: short enough for logs and annotations, collisions out of reach. */
export function resourceVersion(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

export class ResourceStore {
  private readonly byType = new Map<string, ReadonlyMap<string, StoredResource>>();
  private readonly listeners = new Set<ResourceChangeListener>();

  /** The current resources of a type (an immutable snapshot; empty when none). */
  resources(typeUrl: string): ReadonlyMap<string, StoredResource> {
    return this.byType.get(typeUrl) ?? EMPTY;
  }

  get(typeUrl: string, name: string): StoredResource | undefined {
    return this.byType.get(typeUrl)?.get(name);
  }

  /** Serve exactly these resources of `typeUrl`; returns the change (also emitted), or undefined. */
  replaceAll(typeUrl: string, resources: ReadonlyMap<string, Uint8Array>): ResourceChange | undefined {
    const previous = this.resources(typeUrl);
    const next = new Map<string, StoredResource>();
    const upserted: string[] = [];
    for (const [name, bytes] of resources) {
      const old = previous.get(name);
      // The very same buffer (a publisher's cache hit) needs no hashing to be known unchanged.
      if (old?.bytes === bytes) {
        next.set(name, old);
        continue;
      }
      const version = resourceVersion(bytes);
      if (old?.version === version) next.set(name, old);
      else {
        next.set(name, { version, bytes });
        upserted.push(name);
      }
    }
    const removed = [...previous.keys()].filter((name) => !resources.has(name));
    return this.publish(typeUrl, next, upserted, removed);
  }

  /** Add or replace one resource. */
  upsert(typeUrl: string, name: string, bytes: Uint8Array): ResourceChange | undefined {
    const previous = this.resources(typeUrl);
    const version = resourceVersion(bytes);
    if (previous.get(name)?.version === version) return undefined;
    const next = new Map(previous);
    next.set(name, { version, bytes });
    return this.publish(typeUrl, next, [name], []);
  }

  /** Stop serving one resource. */
  remove(typeUrl: string, name: string): ResourceChange | undefined {
    const previous = this.resources(typeUrl);
    if (!previous.has(name)) return undefined;
    const next = new Map(previous);
    next.delete(name);
    return this.publish(typeUrl, next, [], [name]);
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  onChange(listener: ResourceChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private publish(typeUrl: string, next: Map<string, StoredResource>, upserted: string[], removed: string[]): ResourceChange | undefined {
    if (upserted.length === 0 && removed.length === 0) return undefined;
    this.byType.set(typeUrl, next);
    const change: ResourceChange = { typeUrl, upserted, removed };
    for (const listener of this.listeners) listener(change);
    return change;
  }
}
