/**
 * Smoke test of `npm run bench:relay-layers` (bench/relay-layers-harness.ts) at a tiny rate: every
 * layer — plain TCP, TLS, node:http2 CONNECT streams, the hand-written HTTP/2 framing of
 * bench/relay-layers-h2-framed.ts against node:http2's (nghttp2's) server, and amesh's own HBONE
 * pool and server — must carry
 * every request of the open loop end to end, and every child must be gone afterwards. A framing
 * mistake shows as failed requests, which the harness refuses to report. No time is asserted.
 *
 * The relays, the backend and the load generator run compiled code (dist/bench/*.js): this test
 * needs `npm run build:ts` first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runRelayLayers, type LayerRun } from '../../bench/relay-layers-harness.js';
import { RELAY_LAYERS } from '../../bench/relay-layers-topology.js';

/** Pids of this process's children that run the relay roles script. */
function roleChildren(): string[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const parent = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.split(' ')[1];
        return parent === String(process.pid) && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('relay-layers-roles.js');
      } catch {
        return false; // gone meanwhile
      }
    });
}

describe('relay layers bench harness', () => {
  it('carries an open loop through every layer, reports CPU per request for near and far, and stops its children', async () => {
    const lines: string[] = [];
    const seen: LayerRun[] = [];
    const { runs, summary } = await runRelayLayers(
      { layers: [...RELAY_LAYERS], rounds: 1, seconds: 1, warmup: 0, rate: 200, connections: 4, bytes: 20_000, settle: false },
      { step: (t) => lines.push(t), info: (t) => lines.push(t) },
      (run) => seen.push(run),
    );

    expect(runs.map((r) => r.layer)).toEqual([...RELAY_LAYERS]);
    expect(seen).toEqual(runs);
    for (const run of runs) {
      // 200 req/s for 1 s; the open loop completes what it scheduled, none failed.
      expect(run.requests, run.layer).toBeGreaterThanOrEqual(190);
      expect(run.errors, run.layer).toBe(0);
      expect(Number.isFinite(run.nearCpuPer10k), run.layer).toBe(true);
      expect(Number.isFinite(run.farCpuPer10k), run.layer).toBe(true);
      expect(run.p50Ms, run.layer).toBeGreaterThan(0);
    }
    expect(summary.map((s) => s.layer)).toEqual([...RELAY_LAYERS]);
    expect(lines.filter((l) => / round 1\/1$/.test(l))).toHaveLength(RELAY_LAYERS.length);

    // Nothing left behind: every relay child was stopped by pid.
    expect(roleChildren()).toEqual([]);
  }, 120_000);
});
