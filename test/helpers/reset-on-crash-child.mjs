#!/usr/bin/env node
/**
 * Child process for test/privileged/reset-on-crash.test.ts: connects to 127.0.0.1:<port>, arms
 * the socket with the node agent's armResetOnCrash (built code in dist/, the real addon), prints
 * `{"armed":true|false}`, then
 *   - `wait`: stays until it is killed (the test sends SIGKILL);
 *   - `end`: ends the socket (a FIN) and exits on 'finish', while the socket is still in FIN_WAIT.
 *   node reset-on-crash-child.mjs <port> wait|end
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../dist/src/', import.meta.url));
const { loadNativeBinding } = await import(`${root}native/index.js`);
const { armResetOnCrash } = await import(`${root}node-agent/proxy/reset-on-crash.js`);

const [port, mode] = process.argv.slice(2);
const native = loadNativeBinding();
const socket = net.connect({ host: '127.0.0.1', port: Number(port), allowHalfOpen: true }, () => {
  const armed = armResetOnCrash(native, socket);
  process.stdout.write(`${JSON.stringify({ armed })}\n`);
  if (mode === 'end') {
    // Exit on 'finish', after the listeners registered before (as Node's autoDestroy closes a
    // socket after them; end(cb)'s callback would run before them).
    socket.once('finish', () => process.exit(0));
    socket.end();
  }
});
socket.on('error', (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
});
setTimeout(() => process.exit(3), 30_000).unref();
