/**
 * SIGTERM/SIGINT for long-running commands (node agent, controller, sandbox daemon): stop once,
 * log why, exit 0 when the component closed cleanly and 1 when closing failed or took longer than
 * `graceMs` (Kubernetes would SIGKILL it soon after anyway).
 */
import { describeError } from '../errors/amesh-error.js';
import type { Logger } from '../telemetry/logger.js';

/** Returns the stop function too, for other triggers (the agent's `/quitquitquit`). */
export function exitOnSignals(o: { logger: Logger; graceMs: number; close: () => Promise<void> }): (why: string) => Promise<void> {
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    o.logger.info({ why }, 'shutting down');
    const hardStop = setTimeout(() => {
      o.logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, o.graceMs);
    hardStop.unref();
    let code = 0;
    try {
      await o.close();
      o.logger.info('stopped');
    } catch (err) {
      o.logger.error({ err: describeError(err) }, 'error while stopping');
      code = 1;
    }
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return stop;
}
