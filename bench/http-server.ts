/**
 * Backend of the latency scenario, run inside the server pod: plain node:http, keep-alive, a
 * fixed body of --bytes (default 1024) for every request. It does as little as possible so the
 * measurement is of the path, not of the server.
 *
 *   node dist/bench/http-server.js --port 8080 [--host 0.0.0.0] [--bytes 1024]
 *
 * Prints {"event":"listening","port":P} on stdout when it accepts connections; exits on SIGTERM.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '0.0.0.0' },
    bytes: { type: 'string', default: '1024' },
  },
});
const port = Number(values.port);
const bytes = Number(values.bytes);
if (!Number.isInteger(port) || port < 1 || port > 65535 || !Number.isInteger(bytes) || bytes < 0) {
  console.error(`http-server: invalid --port ${values.port} or --bytes ${values.bytes}`);
  process.exit(2);
}

const body = Buffer.alloc(bytes, 'x');
const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes) };
const server = createServer((req, res) => {
  // Drain any request body so the connection can be reused.
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});
// The load generator keeps its connections busy; these only matter for idle gaps between runs.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;
server.on('connection', (socket) => socket.setNoDelay(true));
server.listen({ port, host: values.host }, () => {
  process.stdout.write(`${JSON.stringify({ event: 'listening', port })}\n`);
});
const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
