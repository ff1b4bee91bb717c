import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type Admission } from '../../src/l7/resilience/circuit-breaker.js';

type Go = Extract<Admission, { kind: 'go' }>;
type Wait = Extract<Admission, { kind: 'wait' }>;

const go = (a: Admission): Go => {
  expect(a.kind).toBe('go');
  return a as Go;
};
const wait = (a: Admission): Wait => {
  expect(a.kind).toBe('wait');
  return a as Wait;
};

/** Whether a promise has settled after the microtasks queued so far ran. */
async function settled<T>(p: Promise<T>): Promise<{ done: boolean; value?: T }> {
  let result: { done: boolean; value?: T } = { done: false };
  void p.then((value) => (result = { done: true, value }));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return result;
}

describe('CircuitBreaker: HTTP/1.1 connection slots and the pending queue', () => {
  it('unset limits admit everything at once', () => {
    const b = new CircuitBreaker();
    for (let i = 0; i < 1000; i++) go(b.admit('http1'));
    expect(b.stats()).toMatchObject({ active: 1000, pending: 0, overflows: 0 });
  });

  it('beyond maxConnections requests wait (FIFO), beyond maxPendingRequests they overflow', async () => {
    const b = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 2 });
    const first = go(b.admit('http1'));
    const w1 = wait(b.admit('http1'));
    const w2 = wait(b.admit('http1'));
    expect(b.admit('http1')).toEqual({ kind: 'overflow', reason: 'max-pending-requests' });
    expect(b.stats()).toMatchObject({ active: 1, pending: 2, overflows: 1, connections: 1 });
    expect((await settled(w1.ready)).done).toBe(false);

    first.release();
    const got1 = await w1.ready;
    expect(got1.kind).toBe('go');
    expect((await settled(w2.ready)).done).toBe(false); // FIFO: w2 still waits
    expect(b.stats()).toMatchObject({ active: 1, pending: 1 });

    (got1 as Go).release();
    const got2 = await w2.ready;
    (got2 as Go).release();
    expect(b.stats()).toMatchObject({ active: 0, pending: 0, connections: 0, requests: 0 });
  });

  it('maxPendingRequests unset = unbounded waiting', () => {
    const b = new CircuitBreaker({ maxConnections: 1 });
    go(b.admit('http1'));
    for (let i = 0; i < 500; i++) wait(b.admit('http1'));
    expect(b.stats()).toMatchObject({ pending: 500, overflows: 0 });
  });

  it('maxPendingRequests 0: no waiting at all', () => {
    const b = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 0 });
    go(b.admit('http1'));
    expect(b.admit('http1')).toEqual({ kind: 'overflow', reason: 'max-pending-requests' });
  });

  it('a newcomer does not overtake a waiter', () => {
    const b = new CircuitBreaker({ maxConnections: 1 });
    const first = go(b.admit('http1'));
    wait(b.admit('http1'));
    first.release(); // the slot goes to the waiter
    wait(b.admit('http1'));
    expect(b.stats()).toMatchObject({ active: 1, pending: 1 });
  });

  it('a cancelled waiter leaves the queue and resolves as overflow; no slot leaks', async () => {
    const b = new CircuitBreaker({ maxConnections: 1 });
    const first = go(b.admit('http1'));
    const w1 = wait(b.admit('http1'));
    const w2 = wait(b.admit('http1'));
    w1.cancel();
    w1.cancel(); // idempotent
    expect(await w1.ready).toEqual({ kind: 'overflow', reason: 'max-pending-requests' });
    expect(b.stats()).toMatchObject({ pending: 1, overflows: 0 });
    first.release();
    const got = (await w2.ready) as Go;
    expect(got.kind).toBe('go');
    got.release();
    expect(b.stats()).toMatchObject({ active: 0, pending: 0, connections: 0 });
  });

  it('a cancel that comes after the grant gives the slot back', async () => {
    const b = new CircuitBreaker({ maxConnections: 1 });
    const first = go(b.admit('http1'));
    const w = wait(b.admit('http1'));
    const next = wait(b.admit('http1'));
    first.release(); // granted to w, but its caller is gone
    w.cancel();
    expect((await w.ready).kind).toBe('go');
    const got = (await next.ready) as Go;
    expect(got.kind).toBe('go');
    got.release();
    expect(b.stats()).toMatchObject({ active: 0, pending: 0, connections: 0 });
  });

  it('release is idempotent', () => {
    const b = new CircuitBreaker({ maxConnections: 2 });
    const a = go(b.admit('http1'));
    go(b.admit('http1'));
    a.release();
    a.release();
    expect(b.stats()).toMatchObject({ active: 1, connections: 1 });
    go(b.admit('http1'));
    expect(b.admit('http1').kind).toBe('wait');
  });
});

describe('CircuitBreaker: maxRequests', () => {
  it('HTTP/2 requests overflow at once beyond maxRequests (no queue)', () => {
    const b = new CircuitBreaker({ maxRequests: 2, maxConnections: 1 });
    const a = go(b.admit('http2'));
    go(b.admit('http2')); // maxConnections does not apply to multiplexed streams
    expect(b.admit('http2')).toEqual({ kind: 'overflow', reason: 'max-requests' });
    a.release();
    go(b.admit('http2'));
    expect(b.stats().overflowsByReason).toEqual({ 'max-connections': 0, 'max-pending-requests': 0, 'max-requests': 1 });
  });

  it('also caps HTTP/1.1 requests in flight, shared with HTTP/2', async () => {
    const b = new CircuitBreaker({ maxRequests: 2 });
    go(b.admit('http1'));
    const h2 = go(b.admit('http2'));
    expect(b.admit('http1')).toEqual({ kind: 'overflow', reason: 'max-requests' });
    h2.release();
    go(b.admit('http1'));
  });

  it('a waiter blocked by maxRequests gets its turn when a request slot frees', async () => {
    const b = new CircuitBreaker({ maxConnections: 1, maxRequests: 2 });
    const l4 = go(b.admit('tcp')); // holds the only connection slot, no request slot
    const w = wait(b.admit('http1'));
    const h2 = go(b.admit('http2'));
    go(b.admit('http2')); // requests now 2 = max
    l4.release(); // a connection slot frees, but no request slot
    expect((await settled(w.ready)).done).toBe(false);
    h2.release();
    expect((await w.ready).kind).toBe('go');
    expect(b.stats()).toMatchObject({ connections: 1, requests: 2, pending: 0 });
  });
});

describe('CircuitBreaker: L4 streams', () => {
  it('hold a connection slot and overflow at once at maxConnections', () => {
    const b = new CircuitBreaker({ maxConnections: 1 });
    const a = go(b.admit('tcp'));
    expect(b.admit('tcp')).toEqual({ kind: 'overflow', reason: 'max-connections' });
    expect(b.admit('http1').kind).toBe('wait');
    a.release();
    expect(b.stats()).toMatchObject({ active: 1, pending: 0 }); // the waiter got it
  });
});

describe('CircuitBreaker: retries', () => {
  it('unset maxRetries is unlimited (Istio)', () => {
    const b = new CircuitBreaker({});
    for (let i = 0; i < 100; i++) expect(b.tryRetry()).toBe(true);
    expect(b.stats().retries).toBe(100);
  });

  it('maxRetries caps concurrent retries; retryDone frees a slot', () => {
    const b = new CircuitBreaker({ maxRetries: 2 });
    expect([b.tryRetry(), b.tryRetry(), b.tryRetry()]).toEqual([true, true, false]);
    b.retryDone();
    expect(b.tryRetry()).toBe(true);
    expect(b.stats()).toMatchObject({ retries: 2, retryOverflows: 1 });
    b.retryDone();
    b.retryDone();
    b.retryDone(); // never below zero
    expect(b.stats().retries).toBe(0);
  });
});
