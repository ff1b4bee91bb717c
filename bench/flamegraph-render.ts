/**
 * What `npm run bench:flamegraph` (bench/flamegraph.ts) does per V8 CPU profile: `X.cpuprofile`
 * becomes `X.md` (self time by owner, top modules and functions: bench/cpu-profile-summary.ts)
 * and `X.html`, an interactive flame graph in one self-contained file.
 *
 * The flame graph is drawn by 0x (`0x --visualize-cpu-profile`), the Node flame graph tool, run
 * as a child process; it is a dev dependency, so this needs `npm ci` (scripts/setup.sh) first.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { asCpuProfile, formatCpuProfileSummary, summarizeCpuProfile, type CpuProfileSummary } from './cpu-profile-summary.js';

export const PROFILE_SUFFIX = '.cpuprofile';

/** The 0x command-line entry point, or an error saying how to install it. */
function zeroXEntry(): string {
  const require = createRequire(import.meta.url);
  try {
    const manifest = require.resolve('0x/package.json');
    const { bin } = require(manifest) as { bin: string | Record<string, string> };
    return join(dirname(manifest), typeof bin === 'string' ? bin : (bin['0x'] ?? 'cmd.js'));
  } catch (err) {
    throw new Error(`the flame graph renderer (npm package 0x, a dev dependency) is not installed: run \`npm ci\` (or bash scripts/setup.sh) in the repository first`, { cause: err });
  }
}

/** Writes `htmlPath`: 0x's flame graph of `profilePath`. */
export async function renderFlameGraph(profilePath: string, htmlPath: string, title: string): Promise<void> {
  const child = spawn(process.execPath, [zeroXEntry(), '--quiet', '--visualize-cpu-profile', profilePath, '--output-html', htmlPath, '--title', title], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (t: string) => {
    stderr = (stderr + t).slice(-4000);
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`0x could not render ${profilePath} (${signal ?? `exit ${String(code)}`}): ${stderr.trim() || 'no message'}`);
  const written = await stat(htmlPath).catch(() => undefined);
  if (!written?.isFile() || written.size === 0) throw new Error(`0x exited 0 but wrote no flame graph at ${htmlPath}`);
}

/** The `.cpuprofile` files named, directories expanded (sorted, not recursive). */
export async function profilePaths(inputs: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const input of inputs) {
    const path = resolve(input);
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new Error(`${input}: no such file or directory`);
    if (info.isDirectory()) {
      const inDir = (await readdir(path)).filter((f) => f.endsWith(PROFILE_SUFFIX)).sort();
      if (inDir.length === 0) throw new Error(`${input}: no ${PROFILE_SUFFIX} file in this directory`);
      found.push(...inDir.map((f) => join(path, f)));
    } else {
      found.push(path);
    }
  }
  return found;
}

export interface FlameGraphResult {
  profile: string;
  html: string;
  markdown: string;
  summary: CpuProfileSummary;
}

/** Summary and flame graph of one profile, into `outDir` (or beside it). */
export async function processProfile(profilePath: string, opts: { outDir?: string; top: number; render?: typeof renderFlameGraph }): Promise<FlameGraphResult> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(profilePath, 'utf8'));
  } catch (err) {
    throw new Error(`${profilePath}: cannot read it as JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  const summary = summarizeCpuProfile(asCpuProfile(parsed, profilePath));
  const outDir = opts.outDir ?? dirname(profilePath);
  await mkdir(outDir, { recursive: true });
  const stem = join(outDir, basename(profilePath, PROFILE_SUFFIX));
  const title = basename(profilePath);
  const markdown = `${stem}.md`;
  await writeFile(markdown, formatCpuProfileSummary(title, summary, opts.top));
  const html = `${stem}.html`;
  await (opts.render ?? renderFlameGraph)(profilePath, html, title);
  return { profile: profilePath, html, markdown, summary };
}
