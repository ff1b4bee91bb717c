/**
 * WaypointPublisher on a live ResourceStore: the canary config is published under the waypoint's
 * name, a weight change (90/10 → 50/50) republishes it with a new version, an update that breaks
 * the VirtualService keeps the last valid config (same bytes, no push) and reports it, and a
 * waypoint that goes away is removed. Then over delta ADS on loopback: a client subscribed to
 * the waypoint type gets the config and decodes it.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { AdsAuthenticator } from '../../src/controller/xds/ads-auth.js';
import { AdsServer, addAdsService } from '../../src/controller/xds/ads-server.js';
import { ResourceStore, type ResourceChange } from '../../src/controller/xds/resource-store.js';
import { WaypointPublisher, type WaypointMeshSource } from '../../src/controller/xds/waypoint-publisher.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { DeltaXdsClient } from '../../src/xds/delta-client.js';
import { decodeWaypointConfig, WAYPOINT_CONFIG_TYPE_URL } from '../../src/xds/waypoint-codec.js';
import { eventually } from '../helpers/eventually.js';
import { BACKEND, CANARY_DR_SPEC, CANARY_VS_SPEC, demoResources, demoView, destinationRule, virtualService } from '../helpers/route-fixtures.js';

const WAIT = { timeoutMs: 5_000, intervalMs: 10 };

/** A MeshIndex stand-in: set a new view, and listeners hear about it. */
class FakeMesh implements WaypointMeshSource {
  #view: MeshView;
  readonly #listeners = new Set<() => void>();

  constructor(view: MeshView) {
    this.#view = view;
  }

  view(): MeshView {
    return this.#view;
  }

  resources() {
    return demoResources(this.#view);
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  set(view: MeshView): void {
    this.#view = view;
    for (const l of this.#listeners) l();
  }
}

const canary = (weights: [number, number], generation = 1) =>
  demoView({
    destinationRules: [destinationRule(CANARY_DR_SPEC)],
    virtualServices: [
      virtualService(
        {
          ...CANARY_VS_SPEC,
          http: [
            CANARY_VS_SPEC.http[0],
            {
              route: [
                { destination: { host: 'backend', subset: 'v1' }, weight: weights[0] },
                { destination: { host: 'backend', subset: 'v2' }, weight: weights[1] },
              ],
            },
          ],
        },
        'backend',
        { generation },
      ),
    ],
  });

function split(config: WaypointConfig | undefined): number[] {
  const route = config?.services.find((s) => s.hostname === BACKEND)?.ports[0]?.routes[1];
  return route?.action.kind === 'forward' ? route.action.backends.map((b) => b.weight) : [];
}

describe('WaypointPublisher', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('publishes, follows changes, keeps the last valid config, removes a gone waypoint', async () => {
    const store = new ResourceStore();
    const changes: ResourceChange[] = [];
    store.onChange((c) => changes.push(c));
    const mesh = new FakeMesh(canary([90, 10]));
    const statuses: Array<ReadonlyMap<string, unknown>> = [];
    const publisher = new WaypointPublisher({ mesh, store, log: silentLogger, trustDomain: 'cluster.local', coalesceMs: 1, onPublished: (_stats, status) => statuses.push(status) });
    cleanup.push(() => publisher.stop());

    const stats = publisher.start();
    expect(stats).toMatchObject({ waypoints: 1, routes: 3, kept: 0 }); // the canary's two + the 404 catch-all
    const first = store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint');
    expect(split(decodeWaypointConfig(first!.bytes))).toEqual([90, 10]);

    mesh.set(canary([50, 50], 2));
    await eventually(() => expect(split(decodeWaypointConfig(store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint')!.bytes))).toEqual([50, 50]), WAIT);
    const second = store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint');
    expect(second?.version).not.toBe(first?.version);

    // Generation 3 routes to a subset that does not exist: generation 2 keeps being served.
    const before = changes.length;
    const published = statuses.length;
    mesh.set(demoView({ destinationRules: [destinationRule(CANARY_DR_SPEC)], virtualServices: [virtualService({ hosts: ['backend'], http: [{ route: [{ destination: { host: 'backend', subset: 'v3' } }] }] }, 'backend', { generation: 3 })] }));
    await eventually(() => expect(statuses.length).toBeGreaterThan(published), WAIT);
    expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint')?.version).toBe(second?.version);
    expect(changes.length).toBe(before);
    expect(publisher.status().get('VirtualService/demo/backend')?.[0]?.message).toBe(
      'spec.http[0].route[0].destination.subset: subset "v3" not defined in DestinationRule demo/backend; the waypoint keeps serving the last valid version of this VirtualService (generation 2)',
    );

    mesh.set(demoView({ gateways: [] }));
    await eventually(() => expect(store.resources(WAYPOINT_CONFIG_TYPE_URL).size).toBe(0), WAIT);
    expect(changes.at(-1)).toEqual({ typeUrl: WAYPOINT_CONFIG_TYPE_URL, upserted: [], removed: ['demo/waypoint'] });
  });

  it('serves the config over delta ADS to a client of the waypoint type', async () => {
    const store = new ResourceStore();
    const publisher = new WaypointPublisher({ mesh: new FakeMesh(canary([90, 10])), store, log: silentLogger, trustDomain: 'cluster.local' });
    publisher.start();
    cleanup.push(() => publisher.stop());
    const trusted: AdsAuthenticator = async () => ({ ok: true, caller: 'demo/waypoint' });
    const ads = new AdsServer({ store, authenticate: trusted, log: silentLogger, typeUrls: [WAYPOINT_CONFIG_TYPE_URL], debounceMs: 10 });
    const server = new grpc.Server();
    addAdsService(server, ads);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const received = new Map<string, WaypointConfig>();
    const client = new DeltaXdsClient({
      address: `127.0.0.1:${port}`,
      credentials: grpc.credentials.createInsecure(),
      node: { id: 'waypoint~10.0.0.50~waypoint-abc.demo~demo.svc.cluster.local', metadata: { NAMESPACE: 'demo' } },
      typeUrls: [WAYPOINT_CONFIG_TYPE_URL],
      logger: silentLogger,
      backoff: { initialMs: 10, maxMs: 100 },
      onUpdate: async (update) => {
        for (const r of update.resources) received.set(r.name, decodeWaypointConfig(r.resource));
      },
    });
    cleanup.push(async () => {
      await client.close();
      ads.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    });
    client.start();
    await eventually(() => expect(split(received.get('demo/waypoint'))).toEqual([90, 10]), WAIT);
  });
});
