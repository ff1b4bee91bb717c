/**
 * The measurement of bench/relay-layers.ts (the CLI), also run by its smoke test: see that file for
 * what is measured and why.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCa } from '../src/identity/pki.js';
import { REPO_ROOT } from '../src/sandbox/install.js';
import { clockTicksPerSecond, CpuMeter } from './proc-stat.js';
import { TRUST_DOMAIN, type RelayLayer, type RelayLayersReady } from './relay-layers-topology.js';
import { describeSettle, waitForQuiet } from './settle.js';
import { median } from './stats.js';
import { openLoop } from './waypoint-load.js';
import { freePort, ProcessGroup, waitForPort, isRunning } from './waypoint-processes.js';

const ROLES_ENTRY = join(REPO_ROOT, 'dist', 'bench', 'relay-layers-roles.js');
const BACKEND_ENTRY = join(REPO_ROOT, 'dist', 'bench', 'http-server.js');
const READY_TIMEOUT_MS = 15_000;

export interface RelayLayersOptions {
  layers: RelayLayer[];
  rounds: number;
  seconds: number;
  warmup: number;
  rate: number;
  connections: number;
  bytes: number;
  /** Wait (at most 20 s) for the machine to be below 15 % busy before each run (bench/settle.ts); off in the smoke test, which shares the machine with other tests. */
  settle: boolean;
}

export interface LayerRun {
  layer: RelayLayer;
  round: number;
  requests: number;
  errors: number;
  nearCpuPer10k: number;
  farCpuPer10k: number;
  p50Ms: number;
  p99Ms: number;
  load1: number;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
const fmt = (n: number | undefined, digits = 3): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));

export interface LayerSummary {
  layer: RelayLayer;
  nearCpuPer10k: number | undefined;
  farCpuPer10k: number | undefined;
  p50Ms: number | undefined;
}

export interface RelayLayersProgress {
  step(text: string): void;
  info(text: string): void;
}

/** Steps `runRelayLayers` reports through `progress.step` (for a counted progress display). */
export const relayLayersSteps = (o: RelayLayersOptions): number => 3 + o.rounds * o.layers.length;

/**
 * Starts the backend and every layer's relays (children, in a temporary directory), runs the
 * interleaved rounds, and stops every child by pid whatever happens. `onRun` sees each run as it
 * ends. Throws if a run had failed requests (its figures would not be comparable); the children's
 * logs are then kept and named in the error.
 */
export async function runRelayLayers(o: RelayLayersOptions, progress: RelayLayersProgress, onRun: (run: LayerRun) => void = () => {}): Promise<{ runs: LayerRun[]; summary: LayerSummary[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'amesh-relay-layers-'));
  const group = new ProcessGroup(dir);
  const killOnExit = (): void => group.killNow();
  process.on('exit', killOnExit);
  try {
    const result = await measure(group, o, progress, onRun);
    await group.stopAll();
    await rm(dir, { recursive: true, force: true });
    return result;
  } catch (err) {
    await group.stopAll();
    throw new Error(`${err instanceof Error ? err.message : String(err)} (children's logs: ${dir})`, { cause: err });
  } finally {
    process.off('exit', killOnExit);
  }
}

async function measure(group: ProcessGroup, o: RelayLayersOptions, progress: RelayLayersProgress, onRun: (run: LayerRun) => void): Promise<{ runs: LayerRun[]; summary: LayerSummary[] }> {
  progress.step(`creating a TLS certificate (ECDSA P-256) and starting the backend (${o.bytes}-byte answers)`);
  const ca = await generateCa({ trustDomain: TRUST_DOMAIN, validityDays: 1, commonName: '127.0.0.1' });
  const backendPort = await freePort();
  const backend = group.spawn('backend', process.execPath, [BACKEND_ENTRY, '--host', '127.0.0.1', '--port', String(backendPort), '--bytes', String(o.bytes)]);
  await waitForPort(backendPort, READY_TIMEOUT_MS, () => isRunning(backend));

  progress.step(`starting a near and a far relay per layer: ${o.layers.join(', ')}`);
  const relays = new Map<RelayLayer, { nearPort: number; nearPid: number; farPid: number }>();
  for (const layer of o.layers) {
    const far = await group.roleAt<RelayLayersReady>(ROLES_ENTRY, `far-${layer}`, 'far', { layer, backendPort, ca }, READY_TIMEOUT_MS);
    const near = await group.roleAt<RelayLayersReady>(ROLES_ENTRY, `near-${layer}`, 'near', { layer, farPort: far.ready.port, ca }, READY_TIMEOUT_MS);
    relays.set(layer, { nearPort: near.ready.port, nearPid: near.started.pid, farPid: far.started.pid });
  }

  const meter = new CpuMeter(await clockTicksPerSecond());
  const runs: LayerRun[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const layer of o.layers) {
      const r = relays.get(layer)!;
      progress.step(`${layer}: ${o.rate} req/s over ${o.connections} connections for ${o.warmup} + ${o.seconds} s, round ${round + 1}/${o.rounds}`);
      const settled = o.settle ? describeSettle(await waitForQuiet()) : undefined;
      if (settled) progress.info(settled);
      const { result: report, cpuSeconds } = await meter.measureGroups({ near: [r.nearPid], far: [r.farPid] }, () => openLoop(r.nearPort, o));
      const requests = report.completed + report.warmupRequests;
      const run: LayerRun = {
        layer,
        round: round + 1,
        requests,
        errors: report.errors,
        nearCpuPer10k: requests > 0 ? round3((cpuSeconds.near / requests) * 10_000) : NaN,
        farCpuPer10k: requests > 0 ? round3((cpuSeconds.far / requests) * 10_000) : NaN,
        p50Ms: report.latencyMs.p50,
        p99Ms: report.latencyMs.p99,
        load1: loadavg()[0] ?? NaN,
      };
      runs.push(run);
      onRun(run);
      progress.info(`near ${fmt(run.nearCpuPer10k)} / far ${fmt(run.farCpuPer10k)} CPU-s per 10 000 requests, p50 ${fmt(run.p50Ms)} ms, ${run.errors} errors`);
      if (report.errors > 0) throw new Error(`${layer}: ${report.errors} requests failed (${JSON.stringify(report.errorKinds)}): its figures would not be comparable`);
    }
  }

  progress.step('summary (median of the rounds)');
  const summary = o.layers.map((layer): LayerSummary => {
    const mine = runs.filter((r) => r.layer === layer);
    return {
      layer,
      nearCpuPer10k: median(mine.map((r) => r.nearCpuPer10k)),
      farCpuPer10k: median(mine.map((r) => r.farCpuPer10k)),
      p50Ms: median(mine.map((r) => r.p50Ms)),
    };
  });
  for (const s of summary) progress.info(`${s.layer.padEnd(9)} near ${fmt(s.nearCpuPer10k)}  far ${fmt(s.farCpuPer10k)} CPU-s per 10 000 requests, p50 ${fmt(s.p50Ms)} ms`);
  return { runs, summary };
}
