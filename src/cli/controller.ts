/**
 * `amesh controller [--kubeconfig <path>]`: runs the control plane (today: the CA, its root in
 * Kubernetes Secrets, and the trust bundle in every namespace) until SIGTERM/SIGINT.
 */
import type { Command } from 'commander';
import { exitOnSignals } from './graceful-exit.js';
import { readControllerConfig } from '../config/controller-config.js';
import { ControllerApp, loadKubeConfig } from '../controller/app.js';
import { describeError } from '../errors/amesh-error.js';
import { createLogger } from '../telemetry/logger.js';

export function registerController(program: Command): void {
  program
    .command('controller')
    .description('run the amesh controller: CA (gRPC 15012), root rotation, trust bundle publishing')
    .option('--kubeconfig <path>', 'kubeconfig to use (default: in-cluster ServiceAccount, else $KUBECONFIG or ~/.kube/config)')
    .action(async (opts: { kubeconfig?: string }) => {
      const config = readControllerConfig(process.env);
      const logger = createLogger(config.logLevel, 'amesh-controller');
      const app = ControllerApp.build({ config, kubeConfig: loadKubeConfig(opts.kubeconfig), log: logger });
      exitOnSignals({ logger, graceMs: config.drainTimeoutMs + 5000, close: () => app.close() });
      try {
        await app.start();
      } catch (err) {
        logger.fatal({ err: describeError(err) }, 'controller failed to start');
        await app.close().catch(() => undefined);
        throw err;
      }
    });
}
