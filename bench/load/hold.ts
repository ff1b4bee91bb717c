/**
 * The held-connection client's protocol (load/hold-client.ts, run in the client pod; the memory
 * scenario reads it): one JSON event per stdout line.
 *
 *   {"event":"up","connections":N,"ms":T}        all N connections answered end to end
 *   {"event":"failed","error":"…","up":K}         it gave up (an error or the deadline); exits 1
 *   {"event":"released","closedWhileHeld":C}      SIGTERM (or the hold bound) closed them; exits 0
 *
 * A connection is "up" once the hold server's one-byte answer to its first bytes arrived, so it
 * crosses every proxy and tunnel, not just the first proxy that accepted it.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export type HoldEvent =
  | { event: 'up'; connections: number; ms: number }
  | { event: 'failed'; error: string; up: number }
  | { event: 'released'; closedWhileHeld: number };

/** Parses one stdout line; undefined for anything that is not a hold event. */
export function parseHoldEvent(line: string): HoldEvent | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  const num = (k: string): boolean => typeof d[k] === 'number' && Number.isFinite(d[k]);
  if (d.event === 'up' && num('connections') && num('ms')) return { event: 'up', connections: d.connections as number, ms: d.ms as number };
  if (d.event === 'failed' && typeof d.error === 'string' && num('up')) return { event: 'failed', error: d.error, up: d.up as number };
  if (d.event === 'released' && num('closedWhileHeld')) return { event: 'released', closedWhileHeld: d.closedWhileHeld as number };
  return undefined;
}

/**
 * The "Max open files" limit from a /proc/<pid>/limits text — the soft one, or with `which` =
 * 'hard' the ceiling a process may raise its soft limit to; Infinity for "unlimited".
 */
export function parseOpenFilesLimit(limits: string, which: 'soft' | 'hard' = 'soft'): number | undefined {
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const value = line?.slice('Max open files'.length).trim().split(/\s+/)[which === 'soft' ? 0 : 1];
  if (value === undefined) return undefined;
  if (value === 'unlimited') return Infinity;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** File descriptors a process needs beyond its held sockets (stdio, the event loop, libraries). */
export const FD_HEADROOM = 64;

/**
 * The hold server's connection handling: each connection's first bytes are answered with one
 * byte; nothing else is read or written. `held` is the set of open connections.
 */
export function createHoldServer(): { server: Server; held: Set<Socket> } {
  const held = new Set<Socket>();
  const server = createServer((socket) => {
    held.add(socket);
    socket.once('data', () => socket.write('k'));
    // A peer's FIN is answered with ours; errors (resets at release) only end the connection.
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => held.delete(socket));
  });
  return { server, held };
}

export class HoldError extends Error {
  readonly code = 'BENCH_HOLD';
  constructor(
    message: string,
    /** Connections that were up when it gave up. */
    readonly up: number,
  ) {
    super(message);
    this.name = 'HoldError';
  }
}

export interface HoldOptions {
  host: string;
  port: number;
  connections: number;
  /** Connections being set up at a time. */
  concurrency: number;
  /** For all of them to come up. */
  timeoutMs: number;
  /** Also give up when no connection came up for this long (a stuck path fails fast, a slow one may take its time). */
  stallMs?: number;
}

export interface HeldConnections {
  readonly connections: number;
  /** Until the last one was answered. */
  readonly ms: number;
  /** Held connections that closed since they all came up (a proxy's idle timeout, a crash). */
  closedWhileHeld(): number;
  /** Closes every connection; returns closedWhileHeld() as it was just before. */
  release(): number;
}

/**
 * Opens `connections` connections with at most `concurrency` in set-up at a time, each up once
 * the server's answer to its first bytes arrived. Rejects with a HoldError (and closes what it
 * opened) at the first failed connection, when `timeoutMs` passes, or when none came up for
 * `stallMs`.
 */
export function holdConnections(o: HoldOptions): Promise<HeldConnections> {
  const sockets: Socket[] = [];
  const started = performance.now();
  let up = 0;
  let next = 0;
  let closed = 0;
  let settled = false;
  return new Promise((resolve, reject) => {
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(stall);
      for (const s of sockets) s.destroy();
      reject(new HoldError(message, up));
    };
    const deadline = setTimeout(() => fail(`only ${up} of ${o.connections} connections to ${o.host}:${o.port} came up within ${o.timeoutMs / 1000} s`), o.timeoutMs);
    let stall: NodeJS.Timeout | undefined;
    const watch = (): void => {
      if (o.stallMs === undefined) return;
      clearTimeout(stall);
      stall = setTimeout(() => fail(`no connection to ${o.host}:${o.port} came up for ${o.stallMs! / 1000} s (${up} of ${o.connections} were up)`), o.stallMs);
    };
    watch();
    const open = (): void => {
      if (settled || next >= o.connections) return;
      const index = ++next;
      const socket = connect({ host: o.host, port: o.port });
      sockets.push(socket);
      let answered = false;
      socket.setNoDelay(true);
      socket.once('connect', () => socket.write('hold\n'));
      socket.once('data', () => {
        answered = true;
        up++;
        watch();
        if (up === o.connections) {
          settled = true;
          clearTimeout(deadline);
          clearTimeout(stall);
          resolve(held(performance.now() - started));
        } else open();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => fail(`connection ${index} of ${o.connections} to ${o.host}:${o.port}: ${err.code ?? err.message} (${up} were up)`));
      socket.once('close', () => {
        if (!answered) fail(`connection ${index} of ${o.connections} to ${o.host}:${o.port} closed before the server answered (${up} were up)`);
        else if (settled) closed++;
      });
    };
    const held = (ms: number): HeldConnections => ({
      connections: o.connections,
      ms,
      closedWhileHeld: () => closed,
      release: () => {
        const before = closed;
        for (const s of sockets) s.destroy();
        return before;
      },
    });
    for (let i = 0; i < Math.min(o.concurrency, o.connections); i++) open();
  });
}
