/**
 * Mesh resources (computed from the cluster by MeshIndex) → the xDS ResourceStore.
 *
 * Every MeshIndex change schedules one publication after `coalesceMs`, so the informers' burst of
 * events (a Deployment's pods starting) is translated and encoded once; the ADS server then
 * debounces the pushes themselves. A publication replaces each type's whole set: the store keeps
 * the version (a hash of the bytes) of every unchanged resource, so only real changes go out.
 *
 * A resource that cannot be encoded (say a pod status with a malformed IP) is left out with a
 * warning naming it; it never blocks the rest of the mesh.
 */
import { describeError } from '../../errors/amesh-error.js';
import type { Logger } from '../../telemetry/logger.js';
import {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  authorizationResourceName,
  encodeAuthorization,
  encodeServiceAddress,
  encodeWorkloadAddress,
  serviceResourceName,
  workloadResourceName,
} from '../../xds/codec.js';
import type { MeshResources } from '../mesh/compute-mesh-resources.js';
import { CoalescedFollower } from './coalesced-follower.js';
import type { ResourceStore } from './resource-store.js';

export interface MeshSource {
  resources(): MeshResources;
  onChange(listener: () => void): () => void;
}

export interface PublicationStats {
  workloads: number;
  services: number;
  authorizations: number;
  skipped: number;
  durationMs: number;
}

export interface MeshPublisherOptions {
  mesh: MeshSource;
  store: ResourceStore;
  log: Logger;
  /** Informer events within this window become one publication (default 10 ms). */
  coalesceMs?: number;
  /** Called after each publication (the controller reconciles pod annotations then). */
  onPublished?: (stats: PublicationStats) => void;
}

export class MeshPublisher {
  readonly #opts: MeshPublisherOptions;
  readonly #follower: CoalescedFollower;
  #last: PublicationStats | undefined;
  /**
   * name → the resource, its JSON and its encoding, from the last publication. The mesh hands
   * back the very same object for a resource an incremental update did not touch
   * (mesh-index.ts): that is known unchanged without even stringifying it. Otherwise (a full
   * recomputation makes new objects) the JSON decides: at 2 000 pods stringifying is ~4× cheaper
   * than encoding and hashing again. Either way an unchanged resource keeps the same buffer (the
   * store then skips hashing it too).
   */
  #encoded = new Map<string, { item: unknown; json: string; bytes: Uint8Array }>();

  constructor(opts: MeshPublisherOptions) {
    this.#opts = opts;
    this.#follower = new CoalescedFollower(
      (listener) => opts.mesh.onChange(listener),
      () => this.publish(),
      opts.coalesceMs ?? 10,
      // The store keeps the previous (good) state; the next change tries again.
      (err) => opts.log.error({ err: describeError(err) }, 'cannot publish the mesh; agents keep the previous state'),
    );
  }

  /** Publishes the current state now, then follows changes. */
  start(): PublicationStats {
    this.#follower.start();
    return this.publish();
  }

  stop(): void {
    this.#follower.stop();
  }

  last(): PublicationStats | undefined {
    return this.#last;
  }

  publish(): PublicationStats {
    const started = performance.now();
    const { mesh, store, log } = this.#opts;
    const resources = mesh.resources();
    let skipped = 0;
    const cache = new Map<string, { item: unknown; json: string; bytes: Uint8Array }>();
    const encode = <T>(items: Iterable<T>, name: (item: T) => string, bytes: (item: T) => Uint8Array, into: Map<string, Uint8Array>): void => {
      for (const item of items) {
        const key = name(item);
        try {
          const known = this.#encoded.get(key);
          if (known?.item === item) {
            cache.set(key, known);
            into.set(key, known.bytes);
            continue;
          }
          const json = JSON.stringify(item);
          const entry = known?.json === json ? { item, json, bytes: known.bytes } : { item, json, bytes: bytes(item) };
          cache.set(key, entry);
          into.set(key, entry.bytes);
        } catch (err) {
          skipped++;
          log.warn({ resource: key, err: describeError(err) }, 'resource left out of xDS: it cannot be encoded');
        }
      }
    };
    const addresses = new Map<string, Uint8Array>();
    encode(resources.workloads.values(), workloadResourceName, encodeWorkloadAddress, addresses);
    encode(resources.services.values(), serviceResourceName, encodeServiceAddress, addresses);
    const authorizations = new Map<string, Uint8Array>();
    encode(resources.authorizations.values(), authorizationResourceName, encodeAuthorization, authorizations);
    store.replaceAll(ADDRESS_TYPE_URL, addresses);
    store.replaceAll(AUTHORIZATION_TYPE_URL, authorizations);
    this.#encoded = cache;
    const stats: PublicationStats = {
      workloads: resources.workloads.size,
      services: resources.services.size,
      authorizations: resources.authorizations.size,
      skipped,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    };
    this.#last = stats;
    log.debug(stats, 'mesh published');
    this.#opts.onPublished?.(stats);
    return stats;
  }
}
