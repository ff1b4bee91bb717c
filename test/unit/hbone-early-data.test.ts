/**
 * EarlyData (src/hbone/early-data.ts) over in-memory streams: what it forwards before the 200,
 * what it keeps for a retried CONNECT, its cap, and that the client is never left flowing
 * without an owner.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EarlyData } from '../../src/hbone/early-data.js';

/** A stand-in for a CONNECT stream: records what was written and whether it was ended. */
function sink(): { stream: PassThrough; text: () => string; ended: () => boolean } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  let ended = false;
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => (ended = true));
  return { stream, text: () => Buffer.concat(chunks).toString(), ended: () => ended };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('EarlyData', () => {
  it('sends what the client wrote before and after attach, and counts it', async () => {
    const client = new PassThrough();
    client.pause();
    client.write('GET / HTTP/1.1\r\n');
    const early = new EarlyData(client, 65_536);
    const s = sink();
    early.attach(s.stream);
    client.write('Host: a\r\n\r\n');
    await tick();
    expect(s.text()).toBe('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(early.bytes).toBe(27);
    expect(s.ended()).toBe(false);
  });

  it('replays every byte on the stream of a retried CONNECT, then keeps forwarding there', async () => {
    const client = new PassThrough();
    const early = new EarlyData(client, 65_536);
    const first = sink();
    early.attach(first.stream);
    client.write('one ');
    await tick();
    early.detach();
    client.write('two ');
    await tick();
    expect(first.text()).toBe('one ');
    const second = sink();
    early.attach(second.stream);
    client.write('three');
    await tick();
    expect(second.text()).toBe('one two three');
    expect(early.bytes).toBe(13);
  });

  it('stops reading at the cap: the rest stays in the client for the relay', async () => {
    const client = new PassThrough();
    const early = new EarlyData(client, 8);
    const s = sink();
    early.attach(s.stream);
    client.write('12345678');
    await tick();
    client.write('more');
    await tick();
    expect(s.text()).toBe('12345678');
    expect(client.isPaused()).toBe(true);
    expect(early.handOver()).toBe(8);
    expect((client.read() as Buffer).toString()).toBe('more');
  });

  it('sends the client half-close as the end of the stream, and replays it', async () => {
    const client = new PassThrough();
    const early = new EarlyData(client, 65_536);
    const first = sink();
    early.attach(first.stream);
    client.end('bye');
    await tick();
    expect(first.text()).toBe('bye');
    expect(first.ended()).toBe(true);
    early.detach();
    const second = sink();
    early.attach(second.stream);
    await tick();
    expect(second.text()).toBe('bye');
    expect(second.ended()).toBe(true);
    expect(early.ended).toBe(true);
  });

  it('hands the client over paused and without its data listener: later bytes wait for the relay', async () => {
    const client = new PassThrough();
    const early = new EarlyData(client, 65_536);
    const s = sink();
    early.attach(s.stream);
    client.write('a');
    await tick();
    expect(early.handOver()).toBe(1);
    expect(client.listenerCount('data')).toBe(0);
    expect(client.listenerCount('error')).toBe(0);
    client.write('b');
    await tick();
    expect(s.text()).toBe('a');
    expect((client.read() as Buffer).toString()).toBe('b');
  });

  it('absorbs a client error until the hand-over (the relay or the refusal deals with the dead socket)', async () => {
    const client = new PassThrough();
    const early = new EarlyData(client, 65_536);
    early.attach(sink().stream);
    client.destroy(new Error('ECONNRESET'));
    await tick();
    expect(client.destroyed).toBe(true);
  });
});
