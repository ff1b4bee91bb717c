/**
 * The amesh process of the gateway bench (bench/gateway-harness.ts starts it as a child so its CPU
 * is read from /proc on its own):
 *
 *   node dist/bench/gateway-roles.js gateway '<json options>'
 *
 * The real GatewayProxy (src/gateway/app.ts) with its workload certificate from the bench's CA
 * (LocalCaProvider) instead of the mesh CA, its config (gateway-topology.ts) applied directly
 * instead of xDS and its HTTPS listener on an ephemeral port: the request path is the production
 * one. The backend and the destination agent are the waypoint bench's roles (waypoint-roles.ts).
 *
 * Prints nothing on stdout; reports `{type: 'ready', role: 'gateway', port}` over IPC, exits at
 * once on SIGTERM and when the parent goes away (IPC disconnect), so it never outlives the bench.
 */
import { readFile } from 'node:fs/promises';
import { GatewayProxy } from '../src/gateway/app.js';
import { readGatewaySettings } from '../src/gateway/settings.js';
import { LocalCaProvider } from '../src/identity/certificate-provider.js';
import type { CaMaterial } from '../src/identity/pki.js';
import { createLogger, logLevels } from '../src/telemetry/logger.js';
import { createAccessLogger } from '../src/telemetry/access-logger.js';
import { EDGE_PORT, gatewayBenchConfig, GATEWAY_NAME, GATEWAY_NAMESPACE, type GatewayUpstream } from './gateway-topology.js';
export interface GatewayRoleOptions {
  caFile: string;
  backendPort: number;
  /** HBONE port of the destination agent (the endpoint is on 127.0.0.1). */
  destAgentPort: number;
  /** PEM files of the edge certificate (the same nginx serves). */
  certFile: string;
  keyFile: string;
  /** Production-like buffered access log to stderr; off by default, as nginx's here. */
  accessLog: boolean;
  upstream: GatewayUpstream;
}

export type GatewayRoleReady = { type: 'ready'; role: 'gateway'; port: number };

const logger = createLogger(process.env.AMESH_LOG_LEVEL ?? 'warn', 'bench-gateway');

async function gateway(o: GatewayRoleOptions): Promise<GatewayRoleReady> {
  const settings = readGatewaySettings(
    {
      AMESH_GATEWAY_NAME: GATEWAY_NAME,
      POD_NAMESPACE: GATEWAY_NAMESPACE,
      AMESH_LISTEN_ADDRESS4: '127.0.0.1',
      AMESH_LISTEN_ADDRESS6: 'none',
      AMESH_READINESS_PORT: '0',
      AMESH_ADMIN_PORT: '0',
      AMESH_METRICS_PORT: '0',
      AMESH_UPSTREAM_HBONE_PORT: String(o.destAgentPort),
      AMESH_DRAIN_TIMEOUT_MS: '200',
      AMESH_LOG_LEVEL: 'warn',
    },
    { requireControlPlane: false },
  );
  const ca = JSON.parse(await readFile(o.caFile, 'utf8')) as CaMaterial;
  // Access lines at info whatever the root's level: their cost is part of what is measured.
  const access = o.accessLog ? createAccessLogger(logger, { name: 'bench-gateway' }) : undefined;
  if (access) logLevels(logger).set('access:info');
  const proxy = await GatewayProxy.build({
    settings,
    logger,
    certificateProvider: new LocalCaProvider({ ca, ttlSeconds: 3600 }),
    xds: false,
    listenPort: () => 0,
    accessLog: access?.logger ?? createLogger('silent'),
  });
  const [certChain, privateKey] = await Promise.all([readFile(o.certFile, 'utf8'), readFile(o.keyFile, 'utf8')]);
  proxy.applyConfig(gatewayBenchConfig(o.backendPort, { certChain, privateKey }, o.upstream));
  await proxy.run();
  await proxy.whenListening();
  const port = proxy.listenerPort(EDGE_PORT);
  if (port === undefined) throw new Error(`the gateway did not bind its HTTPS listener (config port ${EDGE_PORT})`);
  process.once('exit', () => access?.close());
  return { type: 'ready', role: 'gateway', port };
}

async function main(): Promise<void> {
  const [role, json] = process.argv.slice(2);
  process.on('disconnect', () => process.exit(0));
  process.once('SIGTERM', () => process.exit(0));
  if (role !== 'gateway') throw new Error(`unknown role ${String(role)}: expected gateway`);
  process.send?.(await gateway(JSON.parse(json ?? '{}') as GatewayRoleOptions));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench gateway role ${process.argv[2] ?? '?'}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
