/**
 * Smoke test of the xDS scale bench harness (bench/xds-scale-harness.ts, `npm run bench:xds`) at a
 * tiny scale: it must start the API server, the controller child and the agent threads, take
 * every measurement, and leave nothing running. No timing is asserted — that is the bench's job.
 *
 * The controller and the agent threads run compiled code (dist/bench/xds-scale-*.js): this test
 * needs `npm run build:ts` first, and fails saying so when the build is missing.
 */
import { describe, expect, it } from 'vitest';
import { runXdsScale } from '../../bench/xds-scale-harness.js';
import { markdownReport } from '../../bench/xds-scale-report.js';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('xDS scale bench harness', () => {
  it('measures full push, incremental changes and controller memory at 40 pods / 10 services / 2 agents, then cleans up', async () => {
    const lines: string[] = [];
    const result = await runXdsScale({
      pods: 40,
      services: 10,
      nodes: 2,
      agents: 2,
      changes: 2,
      gapMs: 0,
      timeoutMs: 20_000,
      progress: { step: (t) => lines.push(t), info: (t) => lines.push(t) },
    });

    expect(result.expected).toEqual({ workloads: 40, services: 10 });
    expect(result.settings).toMatchObject({ pods: 40, services: 10, nodes: 2, agents: 2, changes: 2, namespaces: 10 });
    expect(typeof result.settings.xdsDebounceMs).toBe('number');

    expect(result.fullPush.agents.map((a) => a.node)).toEqual(['bench-node-00', 'bench-node-01']);
    for (const agent of result.fullPush.agents) {
      expect(agent).toMatchObject({ workloads: 40, services: 10, authorizations: 0, nacks: 0, countsOk: true });
      expect(agent.ms).toBeGreaterThan(0);
      expect(agent.firstResponseMs).toBeLessThanOrEqual(agent.ms);
    }
    expect(result.fullPush.maxMs).toBe(Math.max(...result.fullPush.agents.map((a) => a.ms)));

    // The same pod opted out, then back in; every agent saw each value.
    expect(result.incremental.changes.map((c) => c.tunnelProtocol)).toEqual(['NONE', 'HBONE']);
    expect(result.incremental.changes[0]?.pod).toBe(result.incremental.changes[1]?.pod);
    for (const change of result.incremental.changes) {
      expect(change.appliedMs).toHaveLength(2);
      expect(change.arrivedMs).toHaveLength(2);
      for (const [i, applied] of change.appliedMs.entries()) {
        expect(applied).toBeGreaterThan(0);
        expect(change.arrivedMs[i]).toBeLessThanOrEqual(applied);
      }
      expect(change.maxMs).toBe(Math.max(...change.appliedMs));
    }
    for (const p of [result.incremental.p50Ms, result.incremental.p95Ms, result.incremental.maxMs]) expect(Number.isFinite(p)).toBe(true);

    for (const sample of [result.memory.afterFullPush, result.memory.settled, result.memory.afterChanges]) {
      expect(sample.rssMiB).toBeGreaterThan(0);
      expect(sample.hwmMiB).toBeGreaterThanOrEqual(sample.rssMiB);
    }
    expect(result.controller.startupMs).toBeGreaterThan(0);
    expect(result.controller.settle.writes).toBeGreaterThanOrEqual(0);

    expect(result.targets).toHaveLength(3);
    for (const t of result.targets) expect(typeof t.met).toBe('boolean');
    const markdown = markdownReport(result);
    expect(markdown).toContain('| full push to an agent (slowest of 2) |');
    expect(markdown).toContain('< 200 ms (max)');
    expect(markdown).toMatch(/per pod change \(translate \+ encode of what changed\) p50 \d/);
    expect(result.environment.loadAverage?.atStart).toHaveLength(3);
    expect(result.environment.loadAverage?.afterChanges).toHaveLength(3);
    expect(markdown).toContain('load average 1 / 5 / 15 min');
    expect(lines.some((l) => l.startsWith('controller'))).toBe(true);

    // Nothing left behind: the controller child was stopped by pid.
    expect(isRunning(result.controller.pid)).toBe(false);
  }, 60_000);

  it('refuses more agents than nodes before starting anything', async () => {
    await expect(runXdsScale({ pods: 4, services: 1, nodes: 1, agents: 2, changes: 0 })).rejects.toThrow(/must not exceed nodes/);
  });
});
