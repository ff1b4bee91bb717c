/**
 * Backend of the memory scenario (5), run inside the server pod: accepts TCP connections and
 * keeps them (load/hold.ts createHoldServer: each connection's first bytes get a one-byte answer,
 * so the client knows it reaches this server end to end). It holds only the socket objects, so
 * its own memory stays small (it is not measured anyway).
 *
 *   node dist/bench/hold-server.js --port 9090 [--host 0.0.0.0]
 *
 * Prints {"event":"listening","port":P} when it accepts connections; exits on SIGTERM / SIGINT.
 */
import { parseArgs } from 'node:util';
import { createHoldServer } from './load/hold.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '9090' }, host: { type: 'string', default: '0.0.0.0' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`hold-server: invalid --port ${values.port}`);
  process.exit(2);
}

const { server, held } = createHoldServer();
server.on('error', (err) => {
  console.error(`hold-server: ${err.message}`);
  process.exit(1);
});
server.listen({ port, host: values.host }, () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: typeof address === 'object' && address ? address.port : port })}\n`);
});
const stop = (): void => {
  server.close(() => process.exit(0));
  for (const s of held) s.destroy();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
