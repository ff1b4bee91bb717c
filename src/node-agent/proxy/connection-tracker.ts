/**
 * Tracks live proxied connections so drain can wait for them, close can end them, and a state
 * change can re-check the inbound ones against the new policies.
 *
 * Invariants:
 * - every relay the proxies start is registered here until it finishes;
 * - an inbound connection carries the attributes it was admitted with (`InboundAttributes`)
 *   from admission until it closes, so `recheck` sees every admitted inbound connection;
 * - `recheck` resets (TCP RST; for HBONE the relay turns it into RST_STREAM) exactly the
 *   connections the decision refuses, and reports them for logging.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { InboundAttributes, RecheckVerdict } from './connection-recheck.js';

export interface ClosedConnection {
  attributes: InboundAttributes;
  verdict: Extract<RecheckVerdict, { keep: false }>;
}

export class ConnectionTracker {
  private readonly live = new Map<Duplex, InboundAttributes | undefined>();
  private waiters: Array<() => void> = [];

  get size(): number {
    return this.live.size;
  }

  /** Registers a connection; `inbound` when it was admitted by inbound policy. */
  add(socket: Duplex, inbound?: InboundAttributes): void {
    if (this.live.has(socket)) {
      if (inbound) this.live.set(socket, inbound);
      return;
    }
    this.live.set(socket, inbound);
    socket.once('close', () => {
      this.live.delete(socket);
      if (this.live.size === 0) {
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      }
    });
  }

  /** How many live connections carry inbound attributes (re-checked on state changes). */
  get inboundSize(): number {
    let n = 0;
    for (const a of this.live.values()) if (a) n++;
    return n;
  }

  /**
   * Re-decides every live inbound connection; resets the refused ones and returns them.
   * `decide` must be pure (it runs synchronously over all connections).
   */
  recheck(decide: (a: InboundAttributes) => RecheckVerdict): ClosedConnection[] {
    const closed: ClosedConnection[] = [];
    for (const [socket, attributes] of this.live) {
      if (!attributes || socket.destroyed) continue;
      const verdict = decide(attributes);
      if (verdict.keep) continue;
      closed.push({ attributes, verdict });
      attributes.telemetry?.closedBy(verdict.reason);
      reset(socket);
    }
    return closed;
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
    return [...this.live].slice(0, limit).map(([s, inbound]) => {
      const sock = s as Duplex & { localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number };
      const base =
        sock.remoteAddress !== undefined
          ? { local: `${sock.localAddress}:${sock.localPort}`, remote: `${sock.remoteAddress}:${sock.remotePort}`, state: s.destroyed ? 'destroyed' : 'open' }
          : { type: s.constructor.name, state: s.destroyed ? 'destroyed' : 'open' };
      return inbound ? { ...base, workload: inbound.workloadUid, identity: inbound.connection.sourceIdentity ?? undefined } : base;
    });
  }

  destroyAll(): void {
    for (const s of this.live.keys()) s.destroy();
  }
}

/**
 * RST for a TCP socket (the peer sees the refusal, as ztunnel does); destroy otherwise. As in
 * relay.ts: only while the write side is open — after a queued FIN libuv's close-reset fails
 * and Node never emits 'close'.
 */
function reset(socket: Duplex): void {
  if (socket instanceof net.Socket && !(socket instanceof tls.TLSSocket) && !socket.writableEnded) {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // not connected any more
    }
  }
  socket.destroy();
}
