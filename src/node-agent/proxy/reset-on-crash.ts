/**
 * A plain TCP socket the node agent relays (a captured client's connection, the agent's own
 * connection to a pod or to a passthrough destination) is closed by the kernel when the agent
 * dies (kill -9, OOM kill). With nothing unread, that close sends a FIN: the app on the other end
 * reads a clean end of a cut-short stream and, without framing of its own, takes it for a
 * complete one (issue #12). SO_LINGER {on, 0} makes that close a RST.
 *
 * Invariant: the agent's own graceful end stays a FIN. Lingering only changes close(), not the
 * FIN that end() sends (shutdown), but with linger 0 the close after our FIN would be a RST too
 * whenever the socket is still in FIN_WAIT1/FIN_WAIT2 (Linux tcp_close → tcp_disconnect). So
 * lingering is turned off on 'finish' — our FIN has been handed to the kernel, and Node closes
 * the descriptor only after that event. Every graceful end goes through end() and 'finish';
 * any other destroy is an abort, for which a reset is right. If the agent dies between the FIN
 * and 'finish', the peer reads the FIN and then a RST: the cut is still visible.
 * Cost: one setsockopt when armed, one at 'finish', and one shared listener (no closure).
 */
import type net from 'node:net';
import type { NativeBinding } from '../../native/types.js';

type Linger = Pick<NativeBinding, 'setSocketLinger'>;

/** The kernel descriptor behind a Node TCP socket (libuv's; undefined once closed or not TCP). */
function fdOf(socket: net.Socket): number | undefined {
  const fd = (socket as net.Socket & { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The 'finish' listener per binding: one function shared by every armed socket (no per-socket closure). */
const disarmers = new WeakMap<Linger, (this: net.Socket) => void>();

function disarmerFor(native: Linger): (this: net.Socket) => void {
  let disarm = disarmers.get(native);
  if (!disarm) {
    disarm = function (this: net.Socket): void {
      const fd = fdOf(this);
      if (fd === undefined) return;
      try {
        native.setSocketLinger(fd, null);
      } catch {
        // Lingering stays on: at worst this end is a reset instead of a FIN.
      }
    };
    disarmers.set(native, disarm);
  }
  return disarm;
}

/**
 * Arms `socket` so the agent's death resets it. Returns false (and changes nothing) when the
 * socket has no descriptor any more, has already ended its writing, or the kernel refused the
 * option: the socket then keeps the kernel's default, a FIN.
 */
export function armResetOnCrash(native: Linger, socket: net.Socket): boolean {
  const fd = fdOf(socket);
  if (fd === undefined || socket.destroyed || socket.writableEnded) return false;
  try {
    native.setSocketLinger(fd, 0);
  } catch {
    return false;
  }
  socket.on('finish', disarmerFor(native));
  return true;
}
