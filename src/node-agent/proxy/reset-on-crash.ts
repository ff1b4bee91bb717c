/**
 * A plain TCP socket the node agent relays (a captured client's connection, the agent's own
 * connection to a pod or to a passthrough destination) is closed by the kernel when the agent
 * dies (kill -9, OOM kill). With nothing unread, that close sends a FIN: the app on the other end
 * reads a clean end of a cut-short stream and, without framing of its own, takes it for a
 * complete one (issue #12). SO_LINGER {on, 0} makes that close a RST.
 *
 * Invariant: the agent's own graceful end stays a FIN. With linger 0 the close after our FIN would
 * be a RST too whenever the socket is still in FIN_WAIT1/FIN_WAIT2 (Linux tcp_close →
 * tcp_disconnect), so `end()` turns lingering off before it sends the FIN. Every graceful end goes
 * through `end()` (relay's half-close; `destroySoon` calls it); any other destroy is an abort, for
 * which a reset is right. Costs one setsockopt when armed and one at the end.
 */
import type net from 'node:net';
import type { NativeBinding } from '../../native/types.js';

type Linger = Pick<NativeBinding, 'setSocketLinger'>;

/** The kernel descriptor behind a Node TCP socket (libuv's; undefined once closed or not TCP). */
function fdOf(socket: net.Socket): number | undefined {
  const fd = (socket as net.Socket & { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Arms `socket` so the agent's death resets it. Returns false (and changes nothing) when the
 * socket has no descriptor any more or the kernel refused the option: the socket then keeps the
 * kernel's default, a FIN.
 */
export function armResetOnCrash(native: Linger, socket: net.Socket): boolean {
  const fd = fdOf(socket);
  if (fd === undefined || socket.destroyed || socket.writableEnded) return false;
  try {
    native.setSocketLinger(fd, 0);
  } catch {
    return false;
  }
  const end = socket.end;
  socket.end = function (this: net.Socket, ...args: unknown[]) {
    socket.end = end;
    // The descriptor is still ours while the socket is not destroyed (Node closes it on destroy).
    if (!socket.destroyed) {
      try {
        native.setSocketLinger(fd, null);
      } catch {
        // Lingering stays on: at worst this end is a reset instead of a FIN.
      }
    }
    return (end as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof socket.end;
  return true;
}
