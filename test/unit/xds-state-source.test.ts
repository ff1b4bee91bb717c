/**
 * The node agent's xDS state source without a network: a fake client stands in for
 * DeltaXdsClient and the test plays its onUpdate. Covers what the agent relies on — readiness
 * only after both types, per-resource validation with NACK reasons while the rest applies,
 * removals, the last good version kept, ACK only after the state was applied (and NACK when
 * applying failed), connection status, and the node identity sent to the server.
 */
import { describe, expect, it } from 'vitest';
import type { DeltaClientOptions, DeltaClientStatus, DeltaUpdate } from '../../src/xds/delta-client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, encodeAuthorization, encodeServiceAddress, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { xdsNodeId, xdsNodeMetadata, XdsStateSource } from '../../src/node-agent/xds/xds-state-source.js';
import type { Authorization, MeshSnapshot, Service, Workload } from '../../src/node-agent/state/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const wl = (name: string, ip: string, over: Partial<Workload> = {}): Workload => ({
  uid: `Kubernetes//Pod/demo/${name}`,
  name,
  namespace: 'demo',
  addresses: [ip],
  tunnelProtocol: 'HBONE',
  serviceAccount: name,
  node: 'node1',
  services: {},
  status: 'HEALTHY',
  ...over,
});
const svc: Service = { name: 'b', namespace: 'demo', hostname: 'b.demo.svc.cluster.local', addresses: ['10.96.0.2'], ports: [{ servicePort: 80, targetPort: 8080 }] };
const policy = (name: string, over: Partial<Authorization> = {}): Authorization => ({ name, namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ destinationPorts: [9090] }] }] }], ...over });

const res = (name: string, resource: Uint8Array): DeltaUpdate['resources'][number] => ({ name, version: 'v', resource });
const workloadRes = (w: Workload, name = w.uid): DeltaUpdate['resources'][number] => res(name, encodeWorkloadAddress(w));
const addresses = (resources: DeltaUpdate['resources'], removed: string[] = [], initial = false): DeltaUpdate => ({ typeUrl: ADDRESS_TYPE_URL, resources, removed, initial });
const authorizations = (resources: DeltaUpdate['resources'], removed: string[] = [], initial = false): DeltaUpdate => ({ typeUrl: AUTHORIZATION_TYPE_URL, resources, removed, initial });

interface Harness {
  source: XdsStateSource;
  clientOptions: () => DeltaClientOptions;
  states: MeshSnapshot[];
  update(u: DeltaUpdate): Promise<Map<string, string>>;
  clientStatus: DeltaClientStatus;
}

function harness(apply?: (s: MeshSnapshot) => Promise<void>): Harness {
  let options: DeltaClientOptions | undefined;
  const states: MeshSnapshot[] = [];
  const clientStatus: DeltaClientStatus = { connected: false, reconnects: 0, types: {} };
  const source = new XdsStateSource({
    address: '127.0.0.1:15012',
    credentials: { kind: 'insecure' },
    node: { nodeName: 'node1', podName: 'amesh-node-x1', podNamespace: 'amesh-system', podIp: '10.0.0.7', clusterId: 'Kubernetes' },
    trustDomain: 'cluster.local',
    logger: silentLogger,
    createClient: (o) => {
      options = o;
      return { start: () => undefined, close: async () => undefined, status: () => clientStatus };
    },
  });
  source.start(async (s) => {
    states.push(s);
    await apply?.(s);
  });
  return {
    source,
    states,
    clientStatus,
    clientOptions: () => options!,
    update: async (u) => new Map(await options!.onUpdate(u) ?? []),
  };
}

describe('XdsStateSource', () => {
  it('becomes ready, and first hands over a state, only once both types have arrived', async () => {
    const h = harness();
    expect(h.source.isReady()).toBe(false);
    expect(await h.update(addresses([workloadRes(wl('a', '10.244.1.2')), res(svc.namespace + '/' + svc.hostname, encodeServiceAddress(svc))], [], true))).toEqual(new Map());
    expect(h.source.isReady()).toBe(false);
    expect(h.states).toHaveLength(0);

    const ready = h.source.whenReady();
    await h.update(authorizations([res('demo/deny-9090', encodeAuthorization(policy('deny-9090')))], [], true));
    await ready;
    expect(h.source.isReady()).toBe(true);
    expect(h.states).toHaveLength(1);
    expect(h.states[0]).toMatchObject({ trustDomain: 'cluster.local', workloads: [{ name: 'a' }], services: [{ name: 'b' }], policies: [{ name: 'deny-9090' }] });
    expect(h.source.status()).toMatchObject({ ready: true, resources: { workloads: 1, services: 1, authorizations: 1 }, updates: 2 });
  });

  it('an empty first response of each type is a full (empty) state', async () => {
    const h = harness();
    await h.update(addresses([], [], true));
    await h.update(authorizations([], [], true));
    expect(h.source.isReady()).toBe(true);
    expect(h.states).toEqual([{ trustDomain: 'cluster.local', workloads: [], services: [], policies: [] }]);
  });

  it.each([
    ['bytes that are no Address', res('x', Uint8Array.of(0xff, 0xff, 0xff)), 'not a valid istio.workload.Address'],
    ['a resource name that is not the uid', workloadRes(wl('b', '10.244.1.3'), 'demo/b'), 'is not the workload\'s uid'],
    ['an invalid trust domain', workloadRes(wl('b', '10.244.1.3', { trustDomain: 'Bad Domain' })), 'workload.trustDomain'],
    ['a service account that makes no SPIFFE id', workloadRes(wl('b', '10.244.1.3', { serviceAccount: 'a/b' })), 'no valid SPIFFE identity'],
    ['an address another workload holds', workloadRes(wl('b', '10.244.1.2')), '10.244.1.2 is also used by workload Kubernetes//Pod/demo/a'],
    ['a service named other than namespace/hostname', res('demo/b', encodeServiceAddress(svc)), 'is not the service\'s namespace/hostname'],
  ])('NACKs %s with the reason and applies the rest', async (_name, bad, reason) => {
    const h = harness();
    await h.update(addresses([workloadRes(wl('a', '10.244.1.2'))], [], true));
    await h.update(authorizations([], [], true));
    const good = wl('c', '10.244.1.4');
    const rejected = await h.update(addresses([bad, workloadRes(good)]));
    expect([...rejected.keys()]).toEqual([bad.name]);
    expect(rejected.get(bad.name)).toContain(reason);
    expect(h.states.at(-1)!.workloads.map((w) => w.name)).toEqual(['a', 'c']);
    expect(h.source.status().lastNack).toMatchObject({ typeUrl: ADDRESS_TYPE_URL, rejected: { [bad.name]: expect.stringContaining(reason) } });
  });

  it('NACKs an invalid authorization and an unknown type', async () => {
    const h = harness();
    await h.update(addresses([], [], true));
    const bad = res('demo/wrong-name', encodeAuthorization(policy('deny-9090')));
    const rejected = await h.update(authorizations([bad, res('demo/ok', encodeAuthorization(policy('ok')))], [], true));
    expect(rejected.get('demo/wrong-name')).toContain('is not the policy\'s namespace/name');
    expect(h.states.at(-1)!.policies.map((p) => p.name)).toEqual(['ok']);
    expect((await h.update({ typeUrl: 'type.googleapis.com/other', resources: [res('x', Uint8Array.of())], removed: [], initial: true })).get('x')).toContain('not served');
  });

  it('keeps the last good version of a resource whose update is refused, and applies removals', async () => {
    const h = harness();
    const a = wl('a', '10.244.1.2');
    const b = wl('b', '10.244.1.3');
    await h.update(addresses([workloadRes(a), workloadRes(b)], [], true));
    await h.update(authorizations([res('demo/p', encodeAuthorization(policy('p')))], [], true));

    // b's new version claims a's address: refused, the old b stays.
    expect((await h.update(addresses([workloadRes({ ...b, addresses: ['10.244.1.2'] })]))).size).toBe(1);
    expect(h.source.snapshot().workloads.find((w) => w.name === 'b')!.addresses).toEqual(['10.244.1.3']);

    // Removals: a goes, the policy goes.
    await h.update(addresses([], [a.uid]));
    await h.update(authorizations([], ['demo/p']));
    expect(h.states.at(-1)).toMatchObject({ workloads: [{ name: 'b' }], policies: [] });
    expect(h.source.status().resources).toEqual({ workloads: 1, services: 0, authorizations: 0 });
  });

  it('reports name → version of what it holds (the controller’s /debug/xds resources shape): a refused update keeps the old version, removals drop it', async () => {
    const h = harness();
    const a = wl('a', '10.244.1.2');
    const b = wl('b', '10.244.1.3');
    const at = (r: DeltaUpdate['resources'][number], version: string): DeltaUpdate['resources'][number] => ({ ...r, version });
    await h.update(addresses([at(workloadRes(b), 'b1'), at(workloadRes(a), 'a1')], [], true));
    await h.update(authorizations([at(res('demo/p', encodeAuthorization(policy('p'))), 'p1')], [], true));
    await h.update(addresses([at(workloadRes({ ...b, addresses: ['10.244.1.2'] }), 'b2')]));
    expect(h.source.resourceVersions()).toEqual({ [ADDRESS_TYPE_URL]: { [a.uid]: 'a1', [b.uid]: 'b1' }, [AUTHORIZATION_TYPE_URL]: { 'demo/p': 'p1' } });
    expect(Object.keys(h.source.resourceVersions()[ADDRESS_TYPE_URL] ?? {})).toEqual([a.uid, b.uid]);
    await h.update(addresses([], [a.uid]));
    await h.update(authorizations([at(res('demo/p', encodeAuthorization(policy('p', { action: 'ALLOW' }))), 'p2')]));
    expect(h.source.resourceVersions()).toEqual({ [ADDRESS_TYPE_URL]: { [b.uid]: 'b1' }, [AUTHORIZATION_TYPE_URL]: { 'demo/p': 'p2' } });
  });

  it('lets a pod replaced in one response reuse the address (removals first)', async () => {
    const h = harness();
    const old = wl('old', '10.244.1.9');
    await h.update(addresses([workloadRes(old)], [], true));
    await h.update(authorizations([], [], true));
    const rejected = await h.update(addresses([workloadRes(wl('new', '10.244.1.9'))], [old.uid]));
    expect(rejected.size).toBe(0);
    expect(h.states.at(-1)!.workloads.map((w) => w.name)).toEqual(['new']);
  });

  it('answers (ACKs) only after the agent applied the state', async () => {
    let release!: () => void;
    const applied = new Promise<void>((resolve) => (release = resolve));
    const h = harness(() => applied);
    await h.update(addresses([], [], true));
    let answered = false;
    const answer = h.update(authorizations([res('demo/p', encodeAuthorization(policy('p')))], [], true)).then((r) => {
      answered = true;
      return r;
    });
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(h.states).toHaveLength(1);
    expect(answered).toBe(false);
    expect(h.source.isReady()).toBe(false);
    release();
    expect((await answer).size).toBe(0);
    expect(h.source.isReady()).toBe(true);
  });

  it('NACKs what a response brought when applying it failed, and is not ready then', async () => {
    const h = harness(async () => {
      throw new Error('tc filter add failed');
    });
    await h.update(addresses([workloadRes(wl('a', '10.244.1.2'))], [], true));
    const rejected = await h.update(authorizations([res('demo/p', encodeAuthorization(policy('p')))], [], true));
    expect(rejected.get('demo/p')).toContain('applying the state failed: tc filter add failed');
    expect(h.source.isReady()).toBe(false);
  });

  it('handles responses one at a time, in order', async () => {
    const order: string[] = [];
    let n = 0;
    const h = harness(async (s) => {
      const k = n++;
      order.push(`start ${k}:${s.workloads.length}`);
      await new Promise((r) => setImmediate(r));
      order.push(`end ${k}`);
    });
    await h.update(authorizations([], [], true));
    await Promise.all([h.update(addresses([workloadRes(wl('a', '10.244.1.2'))], [], true)), h.update(addresses([workloadRes(wl('b', '10.244.1.3'))]))]);
    expect(order).toEqual(['start 0:1', 'end 0', 'start 1:2', 'end 1']);
  });

  it('keeps serving and stays ready while disconnected; reports the connection', async () => {
    const h = harness();
    await h.update(addresses([workloadRes(wl('a', '10.244.1.2'))], [], true));
    await h.update(authorizations([], [], true));
    h.clientOptions().onConnectionChange?.(true);
    expect(h.source.status()).toMatchObject({ connected: true, disconnects: 0 });
    h.clientStatus.reconnects = 1;
    h.clientOptions().onConnectionChange?.(false, new Error('UNAVAILABLE: connection refused'));
    expect(h.source.isReady()).toBe(true);
    expect(h.source.snapshot().workloads).toHaveLength(1);
    expect(h.source.status()).toMatchObject({ connected: false, disconnects: 1, reconnects: 1, lastError: 'UNAVAILABLE: connection refused' });
  });

  it('identifies itself as ztunnel does', () => {
    const h = harness();
    const node = { nodeName: 'node1', podName: 'amesh-node-x1', podNamespace: 'amesh-system', podIp: '10.0.0.7', clusterId: 'Kubernetes' };
    expect(h.clientOptions().node).toEqual({ id: 'ztunnel~10.0.0.7~amesh-node-x1.amesh-system~amesh-system.svc.cluster.local', cluster: 'Kubernetes', metadata: xdsNodeMetadata(node) });
    expect(xdsNodeMetadata(node)).toMatchObject({ NODE_NAME: 'node1', NAMESPACE: 'amesh-system', CLUSTER_ID: 'Kubernetes' });
    expect(xdsNodeId({ ...node, podIp: '', podName: '' })).toBe('ztunnel~0.0.0.0~amesh-node-node1.amesh-system~amesh-system.svc.cluster.local');
    expect(h.clientOptions().typeUrls).toEqual([ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]);
  });
});
