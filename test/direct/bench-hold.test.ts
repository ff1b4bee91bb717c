// The memory scenario's hold server and client (bench/load/hold.ts) on loopback: N connections
// come up end to end with bounded concurrency and stay held until released; a refused port, a
// server that accepts but never answers (a proxy that accepted, with no tunnel behind it) and a
// connection closed while held are each reported, never counted as held.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHoldServer, holdConnections, HoldError } from '../../bench/load/hold.js';
import { eventually } from '../helpers/eventually.js';

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

describe('bench hold server and client', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function holdServer(): Promise<{ port: number; held: Set<Socket> }> {
    const { server, held } = createHoldServer();
    const port = await listen(server);
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of held) s.destroy();
          server.close(() => resolve());
        }),
    );
    return { port, held };
  }

  it('holds N connections answered end to end, then releases them all', async () => {
    const { port, held } = await holdServer();
    let accepted = 0;
    const connections = await holdConnections({ host: '127.0.0.1', port, connections: 150, concurrency: 16, timeoutMs: 10_000 });
    cleanups.push(() => void connections.release());
    accepted = held.size;
    expect(connections.connections).toBe(150);
    expect(accepted).toBe(150);
    expect(connections.closedWhileHeld()).toBe(0);
    expect(connections.release()).toBe(0);
    await eventually(() => expect(held.size).toBe(0), { timeoutMs: 5000, description: 'the server sees every connection closed' });
  });

  it('counts a held connection the server closes', async () => {
    const { port, held } = await holdServer();
    const connections = await holdConnections({ host: '127.0.0.1', port, connections: 5, concurrency: 5, timeoutMs: 10_000 });
    cleanups.push(() => void connections.release());
    [...held][0]!.destroy();
    await eventually(() => expect(connections.closedWhileHeld()).toBe(1), { timeoutMs: 5000, description: 'the client notices the closed connection' });
    expect(connections.release()).toBe(1);
  });

  it('fails with the error and the count that was up when a connection is refused', async () => {
    const probe = createServer();
    const port = await listen(probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await holdConnections({ host: '127.0.0.1', port, connections: 3, concurrency: 3, timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HoldError);
    expect((err as HoldError).message).toMatch(/ECONNREFUSED/);
    expect((err as HoldError).up).toBe(0);
  });

  it('gives up at the deadline when connections are accepted but never answered, closing them', async () => {
    const silent = new Set<Socket>();
    const server = createServer((s) => {
      // Reads (so it sees the client's FIN) but never answers.
      s.resume();
      silent.add(s);
      s.on('close', () => silent.delete(s));
    });
    const port = await listen(server);
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const err = await holdConnections({ host: '127.0.0.1', port, connections: 4, concurrency: 2, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HoldError);
    expect((err as HoldError).message).toBe(`only 0 of 4 connections to 127.0.0.1:${port} came up within 0.3 s`);
    await eventually(() => expect(silent.size).toBe(0), { timeoutMs: 5000, description: 'the client closes what it opened' });
    // A stall bound fails before the overall deadline.
    const stalled = await holdConnections({ host: '127.0.0.1', port, connections: 4, concurrency: 2, timeoutMs: 10_000, stallMs: 200 }).catch((e: unknown) => e);
    expect((stalled as HoldError).message).toBe(`no connection to 127.0.0.1:${port} came up for 0.2 s (0 of 4 were up)`);
  });
});
