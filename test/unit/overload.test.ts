// Resource caps' bookkeeping (src/node-agent/proxy/overload.ts): the per-workload connection
// limiter, the refusal totals behind amesh_overload_rejections_total, and the warn line — one per
// workload and reason per interval, naming the cap and the setting, counting what it stood for.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ConnectionLimiter, OverloadLog, type OverloadRejection } from '../../src/node-agent/proxy/overload.js';
import { registerInternals } from '../../src/node-agent/telemetry/internals.js';
import type { Logger } from '../../src/telemetry/logger.js';

function recordingLogger(): { logger: Logger; warnings: Array<{ fields: Record<string, unknown>; msg: string }> } {
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const logger = { warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ fields, msg }) } as unknown as Logger;
  return { logger, warnings };
}

const A: OverloadRejection = { reason: 'workload_connections', direction: 'outbound', workload: 'Kubernetes//Pod/demo/a', limit: 2, setting: 'AMESH_MAX_CONNECTIONS_PER_WORKLOAD' };

describe('ConnectionLimiter', () => {
  it('admits up to the limit per key, refuses beyond, and admits again after a release', () => {
    const l = new ConnectionLimiter(2);
    expect([l.tryAcquire('a'), l.tryAcquire('a'), l.tryAcquire('a')]).toEqual([true, true, false]);
    expect(l.tryAcquire('b')).toBe(true); // per key
    expect(l.count('a')).toBe(2);
    l.release('a');
    expect(l.tryAcquire('a')).toBe(true);
    l.release('a');
    l.release('a');
    expect(l.count('a')).toBe(0);
  });
});

describe('OverloadLog', () => {
  it('counts every refusal, warns once per workload and interval with the cap and the setting, then says how many it stood for', () => {
    let now = 1000;
    const { logger, warnings } = recordingLogger();
    const log = new OverloadLog(logger, { now: () => now, logIntervalMs: 10_000 });
    for (let i = 0; i < 5; i++) log.reject(A);
    log.reject({ ...A, workload: 'Kubernetes//Pod/demo/b' });
    log.reject({ ...A, reason: 'pending_streams', setting: 'AMESH_HBONE_MAX_PENDING_CONNECTS' });
    expect(log.totals()).toEqual(
      expect.arrayContaining([
        { reason: 'workload_connections', direction: 'outbound', count: 6 },
        { reason: 'pending_streams', direction: 'outbound', count: 1 },
      ]),
    );
    expect(warnings).toHaveLength(3);
    expect(warnings[0]!.fields).toMatchObject({ reason: 'workload_connections', direction: 'outbound', workload: 'Kubernetes//Pod/demo/a', limit: 2, setting: 'AMESH_MAX_CONNECTIONS_PER_WORKLOAD' });
    expect(warnings[0]!.msg).toContain('raise AMESH_MAX_CONNECTIONS_PER_WORKLOAD');
    now += 10_000;
    log.reject(A);
    expect(warnings).toHaveLength(4);
    expect(warnings[3]!.fields).toMatchObject({ suppressed: 4 });
  });
});

describe('amesh_overload_rejections_total', () => {
  it('exports the totals by reason and direction at scrape time', async () => {
    const { logger } = recordingLogger();
    const log = new OverloadLog(logger);
    const registry = new Registry();
    registerInternals(registry, {
      bpfReasons: () => undefined,
      pool: () => ({ connections: 0, dialing: 0, streams: 0, dials: 0, keys: [] }),
      hboneServer: () => ({ sessions: 0, handshaking: 0, streams: 0, acceptedStreams: 0, refusedStreams: 0, rejectedConnections: 0 }),
      connections: () => ({ live: 0, inbound: 0 }),
      certificates: () => [],
      enrolledPods: () => 0,
      overload: () => log.totals(),
    });
    log.reject(A);
    log.reject(A);
    log.reject({ ...A, reason: 'header_size', direction: 'inbound' });
    const text = await registry.metrics();
    expect(text).toContain('amesh_overload_rejections_total{reason="workload_connections",direction="outbound"} 2');
    expect(text).toContain('amesh_overload_rejections_total{reason="header_size",direction="inbound"} 1');
    log.reject(A);
    expect(await registry.metrics()).toContain('amesh_overload_rejections_total{reason="workload_connections",direction="outbound"} 3');
  });
});
