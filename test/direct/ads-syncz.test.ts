/**
 * Proxy sync status end to end on loopback: an AdsServer on a real grpc-js server, fake proxies
 * speaking raw delta ADS that answer each response when the test says so (ACK, or NACK with a
 * reason), and the controller's monitoring server reading it: `/debug/syncz` reports each
 * proxy's role, pod and per-type sent / ACKed nonces and NACK reason, with SYNCED / STALE / NACKED;
 * `/metrics` counts pushes, NACKs and connected proxies by role; `/ready` follows readiness.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ControllerMetrics } from '../../src/controller/monitoring/controller-metrics.js';
import { MonitoringServer } from '../../src/controller/monitoring/monitoring-server.js';
import type { AdsAuthenticator } from '../../src/controller/xds/ads-auth.js';
import { AdsServer, addAdsService, podOf } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { syncStatus, type ProxySyncStatus } from '../../src/controller/xds/sync-status.js';
import { WAYPOINT_CONFIG_TYPE_URL } from '../../src/l7/config.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { TELEMETRY_TYPE_URL } from '../../src/telemetry/telemetry-config.js';
import { ADDRESS_TYPE_URL, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { DELTA_ADS_PATH, deserializeDeltaResponse, serializeDeltaRequest, stringStruct, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from '../../src/xds/delta-messages.js';
import { eventually } from '../helpers/eventually.js';

const WAIT = { timeoutMs: 5_000, intervalMs: 10 };
const TYPES = [ADDRESS_TYPE_URL, TELEMETRY_TYPE_URL, WAYPOINT_CONFIG_TYPE_URL];

/** Callers by their `authorization` metadata: a node agent, a waypoint scoped to its config. */
const AUTH: AdsAuthenticator = async (md) => {
  const who = md.get('who')[0];
  if (who === 'waypoint') return { ok: true, caller: 'demo/waypoint', role: 'waypoint', scope: { typeUrls: [WAYPOINT_CONFIG_TYPE_URL], names: ['demo/waypoint'] } };
  return { ok: true, caller: 'amesh-system/amesh-node', role: 'node-agent' };
};

const workload = (i: number): Uint8Array => encodeWorkloadAddress({ uid: `uid-${i}`, name: `w-${i}`, namespace: 'demo', addresses: [`10.244.0.${i}`], tunnelProtocol: 'HBONE', serviceAccount: 'default', services: {} });

/** A proxy that holds each response until told to ACK or NACK it. */
class FakeProxy {
  readonly received: DeltaDiscoveryResponse[] = [];
  readonly #client: grpc.Client;
  readonly #call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  #first = true;

  constructor(
    port: number,
    who: string,
    private readonly node: { id: string; metadata: Record<string, string> },
  ) {
    this.#client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('who', who);
    this.#call = this.#client.makeBidiStreamRequest(DELTA_ADS_PATH, serializeDeltaRequest, deserializeDeltaResponse, md, {});
    this.#call.on('error', () => {});
    this.#call.on('data', (r: DeltaDiscoveryResponse) => this.received.push(r));
  }

  subscribe(typeUrl: string, names: string[] = []): void {
    this.#call.write({
      ...(this.#first ? { node: { id: this.node.id, cluster: '', metadata: stringStruct(this.node.metadata) } } : {}),
      typeUrl,
      resourceNamesSubscribe: names,
      resourceNamesUnsubscribe: [],
      initialResourceVersions: {},
      responseNonce: '',
    });
    this.#first = false;
  }

  last(typeUrl: string): DeltaDiscoveryResponse | undefined {
    return this.received.filter((r) => r.typeUrl === typeUrl).at(-1);
  }

  ack(typeUrl: string): string {
    const nonce = this.last(typeUrl)?.nonce ?? '';
    this.#call.write({ typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: nonce });
    return nonce;
  }

  nack(typeUrl: string, message: string): string {
    const nonce = this.last(typeUrl)?.nonce ?? '';
    this.#call.write({ typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: nonce, errorDetail: { code: 3, message } });
    return nonce;
  }

  close(): void {
    this.#call.cancel();
    this.#client.close();
  }
}

describe('proxy sync status (/debug/syncz) and controller metrics', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup() {
    const store = new ResourceStore();
    store.upsert(ADDRESS_TYPE_URL, 'uid-1', workload(1));
    store.upsert(WAYPOINT_CONFIG_TYPE_URL, 'demo/waypoint', new Uint8Array([1, 2, 3]));
    const ads = new AdsServer({ store, authenticate: AUTH, log: silentLogger, typeUrls: TYPES, debounceMs: 1, maxDelayMs: 5 });
    const metrics = new ControllerMetrics(ads);
    const server = new grpc.Server();
    addAdsService(server, ads);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    let ready = false;
    const monitoring = new MonitoringServer({ host: '127.0.0.1', port: 0, registry: metrics.registry, syncz: () => syncStatus(ads.connections()), readiness: () => ({ ready }), log: silentLogger });
    const monitoringPort = await monitoring.listen();
    cleanup.push(async () => {
      ads.close();
      await monitoring.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    });
    const proxy = (who: string, node: { id: string; metadata: Record<string, string> }): FakeProxy => {
      const p = new FakeProxy(port, who, node);
      cleanup.push(() => p.close());
      return p;
    };
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${monitoringPort}${path}`, { signal: AbortSignal.timeout(2000) });
      return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
    };
    const syncz = async (): Promise<ProxySyncStatus[]> => JSON.parse((await get('/debug/syncz')).text) as ProxySyncStatus[];
    return { store, ads, proxy, get, syncz, setReady: (r: boolean) => (ready = r) };
  }

  it("a waypoint on the agent's node (same NODE_NAME, newer stream) does not hide what the agent ACKed (pod redirection)", async () => {
    const { store, ads, proxy } = await setup();
    const agent = proxy('agent', { id: 'ztunnel~10.0.0.9~amesh-node-x1.amesh-system~amesh-system.svc.cluster.local', metadata: { NODE_NAME: 'node-1', NAMESPACE: 'amesh-system', NAME: 'amesh-node-x1' } });
    agent.subscribe(ADDRESS_TYPE_URL);
    await eventually(() => expect(agent.received).toHaveLength(1), WAIT);
    agent.ack(ADDRESS_TYPE_URL);
    await eventually(() => expect(ads.ackedVersion('node-1', ADDRESS_TYPE_URL, 'uid-1')).toBe(store.get(ADDRESS_TYPE_URL, 'uid-1')?.version), WAIT);
    const waypoint = proxy('waypoint', { id: 'waypoint~10.0.0.51~waypoint-def.demo~demo.svc.cluster.local', metadata: { NAMESPACE: 'demo', NODE_NAME: 'node-1' } });
    waypoint.subscribe(WAYPOINT_CONFIG_TYPE_URL, ['demo/waypoint']);
    await eventually(() => expect(waypoint.received).toHaveLength(1), WAIT);
    waypoint.ack(WAYPOINT_CONFIG_TYPE_URL);
    expect(ads.ackedVersion('node-1', ADDRESS_TYPE_URL, 'uid-1')).toBe(store.get(ADDRESS_TYPE_URL, 'uid-1')?.version);
  });

  it('follows a node agent through STALE → SYNCED → STALE (a push) → NACKED → SYNCED, and a waypoint alongside', async () => {
    const { store, proxy, syncz, get } = await setup();
    const agent = proxy('agent', { id: 'ztunnel~10.0.0.9~amesh-node-x1.amesh-system~amesh-system.svc.cluster.local', metadata: { NODE_NAME: 'node-1', NAMESPACE: 'amesh-system', NAME: 'amesh-node-x1' } });
    agent.subscribe(ADDRESS_TYPE_URL);
    agent.subscribe(TELEMETRY_TYPE_URL);
    await eventually(() => expect(agent.received.map((r) => r.typeUrl).sort()).toEqual([ADDRESS_TYPE_URL, TELEMETRY_TYPE_URL].sort()), WAIT);

    // Sent, not answered yet: STALE.
    const [stale] = await syncz();
    const addressNonce = agent.last(ADDRESS_TYPE_URL)?.nonce;
    expect(stale).toMatchObject({ node: 'node-1', pod: 'amesh-system/amesh-node-x1', role: 'node-agent', caller: 'amesh-system/amesh-node', status: 'STALE' });
    expect(stale?.types[ADDRESS_TYPE_URL]).toEqual({ sent: addressNonce, sentResources: 1, resources: 1, status: 'STALE' });
    expect(Date.parse(stale?.connectedAt ?? '')).toBeGreaterThan(Date.now() - 60_000);

    // Both answered: SYNCED.
    agent.ack(ADDRESS_TYPE_URL);
    agent.ack(TELEMETRY_TYPE_URL);
    await eventually(async () => expect((await syncz())[0]?.status).toBe('SYNCED'), WAIT);
    expect((await syncz())[0]?.types[ADDRESS_TYPE_URL]).toEqual({ sent: addressNonce, sentResources: 1, acked: addressNonce, resources: 1, status: 'SYNCED' });
    expect((await syncz())[0]?.types[TELEMETRY_TYPE_URL]).toMatchObject({ sentResources: 0, resources: 0, status: 'SYNCED' });

    // A change is pushed: STALE until answered; the agent NACKs it: NACKED with the reason.
    store.upsert(ADDRESS_TYPE_URL, 'uid-2', workload(2));
    await eventually(() => expect(agent.last(ADDRESS_TYPE_URL)?.nonce).not.toBe(addressNonce), WAIT);
    expect((await syncz())[0]?.types[ADDRESS_TYPE_URL]?.status).toBe('STALE');
    const rejected = agent.nack(ADDRESS_TYPE_URL, 'uid-2: workload.addresses[0]: bad');
    await eventually(async () => expect((await syncz())[0]?.status).toBe('NACKED'), WAIT);
    expect((await syncz())[0]?.types[ADDRESS_TYPE_URL]).toEqual({ sent: rejected, sentResources: 1, acked: addressNonce, nacked: 'uid-2: workload.addresses[0]: bad', resources: 2, status: 'NACKED' });

    // A waypoint connects (scoped to its own config; pod from its node id).
    const waypoint = proxy('waypoint', { id: 'waypoint~10.0.0.50~waypoint-abc.demo~demo.svc.cluster.local', metadata: { NAMESPACE: 'demo' } });
    waypoint.subscribe(WAYPOINT_CONFIG_TYPE_URL, ['demo/waypoint']);
    await eventually(() => expect(waypoint.received).toHaveLength(1), WAIT);
    waypoint.ack(WAYPOINT_CONFIG_TYPE_URL);
    await eventually(async () => expect((await syncz()).map((s) => `${s.role} ${s.pod ?? ''} ${s.status}`)).toEqual(['node-agent amesh-system/amesh-node-x1 NACKED', 'waypoint demo/waypoint-abc SYNCED']), WAIT);

    // The next change, ACKed, clears the NACK.
    store.upsert(ADDRESS_TYPE_URL, 'uid-3', workload(3));
    await eventually(() => expect(agent.last(ADDRESS_TYPE_URL)?.nonce).not.toBe(rejected), WAIT);
    const accepted = agent.ack(ADDRESS_TYPE_URL);
    await eventually(async () => expect((await syncz())[0]?.types[ADDRESS_TYPE_URL]).toMatchObject({ acked: accepted, status: 'SYNCED' }), WAIT);
    expect((await syncz())[0]?.types[ADDRESS_TYPE_URL]?.nacked).toBeUndefined();

    // Metrics: pushes by type (address: initial + 2 pushes; telemetry: initial; waypoint: 1), one NACK, proxies by role.
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/^text\/plain/);
    expect(metrics.text).toContain('amesh_xds_pushes_total{type="istio.workload.Address"} 3');
    expect(metrics.text).toContain('amesh_xds_pushes_total{type="amesh.telemetry.v1.Telemetry"} 1');
    expect(metrics.text).toContain('amesh_xds_pushes_total{type="amesh.l7.v1.WaypointConfig"} 1');
    expect(metrics.text).toContain('amesh_xds_nacks_total{type="istio.workload.Address"} 1');
    expect(metrics.text).toContain('amesh_xds_connected_proxies{role="node-agent"} 1');
    expect(metrics.text).toContain('amesh_xds_connected_proxies{role="waypoint"} 1');
    expect(metrics.text).toContain('amesh_xds_connected_proxies{role="gateway"} 0');
    expect(metrics.text).toMatch(/^process_cpu_seconds_total \d/m);

    // A proxy that goes away leaves syncz and the gauge.
    waypoint.close();
    await eventually(async () => expect((await syncz()).map((s) => s.role)).toEqual(['node-agent']), WAIT);
    expect((await get('/metrics')).text).toContain('amesh_xds_connected_proxies{role="waypoint"} 0');
  });

  it('/ready follows readiness; other paths and methods are refused', async () => {
    const { get, setReady } = await setup();
    expect((await get('/ready')).status).toBe(503);
    setReady(true);
    expect(await get('/ready')).toMatchObject({ status: 200, text: '{"ready":true}' });
    expect((await get('/nope')).status).toBe(404);
    expect(await get('/debug/syncz')).toMatchObject({ status: 200, text: '[]' });
  });

  it('a monitoring port already taken is not fatal: listen() resolves undefined', async () => {
    const { ads } = await setup();
    const first = new MonitoringServer({ host: '127.0.0.1', port: 0, registry: new ControllerMetrics(ads).registry, syncz: () => [], readiness: () => ({ ready: true }), log: silentLogger });
    const port = await first.listen();
    cleanup.push(() => first.close());
    const second = new MonitoringServer({ host: '127.0.0.1', port: port ?? 0, registry: new ControllerMetrics(ads).registry, syncz: () => [], readiness: () => ({ ready: true }), log: silentLogger });
    expect(await second.listen()).toBeUndefined();
    await second.close();
  });

  it.each([
    ['NAME and NAMESPACE metadata', 'x~1.2.3.4~other.ns~ns.svc.cluster.local', { NAME: 'p', NAMESPACE: 'n' }, 'n/p'],
    ['ztunnel node id', 'ztunnel~10.0.0.1~amesh-node-a.amesh-system~amesh-system.svc.cluster.local', {}, 'amesh-system/amesh-node-a'],
    ['a dotted pod name', 'waypoint~10.0.0.1~w.v1.demo~demo.svc.cluster.local', {}, 'demo/w.v1'],
    ['an opaque id', 'raw', {}, undefined],
  ])('podOf: %s', (_what, id, metadata, expected) => {
    expect(podOf(id, metadata)).toBe(expected);
  });
});
