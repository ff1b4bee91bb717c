/**
 * HBONE resource caps (issue #12 part 4) on a real server and pool on loopback:
 * - header size: a CONNECT header list over maxHeaderListBytes is answered 431 and reported to
 *   onOverload; one under it still tunnels;
 * - concurrent streams: the server advertises maxConcurrentStreams and the pool, having read it,
 *   opens another connection instead of a stream the server would refuse;
 * - pending CONNECTs: beyond maxPendingConnects per destination the pool fails at once with
 *   HbonePoolOverloadedError, and serves again once the waiting ones are answered.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { HboneRefusedError } from '../../src/hbone/client.js';
import { formatAuthority } from '../../src/hbone/headers.js';
import { HbonePoolOverloadedError, type HboneConnectOptions } from '../../src/hbone/pool.js';
import { HboneServer, type HboneConnectResult, type HboneOverload, type HboneServerOptions } from '../../src/hbone/server.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { CLIENT_ID, connectUpstream, SERVER_URI, startHbone, type HboneFixture } from '../helpers/hbone.js';

let f: HboneFixture | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
});

function request(fx: HboneFixture, headers: HboneConnectOptions['headers'] = {}): HboneConnectOptions {
  return { sourceIdentity: CLIENT_ID, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: fx.port }, authority: formatAuthority('127.0.0.1', fx.upstreamPort), headers };
}

/** The fixture's server replaced by one with `extra` options (the listener hands sockets to f.server). */
function replaceServer(fx: HboneFixture, extra: Partial<HboneServerOptions>): void {
  fx.server.close();
  fx.server = new HboneServer({
    trustDomains: () => ['cluster.local'],
    secureContextFor: (a) => fx.contextFor(a),
    onConnect: (req) => fx.onConnect(req),
    logger: silentLogger,
    ...extra,
  });
}

async function echoes(stream: Duplex, text: string): Promise<void> {
  stream.write(text);
  const [chunk] = (await once(stream, 'data')) as [Buffer];
  expect(chunk.toString()).toBe(text);
}

describe('HBONE header size cap', () => {
  it('answers 431 to a CONNECT header list over the cap, reports it, and tunnels one under it', async () => {
    f = await startHbone();
    const overloads: HboneOverload[] = [];
    replaceServer(f, { maxHeaderListBytes: 2048, onOverload: (o) => overloads.push(o) });
    const pool = f.pool();
    const err = await pool.connect(request(f, { baggage: `k=${'v'.repeat(3000)}` })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HboneRefusedError);
    expect((err as HboneRefusedError).status).toBe(431);
    expect(overloads).toEqual([{ reason: 'header_size', limit: 2048, peerIdentity: 'spiffe://cluster.local/ns/frontend/sa/client', localAddress: '127.0.0.1' }]);
    expect(f.server.stats().refusedStreams).toBe(1);
    const ok = await pool.connect(request(f, { baggage: `k=${'v'.repeat(1000)}` }));
    await echoes(ok, 'under the cap');
    ok.end();
    expect(overloads).toHaveLength(1);
  });
});

describe('HBONE concurrent streams cap', () => {
  it('advertises maxConcurrentStreams; the pool opens another connection rather than exceed it', async () => {
    f = await startHbone();
    replaceServer(f, { maxConcurrentStreams: 2 });
    const pool = f.pool();
    const first = await pool.connect(request(f));
    await echoes(first, 'one');
    const second = await pool.connect(request(f));
    await echoes(second, 'two');
    expect(pool.stats().dials).toBe(1);
    const third = await pool.connect(request(f));
    await echoes(third, 'three');
    expect(pool.stats().dials).toBe(2);
    expect(f.server.stats()).toMatchObject({ sessions: 2, streams: 3, refusedStreams: 0 });
    for (const s of [first, second, third]) s.end();
  });
});

describe('HBONE pool pending CONNECT cap', () => {
  it('fails the CONNECT beyond maxPendingConnects at once with a coded error, and recovers once answered', async () => {
    f = await startHbone();
    const fx = f;
    const held: Array<() => void> = [];
    // The destination answers only when released: its CONNECTs stay pending in the pool.
    fx.onConnect = (req) => new Promise<HboneConnectResult>((resolve) => held.push(() => void connectUpstream(req).then(resolve)));
    const pool = fx.pool({ maxPendingConnects: 2 });
    const waiting = [pool.connect(request(fx)), pool.connect(request(fx))];
    const started = Date.now();
    const err = await pool.connect(request(fx)).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err).toBeInstanceOf(HbonePoolOverloadedError);
    expect(err).toMatchObject({ limit: 2, peer: `127.0.0.1:${fx.port}` });
    expect((err as HbonePoolOverloadedError).describe()).toContain('AMESH_HBONE_MAX_PENDING_CONNECTS');
    // Both waiting CONNECTs reached the server; the refused one never did.
    await eventually(() => expect(held).toHaveLength(2), { timeoutMs: 5000 });
    expect(fx.requests).toHaveLength(2);
    // Answer the waiting ones: the pool is below the cap again.
    for (const release of held.splice(0)) release();
    const streams = await Promise.all(waiting);
    fx.onConnect = connectUpstream;
    const again = await pool.connect(request(fx));
    await echoes(again, 'recovered');
    for (const s of [...streams, again]) s.end();
  });
});
