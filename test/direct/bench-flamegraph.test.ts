/**
 * `npm run bench:flamegraph` end to end: a real `node --cpu-prof` profile of a child that spins in
 * a named function becomes a flame graph (0x's self-contained HTML) and a summary naming that
 * function; bad input fails with the file's name. Runs the compiled CLI (dist/bench/flamegraph.js):
 * needs `npm run build:ts` first.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../dist/bench/flamegraph.js');

/** Spins ~400 ms in spinForProfileTest, so the profile has one clear hot function. */
const SPINNER = `
function spinForProfileTest(ms) { const end = Date.now() + ms; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1); return x; }
spinForProfileTest(400);
`;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('bench:flamegraph', () => {
  let dir: string;
  let profile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-flamegraph-'));
    await run(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles')}`, '--cpu-prof-name=spinner.cpuprofile', '-e', SPINNER], { timeout: 30_000 });
    profile = join(dir, 'profiles', 'spinner.cpuprofile');
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a self-contained flame graph and a summary that names the hot function', async () => {
    const out = join(dir, 'out');
    const r = await cli([join(dir, 'profiles'), '--out', out, '--top', '5']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('[1/1]');
    expect(r.stdout).toContain('spinner.cpuprofile:');
    expect((await readdir(out)).sort()).toEqual(['spinner.html', 'spinner.md']);

    const html = await readFile(join(out, 'spinner.html'), 'utf8');
    expect(html).toContain('spinForProfileTest');
    // One file, nothing fetched when it is opened: no external script or stylesheet.
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=["']https?:/);
    expect((await stat(join(out, 'spinner.html'))).size).toBeGreaterThan(10_000);

    const md = await readFile(join(out, 'spinner.md'), 'utf8');
    const row = md.split('\n').find((l) => l.startsWith('| spinForProfileTest |'));
    expect(row, md).toBeDefined();
    // It spun for 400 ms of a short process: the largest single function by far.
    const share = Number(/([\d.]+) % \|$/.exec(row!)?.[1]);
    expect(share).toBeGreaterThan(40);
    expect(md).toContain('Top 5 functions:');
  }, 60_000);

  it('writes beside the profile without --out', async () => {
    const r = await cli([profile]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(join(dir, 'profiles'))).sort()).toEqual(['spinner.cpuprofile', 'spinner.html', 'spinner.md']);
  }, 60_000);

  it.each([
    [['missing.cpuprofile'], 'missing.cpuprofile: no such file or directory'],
    [[], "missing required argument 'profiles'"],
  ])('refuses %j with a message naming what is wrong', async (args, message) => {
    const r = await cli(args.map((a) => (a.endsWith('.cpuprofile') ? join(dir, a) : a)));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });

  it('refuses a file that is not a CPU profile, and a directory without one', async () => {
    const notProfile = join(dir, 'trace.cpuprofile');
    await writeFile(notProfile, JSON.stringify({ traceEvents: [] }));
    const r = await cli([notProfile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${notProfile} is not a V8 CPU profile`);

    const empty = await mkdtemp(join(dir, 'empty-'));
    const e = await cli([empty]);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain('no .cpuprofile file in this directory');
  });
});
