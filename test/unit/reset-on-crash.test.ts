import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { createFakeNativeBinding } from '../../src/native/fake.js';
import { armListenerResetOnCrash, armResetOnCrash } from '../../src/node-agent/proxy/reset-on-crash.js';

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

  describe('armListenerResetOnCrash', () => {
    /** A net.Server with a libuv-like listening handle carrying `fd`. */
    const serverWithFd = (fd: number): net.Server => {
      const server = new net.Server();
      (server as unknown as { _handle: { fd: number } })._handle = { fd };
      return server;
    };
    /** A socket as `server` would hand it over (Node sets `server` on accepted sockets). */
    const acceptedBy = (server: net.Server, fd: number): net.Socket => Object.assign(socketWithFd(fd), { server });

    it('arms the listener once; its accepted sockets are not armed again but are still disarmed at finish', () => {
      const native = createFakeNativeBinding();
      const calls: Array<[number, number | null]> = [];
      const spy = { setSocketLinger: (fd: number, s: number | null) => (calls.push([fd, s]), native.setSocketLinger(fd, s)) };
      const server = serverWithFd(30);
      expect(armListenerResetOnCrash(spy, server)).toBe(true);
      const socket = acceptedBy(server, 31);
      expect(armResetOnCrash(spy, socket)).toBe(true);
      expect(calls).toEqual([[30, 0]]);
      socket.emit('finish');
      expect(calls).toEqual([
        [30, 0],
        [31, null],
      ]);
      socket.destroy();
    });

    it('a socket of another listener is armed itself', () => {
      const native = createFakeNativeBinding();
      armListenerResetOnCrash(native, serverWithFd(30));
      const socket = acceptedBy(serverWithFd(32), 33);
      expect(armResetOnCrash(native, socket)).toBe(true);
      expect(native.state.linger.get(33)).toBe(0);
      socket.destroy();
    });

    it('a socket that arrived armed but has already ended its writing is disarmed at once (the kernel default, a FIN)', () => {
      const native = createFakeNativeBinding();
      const server = serverWithFd(30);
      armListenerResetOnCrash(native, server);
      const socket = acceptedBy(server, 34);
      native.setSocketLinger(34, 0); // what the kernel copied from the listener
      Object.defineProperty(socket, 'writableEnded', { value: true });
      expect(armResetOnCrash(native, socket)).toBe(false);
      expect(native.state.linger.get(34)).toBeNull();
      socket.destroy();
    });

    it('a listener the kernel refuses to arm is not recorded: its sockets are armed one by one', () => {
      const native = createFakeNativeBinding();
      native.failNext('setSocketLinger', 'EBADF');
      const server = serverWithFd(30);
      expect(armListenerResetOnCrash(native, server)).toBe(false);
      const socket = acceptedBy(server, 35);
      expect(armResetOnCrash(native, socket)).toBe(true);
      expect(native.state.linger.get(35)).toBe(0);
      socket.destroy();
    });

    it('a server without a descriptor is left alone', () => {
      const native = createFakeNativeBinding();
      expect(armListenerResetOnCrash(native, new net.Server())).toBe(false);
      expect(native.state.linger.size).toBe(0);
    });
  });
});
