/**
 * The CI smoke of `npm run bench` (issue #11): `node dist/bench/run.js --quick` builds the whole
 * testbed — direct, the stunnel / haproxy / nginx TLS pairs, amesh with eBPF and with nftables
 * capture — runs every scenario once at tiny durations and the waypoint bench, and must produce a
 * value for every path × scenario, the ratio table and a clean exit. No time is asserted: the
 * numbers of a smoke run mean nothing.
 *
 * Runs the compiled bench (CI builds first: dist/ must exist). Writes into a temporary directory,
 * not bench/results. The bench cleans up after itself; the test checks that no namespace with the
 * prefix the run announced is left behind.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCENARIO_NAMES } from '../../bench/options.js';
import { pathsOf } from '../../bench/plan.js';
import { METRIC_SCENARIOS, PATH_NAMES, type BenchResults } from '../../bench/results.js';
import { requireRoot } from '../helpers/privileged.js';

const RUN = join(process.cwd(), 'dist', 'bench', 'run.js');
const guard = requireRoot('npm run bench --quick', { tools: ['ip', 'nsenter', 'curl'] });
const namespacesOf = (prefix: string): string[] => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`)) : []);

describe.skipIf(!guard.run)('npm run bench --quick', () => {
  let out: string;
  let code: number | null;
  let stderr = '';
  let prefix: string | undefined;
  let results: BenchResults & { scenarios: string[] };
  let markdown: string;

  beforeAll(async () => {
    if (!existsSync(RUN)) throw new Error(`${RUN} is missing: run npm run build:ts first`);
    out = await mkdtemp(join(tmpdir(), 'amesh-bench-quick-'));
    const child = spawn(process.execPath, [RUN, '--quick', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = `${stderr}${chunk.toString()}`.slice(-20_000);
      prefix ??= /creating network namespaces (amb[0-9a-f]{4})-/.exec(stderr)?.[1];
    });
    // A bound against a hang, not a time assertion.
    const timer = setTimeout(() => child.kill('SIGTERM'), 540_000);
    code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    const files = await readdir(out);
    const json = files.find((f) => f.endsWith('.json'));
    const md = files.find((f) => f.endsWith('.md'));
    if (!json || !md) throw new Error(`the bench wrote no results (exit ${code}); stderr:\n${stderr}`);
    results = JSON.parse(await readFile(join(out, json), 'utf8')) as typeof results;
    markdown = await readFile(join(out, md), 'utf8');
  }, 600_000);

  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('exits 0: every measurement produced values', () => {
    expect(code, stderr.split('\n').slice(-30).join('\n')).toBe(0);
  });

  it('ran every path and every scenario', () => {
    expect(results.settings.paths).toEqual([...PATH_NAMES]);
    expect(results.scenarios).toEqual([...SCENARIO_NAMES]);
    expect(results.environment.captureMode).toBe('ebpf');
    expect(results.environment.captureModeNft).toBe('nftables');
  });

  it('has a value for every path × scenario', () => {
    const missing: string[] = [];
    for (const path of PATH_NAMES) {
      if (!results.throughput.some((s) => s.path === path && typeof s.gbps === 'number' && s.gbps > 0)) missing.push(`throughput × ${path}`);
      if (!results.latency.some((s) => s.path === path && typeof s.p99Ms === 'number' && (s.completed ?? 0) > 0)) missing.push(`latency × ${path}`);
    }
    for (const scenario of METRIC_SCENARIOS) {
      for (const path of pathsOf(scenario, PATH_NAMES)) {
        const sample = (results[scenario] ?? []).find((s) => s.path === path);
        if (!sample?.values || Object.keys(sample.values).length === 0) missing.push(`${scenario} × ${path}${sample?.error ? ` (${sample.error})` : ''}`);
      }
    }
    const l7 = (results.l7?.document as { paths?: { path: string; maxRate?: { requestsPerSecond?: number }; latency?: { p99Ms?: number }; skipped?: string; error?: string }[] } | undefined)?.paths ?? [];
    if (l7.length === 0) missing.push(`l7 (${results.l7?.error ?? 'no document'})`);
    for (const p of l7) if (typeof p.maxRate?.requestsPerSecond !== 'number' || typeof p.latency?.p99Ms !== 'number') missing.push(`l7 × ${p.path} (${p.skipped ?? p.error ?? 'no value'})`);
    expect(missing).toEqual([]);
  });

  it('writes the ratio table, every scenario section, versions and no failures', () => {
    expect(markdown).toContain('## Ratios: amesh ÷ direct and amesh ÷ best comparator (medians)');
    expect(markdown).toMatch(/\| Throughput \(Gbit\/s\): -P1 client→server \| higher \| [\d.]+ \| [\d.]+× \| [\d.]+× \((stunnel|haproxy|nginx)\) \|/);
    for (const heading of ['## 1. Bulk', '## 2. Latency', '## 3. Maximum request rate', '## 4. Connection setup rate', '## 4b. Full mutual-TLS handshakes', '## 5. Memory', '## 6. L7', '## 7. Capture overhead']) expect(markdown).toContain(heading);
    for (const tool of ['haproxy', 'nginx', 'stunnel', 'iperf3', 'wrk']) expect(markdown).not.toMatch(new RegExp(`\\| ${tool} \\| not found \\|`));
    expect(markdown).not.toContain('## Failures');
  });

  it('leaves none of its namespaces behind', () => {
    // Other benches may run beside this one: only the prefix this run announced is checked.
    expect(prefix, 'the run did not announce its namespace prefix').toBeDefined();
    expect(namespacesOf(prefix!)).toEqual([]);
  });
});

// Skipped only where the file's guard says why (not root, with AMESH_ALLOW_UNPRIVILEGED_SKIP=1):
// the bench refuses to start without root before it looks at BENCH_AGENT_NODE.
describe.skipIf(!guard.run)('npm run bench with BENCH_AGENT_NODE set to something that is not node', () => {
  it('exits 2 naming the variable, before it builds a testbed', async () => {
    if (!existsSync(RUN)) throw new Error(`${RUN} is missing: run npm run build:ts first`);
    const out = await mkdtemp(join(tmpdir(), 'amesh-bench-agent-node-'));
    try {
      const child = spawn(process.execPath, [RUN, '--quick', '--paths', 'amesh', '--scenarios', 'latency', '--no-install', '--out', out], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, BENCH_AGENT_NODE: '/bin/false' },
      });
      let output = '';
      const collect = (chunk: Buffer): void => {
        output += chunk.toString();
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const timer = setTimeout(() => child.kill('SIGTERM'), 60_000);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      clearTimeout(timer);
      expect(code, output).toBe(2);
      expect(output).toContain('BENCH_AGENT_NODE=/bin/false is not a runnable node binary');
      expect(output).not.toContain('creating network namespaces');
      expect(await readdir(out)).toEqual([]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 90_000);
});
