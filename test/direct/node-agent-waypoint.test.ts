// Waypoint hand-off through the node agent's real proxy path (issue #6, DESIGN §4), in-process on
// loopback. Every loopback address stands for a pod or VIP; the outbound listener sits on the
// service VIP, so a client connecting to it from its own pod address is exactly what capture
// hands the agent (original destination = the socket's local address, source = its remote one).
//
//   client 127.0.0.11 ──► VIP 127.0.0.10:<outbound port>   (the agent's outbound handler)
//      └─ HBONE ─► fake waypoint pod 127.0.0.21:<its port>  (:authority = VIP:port, client's identity)
//            └─ HBONE (waypoint's own certificate) ─► agent inbound 127.0.0.31:<hbone port>
//                  └─► echo on the endpoint pod 127.0.0.31:<echo port>
//
// The agent (NodeAgent) cannot carry `waypoint` from its local config or xDS yet (the local-config
// / xDS resource schemas are strict and lack the field), so the agent's proxy context is wired
// here as app.ts wires it — the same handlers, certificates, pool and inbound server — around a
// mesh state the test swaps.
import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { parseForwardedFor } from '../../src/hbone/headers.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { HboneServer, type HboneConnectRequest } from '../../src/hbone/server.js';
import { CertificateManager } from '../../src/identity/certificate-manager.js';
import { ConnectionTracker } from '../../src/node-agent/proxy/connection-tracker.js';
import { InboundHbone } from '../../src/node-agent/proxy/inbound.js';
import { handleOutbound } from '../../src/node-agent/proxy/outbound.js';
import type { ProxyContext } from '../../src/node-agent/proxy/proxy-context.js';
import { plainSocketFactory } from '../../src/node-agent/proxy/socket-factory.js';
import { MeshState } from '../../src/node-agent/state/mesh-state.js';
import type { MeshSnapshot, Service, Workload } from '../../src/node-agent/state/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { echoServer, listen } from '../helpers/hbone.js';
import { createTestCa, workload } from '../helpers/pki.js';

const VIP = '127.0.0.10';
const CLIENT_IP = '127.0.0.11';
const WAYPOINT_VIP = '127.0.0.20';
const WAYPOINT_POD_IP = '127.0.0.21';
const ENDPOINT_IP = '127.0.0.31';
const CLIENT_URI = 'spiffe://cluster.local/ns/demo/sa/client';
const WAYPOINT_URI = 'spiffe://cluster.local/ns/demo/sa/waypoint';
const ENDPOINT_URI = 'spiffe://cluster.local/ns/demo/sa/reviews';
const WAYPOINT_KEY = 'demo/waypoint.demo.svc.cluster.local';

interface LogLine {
  msg: string;
  direction?: string;
  [key: string]: unknown;
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

/** A "captured" connection: from the client pod's address to `ip:port` (an outbound listener). */
async function dialFrom(localAddress: string, ip: string, port: number): Promise<net.Socket> {
  const socket = net.connect({ host: ip, port, localAddress, allowHalfOpen: true });
  await within(once(socket, 'connect'), 5000, `connect ${localAddress} → ${ip}:${port}`);
  return socket;
}

/** Writes a line, half-closes, and reads everything back until the peer ends. */
async function echoOnce(socket: net.Socket, text: string): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(socket, 'end');
  socket.end(text);
  await within(ended, 5000, `echo of ${text}`);
  socket.destroy();
  return Buffer.concat(chunks).toString();
}

/** Resolves once the socket is closed; whether the agent reset it or not. */
function closed(socket: net.Socket): Promise<void> {
  socket.on('error', () => undefined);
  return new Promise((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve())));
}

describe('node agent waypoint hand-off', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  /** A listener like the agent's; its accepted sockets are destroyed at the end so close() cannot wait on pooled tunnels. */
  const serve = async (host: string, onSocket: (s: net.Socket) => void): Promise<number> => {
    const accepted = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => {
      accepted.add(s);
      s.once('close', () => accepted.delete(s));
      onSocket(s);
    });
    const port = await listen(server, host);
    cleanups.push(() => {
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of accepted) s.destroy();
      return done;
    });
    return port;
  };

  it('sends service- and workload-addressed traffic to the waypoint with the original authority; the waypoint’s own traffic goes direct; no waypoint pod fails closed', async () => {
    const meshCa = await createTestCa();

    // --- The agent's proxy context, as app.ts builds it (capture off, plain sockets).
    const logs: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_CONNECT_TIMEOUT_MS: '2000' }, 'node1');
    const certificates = new CertificateManager({ provider: meshCa.provider });
    cleanups.push(() => certificates.close());
    const pool = new HbonePool({ certificates, connectSocket: (host, port) => plainSocketFactory.connect({ host, port }, config.connectTimeoutMs), logger: silentLogger });
    cleanups.push(() => pool.close());
    const connections = new ConnectionTracker();
    cleanups.push(() => connections.destroyAll());
    let state = new MeshState({ trustDomain: 'cluster.local', workloads: [], services: [], policies: [] });
    const ctx: ProxyContext = {
      node: 'node1',
      config,
      state: () => state,
      sockets: plainSocketFactory,
      certificates,
      pool,
      logger: logger.child({ component: 'proxy' }),
      accessLog: logger.child({ component: 'access' }),
      connections,
    };
    const inbound = new InboundHbone(ctx);
    cleanups.push(() => inbound.server.close());
    const internalErrors: unknown[] = [];
    const onOutbound = (s: net.Socket): void => void handleOutbound(ctx, s).catch((e: unknown) => internalErrors.push(e));
    const servicePort = await serve(VIP, onOutbound);
    // Workload-addressed traffic: an outbound listener on the endpoint pod's address.
    const podPort = await serve(ENDPOINT_IP, onOutbound);
    const agentHbonePort = await serve(ENDPOINT_IP, (s) => {
      connections.add(s);
      inbound.handleSocket(s);
    });
    const echo = echoServer();
    const echoPort = await listen(echo, ENDPOINT_IP);
    cleanups.push(() => new Promise<void>((resolve) => echo.close(() => resolve())));

    // --- The fake waypoint: terminates HBONE with the waypoint's certificate, routes everything to
    // the endpoint over HBONE with its OWN certificate (as the real one does), pooled.
    const waypointContext = await meshCa.context(workload('demo', 'waypoint'));
    const waypointPool = new HbonePool({ certificates: { secureContext: async () => waypointContext }, logger: silentLogger });
    cleanups.push(() => waypointPool.close());
    const received: HboneConnectRequest[] = [];
    const waypoint = new HboneServer({
      trustDomains: () => ['cluster.local'],
      secureContextFor: async (localAddress) => (localAddress === WAYPOINT_POD_IP ? waypointContext : undefined),
      onConnect: async (req) => {
        received.push(req);
        const upstream = await waypointPool.connect({
          sourceIdentity: workload('demo', 'waypoint'),
          expectedIdentities: [ENDPOINT_URI],
          nextHop: { host: ENDPOINT_IP, port: agentHbonePort },
          authority: `${ENDPOINT_IP}:${echoPort}`,
          headers: { ...(req.forwarded ? { forwarded: req.forwarded } : {}) },
        });
        return { status: 200, upstream };
      },
      logger: silentLogger,
    });
    cleanups.push(() => waypoint.close());
    const waypointHbonePort = await serve(WAYPOINT_POD_IP, (s) => waypoint.handleConnection(s));

    // --- The mesh state: reviews (VIP) and its endpoint pod are bound to the waypoint; the waypoint
    // pod runs on this very node and is not enrolled (dataplane-mode none → tunnelProtocol NONE).
    const gateway = { address: { address: WAYPOINT_VIP }, hboneMtlsPort: waypointHbonePort };
    const pod = (over: Partial<Workload> & Pick<Workload, 'name' | 'addresses' | 'serviceAccount'>): Workload => ({
      uid: `Kubernetes//Pod/demo/${over.name}`,
      namespace: 'demo',
      tunnelProtocol: 'HBONE',
      node: 'node1',
      services: {},
      status: 'HEALTHY',
      ...over,
    });
    const client = pod({ name: 'client', addresses: [CLIENT_IP], serviceAccount: 'client' });
    const waypointPod = pod({ name: 'waypoint-abc', addresses: [WAYPOINT_POD_IP], serviceAccount: 'waypoint', tunnelProtocol: 'NONE', services: { [WAYPOINT_KEY]: { ports: [{ servicePort: 15008, targetPort: 15008 }] } } });
    const endpoint = pod({
      name: 'reviews-v1',
      addresses: [ENDPOINT_IP],
      serviceAccount: 'reviews',
      waypoint: gateway,
      services: { 'demo/reviews.demo.svc.cluster.local': { ports: [{ servicePort, targetPort: echoPort }] } },
    });
    const services: Service[] = [
      { name: 'waypoint', namespace: 'demo', hostname: 'waypoint.demo.svc.cluster.local', addresses: [WAYPOINT_VIP], ports: [{ servicePort: 15008, targetPort: 15008 }] },
      { name: 'reviews', namespace: 'demo', hostname: 'reviews.demo.svc.cluster.local', addresses: [VIP], ports: [{ servicePort, targetPort: echoPort }], waypoint: gateway },
    ];
    const snapshot: MeshSnapshot = { trustDomain: 'cluster.local', workloads: [client, waypointPod, endpoint], services, policies: [] };
    state = new MeshState(snapshot, 1);

    // --- 1. Service-addressed: client → VIP:port goes to the waypoint, bytes flow end to end.
    const toService = await dialFrom(CLIENT_IP, VIP, servicePort);
    const clientPort = toService.localPort;
    expect(await echoOnce(toService, 'hello through the waypoint')).toBe('hello through the waypoint');
    expect(received).toHaveLength(1);
    const viaService = received[0]!;
    expect(viaService.authority).toEqual({ host: VIP, port: servicePort });
    expect(viaService.peerIdentity).toBe(CLIENT_URI);
    expect(viaService.localAddress).toBe(WAYPOINT_POD_IP);
    expect(parseForwardedFor(viaService.forwarded)).toEqual({ address: CLIENT_IP, port: clientPort });
    expect(viaService.baggage).toContain('k8s.namespace.name=demo');
    expect(viaService.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    // The agent's access log names the waypoint; the destination's inbound saw the waypoint's identity.
    const outboundLine = await eventually(
      () => {
        const line = logs.find((l) => l.direction === 'outbound' && l['dst.addr'] === `${VIP}:${servicePort}`);
        if (!line) throw new Error('no outbound access log line yet');
        return line;
      },
      { timeoutMs: 5000, description: 'outbound access log' },
    );
    expect(outboundLine).toMatchObject({
      msg: 'connection complete',
      waypoint: WAYPOINT_KEY,
      'src.identity': CLIENT_URI,
      'dst.service': 'reviews.demo.svc.cluster.local',
      'dst.hbone_addr': `${WAYPOINT_POD_IP}:${waypointHbonePort}`,
      'dst.identity': WAYPOINT_URI,
      bytes_sent: 'hello through the waypoint'.length,
      bytes_recv: 'hello through the waypoint'.length,
    });
    expect(outboundLine).not.toHaveProperty('error');
    await eventually(
      () => expect(logs.find((l) => l.direction === 'inbound' && l.msg === 'connection complete')).toMatchObject({ 'src.identity': WAYPOINT_URI, 'dst.addr': `${ENDPOINT_IP}:${echoPort}`, 'dst.workload': endpoint.uid }),
      { timeoutMs: 5000, description: 'inbound access log of the waypoint’s onward tunnel' },
    );

    // --- 2. Workload-addressed: client → endpoint pod IP:port (the endpoint has a workload waypoint).
    const toPod = await dialFrom(CLIENT_IP, ENDPOINT_IP, podPort);
    expect(await echoOnce(toPod, 'to the pod')).toBe('to the pod');
    expect(received).toHaveLength(2);
    expect(received[1]).toMatchObject({ authority: { host: ENDPOINT_IP, port: podPort }, peerIdentity: CLIENT_URI });

    // --- 3. Loop protection: the same connection from the waypoint's own pod goes direct. (A waypoint
    // pod is normally not captured at all; this state enrols it to show the agent would not bounce it.)
    state = new MeshState({ ...snapshot, workloads: [client, { ...waypointPod, tunnelProtocol: 'HBONE' }, endpoint] }, 2);
    const fromWaypoint = await dialFrom(WAYPOINT_POD_IP, VIP, servicePort);
    expect(await echoOnce(fromWaypoint, 'waypoint goes direct')).toBe('waypoint goes direct');
    expect(received).toHaveLength(2);
    await eventually(
      () =>
        expect(logs.find((l) => l.direction === 'outbound' && l['src.identity'] === WAYPOINT_URI)).toMatchObject({
          msg: 'connection complete',
          'dst.workload': endpoint.uid,
          'dst.hbone_addr': 'in-process',
        }),
      { timeoutMs: 5000, description: 'direct outbound log line for the waypoint’s own connection' },
    );
    expect(logs.find((l) => l.direction === 'outbound' && l['src.identity'] === WAYPOINT_URI)).not.toHaveProperty('waypoint');

    // --- 4. No healthy waypoint pod: fail closed (reset), nothing reaches the waypoint or the endpoint.
    state = new MeshState({ ...snapshot, workloads: [client, { ...waypointPod, status: 'UNHEALTHY' }, endpoint] }, 3);
    // The reset can beat the client's 'connect' event, so only the close is awaited.
    const refused = net.connect({ host: VIP, port: servicePort, localAddress: CLIENT_IP });
    await within(closed(refused), 5000, 'the agent resets a connection whose waypoint has no healthy pod');
    expect(received).toHaveLength(2);
    expect(logs.find((l) => l.error === 'refused')).toMatchObject({ direction: 'outbound', reason: expect.stringContaining(`waypoint ${WAYPOINT_KEY}, which has no healthy pod`) });
    expect(internalErrors).toEqual([]);
  });
});
