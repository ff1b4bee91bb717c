// The node agent fed over xDS (issue #5), in-process with capture off and every port 0: the
// controller's ADS server on 127.0.0.1 (TLS with its own serving CA, behind a front door that
// can go "down"), a fake mesh CA for workload certificates, and real HBONE clients.
//   - not ready before the first full state, ready after; /config_dump shows the workloads;
//   - a policy change closes the live connection it now denies, logged with policy and rule,
//     while an allowed one stays; the ACK for that policy comes after;
//   - the server goes away: the agent keeps its state and stays ready; it comes back: changes
//     made meanwhile arrive;
//   - an invalid resource is NACKed with a reason and the rest applied.
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { AdsServer, type AdsNack } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import type { Authorization, Workload } from '../../src/node-agent/state/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, encodeAuthorization, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { serveAdsOverTls } from '../helpers/ads-tls.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeCa, type FakeCa } from '../helpers/fake-ca.js';
import { echoServer, listen } from '../helpers/hbone.js';
import { createTestCa, workload } from '../helpers/pki.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));
const ALICE = workload('demo', 'alice');
const BOB = workload('demo', 'bob');
const SERVER_URI = 'spiffe://cluster.local/ns/demo/sa/server';

// The pod the tunnels end at: 127.0.0.1 stands for its IP (the HBONE listener's local address).
const server: Workload = { uid: 'Kubernetes//Pod/demo/server', name: 'server', namespace: 'demo', addresses: ['127.0.0.1'], tunnelProtocol: 'HBONE', serviceAccount: 'server', node: 'node1', services: {}, status: 'HEALTHY' };
const remote = (name: string, ip: string): Workload => ({ ...server, uid: `Kubernetes//Pod/demo/${name}`, name, serviceAccount: name, addresses: [ip], node: 'node2' });
const allowAlice: Authorization = { name: 'allow-alice', namespace: 'demo', scope: 'NAMESPACE', action: 'ALLOW', rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/alice' }] }] }] }] };

interface Dump {
  stateSource: string;
  workloads: Array<{ uid: string }>;
  policies: Array<{ name: string }>;
  xds: { ready: boolean; connected: boolean; disconnects: number; resources: { workloads: number; authorizations: number }; lastNack?: { typeUrl: string; rejected: Record<string, string> } };
  connections: { inbound: number };
}

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

/** TCP front door to the gRPC port that can go "down" (resets everything) and come back on the same port. */
async function frontDoor(targetPort: number): Promise<{ port: number; setDown(down: boolean): void; close(): Promise<void> }> {
  let down = true;
  const live = new Set<net.Socket>();
  const door = net.createServer((socket) => {
    socket.on('error', () => undefined);
    if (down) return socket.resetAndDestroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    live.add(socket);
    socket.on('close', () => live.delete(socket));
    socket.pipe(upstream).pipe(socket);
  });
  const port = await listen(door);
  return {
    port,
    setDown: (value) => {
      down = value;
      if (value) for (const s of live) s.resetAndDestroy();
    },
    close: async () => {
      for (const s of live) s.destroy();
      await new Promise<void>((resolve) => door.close(() => resolve()));
    },
  };
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

/** Writes a line and reads it back through the tunnel. */
async function roundTrip(stream: Duplex, text: string): Promise<string> {
  const got = once(stream, 'data');
  stream.write(text);
  const [chunk] = (await within(got, 5000, `echo of ${text}`)) as [Buffer];
  return chunk.toString();
}

describe('node agent with state over xDS', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('serves the controller’s state, re-checks live connections on policy change, survives the server going away, NACKs invalid resources', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amesh-xds-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const meshCa = await createTestCa();
    const ca: FakeCa = await startFakeCa({ root: meshCa.ca });
    cleanups.push(() => ca.close());

    // The ADS server, on TLS with its own serving CA; the agent's root file holds both serving CAs and the mesh root.
    const store = new ResourceStore();
    const tokens: Array<string | undefined> = [];
    const ads = new AdsServer({
      store,
      log: silentLogger,
      debounceMs: 5,
      maxDelayMs: 20,
      authenticate: async (md) => {
        tokens.push(md.get('authorization')[0]?.toString());
        return { ok: true, caller: 'amesh-system/amesh-node' };
      },
    });
    const nacks: AdsNack[] = [];
    ads.on('nack', (_node, _type, nack) => nacks.push(nack));
    const served = await serveAdsOverTls(ads);
    cleanups.push(() => served.close());
    const grpcPort = served.port;
    const door = await frontDoor(grpcPort);
    cleanups.push(() => door.close());
    const rootFile = join(dir, 'root-cert.pem');
    await writeFile(rootFile, ca.servingCaPem + meshCa.ca.certPem + served.caCertPem);

    const echo = echoServer();
    const echoPort = await listen(echo);
    cleanups.push(() => void echo.close());

    const logs: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    const config = readAgentConfig({
      AMESH_CAPTURE_MODE: 'none',
      AMESH_DRAIN_TIMEOUT_MS: '100',
      AMESH_CA_ADDRESS: ca.address,
      AMESH_CA_ROOT_CERT_FILE: rootFile,
      AMESH_CA_TOKEN_FILE: ca.tokenFile,
      AMESH_TRUST_BUNDLE_POLL_MS: '50',
      AMESH_XDS_ADDRESS: `127.0.0.1:${door.port}`,
      AMESH_XDS_SERVER_NAME: 'amesh-controller.amesh-system.svc',
      NODE_NAME: 'node1',
      POD_NAME: 'amesh-node-abc',
      POD_NAMESPACE: 'amesh-system',
      ...PORTS_ZERO,
    });
    const agent = await NodeAgent.build({ config, logger: pino({ level: 'info' }, sink) });
    cleanups.push(() => agent.close());
    const ports = await agent.run();
    const dump = async (): Promise<Dump> => (await fetch(`http://127.0.0.1:${ports.admin}/config_dump`)).json() as Promise<Dump>;
    const readiness = async (): Promise<{ status: number; body: { ready: boolean; xds?: { connected: boolean } } }> => {
      const res = await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`);
      return { status: res.status, body: (await res.json()) as { ready: boolean; xds?: { connected: boolean } } };
    };

    // --- Not ready before the first full state (the server is unreachable so far).
    store.upsert(ADDRESS_TYPE_URL, server.uid, encodeWorkloadAddress(server));
    store.upsert(ADDRESS_TYPE_URL, 'Kubernetes//Pod/demo/alice', encodeWorkloadAddress(remote('alice', '10.244.2.1')));
    expect(await readiness()).toMatchObject({ status: 503, body: { ready: false, xds: { connected: false } } });
    expect(await dump()).toMatchObject({ stateSource: 'xds', workloads: [], xds: { ready: false, connected: false } });

    // --- The server is reachable: ready, with its state.
    door.setDown(false);
    await eventually(async () => expect((await readiness()).status).toBe(200), { timeoutMs: 10_000, description: 'agent ready after the first full state' });
    const first = await dump();
    expect(first.workloads.map((w) => w.uid).sort()).toEqual(['Kubernetes//Pod/demo/alice', server.uid]);
    expect(first.xds).toMatchObject({ ready: true, connected: true, resources: { workloads: 2, authorizations: 0 } });
    expect(tokens[0]).toBe('Bearer token-1');
    expect(ads.connections()[0]).toMatchObject({ nodeName: 'node1', node: 'ztunnel~0.0.0.0~amesh-node-abc.amesh-system~amesh-system.svc.cluster.local' });

    // --- Two live tunnels to the server pod, from alice and from bob.
    const pool = new HbonePool({ certificates: { secureContext: (id) => meshCa.context(id) }, logger: silentLogger });
    cleanups.push(() => pool.close());
    const tunnel = (source: typeof ALICE): Promise<Duplex> =>
      pool.connect({ sourceIdentity: source, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority: `127.0.0.1:${echoPort}`, headers: {} });
    const fromAlice = await tunnel(ALICE);
    const fromBob = await tunnel(BOB);
    fromAlice.on('error', () => undefined);
    fromBob.on('error', () => undefined);
    expect(await roundTrip(fromAlice, 'alice-1')).toBe('alice-1');
    expect(await roundTrip(fromBob, 'bob-1')).toBe('bob-1');
    expect((await dump()).connections.inbound).toBe(2);

    // --- A policy now allows only alice: bob's live connection is closed, alice's stays.
    // (events.once would reject on the stream's 'error': RST_STREAM(CONNECT_ERROR) is the expected end.)
    const bobClosed = new Promise<void>((resolve) => fromBob.once('close', () => resolve()));
    store.upsert(AUTHORIZATION_TYPE_URL, 'demo/allow-alice', encodeAuthorization(allowAlice));
    await within(bobClosed, 5000, 'bob’s connection closed by the policy change');
    expect(await roundTrip(fromAlice, 'alice-2')).toBe('alice-2');
    const closedLog = logs.find((l) => l.msg === 'policy: connection closed by policy change');
    expect(closedLog).toMatchObject({ identity: 'spiffe://cluster.local/ns/demo/sa/bob', workload: server.uid, policy: 'demo/allow-alice', rule: 'no ALLOW rule matched' });
    await eventually(() => expect(ads.ackedVersion('node1', AUTHORIZATION_TYPE_URL, 'demo/allow-alice')).toBe(store.get(AUTHORIZATION_TYPE_URL, 'demo/allow-alice')?.version), {
      timeoutMs: 5000,
      description: 'the policy ACKed',
    });
    // A new tunnel from bob is refused now, and the refusal names the policy.
    await expect(tunnel(BOB)).rejects.toThrow(/401/);
    expect(logs.find((l) => l.msg === 'policy: connection denied')).toMatchObject({ policy: 'demo/allow-alice', rule: 'no ALLOW rule matched' });

    // --- The server goes away: state kept, still ready, the data path unaffected.
    door.setDown(true);
    await eventually(async () => expect((await dump()).xds.connected).toBe(false), { timeoutMs: 5000, description: 'agent notices the server is gone' });
    expect((await readiness()).status).toBe(200);
    expect((await dump()).workloads).toHaveLength(2);
    expect(await roundTrip(fromAlice, 'alice-3')).toBe('alice-3');

    // Changes while it is away: a new workload, the policy removed.
    store.upsert(ADDRESS_TYPE_URL, 'Kubernetes//Pod/demo/late', encodeWorkloadAddress(remote('late', '10.244.2.9')));
    store.remove(AUTHORIZATION_TYPE_URL, 'demo/allow-alice');

    // --- It comes back: the changes arrive.
    door.setDown(false);
    await eventually(
      async () => {
        const d = await dump();
        expect(d.xds.connected).toBe(true);
        expect(d.workloads.map((w) => w.uid)).toContain('Kubernetes//Pod/demo/late');
        expect(d.policies).toEqual([]);
      },
      { timeoutMs: 10_000, description: 'changes made while disconnected arrive' },
    );
    expect((await dump()).xds.disconnects).toBeGreaterThanOrEqual(1);
    expect(await roundTrip(fromAlice, 'alice-4')).toBe('alice-4');

    // --- An invalid resource (name is not the workload's uid) is NACKed; the good one next to it applies.
    const bad = remote('bad', '10.244.2.10');
    store.replaceAll(
      ADDRESS_TYPE_URL,
      new Map([
        ...[...store.resources(ADDRESS_TYPE_URL)].map(([name, r]) => [name, r.bytes] as const),
        ['demo/bad', encodeWorkloadAddress(bad)] as const,
        ['Kubernetes//Pod/demo/good', encodeWorkloadAddress(remote('good', '10.244.2.11'))] as const,
      ]),
    );
    const afterNack = await eventually(
      async () => {
        const d = await dump();
        expect(d.xds.lastNack?.rejected['demo/bad']).toBeDefined();
        return d;
      },
      { timeoutMs: 5000, description: 'the invalid resource NACKed' },
    );
    expect(afterNack.xds.lastNack).toMatchObject({ typeUrl: ADDRESS_TYPE_URL, rejected: { 'demo/bad': expect.stringContaining('is not the workload\'s uid') } });
    expect(afterNack.workloads.map((w) => w.uid)).toContain('Kubernetes//Pod/demo/good');
    expect(afterNack.workloads.map((w) => w.uid)).not.toContain(bad.uid);
    await eventually(() => expect(nacks.some((n) => n.message.includes('demo/bad: resource name'))).toBe(true), { timeoutMs: 5000, description: 'the server saw the NACK' });
    expect((await readiness()).status).toBe(200);
  });

  it('refuses to start without a source of state, naming both options', async () => {
    const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'none', ...PORTS_ZERO }, 'node1');
    await expect(NodeAgent.build({ config, logger: silentLogger })).rejects.toThrow(/--local-config.*AMESH_XDS_ADDRESS/);
  });
});
