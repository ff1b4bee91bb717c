// The addon's socket calls and connectOutbound, in this process (root; loopback only):
// marks are really set, fds wrap into working Node sockets, failures are coded.
import net from 'node:net';
import { once } from 'node:events';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { connectOutbound, loadNativeBinding, type NativeBinding } from '../../src/native/index.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('native sockets (SO_MARK, IP_TRANSPARENT)');

const MARK = 0x539;

function fdOf(socket: net.Socket): number {
  // libuv's TCP handle exposes the fd on Unix.
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

async function echoServer(host: string): Promise<{ server: net.Server; port: number; peers: string[] }> {
  const peers: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    peers.push(s.remoteAddress ?? '');
    s.on('data', (d) => s.write(Buffer.concat([Buffer.from('echo:'), d])));
    s.on('end', () => s.end());
  });
  server.listen(0, host);
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, peers };
}

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
describe.skipIf(!guard.run)('native sockets', () => {
  let native: NativeBinding;
  const cleanups: Array<() => void> = [];

  afterEach(() => {
    for (const c of cleanups.splice(0)) {
      try {
        c();
      } catch {
        // already closed
      }
    }
  });
  afterAll(() => {
    for (const c of cleanups.splice(0)) c();
  });

  it('loads the addon', () => {
    native = loadNativeBinding();
    expect(typeof native.createTransparentListener).toBe('function');
    expect(loadNativeBinding()).toBe(native);
  });

  it.each([
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const)('createTransparentListener(IPv%d) gives a marked fd that net.Server can listen on', async (family, address) => {
    const fd = native.createTransparentListener(family, address, 0, MARK, 16);
    expect(native.getSocketMark(fd)).toBe(MARK);
    const server = net.createServer((s) => s.end('hi'));
    cleanups.push(() => server.close());
    server.listen({ fd });
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    expect(port).toBeGreaterThan(0);
    const client = net.connect({ host: address, port });
    const [data] = (await once(client, 'data')) as [Buffer];
    expect(data.toString()).toBe('hi');
    client.destroy();
  });

  it('a second listener on the same address and port fails with EADDRINUSE from bind, fd closed', () => {
    const fd = native.createTransparentListener(4, '127.0.0.1', 0, MARK, 16);
    cleanups.push(() => native.closeFd(fd));
    const server = net.createServer();
    server.listen({ fd });
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    let err: (Error & { errno?: number; code?: string; syscall?: string }) | undefined;
    try {
      native.createTransparentListener(4, '127.0.0.1', port, MARK, 16);
    } catch (e) {
      err = e as typeof err;
    }
    expect(err).toBeDefined();
    expect(err).toMatchObject({ code: 'EADDRINUSE', errno: 98, syscall: 'bind' });
    expect(err!.message).toMatch(new RegExp(`^bind\\(127\\.0\\.0\\.1:${port}\\): `));
  });

  it.each([
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const)('connectOutbound(IPv%d): marked before connect, data flows both ways with on(data)', async (family, host) => {
    const { server, port } = await echoServer(host);
    cleanups.push(() => server.close());
    const socket = await connectOutbound(native, { family, mark: MARK, bindAddress: null, host, port, timeoutMs: 2000 });
    cleanups.push(() => socket.destroy());
    expect(native.getSocketMark(fdOf(socket))).toBe(MARK);
    expect(socket.remotePort).toBe(port);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.end('ping');
    await once(socket, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('echo:ping');
  });

  it('connectOutbound sockets pipe (relay style) and stay half-open', async () => {
    const { server, port } = await echoServer('127.0.0.1');
    cleanups.push(() => server.close());
    const socket = await connectOutbound(native, { family: 4, mark: MARK, bindAddress: null, host: '127.0.0.1', port, timeoutMs: 2000 });
    cleanups.push(() => socket.destroy());
    expect(socket.allowHalfOpen).toBe(true);
    const { PassThrough } = await import('node:stream');
    const sink = new PassThrough();
    const got: Buffer[] = [];
    sink.on('data', (d: Buffer) => got.push(d));
    socket.pipe(sink);
    socket.write('a');
    socket.write('b');
    socket.end();
    await once(sink, 'end');
    expect(Buffer.concat(got).toString()).toMatch(/^echo:a(echo:)?b$/);
  });

  it('connectOutbound with a bind address sends from it (IP_TRANSPARENT + bind)', async () => {
    const { server, port, peers } = await echoServer('127.0.0.1');
    cleanups.push(() => server.close());
    const socket = await connectOutbound(native, { family: 4, mark: MARK, bindAddress: '127.0.0.9', host: '127.0.0.1', port, timeoutMs: 2000 });
    cleanups.push(() => socket.destroy());
    expect(socket.localAddress).toBe('127.0.0.9');
    socket.write('x');
    await once(socket, 'data');
    expect(peers).toEqual(['127.0.0.9']);
  });

  it('connectOutbound rejects ECONNREFUSED as AMESH_UPSTREAM_CONNECT_FAILED', async () => {
    const { server, port } = await echoServer('127.0.0.1');
    await new Promise((r) => server.close(r));
    const err = await connectOutbound(native, { family: 4, mark: MARK, bindAddress: null, host: '127.0.0.1', port, timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(isAmeshError(err, 'AMESH_UPSTREAM_CONNECT_FAILED')).toBe(true);
    expect(((err as Error).cause as { code?: string }).code).toBe('ECONNREFUSED');
    expect((err as Error).message).toMatch(`127.0.0.1:${port}`);
  });

  it('connectOutbound gives up after timeoutMs', async () => {
    // A listener whose accept queue is full: further SYNs are dropped, so connect hangs.
    // Learn a free port through a throw-away listener (closing the server closes its fd).
    const fd = native.createTransparentListener(4, '127.0.0.1', 0, 0, 1);
    const probe = net.createServer();
    const port = await new Promise<number>((resolve) => {
      probe.listen({ fd }, () => {
        resolve((probe.address() as net.AddressInfo).port);
        probe.close();
      });
    });
    const listenerFd = native.createTransparentListener(4, '127.0.0.1', port, 0, 1);
    cleanups.push(() => native.closeFd(listenerFd));
    const fillers = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')];
    for (const f of fillers) f.on('error', () => {});
    cleanups.push(() => fillers.forEach((f) => f.destroy()));
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const err = await connectOutbound(native, { family: 4, mark: MARK, bindAddress: null, host: '127.0.0.1', port, timeoutMs: 300 }).then(
      (s) => {
        s.destroy();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(isAmeshError(err, 'AMESH_UPSTREAM_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/timed out .* after 300 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('validates arguments in TypeScript before the addon sees them', () => {
    expect(() => native.createTransparentListener(5 as 4, '127.0.0.1', 0, MARK, 16)).toThrow(RangeError);
    expect(() => native.createTransparentListener(4, '::1', 0, MARK, 16)).toThrow(TypeError);
    expect(() => native.createTransparentListener(4, '127.0.0.1', 70000, MARK, 16)).toThrow(RangeError);
    expect(() => native.createOutboundSocket(6, -1, null)).toThrow(RangeError);
    expect(() => native.getSocketMark(-1)).toThrow(RangeError);
    expect(() => native.ifNameToIndex('x'.repeat(16))).toThrow(TypeError);
  });

  it('ifNameToIndex and closeFd report kernel errors with errno/code/syscall', () => {
    expect(native.ifNameToIndex('lo')).toBeGreaterThan(0);
    expect(() => native.ifNameToIndex('amesh-nope0')).toThrow(expect.objectContaining({ code: 'ENODEV', syscall: 'if_nametoindex' }));
    const fd = native.createOutboundSocket(4, 0, null);
    expect(native.getSocketMark(fd)).toBe(0);
    native.closeFd(fd);
    expect(() => native.getSocketMark(fd)).toThrow(expect.objectContaining({ code: 'EBADF', errno: 9, syscall: 'getsockopt' }));
  });
});
