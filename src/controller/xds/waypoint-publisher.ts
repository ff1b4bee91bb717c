/**
 * Routing objects and the mesh → one WaypointConfig per waypoint in the xDS ResourceStore (type
 * WAYPOINT_CONFIG_TYPE_URL, name `<namespace>/<gateway>`), like mesh-publisher.ts does for the
 * node agents' types: changes are coalesced into one publication, which replaces the whole type
 * (unchanged configs keep their version, so nothing is pushed for them).
 *
 * The one piece of state: the last valid translation of every routing object. An update that
 * makes an object invalid does not take its routes away — computeWaypointConfigs serves the
 * remembered translation and says so in the object's condition. Entries of deleted objects are
 * dropped each round (computeWaypointConfigs returns only objects that still exist), and a
 * recreated object (new uid) never inherits its predecessor's.
 *
 * A config that cannot be encoded (a translator bug; the schema refuses it) is not published:
 * the store keeps that waypoint's previous config, with a warning naming it.
 *
 * Ingress gateways (when an `ingress` translator is given): their configs (IngressResult.configs,
 * `kind: 'gateway'`, name `<namespace>/<deployment>`) are published under the same type URL,
 * schema-checked the same way; the ingress side's last valid translations (IngressResult.valid)
 * are handed back the next round, as for waypoints. A translator that throws (a bug) keeps the previous ingress result
 * — configs and deployments alike, so the default ingress gateway is never deleted for it. A name
 * both a waypoint and an ingress gateway claim keeps the waypoint's config, with a warning.
 *
 * Telemetry (when a `telemetry` hook is given, telemetry-publisher.ts): each round hands it the
 * proxies being published — waypoints (their Gateway's name) and ingress gateways (their Gateway
 * API Gateway, or none for the default one, with their pod labels) — and puts what it returns into
 * each config's `telemetry`. A hook that throws (a bug) leaves the previous settings in place.
 */
import { CoalescedFollower } from './coalesced-follower.js';
import { describeError } from '../../errors/amesh-error.js';
import type { Logger } from '../../telemetry/logger.js';
import { encodeWaypointConfig, WAYPOINT_CONFIG_TYPE_URL } from '../../xds/waypoint-codec.js';
import type { MeshResources, MeshView } from '../mesh/compute-mesh-resources.js';
import type { IngressOptions } from '../translate/ingress-config.js';
import type { IngressResult } from '../translate/ingress-model.js';
import type { ConditionSpec } from '../status/policy-status.js';
import type { TelemetryProxy } from '../translate/telemetry.js';
import { computeWaypointConfigs, type LastValid } from '../translate/waypoint-config.js';
import { WAYPOINT_POD_GATEWAY_LABEL } from '../translate/waypoint-policies.js';
import type { TelemetrySettings } from '../../telemetry/telemetry-config.js';
import type { WaypointConfig } from '../../l7/config.js';
import type { MeshSource } from './mesh-publisher.js';
import type { ResourceStore } from './resource-store.js';

export interface WaypointMeshSource extends MeshSource {
  view(): MeshView;
}

export interface WaypointPublicationStats {
  waypoints: number;
  /** Ingress gateway configs published. */
  gateways: number;
  routes: number;
  clusters: number;
  /** Configs kept at their previous version because the new one could not be encoded. */
  kept: number;
  durationMs: number;
}

/** computeIngress (translate/ingress-config.ts), injected so the publisher does not depend on how ingress is translated. */
export type IngressTranslator = (view: MeshView, resources: MeshResources, options: IngressOptions) => IngressResult;

export interface WaypointPublisherOptions {
  mesh: WaypointMeshSource;
  store: ResourceStore;
  log: Logger;
  trustDomain: string;
  clusterDomain?: string;
  /** The mesh root namespace (mesh-wide waypoint policies). */
  rootNamespace?: string;
  /** Informer events within this window become one publication (default 10 ms). */
  coalesceMs?: number;
  /** Ingress gateways: the translator, and where the default ingress gateway runs. */
  ingress?: { translate: IngressTranslator; controllerNamespace?: string };
  /** Telemetry settings per proxy key (TelemetryPublisher.publish); absent = configs carry none. */
  telemetry?: (view: MeshView, proxies: readonly TelemetryProxy[]) => ReadonlyMap<string, TelemetrySettings>;
  /**
   * Called after each publication with the routing objects' conditions (for route-status.ts) and,
   * with `ingress`, the ingress result (for the ingress deployer and status).
   */
  onPublished?: (stats: WaypointPublicationStats, status: ReadonlyMap<string, ConditionSpec[]>, ingress: IngressResult | undefined) => void;
}

export class WaypointPublisher {
  readonly #opts: WaypointPublisherOptions;
  #lastValid: ReadonlyMap<string, LastValid> = new Map();
  #status: ReadonlyMap<string, ConditionSpec[]> = new Map();
  #ingress: IngressResult | undefined;
  /** The last telemetry settings computed (kept when a computation fails). */
  #telemetry: ReadonlyMap<string, TelemetrySettings> = new Map();
  readonly #follower: CoalescedFollower;
  #last: WaypointPublicationStats | undefined;

  constructor(opts: WaypointPublisherOptions) {
    this.#opts = opts;
    this.#follower = new CoalescedFollower(
      (listener) => opts.mesh.onChange(listener),
      () => this.publish(),
      opts.coalesceMs ?? 10,
      // The store keeps the previous (good) configs; the next change tries again.
      (err) => opts.log.error({ err: describeError(err) }, 'cannot publish waypoint configs; waypoints keep the previous ones'),
    );
  }

  /** Publishes the current state now, then follows changes. */
  start(): WaypointPublicationStats {
    this.#follower.start();
    return this.publish();
  }

  stop(): void {
    this.#follower.stop();
  }

  last(): WaypointPublicationStats | undefined {
    return this.#last;
  }

  /** The last ingress result (undefined without an ingress translator, or before the first publication). */
  ingress(): IngressResult | undefined {
    return this.#ingress;
  }

  /** The routing objects' conditions from the last publication, by `<Kind>/<ns>/<name>`. */
  status(): ReadonlyMap<string, ConditionSpec[]> {
    return this.#status;
  }

  publish(): WaypointPublicationStats {
    const started = performance.now();
    const { mesh, store, log } = this.#opts;
    const result = computeWaypointConfigs(mesh.view(), mesh.resources(), {
      trustDomain: this.#opts.trustDomain,
      ...(this.#opts.clusterDomain ? { clusterDomain: this.#opts.clusterDomain } : {}),
      ...(this.#opts.rootNamespace ? { rootNamespace: this.#opts.rootNamespace } : {}),
      lastValid: this.#lastValid,
    });
    const ingress = this.#translateIngress(result.valid);
    const resources = new Map<string, Uint8Array>();
    let kept = 0;
    let routes = 0;
    let clusters = 0;
    let configs: Array<[string, WaypointConfig]> = [...result.configs];
    const proxies: TelemetryProxy[] = [...result.configs.values()].map((c) => ({ key: `${c.namespace}/${c.name}`, namespace: c.namespace, gateway: c.name, podLabels: { [WAYPOINT_POD_GATEWAY_LABEL]: c.name } }));
    for (const [name, config] of ingress?.configs ?? []) {
      if (result.configs.has(name)) log.warn({ gateway: name }, 'an ingress gateway and a waypoint share this name; the waypoint keeps it');
      else {
        configs.push([name, config]);
        const deployment = ingress?.deployments.get(name);
        proxies.push({ key: name, namespace: config.namespace, ...(deployment?.source.kind === 'Gateway' ? { gateway: deployment.source.name } : {}), podLabels: deployment?.labels ?? {} });
      }
    }
    if (this.#opts.telemetry) {
      let settings = this.#telemetry;
      try {
        settings = this.#opts.telemetry(mesh.view(), proxies);
        this.#telemetry = settings;
      } catch (err) {
        log.error({ err: describeError(err) }, 'cannot compute telemetry settings; waypoints and gateways keep the previous ones');
      }
      configs = configs.map(([name, config]) => {
        const telemetry = settings.get(name);
        return [name, telemetry ? { ...config, telemetry } : config];
      });
    }
    for (const [name, config] of configs) {
      try {
        resources.set(name, encodeWaypointConfig(config));
        routes += config.services.reduce((n, s) => n + s.ports.reduce((m, p) => m + p.routes.length, 0), 0);
        clusters += config.clusters.length;
      } catch (err) {
        const previous = store.get(WAYPOINT_CONFIG_TYPE_URL, name);
        if (previous) resources.set(name, previous.bytes);
        kept++;
        log.warn({ waypoint: name, err: describeError(err) }, 'waypoint config cannot be encoded; the waypoint keeps its previous config');
      }
    }
    store.replaceAll(WAYPOINT_CONFIG_TYPE_URL, resources);
    this.#lastValid = result.valid;
    this.#status = result.status;
    this.#ingress = ingress;
    const stats: WaypointPublicationStats = { waypoints: result.configs.size, gateways: configs.length - result.configs.size, routes, clusters, kept, durationMs: Math.round((performance.now() - started) * 10) / 10 };
    this.#last = stats;
    log.debug(stats, 'waypoint configs published');
    this.#opts.onPublished?.(stats, result.status, ingress);
    return stats;
  }

  /** `waypointValid`: this round's waypoint-side last valid translations (DestinationRules turned invalid keep their policy at gateways too). */
  #translateIngress(waypointValid: ReadonlyMap<string, LastValid>): IngressResult | undefined {
    const { ingress, mesh, log } = this.#opts;
    if (!ingress) return undefined;
    try {
      return ingress.translate(mesh.view(), mesh.resources(), {
        trustDomain: this.#opts.trustDomain,
        ...(this.#opts.clusterDomain ? { clusterDomain: this.#opts.clusterDomain } : {}),
        ...(ingress.controllerNamespace ? { controllerNamespace: ingress.controllerNamespace } : {}),
        ...(this.#ingress ? { lastValid: this.#ingress.valid } : {}),
        waypointLastValid: waypointValid,
      });
    } catch (err) {
      log.error({ err: describeError(err) }, 'cannot translate the ingress gateways; they keep their previous configs');
      return this.#ingress;
    }
  }
}
