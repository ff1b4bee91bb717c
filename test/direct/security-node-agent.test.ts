/**
 * Security properties of a real node agent, in-process on loopback (issue #12), capture off:
 * the controller's ADS server feeding it two local pods (server 127.0.0.1, other 127.0.0.2) and
 * a namespace policy that allows only demo/bob, a fake mesh CA, echo servers as the pods, and
 * real HBONE clients holding mesh certificates.
 *
 * - A client with a valid certificate for identity A cannot pass as B: headers claiming B
 *   (forwarded, baggage, x-forwarded-client-cert, …) change nothing; the certificate decides.
 * - A CONNECT whose :authority names another pod than the one dialled is refused (400), even when
 *   that pod is local and the certificate presented was the dialled pod's; the other pod sees
 *   no connection.
 * - Mesh ports (15001, 15006, 15008) are refused as targets (loop protection).
 * - The admin port is bound to loopback only (the kernel's socket table says so), while the
 *   metrics and readiness ports are node-wide.
 * - No private key, bearer token or certificate body appears in the agent's logs (debug level).
 */
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { translateAuthorizationPolicy } from '../../src/controller/translate/authorization-policy.js';
import { AdsServer } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { HboneRefusedError } from '../../src/hbone/client.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import type { Authorization, Workload } from '../../src/node-agent/state/types.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, encodeAuthorization, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { serveAdsOverTls } from '../helpers/ads-tls.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeCa, type FakeCa } from '../helpers/fake-ca.js';
import { echoServer, listen } from '../helpers/hbone.js';
import { createTestCa, workload, type TestCa } from '../helpers/pki.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));
const ALICE = workload('demo', 'alice');
const BOB = workload('demo', 'bob');
const SERVER_URI = 'spiffe://cluster.local/ns/demo/sa/server';
const pod = (name: string, ip: string): Workload => ({ uid: `Kubernetes//Pod/demo/${name}`, name, namespace: 'demo', addresses: [ip], tunnelProtocol: 'HBONE', serviceAccount: name, node: 'node1', services: {}, status: 'HEALTHY' }) as Workload;

const cleanups: Array<() => Promise<void> | void> = [];
const logs: string[] = [];
let meshCa: TestCa;
let ca: FakeCa;
let ports: Awaited<ReturnType<NodeAgent['run']>>;
let pool: HbonePool;
let serverPort: number;
const otherConnections: net.Socket[] = [];
let otherPort: number;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'amesh-security-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  meshCa = await createTestCa();
  ca = await startFakeCa({ root: meshCa.ca });
  cleanups.push(() => ca.close());
  // The pods: echo servers on 127.0.0.1 (server) and 127.0.0.2 (other, records connections).
  const serverEcho = echoServer();
  serverPort = await listen(serverEcho, '127.0.0.1');
  const otherEcho = echoServer();
  otherEcho.on('connection', (s: net.Socket) => otherConnections.push(s));
  otherPort = await listen(otherEcho, '127.0.0.2');
  cleanups.push(() => void serverEcho.close(), () => void otherEcho.close());

  const { authorization } = translateAuthorizationPolicy({ metadata: { name: 'only-bob', namespace: 'demo' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/bob'] } }] }] } });
  const store = new ResourceStore();
  for (const w of [pod('server', '127.0.0.1'), pod('other', '127.0.0.2')]) store.upsert(ADDRESS_TYPE_URL, w.uid, encodeWorkloadAddress(w));
  store.upsert(AUTHORIZATION_TYPE_URL, 'demo/only-bob', encodeAuthorization(authorization as Authorization));
  const ads = new AdsServer({ store, log: pino({ level: 'silent' }), debounceMs: 5, maxDelayMs: 20, authenticate: async () => ({ ok: true, caller: 'amesh-system/amesh-node' }) });
  const served = await serveAdsOverTls(ads);
  cleanups.push(() => served.close());
  const grpcPort = served.port;
  const rootFile = join(dir, 'root-cert.pem');
  await writeFile(rootFile, ca.servingCaPem + meshCa.ca.certPem + served.caCertPem);
  const config = readAgentConfig({
    AMESH_CAPTURE_MODE: 'none',
    AMESH_DRAIN_TIMEOUT_MS: '100',
    AMESH_PRESERVE_SOURCE_IP: 'false',
    AMESH_CA_ADDRESS: ca.address,
    AMESH_CA_ROOT_CERT_FILE: rootFile,
    AMESH_CA_TOKEN_FILE: ca.tokenFile,
    AMESH_XDS_ADDRESS: `127.0.0.1:${grpcPort}`,
    AMESH_XDS_SERVER_NAME: 'amesh-controller.amesh-system.svc',
    NODE_NAME: 'node1',
    ...PORTS_ZERO,
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const agent = await NodeAgent.build({ config, logger: pino({ level: 'debug' }, sink) });
  cleanups.push(() => agent.close());
  ports = await agent.run();
  await eventually(async () => expect((await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`)).status).toBe(200), { timeoutMs: 10_000 });
  pool = new HbonePool({ certificates: { secureContext: (id) => meshCa.context(id) }, logger: pino({ level: 'silent' }) });
  cleanups.push(() => pool.close());
}, 30_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A tunnel dialled at the agent's HBONE port (local address 127.0.0.1 = the server pod). */
async function tunnel(identity: typeof ALICE, authority: string, headers: Record<string, string> = {}): Promise<{ status: number; echoed?: string }> {
  try {
    const stream = await pool.connect({ sourceIdentity: identity, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority, headers });
    stream.on('error', () => undefined);
    const got = once(stream, 'data');
    stream.write('hello');
    const [chunk] = (await got) as [Buffer];
    stream.destroy();
    return { status: 200, echoed: chunk.toString() };
  } catch (err) {
    if (err instanceof HboneRefusedError) return { status: err.status };
    throw err;
  }
}

describe('node agent security (direct, loopback)', () => {
  it('the certificate decides who the client is: bob passes, alice claiming to be bob does not', async () => {
    expect(await tunnel(BOB, `127.0.0.1:${serverPort}`)).toEqual({ status: 200, echoed: 'hello' });
    expect(await tunnel(ALICE, `127.0.0.1:${serverPort}`)).toEqual({ status: 401 });
    const claims = {
      forwarded: 'for="127.0.0.9:1234";by=spiffe://cluster.local/ns/demo/sa/bob',
      baggage: 'k8s.namespace.name=demo,k8s.serviceaccount.name=bob,service.name=bob',
      'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/demo/sa/bob',
      'x-spiffe-id': 'spiffe://cluster.local/ns/demo/sa/bob',
      'x-amesh-identity': 'spiffe://cluster.local/ns/demo/sa/bob',
    };
    expect(await tunnel(ALICE, `127.0.0.1:${serverPort}`, claims)).toEqual({ status: 401 });
    const denial = logs.join('').split('\n').find((l) => l.includes('policy: connection denied') && l.includes('alice'));
    expect(denial).toBeDefined();
    expect(denial).not.toContain('"identity":"spiffe://cluster.local/ns/demo/sa/bob"');
  });

  it('refuses a CONNECT whose :authority is another local pod than the one dialled (400); that pod sees nothing', async () => {
    const before = otherConnections.length;
    expect(await tunnel(BOB, `127.0.0.2:${otherPort}`)).toEqual({ status: 400 });
    expect(otherConnections.length).toBe(before);
    // And a host name in place of the dialled IP.
    expect((await tunnel(BOB, `localhost:${serverPort}`)).status).toBe(400);
  });

  it.each([15001, 15006, 15008])('refuses mesh port %i as a target (loop protection)', async (port) => {
    expect(await tunnel(BOB, `127.0.0.1:${port}`)).toEqual({ status: 400 });
  });

  it('binds the admin port to loopback only; metrics and readiness node-wide', async () => {
    const table = (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1);
    const listening = (port: number): string[] =>
      table
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f[3] === '0A' && Number.parseInt((f[1] ?? ':').split(':')[1] as string, 16) === port)
        .map((f) => (f[1] ?? '').split(':')[0] as string);
    expect(listening(ports.admin)).toEqual(['0100007F']); // 127.0.0.1, little-endian hex
    expect(listening(ports.metrics)).toEqual(['00000000']);
    expect(listening(ports.readiness)).toEqual(['00000000']);
  });

  it('never logs a private key, the CA token or a certificate body', async () => {
    const all = logs.join('');
    expect(all.length).toBeGreaterThan(1000);
    const token = (await readFile(ca.tokenFile, 'utf8')).trim();
    expect(all).not.toContain('PRIVATE KEY');
    expect(all).not.toContain('BEGIN CERTIFICATE');
    expect(token.length).toBeGreaterThan(0);
    expect(all).not.toContain(token);
  });
});
