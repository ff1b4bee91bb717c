#!/usr/bin/env node
/**
 * Child process for test/privileged/reset-on-crash.test.ts. With a port: connects to
 * 127.0.0.1:<port> and arms the socket with the node agent's armResetOnCrash (built code in
 * dist/, the real addon). With `listen`: listens on 127.0.0.1:0 with the listener armed
 * (armListenerResetOnCrash), prints `{"port":N}`, and arms the one socket it accepts the same
 * way (it arrives armed, so armResetOnCrash makes no setsockopt of its own). Then prints
 * `{"armed":true|false,"lingerCalls":N}` (N: setSocketLinger calls so far), then
 *   - `wait`: stays until it is killed (the test sends SIGKILL);
 *   - `end`: ends the socket (a FIN) and exits on 'finish', while the socket is still in FIN_WAIT.
 *   node reset-on-crash-child.mjs <port>|listen wait|end
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../dist/src/', import.meta.url));
const { loadNativeBinding } = await import(`${root}native/index.js`);
const { armListenerResetOnCrash, armResetOnCrash } = await import(`${root}node-agent/proxy/reset-on-crash.js`);

const [target, mode] = process.argv.slice(2);
const real = loadNativeBinding();
let lingerCalls = 0;
const native = {
  setSocketLinger(fd, seconds) {
    lingerCalls++;
    return real.setSocketLinger(fd, seconds);
  },
};

function armed(socket) {
  const ok = armResetOnCrash(native, socket);
  process.stdout.write(`${JSON.stringify({ armed: ok, lingerCalls })}\n`);
  if (mode === 'end') {
    // Exit on 'finish', after the listeners registered before (as Node's autoDestroy closes a
    // socket after them; end(cb)'s callback would run before them).
    socket.once('finish', () => process.exit(0));
    socket.end();
  }
}

function fail(err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

if (target === 'listen') {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', fail);
    server.close();
    armed(socket);
  });
  server.listen(0, '127.0.0.1', () => {
    if (!armListenerResetOnCrash(native, server)) fail(new Error('the listener could not be armed'));
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
} else {
  const socket = net.connect({ host: '127.0.0.1', port: Number(target), allowHalfOpen: true }, () => armed(socket));
  socket.on('error', fail);
}
setTimeout(() => process.exit(3), 30_000).unref();
