/**
 * `npm run bench:flamegraph -- <profile.cpuprofile | directory>…`: a flame graph and a summary of
 * where the time went for each V8 CPU profile the bench's tools write — `agent-cpu --profile-dir`,
 * `waypoint-cpu-ab --node-args "--cpu-prof --cpu-prof-dir=…"`, or any `node --cpu-prof` run.
 *
 * For `X.cpuprofile` it writes, into `--out` (default: beside the profile):
 *   X.html  an interactive flame graph, one self-contained file (0x's visualiser; no network)
 *   X.md    self time by owner (amesh, Node's JavaScript, dependencies, native, GC), the top
 *           modules and the top functions (bench/cpu-profile-summary.ts)
 * and prints each profile's split by owner on stdout. Progress on stderr.
 */
import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import { runBenchCli, wholeNumber } from './cli.js';
import { OWNER_LABELS } from './cpu-profile-summary.js';
import { PROFILE_SUFFIX, processProfile, profilePaths } from './flamegraph-render.js';

function main(): Promise<void> {
  const program = new Command('bench-flamegraph')
    .description('flame graph (HTML) and self-time summary (Markdown) of V8 CPU profiles')
    .argument('<profiles...>', `${PROFILE_SUFFIX} files, or directories holding them`)
    .option('--out <dir>', 'write the .html and .md files here instead of beside each profile')
    .option('--top <n>', 'modules and functions listed in the summary', wholeNumber(1, 500), 25)
    .parse();
  const o = program.opts<{ out?: string; top: number }>();
  return (async () => {
    const paths = await profilePaths(program.args);
    for (const [i, path] of paths.entries()) {
      process.stderr.write(`[${i + 1}/${paths.length}] ${path}\n`);
      const r = await processProfile(path, { outDir: o.out ? resolve(o.out) : undefined, top: o.top });
      const owners = r.summary.owners.map((w) => `${OWNER_LABELS[w.owner]} ${(w.share * 100).toFixed(1)} %`).join('; ');
      process.stdout.write(`${basename(path)}: ${r.summary.cpuMs.toFixed(0)} ms CPU of ${r.summary.durationMs.toFixed(0)} ms — ${owners}\n  flame graph ${r.html}\n  summary     ${r.markdown}\n`);
    }
  })();
}

runBenchCli('bench:flamegraph', main);
