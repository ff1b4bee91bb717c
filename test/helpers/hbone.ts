/**
 * An HBONE server behind a plain loopback listener (local address 127.0.0.1 stands for the
 * dialled pod IP), an upstream to tunnel to, and a pool as the node agent wires it.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { expect } from 'vitest';
import { HbonePool, type HbonePoolOptions } from '../../src/hbone/pool.js';
import { HboneServer, type HboneConnectRequest, type HboneConnectResult } from '../../src/hbone/server.js';
import type { WorkloadIdentity } from '../../src/identity/spiffe.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createTestCa, workload, type TestCa } from './pki.js';

export const SERVER_ID = workload('backend', 'server');
export const CLIENT_ID = workload('frontend', 'client');
export const SERVER_URI = 'spiffe://cluster.local/ns/backend/sa/server';
export const CLIENT_URI = 'spiffe://cluster.local/ns/frontend/sa/client';

export async function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** One round trip on an open tunnel (to an echo upstream): proves the stream is usable. */
export async function ping(stream: Duplex, text = 'ping'): Promise<void> {
  stream.write(text);
  const [chunk] = (await once(stream, 'data')) as [Buffer];
  expect(chunk.toString()).toBe(text);
}

/** Echoes every byte and ends after the client ended (half-close aware). */
export function echoServer(): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
}

/** An echoServer that also ends its open connections on demand (a test's close() must not wait for tunnels). */
export function trackedEchoServer(): { server: net.Server; destroyConnections: () => void } {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  return { server, destroyConnections: () => open.forEach((s) => s.destroy()) };
}

export interface HboneFixture {
  ca: TestCa;
  server: HboneServer;
  listener: net.Server;
  port: number;
  upstream: net.Server;
  upstreamPort: number;
  requests: HboneConnectRequest[];
  /** Replace to change admission; default connects to the upstream at the requested port. */
  onConnect: (req: HboneConnectRequest) => Promise<HboneConnectResult>;
  serverContext: tls.SecureContext;
  /** What secureContextFor returns; set to undefined to simulate "no local workload". */
  contextFor: (localAddress: string) => Promise<tls.SecureContext | undefined>;
  clientContexts: Map<string, tls.SecureContext>;
  pool(opts?: Partial<HbonePoolOptions> & { clientContext?: tls.SecureContext }): HbonePool;
  close(): Promise<void>;
}

export async function connectUpstream(req: HboneConnectRequest): Promise<HboneConnectResult> {
  const socket = net.connect({ host: req.authority.host, port: req.authority.port, allowHalfOpen: true });
  try {
    await once(socket, 'connect');
  } catch (err) {
    return { status: 503, reason: (err as Error).message };
  }
  return { status: 200, upstream: socket };
}

export async function startHbone(opts: { pauseOnConnect?: boolean; trustDomains?: string[]; ca?: TestCa; upstream?: net.Server; host?: string } = {}): Promise<HboneFixture> {
  const host = opts.host ?? '127.0.0.1';
  const ca = opts.ca ?? (await createTestCa());
  const serverContext = await ca.context(SERVER_ID);
  const pools: HbonePool[] = [];
  const fixture = {} as HboneFixture;
  fixture.ca = ca;
  fixture.requests = [];
  fixture.serverContext = serverContext;
  fixture.clientContexts = new Map();
  fixture.onConnect = connectUpstream;
  fixture.contextFor = async (localAddress) => (localAddress === host ? serverContext : undefined);
  fixture.server = new HboneServer({
    trustDomains: () => opts.trustDomains ?? ['cluster.local'],
    secureContextFor: (a) => fixture.contextFor(a),
    onConnect: (req) => {
      fixture.requests.push(req);
      return fixture.onConnect(req);
    },
    logger: silentLogger,
  });
  fixture.listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: opts.pauseOnConnect ?? true }, (s) => fixture.server.handleConnection(s));
  fixture.port = await listen(fixture.listener, host);
  fixture.upstream = opts.upstream ?? echoServer();
  fixture.upstreamPort = await listen(fixture.upstream, host);
  const clientContext = await ca.context(CLIENT_ID);
  fixture.pool = (p = {}) => {
    const ctx = p.clientContext ?? clientContext;
    const pool = new HbonePool({
      certificates: { secureContext: async (_id: WorkloadIdentity) => ctx },
      connectSocket: async (host, port) => {
        const s = net.connect({ host, port, allowHalfOpen: true });
        await once(s, 'connect');
        return s;
      },
      logger: silentLogger,
      ...p,
    });
    pools.push(pool);
    return pool;
  };
  fixture.close = async () => {
    for (const p of pools) p.close();
    fixture.server.close();
    fixture.listener.close();
    fixture.upstream.close();
    await Promise.all([once(fixture.listener, 'close'), once(fixture.upstream, 'close')]);
  };
  return fixture;
}
