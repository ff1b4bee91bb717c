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
  it('sets linger 0 when armed and turns it off before the socket’s own end()', () => {
    const native = createFakeNativeBinding();
    const socket = socketWithFd(41);
    const calls: Array<number | null> = [];
    const spy = { setSocketLinger: (fd: number, s: number | null) => (calls.push(s), native.setSocketLinger(fd, s)) };
    expect(armResetOnCrash(spy, socket)).toBe(true);
    expect(native.state.linger.get(41)).toBe(0);
    (socket as unknown as { _handle: null })._handle = null;
    // end() on a never-connected socket: only the disarm matters here.
    socket.on('error', () => undefined);
    socket.end();
    expect(calls).toEqual([0, null]);
    expect(native.state.linger.get(41)).toBeNull();
    socket.destroy();
  });

  it('leaves a socket without a descriptor alone', () => {
    const native = createFakeNativeBinding();
    const socket = new net.Socket();
    expect(armResetOnCrash(native, socket)).toBe(false);
    expect(native.state.linger.size).toBe(0);
    socket.destroy();
  });

  it('reports false and keeps end() untouched when the kernel refuses the option', () => {
    const native = createFakeNativeBinding();
    native.failNext('setSocketLinger', 'EBADF');
    const socket = socketWithFd(7);
    const end = socket.end;
    expect(armResetOnCrash(native, socket)).toBe(false);
    expect(socket.end).toBe(end);
    socket.destroy();
  });

  it('does not touch the descriptor of a destroyed socket at end()', () => {
    const native = createFakeNativeBinding();
    const socket = socketWithFd(9);
    expect(armResetOnCrash(native, socket)).toBe(true);
    socket.destroy();
    socket.end();
    expect(native.state.linger.get(9)).toBe(0);
  });
});
