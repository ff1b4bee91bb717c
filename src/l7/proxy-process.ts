/**
 * Lifecycle pieces the two L7 proxy processes (src/waypoint/app.ts, src/gateway/app.ts) share:
 * building with a certificate source that is closed again when construction fails, the admin
 * servers with their readiness document, and what a config-applied log line counts.
 */
import { AdminServers } from '../node-agent/admin.js';
import type { CertificateProvider } from '../identity/certificate-provider.js';
import type { Logger } from '../telemetry/logger.js';
import type { WaypointConfig } from './config.js';
import { openCertificateSource, type CertificateSource } from './mesh-upstream.js';
import type { ProxySettings } from './proxy-settings.js';

/** Opens the certificate source, then constructs the proxy; the source is closed if that throws. */
export async function buildWithCertificates<T>(settings: Readonly<ProxySettings>, logger: Logger, role: string, provider: CertificateProvider | undefined, construct: (source: CertificateSource) => T): Promise<T> {
  const certificates = await openCertificateSource(settings, logger, role, provider);
  try {
    return construct(certificates);
  } catch (err) {
    certificates.close();
    throw err;
  }
}

export interface ProxyAdminOptions {
  /** `waypoint` / `gateway`: the readiness document's key for `name`. */
  role: string;
  /** `<namespace>/<name>`. */
  name: string;
  identityUri: string;
  ready: () => boolean;
  version: () => number;
  draining: () => boolean;
  /** Undefined when the proxy has no xDS client (tests). */
  xdsConnected: (() => boolean) | undefined;
  configDump: () => unknown;
  quit: () => void;
  logger: Logger;
}

/** Readiness (`/healthz/ready` with the proxy's name, identity, config version, xDS state), admin, metrics. */
export function proxyAdminServers(o: ProxyAdminOptions): AdminServers {
  return new AdminServers({
    ready: () => ({
      ready: o.ready(),
      [o.role]: o.name,
      identity: o.identityUri,
      configVersion: o.version(),
      ...(o.xdsConnected ? { xds: { connected: o.xdsConnected() } } : {}),
      ...(o.draining() ? { draining: true } : {}),
    }),
    configDump: o.configDump,
    quit: o.quit,
    logger: o.logger,
  });
}

/** Routes over every service port of a config (log lines). */
export function routeCount(config: WaypointConfig): number {
  return config.services.reduce((n, sv) => n + sv.ports.reduce((m, p) => m + p.routes.length, 0), 0);
}
