/**
 * The gateway's listening sockets, one set (IPv4, and IPv6 when the pod has it) per config port,
 * reconciled with each config:
 * - a port that stays keeps its servers (its protocol may change: connections are dispatched by
 *   the plan current when they are accepted, so nothing is re-bound);
 * - a new port is bound; a bind failure (port taken, no permission) is logged and kept in
 *   `status()` (the config dump) and retried with the next config — never fatal for the others;
 * - a removed port stops accepting at once; its established connections finish on their own.
 * Reconciliations run one at a time, in order (`settled()` resolves after the last).
 * `listenPort` maps a config port to the port actually bound (tests and benches: 0 = ephemeral).
 */
import net from 'node:net';
import { describeError } from '../errors/amesh-error.js';
import { listenOnAddresses } from '../l7/listen.js';
import type { Logger } from '../telemetry/logger.js';

export interface GatewayListenerSetOptions {
  listenAddress4: string;
  listenAddress6: string;
  /** The port to bind for a config port; default the same number. */
  listenPort?: (configPort: number) => number;
  /** A connection accepted on `configPort` (paused). */
  onConnection: (socket: net.Socket, configPort: number) => void;
  logger: Logger;
}

export interface PortListenerStatus {
  port: number;
  /** The bound port, when listening. */
  listenPort?: number;
  state: 'listening' | 'failed';
  error?: string;
}

interface PortListener {
  servers: net.Server[];
  listenPort: number;
}

export class GatewayListenerSet {
  private readonly listening = new Map<number, PortListener>();
  private readonly failed = new Map<number, string>();
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: GatewayListenerSetOptions) {}

  /** Makes the bound ports equal `ports` (queued after any reconciliation in progress). */
  reconcile(ports: Iterable<number>): Promise<void> {
    const wanted = new Set(ports);
    this.queue = this.queue.then(() => this.apply(wanted)).catch((err: unknown) => this.opts.logger.error({ err: describeError(err) }, 'gateway: reconciling the listeners failed'));
    return this.queue;
  }

  /** Resolves once every reconciliation asked for so far is done. */
  settled(): Promise<void> {
    return this.queue;
  }

  listenerPort(configPort: number): number | undefined {
    return this.listening.get(configPort)?.listenPort;
  }

  status(): PortListenerStatus[] {
    const out: PortListenerStatus[] = [];
    for (const [port, l] of this.listening) out.push({ port, listenPort: l.listenPort, state: 'listening' });
    for (const [port, error] of this.failed) out.push({ port, state: 'failed', error });
    return out.sort((a, b) => a.port - b.port);
  }

  /** Stops accepting on every port (established connections are not touched). */
  close(): void {
    this.closed = true;
    for (const l of this.listening.values()) for (const s of l.servers) s.close();
    this.listening.clear();
  }

  private async apply(wanted: ReadonlySet<number>): Promise<void> {
    if (this.closed) return;
    const { logger } = this.opts;
    for (const [port, l] of this.listening) {
      if (wanted.has(port)) continue;
      this.listening.delete(port);
      for (const s of l.servers) s.close();
      logger.info({ port }, 'gateway: listener removed; its connections finish on their own');
    }
    for (const port of this.failed.keys()) if (!wanted.has(port)) this.failed.delete(port);
    for (const port of wanted) {
      if (this.listening.has(port)) continue;
      const bindPort = this.opts.listenPort?.(port) ?? port;
      try {
        const { servers, port: bound } = await listenOnAddresses({
          listenAddress4: this.opts.listenAddress4,
          listenAddress6: this.opts.listenAddress6,
          port: bindPort,
          create: () => net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => this.opts.onConnection(socket, port)),
          what: `gateway port ${port}`,
          hint: bindPort < 1024 ? 'ports below 1024 need net.ipv4.ip_unprivileged_port_start=0 (the gateway pod sets it) or CAP_NET_BIND_SERVICE' : 'is another process listening on it?',
          logger,
        });
        if (this.closed) {
          for (const s of servers) s.close();
          return;
        }
        this.listening.set(port, { servers, listenPort: bound });
        this.failed.delete(port);
        logger.info({ port, listenPort: bound }, 'gateway: listening');
      } catch (err) {
        const error = describeError(err).split('\n')[0] ?? 'bind failed';
        this.failed.set(port, error);
        logger.error({ port, err: describeError(err) }, 'gateway: cannot listen on a configured port; the other listeners are served');
      }
    }
  }
}
