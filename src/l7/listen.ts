/**
 * Listening on a proxy pod's addresses (AMESH_LISTEN_ADDRESS4 and, unless `none`,
 * AMESH_LISTEN_ADDRESS6): one net.Server per address, all on one port (when the port asked for
 * is 0, the first bind picks it and the IPv6 server takes the same). The IPv4 bind must succeed
 * (else AMESH_PORT_IN_USE naming the address); an IPv6 failure (a pod without IPv6) is a warning
 * and the port serves IPv4 only. A listener's later errors are logged, never thrown.
 */
import type net from 'node:net';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import { formatAuthority } from '../hbone/headers.js';
import type { Logger } from '../telemetry/logger.js';

export interface ListenOptions {
  listenAddress4: string;
  /** '' = no IPv6 listener. */
  listenAddress6: string;
  port: number;
  /** Creates one (not yet listening) server. */
  create: () => net.Server;
  /** What listens, for messages: `HBONE`, `gateway port 443`. */
  what: string;
  hint: string;
  logger: Logger;
}

function bind(server: net.Server, host: string, port: number, family: 4 | 6): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ...(family === 6 ? { ipv6Only: true } : {}) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The servers listening and the port they share. */
export async function listenOnAddresses(o: ListenOptions): Promise<{ servers: net.Server[]; port: number }> {
  const servers: net.Server[] = [];
  let port = o.port;
  const addresses: Array<{ host: string; family: 4 | 6 }> = [{ host: o.listenAddress4, family: 4 }];
  if (o.listenAddress6) addresses.push({ host: o.listenAddress6, family: 6 });
  for (const { host, family } of addresses) {
    if (!host) continue;
    const server = o.create();
    try {
      await bind(server, host, port, family);
    } catch (err) {
      server.close();
      if (family === 6) {
        o.logger.warn({ err: describeError(err), host }, `IPv6 ${o.what} listener unavailable; serving IPv4 only`);
        continue;
      }
      for (const s of servers) s.close();
      throw new AmeshError('AMESH_PORT_IN_USE', `cannot listen for ${o.what} on ${formatAuthority(host, port)}`, { cause: err, hint: o.hint });
    }
    server.on('error', (err) => o.logger.error({ err: describeError(err) }, `${o.what} listener error`));
    servers.push(server);
    port = (server.address() as net.AddressInfo).port;
  }
  return { servers, port };
}
