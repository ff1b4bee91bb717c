/**
 * Public face of the native layer: the loader, the types, and helpers that turn raw fds into
 * Node sockets. Consumers take a NativeBinding parameter so unit tests can pass
 * createFakeNativeBinding().
 */
import net from 'node:net';
import { AmeshError } from '../errors/amesh-error.js';
import type { NativeBinding } from './types.js';

export { loadNativeBinding, nativeAddonPath } from './addon.js';
export type * from './types.js';

export interface ConnectOutboundOptions {
  family: 4 | 6;
  /** SO_MARK for the socket (0 = none); set before the SYN leaves. */
  mark: number;
  /** Foreign source address to bind (IP_TRANSPARENT), or null for the kernel's choice. */
  bindAddress: string | null;
  host: string;
  port: number;
  timeoutMs: number;
}

/**
 * Connect a natively created (marked, optionally transparent) socket and resolve with a
 * normal net.Socket (allowHalfOpen, for relays) once connected.
 *
 * Wrapping an unconnected fd: by default `new net.Socket({ fd })` starts reading at once,
 * which only works because connect() follows in the same tick. `pauseOnCreate` avoids that
 * but leaves `readableFlowing === false`, so a later `on('data')` never fires without an
 * explicit resume(). `manualStart` (an undocumented option; Node's process.stdin uses it) just skips
 * the initial read; Node starts reading after 'connect' as for any socket it connected itself.
 * Verified on Node 20.20 and 24.21: 'connect' fires, SO_MARK is kept, data flows both ways with
 * on('data') and pipe(), ECONNREFUSED rejects (test/privileged/bpf-sockets.test.ts).
 */
export function connectOutbound(binding: NativeBinding, o: ConnectOutboundOptions): Promise<net.Socket> {
  const target = `${o.family === 6 ? `[${o.host}]` : o.host}:${o.port}`;
  let fd: number;
  try {
    fd = binding.createOutboundSocket(o.family, o.mark, o.bindAddress);
  } catch (err) {
    return Promise.reject(new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `cannot create a socket for ${target}: ${(err as Error).message}`, { cause: err }));
  }
  let socket: net.Socket;
  try {
    socket = new net.Socket({ fd, manualStart: true, allowHalfOpen: true, readable: true, writable: true } as net.SocketConstructorOpts);
  } catch (err) {
    binding.closeFd(fd);
    return Promise.reject(new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `cannot wrap the socket for ${target}: ${(err as Error).message}`, { cause: err }));
  }
  return new Promise<net.Socket>((resolve, reject) => {
    const fail = (err: Error, message: string) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.destroy();
      reject(new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', message, { cause: err }));
    };
    const onError = (err: Error) => fail(err, `cannot connect to ${target}: ${err.message}`);
    const onConnect = () => {
      // If a future Node ignored manualStart, connect() would quietly open a new, unmarked
      // socket; check the connected fd really carries our mark rather than trust it.
      const connectedFd = (socket as net.Socket & { _handle?: { fd?: number } })._handle?.fd;
      if (o.mark !== 0 && (connectedFd === undefined || connectedFd < 0 || binding.getSocketMark(connectedFd) !== o.mark)) {
        fail(new Error('SO_MARK lost'), `the connection to ${target} lost its SO_MARK ${o.mark}: this Node version wraps native sockets differently`);
        return;
      }
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    };
    const timer = setTimeout(() => fail(new Error('connect timeout'), `timed out connecting to ${target} after ${o.timeoutMs} ms`), o.timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.connect(o.port, o.host);
  });
}
