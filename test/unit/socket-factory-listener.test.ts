import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { createFakeNativeBinding } from '../../src/native/fake.js';
import { plainSocketFactory, transparentSocketFactory } from '../../src/node-agent/proxy/socket-factory.js';

/** A server whose listening handle answers setNoDelay with `result` (0 or a negative errno) and records the calls. */
function serverAnswering(result: number, fd = 40): { server: net.Server; calls: boolean[] } {
  const calls: boolean[] = [];
  const server = net.createServer({ noDelay: true });
  (server as unknown as { _handle: { fd: number; setNoDelay: (on: boolean) => number } })._handle = { fd, setNoDelay: (on) => (calls.push(on), result) };
  return { server, calls };
}

describe('SocketFactory.tuneListener', () => {
  it('sets TCP_NODELAY on the listener and stops the per-socket setNoDelay', () => {
    const { server, calls } = serverAnswering(0);
    plainSocketFactory.tuneListener(server, { resetOnCrash: true });
    expect(calls).toEqual([true]);
    expect((server as net.Server & { noDelay: boolean }).noDelay).toBe(false);
  });

  it('keeps the per-socket setNoDelay when the listener refuses it', () => {
    const { server } = serverAnswering(-22);
    plainSocketFactory.tuneListener(server, { resetOnCrash: false });
    expect((server as net.Server & { noDelay: boolean }).noDelay).toBe(true);
  });

  it('with capture: arms the listener only when asked (plain TCP listeners, not HBONE)', () => {
    const native = createFakeNativeBinding();
    const factory = transparentSocketFactory(native, 0x111);
    factory.tuneListener(serverAnswering(0, 41).server, { resetOnCrash: false });
    expect(native.state.linger.has(41)).toBe(false);
    factory.tuneListener(serverAnswering(0, 42).server, { resetOnCrash: true });
    expect(native.state.linger.get(42)).toBe(0);
  });
});
