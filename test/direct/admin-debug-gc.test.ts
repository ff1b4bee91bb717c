// POST /debug/gc on the agent's admin server (loopback): a full GC (heap used, committed and per
// space after it) when the process exposes V8's gc() (--expose-gc) or the handlers bring one, a
// 501 naming the flag otherwise; only POST.
import { afterEach, describe, expect, it } from 'vitest';
import { AdminServers } from '../../src/node-agent/admin.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const base = { ready: () => ({ ready: true }), configDump: () => ({}), quit: () => undefined, logger: silentLogger };

describe('agent admin: POST /debug/gc', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function admin(handlers: ConstructorParameters<typeof AdminServers>[0]): Promise<string> {
    const servers = new AdminServers(handlers);
    cleanups.push(() => servers.close());
    const ports = await servers.start({ readiness: 0, admin: 0, metrics: 0 });
    return `http://127.0.0.1:${ports.admin}`;
  }

  it('collects once per POST and answers the heap and RSS before and after', async () => {
    let collections = 0;
    const url = await admin({ ...base, gc: () => collections++ });
    const res = await fetch(`${url}/debug/gc`, { method: 'POST' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.collected).toBe(true);
    for (const key of ['heapUsedBefore', 'heapUsedAfter', 'heapTotalAfter', 'externalAfter', 'arrayBuffersAfter', 'rssBefore', 'rssAfter', 'ms']) expect(typeof body[key]).toBe('number');
    // Committed by space, so a reader can tell a grown young generation from old-space growth.
    const spaces = body.spaces as Record<string, { size: number; used: number }>;
    expect(spaces.new_space?.size).toBeGreaterThan(0);
    expect(spaces.old_space?.used).toBeGreaterThan(0);
    expect(collections).toBe(1);
    // A GET neither collects nor pretends to.
    expect((await fetch(`${url}/debug/gc`)).status).toBe(404);
    expect(collections).toBe(1);
  });

  it('answers 501 with the flag to use when gc() is not exposed', async () => {
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    const url = await admin(base);
    const res = await fetch(`${url}/debug/gc`, { method: 'POST' });
    expect(res.status).toBe(501);
    expect(((await res.json()) as { hint: string }).hint).toContain('--expose-gc');
  });
});
