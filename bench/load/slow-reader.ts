/**
 * Both ends of the soak's slow-reader back-pressure check (bench/soak-slow-reader.ts):
 *
 *   node dist/bench/load/slow-reader.js server --port 9191 --pause-seconds 20
 *     accepts connections and reads nothing from each for --pause-seconds, then reads it to
 *     the end; prints {"event":"listening"} and, per connection, {"event":"received","bytes":N}.
 *   node dist/bench/load/slow-reader.js client --host H --port P --bytes N [--timeout-ms 120000]
 *     writes N bytes as fast as the connection takes them (it waits for 'drain', so its own
 *     memory stays bounded and whatever piles up is in the path), prints
 *     {"event":"progress","written":W} every second and {"event":"sent","bytes":N,"ms":T} at the
 *     end (after the server closed), or {"event":"failed","error":…} (exit 1).
 *
 * Bounded: N bytes, and the client gives up after --timeout-ms.
 */
import { connect, createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const say = (e: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};
const [mode, ...rest] = process.argv.slice(2);
const { values } = parseArgs({
  args: rest,
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '9191' },
    'pause-seconds': { type: 'string', default: '20' },
    bytes: { type: 'string', default: String(512 * 2 ** 20) },
    'timeout-ms': { type: 'string', default: '120000' },
  },
});
const port = Number(values.port);

if (mode === 'server') {
  const pauseMs = Number(values['pause-seconds']) * 1000;
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    socket.on('end', () => {
      say({ event: 'received', bytes });
      socket.end();
    });
    socket.on('error', () => socket.destroy());
    setTimeout(() => socket.resume(), pauseMs);
  });
  server.listen({ host: '0.0.0.0', port }, () => say({ event: 'listening', port }));
  process.on('SIGTERM', () => process.exit(0));
} else if (mode === 'client') {
  const total = Number(values.bytes);
  const started = performance.now();
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let written = 0;
  const socket = connect({ host: values.host, port });
  const fail = (error: string): void => {
    say({ event: 'failed', error, written });
    process.exit(1);
  };
  setTimeout(() => fail(`not done within ${values['timeout-ms']} ms`), Number(values['timeout-ms'])).unref();
  const ticker = setInterval(() => say({ event: 'progress', written }), 1000);
  socket.on('error', (err) => fail(err.message));
  const pump = (): void => {
    while (written < total) {
      const n = Math.min(chunk.length, total - written);
      written += n;
      if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  socket.once('connect', pump);
  socket.resume();
  socket.on('close', () => {
    clearInterval(ticker);
    say({ event: 'sent', bytes: written, ms: Math.round(performance.now() - started) });
    process.exit(0);
  });
} else {
  process.stderr.write(`slow-reader: expected "server" or "client", got ${String(mode)}\n`);
  process.exit(2);
}
