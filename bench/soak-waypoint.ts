/**
 * The waypoint of the soak topology (bench/soak-topology.ts), run inside the waypoint pod's
 * namespace: the real WaypointProxy (src/waypoint/app.ts) listening for HBONE on the pod IP
 * :15008, with certificates from the soak's local CA (LocalCaProvider, as the node agents in local
 * mode) and its config applied directly instead of xDS. Its one service is the backend VIP; its
 * one endpoint is the server pod, reached by HBONE through the server node's agent.
 *
 *   node dist/bench/soak-waypoint.js '<json SoakWaypointOptions>'
 *
 * Prints {"event":"listening","port":15008} when it accepts HBONE; exits on SIGTERM.
 *
 * `leakKibPerSecond` / `leakFdsPerMinute` are test-only: they make this process keep memory and
 * descriptors it never frees, so the soak's stability verdict can be shown to fail (it must be
 * able to). Zero (the default) injects nothing.
 */
import { openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Cluster, WaypointConfig } from '../src/l7/config.js';
import type { CaMaterial } from '../src/identity/pki.js';
import { LocalCaProvider } from '../src/identity/certificate-provider.js';
import { createLogger } from '../src/telemetry/logger.js';
import { WaypointProxy } from '../src/waypoint/app.js';
import { readWaypointSettings } from '../src/waypoint/settings.js';

export interface SoakWaypointOptions {
  /** `amesh ca create`'s certificate and key. */
  caCertFile: string;
  caKeyFile: string;
  namespace: string;
  name: string;
  /** The address this waypoint listens on (its pod IP). */
  listenIp: string;
  hbonePort: number;
  service: { namespace: string; hostname: string; vip: string; port: number };
  /** The server pod: HBONE to its node agent, then plain TCP to `port`. */
  endpoint: { ip: string; port: number; identity: string };
  leakKibPerSecond: number;
  leakFdsPerMinute: number;
}

/** The waypoint's config: one HTTP service (the VIP) forwarding everything to the server pod. */
export function soakWaypointConfig(o: Pick<SoakWaypointOptions, 'namespace' | 'name' | 'service' | 'endpoint'>, trustDomain = 'cluster.local'): WaypointConfig {
  const key = `${o.service.namespace}/${o.service.hostname}`;
  const clusterName = `outbound|${o.service.port}||${o.service.hostname}`;
  const cluster: Cluster = {
    name: clusterName,
    service: key,
    port: o.service.port,
    lb: 'ROUND_ROBIN',
    endpoints: [{ address: o.endpoint.ip, port: o.endpoint.port, identity: o.endpoint.identity, hbone: true }],
  };
  return {
    namespace: o.namespace,
    name: o.name,
    identity: `spiffe://${trustDomain}/ns/${o.namespace}/sa/${o.name}`,
    services: [
      {
        key,
        namespace: o.service.namespace,
        hostname: o.service.hostname,
        addresses: [o.service.vip],
        ports: [{ port: o.service.port, protocol: 'HTTP', routes: [{ name: `${key}#default`, matches: [], action: { kind: 'forward', backends: [{ cluster: clusterName, weight: 100 }] } }], defaultCluster: clusterName }],
      },
    ],
    clusters: [cluster],
  };
}

/** Test-only leak: memory and descriptors kept forever at the given rates. */
function injectLeak(kibPerSecond: number, fdsPerMinute: number): void {
  const kept: Buffer[] = [];
  if (kibPerSecond > 0) {
    // fill() touches every page, so the leak shows in RSS, not only in the virtual size.
    setInterval(() => kept.push(Buffer.alloc(kibPerSecond * 1024).fill(1)), 1000);
  }
  if (fdsPerMinute > 0) setInterval(() => openSync('/dev/null', 'r'), 60_000 / fdsPerMinute);
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2] ?? '{}') as SoakWaypointOptions;
  const logger = createLogger(process.env.AMESH_LOG_LEVEL ?? 'warn', 'soak-waypoint');
  const ca: CaMaterial = { certPem: await readFile(o.caCertFile, 'utf8'), keyPem: await readFile(o.caKeyFile, 'utf8') };
  const settings = readWaypointSettings(
    {
      AMESH_WAYPOINT_NAME: o.name,
      POD_NAMESPACE: o.namespace,
      AMESH_LISTEN_ADDRESS4: o.listenIp,
      AMESH_LISTEN_ADDRESS6: 'none',
      AMESH_HBONE_PORT: String(o.hbonePort),
      AMESH_READINESS_PORT: '0',
      // In its own namespace; the soak posts /debug/gc here before each sample (run with --expose-gc).
      AMESH_ADMIN_PORT: '15000',
      AMESH_METRICS_PORT: '0',
      AMESH_DRAIN_TIMEOUT_MS: '500',
      AMESH_LOG_LEVEL: process.env.AMESH_LOG_LEVEL ?? 'warn',
    },
    { requireControlPlane: false },
  );
  const proxy = await WaypointProxy.build({
    settings,
    logger,
    certificateProvider: new LocalCaProvider({ ca, ttlSeconds: 24 * 3600 }),
    xds: false,
    accessLog: createLogger('silent'),
  });
  proxy.applyConfig(soakWaypointConfig(o));
  const ports = await proxy.run();
  injectLeak(o.leakKibPerSecond, o.leakFdsPerMinute);
  process.once('SIGTERM', () => process.exit(0));
  process.once('SIGINT', () => process.exit(0));
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: ports.hbone })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`soak waypoint: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
