/**
 * Held-connection client of the memory scenario (5) and of the soak (bench/soak-run.ts), run
 * inside the client pod: opens N TCP connections to the hold server through the path
 * (load/hold.ts holdConnections: at most --concurrency in set-up at a time, each up once the
 * server answered its first bytes, so they come up gradually), prints the events load/hold.ts
 * describes, and holds them until SIGTERM. With --interval (the soak) it also reports every
 * that many seconds how many are still open: {"event":"held","open":N-C,"closed":C}.
 *
 *   node dist/bench/load/hold-client.js --host H --port P --connections N
 *        [--concurrency 200] [--timeout-ms 60000] [--stall-ms 20000] [--hold-seconds 600] [--interval S]
 *
 * Bounded: it gives up at the first connection error, after --timeout-ms, or when no connection
 * came up for --stall-ms, and releases
 * everything after --hold-seconds even if nobody signals. File descriptors: Node raises its soft
 * RLIMIT_NOFILE to the hard limit at start; if that is still below N + headroom it fails at once,
 * naming both, rather than dying of EMFILE halfway.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FD_HEADROOM, holdConnections, HoldError, parseOpenFilesLimit, type HoldEvent } from './hold.js';

type Event = HoldEvent | { event: 'held'; open: number; closed: number };

const say = (e: Event): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};
function fail(error: string, up = 0): never {
  say({ event: 'failed', error, up });
  process.exit(1);
}

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    connections: { type: 'string' },
    concurrency: { type: 'string', default: '200' },
    'timeout-ms': { type: 'string', default: '60000' },
    'stall-ms': { type: 'string', default: '20000' },
    'hold-seconds': { type: 'string', default: '600' },
    interval: { type: 'string' },
  },
});
const whole = (name: string, raw: string | undefined, max: number): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) fail(`--${name} ${raw}: expected a whole number from 1 to ${max}`);
  return n;
};
if (!values.host) fail('--host is required');
const connections = whole('connections', values.connections, 1_000_000);
const limit = parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
if (limit !== undefined && limit < connections + FD_HEADROOM) {
  fail(`${connections} connections need ${connections + FD_HEADROOM} file descriptors, but this process may open ${limit} (RLIMIT_NOFILE); raise the hard limit (ulimit -Hn) or hold fewer`);
}

try {
  const held = await holdConnections({
    host: values.host,
    port: whole('port', values.port, 65535),
    connections,
    concurrency: whole('concurrency', values.concurrency, 10_000),
    timeoutMs: whole('timeout-ms', values['timeout-ms'], 3_600_000),
    stallMs: whole('stall-ms', values['stall-ms'], 3_600_000),
  });
  say({ event: 'up', connections: held.connections, ms: Math.round(held.ms) });
  const interval = values.interval === undefined ? undefined : whole('interval', values.interval, 3600);
  const ticker = interval ? setInterval(() => say({ event: 'held', open: held.connections - held.closedWhileHeld(), closed: held.closedWhileHeld() }), interval * 1000) : undefined;
  const release = (): void => {
    clearInterval(ticker);
    say({ event: 'released', closedWhileHeld: held.release() });
    process.exit(0);
  };
  // Also keeps the process alive while it holds the connections.
  setTimeout(release, whole('hold-seconds', values['hold-seconds'], 86_400) * 1000);
  process.on('SIGTERM', release);
  process.on('SIGINT', release);
} catch (err) {
  fail(err instanceof Error ? err.message : String(err), err instanceof HoldError ? err.up : 0);
}
