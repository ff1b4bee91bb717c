/**
 * Zero-drop agent upgrade: the listener hand-off between an old and a new node agent on the
 * same node (docs/upgrade.md).
 *
 * The running agent serves a unix socket, by default the ABSTRACT `@amesh-node-handoff`
 * (abstract names are scoped by network namespace, so every node — and every sandbox node —
 * has its own; nothing to clean up on disk). A starting agent connects to it:
 *
 *   old → new  one message: JSON {pid, listeners: [{name, port}]} + '\n', with the listening
 *              sockets attached as SCM_RIGHTS (the same kernel sockets, dup'd into the new
 *              process — queued connections stay queued), the hand-off socket itself last.
 *   new        gets ready (capture, state), then serves the inherited sockets.
 *   new → old  {"op":"drain"}\n
 *   old        stops accepting (closes ITS copies of the fds; the sockets live on in the new
 *              process), readiness off, GOAWAY on HBONE, answers {"op":"draining", pid, live}\n,
 *              lets established connections finish (up to AMESH_DRAIN_TIMEOUT_MS) and exits.
 *   new        serves the hand-off socket, so the next agent can take over from it.
 *
 * Only a peer with our own uid (SO_PEERCRED) gets the fds. If nobody answers the agent binds
 * fresh. The fd-carrying message is read with the native non-blocking recvmsg, polled; only
 * after it arrived is the socket given to Node for the JSON lines (so Node never reads — and
 * drops — the ancillary data).
 */
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { AmeshError, describeError } from '../../errors/amesh-error.js';
import type { NativeBinding } from '../../native/types.js';
import type { Logger } from '../../telemetry/logger.js';

export const DEFAULT_HANDOFF_SOCKET = '@amesh-node-handoff';
/** The listener name of the hand-off socket itself. */
export const HANDOFF_LISTENER = 'handoff';

/** A listening socket one agent hands to the next. */
export interface HandedListener {
  /** e.g. 'outbound/4', 'hbone/6', 'readiness', 'handoff' */
  name: string;
  port: number;
  fd: number;
}

interface OfferPayload {
  pid: number;
  listeners: Array<{ name: string; port: number }>;
}

/** Node's fd of a listening server or connected socket (Linux; undocumented but stable `_handle.fd`). */
export function handleFd(handleOwner: net.Server | net.Socket): number {
  const fd = (handleOwner as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new AmeshError('AMESH_NATIVE_CALL_FAILED', 'a listener has no file descriptor (closed, or not a Unix socket)');
  return fd;
}

/** JSON lines over a Node socket. */
function lineReader(socket: net.Socket, onLine: (msg: Record<string, unknown>) => void): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      try {
        onLine(JSON.parse(line) as Record<string, unknown>);
      } catch {
        socket.destroy(new Error(`bad hand-off message: ${line.slice(0, 100)}`));
      }
    }
  });
}

// ------------------------------------------------------------------------------ new agent side

/** What a new agent received from the old one. */
export class InheritedListeners {
  private readonly unused: Map<string, HandedListener>;
  private drainAnswer: ((msg: Record<string, unknown>) => void) | undefined;

  constructor(
    readonly pid: number,
    listeners: HandedListener[],
    private readonly channel: net.Socket,
    private readonly native: NativeBinding,
  ) {
    this.unused = new Map(listeners.map((l) => [l.name, l]));
    lineReader(channel, (msg) => this.drainAnswer?.(msg));
    channel.on('error', () => undefined);
  }

  get count(): number {
    return this.unused.size;
  }

  /** Takes the listener `name` (its fd now belongs to the caller), if the old agent had it. */
  take(name: string): HandedListener | undefined {
    const l = this.unused.get(name);
    this.unused.delete(name);
    return l;
  }

  /** Asks the old agent to stop accepting and drain; resolves with its answer. */
  async askDrain(timeoutMs: number): Promise<{ pid: number; live: number }> {
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.drainAnswer = resolve;
      this.channel.once('close', () => reject(new AmeshError('AMESH_PORT_IN_USE', `the old agent (pid ${this.pid}) closed the hand-off connection before it confirmed the drain`)));
    });
    this.channel.write(`${JSON.stringify({ op: 'drain', pid: process.pid })}\n`);
    const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
    const msg = await Promise.race([answer, timer]);
    if (msg === 'timeout') throw new AmeshError('AMESH_PORT_IN_USE', `the old agent (pid ${this.pid}) did not confirm the drain within ${timeoutMs} ms`);
    return { pid: typeof msg.pid === 'number' ? msg.pid : this.pid, live: typeof msg.live === 'number' ? msg.live : -1 };
  }

  /** Closes the fds nobody took and the control connection. */
  close(): void {
    for (const l of this.unused.values()) {
      try {
        this.native.closeFd(l.fd);
      } catch {
        // already gone
      }
    }
    this.unused.clear();
    this.channel.destroy();
  }
}

const NOBODY = new Set(['ECONNREFUSED', 'ENOENT']);

/**
 * Connects to the hand-off socket. Resolves undefined when no agent answers (bind fresh);
 * rejects when one answered but the exchange failed (the ports are then most likely still
 * taken — the caller should fail rather than fight over them).
 */
export async function requestHandoff(native: NativeBinding, socketPath: string, logger: Logger, timeoutMs = 5000): Promise<InheritedListeners | undefined> {
  let fd: number;
  try {
    fd = native.unixConnect(socketPath);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code && NOBODY.has(code)) {
      logger.info({ socket: socketPath }, 'hand-off: no running agent answered; binding fresh');
      return undefined;
    }
    throw new AmeshError('AMESH_PORT_IN_USE', `cannot connect to the hand-off socket ${socketPath}: ${(err as Error).message}`, { cause: err, hint: 'set AMESH_HANDOFF_SOCKET=off to bind fresh (fails if an old agent still holds the ports)' });
  }
  const received: number[] = [];
  let text = '';
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msg = native.recvFds(fd, 65536);
      if (msg) {
        received.push(...msg.fds);
        if (msg.data.length === 0) {
          // The answering agent is shutting down (SIGTERM drain) and refused: bind fresh.
          native.closeFd(fd);
          for (const f of received) native.closeFd(f);
          logger.info({ socket: socketPath }, 'hand-off: the running agent is already shutting down; binding fresh');
          return undefined;
        }
        text += msg.data.toString('utf8');
        if (text.endsWith('\n')) break;
        continue;
      }
      if (Date.now() > deadline) throw new AmeshError('AMESH_PORT_IN_USE', `the agent on ${socketPath} sent no listeners within ${timeoutMs} ms`);
      await sleep(5);
    }
    const payload = JSON.parse(text) as OfferPayload;
    if (!Array.isArray(payload.listeners) || payload.listeners.length !== received.length) {
      throw new AmeshError('AMESH_PORT_IN_USE', `the agent on ${socketPath} offered ${payload.listeners?.length} listeners but sent ${received.length} fds`);
    }
    const listeners = payload.listeners.map((l, i) => ({ name: l.name, port: l.port, fd: received[i] as number }));
    const channel = new net.Socket({ fd, readable: true, writable: true });
    return new InheritedListeners(payload.pid, listeners, channel, native);
  } catch (err) {
    for (const f of received) native.closeFd(f);
    native.closeFd(fd);
    throw err instanceof AmeshError ? err : new AmeshError('AMESH_PORT_IN_USE', `listener hand-off over ${socketPath} failed: ${describeError(err)}`, { cause: err });
  }
}

// ------------------------------------------------------------------------------ old agent side

export interface HandoffServerOptions {
  native: NativeBinding;
  socketPath: string;
  logger: Logger;
  /** The listeners to hand over (the hand-off socket itself is added last). */
  listeners(): HandedListener[];
  /**
   * A new agent took the listeners and asks us to drain: stop accepting NOW (synchronously),
   * return the number of live connections; the agent then drains and exits.
   */
  onDrain(peerPid: number): number;
}

/** The running agent's end: offers the listeners to whoever connects with our uid. */
export class HandoffServer {
  private server: net.Server | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Agents that received our listeners and are still connected (getting ready). */
  private offered = 0;

  constructor(private readonly opts: HandoffServerOptions) {}

  /**
   * Serves the hand-off socket: on `inheritedFd` (from the previous agent) or a fresh bind. A
   * fresh bind that finds the name taken (an old agent draining after SIGTERM still holds it)
   * is retried every second in the background.
   */
  async start(inheritedFd?: number): Promise<void> {
    const { socketPath, logger } = this.opts;
    const server = net.createServer((socket) => this.offer(socket));
    server.on('error', (err) => logger.warn({ err: describeError(err), socket: socketPath }, 'hand-off socket error'));
    if (inheritedFd !== undefined) {
      server.listen({ fd: inheritedFd });
      await once(server, 'listening');
      this.server = server;
      return;
    }
    const attempt = async (): Promise<boolean> => {
      let fd: number;
      try {
        fd = this.opts.native.unixListen(socketPath, 16);
      } catch (err) {
        if ((err as { code?: string }).code === 'EADDRINUSE') return false;
        throw err;
      }
      const s = net.createServer((socket) => this.offer(socket));
      s.listen({ fd });
      await once(s, 'listening');
      s.on('error', (err) => logger.warn({ err: describeError(err), socket: socketPath }, 'hand-off socket error'));
      if (this.stopped) {
        s.close();
        return true;
      }
      this.server = s;
      return true;
    };
    if (await attempt()) return;
    logger.warn({ socket: socketPath }, 'hand-off: the socket name is still held (an old agent draining?); retrying every second — until then a new agent cannot take over from this one');
    const again = (): void => {
      this.retry = setTimeout(() => {
        attempt().then(
          (ok) => {
            if (ok) logger.info({ socket: socketPath }, 'hand-off: now serving the hand-off socket');
            else if (!this.stopped) again();
          },
          (err: unknown) => logger.error({ err: describeError(err), socket: socketPath }, 'hand-off: cannot serve the hand-off socket'),
        );
      }, 1000);
      this.retry.unref();
    };
    again();
  }

  private offer(socket: net.Socket): void {
    const { native, logger, socketPath } = this.opts;
    socket.on('error', () => undefined);
    if (this.stopped) {
      socket.end();
      return;
    }
    let peer: { pid: number; uid: number };
    try {
      const fd = handleFd(socket);
      peer = native.peerCredentials(fd);
      const ownUid = process.geteuid?.() ?? 0;
      if (peer.uid !== ownUid) {
        logger.warn({ peerPid: peer.pid, peerUid: peer.uid }, 'hand-off: refused a peer with another uid');
        socket.destroy();
        return;
      }
      const listeners = [...this.opts.listeners()];
      if (this.server) listeners.push({ name: HANDOFF_LISTENER, port: 0, fd: handleFd(this.server) });
      const payload: OfferPayload = { pid: process.pid, listeners: listeners.map((l) => ({ name: l.name, port: l.port })) };
      native.sendFds(
        fd,
        listeners.map((l) => l.fd),
        Buffer.from(`${JSON.stringify(payload)}\n`),
      );
      logger.info({ peerPid: peer.pid, listeners: listeners.map((l) => l.name) }, 'hand-off: offered our listeners to a new agent');
      this.offered++;
      socket.once('close', () => this.offered--);
    } catch (err) {
      logger.error({ err: describeError(err), socket: socketPath }, 'hand-off: cannot offer the listeners');
      socket.destroy();
      return;
    }
    lineReader(socket, (msg) => {
      if (msg.op !== 'drain' || this.stopped) return;
      const peerPid = typeof msg.pid === 'number' ? msg.pid : peer.pid;
      this.stop();
      const live = this.opts.onDrain(peerPid);
      socket.end(`${JSON.stringify({ op: 'draining', pid: process.pid, live })}\n`);
    });
  }

  /** True while an agent that received our listeners is connected: it holds the sockets too. */
  get offerPending(): boolean {
    return this.offered > 0;
  }

  /** Stops offering (closes our copy of the socket; a new agent may hold another). */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.server?.close();
    this.server = undefined;
  }
}
