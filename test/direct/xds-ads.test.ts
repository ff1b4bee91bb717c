/**
 * Delta ADS end to end on loopback: the controller's AdsServer (src/controller/xds) on a real
 * grpc-js server, the node agent's DeltaXdsClient (src/xds/delta-client.ts) as the caller, the
 * codec's bytes as payload. Covers the full initial state, upserts and removals, debouncing of a
 * burst, per-resource NACKs, resumption with initial_resource_versions after a server restart
 * (also when a response is still being applied as its stream ends), clean close, and — on the
 * CA's TLS listener — refusal of bad tokens.
 */
import { setTimeout as delay } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { tokenAuthenticator, type AdsAuthenticator } from '../../src/controller/xds/ads-auth.js';
import { AdsServer, addAdsService } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { createCaServer, type CaServer } from '../../src/controller/ca/ca-server.js';
import type { TokenReviewer } from '../../src/controller/ca/types.js';
import { generateCa } from '../../src/identity/pki.js';
import type { Workload } from '../../src/node-agent/state/types.js';
import { createServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, decodeAddress, encodeAuthorization, encodeServiceAddress, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { backoffDelay, DEFAULT_XDS_BACKOFF, DeltaXdsClient, type DeltaUpdate } from '../../src/xds/delta-client.js';
import { DELTA_ADS_PATH, deserializeDeltaResponse, serializeDeltaRequest, stringStruct, type DeltaDiscoveryResponse } from '../../src/xds/delta-messages.js';
import { eventually } from '../helpers/eventually.js';

const WAYPOINT_TYPE = 'type.googleapis.com/amesh.l7.v1.WaypointConfig';
const TRUSTED: AdsAuthenticator = async () => ({ ok: true, caller: 'amesh-system/amesh-node' });
const NODE = { id: 'sidecar~10.0.0.1~amesh-node-abc.amesh-system~amesh-system.svc.cluster.local', metadata: { NODE_NAME: 'node-1', NAMESPACE: 'amesh-system' } };
const WAIT = { timeoutMs: 5_000, intervalMs: 10 };

function workload(i: number, extra: Partial<Workload> = {}): Workload {
  return { uid: `uid-${i}`, name: `w-${i}`, namespace: 'demo', addresses: [`10.244.0.${i}`], tunnelProtocol: 'HBONE', serviceAccount: 'default', services: {}, ...extra };
}
const putWorkload = (store: ResourceStore, w: Workload): void => void store.upsert(ADDRESS_TYPE_URL, w.uid, encodeWorkloadAddress(w));

/** The client side: the caller's state (name → version) and every update it saw. */
class Agent {
  readonly updates: DeltaUpdate[] = [];
  readonly state = new Map<string, Map<string, string>>([
    [ADDRESS_TYPE_URL, new Map()],
    [AUTHORIZATION_TYPE_URL, new Map()],
  ]);
  readonly connectionChanges: boolean[] = [];
  reject = new Map<string, string>();
  client: DeltaXdsClient;

  constructor(address: string, extra: { credentials?: grpc.ChannelCredentials; token?: string; channelOptions?: grpc.ChannelOptions } = {}) {
    this.client = new DeltaXdsClient({
      address,
      credentials: extra.credentials ?? grpc.credentials.createInsecure(),
      ...(extra.token
        ? {
            callCredentials: async () => {
              const md = new grpc.Metadata();
              md.set('authorization', `Bearer ${extra.token}`);
              return md;
            },
          }
        : {}),
      ...(extra.channelOptions ? { channelOptions: extra.channelOptions } : {}),
      node: NODE,
      typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
      logger: silentLogger,
      backoff: { initialMs: 10, maxMs: 200 },
      onUpdate: async (update) => {
        this.updates.push(update);
        const state = this.state.get(update.typeUrl) as Map<string, string>;
        const rejected = new Map<string, string>();
        for (const r of update.resources) {
          const reason = this.reject.get(r.name);
          if (reason) rejected.set(r.name, reason);
          else {
            if (update.typeUrl === ADDRESS_TYPE_URL) decodeAddress(r.resource);
            state.set(r.name, r.version);
          }
        }
        for (const name of update.removed) state.delete(name);
        return rejected;
      },
      onConnectionChange: (connected) => this.connectionChanges.push(connected),
    });
  }

  addressUpdates(): DeltaUpdate[] {
    return this.updates.filter((u) => u.typeUrl === ADDRESS_TYPE_URL);
  }
}

function versions(store: ResourceStore, typeUrl: string): Map<string, string> {
  return new Map([...store.resources(typeUrl)].map(([name, r]) => [name, r.version]));
}

async function listen(ads: AdsServer, port = 0): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  addAdsService(server, ads);
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port: bound };
}

function stop(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => server.tryShutdown(() => resolve()));
}

describe('delta ADS (insecure loopback)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(store: ResourceStore, debounceMs = 50): Promise<{ ads: AdsServer; server: grpc.Server; port: number; agent: Agent }> {
    const ads = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs, maxDelayMs: 1_000 });
    const { server, port } = await listen(ads);
    const agent = new Agent(`127.0.0.1:${port}`);
    cleanup.push(async () => {
      await agent.client.close();
      ads.close();
      await stop(server);
    });
    agent.client.start();
    return { ads, server, port, agent };
  }

  function seeded(): ResourceStore {
    const store = new ResourceStore();
    for (let i = 1; i <= 3; i++) putWorkload(store, workload(i));
    store.upsert(ADDRESS_TYPE_URL, 'demo/backend.demo.svc.cluster.local', encodeServiceAddress({ name: 'backend', namespace: 'demo', hostname: 'backend.demo.svc.cluster.local', addresses: ['10.96.0.3'], ports: [{ servicePort: 80, targetPort: 8080 }] }));
    store.upsert(AUTHORIZATION_TYPE_URL, 'demo/allow', encodeAuthorization({ name: 'allow', namespace: 'demo', scope: 'NAMESPACE', action: 'ALLOW', rules: [] }));
    return store;
  }

  it('the client gets the full state; the server knows the node and what it ACKed', async () => {
    const store = seeded();
    const acks: Array<[string, string, number]> = [];
    const { ads, agent } = await setup(store);
    ads.on('ack', (nodeName, typeUrl, acked) => acks.push([nodeName, typeUrl, acked.size]));
    await eventually(() => {
      expect(agent.state.get(ADDRESS_TYPE_URL)).toEqual(versions(store, ADDRESS_TYPE_URL));
      expect(agent.state.get(AUTHORIZATION_TYPE_URL)).toEqual(versions(store, AUTHORIZATION_TYPE_URL));
      expect(ads.ackedVersion('node-1', AUTHORIZATION_TYPE_URL, 'demo/allow')).toBe(store.get(AUTHORIZATION_TYPE_URL, 'demo/allow')?.version);
    }, WAIT);
    expect(agent.updates.map((u) => [u.typeUrl, u.initial, u.resources.length])).toEqual([
      [ADDRESS_TYPE_URL, true, 4],
      [AUTHORIZATION_TYPE_URL, true, 1],
    ]);
    expect(ads.ackedVersion('node-1', ADDRESS_TYPE_URL, 'uid-2')).toBe(store.get(ADDRESS_TYPE_URL, 'uid-2')?.version);
    expect(ads.ackedVersion('node-2', ADDRESS_TYPE_URL, 'uid-2')).toBeUndefined();
    expect(acks).toEqual([
      ['node-1', ADDRESS_TYPE_URL, 4],
      ['node-1', AUTHORIZATION_TYPE_URL, 1],
    ]);
    const [connection] = ads.connections();
    expect(connection).toMatchObject({ node: NODE.id, nodeName: 'node-1', caller: 'amesh-system/amesh-node' });
    expect(connection?.typeUrls[ADDRESS_TYPE_URL]).toMatchObject({ pending: false, responses: 1, nacks: 0, resources: 4 });
    expect(connection?.typeUrls[ADDRESS_TYPE_URL]?.ackedNonce).toBe(agent.client.status().types[ADDRESS_TYPE_URL]?.lastNonce);
    expect(agent.client.status()).toMatchObject({ connected: true, reconnects: 0, types: { [ADDRESS_TYPE_URL]: { resources: 4 }, [AUTHORIZATION_TYPE_URL]: { resources: 1 } } });
    expect(agent.client.status().types[ADDRESS_TYPE_URL]).toMatchObject({ acks: 1, nacks: 0, lastAckedNonce: connection?.typeUrls[ADDRESS_TYPE_URL]?.ackedNonce });
    expect(agent.connectionChanges).toEqual([true]);
  });

  it('an empty store still answers each type once, so the client knows it is in sync', async () => {
    const { agent } = await setup(new ResourceStore());
    await eventually(() => expect(agent.updates.map((u) => [u.typeUrl, u.initial, u.resources.length])).toEqual([
      [ADDRESS_TYPE_URL, true, 0],
      [AUTHORIZATION_TYPE_URL, true, 0],
    ]), WAIT);
  });

  it('an upsert and a removal arrive as one delta, not a resend', async () => {
    const store = seeded();
    const { agent } = await setup(store);
    await eventually(() => expect(agent.state.get(ADDRESS_TYPE_URL)?.size).toBe(4), WAIT);
    putWorkload(store, workload(2, { status: 'UNHEALTHY' }));
    store.remove(ADDRESS_TYPE_URL, 'uid-1');
    await eventually(() => expect(agent.state.get(ADDRESS_TYPE_URL)).toEqual(versions(store, ADDRESS_TYPE_URL)), WAIT);
    const last = agent.addressUpdates().at(-1) as DeltaUpdate;
    expect(agent.addressUpdates()).toHaveLength(2);
    expect(last.initial).toBe(false);
    expect(last.resources.map((r) => r.name)).toEqual(['uid-2']);
    expect(last.removed).toEqual(['uid-1']);
    const decoded = decodeAddress(last.resources[0]?.resource as Uint8Array);
    expect(decoded.kind === 'workload' && decoded.workload.status).toBe('UNHEALTHY');
  });

  it('a burst of 100 store changes within the debounce window is one push', async () => {
    const store = seeded();
    const { ads, agent } = await setup(store, 100);
    await eventually(() => expect(agent.state.get(ADDRESS_TYPE_URL)?.size).toBe(4), WAIT);
    const before = agent.addressUpdates().length;
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 10; i++) putWorkload(store, workload(100 + batch * 10 + i));
      await delay(5); // spread over ~50 ms: each gap is far inside the 100 ms quiet period
    }
    await eventually(() => {
      expect(agent.state.get(ADDRESS_TYPE_URL)?.size).toBe(104);
      expect(ads.connections()[0]?.typeUrls[ADDRESS_TYPE_URL]?.pending).toBe(false);
    }, WAIT);
    expect(agent.addressUpdates().length - before).toBe(1);
    expect(agent.addressUpdates().at(-1)?.resources).toHaveLength(100);
  });

  it('a constant stream of changes still pushes within the max delay', async () => {
    const store = new ResourceStore();
    const ads = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs: 100, maxDelayMs: 300 });
    const { server, port } = await listen(ads);
    const agent = new Agent(`127.0.0.1:${port}`);
    cleanup.push(async () => {
      await agent.client.close();
      ads.close();
      await stop(server);
    });
    agent.client.start();
    await eventually(() => expect(agent.addressUpdates()).toHaveLength(1), WAIT);
    // A change every 20 ms for 1.2 s: the 100 ms quiet period never comes, the 300 ms cap does.
    const started = Date.now();
    for (let i = 1; Date.now() - started < 1_200 && i < 200; i++) {
      putWorkload(store, workload(i));
      await delay(20);
      if (agent.addressUpdates().length > 1) break;
    }
    expect(agent.addressUpdates().length).toBeGreaterThan(1);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('a NACK of one resource is recorded with its message; the others are applied and the bad version is not resent', async () => {
    const store = seeded();
    const nacks: string[] = [];
    const ads = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs: 20 });
    ads.on('nack', (nodeName, typeUrl, nack) => nacks.push(`${nodeName} ${typeUrl} ${nack.message}`));
    const { server, port } = await listen(ads);
    const agent = new Agent(`127.0.0.1:${port}`);
    cleanup.push(async () => {
      await agent.client.close();
      ads.close();
      await stop(server);
    });
    agent.reject.set('uid-2', 'workload.addresses[0]: 5 bytes is not an IPv4/IPv6 address');
    agent.client.start();
    await eventually(() => expect(ads.connections()[0]?.typeUrls[ADDRESS_TYPE_URL]?.lastNack).toBeDefined(), WAIT);
    const status = ads.connections()[0]?.typeUrls[ADDRESS_TYPE_URL];
    expect(status?.lastNack?.message).toBe('uid-2: workload.addresses[0]: 5 bytes is not an IPv4/IPv6 address');
    expect(status?.nacks).toBe(1);
    expect(nacks).toEqual([`node-1 ${ADDRESS_TYPE_URL} uid-2: workload.addresses[0]: 5 bytes is not an IPv4/IPv6 address`]);
    expect([...(agent.state.get(ADDRESS_TYPE_URL)?.keys() ?? [])].sort()).toEqual(['demo/backend.demo.svc.cluster.local', 'uid-1', 'uid-3']);
    expect(agent.client.status().types[ADDRESS_TYPE_URL]?.lastNack).toMatch(/^uid-2: /);
    expect(agent.client.status().types[ADDRESS_TYPE_URL]).toMatchObject({ nacks: 1 });
    // The applied ones count as ACKed, the rejected one does not.
    expect(ads.ackedVersion('node-1', ADDRESS_TYPE_URL, 'uid-1')).toBe(store.get(ADDRESS_TYPE_URL, 'uid-1')?.version);
    expect(ads.ackedVersion('node-1', ADDRESS_TYPE_URL, 'uid-2')).toBeUndefined();

    // An unrelated change is pushed without the rejected version; a new version of it is sent.
    agent.reject.clear();
    putWorkload(store, workload(4));
    await eventually(() => expect(agent.state.get(ADDRESS_TYPE_URL)?.has('uid-4')).toBe(true), WAIT);
    expect(agent.addressUpdates().at(-1)?.resources.map((r) => r.name)).toEqual(['uid-4']);
    putWorkload(store, workload(2, { node: 'worker-9' }));
    await eventually(() => expect(agent.state.get(ADDRESS_TYPE_URL)?.get('uid-2')).toBe(store.get(ADDRESS_TYPE_URL, 'uid-2')?.version), WAIT);
    await eventually(() => expect(ads.ackedVersion('node-1', ADDRESS_TYPE_URL, 'uid-2')).toBe(store.get(ADDRESS_TYPE_URL, 'uid-2')?.version), WAIT);
  });

  it('after a server restart the client reconnects and resumes from initial_resource_versions', async () => {
    const store = seeded();
    const first = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs: 20 });
    const a = await listen(first);
    const agent = new Agent(`127.0.0.1:${a.port}`);
    const second: { ads?: AdsServer; server?: grpc.Server } = {};
    cleanup.push(async () => {
      await agent.client.close();
      first.close();
      a.server.forceShutdown();
      second.ads?.close();
      if (second.server) await stop(second.server);
    });
    agent.client.start();
    // The initial sync is complete only when BOTH types have arrived: the server writes them one
    // after the other, so a loaded machine may hand Authorization over after Address is applied
    // (sampling `seen` in between counted the first stream's own initial Authorization as resumed).
    await eventually(() => {
      expect(agent.state.get(ADDRESS_TYPE_URL)).toEqual(versions(store, ADDRESS_TYPE_URL));
      expect(agent.state.get(AUTHORIZATION_TYPE_URL)).toEqual(versions(store, AUTHORIZATION_TYPE_URL));
    }, WAIT);
    expect(agent.updates.map((u) => u.typeUrl)).toEqual([ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]);
    const seen = agent.updates.length;

    first.close();
    await stop(a.server);
    await eventually(() => expect(agent.client.status().connected).toBe(false), WAIT);
    // While it is away: one removal, one new workload, one changed policy; the rest unchanged.
    store.remove(ADDRESS_TYPE_URL, 'uid-1');
    putWorkload(store, workload(5));
    store.upsert(AUTHORIZATION_TYPE_URL, 'demo/allow', encodeAuthorization({ name: 'allow', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [] }));

    const ads = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs: 20 });
    second.ads = ads;
    second.server = (await listen(ads, a.port)).server;
    await eventually(() => {
      expect(agent.state.get(ADDRESS_TYPE_URL)).toEqual(versions(store, ADDRESS_TYPE_URL));
      expect(agent.state.get(AUTHORIZATION_TYPE_URL)).toEqual(versions(store, AUTHORIZATION_TYPE_URL));
    }, WAIT);
    const resumed = agent.updates.slice(seen);
    // Only what changed while away, once: not the unchanged uid-2, uid-3 and service.
    expect(resumed.map((u) => ({ typeUrl: u.typeUrl, initial: u.initial, names: u.resources.map((r) => `${r.name}@${r.version}`), removed: u.removed }))).toEqual([
      { typeUrl: ADDRESS_TYPE_URL, initial: true, names: [`uid-5@${store.get(ADDRESS_TYPE_URL, 'uid-5')?.version}`], removed: ['uid-1'] },
      { typeUrl: AUTHORIZATION_TYPE_URL, initial: true, names: [`demo/allow@${store.get(AUTHORIZATION_TYPE_URL, 'demo/allow')?.version}`], removed: [] },
    ]);
    expect(agent.client.status().reconnects).toBeGreaterThan(0);
    expect(agent.connectionChanges).toEqual([true, false, true]);
    // The new server counts what the client already had as ACKed.
    await eventually(() => expect(ads.ackedVersion('node-1', ADDRESS_TYPE_URL, 'uid-3')).toBe(store.get(ADDRESS_TYPE_URL, 'uid-3')?.version), WAIT);
  });

  it('a response still being applied when its stream dies is applied before the next stream starts: its versions go out as initial_resource_versions, never two onUpdate at once', async () => {
    const store = seeded();
    // One listener, two ADS servers: the first stream is served by `first`, later ones by `second`,
    // so closing `first` ends the stream but not the connection and the retry reaches a server at once.
    const first = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs: 20 });
    const second = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs: 20 });
    let accepted = 0;
    const server = new grpc.Server();
    server.addService(first.definition, { DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => ((accepted++ === 0 ? first : second).implementation.DeltaAggregatedResources as grpc.handleBidiStreamingCall<unknown, unknown>)(call) });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const updates: DeltaUpdate[] = [];
    let active = 0;
    let maxActive = 0;
    let streams = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const client = new DeltaXdsClient({
      address: `127.0.0.1:${port}`,
      credentials: grpc.credentials.createInsecure(),
      callCredentials: async () => {
        streams++;
        return new grpc.Metadata();
      },
      node: NODE,
      typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
      logger: silentLogger,
      backoff: { initialMs: 10, maxMs: 50 },
      onUpdate: async (update) => {
        active++;
        maxActive = Math.max(maxActive, active);
        updates.push(update);
        // The first stream's Authorization is still being applied when its stream ends.
        if (update.typeUrl === AUTHORIZATION_TYPE_URL && streams === 1) await gate;
        active--;
      },
    });
    cleanup.push(async () => {
      release();
      await client.close();
      first.close();
      second.close();
      await stop(server);
    });
    client.start();
    await eventually(() => expect(updates.map((u) => u.typeUrl)).toEqual([ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]), WAIT);
    first.close();
    // The retry has begun (it fetched its call credentials) while that update is still held.
    await eventually(() => expect(streams).toBe(2), WAIT);
    release();
    await eventually(() => {
      expect(client.status().connected).toBe(true);
      expect(second.ackedVersion('node-1', AUTHORIZATION_TYPE_URL, 'demo/allow')).toBe(store.get(AUTHORIZATION_TYPE_URL, 'demo/allow')?.version);
      expect(updates.length).toBeGreaterThanOrEqual(4);
    }, WAIT);
    // Nothing changed and the client holds everything: the new stream's initial responses are empty.
    expect(updates.slice(2).map((u) => ({ typeUrl: u.typeUrl, initial: u.initial, names: u.resources.map((r) => r.name), removed: u.removed }))).toEqual([
      { typeUrl: ADDRESS_TYPE_URL, initial: true, names: [], removed: [] },
      { typeUrl: AUTHORIZATION_TYPE_URL, initial: true, names: [], removed: [] },
    ]);
    expect(maxActive).toBe(1);
    expect(accepted).toBe(2);
  });

  it('a client that neither reads nor answers gets no queue of stale pushes: the next push is computed from the latest state', async () => {
    const store = new ResourceStore();
    const ads = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger, debounceMs: 1, maxDelayMs: 1 });
    const { server, port } = await listen(ads);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(DELTA_ADS_PATH, serializeDeltaRequest, deserializeDeltaResponse, new grpc.Metadata(), {});
    cleanup.push(async () => {
      call.cancel();
      client.close();
      ads.close();
      await stop(server);
    });
    call.on('error', () => {});
    const node = { id: 'raw', cluster: '', metadata: stringStruct({ NODE_NAME: 'node-raw' }) };
    call.write({ node, typeUrl: ADDRESS_TYPE_URL, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: '' });
    await eventually(() => expect(ads.connections()[0]?.typeUrls[ADDRESS_TYPE_URL]?.responses).toBe(1), WAIT);
    // 40 versions of one 256 KiB workload while the client neither reads nor answers.
    const big = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 40; i++) {
      putWorkload(store, workload(1, { canonicalName: `${big}-${i}` }));
      await delay(3);
    }
    // Nothing was answered, so nothing more was sent: only the initial (empty) response.
    expect(ads.connections()[0]?.typeUrls[ADDRESS_TYPE_URL]).toMatchObject({ responses: 1, pending: true });
    const received: DeltaDiscoveryResponse[] = [];
    call.on('data', (r: DeltaDiscoveryResponse) => {
      received.push(r);
      call.write({ typeUrl: r.typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: r.nonce });
    });
    const latest = store.get(ADDRESS_TYPE_URL, 'uid-1')?.version;
    await eventually(() => expect(received.at(-1)?.resources[0]?.version).toBe(latest), WAIT);
    // The initial response, then one push of the latest version — not 40 stale ones.
    expect(received.map((r) => r.resources.length)).toEqual([0, 1]);
  });

  it('close ends the stream on both sides and leaves no socket or timer behind', async () => {
    const store = seeded();
    const ads = new AdsServer({ store, authenticate: TRUSTED, log: silentLogger });
    const { server, port } = await listen(ads);
    cleanup.push(async () => {
      ads.close();
      await stop(server);
    });
    const kinds = (): string[] => process.getActiveResourcesInfo().filter((k) => k === 'TCPSocketWrap' || k === 'Timeout' || k === 'TCPWRAP');
    const baseline = kinds().length;
    const agent = new Agent(`127.0.0.1:${port}`);
    agent.client.start();
    await eventually(() => expect(agent.state.get(ADDRESS_TYPE_URL)?.size).toBe(4), WAIT);
    expect(kinds().length).toBeGreaterThan(baseline);
    await agent.client.close();
    expect(agent.client.status().connected).toBe(false);
    expect(agent.connectionChanges).toEqual([true]); // closing is not a connection failure to report
    await eventually(() => {
      expect(ads.connections()).toEqual([]);
      expect(kinds().length).toBeLessThanOrEqual(baseline);
    }, WAIT);
    // No reconnect after close.
    const updates = agent.updates.length;
    putWorkload(store, workload(9));
    await delay(150);
    expect(agent.updates.length).toBe(updates);
  });
});

describe('delta ADS on the CA listener (TLS, token review)', () => {
  let ca: CaServer | undefined;
  let ads: AdsServer | undefined;
  afterEach(async () => {
    ads?.close();
    await ca?.close();
  });

  it('serves trusted node agents over TLS and refuses bad or untrusted tokens', async () => {
    const serving = await createServingCertificates({ dnsNames: ['istiod.istio-system.svc'], ipAddresses: ['127.0.0.1'] });
    const root = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    const users: Record<string, string> = { 'agent-token': 'system:serviceaccount:amesh-system:amesh-node', 'app-token': 'system:serviceaccount:default:app' };
    const reviewer: TokenReviewer = {
      review: async (token) => (users[token] ? { authenticated: true, username: users[token] } : { authenticated: false, error: 'token has expired' }),
    };
    const store = new ResourceStore();
    putWorkload(store, workload(1));
    ads = new AdsServer({ store, authenticate: tokenAuthenticator({ reviewer, log: silentLogger }), log: silentLogger });
    ca = createCaServer({
      material: () => ({ certPem: root.certPem, keyPem: root.keyPem, chainPem: [], trustBundlePem: [root.certPem] }),
      reviewer,
      pods: { pod: () => undefined, hasPodOnNode: () => false, synced: () => true },
      trustDomain: 'cluster.local',
      serving: { certChainPem: serving.certPem, keyPem: serving.keyPem },
      log: silentLogger,
      extraServices: [{ definition: ads.definition, implementation: ads.implementation, maxReceiveMessageBytes: 4 * 1024 * 1024 }],
    });
    const port = await ca.listen(0, '127.0.0.1');
    const tls = (): grpc.ChannelCredentials => grpc.credentials.createSsl(Buffer.from(serving.caCertPem));
    const agents = ['expired-token', 'app-token', 'agent-token'].map((token) => new Agent(`127.0.0.1:${port}`, { credentials: tls(), token, channelOptions: { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc', 'grpc.default_authority': 'istiod.istio-system.svc' } }));
    try {
      for (const agent of agents) agent.client.start();
      const [expired, app, trusted] = agents as [Agent, Agent, Agent];
      await eventually(() => expect(trusted.state.get(ADDRESS_TYPE_URL)?.has('uid-1')).toBe(true), WAIT);
      await eventually(() => {
        expect(expired.client.status().lastError).toMatch(/UNAUTHENTICATED.*token has expired|token has expired/);
        expect(app.client.status().lastError).toMatch(/default\/app is neither a trusted node agent nor a waypoint/);
      }, WAIT);
      expect(expired.updates).toEqual([]);
      expect(app.updates).toEqual([]);
      expect(ads.connections().map((c) => c.caller)).toEqual(['amesh-system/amesh-node']);
    } finally {
      for (const agent of agents) await agent.client.close();
    }
  });
});

describe('delta client backoff', () => {
  it.each([
    [0, 0.5, 10],
    [1, 0.5, 20],
    [10, 0.5, 10_240],
    [11, 0.5, 15_000],
    [1_000, 0.5, 15_000],
    [0, 0, 8],
    [0, 1, 12],
  ])('attempt %i with random %f waits %i ms', (attempt, random, expected) => {
    expect(backoffDelay(attempt, DEFAULT_XDS_BACKOFF, () => random)).toBe(expected);
  });
});

describe('delta ADS for a scoped caller (a waypoint)', () => {
  const WAYPOINT: AdsAuthenticator = async () => ({ ok: true, caller: 'demo/waypoint', scope: { typeUrls: [WAYPOINT_TYPE], names: ['demo/waypoint'] } });
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  function client(port: number, typeUrls: string[], seen: Map<string, string[]>): DeltaXdsClient {
    const c = new DeltaXdsClient({
      address: `127.0.0.1:${port}`,
      credentials: grpc.credentials.createInsecure(),
      node: { id: 'waypoint~10.0.0.9~waypoint-abc.demo~demo.svc.cluster.local', metadata: { NAMESPACE: 'demo' } },
      typeUrls,
      logger: silentLogger,
      backoff: { initialMs: 10, maxMs: 200 },
      onUpdate: async (update) => void seen.set(update.typeUrl, [...(seen.get(update.typeUrl) ?? []), ...update.resources.map((r) => r.name)]),
    });
    cleanup.push(() => c.close());
    c.start();
    return c;
  }

  it('gets its own resource even when it asks for everything, and nothing of other types', async () => {
    const store = new ResourceStore();
    store.upsert(WAYPOINT_TYPE, 'demo/waypoint', new Uint8Array([1]));
    store.upsert(WAYPOINT_TYPE, 'other/waypoint', new Uint8Array([2]));
    putWorkload(store, workload(1));
    const ads = new AdsServer({ store, authenticate: WAYPOINT, log: silentLogger, typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, WAYPOINT_TYPE], debounceMs: 10 });
    const { server, port } = await listen(ads);
    cleanup.push(async () => {
      ads.close();
      await stop(server);
    });
    const own = new Map<string, string[]>();
    client(port, [WAYPOINT_TYPE], own);
    await eventually(() => expect(own.get(WAYPOINT_TYPE)).toEqual(['demo/waypoint']), { timeoutMs: 5_000, description: 'its own WaypointConfig' });
    const nosy = new Map<string, string[]>();
    const other = client(port, [ADDRESS_TYPE_URL], nosy);
    await eventually(() => expect(other.status().lastError).toMatch(/PERMISSION_DENIED.*demo\/waypoint may read/), { timeoutMs: 5_000, description: 'refused the Address type' });
    expect(nosy.size).toBe(0);
  });
});
