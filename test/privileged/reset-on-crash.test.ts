// The node agent's reset-on-crash arming (src/node-agent/proxy/reset-on-crash.ts) with the real
// addon and kernel, loopback only: a process killed with SIGKILL while holding an armed socket
// resets its peer (without arming, the kernel's close is a FIN), and an armed socket the process
// ends itself still ends with a FIN, even when the process exits while it is in FIN_WAIT.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('SO_LINGER through the native addon', { tools: ['ss'] });
const CHILD = fileURLToPath(new URL('../helpers/reset-on-crash-child.mjs', import.meta.url));

interface PeerEnd {
  /** 'end' (FIN), an error code (ECONNRESET), or 'close'. */
  first: string;
  /** An error after the FIN (a RST that followed it). */
  errorAfter?: string;
}

/** One accepted connection's end as its server side sees it. */
async function serverSide(): Promise<{ port: number; accepted: Promise<net.Socket>; close: () => void }> {
  const server = net.createServer({ allowHalfOpen: true });
  const accepted = once(server, 'connection').then(([s]) => s as net.Socket);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, accepted, close: () => server.close() };
}

function watchEnd(socket: net.Socket, settleMs: number): Promise<PeerEnd> {
  return new Promise((resolve) => {
    let result: PeerEnd | undefined;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!result) {
        resolve({ first: err.code ?? err.message });
        result = { first: 'error' };
      } else result.errorAfter ??= err.code ?? err.message;
    });
    socket.on('end', () => {
      if (result) return;
      result = { first: 'end' };
      // A RST right behind the FIN shows up as an error within a moment.
      setTimeout(() => {
        socket.destroy();
        resolve(result as PeerEnd);
      }, settleMs);
    });
    socket.on('close', () => {
      if (!result) resolve({ first: 'close' });
    });
    socket.resume();
  });
}

/** The child's stdout lines, parsed, one per call; rejects if the child exits before the next one. */
function childLines(child: ChildProcess): () => Promise<Record<string, unknown>> {
  const ready: string[] = [];
  const waiting: Array<{ resolve: (line: string) => void; reject: (err: Error) => void }> = [];
  let buffer = '';
  let exited = false;
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const next = waiting.shift();
      if (next) next.resolve(line);
      else ready.push(line);
    }
  });
  child.once('exit', (code, signal) => {
    exited = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`the child exited (${code ?? signal}) before its next line`));
  });
  return async () => {
    const line =
      ready.shift() ??
      (await new Promise<string>((resolve, reject) => {
        if (exited) reject(new Error('the child has exited'));
        else waiting.push({ resolve, reject });
      }));
    return JSON.parse(line) as Record<string, unknown>;
  };
}

/** Writes bytes the child never reads, kills it with SIGKILL, and requires that our side is reset. */
async function expectResetOnKill(child: ChildProcess, socket: net.Socket, end: Promise<PeerEnd>): Promise<void> {
  socket.write('data the peer never reads');
  await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGKILL');
  expect((await end).first).toBe('ECONNRESET');
}

/**
 * Requires that the child, which ends its socket itself and exits at 'finish', sent a FIN and no
 * RST behind it. Node stops reading at the FIN, so a RST behind it raises no error here: the
 * kernel tells. Without a RST our socket waits in CLOSE-WAIT for its own close; a RST closes it.
 * `ssFilter` picks our socket (`sport = :N` or `dport = :N`).
 */
async function expectFinOnEnd(child: ChildProcess, end: Promise<PeerEnd>, ssFilter: string): Promise<void> {
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code).toBe(0);
  await new Promise((r) => setTimeout(r, 200));
  const waiting = execFileSync('ss', ['-tnH', 'state', 'close-wait', `( ${ssFilter} )`], { encoding: 'utf8' }).trim();
  expect(waiting.split('\n').filter(Boolean), 'our socket still in CLOSE-WAIT (no RST after the FIN)').toHaveLength(1);
  expect(await end).toEqual({ first: 'end' });
}

describe.skipIf(!guard.run)('reset on crash (SO_LINGER 0 on relayed sockets)', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  const start = (port: number, mode: 'wait' | 'end'): { child: ChildProcess; next: () => Promise<Record<string, unknown>> } => {
    const child = spawn(process.execPath, [CHILD, String(port), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    return { child, next: childLines(child) };
  };

  it('kill -9 of the process holding an armed socket resets the peer', async () => {
    const srv = await serverSide();
    try {
      const { child, next } = start(srv.port, 'wait');
      const socket = await srv.accepted;
      const end = watchEnd(socket, 300);
      expect(await next()).toEqual({ armed: true, lingerCalls: 1 });
      await expectResetOnKill(child, socket, end);
    } finally {
      srv.close();
    }
  });

  it('an armed socket the process ends itself ends with a FIN, no reset, even if the process exits at once', async () => {
    const srv = await serverSide();
    try {
      const { child, next } = start(srv.port, 'end');
      const socket = await srv.accepted;
      // The server does not end its side before the child exits: the child's socket is closed in
      // FIN_WAIT2, where lingering still on would reset it.
      const end = watchEnd(socket, 500);
      expect(await next()).toEqual({ armed: true, lingerCalls: 1 });
      await expectFinOnEnd(child, end, `sport = :${srv.port}`);
    } finally {
      srv.close();
    }
  });

});
