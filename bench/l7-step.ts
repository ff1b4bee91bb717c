/**
 * Scenario 6 inside `npm run bench`: the waypoint bench (`npm run bench:waypoint`,
 * bench/waypoint.ts) as a child process with this run's durations and a private output
 * directory, its progress lines forwarded indented, its JSON and Markdown kept in the results.
 * A child (not an in-process call) because the waypoint bench owns its processes through an exit
 * hook and a signal path of its own; the outer bound kills it by pid if it hangs.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { L7Result } from './results.js';
import { BENCH_DIR } from './testbed.js';

export const WAYPOINT_BENCH = join(BENCH_DIR, 'waypoint.js');

export interface L7StepSettings {
  /** Max-rate (closed loop) seconds per path: `--l7-duration`. */
  seconds: number;
  /**
   * Open-loop latency seconds per path: the run's `--latency-duration`, as scenario 2's. BENCHMARKS.md
   * asks ≥ 30 s for a latency run; the waypoint's at `--l7-duration` (5 s in the README's runs)
   * read 0.27–0.32 cores per 1000 req/s where 30 s runs read 0.21–0.22 (warm-up and start-up
   * work weigh on a short run).
   */
  latencySeconds: number;
  warmupSeconds: number;
  rate: number;
}

/** The waypoint bench's command line for these settings. */
/**
 * The routing probe keeps its default (200 per kind): at 20, a 90/10 split sends none to v2 in
 * 0.9^20 ≈ 12 % of runs and the probe rejects the path — a smoke run that failed that way.
 */
export function waypointArgv(s: L7StepSettings, outDir: string): string[] {
  return [
    WAYPOINT_BENCH,
    '--duration', String(s.seconds),
    '--latency-duration', String(s.latencySeconds),
    '--warmup', String(Math.round(s.warmupSeconds)),
    '--rate', String(s.rate),
    '--out-dir', outDir,
  ];
}

/** Generous: 6 paths, each start-up + probe + warm-ups + a max-rate run + a latency run and its paired direct run. */
export const l7TimeoutMs = (s: L7StepSettings): number => (6 * (s.seconds + 2 * s.latencySeconds + 3 * s.warmupSeconds + 30) + 60) * 1000;

export interface L7Child {
  /** Kills the child by pid (SIGTERM: its own exit hook stops its processes). */
  stop(): void;
  result: Promise<L7Result>;
}

export function startL7Step(s: L7StepSettings, info: (line: string) => void): L7Child {
  let child: ReturnType<typeof spawn> | undefined;
  const result = (async (): Promise<L7Result> => {
    const outDir = await mkdtemp(join(tmpdir(), 'amesh-bench-l7-'));
    try {
      const proc = spawn(process.execPath, waypointArgv(s, outDir), { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      const lines = createInterface({ input: proc.stderr! });
      const tail: string[] = [];
      lines.on('line', (line) => {
        info(`  waypoint bench: ${line.trim()}`);
        tail.push(line);
        if (tail.length > 10) tail.shift();
      });
      const timeoutMs = l7TimeoutMs(s);
      const timer = setTimeout(() => {
        info(`  waypoint bench: no result after ${timeoutMs / 1000} s; stopping pid ${proc.pid}`);
        proc.kill('SIGTERM');
      }, timeoutMs);
      const code = await new Promise<number | null>((resolve) => proc.once('close', (c) => resolve(c)));
      clearTimeout(timer);
      const files = await readdir(outDir);
      const json = files.find((f) => f.endsWith('.json'));
      const md = files.find((f) => f.endsWith('.md'));
      const out: L7Result = {};
      if (json) out.document = JSON.parse(await readFile(join(outDir, json), 'utf8')) as unknown;
      if (md) out.markdown = await readFile(join(outDir, md), 'utf8');
      if (code !== 0 || !json) out.error = `node ${WAYPOINT_BENCH} exited with ${code ?? 'a signal'}${json ? '' : ', no results written'}: ${tail.slice(-3).join(' | ')}`;
      return out;
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) };
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  })();
  return {
    stop: () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
    result,
  };
}
