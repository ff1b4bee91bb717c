/**
 * A/B of the waypoint's CPU per request (issue #11): the amesh-hbone path of the waypoint bench
 * (client → client agent ═HBONE═▶ waypoint ═HBONE═▶ dest agent → backend, bench/waypoint-roles.ts)
 * with the waypoint process taken from two builds, interleaved (A B B A A B …) on the same
 * machine, at a fixed open-loop rate. Per run: the waypoint's CPU-seconds (utime + stime from
 * /proc) per 10 000 completed requests, and the load average.
 *
 *   node dist/bench/waypoint-cpu-ab.js --a /tmp/base/dist/bench/waypoint-roles.js \
 *     [--b dist/bench/waypoint-roles.js] [--rounds 3] [--rate 2000] [--seconds 20] [--connections 64]
 *
 * A runtime flag with one build: `--a dist/bench/waypoint-roles.js --b-node-args --single-threaded-gc`.
 * Two runtimes with one build: `--a dist/bench/waypoint-roles.js --b-node /path/to/node24/bin/node`
 * (the container images run Node 24; `npx -y -p node@24 node -p process.execPath` fetches one).
 *
 * A snapshot build for `--a`: `cp -r dist /tmp/base/dist; cp package.json /tmp/base/;
 * ln -s $PWD/node_modules /tmp/base/node_modules` before the change. The backends, agents and
 * load generator always come from this build. Progress on stderr, one JSON summary on stdout.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { generateCa } from '../src/identity/pki.js';
import { runBenchCli, wholeNumber } from './cli.js';
import { clockTicksPerSecond, parseProcStat } from './proc-stat.js';
import { openLoop } from './waypoint-load.js';
import { ProcessGroup, ROLES_ENTRY } from './waypoint-processes.js';
import type { RoleReady } from './waypoint-roles.js';
import { SERVICES } from './waypoint-topology.js';

interface CliOptions {
  a: string;
  b: string;
  rounds: number;
  rate: number;
  seconds: number;
  warmup: number;
  connections: number;
  nodeArgs?: string;
  aNodeArgs?: string;
  bNodeArgs?: string;
  aNode: string;
  bNode: string;
}

interface Run {
  variant: 'A' | 'B';
  round: number;
  completed: number;
  errors: number;
  cpuSeconds: number;
  /** Of which in the kernel (stime). */
  sysSeconds: number;
  cpuSecondsPer10k: number;
  p99Ms: number;
  load1: number;
}

const fmt = (n: number, d = 3): string => n.toFixed(d);

/** utime and stime of one process (the waypoint has no children), in ticks. */
async function ticks(pid: number): Promise<{ user: number; sys: number }> {
  const stat = parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  if (!stat) throw new Error(`cannot parse /proc/${pid}/stat`);
  return { user: stat.utime, sys: stat.stime };
}

/** Space-separated flag lists, in order. */
function flags(...lists: Array<string | undefined>): string[] {
  return lists.flatMap((l) => l?.split(/\s+/).filter(Boolean) ?? []);
}

async function main(): Promise<void> {
  const o = new Command('bench-waypoint-cpu-ab')
    .description("A/B of the waypoint's CPU-seconds per 10 000 requests (HBONE both hops), interleaved")
    .requiredOption('--a <roles.js>', 'waypoint-roles.js of the baseline build')
    .option('--b <roles.js>', 'waypoint-roles.js of the candidate build', ROLES_ENTRY)
    .option('--rounds <n>', 'runs per variant', wholeNumber(1, 50), 3)
    .option('--rate <n>', 'open-loop requests per second', wholeNumber(1, 50_000), 2000)
    .option('--seconds <s>', 'measured seconds per run', wholeNumber(1, 600), 20)
    .option('--warmup <s>', 'warm-up seconds per run (not measured)', wholeNumber(0, 60), 3)
    .option('--connections <n>', 'client connections', wholeNumber(1, 1024), 64)
    .option('--node-args <flags>', 'extra node flags for the waypoint (e.g. --cpu-prof)')
    .option('--a-node-args <flags>', "extra node flags for A's waypoint only, after --node-args (A/B of a runtime flag with one build: --a and --b the same)")
    .option('--b-node-args <flags>', "extra node flags for B's waypoint only, after --node-args")
    .option('--a-node <path>', "the node binary for A's waypoint", process.execPath)
    .option('--b-node <path>', "the node binary for B's waypoint (A/B of two runtimes with one build)", process.execPath)
    .parse()
    .opts<CliOptions>();
  const hz = await clockTicksPerSecond();
  const dir = await mkdtemp(join(tmpdir(), 'amesh-wp-cpu-ab-'));
  const group = new ProcessGroup(dir);
  process.once('exit', () => group.killNow());
  const runs: Run[] = [];
  try {
    const caFile = join(dir, 'ca.json');
    await writeFile(caFile, JSON.stringify(await generateCa({ trustDomain: 'cluster.local', validityDays: 1 })), { mode: 0o600 });
    const { ready: b } = await group.role('backends', 'backends', { bytes: 1024 }, 30_000);
    const dest = await group.role('dest-agent', 'dest-agent', { caFile }, 30_000);
    // A B, B A, A B, … : neither variant always runs first.
    for (let round = 0; round < o.rounds; round++) {
      const order: Array<'A' | 'B'> = round % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
      for (const variant of order) {
        const entry = variant === 'A' ? o.a : o.b;
        const wp = await group.roleAt<Extract<RoleReady, { role: 'waypoint' }>>(
          entry,
          `waypoint-${variant}-${round}`,
          'waypoint',
          { caFile, backends: b.ports, destAgentPort: dest.ready.port, accessLog: false },
          30_000,
          flags(o.nodeArgs, variant === 'A' ? o.aNodeArgs : o.bNodeArgs),
          variant === 'A' ? o.aNode : o.bNode,
        );
        const client = await group.role(`client-agent-${variant}-${round}`, 'client-agent', { caFile, waypointPort: wp.ready.hbonePort, vips: [SERVICES.hbone.vip] }, 30_000);
        const port = client.ready.ports[SERVICES.hbone.vip]!;
        if (o.warmup > 0) await openLoop(port, { rate: o.rate, connections: o.connections, seconds: o.warmup, warmup: 0 });
        const before = await ticks(wp.started.pid);
        const r = await openLoop(port, { rate: o.rate, connections: o.connections, seconds: o.seconds, warmup: 0 });
        const after = await ticks(wp.started.pid);
        const sysSeconds = (after.sys - before.sys) / hz;
        const cpuSeconds = (after.user - before.user) / hz + sysSeconds;
        const run: Run = {
          variant,
          round,
          completed: r.completed,
          errors: r.errors,
          cpuSeconds,
          sysSeconds,
          cpuSecondsPer10k: r.completed > 0 ? (cpuSeconds / r.completed) * 10_000 : NaN,
          p99Ms: r.latencyMs.p99,
          load1: loadavg()[0] ?? 0,
        };
        runs.push(run);
        process.stderr.write(`${variant} round ${round + 1}: ${r.completed} requests (${r.errors} errors), waypoint ${fmt(cpuSeconds, 2)} CPU-s (sys ${fmt(sysSeconds, 2)}) → ${fmt(run.cpuSecondsPer10k)} CPU-s per 10k, p99 ${fmt(run.p99Ms, 2)} ms, load ${fmt(run.load1, 2)}\n`);
        await group.stop(client.started);
        await group.stop(wp.started);
      }
    }
  } finally {
    await group.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
  const summary = (v: 'A' | 'B'): { per10k: number[]; median: number; load: number[] } => {
    const per10k = runs.filter((r) => r.variant === v).map((r) => Number(fmt(r.cpuSecondsPer10k)));
    const sorted = [...per10k].sort((x, y) => x - y);
    return { per10k, median: sorted[Math.floor(sorted.length / 2)] ?? NaN, load: runs.filter((r) => r.variant === v).map((r) => Number(fmt(r.load1, 2))) };
  };
  const A = summary('A');
  const B = summary('B');
  process.stdout.write(`${JSON.stringify({ settings: { rate: o.rate, seconds: o.seconds, connections: o.connections, rounds: o.rounds, nodeArgs: { all: flags(o.nodeArgs), A: flags(o.aNodeArgs), B: flags(o.bNodeArgs) }, node: { A: o.aNode, B: o.bNode } }, A, B, ratio: Number(fmt(B.median / A.median)), runs })}\n`);
}

runBenchCli('bench-waypoint-cpu-ab', main);
