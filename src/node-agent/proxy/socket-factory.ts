/**
 * OS socket tricks behind one interface (ztunnel's SocketFactory): transparent, marked
 * listeners for captured traffic and marked outbound sockets. `plainSocketFactory` serves
 * tests and capture-less runs with ordinary sockets.
 */
import net from 'node:net';
import { once } from 'node:events';
import { AmeshError } from '../../errors/amesh-error.js';
import { connectOutbound } from '../../native/index.js';
import type { NativeBinding } from '../../native/types.js';
import { armResetOnCrash } from './reset-on-crash.js';

export interface ConnectTarget {
  host: string;
  port: number;
  /** Spoof this source address (transparent bind), to preserve the client's IP. */
  sourceAddress?: string;
}

export interface SocketFactory {
  /** Listen on address:port and return the bound server (port 0 allowed). */
  listen(server: net.Server, address: string, port: number): Promise<void>;
  /** Connects; with capture, the socket is armed so the agent's death resets it (reset-on-crash.ts). */
  connect(target: ConnectTarget, timeoutMs: number): Promise<net.Socket>;
  /**
   * Arms an accepted socket the agent relays so the agent's death resets it instead of ending it
   * with a FIN (reset-on-crash.ts). Without the native addon (plain sockets): nothing.
   */
  resetOnCrash(socket: net.Socket): void;
}

function portInUse(address: string, port: number, cause: unknown): AmeshError {
  return new AmeshError('AMESH_PORT_IN_USE', `cannot listen on ${address}:${port}`, {
    cause,
    hint: 'another process (an old agent?) holds the port; stop it or change the port setting',
  });
}

export async function plainConnect(target: ConnectTarget, timeoutMs: number): Promise<net.Socket> {
  const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
  socket.setNoDelay(true);
  const timer = setTimeout(() => socket.destroy(new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `timed out connecting to ${target.host}:${target.port} after ${timeoutMs} ms`)), timeoutMs);
  try {
    await once(socket, 'connect');
    return socket;
  } catch (err) {
    throw new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `cannot connect to ${target.host}:${target.port}: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

export const plainSocketFactory: SocketFactory = {
  async listen(server, address, port) {
    server.listen({ host: address, port });
    try {
      await once(server, 'listening');
    } catch (err) {
      throw portInUse(address, port, err);
    }
  },
  connect: plainConnect,
  resetOnCrash() {},
};

export function transparentSocketFactory(native: NativeBinding, mark: number): SocketFactory {
  return {
    async listen(server, address, port) {
      let fd: number;
      try {
        fd = native.createTransparentListener(net.isIP(address) === 6 ? 6 : 4, address, port, mark, 1024);
      } catch (err) {
        throw portInUse(address, port, err);
      }
      server.listen({ fd });
      await once(server, 'listening');
    },
    async connect(target, timeoutMs) {
      try {
        const socket = await connectOutbound(native, {
          family: net.isIP(target.host) === 6 ? 6 : 4,
          mark,
          bindAddress: target.sourceAddress && net.isIP(target.sourceAddress) === net.isIP(target.host) ? target.sourceAddress : null,
          host: target.host,
          port: target.port,
          timeoutMs,
        });
        socket.setNoDelay(true);
        armResetOnCrash(native, socket);
        return socket;
      } catch (err) {
        throw new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `cannot connect to ${target.host}:${target.port}: ${(err as Error).message}`, { cause: err });
      }
    },
    resetOnCrash(socket) {
      armResetOnCrash(native, socket);
    },
  };
}
