import { EventEmitter } from 'node:events';
import type http2 from 'node:http2';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HBONE_H2_SETTINGS, HBONE_TLS, hboneSettings, startKeepalive } from '../../src/hbone/settings.js';

const MiB = 1024 * 1024;

describe('HBONE_H2_SETTINGS', () => {
  it('holds the numbers DESIGN §4 asks for', () => {
    expect(HBONE_H2_SETTINGS).toMatchObject({
      streamWindowBytes: 4 * MiB,
      connectionWindowBytes: 16 * MiB,
      maxFrameSize: 1 * MiB,
      serverMaxConcurrentStreams: 200,
      pingIntervalMs: 10_000,
      pingTimeoutMs: 20_000,
      maxStreamsPerConnection: 100,
      idleTimeoutMs: 5 * 60_000,
    });
    expect(HBONE_H2_SETTINGS.maxSessionMemoryMb).toBeGreaterThan(10);
    expect(Object.isFrozen(HBONE_H2_SETTINGS)).toBe(true);
    expect(HBONE_TLS).toMatchObject({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384' });
    expect([...HBONE_TLS.alpnProtocols]).toEqual(['h2']);
  });

  it('advertises the windows, frame size and no push; only the server limits streams', () => {
    expect(hboneSettings('server')).toEqual({ initialWindowSize: 4 * MiB, maxFrameSize: 1 * MiB, enablePush: false, maxConcurrentStreams: 200 });
    expect(hboneSettings('client')).toEqual({ initialWindowSize: 4 * MiB, maxFrameSize: 1 * MiB, enablePush: false });
  });
});

/** Just enough of an Http2Session for the keepalive: ping(cb), destroy(), close events. */
class FakeSession extends EventEmitter {
  pings = 0;
  answer = true;
  destroyed = false;
  closed = false;
  ping(cb: (err: Error | null, duration: number, payload: Buffer) => void): boolean {
    this.pings++;
    if (this.answer) setTimeout(() => cb(null, 1, Buffer.alloc(8)), 5);
    return true;
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

describe('startKeepalive', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('pings every 10 s and keeps a responsive session', async () => {
    const s = new FakeSession();
    startKeepalive(s as unknown as http2.Http2Session);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(s.pings).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.pings).toBe(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.pings).toBe(7);
    expect(s.destroyed).toBe(false);
  });

  it('destroys the session when a PING is not answered within 20 s', async () => {
    const s = new FakeSession();
    s.answer = false;
    const onTimeout = vi.fn();
    startKeepalive(s as unknown as http2.Http2Session, { onTimeout });
    await vi.advanceTimersByTimeAsync(10_000); // first ping sent
    expect(s.pings).toBe(1);
    await vi.advanceTimersByTimeAsync(19_999);
    expect(s.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(1); // 20 s after the unanswered ping (checked on the 10 s tick)
    expect(s.destroyed).toBe(true);
    expect(onTimeout).toHaveBeenCalledTimes(1);
    expect(s.pings).toBe(1); // no new pings while one is outstanding
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stops with the session', async () => {
    const s = new FakeSession();
    startKeepalive(s as unknown as http2.Http2Session);
    s.emit('close');
    expect(vi.getTimerCount()).toBe(0);
  });
});
