/**
 * `npm run bench:sandbox` (= node dist/bench/sandbox-up.js): how long `amesh sandbox up` with two
 * workers takes (API server, kubelets, DNS, kube-proxy, amesh installed through its DaemonSet and
 * Ready) and how much memory the whole sandbox holds — idle, and with the demo app running.
 *
 * Memory is summed over every process inside the sandbox's network namespaces (the daemon in the
 * fabric namespace, the node agents in the node namespaces, the pods' processes), as RSS and as
 * PSS (shared pages divided among their users, so the sum does not count the Node binary twice).
 * Each run uses its own state directory and sandbox name and removes everything afterwards.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus, release } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { applyObjects, readManifests, REPO_ROOT } from '../src/sandbox/install.js';
import { kubeConfigFor, sandboxDown, sandboxUp } from '../src/sandbox/lifecycle.js';
import { Progress } from './progress.js';
import { summarize, type Summary } from './stats.js';

const DEMO_MANIFEST = join(REPO_ROOT, 'samples', 'demo', 'demo.yaml');
const DEMO_READY_TIMEOUT_MS = 90_000;
const TARGET_UP_SECONDS = 30;
const TARGET_TOTAL_MB = 500;

interface MemorySample {
  processes: number;
  rssMiB: number;
  pssMiB: number;
}

interface RunSample {
  upSeconds: number;
  idle: MemorySample;
  demoReadySeconds?: number;
  demo?: MemorySample;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new InvalidArgumentError('expected a whole number from 1 to 20');
  return n;
}

/** kB fields of /proc/<pid>/smaps_rollup (Rss, Pss); undefined once the process is gone. */
function memoryOf(pid: number): { rssKiB: number; pssKiB: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    return { rssKiB: field('Rss'), pssKiB: field('Pss') };
  } catch {
    return undefined;
  }
}

/** Every process in the sandbox's namespaces (`<name>-net`, `<name>-worker*`, `<name>-p*`). */
function sandboxMemory(name: string): MemorySample {
  const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((ns) => ns.startsWith(`${name}-`));
  const pids = new Set<number>();
  for (const ns of namespaces) {
    for (const line of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n')) {
      const pid = Number(line);
      if (Number.isInteger(pid) && pid > 1) pids.add(pid);
    }
  }
  let rssKiB = 0;
  let pssKiB = 0;
  let processes = 0;
  for (const pid of pids) {
    const m = memoryOf(pid);
    if (!m) continue;
    processes++;
    rssKiB += m.rssKiB;
    pssKiB += m.pssKiB;
  }
  return { processes, rssMiB: rssKiB / 1024, pssMiB: pssKiB / 1024 };
}

async function waitForDemo(dir: string, deadline: number): Promise<void> {
  const kubeConfig = kubeConfigFor(dir);
  const { AppsV1Api } = await import('@kubernetes/client-node');
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  for (;;) {
    const list = await apps.listNamespacedDeployment({ namespace: 'demo' });
    const pending = list.items.filter((d) => (d.status?.availableReplicas ?? 0) < (d.spec?.replicas ?? 1));
    if (list.items.length > 0 && pending.length === 0) return;
    if (Date.now() > deadline) throw new Error(`the demo deployments were not available within ${DEMO_READY_TIMEOUT_MS / 1000} s: ${pending.map((d) => d.metadata?.name).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function oneRun(run: number, withDemo: boolean, progress: Progress): Promise<RunSample> {
  const dir = await mkdtemp(join(tmpdir(), 'amesh-bench-sandbox-'));
  const name = `bs${run}${Math.random().toString(16).slice(2, 5)}`;
  try {
    const started = performance.now();
    await sandboxUp({ dir, name, nodes: 2 });
    const upSeconds = (performance.now() - started) / 1000;
    // Let start-up garbage settle before reading memory, as a user would see it a moment later.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idle = sandboxMemory(name);
    progress.info(`up in ${upSeconds.toFixed(2)} s; idle: ${idle.processes} processes, RSS ${idle.rssMiB.toFixed(0)} MiB, PSS ${idle.pssMiB.toFixed(0)} MiB`);
    if (!withDemo) return { upSeconds, idle };
    const demoStarted = performance.now();
    await applyObjects(kubeConfigFor(dir), await readManifests(DEMO_MANIFEST));
    await waitForDemo(dir, Date.now() + DEMO_READY_TIMEOUT_MS);
    const demoReadySeconds = (performance.now() - demoStarted) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const demo = sandboxMemory(name);
    progress.info(`demo available in ${demoReadySeconds.toFixed(2)} s; ${demo.processes} processes, RSS ${demo.rssMiB.toFixed(0)} MiB, PSS ${demo.pssMiB.toFixed(0)} MiB`);
    return { upSeconds, idle, demoReadySeconds, demo };
  } finally {
    if (existsSync(dir)) await sandboxDown({ dir }).catch((err: unknown) => progress.info(`cleanup of ${dir} failed: ${String(err)}`));
    await rm(dir, { recursive: true, force: true });
  }
}

function cell(s: Summary | undefined, digits: number): string {
  if (!s) return '—';
  return `${s.median.toFixed(digits)} [${s.min.toFixed(digits)}–${s.max.toFixed(digits)}]`;
}

function report(samples: RunSample[], when: string): string {
  const up = summarize(samples.map((s) => s.upSeconds));
  const idleRss = summarize(samples.map((s) => s.idle.rssMiB));
  const idlePss = summarize(samples.map((s) => s.idle.pssMiB));
  const demoRss = summarize(samples.map((s) => s.demo?.rssMiB));
  const demoPss = summarize(samples.map((s) => s.demo?.pssMiB));
  const demoReady = summarize(samples.map((s) => s.demoReadySeconds));
  const lines = [
    `## amesh sandbox up (2 workers) — ${when}`,
    '',
    `Node ${process.version}, kernel ${release()}, ${cpus().length} CPUs. Median of ${samples.length} runs [min–max].`,
    '',
    '| measure | value | target |',
    '|---|---:|---:|',
    `| \`sandbox up\` wall time, s (amesh installed, agents Ready) | ${cell(up, 2)} | < ${TARGET_UP_SECONDS} |`,
    `| idle: processes | ${samples[0]?.idle.processes ?? '—'} | |`,
    `| idle: total RSS, MiB | ${cell(idleRss, 0)} | < ${TARGET_TOTAL_MB} |`,
    `| idle: total PSS, MiB | ${cell(idlePss, 0)} | |`,
  ];
  if (demoRss) {
    lines.push(
      `| demo app available after apply, s | ${cell(demoReady, 2)} | |`,
      `| with the demo: processes | ${samples[0]?.demo?.processes ?? '—'} | |`,
      `| with the demo: total RSS, MiB | ${cell(demoRss, 0)} | |`,
      `| with the demo: total PSS, MiB | ${cell(demoPss, 0)} | |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const program = new Command('bench-sandbox')
    .description('time `amesh sandbox up` (2 workers) and measure the whole sandbox\'s memory')
    .option('--runs <n>', 'repetitions (median and spread are reported)', positiveInt, 3)
    .option('--no-demo', 'do not deploy the demo app for the loaded memory figure')
    .option('--out-dir <dir>', 'where the JSON and Markdown results go', join(REPO_ROOT, 'bench', 'results'))
    .parse();
  const o = program.opts<{ runs: number; demo: boolean; outDir: string }>();
  if (process.getuid?.() !== 0) throw new Error('the sandbox benchmark creates network namespaces: run it as root (sudo npm run bench:sandbox)');
  const progress = new Progress(o.runs);
  const samples: RunSample[] = [];
  for (let run = 1; run <= o.runs; run++) {
    progress.step(`sandbox up, run ${run}/${o.runs}${o.demo ? ' (then the demo app)' : ''}`);
    samples.push(await oneRun(run, o.demo, progress));
  }
  const when = new Date().toISOString();
  const markdown = report(samples, when);
  await mkdir(o.outDir, { recursive: true });
  const stem = join(o.outDir, `sandbox-${when.replace(/[:.]/g, '-')}`);
  await writeFile(`${stem}.json`, `${JSON.stringify({ when, node: process.version, kernel: release(), samples }, null, 2)}\n`);
  await writeFile(`${stem}.md`, markdown);
  process.stdout.write(markdown);
  process.stderr.write(`wrote ${stem}.json and .md\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-sandbox: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
