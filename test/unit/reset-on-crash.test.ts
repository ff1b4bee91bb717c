import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { createFakeNativeBinding } from '../../src/native/fake.js';
import { armResetOnCrash } from '../../src/node-agent/proxy/reset-on-crash.js';

/** A net.Socket with a libuv-like handle carrying `fd` (never connected; end() is harmless). */
function socketWithFd(fd: number): net.Socket {
  const socket = new net.Socket();
  (socket as unknown as { _handle: { fd: number; close: (done?: () => void) => void } })._handle = { fd, close: (done) => done?.() };
  return socket;
}

describe('armResetOnCrash', () => {
  it('sets linger 0 when armed and turns it off once the socket’s own FIN is out (finish)', () => {
    const native = createFakeNativeBinding();
    const socket = socketWithFd(41);
    const calls: Array<number | null> = [];
    const spy = { setSocketLinger: (fd: number, s: number | null) => (calls.push(s), native.setSocketLinger(fd, s)) };
    expect(armResetOnCrash(spy, socket)).toBe(true);
    expect(native.state.linger.get(41)).toBe(0);
    // What Node emits after end()'s shutdown completed, before it closes the descriptor.
    socket.emit('finish');
    expect(calls).toEqual([0, null]);
    expect(native.state.linger.get(41)).toBeNull();
    socket.destroy();
  });

  it('shares one finish listener among the sockets of a binding', () => {
    const native = createFakeNativeBinding();
    const [a, b] = [socketWithFd(5), socketWithFd(6)];
    armResetOnCrash(native, a);
    armResetOnCrash(native, b);
    expect(a.listeners('finish').at(-1)).toBe(b.listeners('finish').at(-1));
    a.destroy();
    b.destroy();
  });

  it('leaves a socket without a descriptor alone', () => {
    const native = createFakeNativeBinding();
    const socket = new net.Socket();
    expect(armResetOnCrash(native, socket)).toBe(false);
    expect(native.state.linger.size).toBe(0);
    socket.destroy();
  });

  it('reports false and adds no listener when the kernel refuses the option', () => {
    const native = createFakeNativeBinding();
    native.failNext('setSocketLinger', 'EBADF');
    const socket = socketWithFd(7);
    const listeners = socket.listenerCount('finish');
    expect(armResetOnCrash(native, socket)).toBe(false);
    expect(socket.listenerCount('finish')).toBe(listeners);
    socket.destroy();
  });

  it('does not touch a socket whose descriptor is gone at finish', () => {
    const native = createFakeNativeBinding();
    const socket = socketWithFd(9);
    expect(armResetOnCrash(native, socket)).toBe(true);
    (socket as unknown as { _handle: null })._handle = null;
    socket.emit('finish');
    expect(native.state.linger.get(9)).toBe(0);
    socket.destroy();
  });
});
