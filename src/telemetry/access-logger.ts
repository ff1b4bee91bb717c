/**
 * The access log of a proxy process: one JSON line per connection (node agent) or request
 * (waypoint, gateway) on stderr, like every other log line, but through a buffered writer. A
 * synchronous write(2) per line costs the waypoint about a fifth of its throughput, and when
 * stderr is a pipe (a container runtime's) every line also wakes the reader. Lines are flushed
 * when 8 KiB are pending, at least every `flushMs`, and on close (so a clean shutdown loses
 * nothing; a crash may lose up to `flushMs`). The logger is a root of its own (pino children
 * share their parent's destination) adopted by `root`'s level registry as the `access`
 * component, so `/logging` (`level=access:off`) governs it like any child of `root`.
 */
import { destination, pino } from 'pino';
import { ACCESS_LOG_COMPONENT, logLevels, type Logger } from './logger.js';

export interface AccessLogger {
  logger: Logger;
  /** Stops the flush timer and writes what is pending, synchronously. */
  close(): void;
}

export interface AccessLoggerOptions {
  /** The `name` of every line: the root logger's (`amesh-node-agent`, `amesh-waypoint`, …). */
  name: string;
  /** Default 2 (stderr). */
  fd?: number;
  /** Default 1000. */
  flushMs?: number;
}

export function createAccessLogger(root: Logger, opts: AccessLoggerOptions): AccessLogger {
  const dest = destination({ dest: opts.fd ?? 2, sync: false, minLength: 8 * 1024 });
  const logger = pino({ name: opts.name, level: root.level, base: { pid: process.pid, component: ACCESS_LOG_COMPONENT } }, dest);
  logLevels(root).adopt(logger, ACCESS_LOG_COMPONENT);
  const timer = setInterval(() => dest.flush(), opts.flushMs ?? 1000);
  timer.unref();
  return {
    logger,
    close: () => {
      clearInterval(timer);
      try {
        dest.flushSync();
      } catch {
        // not ready yet or already closed: nothing buffered to lose
      }
    },
  };
}
