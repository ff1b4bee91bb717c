/**
 * `amesh gateway-proxy`: runs an ingress gateway (the L7 proxy a Gateway of class amesh / istio,
 * or the default amesh-ingressgateway, deploys) until SIGTERM. Everything comes from the
 * environment the gateway Deployment sets (src/gateway/settings.ts): its own name, the pod's
 * namespace, the CA and xDS addresses, the root and token files.
 */
import type { Command } from 'commander';
import { GatewayProxy } from '../gateway/app.js';
import { readGatewaySettings } from '../gateway/settings.js';
import { createLogger } from '../telemetry/logger.js';
import { ProxyTracing } from '../telemetry/tracing.js';
import { createAccessLogger } from '../telemetry/access-logger.js';
import { exitOnSignals } from './graceful-exit.js';

export function registerGatewayProxy(program: Command): void {
  program
    .command('gateway-proxy')
    .description('run an ingress gateway: listen on the configured ports (HTTP, HTTPS with SNI certificates, TLS passthrough, TCP), route by the controller’s config, forward into the mesh over HBONE (env: AMESH_GATEWAY_NAME, POD_NAMESPACE, AMESH_CA_ADDRESS, AMESH_XDS_ADDRESS, …)')
    .action(async () => {
      const settings = readGatewaySettings(process.env);
      const logger = createLogger(settings.logLevel, 'amesh-gateway');
      const access = createAccessLogger(logger, { name: 'amesh-gateway' });
      // Spans only once a config names a tracing provider (Telemetry); service.name as Istio's: <name>.<namespace>.
      const tracing = new ProxyTracing({ serviceName: `${settings.gatewayName}.${settings.podNamespace}`, serviceNamespace: settings.podNamespace, logger: logger.child({ component: 'tracing' }) });
      const gateway = await GatewayProxy.build({ settings, logger, accessLog: access.logger, tracing });
      const stop = exitOnSignals({
        logger,
        graceMs: settings.drainTimeoutMs + 5000,
        close: () => gateway.close().finally(() => access.close()),
      });
      void gateway.quitSignal().then(() => stop('/quitquitquit'));
      await gateway.run();
    });
}
