/**
 * The processes of the waypoint bench (bench/waypoint-harness.ts starts each as a child so its CPU
 * is read from /proc on its own):
 *
 *   node dist/bench/waypoint-roles.js <role> '<json options>'
 *
 * - `backends`: v1 and v2, node:http answering a fixed body (1 KiB) with `x-backend: v1|v2`.
 * - `waypoint`: the real WaypointProxy (src/waypoint/app.ts) with certificates from the bench's
 *   CA (LocalCaProvider) instead of the mesh CA and its config applied directly instead of xDS —
 *   the request path is the production one.
 * - `client-agent`: the node agent's side of the hand-off: a TCP listener per service; every
 *   accepted connection becomes one HBONE CONNECT stream (src/hbone/pool.ts, mTLS h2) to the
 *   waypoint with `:authority` = the service VIP:port, piped both ways.
 * - `dest-agent`: the destination node agent: HBONE in (mTLS), TCP out to the `:authority` port
 *   on 127.0.0.1.
 *
 * Each prints nothing on stdout; it reports `{type:'ready', …}` over IPC, exits at once on SIGTERM, and
 * exits when the parent goes away (IPC disconnect) so no process outlives the bench.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { HbonePool } from '../src/hbone/pool.js';
import { HboneServer } from '../src/hbone/server.js';
import { CertificateManager } from '../src/identity/certificate-manager.js';
import { LocalCaProvider } from '../src/identity/certificate-provider.js';
import type { CaMaterial } from '../src/identity/pki.js';
import { parseSpiffeUri, type WorkloadIdentity } from '../src/identity/spiffe.js';
import { createLogger, logLevels } from '../src/telemetry/logger.js';
import { createAccessLogger } from '../src/telemetry/access-logger.js';
import { WaypointProxy } from '../src/waypoint/app.js';
import { readWaypointSettings } from '../src/waypoint/settings.js';
import { BACKEND_HEADER, BACKEND_URI, CLIENT_URI, SERVICE_PORT, waypointBenchConfig, WAYPOINT_NAME, WAYPOINT_NAMESPACE, WAYPOINT_URI, type BackendPorts } from './waypoint-topology.js';

export type RoleName = 'backends' | 'waypoint' | 'client-agent' | 'dest-agent';

export interface BackendsOptions {
  bytes: number;
}
export interface WaypointRoleOptions {
  caFile: string;
  backends: BackendPorts;
  /** HBONE port of the destination agent (all endpoints are on 127.0.0.1). */
  destAgentPort: number;
  /** Production-like buffered access log to stderr; off by default, as haproxy's and nginx's here. */
  accessLog: boolean;
}
export interface ClientAgentOptions {
  caFile: string;
  waypointPort: number;
  /** One local listener per VIP (the `:authority` its connections get). */
  vips: string[];
}
export interface DestAgentOptions {
  caFile: string;
}

export type RoleReady =
  | { type: 'ready'; role: 'backends'; ports: BackendPorts }
  | { type: 'ready'; role: 'waypoint'; hbonePort: number }
  | { type: 'ready'; role: 'client-agent'; ports: Record<string, number> }
  | { type: 'ready'; role: 'dest-agent'; port: number };

const logger = createLogger(process.env.AMESH_LOG_LEVEL ?? 'warn', 'bench-waypoint');

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

async function loadCa(file: string): Promise<LocalCaProvider> {
  const ca = JSON.parse(await readFile(file, 'utf8')) as CaMaterial;
  return new LocalCaProvider({ ca, ttlSeconds: 3600 });
}

function identityOf(uri: string): WorkloadIdentity {
  const id = parseSpiffeUri(uri);
  if (!id) throw new Error(`not a workload SPIFFE URI: ${uri}`);
  return id;
}

async function backends(o: BackendsOptions): Promise<RoleReady> {
  const body = Buffer.alloc(o.bytes, 'x');
  const server = (version: string): http.Server => {
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(o.bytes), [BACKEND_HEADER]: version };
    const s = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, headers);
      res.end(body);
    });
    s.keepAliveTimeout = 120_000;
    s.headersTimeout = 125_000;
    s.requestTimeout = 0;
    s.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    return s;
  };
  const [v1, v2] = await Promise.all([listen(server('v1')), listen(server('v2'))]);
  return { type: 'ready', role: 'backends', ports: { v1, v2 } };
}

async function waypoint(o: WaypointRoleOptions): Promise<RoleReady> {
  const settings = readWaypointSettings(
    {
      AMESH_WAYPOINT_NAME: WAYPOINT_NAME,
      POD_NAMESPACE: WAYPOINT_NAMESPACE,
      AMESH_LISTEN_ADDRESS4: '127.0.0.1',
      AMESH_LISTEN_ADDRESS6: 'none',
      AMESH_HBONE_PORT: '0',
      AMESH_READINESS_PORT: '0',
      AMESH_ADMIN_PORT: '0',
      AMESH_METRICS_PORT: '0',
      AMESH_UPSTREAM_HBONE_PORT: String(o.destAgentPort),
      AMESH_DRAIN_TIMEOUT_MS: '200',
      AMESH_LOG_LEVEL: 'warn',
    },
    { requireControlPlane: false },
  );
  // Access lines at info whatever the root's level: their cost is part of what is measured.
  const access = o.accessLog ? createAccessLogger(logger, { name: 'bench-waypoint' }) : undefined;
  if (access) logLevels(logger).set('access:info');
  const proxy = await WaypointProxy.build({
    settings,
    logger,
    certificateProvider: await loadCa(o.caFile),
    xds: false,
    accessLog: access?.logger ?? createLogger('silent'),
  });
  proxy.applyConfig(waypointBenchConfig(o.backends));
  const ports = await proxy.run();
  process.once('exit', () => access?.close());
  return { type: 'ready', role: 'waypoint', hbonePort: ports.hbone };
}

async function clientAgent(o: ClientAgentOptions): Promise<RoleReady> {
  const certificates = new CertificateManager({ provider: await loadCa(o.caFile), logger });
  const source = identityOf(CLIENT_URI);
  certificates.prefetch(source);
  const pool = new HbonePool({ certificates, logger });
  const ports: Record<string, number> = {};
  for (const vip of o.vips) {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      socket.pause();
      pool
        .connect({ sourceIdentity: source, expectedIdentities: [WAYPOINT_URI], nextHop: { host: '127.0.0.1', port: o.waypointPort }, authority: `${vip}:${SERVICE_PORT}`, headers: {} })
        .then((stream) => {
          stream.on('error', () => socket.destroy());
          socket.on('error', () => stream.destroy());
          socket.pipe(stream).pipe(socket);
          socket.resume();
        })
        .catch((err: unknown) => {
          logger.warn({ err: String(err) }, 'client agent: HBONE connect failed');
          socket.destroy();
        });
    });
    ports[vip] = await listen(server);
  }
  return { type: 'ready', role: 'client-agent', ports };
}

async function destAgent(o: DestAgentOptions): Promise<RoleReady> {
  const certificates = new CertificateManager({ provider: await loadCa(o.caFile), logger });
  const identity = identityOf(BACKEND_URI);
  const hbone = new HboneServer({
    trustDomains: () => ['cluster.local'],
    secureContextFor: () => certificates.secureContext(identity),
    onConnect: async (req) => {
      const socket = net.connect({ host: '127.0.0.1', port: req.authority.port, allowHalfOpen: true, noDelay: true });
      try {
        await once(socket, 'connect');
      } catch (err) {
        return { status: 503, reason: (err as Error).message };
      }
      return { status: 200, upstream: socket };
    },
    logger,
  });
  const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => hbone.handleConnection(s));
  const port = await listen(listener);
  return { type: 'ready', role: 'dest-agent', port };
}

async function main(): Promise<void> {
  const [role, json] = process.argv.slice(2);
  const options = JSON.parse(json ?? '{}') as unknown;
  // No process outlives the bench: the parent's exit closes the IPC channel.
  process.on('disconnect', () => process.exit(0));
  // SIGTERM ends the process at once: nothing here holds state worth a graceful close.
  process.once('SIGTERM', () => process.exit(0));
  let ready: RoleReady;
  if (role === 'backends') ready = await backends(options as BackendsOptions);
  else if (role === 'waypoint') ready = await waypoint(options as WaypointRoleOptions);
  else if (role === 'client-agent') ready = await clientAgent(options as ClientAgentOptions);
  else if (role === 'dest-agent') ready = await destAgent(options as DestAgentOptions);
  else throw new Error(`unknown role ${String(role)}: expected backends, waypoint, client-agent or dest-agent`);
  process.send?.(ready);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench waypoint role ${process.argv[2] ?? '?'}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
