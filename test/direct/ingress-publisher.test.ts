/**
 * WaypointPublisher with an ingress translator (stubbed: the publisher's own contract), on a live
 * ResourceStore: gateway configs are published beside the waypoints' under the same type URL;
 * the previous round's `valid` is handed back; a translator that throws keeps the previous result
 * (configs and deployments, so the default gateway is not deleted for a bug); a config the schema
 * refuses keeps its previous bytes; a name a waypoint already has stays the waypoint's.
 */
import { describe, expect, it } from 'vitest';
import type { MeshView } from '../../src/controller/mesh/compute-mesh-resources.js';
import type { IngressResult } from '../../src/controller/translate/ingress-model.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { WaypointPublisher, type IngressTranslator, type WaypointMeshSource } from '../../src/controller/xds/waypoint-publisher.js';
import type { WaypointConfig } from '../../src/l7/config.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { decodeWaypointConfig, WAYPOINT_CONFIG_TYPE_URL } from '../../src/xds/waypoint-codec.js';
import { demoResources, demoView, waypointGateway } from '../helpers/route-fixtures.js';

class StaticMesh implements WaypointMeshSource {
  constructor(readonly current: MeshView) {}
  view(): MeshView {
    return this.current;
  }
  resources() {
    return demoResources(this.current);
  }
  onChange(): () => void {
    return () => undefined;
  }
}

const gatewayConfig = (namespace: string, name: string, port = 80): WaypointConfig => ({
  kind: 'gateway',
  namespace,
  name,
  identity: `spiffe://cluster.local/ns/${namespace}/sa/${name}`,
  services: [{ key: `${namespace}/${name}:${port}`, namespace, hostname: `${name}.${namespace}`, addresses: ['0.0.0.0'], ports: [{ port, protocol: 'HTTP', routes: [], defaultCluster: '' }] }],
  clusters: [],
  listeners: [{ name: `http-${port}`, port, protocol: 'HTTP' }],
});

const result = (configs: Array<[string, WaypointConfig]>, valid = new Map()): IngressResult => ({
  deployments: new Map(configs.map(([key, c]) => [key, { namespace: c.namespace, name: c.name, source: { kind: 'default' }, ports: [{ name: 'http-80', port: 80 }], labels: {}, annotations: {} }])),
  configs: new Map(configs),
  gateways: new Map(),
  status: new Map(),
  valid,
});

describe('WaypointPublisher with ingress', () => {
  it('publishes gateway configs beside waypoints, hands back valid, survives a throwing translator', () => {
    const store = new ResourceStore();
    const calls: Array<{ controllerNamespace?: string; lastValid?: unknown; waypointLastValid?: unknown }> = [];
    let next: () => IngressResult = () => result([['amesh-system/amesh-ingressgateway', gatewayConfig('amesh-system', 'amesh-ingressgateway')]], new Map([['VirtualService/demo/frontend', { spec: { marker: 1 } }]]));
    const translate: IngressTranslator = (_view, _resources, options) => {
      calls.push(options);
      return next();
    };
    const seen: Array<IngressResult | undefined> = [];
    const publisher = new WaypointPublisher({
      mesh: new StaticMesh(demoView({ gateways: [waypointGateway()] })),
      store,
      log: silentLogger,
      trustDomain: 'cluster.local',
      ingress: { translate, controllerNamespace: 'amesh-system' },
      onPublished: (_stats, _status, ingress) => seen.push(ingress),
    });
    const first = publisher.publish();
    expect([first.waypoints, first.gateways]).toEqual([1, 1]);
    const bytes = store.get(WAYPOINT_CONFIG_TYPE_URL, 'amesh-system/amesh-ingressgateway')?.bytes;
    expect(decodeWaypointConfig(bytes ?? new Uint8Array()).kind).toBe('gateway');
    expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint')).toBeDefined();
    expect(calls[0]).toMatchObject({ trustDomain: 'cluster.local', controllerNamespace: 'amesh-system' });
    expect(calls[0]?.lastValid).toBeUndefined();
    expect(calls[0]?.waypointLastValid).toBeInstanceOf(Map);

    publisher.publish();
    expect(calls[1]?.lastValid).toEqual(new Map([['VirtualService/demo/frontend', { spec: { marker: 1 } }]]));

    const previous = seen.at(-1);
    next = () => {
      throw new Error('translator bug');
    };
    publisher.publish();
    expect(seen.at(-1)).toBe(previous);
    expect(publisher.ingress()).toBe(previous);
    expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'amesh-system/amesh-ingressgateway')?.bytes).toEqual(bytes);
  });

  it('a refused config keeps its previous bytes; a waypoint keeps a name both claim; a gone gateway is removed', () => {
    const store = new ResourceStore();
    let configs: Array<[string, WaypointConfig]> = [['demo/gw-istio', gatewayConfig('demo', 'gw-istio')]];
    const publisher = new WaypointPublisher({
      mesh: new StaticMesh(demoView({ gateways: [waypointGateway()] })),
      store,
      log: silentLogger,
      trustDomain: 'cluster.local',
      ingress: { translate: () => result(configs) },
    });
    publisher.publish();
    const good = store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/gw-istio')?.bytes;
    expect(good).toBeDefined();
    const broken = gatewayConfig('demo', 'gw-istio');
    (broken.listeners as unknown as Array<{ port: unknown }>)[0]!.port = 'eighty';
    configs = [['demo/gw-istio', broken], ['demo/waypoint', gatewayConfig('demo', 'waypoint')]];
    const stats = publisher.publish();
    expect(stats.kept).toBe(1);
    expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/gw-istio')?.bytes).toEqual(good);
    expect(decodeWaypointConfig(store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint')?.bytes ?? new Uint8Array()).kind).toBeUndefined();
    configs = [];
    publisher.publish();
    expect(store.get(WAYPOINT_CONFIG_TYPE_URL, 'demo/gw-istio')).toBeUndefined();
  });
});
