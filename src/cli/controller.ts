/**
 * `amesh controller [--kubeconfig <path>]`: runs the control plane (today: the CA, its root in
 * Kubernetes Secrets, and the trust bundle in every namespace) until SIGTERM/SIGINT.
 */
import type { Command } from 'commander';
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
      let stopping = false;
      const stop = async (why: string, code: number): Promise<void> => {
        if (stopping) return;
        stopping = true;
        logger.info({ why }, 'shutting down');
        const hardStop = setTimeout(() => {
          logger.error('shutdown took too long; exiting');
          process.exit(1);
        }, config.drainTimeoutMs + 5000);
        hardStop.unref();
        try {
          await app.close();
        } catch (err) {
          logger.error({ err: describeError(err) }, 'error while stopping');
          code = 1;
        }
        process.exit(code);
      };
      process.on('SIGTERM', () => void stop('SIGTERM', 0));
      process.on('SIGINT', () => void stop('SIGINT', 0));
      try {
        await app.start();
      } catch (err) {
        logger.fatal({ err: describeError(err) }, 'controller failed to start');
        await app.close().catch(() => undefined);
        throw err;
      }
    });
}
