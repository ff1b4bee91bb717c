/**
 * Structured JSON logging through pino. Components take a child logger with a `component`
 * binding; the root level comes from config (AMESH_LOG_LEVEL).
 */
import { destination, pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.AMESH_LOG_LEVEL ?? 'info', name = 'amesh'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, destination({ dest: 2, sync: true }));
}

/** A logger that drops everything: the default for tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
