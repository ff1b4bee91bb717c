/**
 * Tracks live proxied connections so drain can wait for them and close can end them.
 * Invariant: every relay the proxies start is registered here until it finishes.
 */
import type { Duplex } from 'node:stream';

export class ConnectionTracker {
  private readonly live = new Set<Duplex>();
  private waiters: Array<() => void> = [];

  get size(): number {
    return this.live.size;
  }

  add(socket: Duplex): void {
    this.live.add(socket);
    socket.once('close', () => {
      this.live.delete(socket);
      if (this.live.size === 0) {
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      }
    });
  }

  /** Resolves when no connection is left or `timeoutMs` passed; returns how many remain. */
  async idle(timeoutMs: number): Promise<number> {
    if (this.live.size === 0) return 0;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.live.size;
  }

  /** What is live, for /config_dump: addresses of sockets, the type of anything else. */
  describe(limit = 100): Array<Record<string, string | undefined>> {
    return [...this.live].slice(0, limit).map((s) => {
      const sock = s as Duplex & { localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number };
      return sock.remoteAddress !== undefined
        ? { local: `${sock.localAddress}:${sock.localPort}`, remote: `${sock.remoteAddress}:${sock.remotePort}`, state: s.destroyed ? 'destroyed' : 'open' }
        : { type: s.constructor.name, state: s.destroyed ? 'destroyed' : 'open' };
    });
  }

  destroyAll(): void {
    for (const s of this.live) s.destroy();
  }
}
