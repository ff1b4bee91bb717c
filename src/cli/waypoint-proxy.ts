/**
 * `amesh waypoint-proxy`: runs the waypoint (the L7 proxy a Gateway of class istio-waypoint /
 * amesh-waypoint deploys) until SIGTERM. Everything comes from the environment the waypoint
 * Deployment sets (src/waypoint/settings.ts): the Gateway's name, the pod's namespace, the CA and
 * xDS addresses, the root and token files.
 */
import type { Command } from 'commander';
import { createLogger } from '../telemetry/logger.js';
import { ProxyTracing } from '../telemetry/tracing.js';
import { createAccessLogger } from '../telemetry/access-logger.js';
import { WaypointProxy } from '../waypoint/app.js';
import { readWaypointSettings } from '../waypoint/settings.js';
import { exitOnSignals } from './graceful-exit.js';

export function registerWaypointProxy(program: Command): void {
  program
    .command('waypoint-proxy')
    .description('run a waypoint: terminate HBONE, route HTTP/gRPC by the controller’s config, forward over HBONE (env: AMESH_WAYPOINT_NAME, POD_NAMESPACE, AMESH_CA_ADDRESS, AMESH_XDS_ADDRESS, …)')
    .action(async () => {
      const settings = readWaypointSettings(process.env);
      const logger = createLogger(settings.logLevel, 'amesh-waypoint');
      const access = createAccessLogger(logger, { name: 'amesh-waypoint' });
      // Spans only once a config names a tracing provider (Telemetry); service.name as Istio's: <name>.<namespace>.
      const tracing = new ProxyTracing({ serviceName: `${settings.waypointName}.${settings.podNamespace}`, serviceNamespace: settings.podNamespace, logger: logger.child({ component: 'tracing' }) });
      const waypoint = await WaypointProxy.build({ settings, logger, accessLog: access.logger, tracing });
      const stop = exitOnSignals({
        logger,
        graceMs: settings.drainNoticeMs + settings.drainTimeoutMs + 5000,
        close: () => waypoint.close({ notice: true }).finally(() => access.close()),
      });
      void waypoint.quitSignal().then(() => stop('/quitquitquit'));
      await waypoint.run();
    });
}
