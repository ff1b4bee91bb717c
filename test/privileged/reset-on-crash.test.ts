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

async function childArmed(child: ChildProcess): Promise<boolean> {
  let out = '';
  for await (const chunk of child.stdout as NodeJS.ReadableStream) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  return (JSON.parse(out.split('\n')[0] ?? '{}') as { armed?: boolean }).armed === true;
}

describe.skipIf(!guard.run)('reset on crash (SO_LINGER 0 on relayed sockets)', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  const start = (port: number, mode: 'wait' | 'end'): ChildProcess => {
    const child = spawn(process.execPath, [CHILD, String(port), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    return child;
  };

  it('kill -9 of the process holding an armed socket resets the peer', async () => {
    const srv = await serverSide();
    try {
      const child = start(srv.port, 'wait');
      const socket = await srv.accepted;
      const end = watchEnd(socket, 300);
      expect(await childArmed(child)).toBe(true);
      socket.write('data the peer never reads');
      await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGKILL');
      expect((await end).first).toBe('ECONNRESET');
    } finally {
      srv.close();
    }
  });

  it('an armed socket the process ends itself ends with a FIN, no reset, even if the process exits at once', async () => {
    const srv = await serverSide();
    try {
      const child = start(srv.port, 'end');
      const socket = await srv.accepted;
      // The server does not end its side before the child exits: the child's socket is closed in
      // FIN_WAIT2, where lingering still on would reset it.
      const end = watchEnd(socket, 500);
      expect(await childArmed(child)).toBe(true);
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
      await new Promise((r) => setTimeout(r, 200));
      // Node stops reading at the FIN, so a RST behind it raises no error here: the kernel tells.
      // Without a RST the server's socket waits in CLOSE-WAIT for its own close; a RST closes it.
      const waiting = execFileSync('ss', ['-tnH', 'state', 'close-wait', `( sport = :${srv.port} )`], { encoding: 'utf8' }).trim();
      expect(waiting.split('\n').filter(Boolean), 'the server socket still in CLOSE-WAIT (no RST after the FIN)').toHaveLength(1);
      expect(await end).toEqual({ first: 'end' });
    } finally {
      srv.close();
    }
  });
});
