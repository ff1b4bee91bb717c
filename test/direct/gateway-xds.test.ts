// The ingress gateway fed by the ADS server as the controller feeds it: it subscribes to its own
// resource `<ns>/<name>` only, opens the listener the config names and serves it; a config of
// kind waypoint under its name is NACKed with the reason and the last good config keeps serving;
// a new config adds a listener.
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { addAdsService, AdsServer, type AdsNack } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { GatewayProxy } from '../../src/gateway/app.js';
import { readGatewaySettings } from '../../src/gateway/settings.js';
import { GATEWAY_LISTENER_ADDRESS, WAYPOINT_CONFIG_TYPE_URL, type WaypointConfig } from '../../src/l7/config.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { encodeWaypointConfig } from '../../src/xds/waypoint-codec.js';
import { eventually } from '../helpers/eventually.js';
import { listen } from '../helpers/hbone.js';
import { createTestCa } from '../helpers/pki.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('gateway proxy over xDS', () => {
  it('subscribes to <ns>/<name>, serves its listeners, NACKs a waypoint config, adds a listener on update', async () => {
    const ca = await createTestCa();
    const store = new ResourceStore();
    const ads = new AdsServer({ store, log: silentLogger, debounceMs: 5, maxDelayMs: 20, typeUrls: [WAYPOINT_CONFIG_TYPE_URL], authenticate: async () => ({ ok: true, caller: 'amesh-system/amesh-ingressgateway' }) });
    const nacks: AdsNack[] = [];
    ads.on('nack', (_node: string, _type: string, nack: AdsNack) => nacks.push(nack));
    const grpcServer = new grpc.Server();
    addAdsService(grpcServer, ads);
    const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    cleanups.push(() => {
      ads.close();
      grpcServer.forceShutdown();
    });
    const backend = http.createServer((_req, res) => res.end('from the frontend'));
    const backendPort = await listen(backend);
    cleanups.push(() => new Promise((resolve) => backend.close(resolve)));

    const config = (ports: number[]): WaypointConfig => ({
      namespace: 'amesh-system',
      name: 'amesh-ingressgateway',
      identity: 'spiffe://cluster.local/ns/amesh-system/sa/amesh-ingressgateway',
      kind: 'gateway',
      listeners: ports.map((port) => ({ name: `Gateway/demo/frontend-gateway/http-${port}`, port, protocol: 'HTTP' as const })),
      services: [
        {
          key: 'amesh-system/amesh-ingressgateway',
          namespace: 'amesh-system',
          hostname: 'amesh-ingressgateway.amesh-system.svc.cluster.local',
          addresses: [GATEWAY_LISTENER_ADDRESS],
          ports: ports.map((port) => ({ port, protocol: 'HTTP' as const, defaultCluster: '', routes: [{ name: 'VirtualService/demo/frontend#0', matches: [{ path: { kind: 'prefix' as const, value: '/' } }], action: { kind: 'forward' as const, backends: [{ cluster: 'frontend', weight: 1 }] } }] })),
        },
      ],
      clusters: [{ name: 'frontend', service: 'demo/frontend.demo.svc.cluster.local', port: 80, lb: 'ROUND_ROBIN', endpoints: [{ address: '127.0.0.1', port: backendPort, identity: '', hbone: false }] }],
    });
    const good = config([80]);
    // Another gateway's config is in the store too: it must not be sent to this one.
    store.replaceAll(WAYPOINT_CONFIG_TYPE_URL, new Map([['amesh-system/amesh-ingressgateway', encodeWaypointConfig(good)], ['demo/demo-gateway-istio', encodeWaypointConfig({ ...good, namespace: 'demo', name: 'demo-gateway-istio' })]]));

    const settings = readGatewaySettings(
      {
        AMESH_GATEWAY_NAME: 'amesh-ingressgateway',
        POD_NAMESPACE: 'amesh-system',
        POD_NAME: 'amesh-ingressgateway-abc',
        INSTANCE_IP: '10.244.0.60',
        AMESH_XDS_ADDRESS: `127.0.0.1:${grpcPort}`,
        AMESH_LISTEN_ADDRESS4: '127.0.0.1',
        AMESH_LISTEN_ADDRESS6: 'none',
        AMESH_READINESS_PORT: '0',
        AMESH_ADMIN_PORT: '0',
        AMESH_METRICS_PORT: '0',
        AMESH_DRAIN_TIMEOUT_MS: '200',
      },
      { requireControlPlane: false },
    );
    const gateway = await GatewayProxy.build({ settings, logger: silentLogger, certificateProvider: ca.provider, xdsCredentials: { kind: 'insecure' }, listenPort: () => 0 });
    cleanups.push(() => gateway.close());
    const ports = await gateway.run();
    await eventually(async () => expect((await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`)).status).toBe(200), { timeoutMs: 10_000, description: 'gateway ready after its config arrived' });
    const conn = ads.connections()[0];
    expect(conn?.node).toBe('router~10.244.0.60~amesh-ingressgateway-abc.amesh-system~amesh-system.svc.cluster.local');
    expect(conn?.typeUrls[WAYPOINT_CONFIG_TYPE_URL]?.resources).toBe(1);
    await gateway.whenListening();
    const port80 = gateway.listenerPort(80) as number;
    expect(await get(port80, 'myapp.example.com')).toEqual({ status: 200, body: 'from the frontend' });

    // A waypoint's config under this gateway's name: NACKed, the gateway keeps serving.
    store.replaceAll(WAYPOINT_CONFIG_TYPE_URL, new Map([['amesh-system/amesh-ingressgateway', encodeWaypointConfig({ ...good, kind: 'waypoint', listeners: undefined, services: [{ ...good.services[0]!, ports: [{ ...good.services[0]!.ports[0]!, defaultCluster: 'frontend' }] }] })]]));
    await eventually(() => expect(nacks.length).toBeGreaterThan(0), { timeoutMs: 10_000, description: 'NACK of the waypoint config' });
    expect(nacks[0]?.message).toMatch(/^amesh-system\/amesh-ingressgateway: kind: the config is a waypoint's/);
    expect(gateway.isReady()).toBe(true);
    expect((await get(port80, 'myapp.example.com')).status).toBe(200);

    // An update with a second port opens it; port 80 keeps its server.
    store.replaceAll(WAYPOINT_CONFIG_TYPE_URL, new Map([['amesh-system/amesh-ingressgateway', encodeWaypointConfig(config([80, 8080]))]]));
    await eventually(() => expect(gateway.listenerPort(8080)).toBeGreaterThan(0), { timeoutMs: 10_000, description: 'listener 8080 opened' });
    expect(gateway.listenerPort(80)).toBe(port80);
    expect((await get(gateway.listenerPort(8080) as number, 'x')).body).toBe('from the frontend');
    const dump = gateway.configDump() as { xds: { resourceName: string }; listeners: Array<{ port: number; state: string }> };
    expect(dump.xds.resourceName).toBe('amesh-system/amesh-ingressgateway');
    expect(dump.listeners.map((l) => `${l.port}:${l.state}`)).toEqual(['80:listening', '8080:listening']);
  });
});

