/**
 * The soak's held connections (`npm run soak`, bench/soak-run.ts), run inside the client pod:
 * opens N TCP connections to the hold server through the mesh (load/hold.ts holdConnections: at
 * most --concurrency in set-up at a time, each up once the server answered its first bytes, so
 * they come up gradually), then keeps them idle and reports every --interval seconds how many
 * are still open. One JSON line per event:
 *
 *   {"event":"up","connections":N,"ms":T}
 *   {"event":"held","open":N-C,"closed":C}      every interval after "up"
 *   {"event":"failed","error":"…","up":K}       exits 1
 *   {"event":"released","closedWhileHeld":C}    on SIGTERM or after --hold-seconds; exits 0
 *
 *   node dist/bench/load/soak-hold-client.js --host H --port P --connections N
 *        [--concurrency 100] [--timeout-ms 300000] [--stall-ms 30000] [--interval 10] [--hold-seconds 900]
 *
 * Descriptors: Node raises its soft RLIMIT_NOFILE to the hard limit at start; below N + headroom
 * it fails at once naming both (the container's hard limit is often 20 000 per process).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FD_HEADROOM, holdConnections, HoldError, parseOpenFilesLimit } from './hold.js';

type Event =
  | { event: 'up'; connections: number; ms: number }
  | { event: 'held'; open: number; closed: number }
  | { event: 'failed'; error: string; up: number }
  | { event: 'released'; closedWhileHeld: number };

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
    concurrency: { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '300000' },
    'stall-ms': { type: 'string', default: '30000' },
    interval: { type: 'string', default: '10' },
    'hold-seconds': { type: 'string', default: '900' },
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
  const ticker = setInterval(() => say({ event: 'held', open: held.connections - held.closedWhileHeld(), closed: held.closedWhileHeld() }), whole('interval', values.interval, 3600) * 1000);
  const release = (): void => {
    clearInterval(ticker);
    say({ event: 'released', closedWhileHeld: held.release() });
    process.exit(0);
  };
  setTimeout(release, whole('hold-seconds', values['hold-seconds'], 86_400) * 1000);
  process.on('SIGTERM', release);
  process.on('SIGINT', release);
} catch (err) {
  fail(err instanceof Error ? err.message : String(err), err instanceof HoldError ? err.up : 0);
}
