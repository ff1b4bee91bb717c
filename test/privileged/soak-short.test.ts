/**
 * The CI version of `npm run soak` (issue #12 part 3): the same program (dist/bench/soak.js) with
 * 1 000 held connections and 500 req/s through two node agents and a waypoint for 120 s, and the
 * slow-reader back-pressure check (128 MiB to a server that reads nothing for 10 s). Asserts no
 * failed request, no held connection lost, and memory and descriptors stable over the second half
 * with lenient limits — RSS outside V8's young generation (read after a forced full GC) slope
 * below 10 % per minute, descriptors within ± 2 % (at least ± 10, and ± the 64 request
 * connections a pool on their path may open and close) — and agents growing less than 64 MiB
 * while the slow reader does not read. bench/soak-verdict.ts says why the young generation and
 * the pooled connections are allowed for: each failed a short run without a leak (the young
 * generation, most likely, in CI; the pool in a local run). The limits
 * are real: the same run with `--inject-leak-kib 1024` (the waypoint keeps 1 MiB/s) fails with
 * "waypoint: RSS outside V8’s young generation grew … MiB/min after warm-up".
 * 120 s, not 60: a 60 s run failed in CI (2026-12-06) without a leak. The waypoint's RSS climbed
 * 87 → 114 MiB between 24 and 44 s into the load and stayed at 113–114 MiB, the level local runs
 * with the same settings reach within 9 s, while V8's heap stayed flat (in use +0.31, committed
 * +1.72, external +0.11 MiB/min): allocator pages settling, judged because the second half began
 * at 30 s. With 120 s the judged half starts at 60 s.
 * Neither rate nor latency is asserted (BENCHMARKS.md: CI never passes or fails on a time): the
 * rate check is off (--min-rate-fraction 0), every scheduled request must be accounted for.
 *
 * Runs the compiled bench (CI builds first: dist/ must exist); writes into a temporary
 * directory; checks that no namespace of the run is left behind.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SoakResult } from '../../bench/soak-run.js';
import { requireRoot } from '../helpers/privileged.js';

const SOAK = join(process.cwd(), 'dist', 'bench', 'soak.js');
const guard = requireRoot('npm run soak (short)', { tools: ['ip', 'nsenter', 'curl', 'ss', 'nginx'] });
const namespacesOf = (prefix: string): string[] => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`)) : []);

const DURATION_S = 120;
const RATE = 500;

describe.skipIf(!guard.run)(`npm run soak, short: 1 000 held connections + ${RATE} req/s through agents and a waypoint for ${DURATION_S} s`, () => {
  let out: string;
  let code: number | null;
  let stderr = '';
  let prefix: string | undefined;
  let result: SoakResult;

  beforeAll(async () => {
    if (!existsSync(SOAK)) throw new Error(`${SOAK} is missing: run npm run build:ts first`);
    out = await mkdtemp(join(tmpdir(), 'amesh-soak-short-'));
    const args = [
      ...['--duration', String(DURATION_S), '--connections', '1000', '--rate', String(RATE), '--interval', '5'],
      ...['--rss-slope', '10', '--fd-tolerance', '2', '--min-rate-fraction', '0'],
      ...['--slow-reader', '--slow-reader-mib', '128', '--slow-reader-pause', '10', '--slow-reader-max-growth', '64'],
      ...['--out-dir', out],
    ];
    const child = spawn(process.execPath, [SOAK, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = `${stderr}${chunk.toString()}`.slice(-20_000);
      prefix ??= /creating network namespaces (aso[0-9a-f]{3})-/.exec(stderr)?.[1];
    });
    // A bound against a hang, not a time assertion.
    const timer = setTimeout(() => child.kill('SIGTERM'), 460_000);
    code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    const json = (await readdir(out)).find((f) => f.startsWith('soak-') && f.endsWith('.json'));
    if (!json) throw new Error(`the soak wrote no results (exit ${code}); stderr:\n${stderr}`);
    result = JSON.parse(await readFile(join(out, json), 'utf8')) as SoakResult;
  }, 480_000);

  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('passes its own verdict and exits 0', () => {
    expect(result.verdict.failures, stderr.split('\n').slice(-30).join('\n')).toEqual([]);
    expect(code).toBe(0);
  });

  it('sent requests through the waypoint without a single failure, and lost no held connection', () => {
    expect(result.load.scheduled).toBe(RATE * DURATION_S);
    expect(result.load.completed + result.load.errors + result.load.backlogDropped).toBe(result.load.scheduled);
    expect(result.load.completed).toBeGreaterThan(0);
    expect(result.load.errors).toBe(0);
    expect(result.hold.connections).toBe(1000);
    expect(result.hold.closedWhileHeld).toBe(0);
  });

  it('sampled both agents and the waypoint throughout, holding the connections', () => {
    expect(result.verdict.processes.map((p) => p.name).sort()).toEqual(['agent-node1', 'agent-node2', 'waypoint']);
    for (const p of result.verdict.processes) {
      expect(p.samples).toBeGreaterThanOrEqual(5);
      // Every sample came after a full GC that reported V8's young generation, so RSS was judged without it.
      expect(p.youngGenerationExcluded, p.name).toBe(true);
    }
    // Each held connection is a socket in the client-side agent and one in the server-side agent.
    for (const name of ['agent-node1', 'agent-node2']) expect(result.verdict.processes.find((p) => p.name === name)!.fdMin).toBeGreaterThanOrEqual(1000);
  });

  it('pushes back on a slow reader: every byte arrives, the agents do not buffer it', () => {
    expect(result.slowReader?.failures).toEqual([]);
    expect(result.slowReader?.received).toBe(128 * 2 ** 20);
    for (const a of Object.values(result.slowReader!.agents)) expect(a.growthMib).toBeLessThan(64);
  });

  it('leaves no namespace behind', () => {
    expect(prefix, 'the run did not announce its namespace prefix').toBeDefined();
    expect(namespacesOf(prefix!)).toEqual([]);
  });
});
