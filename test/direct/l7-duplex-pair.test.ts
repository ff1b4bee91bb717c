// The in-memory duplex pair the waypoint feeds to Node's HTTP servers, and the sniffer that
// reads the first bytes off it and puts them back.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { duplexPair } from '../../src/l7/duplex-pair.js';
import { sniff } from '../../src/l7/inbound.js';

describe('duplexPair', () => {
  it('carries bytes both ways and turns end() into the other side’s EOF (half-close)', async () => {
    const [a, b] = duplexPair();
    const got = once(b, 'data');
    a.write('hello');
    expect(String((await got)[0])).toBe('hello');
    a.end();
    b.resume();
    await once(b, 'end');
    // b can still write back after a half-closed.
    const back = once(a, 'data');
    b.write('still open');
    expect(String((await back)[0])).toBe('still open');
  });

  it('applies back-pressure: a write completes only once the other side reads', async () => {
    const [a, b] = duplexPair();
    let done = 0;
    for (let i = 0; i < 100; i++) a.write(Buffer.alloc(64 * 1024), () => done++);
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBeLessThan(5);
    expect(a.writableLength).toBeGreaterThan(5 * 64 * 1024);
    b.resume();
    await once(a, 'drain');
    expect(done).toBeGreaterThan(90);
  });

  it('hands corked writes (an HTTP head and its body) to the other end as one chunk', async () => {
    const [a, b] = duplexPair();
    const chunks: string[] = [];
    b.on('data', (c: Buffer) => chunks.push(c.toString()));
    a.cork();
    a.write('HTTP/1.1 200 OK\r\n\r\n');
    a.write(Buffer.from('body'));
    process.nextTick(() => a.uncork());
    a.end();
    await once(b, 'end');
    expect(chunks).toEqual(['HTTP/1.1 200 OK\r\n\r\nbody']);
  });

  it('destroying one side destroys the other with a premature-close error', async () => {
    const [a, b] = duplexPair();
    const err = once(b, 'error');
    a.destroy();
    expect(((await err)[0] as Error & { code?: string }).code).toBe('ERR_STREAM_PREMATURE_CLOSE');
    expect(b.destroyed).toBe(true);
  });

  it('carries socket-like addresses', () => {
    const [, b] = duplexPair({ b: { remoteAddress: '10.0.0.7', remotePort: 1234 } });
    expect([b.remoteAddress, b.remotePort]).toEqual(['10.0.0.7', 1234]);
  });
});

describe('sniff', () => {
  it('decides on the first bytes and puts them back for the next reader', async () => {
    const [a, b] = duplexPair();
    const decided = sniff(b, undefined);
    a.write('GET / HT');
    a.write('TP/1.1\r\nhost: x\r\n\r\n');
    const r = await decided;
    expect(r).toMatchObject({ protocol: 'http1', ended: false });
    b.resume();
    const [chunk] = (await once(b, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  });

  it('calls a silent client TCP after the timeout (server-first protocols)', async () => {
    const [, b] = duplexPair();
    expect(await sniff(b, 20)).toMatchObject({ protocol: 'tcp', ended: false, head: Buffer.alloc(0) });
  });

  it('a client that ends early is TCP, with its bytes handed back', async () => {
    const [a, b] = duplexPair();
    const decided = sniff(b, undefined);
    a.end('GE');
    expect(await decided).toMatchObject({ protocol: 'tcp', ended: true, head: Buffer.from('GE') });
  });
});
