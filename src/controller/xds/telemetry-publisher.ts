/**
 * Telemetry objects + the mesh config → the xDS ResourceStore: one TELEMETRY_TYPE_URL resource per
 * namespace with a Telemetry plus the root namespace (name = the namespace) for node agents, and
 * the settings of each waypoint / gateway, which the waypoint publisher puts into their
 * WaypointConfig (`telemetry`). It runs inside the waypoint publisher's round (that round knows
 * which waypoints and ingress gateways exist), so one mesh change is one computation; like the
 * other publishers it replaces the whole type, and unchanged resources keep their version.
 *
 * A namespace entry that cannot be encoded (a translator bug) keeps its previous version, with a
 * warning. Mesh config problems are logged when they change (a ConfigMap has no status); the
 * Telemetries' own conditions go to `onPublished` (the status writer).
 */
import { describeError } from '../../errors/amesh-error.js';
import type { Logger } from '../../telemetry/logger.js';
import type { TelemetrySettings } from '../../telemetry/telemetry-config.js';
import { encodeTelemetry, TELEMETRY_TYPE_URL } from '../../xds/telemetry-codec.js';
import type { MeshView } from '../mesh/compute-mesh-resources.js';
import type { ConditionSpec } from '../status/policy-status.js';
import { MESH_CONFIG_MAP_NAME, parseMeshConfig, type ConfigMapObject } from '../translate/mesh-config.js';
import { computeTelemetry, type TelemetryObject, type TelemetryProxy, type TelemetryResult } from '../translate/telemetry.js';
import type { ResourceStore } from './resource-store.js';

export interface TelemetryPublicationStats {
  namespaces: number;
  workloads: number;
  proxies: number;
  telemetries: number;
  /** Namespace entries kept at their previous version (could not be encoded). */
  kept: number;
}

export interface TelemetryPublisherOptions {
  store: ResourceStore;
  log: Logger;
  rootNamespace: string;
  /** After each publication: the Telemetries and their conditions (for the status writer). */
  onPublished?: (telemetries: readonly TelemetryObject[], status: ReadonlyMap<string, ConditionSpec[]>) => void;
}

export class TelemetryPublisher {
  readonly #opts: TelemetryPublisherOptions;
  #last: TelemetryPublicationStats | undefined;
  #result: TelemetryResult | undefined;
  #meshIssues = '';

  constructor(opts: TelemetryPublisherOptions) {
    this.#opts = opts;
  }

  last(): TelemetryPublicationStats | undefined {
    return this.#last;
  }

  /** The last computation (namespaces, proxies, conditions). */
  result(): TelemetryResult | undefined {
    return this.#result;
  }

  /** Computes and publishes; returns the settings of each proxy by its key. */
  publish(view: MeshView, proxies: readonly TelemetryProxy[]): ReadonlyMap<string, TelemetrySettings> {
    const { store, log, rootNamespace } = this.#opts;
    const configMap = (view.meshConfigMaps ?? []).find((c) => c.metadata.namespace === rootNamespace && c.metadata.name === MESH_CONFIG_MAP_NAME) as ConfigMapObject | undefined;
    const mesh = parseMeshConfig(configMap);
    const issues = mesh.issues.join('; ');
    if (issues !== this.#meshIssues) {
      if (issues) log.warn({ configMap: `${rootNamespace}/${MESH_CONFIG_MAP_NAME}`, issues: mesh.issues }, 'mesh config: some fields cannot be used');
      else if (this.#meshIssues) log.info({ configMap: `${rootNamespace}/${MESH_CONFIG_MAP_NAME}` }, 'mesh config: all fields usable again');
      this.#meshIssues = issues;
    }
    const telemetries = (view.telemetries ?? []) as TelemetryObject[];
    const result = computeTelemetry({ telemetries, meshConfig: mesh.config, pods: view.pods, rootNamespace, proxies });
    const resources = new Map<string, Uint8Array>();
    let kept = 0;
    let workloads = 0;
    for (const [namespace, entry] of result.namespaces) {
      try {
        resources.set(namespace, encodeTelemetry(entry));
        workloads += Object.keys(entry.workloads ?? {}).length;
      } catch (err) {
        const previous = store.get(TELEMETRY_TYPE_URL, namespace);
        if (previous) resources.set(namespace, previous.bytes);
        kept++;
        log.warn({ namespace, err: describeError(err) }, 'telemetry settings cannot be encoded; node agents keep the previous ones');
      }
    }
    store.replaceAll(TELEMETRY_TYPE_URL, resources);
    this.#result = result;
    this.#last = { namespaces: result.namespaces.size, workloads, proxies: result.proxies.size, telemetries: telemetries.length, kept };
    this.#opts.onPublished?.(telemetries, result.status);
    return result.proxies;
  }
}
