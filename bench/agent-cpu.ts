/**
 * `node dist/bench/agent-cpu.js`: CPU-seconds each node agent spends per 10 000 requests on the
 * L4 HBONE path (client pod → node1 agent ══ HBONE ══▶ node2 agent → server pod: the `amesh` path
 * of bench/testbed.ts, eBPF capture unless `--capture-mode nftables`) at a fixed open-loop rate.
 * For A/B comparisons of agent builds: run it alternately from two built trees (each tree's agent is the one it starts) and
 * compare the per-agent figures; the load average is printed with each run because the machine
 * is shared. `--profile-dir DIR` writes a V8 CPU profile of each agent there, written when the
 * agent exits at cleanup and then renamed client-agent.cpuprofile / server-agent.cpuprofile, with
 * a flame graph (.html) and a self-time summary (.md) of each beside it (bench/flamegraph-render.ts):
 * Node refuses `--cpu-prof` in NODE_OPTIONS, so the agents, which inherit NODE_OPTIONS
 * (bench/testbed.ts), get a preload that starts the inspector's profiler instead. Profiling costs
 * CPU: don't compare profiled runs' figures.
 *
 * `--new-connections`: instead of the open-loop keep-alive load, wrk with `Connection: close`
 * (scenario 4: a new TCP connection per request, `--connections` in flight, closed loop) — the
 * figures are then CPU-seconds per 10 000 new connections.
 *
 * One JSON line per measured run on stdout; progress on stderr.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { wholeNumber } from './cli.js';
import { CleanupStack } from './cleanup.js';
import { processProfile } from './flamegraph-render.js';
import { parseOpenLoopReport } from './load/open-loop.js';
import { wrkErrors } from './load/wrk.js';
import { resolveSettings } from './options.js';
import { clockTicksPerSecond, CpuMeter, parseProcStat } from './proc-stat.js';
import { Progress } from './progress.js';
import { runWrk } from './scenarios/maxrate.js';
import { LOAD_CLIENT, Testbed } from './testbed.js';

/** Agents are ready well within this (capture installed); the first run's load starts after it. */
const PROFILE_DELAY_MS = 10_000;

/** Preloaded into every process started with NODE_OPTIONS; profiles only node agents. */
const PROFILER_PRELOAD = `'use strict';
if (process.argv.includes('node-agent') && !process.argv.includes('--uninstall')) {
  const session = new (require('node:inspector').Session)();
  session.connect();
  // Not from the start: the sampler's SIGPROF interrupts the kernel's BPF verifier, whose
  // program load then fails with EAGAIN (the agent exits, or falls back to nftables capture).
  setTimeout(() => {
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 200 });
    session.post('Profiler.start');
  }, Number(process.env.BENCH_AGENT_PROFILE_DELAY_MS)).unref();
  // A same-thread session answers synchronously, so this completes inside 'exit'.
  process.on('exit', () => session.post('Profiler.stop', (err, result) => {
    if (!err) require('node:fs').writeFileSync(require('node:path').join(process.env.BENCH_AGENT_PROFILE_DIR, 'agent-' + process.pid + '.cpuprofile'), JSON.stringify(result.profile));
  }));
}
`;

/** Set by main when profiling: the directory, and which pid was which agent. */
let profiled: { dir: string; agents: Record<'client' | 'server', number> } | undefined;

async function main(cleanup: CleanupStack): Promise<void> {
  const o = new Command('bench-agent-cpu')
    .description('node agent CPU-seconds per 10 000 requests on the L4 HBONE path at a fixed rate')
    .option('--rate <n>', 'requests per second (open loop)', wholeNumber(1, 20_000), 2000)
    .option('--seconds <n>', 'measured seconds per run', wholeNumber(1, 600), 20)
    .option('--connections <n>', 'keep-alive connections', wholeNumber(1, 1024), 64)
    .option('--runs <n>', 'measured runs on one testbed', wholeNumber(1, 20), 1)
    .option('--new-connections', 'a new connection per request (wrk, Connection: close, closed loop) instead of the open-loop keep-alive load')
    .addOption(new Option('--capture-mode <mode>', "how the agents capture their pods' traffic").choices(['ebpf', 'nftables']).default('ebpf'))
    .option('--profile-dir <dir>', `write a V8 CPU profile of each agent, from ${PROFILE_DELAY_MS / 1000} s after its start, to this directory (created if missing)`)
    .parse()
    .opts<{ rate: number; seconds: number; connections: number; runs: number; newConnections?: boolean; captureMode: string; profileDir?: string }>();
  if (process.getuid?.() !== 0) throw new Error('the agent CPU benchmark creates network namespaces: run it as root');
  if (o.profileDir) {
    const dir = resolve(o.profileDir);
    await mkdir(dir, { recursive: true });
    const preload = join(dir, 'agent-profiler.cjs');
    await writeFile(preload, PROFILER_PRELOAD);
    process.env.BENCH_AGENT_PROFILE_DIR = dir;
    process.env.BENCH_AGENT_PROFILE_DELAY_MS = String(PROFILE_DELAY_MS);
    process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--require ${preload}`].filter(Boolean).join(' ');
  }
  const settings = resolveSettings({ paths: 'amesh', scenarios: 'latency', captureMode: o.captureMode });
  const progress = new Progress(Testbed.setupSteps(settings) + o.runs);
  const bed = await Testbed.start(settings, progress, cleanup);
  const meter = new CpuMeter(await clockTicksPerSecond());
  const ends = bed.endpoints('amesh');
  const [client, server] = bed.proxyPids('amesh');
  if (client === undefined || server === undefined) throw new Error('the testbed started no amesh agents');
  const pids = [client, server];
  if (o.profileDir) profiled = { dir: resolve(o.profileDir), agents: { client, server } };
  for (let run = 1; run <= o.runs; run++) {
    progress.step(o.newConnections ? `a new connection per request, ${o.connections} at a time, for ${o.seconds} s, run ${run}/${o.runs}` : `${o.rate} req/s over ${o.connections} connections for ${o.seconds} s, run ${run}/${o.runs}`);
    const load = loadavg()[0]!;
    const ticksBefore = await userSystemTicks(pids);
    let counts: Record<string, number>;
    let cpuSeconds: Record<'client' | 'server', number>;
    if (o.newConnections) {
      const measured = await meter.measureGroups({ client: [client], server: [server] }, () => runWrk({ path: 'amesh', run }, bed, meter, { connections: o.connections, seconds: o.seconds, headers: ['Connection: close'] }));
      const { report } = measured.result;
      cpuSeconds = measured.cpuSeconds;
      counts = { connections: Math.max(0, report.requests - report.statusErrors), connectionsPerSecond: Number(report.requestsPerSecond.toFixed(1)), errors: wrkErrors(report) };
    } else {
      const argv = [process.execPath, LOAD_CLIENT, '--host', ends.host, '--port', String(ends.httpPort), '--rate', String(o.rate), '--connections', String(o.connections), '--duration', String(o.seconds), '--warmup', '1'];
      const measured = await meter.measureGroups({ client: [client], server: [server] }, () => bed.topology.exec(ends.clientPod, argv, { timeoutMs: (o.seconds + 40) * 1000, allowFailure: true }));
      const report = parseOpenLoopReport(measured.result.stdout);
      cpuSeconds = measured.cpuSeconds;
      counts = { requests: o.connections + report.warmupRequests + report.completed + report.errors, errors: report.errors, achievedRate: report.achievedRate, p50Ms: report.latencyMs.p50, p99Ms: report.latencyMs.p99, p999Ms: report.latencyMs.p999, maxMs: report.latencyMs.max };
    }
    const ticks = (await userSystemTicks(pids)).map((t, i) => t - ticksBefore[i]!);
    const units = Math.max(1, counts.connections ?? counts.requests ?? 0);
    const per10k = (seconds: number): number => Number(((seconds / units) * 10_000).toFixed(3));
    process.stdout.write(
      `${JSON.stringify({
        ...counts,
        clientAgentCpuPer10k: per10k(cpuSeconds.client),
        serverAgentCpuPer10k: per10k(cpuSeconds.server),
        /** The kernel's share of each agent's CPU time (stime / (utime + stime)): client, server. */
        systemShare: [ticks[1]! / (ticks[0]! + ticks[1]! || 1), ticks[3]! / (ticks[2]! + ticks[3]! || 1)].map((f) => Number(f.toFixed(2))),
        loadavgBefore: Number(load.toFixed(2)),
        loadavgAfter: Number(loadavg()[0]!.toFixed(2)),
      })}\n`,
    );
  }
}

/** utime and stime (clock ticks) of each pid, flattened: [utime0, stime0, utime1, stime1, …]. */
async function userSystemTicks(pids: readonly number[]): Promise<number[]> {
  const stats = await Promise.all(pids.map(async (pid) => parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'))));
  return stats.flatMap((s) => [s?.utime ?? 0, s?.stime ?? 0]);
}

const cleanup = new CleanupStack((line) => process.stderr.write(`${line}\n`));
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup.run().then(() => process.exit(130)));
/** After cleanup stopped the agents (they write their profiles as they exit): name each by role, then render it. */
async function renderProfiles(): Promise<void> {
  if (!profiled) return;
  for (const [role, pid] of Object.entries(profiled.agents)) {
    const written = join(profiled.dir, `agent-${pid}.cpuprofile`);
    const named = join(profiled.dir, `${role}-agent.cpuprofile`);
    try {
      await rename(written, named);
    } catch (err) {
      process.stderr.write(`bench-agent-cpu: the ${role} agent (pid ${pid}) left no profile at ${written}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
      continue;
    }
    const r = await processProfile(named, { top: 25 });
    process.stderr.write(`${role} agent: flame graph ${r.html}, summary ${r.markdown}\n`);
  }
}

main(cleanup)
  .catch((err: unknown) => {
    process.stderr.write(`bench-agent-cpu: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup.run())
  .then(renderProfiles)
  .catch((err: unknown) => {
    process.stderr.write(`bench-agent-cpu: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
