/**
 * The processes of bench/relay-layers.ts, each a child so its CPU is read from /proc on its own:
 *
 *   node dist/bench/relay-layers-roles.js <role> '<json options>'
 *
 * - `far`: terminates the tunnel of `layer` on 127.0.0.1 and relays each tunnelled connection to
 *   the backend port (src/net/relay.ts): `tcp` plain TCP, `tls` one TLS connection per
 *   connection, `h2` and `h2-framed` node:http2's server taking CONNECT streams, `hbone` the
 *   node agent's HBONE server (src/hbone/server.ts: mutual TLS with SPIFFE identities, CONNECT
 *   checks; its upstream is a plain TCP connection to the backend).
 * - `near`: the measured relay. A TCP listener; each accepted connection gets a tunnel of `layer`
 *   to `far` and is relayed to it with src/net/relay.ts: `tcp` / `tls` a connection each, `h2`
 *   one node:http2 session with a CONNECT stream each (what the node agent does), `h2-framed` one
 *   TLS connection with a CONNECT stream each from the hand-written framing of
 *   relay-layers-h2-framed.ts, `hbone` the node agent's HBONE pool (src/hbone/pool.ts) with a
 *   CONNECT stream each, relayed as the agent's outbound side does.
 *
 * HTTP/2 windows are the node agent's (src/hbone/settings.ts): 4 MiB per stream, 16 MiB per
 * connection. Except in `hbone`, the TLS server certificate is not verified: verification
 * happens once per connection, outside what is measured. Each role reports `{type:'ready', role, port}` over IPC,
 * exits on SIGTERM, and exits when the parent goes away (IPC disconnect).
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { HbonePool } from '../src/hbone/pool.js';
import { HboneServer } from '../src/hbone/server.js';
import { CertificateManager } from '../src/identity/certificate-manager.js';
import { LocalCaProvider } from '../src/identity/certificate-provider.js';
import { parseSpiffeUri, type WorkloadIdentity } from '../src/identity/spiffe.js';
import { relay } from '../src/net/relay.js';
import { createLogger } from '../src/telemetry/logger.js';
import { FramedSession } from './relay-layers-h2-framed.js';
import { CONNECTION_WINDOW, FAR_URI, NEAR_URI, RELAY_LAYERS, STREAM_WINDOW, TRUST_DOMAIN, type CaPems, type FarOptions, type NearOptions, type RelayLayersReady } from './relay-layers-topology.js';

const HOST = '127.0.0.1';
const logger = createLogger(process.env.AMESH_LOG_LEVEL ?? 'warn', 'bench-relay-layers');

function identityOf(uri: string): WorkloadIdentity {
  const id = parseSpiffeUri(uri);
  if (!id) throw new Error(`not a workload SPIFFE URI: ${uri}`);
  return id;
}

/** Workload certificates from the bench's CA, as the agents get theirs from the controller. */
function certificatesFrom(ca: CaPems): CertificateManager {
  return new CertificateManager({ provider: new LocalCaProvider({ ca, ttlSeconds: 3600 }), logger });
}

function toBackend(port: number, tunnelled: Duplex): void {
  const backend = net.connect({ host: HOST, port, noDelay: true });
  void relay(tunnelled, backend);
}

function far(o: FarOptions): net.Server | tls.Server | http2.Http2SecureServer {
  switch (o.layer) {
    case 'tcp':
      return net.createServer({ noDelay: true }, (socket) => toBackend(o.backendPort, socket));
    case 'hbone': {
      const certificates = certificatesFrom(o.ca);
      const identity = identityOf(FAR_URI);
      const hbone = new HboneServer({
        trustDomains: () => [TRUST_DOMAIN],
        secureContextFor: () => certificates.secureContext(identity),
        onConnect: async () => {
          const upstream = net.connect({ host: HOST, port: o.backendPort, allowHalfOpen: true, noDelay: true });
          try {
            await once(upstream, 'connect');
          } catch (err) {
            return { status: 503, reason: (err as Error).message };
          }
          return { status: 200, upstream };
        },
        logger,
      });
      return net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => hbone.handleConnection(socket));
    }
    case 'tls':
      return tls.createServer({ cert: o.ca.certPem, key: o.ca.keyPem }, (socket) => {
        socket.setNoDelay(true);
        toBackend(o.backendPort, socket);
      });
    case 'h2':
    case 'h2-framed': {
      const server = http2.createSecureServer({ cert: o.ca.certPem, key: o.ca.keyPem, settings: { initialWindowSize: STREAM_WINDOW } });
      server.on('session', (session) => session.setLocalWindowSize(CONNECTION_WINDOW));
      server.on('stream', (stream) => {
        stream.respond({ ':status': 200 });
        toBackend(o.backendPort, stream);
      });
      return server;
    }
  }
}

async function near(o: NearOptions): Promise<net.Server> {
  let tunnel: (() => Duplex) | undefined;
  const authority = `${HOST}:${o.farPort}`;
  switch (o.layer) {
    case 'tcp':
      tunnel = () => net.connect({ host: HOST, port: o.farPort, noDelay: true });
      break;
    case 'tls':
      tunnel = () => {
        const socket = tls.connect({ host: HOST, port: o.farPort, rejectUnauthorized: false });
        socket.setNoDelay(true);
        return socket;
      };
      break;
    case 'h2': {
      const session = http2.connect(`https://${authority}`, { rejectUnauthorized: false, settings: { initialWindowSize: STREAM_WINDOW } });
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      });
      session.setLocalWindowSize(CONNECTION_WINDOW);
      tunnel = () => session.request({ ':method': 'CONNECT', ':authority': authority });
      break;
    }
    case 'h2-framed': {
      const session = new FramedSession({ host: HOST, port: o.farPort, streamWindow: STREAM_WINDOW, connectionWindow: CONNECTION_WINDOW });
      await session.ready;
      tunnel = () => session.open(authority);
      break;
    }
    case 'hbone': {
      const certificates = certificatesFrom(o.ca);
      const source = identityOf(NEAR_URI);
      await certificates.secureContext(source);
      const pool = new HbonePool({ certificates, logger });
      const request = { sourceIdentity: source, expectedIdentities: [FAR_URI], nextHop: { host: HOST, port: o.farPort }, authority, headers: {} };
      return net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
        pool.connect(request).then(
          (stream) => void relay(socket, stream),
          (err: unknown) => {
            logger.warn({ err: String(err) }, 'relay-layers near: HBONE connect failed');
            socket.resetAndDestroy();
          },
        );
      });
    }
  }
  const open = tunnel;
  return net.createServer({ noDelay: true }, (socket) => void relay(socket, open()));
}

async function main(): Promise<void> {
  const [role, json] = process.argv.slice(2);
  if (role !== 'far' && role !== 'near') throw new Error(`unknown role ${String(role)}: expected far or near`);
  const options = JSON.parse(json ?? '{}') as FarOptions & NearOptions;
  if (!RELAY_LAYERS.includes(options.layer)) throw new Error(`unknown layer ${String(options.layer)}: expected one of ${RELAY_LAYERS.join(', ')}`);
  const server = role === 'far' ? far(options) : await near(options);
  server.listen({ host: HOST, port: 0 }, () => {
    const ready: RelayLayersReady = { type: 'ready', role, port: (server.address() as net.AddressInfo).port };
    process.send?.(ready);
  });
}

process.once('SIGTERM', () => process.exit(0));
process.once('disconnect', () => process.exit(0));
main().catch((err: unknown) => {
  process.stderr.write(`relay-layers-roles: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
