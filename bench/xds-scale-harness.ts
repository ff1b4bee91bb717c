/**
 * The xDS scale bench (issue #5) as a function, so the CLI (xds-scale.ts) stays thin and a smoke
 * test can run it small:
 *   1. the sandbox API server in this process, the mesh written straight into its store
 *      (xds-scale-cluster.ts);
 *   2. the controller as a child process (xds-scale-controller.ts: `amesh controller` on
 *      127.0.0.1), until /healthz/ready answers 200 and its root is published;
 *   3. `agents` node agents (XdsStateSource, each on a worker thread, xds-scale-agent.ts) on
 *      different nodes, started together: full push = start() → first full state applied;
 *   4. once the cluster is quiet (every pod on an agent's node annotated `enabled` by the
 *      controller, no API write for a second, no push pending), `changes` pod label flips
 *      (`istio.io/dataplane-mode: none` and back), each timed from the store write until every
 *      agent applied the Workload's new tunnel protocol;
 *   5. the controller's VmRSS / VmHWM (/proc/<pid>/status) after 3 and after 4.
 *
 * Every wait is bounded by `timeoutMs`. Whatever happens, the agents, the controller (by pid,
 * SIGTERM then SIGKILL) and the API server are stopped and the temporary directory is removed.
 * The controller and the agent threads run compiled code: `npm run build:ts` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { readControllerConfig } from '../src/config/controller-config.js';
import { controllerDnsNames } from '../src/controller/ca/root-store.js';
import { TRUST_BUNDLE_CONFIGMAP, TRUST_BUNDLE_KEY } from '../src/controller/ca/trust-bundle-publisher.js';
import { DEFAULT_DEBOUNCE_MS } from '../src/controller/xds/ads-server.js';
import { REDIRECTION_ANNOTATION } from '../src/controller/status/redirection.js';
import { REPO_ROOT } from '../src/sandbox/install.js';
import type { KubeObject } from '../src/sandbox/apiserver/types.js';
import { clockTicksPerSecond, parseProcStat } from './proc-stat.js';
import { AGENT_NAMESPACE, nodeName, setDataplaneMode, startBenchCluster, type BenchCluster, type PodRef } from './xds-scale-cluster.js';
import type { ControllerListening } from './xds-scale-controller.js';
import type { AgentCommand, AgentEvent, AgentJob } from './xds-scale-protocol.js';
import { judgeTargets, percentile, type AgentFullPush, type IncrementalChange, type MemorySample, type XdsScaleResult } from './xds-scale-report.js';

export interface XdsScaleOptions {
  pods: number;
  services: number;
  nodes: number;
  agents: number;
  changes: number;
  /** Namespaces labelled ambient (default 50, at most one per service). */
  namespaces?: number;
  /** Pause between two changes (default 250 ms): each change is measured on its own. */
  gapMs?: number;
  /** Bound of every wait (default 120 s). */
  timeoutMs?: number;
  /** Progress lines (default: none). */
  progress?: { step(text: string): void; info(text: string): void };
  /** Where dist/ is (default the repository root). */
  repoRoot?: string;
  /** Extra `node` flags for the controller, for profiling (e.g. `--trace-gc`, `--cpu-prof`). */
  controllerNodeArgs?: string[];
  /** Append the controller's stdout and stderr to this file (default: keep only a tail of stderr). */
  controllerOutput?: string;
}

/** The number of progress steps `runXdsScale` reports. */
export const XDS_SCALE_STEPS = 6;

const TRUST_DOMAIN = 'cluster.local';
/** The store must stay unchanged this long (and no push be pending) before the changes start. */
const QUIET_MS = 1000;
const POLL_MS = 50;
const LOG_TAIL_BYTES = 16 * 1024;

const now = (): number => performance.timeOrigin + performance.now();
const round = (v: number): number => Math.round(v * 10) / 10;

/** Polls `probe` until it returns a value, or throws naming `what` after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, check?: () => void): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    check?.();
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(POLL_MS);
  }
}

/** Resolves with the first `type` event matching `accept`, rejects on an agent error, exit or timeout. */
class AgentThread {
  private readonly buffered: AgentEvent[] = [];
  private readonly waiters = new Set<{ accept: (e: AgentEvent) => boolean; resolve: (e: AgentEvent) => void; reject: (err: Error) => void }>();
  private failure: Error | undefined;

  constructor(
    readonly node: string,
    readonly worker: Worker,
  ) {
    worker.on('message', (event: AgentEvent) => {
      if (event.type === 'error') return this.fail(new Error(`agent ${node}: ${event.message}`));
      for (const w of this.waiters) {
        if (w.accept(event)) {
          this.waiters.delete(w);
          w.resolve(event);
          return;
        }
      }
      this.buffered.push(event);
    });
    worker.on('error', (err) => this.fail(new Error(`agent ${node} thread failed: ${err.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`agent ${node} thread exited (code ${code})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
  }

  send(command: AgentCommand): void {
    this.worker.postMessage(command);
  }

  next<K extends AgentEvent['type']>(type: K, timeoutMs: number, accept: (e: Extract<AgentEvent, { type: K }>) => boolean = () => true): Promise<Extract<AgentEvent, { type: K }>> {
    const matches = (e: AgentEvent): e is Extract<AgentEvent, { type: K }> => e.type === type && accept(e as Extract<AgentEvent, { type: K }>);
    const index = this.buffered.findIndex(matches);
    if (index >= 0) return Promise.resolve(this.buffered.splice(index, 1)[0] as Extract<AgentEvent, { type: K }>);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`agent ${this.node}: no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        accept: matches,
        resolve: (e: AgentEvent) => {
          clearTimeout(timer);
          resolve(e as Extract<AgentEvent, { type: K }>);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Closes the source (bounded), then ends the thread. */
  async close(timeoutMs: number): Promise<void> {
    if (!this.failure) {
      this.send({ type: 'close' });
      await this.next('closed', timeoutMs).catch(() => undefined);
    }
    await this.worker.terminate();
  }
}

/** The controller child: its stderr tail for error messages, and stopping it by pid. */
class ControllerProcess {
  private tail = '';
  lines = 0;
  exited = false;
  private readonly exit: Promise<unknown>;
  private readonly killOnExit = (): void => this.signal('SIGKILL');

  constructor(
    readonly child: ChildProcess,
    outputFile?: string,
  ) {
    const output = outputFile ? createWriteStream(outputFile, { flags: 'a' }) : undefined;
    this.exit = once(child, 'exit').then(() => (this.exited = true));
    child.once('close', () => output?.end());
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      output?.write(chunk);
      this.lines += chunk.split('\n').length - 1;
      this.tail = (this.tail + chunk).slice(-LOG_TAIL_BYTES);
    });
    // Only profiling flags (--trace-gc) write there; drained either way so the child never blocks.
    child.stdout?.on('data', (chunk: Buffer) => output?.write(chunk));
    // Safety net: this process ending for any reason takes the controller with it.
    process.on('exit', this.killOnExit);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('the controller process has no pid (spawn failed)');
    return this.child.pid;
  }

  logTail(lines = 20): string {
    return this.tail.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Throws when the controller is gone (used inside waits). */
  checkAlive(): void {
    if (this.exited) throw new Error(`the controller exited (code ${this.child.exitCode}, signal ${this.child.signalCode}); its log ends:\n${this.logTail()}`);
  }

  private signal(name: NodeJS.Signals): void {
    if (this.exited || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, name);
    } catch {
      // already gone
    }
  }

  /** SIGTERM by pid, SIGKILL if it has not exited after `graceMs`; bounded either way. */
  async stop(graceMs: number): Promise<void> {
    if (!this.exited && this.child.pid !== undefined) {
      this.signal('SIGTERM');
      const kill = setTimeout(() => this.signal('SIGKILL'), graceMs);
      await Promise.race([this.exit, delay(graceMs + 5000, undefined, { ref: false })]);
      clearTimeout(kill);
    }
    process.off('exit', this.killOnExit);
  }
}

interface ProcessSample {
  memory: MemorySample;
  cpuSeconds: number;
}

/** VmRSS and VmHWM from /proc/<pid>/status, utime + stime from /proc/<pid>/stat. */
async function sampleProcess(pid: number, hz: number): Promise<ProcessSample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(match[1]);
  };
  const stat = parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  if (!stat) throw new Error(`cannot parse /proc/${pid}/stat`);
  return { memory: { rssMiB: round(kib('VmRSS') / 1024), hwmMiB: round(kib('VmHWM') / 1024) }, cpuSeconds: (stat.utime + stat.stime) / hz };
}


interface DebugXds {
  published?: { durationMs?: number };
  connections?: Array<{ nodeName?: string; typeUrls?: Record<string, { pending?: boolean }> }>;
}

async function getJson<T>(url: string): Promise<{ status: number; body: T | undefined }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as T) : undefined };
  } catch {
    return { status: 0, body: undefined };
  }
}

function validate(o: XdsScaleOptions): void {
  const whole = (name: string, v: number, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be a whole number ≥ ${min} (got ${v})`);
  };
  whole('pods', o.pods, 1);
  whole('services', o.services, 1);
  whole('nodes', o.nodes, 1);
  whole('agents', o.agents, 1);
  whole('changes', o.changes, 0);
  if (o.agents > o.nodes) throw new Error(`agents (${o.agents}) must not exceed nodes (${o.nodes}): one agent per node`);
}

export async function runXdsScale(o: XdsScaleOptions): Promise<XdsScaleResult> {
  validate(o);
  const namespaces = o.namespaces ?? 50;
  const gapMs = o.gapMs ?? 250;
  const timeoutMs = o.timeoutMs ?? 120_000;
  const progress = o.progress ?? { step: () => undefined, info: () => undefined };
  const root = o.repoRoot ?? REPO_ROOT;
  const controllerEntry = join(root, 'dist', 'bench', 'xds-scale-controller.js');
  const agentEntry = join(root, 'dist', 'bench', 'xds-scale-agent.js');
  for (const file of [controllerEntry, agentEntry]) if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build:ts\` first`);

  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg();
  const notes: string[] = [];
  const hz = await clockTicksPerSecond();
  const dir = await mkdtemp(join(tmpdir(), 'amesh-bench-xds-'));
  let cluster: BenchCluster | undefined;
  let controller: ControllerProcess | undefined;
  const agents: AgentThread[] = [];
  try {
    // 1. The cluster.
    progress.step(`API server with ${o.pods} pods, ${o.services} services, ${o.nodes} nodes, ${Math.min(namespaces, o.services)} ambient namespaces`);
    cluster = await startBenchCluster({ pods: o.pods, services: o.services, nodes: o.nodes, namespaces }, (line) => progress.info(line));
    const bench = cluster;
    progress.info(`expecting ${bench.expected.workloads} workloads and ${bench.expected.services} services at every agent`);
    const kubeconfig = join(dir, 'kubeconfig.json');
    await writeFile(kubeconfig, bench.kubeConfigJson, { mode: 0o600 });

    // 2. The controller.
    progress.step('controller (child process, 127.0.0.1)');
    const env: NodeJS.ProcessEnv = { ...process.env, AMESH_LOG_LEVEL: 'warn', AMESH_CA_PORT: '0', AMESH_READINESS_PORT: '0' };
    delete env.KUBERNETES_SERVICE_HOST;
    const config = readControllerConfig(env);
    const spawnedAt = now();
    const child = spawn(process.execPath, [...(o.controllerNodeArgs ?? []), controllerEntry, kubeconfig], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const ctl = new ControllerProcess(child, o.controllerOutput);
    controller = ctl;
    const listening = await new Promise<ControllerListening>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the controller did not listen within ${timeoutMs} ms; its log ends:\n${ctl.logTail()}`)), timeoutMs);
      child.on('message', (m: ControllerListening) => {
        if (m?.type !== 'listening') return;
        clearTimeout(timer);
        resolve(m);
      });
      child.once('exit', () => {
        clearTimeout(timer);
        // Let the stderr pipe drain so the tail names the reason.
        setImmediate(() => reject(new Error(`the controller exited before listening (code ${child.exitCode}); its log ends:\n${ctl.logTail()}`)));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const readinessUrl = `http://127.0.0.1:${listening.readinessPort}`;
    await until('controller readiness 200', timeoutMs, async () => ((await getJson(`${readinessUrl}/healthz/ready`)).status === 200 ? true : undefined), () => ctl.checkAlive());
    const startupMs = now() - spawnedAt;
    progress.info(`ready after ${startupMs.toFixed(0)} ms (gRPC ${listening.caPort}, readiness ${listening.readinessPort})`);
    const rootPem = await until(
      `ConfigMap ${AGENT_NAMESPACE}/${TRUST_BUNDLE_CONFIGMAP}`,
      timeoutMs,
      () => bench.store.get<KubeObject & { data?: Record<string, string> }>('v1', 'ConfigMap', AGENT_NAMESPACE, TRUST_BUNDLE_CONFIGMAP)?.data?.[TRUST_BUNDLE_KEY],
      () => ctl.checkAlive(),
    );
    const atStart = await sampleProcess(ctl.pid, hz);

    // 3. Agents and the full push.
    progress.step(`${o.agents} agents connect; full push`);
    const agentNodes = Array.from({ length: o.agents }, (_, i) => nodeName(Math.floor((i * o.nodes) / o.agents)));
    for (const [i, node] of agentNodes.entries()) {
      const tokenFile = join(dir, `token-${node}`);
      await writeFile(tokenFile, await bench.agentToken(node), { mode: 0o600 });
      const job: AgentJob = {
        address: `127.0.0.1:${listening.caPort}`,
        rootPem,
        serverName: controllerDnsNames(config.namespace)[0] as string,
        tokenFile,
        nodeName: node,
        podNamespace: AGENT_NAMESPACE,
        podIp: `172.18.0.${i + 2}`,
        trustDomain: TRUST_DOMAIN,
      };
      agents.push(new AgentThread(node, new Worker(agentEntry, { workerData: job })));
    }
    await Promise.all(agents.map((a) => a.next('loaded', timeoutMs)));
    const fullEvents = agents.map((a) => a.next('full', timeoutMs));
    for (const a of agents) a.send({ type: 'start' });
    const fulls = await Promise.all(fullEvents);
    const fullPushAgents: AgentFullPush[] = fulls.map((f, i) => ({
      node: agents[i]?.node ?? '',
      ms: round(f.appliedAt - f.startedAt),
      firstResponseMs: round(f.firstResponseAt - f.startedAt),
      afterFirstResponseMs: round(f.appliedAt - f.firstResponseAt),
      responses: f.responses,
      workloads: f.workloads,
      services: f.services,
      authorizations: f.authorizations,
      nacks: f.nacks,
      countsOk: f.workloads === bench.expected.workloads && f.services === bench.expected.services && f.nacks === 0,
    }));
    for (const a of fullPushAgents) {
      progress.info(`${a.node}: ${a.ms.toFixed(0)} ms (${a.workloads} workloads, ${a.services} services${a.countsOk ? '' : ', COUNTS WRONG'})`);
      if (!a.countsOk) notes.push(`${a.node} got ${a.workloads} workloads / ${a.services} services / ${a.nacks} NACKed, expected ${bench.expected.workloads} / ${bench.expected.services} / 0`);
    }
    const afterFull = await sampleProcess(ctl.pid, hz);

    // 4. Quiet: the controller's follow-up writes (redirection annotations of the agents' pods) done, nothing pending.
    progress.step('waiting for the cluster and the controller to settle');
    const settleStartedAt = now();
    const versionAtFullPush = Number(bench.store.currentResourceVersion());
    let lastVersion = bench.store.currentResourceVersion();
    let quietSince = now();
    let publicationMs: number | undefined;
    // Every pod on an agent's node ends `enabled` once its agent ACKed (all bench namespaces are ambient).
    const podsOnAgentNodes = bench.pods.filter((p) => agentNodes.includes(p.node)).length;
    const enabledPods = (): number =>
      bench.store.list('v1', 'Pod').items.filter((p) => agentNodes.includes(String((p.spec as { nodeName?: string } | undefined)?.nodeName)) && p.metadata.annotations?.[REDIRECTION_ANNOTATION] === 'enabled').length;
    await until(
      'a quiet cluster (every agent-node pod annotated enabled, no writes, no xDS push pending)',
      timeoutMs,
      async () => {
        const version = bench.store.currentResourceVersion();
        if (version !== lastVersion) {
          lastVersion = version;
          quietSince = now();
          return undefined;
        }
        if (now() - quietSince < QUIET_MS) return undefined;
        // A loaded machine slows the controller's annotation writes enough to leave quiet
        // seconds between them: quiet alone could start the changes while they still run.
        if (enabledPods() < podsOnAgentNodes) return undefined;
        const debug = (await getJson<DebugXds>(`${readinessUrl}/debug/xds`)).body;
        const connected = debug?.connections?.filter((c) => agentNodes.includes(c.nodeName ?? '')) ?? [];
        const pending = connected.some((c) => Object.values(c.typeUrls ?? {}).some((t) => t.pending));
        if (connected.length < agents.length || pending) return undefined;
        publicationMs = debug?.published?.durationMs;
        return true;
      },
      () => ctl.checkAlive(),
    );
    const settled = await sampleProcess(ctl.pid, hz);
    // The quiet second at the end is the bench's own wait, not the controller's work.
    const settle = { ms: round(quietSince - settleStartedAt), writes: Number(lastVersion) - versionAtFullPush };
    progress.info(`quiet after ${settle.writes} API writes in ${settle.ms.toFixed(0)} ms; controller VmRSS ${settled.memory.rssMiB} MiB, VmHWM ${settled.memory.hwmMiB} MiB`);

    // 5. Incremental changes.
    progress.step(`${o.changes} pod changes (istio.io/dataplane-mode none ↔ namespace default)`);
    const changes: IncrementalChange[] = [];
    const optedOut = new Set<string>();
    for (let seq = 0; seq < o.changes; seq++) {
      // Pairs of changes on one pod (opt out, then back), pods spread over nodes and namespaces.
      const pod = bench.pods[(Math.floor(seq / 2) * 7919 + 13) % bench.pods.length] as PodRef;
      const optOut = !optedOut.has(pod.uid);
      const tunnelProtocol = optOut ? 'NONE' : 'HBONE';
      for (const a of agents) a.send({ type: 'watch', seq, uid: pod.uid, tunnelProtocol });
      await Promise.all(agents.map((a) => a.next('armed', timeoutMs, (e) => e.seq === seq)));
      const seen = agents.map((a) => a.next('seen', timeoutMs, (e) => e.seq === seq));
      const writtenAt = now();
      setDataplaneMode(bench.store, pod, optOut ? 'none' : undefined);
      if (optOut) optedOut.add(pod.uid);
      else optedOut.delete(pod.uid);
      const events = await Promise.all(seen);
      const appliedMs = events.map((e) => round(e.appliedAt - writtenAt));
      const change: IncrementalChange = {
        seq,
        sinceSpawnMs: round(writtenAt - spawnedAt),
        pod: `${pod.namespace}/${pod.name}`,
        node: pod.node,
        tunnelProtocol,
        appliedMs,
        arrivedMs: events.map((e) => round(e.arrivedAt - writtenAt)),
        maxMs: Math.max(...appliedMs),
      };
      const published = (await getJson<DebugXds>(`${readinessUrl}/debug/xds`)).body?.published?.durationMs;
      if (published !== undefined) change.publicationMs = published;
      changes.push(change);
      progress.info(`change ${seq + 1}/${o.changes}: ${change.pod} → ${tunnelProtocol} at every agent after ${change.maxMs.toFixed(0)} ms`);
      ctl.checkAlive();
      if (seq + 1 < o.changes) await delay(gapMs);
    }
    const afterChanges = await sampleProcess(ctl.pid, hz);
    const loadAfterChanges = loadavg();

    // 6. Clean up (also in finally, for the error paths) and judge.
    progress.step('stopping the agents, the controller and the API server');
    const maxes = changes.map((c) => c.maxMs);
    const partial: Omit<XdsScaleResult, 'targets' | 'finishedAt'> = {
      schema: 1,
      startedAt,
      settings: {
        pods: o.pods,
        services: o.services,
        nodes: o.nodes,
        agents: o.agents,
        changes: o.changes,
        namespaces: Math.min(namespaces, o.services),
        gapMs,
        xdsDebounceMs: config.xdsDebounceMs,
        xdsDebounceIsDefault: config.xdsDebounceMs === DEFAULT_DEBOUNCE_MS,
        agentPath: 'XdsStateSource (DeltaXdsClient, TLS + bearer token, decode + checks), one worker thread per agent, apply = record time',
      },
      environment: {
        node: process.version,
        kernel: release(),
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        loadAverage: { atStart: loadAtStart.map(round), afterChanges: loadAfterChanges.map(round) },
      },
      expected: bench.expected,
      controller: {
        pid: ctl.pid,
        startupMs: round(startupMs),
        cpuSeconds: {
          startup: round(atStart.cpuSeconds * 100) / 100,
          fullPush: round((afterFull.cpuSeconds - atStart.cpuSeconds) * 100) / 100,
          settle: round((settled.cpuSeconds - afterFull.cpuSeconds) * 100) / 100,
          changes: round((afterChanges.cpuSeconds - settled.cpuSeconds) * 100) / 100,
        },
        ...(publicationMs !== undefined ? { publicationMs } : {}),
        settle,
        logLines: ctl.lines,
      },
      fullPush: { agents: fullPushAgents, maxMs: Math.max(...fullPushAgents.map((a) => a.ms)) },
      incremental: {
        changes,
        p50Ms: percentile(maxes, 50),
        p95Ms: percentile(maxes, 95),
        maxMs: maxes.length ? Math.max(...maxes) : Number.NaN,
        arrivedP50Ms: percentile(
          changes.map((c) => Math.max(...c.arrivedMs)),
          50,
        ),
      },
      memory: { afterFullPush: afterFull.memory, settled: settled.memory, afterChanges: afterChanges.memory },
      notes,
    };
    if (ctl.lines > 0) notes.push(`the controller logged ${ctl.lines} warn/error lines; the last: ${ctl.logTail(3)}`);
    return { ...partial, finishedAt: new Date().toISOString(), targets: judgeTargets(partial) };
  } finally {
    await Promise.all(agents.map((a) => a.close(5000)));
    await controller?.stop(10_000);
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
