/**
 * The short-lived helper the sandbox daemon starts in the host's network namespace (through
 * `nsenter --net=<host netns fd>`) to open listening sockets on the host's 127.0.0.1: the daemon
 * itself lives in the fabric namespace, and a socket belongs to the namespace it was created in.
 * Each listening socket is handed to the daemon over the IPC channel (`process.send(message,
 * server)`), which then accepts on it from inside the fabric; this process exits as soon as the
 * daemon disconnects, so no relay process outlives a sync.
 *
 * Invariants: binds only 127.0.0.1; tries each request's candidate ports in order, then an
 * ephemeral port; never runs longer than LIFETIME_MS. Protocol: argv[2] is JSON
 * `{ requests: [{ candidates: number[] }] }`; one message per request,
 * `{ type: 'listener', index, port }` with the server handle, or `{ type: 'error', index, message }`.
 * Standalone on purpose (no project imports): it starts in a few tens of milliseconds.
 */
import net from 'node:net';

const LIFETIME_MS = 15_000;

interface Request {
  candidates: number[];
}

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

async function open(request: Request): Promise<net.Server> {
  let last: unknown;
  for (const port of [...request.candidates, 0]) {
    try {
      return await listen(port);
    } catch (err) {
      last = err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' && code !== 'EACCES') break;
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}

function send(message: unknown, handle?: net.Server): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error('no IPC channel: this helper is started by the sandbox daemon'));
      return;
    }
    process.send(message, handle, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function main(): Promise<void> {
  const timer = setTimeout(() => process.exit(3), LIFETIME_MS);
  timer.unref();
  const { requests } = JSON.parse(process.argv[2] ?? '{}') as { requests?: Request[] };
  const servers: net.Server[] = [];
  for (const [index, request] of (requests ?? []).entries()) {
    try {
      const server = await open(request);
      servers.push(server);
      await send({ type: 'listener', index, port: (server.address() as net.AddressInfo).port }, server);
    } catch (err) {
      await send({ type: 'error', index, message: (err as Error).message });
    }
  }
  // The daemon holds its own copies now; ours close when it disconnects.
  const done = (): never => {
    for (const server of servers) server.close();
    process.exit(0);
  };
  if (!process.connected) done();
  process.once('disconnect', done);
}

main().catch((err: unknown) => {
  console.error(`host listener helper: ${(err as Error).message}`);
  process.exit(1);
});
