/**
 * The controller process of the xDS scale bench: `amesh controller` (src/cli/controller.ts) with
 * two differences a bench needs — it listens on 127.0.0.1 only (the CLI binds 0.0.0.0 and has no
 * setting for the address), and it tells its parent the ports it got (AMESH_CA_PORT=0,
 * AMESH_READINESS_PORT=0) over the IPC channel instead of in an info log line. Everything else
 * is the CLI's: settings from the environment, the same logger, ControllerApp, SIGTERM handling.
 *
 * Usage (by xds-scale-harness.ts only): node dist/bench/xds-scale-controller.js <kubeconfig>
 */
import { exitOnSignals } from '../src/cli/graceful-exit.js';
import { readControllerConfig } from '../src/config/controller-config.js';
import { ControllerApp, loadKubeConfig } from '../src/controller/app.js';
import { describeError } from '../src/errors/amesh-error.js';
import { createLogger } from '../src/telemetry/logger.js';

/** The message sent to the parent once listening. */
export interface ControllerListening {
  type: 'listening';
  caPort: number;
  readinessPort: number;
}

async function main(): Promise<void> {
  const kubeconfig = process.argv[2];
  if (!kubeconfig) throw new Error('usage: xds-scale-controller.js <kubeconfig>');
  const config = readControllerConfig(process.env);
  const logger = createLogger(config.logLevel, 'amesh-controller');
  const app = ControllerApp.build({ config, kubeConfig: loadKubeConfig(kubeconfig), log: logger, listenHost: '127.0.0.1' });
  exitOnSignals({ logger, graceMs: config.drainTimeoutMs + 5000, close: () => app.close() });
  // The parent going away (killed, crashed) must not leave a controller behind.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  try {
    const ports = await app.start();
    process.send?.({ type: 'listening', ...ports } satisfies ControllerListening);
  } catch (err) {
    logger.fatal({ err: describeError(err) }, 'controller failed to start');
    await app.close().catch(() => undefined);
    throw err;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`xds-scale-controller: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
