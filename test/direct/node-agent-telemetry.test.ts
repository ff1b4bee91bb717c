// The node agent's L4 telemetry (issue #9) through real agents, in-process on loopback, capture off.
//
// 1. Two agents (local config files), a connection across them:
//      client pod 127.0.0.11 ──► Service VIP 127.0.0.1:<agent1 outbound port>   (agent1 = node1, the "capture")
//        └─ HBONE ─► agent2 127.0.0.2:<hbone port> (node2) ──► server pod 127.0.0.2:<server port>
//    agent1's /metrics has istio_tcp_* with reporter="source" and the client/server labels, agent2's
//    with reporter="destination"; bytes count while the connection lives (request 5 bytes, response
//    1000); both access logs have a line. A DENY policy at node2: counted opened+closed with
//    response_flags DENY on both sides, the access log line and the denial ring name the policy.
//    A same-node connection is reported by the one agent twice (source and destination).
// 2. One agent fed over xDS with Telemetry resources: logging off for the pod's namespace stops its
//    lines, a filter keeps only refusals and policy-change closes (recorded in the denial ring too),
//    removing the Telemetry brings the lines back.
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { addAdsService, AdsServer } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import type { Authorization, Workload } from '../../src/node-agent/state/types.js';
import { silentLogger, type Logger } from '../../src/telemetry/logger.js';
import { TELEMETRY_TYPE_URL, type NamespaceTelemetry } from '../../src/telemetry/telemetry-config.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, encodeAuthorization, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { encodeTelemetry } from '../../src/xds/telemetry-codec.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeCa } from '../helpers/fake-ca.js';
import { listen } from '../helpers/hbone.js';
import { meshCaDir } from '../helpers/mesh-ca-dir.js';
import { createTestCa, workload } from '../helpers/pki.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));
const CLIENT_URI = 'spiffe://cluster.local/ns/demo/sa/client';
const SERVER_URI = 'spiffe://cluster.local/ns/shop/sa/server';
const SERVICE_HOST = 'server.shop.svc.cluster.local';
const RESPONSE = 'x'.repeat(1000);

interface LogLine {
  msg: string;
  component?: string;
  [key: string]: unknown;
}

function logSink(): { lines: LogLine[]; logger: Logger } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, sink) };
}

/** Sum of the samples of `metric` whose labels include `match` (Prometheus text format). */
function sampleSum(text: string, metric: string, match: Record<string, string>): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== metric) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

/** The server pod: reads the request until the client half-closes, then answers RESPONSE and ends. */
function responder(): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.resume();
    s.on('end', () => s.end(RESPONSE));
  });
}

describe('node agent L4 telemetry', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('two agents report istio_tcp_* as source and destination with workload and principal labels; a denial is counted, logged and recorded with its policy', async () => {
    const { dir } = await meshCaDir('amesh-l4-telemetry-', cleanups);

    const server = responder();
    const serverPort = await listen(server, '127.0.0.2');
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const client: Workload = { uid: 'Kubernetes//Pod/demo/client-1', name: 'client-1', namespace: 'demo', addresses: ['127.0.0.11'], tunnelProtocol: 'HBONE', serviceAccount: 'client', node: 'node1', workloadName: 'client', canonicalName: 'client', canonicalRevision: 'v1', services: {} };
    const serverPod = (servicePort: number): Workload => ({
      uid: 'Kubernetes//Pod/shop/server-v2-1',
      name: 'server-v2-1',
      namespace: 'shop',
      addresses: ['127.0.0.2'],
      tunnelProtocol: 'HBONE',
      serviceAccount: 'server',
      node: 'node2',
      workloadName: 'server-v2',
      canonicalName: 'server',
      canonicalRevision: 'v2',
      services: servicePort ? { [`shop/${SERVICE_HOST}`]: { ports: [{ servicePort, targetPort: serverPort }] } } : {},
    });
    const mesh = (node: string, servicePort: number, policies: Authorization[] = []): string =>
      stringify({
        node,
        ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' },
        workloads: [client, serverPod(servicePort)],
        services: servicePort ? [{ name: 'server', namespace: 'shop', hostname: SERVICE_HOST, addresses: ['127.0.0.1'], ports: [{ servicePort, targetPort: serverPort }] }] : [],
        policies,
      });

    // --- agent2 (node2) on 127.0.0.2 first: its HBONE port is where agent1 tunnels to.
    const file2 = join(dir, 'node2.yaml');
    await writeFile(file2, mesh('node2', 0));
    const log2 = logSink();
    const agent2 = await NodeAgent.build({ config: readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_DRAIN_TIMEOUT_MS: '100', AMESH_LISTEN_ADDRESS4: '127.0.0.2', ...PORTS_ZERO }, 'node2'), localConfigPath: file2, logger: log2.logger });
    cleanups.push(() => agent2.close());
    const ports2 = await agent2.run();

    // --- agent1 (node1) on 127.0.0.1, tunnelling to port ports2.hbone (its own HBONE listener takes the same number on 127.0.0.1).
    const file1 = join(dir, 'node1.yaml');
    await writeFile(file1, mesh('node1', 0));
    const log1 = logSink();
    const agent1 = await NodeAgent.build({
      config: readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_DRAIN_TIMEOUT_MS: '100', AMESH_CONNECT_TIMEOUT_MS: '3000', ...PORTS_ZERO, AMESH_HBONE_PORT: String(ports2.hbone) }, 'node1'),
      localConfigPath: file1,
      logger: log1.logger,
    });
    cleanups.push(() => agent1.close());
    const ports1 = await agent1.run();
    // The Service's VIP:port is agent1's outbound listener: a connection to it is what capture hands the agent.
    await writeFile(file1, mesh('node1', ports1.outbound));
    expect(await agent1.reload()).toBe(true);

    const dial = async (): Promise<net.Socket> => {
      const socket = net.connect({ host: '127.0.0.1', port: ports1.outbound, localAddress: '127.0.0.11', allowHalfOpen: true });
      socket.on('error', () => undefined);
      await within(once(socket, 'connect'), 5000, 'connect to the outbound listener');
      return socket;
    };

    // --- A connection that stays open: its request bytes are counted before it closes.
    const live = await dial();
    const chunks: Buffer[] = [];
    live.on('data', (c: Buffer) => chunks.push(c));
    live.write('hello');
    const source = { reporter: 'source', source_workload: 'client', destination_workload: 'server-v2' };
    await eventually(
      async () => {
        const text = await scrape(ports1.metrics);
        expect(sampleSum(text, 'istio_tcp_connections_opened_total', source)).toBe(1);
        expect(sampleSum(text, 'istio_tcp_received_bytes_total', source)).toBe(5);
        expect(sampleSum(text, 'istio_tcp_connections_closed_total', source)).toBeUndefined();
      },
      { timeoutMs: 5000, description: 'agent1 counts the live connection and its request bytes' },
    );
    const ended = once(live, 'end');
    live.end();
    await within(ended, 5000, 'the response');
    expect(Buffer.concat(chunks).toString()).toBe(RESPONSE);

    // --- Source side (agent1): Istio's labels, closed, bytes in both directions.
    const fullSource = {
      reporter: 'source',
      source_workload: 'client',
      source_workload_namespace: 'demo',
      source_principal: CLIENT_URI,
      source_app: 'client',
      source_version: 'v1',
      source_canonical_service: 'client',
      source_canonical_revision: 'v1',
      source_cluster: 'Kubernetes',
      destination_service: SERVICE_HOST,
      destination_service_name: 'server',
      destination_service_namespace: 'shop',
      destination_workload: 'server-v2',
      destination_workload_namespace: 'shop',
      destination_principal: SERVER_URI,
      destination_app: 'server',
      destination_version: 'v2',
      destination_cluster: 'Kubernetes',
      request_protocol: 'tcp',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    };
    await eventually(
      async () => {
        const text = await scrape(ports1.metrics);
        expect(sampleSum(text, 'istio_tcp_connections_opened_total', fullSource)).toBe(1);
        expect(sampleSum(text, 'istio_tcp_connections_closed_total', fullSource)).toBe(1);
        expect(sampleSum(text, 'istio_tcp_received_bytes_total', fullSource)).toBe(5);
        expect(sampleSum(text, 'istio_tcp_sent_bytes_total', fullSource)).toBe(RESPONSE.length);
      },
      { timeoutMs: 5000, description: 'agent1 reports the closed connection as source' },
    );

    // --- Destination side (agent2): the peer certificate's principal, the source workload by its address.
    const destination = { reporter: 'destination', source_workload: 'client', source_principal: CLIENT_URI, destination_workload: 'server-v2', destination_principal: SERVER_URI, connection_security_policy: 'mutual_tls', response_flags: '-' };
    await eventually(
      async () => {
        const text = await scrape(ports2.metrics);
        expect(sampleSum(text, 'istio_tcp_connections_opened_total', destination)).toBe(1);
        expect(sampleSum(text, 'istio_tcp_connections_closed_total', destination)).toBe(1);
        expect(sampleSum(text, 'istio_tcp_received_bytes_total', destination)).toBe(5);
        expect(sampleSum(text, 'istio_tcp_sent_bytes_total', destination)).toBe(RESPONSE.length);
      },
      { timeoutMs: 5000, description: 'agent2 reports the connection as destination' },
    );
    expect(sampleSum(await scrape(ports1.metrics), 'istio_tcp_connections_opened_total', { reporter: 'destination' })).toBeUndefined();

    // --- Access logs: one line per connection per side, Istio's field names, the local pod's view of bytes.
    const access = (lines: LogLine[]): LogLine[] => lines.filter((l) => l.component === 'access');
    expect(access(log1.lines)).toEqual([
      expect.objectContaining({ msg: 'connection complete', direction: 'outbound', 'src.addr': expect.stringMatching(/^127\.0\.0\.11:\d+$/), 'src.workload': client.uid, 'src.namespace': 'demo', 'src.identity': CLIENT_URI, 'dst.addr': `127.0.0.1:${ports1.outbound}`, 'dst.hbone_addr': `127.0.0.2:${ports2.hbone}`, 'dst.service': SERVICE_HOST, 'dst.workload': 'Kubernetes//Pod/shop/server-v2-1', 'dst.identity': SERVER_URI, bytes_sent: 5, bytes_recv: RESPONSE.length, duration: expect.stringMatching(/^\d+ms$/) }),
    ]);
    await eventually(
      () =>
        expect(access(log2.lines)).toEqual([
          expect.objectContaining({ msg: 'connection complete', direction: 'inbound', 'src.workload': client.uid, 'src.identity': CLIENT_URI, 'dst.addr': `127.0.0.2:${serverPort}`, 'dst.workload': 'Kubernetes//Pod/shop/server-v2-1', 'dst.namespace': 'shop', bytes_sent: RESPONSE.length, bytes_recv: 5 }),
        ]),
      { timeoutMs: 5000, description: 'agent2 access log line' },
    );

    // --- Same node: client2 on node2 → the server pod, admitted in-process by agent2 and reported
    // by it twice, as source and as destination. (Service VIP = agent2's address, port = its outbound listener.)
    const client2: Workload = { ...client, uid: 'Kubernetes//Pod/demo/client2-1', name: 'client2-1', addresses: ['127.0.0.12'], serviceAccount: 'client2', node: 'node2', workloadName: 'client2', canonicalName: 'client2' };
    const sameNodeMesh = (policies: Authorization[] = []): string =>
      stringify({
        node: 'node2',
        ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' },
        workloads: [client, client2, serverPod(ports2.outbound)],
        services: [{ name: 'server', namespace: 'shop', hostname: SERVICE_HOST, addresses: ['127.0.0.2'], ports: [{ servicePort: ports2.outbound, targetPort: serverPort }] }],
        policies,
      });
    await writeFile(file2, sameNodeMesh());
    expect(await agent2.reload()).toBe(true);
    const local = net.connect({ host: '127.0.0.2', port: ports2.outbound, localAddress: '127.0.0.12', allowHalfOpen: true });
    local.on('error', () => undefined);
    const localChunks: Buffer[] = [];
    local.on('data', (c: Buffer) => localChunks.push(c));
    const localEnded = once(local, 'end');
    local.end('hi!');
    await within(localEnded, 5000, 'the same-node response');
    expect(Buffer.concat(localChunks).toString()).toBe(RESPONSE);
    const sameNode = { source_workload: 'client2', source_principal: 'spiffe://cluster.local/ns/demo/sa/client2', destination_workload: 'server-v2', destination_principal: SERVER_URI, connection_security_policy: 'mutual_tls', response_flags: '-' };
    await eventually(
      async () => {
        const text = await scrape(ports2.metrics);
        for (const reporter of ['source', 'destination']) {
          expect(sampleSum(text, 'istio_tcp_connections_closed_total', { ...sameNode, reporter })).toBe(1);
          expect(sampleSum(text, 'istio_tcp_received_bytes_total', { ...sameNode, reporter })).toBe(3);
          expect(sampleSum(text, 'istio_tcp_sent_bytes_total', { ...sameNode, reporter })).toBe(RESPONSE.length);
        }
        expect(sampleSum(text, 'istio_tcp_connections_opened_total', { ...sameNode, reporter: 'source', destination_service: SERVICE_HOST })).toBe(1);
      },
      { timeoutMs: 5000, description: 'agent2 reports the same-node connection as source and destination' },
    );
    expect(access(log2.lines).filter((l) => l['src.workload'] === client2.uid).map((l) => [l.direction, l['dst.hbone_addr']])).toEqual(
      expect.arrayContaining([
        ['outbound', 'in-process'],
        ['inbound', 'in-process'],
      ]),
    );

    // --- A DENY policy at node2 for the client's identity.
    const deny: Authorization = { name: 'deny-client', namespace: 'shop', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/client' }] }] }] }] };
    await writeFile(file2, sameNodeMesh([deny]));
    expect(await agent2.reload()).toBe(true);
    const refused = await dial();
    await within(new Promise<void>((resolve) => (refused.closed ? resolve() : refused.once('close', () => resolve()))), 5000, 'the denied connection is reset');

    const denied = { response_flags: 'DENY', source_workload: 'client', destination_workload: 'server-v2' };
    await eventually(
      async () => {
        const t2 = await scrape(ports2.metrics);
        expect(sampleSum(t2, 'istio_tcp_connections_opened_total', { ...denied, reporter: 'destination', source_principal: CLIENT_URI })).toBe(1);
        expect(sampleSum(t2, 'istio_tcp_connections_closed_total', { ...denied, reporter: 'destination' })).toBe(1);
        const t1 = await scrape(ports1.metrics);
        expect(sampleSum(t1, 'istio_tcp_connections_opened_total', { ...denied, reporter: 'source', destination_principal: SERVER_URI })).toBe(1);
        expect(sampleSum(t1, 'istio_tcp_connections_closed_total', { ...denied, reporter: 'source' })).toBe(1);
      },
      { timeoutMs: 5000, description: 'the denial counted on both sides with response_flags DENY' },
    );
    expect(access(log2.lines).at(-1)).toMatchObject({ msg: 'connection refused', direction: 'inbound', 'src.identity': CLIENT_URI, response_flags: 'DENY', policy: 'shop/deny-client', rule: expect.stringMatching(/^0: /), error: 'refused (401)' });
    expect(access(log1.lines).at(-1)).toMatchObject({ direction: 'outbound', error: 'refused', response_flags: 'DENY', reason: expect.stringContaining('401') });
    expect(agent2.l4.denials.list()[0]).toMatchObject({ direction: 'inbound', sourceIdentity: CLIENT_URI, destinationWorkload: 'Kubernetes//Pod/shop/server-v2-1', dst: `127.0.0.2:${serverPort}`, policy: 'shop/deny-client', rule: expect.stringMatching(/^0: /) });
    expect(agent1.l4.denials.list()[0]).toMatchObject({ direction: 'outbound', sourceIdentity: CLIENT_URI, policy: '(at the destination)' });
    // The ring as the admin port serves it.
    const served = (await (await fetch(`http://127.0.0.1:${ports2.admin}/debug/denials`)).json()) as { total: number; denials: Array<Record<string, unknown>> };
    expect(served.total).toBe(1);
    expect(served.denials[0]).toMatchObject({ policy: 'shop/deny-client', sourceIdentity: CLIENT_URI, reason: expect.any(String), time: expect.any(String) });
  });

  it('follows Telemetry from xDS: logging off for the pod’s namespace stops its lines, a filter keeps refusals only, removal restores them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amesh-l4-telemetry-xds-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const meshCa = await createTestCa();
    const ca = await startFakeCa({ root: meshCa.ca });
    cleanups.push(() => ca.close());
    const rootFile = join(dir, 'root-cert.pem');
    await writeFile(rootFile, ca.servingCaPem + meshCa.ca.certPem);

    const store = new ResourceStore();
    const ads = new AdsServer({ store, log: silentLogger, debounceMs: 5, maxDelayMs: 20, typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, TELEMETRY_TYPE_URL], authenticate: async () => ({ ok: true, caller: 'amesh-system/amesh-node' }) });
    const grpcServer = new grpc.Server();
    addAdsService(grpcServer, ads);
    const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    cleanups.push(() => {
      ads.close();
      grpcServer.forceShutdown();
    });

    const server = responder();
    const serverPort = await listen(server);
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    // The pod the tunnels end at: 127.0.0.1 (the HBONE listener's local address) in namespace demo.
    const pod: Workload = { uid: 'Kubernetes//Pod/demo/server', name: 'server', namespace: 'demo', addresses: ['127.0.0.1'], tunnelProtocol: 'HBONE', serviceAccount: 'server', node: 'node1', services: {}, status: 'HEALTHY' };
    store.upsert(ADDRESS_TYPE_URL, pod.uid, encodeWorkloadAddress(pod));
    const denyBob: Authorization = { name: 'deny-bob', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/bob' }] }] }] }] };
    store.upsert(AUTHORIZATION_TYPE_URL, 'demo/deny-bob', encodeAuthorization(denyBob));

    const log = logSink();
    const config = readAgentConfig({
      AMESH_CAPTURE_MODE: 'none',
      AMESH_DRAIN_TIMEOUT_MS: '100',
      AMESH_CA_ADDRESS: ca.address,
      AMESH_CA_ROOT_CERT_FILE: rootFile,
      AMESH_CA_TOKEN_FILE: ca.tokenFile,
      AMESH_XDS_ADDRESS: `127.0.0.1:${grpcPort}`,
      NODE_NAME: 'node1',
      POD_NAMESPACE: 'amesh-system',
      ...PORTS_ZERO,
    });
    const agent = await NodeAgent.build({ config, logger: log.logger, xdsCredentials: { kind: 'insecure' } });
    cleanups.push(() => agent.close());
    const ports = await agent.run();
    await eventually(async () => expect((await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`)).status).toBe(200), { timeoutMs: 10_000, description: 'agent ready' });

    const pool = new HbonePool({ certificates: { secureContext: (id) => meshCa.context(id) }, logger: silentLogger });
    cleanups.push(() => pool.close());
    const SERVER = 'spiffe://cluster.local/ns/demo/sa/server';
    /** One request/response through a tunnel from `sa`; resolves once the agent counted it closed. */
    let closedSoFar = 0;
    const exchange = async (sa: string): Promise<void> => {
      const stream: Duplex = await pool.connect({ sourceIdentity: workload('demo', sa), expectedIdentities: [SERVER], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority: `127.0.0.1:${serverPort}`, headers: {} });
      stream.on('error', () => undefined);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      const ended = once(stream, 'end');
      stream.end('ping');
      await within(ended, 5000, 'response through the tunnel');
      expect(Buffer.concat(chunks).toString()).toBe(RESPONSE);
      closedSoFar++;
      await eventually(async () => expect(sampleSum(await scrape(ports.metrics), 'istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: '-' })).toBe(closedSoFar), {
        timeoutMs: 5000,
        description: 'the agent counted the connection closed',
      });
    };
    const access = (): LogLine[] => log.lines.filter((l) => l.component === 'access');
    /** Resolves once the agent ACKed the current version of the namespace's Telemetry. */
    const acked = (what: string): Promise<unknown> =>
      eventually(() => expect(ads.ackedVersion('node1', TELEMETRY_TYPE_URL, 'demo')).toBe(store.get(TELEMETRY_TYPE_URL, 'demo')?.version), { timeoutMs: 5000, description: what });

    // --- No Telemetry: the default logs every connection.
    await exchange('alice');
    expect(access()).toHaveLength(1);

    // --- Logging disabled for namespace demo: no line for the pod's connections.
    const quiet: NamespaceTelemetry = { namespace: 'demo', settings: { accessLogging: { enabled: false }, sources: ['demo/quiet'] } };
    store.upsert(TELEMETRY_TYPE_URL, 'demo', encodeTelemetry(quiet));
    await acked('the agent has the Telemetry');
    await exchange('alice');
    expect(access()).toHaveLength(1);

    // --- A filter: refusals only. An allowed connection logs nothing, bob's denial is logged with its policy.
    const errorsOnly: NamespaceTelemetry = { namespace: 'demo', settings: { accessLogging: { enabled: true, filter: 'response.flags != "-" || connection.error.startsWith("closed by a policy change")' }, sources: ['demo/errors-only'] } };
    store.upsert(TELEMETRY_TYPE_URL, 'demo', encodeTelemetry(errorsOnly));
    await acked('the filter arrived');
    await exchange('alice');
    expect(access()).toHaveLength(1);
    await expect(pool.connect({ sourceIdentity: workload('demo', 'bob'), expectedIdentities: [SERVER], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority: `127.0.0.1:${serverPort}`, headers: {} })).rejects.toThrow(/401/);
    await eventually(() => expect(access()).toHaveLength(2), { timeoutMs: 5000, description: 'the denial logged' });
    expect(access()[1]).toMatchObject({ msg: 'connection refused', 'src.identity': 'spiffe://cluster.local/ns/demo/sa/bob', policy: 'demo/deny-bob', response_flags: 'DENY' });
    expect(agent.l4.denials.list()[0]).toMatchObject({ policy: 'demo/deny-bob', sourceIdentity: 'spiffe://cluster.local/ns/demo/sa/bob' });

    // --- A live connection a policy change now denies: closed, and recorded in the ring as such.
    const carol: Duplex = await pool.connect({ sourceIdentity: workload('demo', 'carol'), expectedIdentities: [SERVER], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority: `127.0.0.1:${serverPort}`, headers: {} });
    carol.on('error', () => undefined);
    const carolClosed = new Promise<void>((resolve) => carol.once('close', () => resolve()));
    await eventually(async () => expect(sampleSum(await scrape(ports.metrics), 'istio_tcp_connections_opened_total', { source_principal: 'spiffe://cluster.local/ns/demo/sa/carol' })).toBe(1), { timeoutMs: 5000, description: 'carol’s connection admitted' });
    const denyCarol: Authorization = { ...denyBob, name: 'deny-carol', rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/carol' }] }] }] }] };
    store.upsert(AUTHORIZATION_TYPE_URL, 'demo/deny-carol', encodeAuthorization(denyCarol));
    await within(carolClosed, 5000, 'carol’s connection closed by the policy change');
    await eventually(() => expect(agent.l4.denials.list()[0]).toMatchObject({ policy: 'demo/deny-carol', sourceIdentity: 'spiffe://cluster.local/ns/demo/sa/carol', reason: expect.stringContaining('closed by a policy change') }), {
      timeoutMs: 5000,
      description: 'the policy-change close recorded',
    });
    closedSoFar++;
    await eventually(async () => expect(sampleSum(await scrape(ports.metrics), 'istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: '-' })).toBe(closedSoFar), { timeoutMs: 5000, description: 'carol’s connection counted closed' });
    // The filter's second half lets its line through, with the reason.
    expect(access()).toHaveLength(3);
    expect(access()[2]).toMatchObject({ msg: 'connection complete', 'src.identity': 'spiffe://cluster.local/ns/demo/sa/carol', error: expect.stringMatching(/^closed by a policy change: .*deny-carol/) });

    // --- Telemetry removed: back to the default.
    store.remove(TELEMETRY_TYPE_URL, 'demo');
    await eventually(() => expect(log.lines.some((l) => l.msg === 'xds: telemetry applied' && (l.namespaces as string[]).length === 0)).toBe(true), { timeoutMs: 5000, description: 'the Telemetry removed' });
    await exchange('alice');
    expect(access()).toHaveLength(4);
  });
});
