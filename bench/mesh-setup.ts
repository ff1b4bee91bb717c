/**
 * Set-up steps shared by the bench's testbed (bench/testbed.ts) and the soak's topology
 * (bench/soak-topology.ts): polling with a deadline, log tails for error messages, the amesh CLI,
 * a free namespace prefix, waiting for a listener in a namespace, and starting node agents from
 * a local config with their capture installed and removed. Errors are raised with the caller's
 * error class (TestbedError, SoakTopologyError), so each harness keeps its own error code.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { nodeAgentNodeFlags } from '../src/config/runtime-flags.js';
import type { SpawnedProcess, Topology } from '../src/sandbox/network/topology.js';
import type { CleanupStack } from './cleanup.js';

/** dist/bench when compiled; the child programs are compiled next to this file. */
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** The repository: two levels up from dist/bench, one from bench/ (tests import the sources). */
export const REPO_DIR = ((up: string) => (basename(up) === 'dist' ? dirname(up) : up))(resolve(BENCH_DIR, '..'));
export const AMESH_CLI = join(REPO_DIR, 'bin', 'amesh.js');

/** The harness's error class: `new ErrorClass(message, { cause })`. */
export type SetupErrorClass = new (message: string, options?: { cause?: unknown }) => Error;

/** The last `lines` lines of a log file, or "(no log)". */
export async function tail(file: string, lines = 15): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Why `p` is gone ("pid 12 exited (code 1)"), or undefined while it runs. */
export const exited = (p: SpawnedProcess): string | undefined => {
  const status = p.exitStatus();
  return status ? `pid ${p.pid} exited (${status.signal ?? `code ${status.code}`})` : undefined;
};

/** Polls `probe` every 100 ms until it returns a value; fails after `timeoutMs` (with the last error) or when `dead()` names a reason. */
export async function until<T>(ErrorClass: SetupErrorClass, what: string, timeoutMs: number, probe: () => Promise<T | undefined>, dead?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const why = dead?.();
    if (why) throw new ErrorClass(`${what}: ${why}`);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await delay(100);
  }
  throw new ErrorClass(`timed out after ${timeoutMs / 1000} s waiting for ${what}`, { cause: last });
}

/** Runs `amesh <args>` (bin/amesh.js) to completion, 30 s at most. */
export async function runAmesh(ErrorClass: SetupErrorClass, args: string[]): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, [AMESH_CLI, ...args], { timeout: 30_000 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new ErrorClass(`\`amesh ${args.join(' ')}\` failed${stderr ? `: ${stderr}` : ''}`, { cause: err });
  }
}

/** A namespace prefix `<stem><hex digits>` whose node1 namespace does not exist (names must stay within 15 characters). */
export function freeNamespacePrefix(ErrorClass: SetupErrorClass, stem: string, hexDigits: number): string {
  for (let i = 0; i < 20; i++) {
    const prefix = `${stem}${Math.floor(Math.random() * 16 ** hexDigits).toString(16).padStart(hexDigits, '0')}`;
    if (!existsSync(`/run/netns/${prefix}-node1`)) return prefix;
  }
  throw new ErrorClass(`could not find a free namespace prefix ${stem}*`);
}

/** Waits until something listens on TCP `port` inside namespace `ns`; fails early if `process` exits. */
export async function waitForListener(ErrorClass: SetupErrorClass, topology: Topology, ns: string, port: number, timeoutMs: number, process?: SpawnedProcess): Promise<void> {
  await until(
    ErrorClass,
    `a listener on port ${port} in ${ns}`,
    timeoutMs,
    async () => {
      const { stdout } = await topology.exec(ns, ['ss', '-Hltn', 'sport', '=', `:${port}`], { timeoutMs: 5000 });
      return stdout.trim() ? true : undefined;
    },
    process ? () => exited(process) : undefined,
  );
}

export interface NodeAgentsSpec {
  ErrorClass: SetupErrorClass;
  topology: Topology;
  /** Configs and logs go here: mesh-<node>.yaml, agent-<node>.log. */
  dir: string;
  /** The namespace prefix: each agent pins its BPF maps under /sys/fs/bpf/amesh/v1/<prefix>-<node>. */
  prefix: string;
  nodes: readonly string[];
  /** The agent's local config (`--local-config`) for a node. */
  config: (node: string) => Record<string, unknown>;
  /** AMESH_CAPTURE_MODE, when given. */
  captureMode?: string;
  /** More agent settings (AMESH_* variables, src/config/agent-config.ts), e.g. the pool's for a handshake per connection. */
  extraEnv?: Readonly<Record<string, string>>;
  cleanup: CleanupStack;
  log: (line: string) => void;
}

/** The node binary the agents run on, and its version. */
export interface AgentRuntime {
  path: string;
  version: string;
}

let agentRuntimeCache: AgentRuntime | undefined;

/**
 * The agents' runtime: `BENCH_AGENT_NODE` (a node binary, e.g. Node 24 — the container images'
 * runtime — from `npx -y -p node@24 node -p process.execPath`) or the bench's own node. Only the
 * agents move: the load generators and backends stay on the bench's node, so a runtime A/B
 * measures the agents alone. Throws, naming the variable, when the binary does not run.
 */
export function agentRuntime(): AgentRuntime {
  if (agentRuntimeCache) return agentRuntimeCache;
  const path = process.env.BENCH_AGENT_NODE || process.execPath;
  if (path === process.execPath) return (agentRuntimeCache = { path, version: process.versions.node });
  const probe = spawnSync(path, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 10_000 });
  const version = probe.stdout?.trim() ?? '';
  if (probe.status !== 0 || !/^\d+\.\d+\.\d+/.test(version)) {
    throw new Error(`BENCH_AGENT_NODE=${path} is not a runnable node binary (${probe.error?.message || probe.stderr?.trim() || `exit ${String(probe.status)}`}): point it at a node executable or unset it`);
  }
  return (agentRuntimeCache = { path, version });
}

/**
 * The node agents' Node/V8 flags: the ones every agent runs with on the agents' node version
 * (src/config/runtime-flags.ts), then extra ones for the agents only (`BENCH_AGENT_NODE_FLAGS`,
 * space-separated), for A/B runs of runtime settings that NODE_OPTIONS does not accept (most V8
 * flags). V8 takes the last of two contradicting flags, so `--no-single-threaded-gc` there
 * measures the agents without it.
 */
function agentNodeFlags(): string[] {
  return [...nodeAgentNodeFlags(agentRuntime().version), ...(process.env.BENCH_AGENT_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)];
}

/**
 * Starts one node agent per node (eBPF or nftables capture, HBONE), each registered with the
 * cleanup stack the moment it exists — stop, uninstall its capture, remove its pinned maps —
 * and waits until every one reports ready. Returns them in `nodes` order with the capture mode
 * each reported. `--expose-gc`: harnesses force a collection (POST /debug/gc on the admin port)
 * before reading RSS.
 */
export async function startNodeAgents(spec: NodeAgentsSpec): Promise<Array<{ node: string; process: SpawnedProcess; captureMode: string }>> {
  const { topology, dir, cleanup } = spec;
  const agents: SpawnedProcess[] = [];
  for (const node of spec.nodes) {
    const config = join(dir, `mesh-${node}.yaml`);
    await writeFile(config, stringify(spec.config(node)));
    const pinRoot = `/sys/fs/bpf/amesh/v1/${spec.prefix}-${node}`;
    const env: Record<string, string> = {
      AMESH_BPF_PIN_ROOT: pinRoot,
      // Stop promptly at cleanup; the default (20 s) is for Kubernetes' grace period.
      AMESH_DRAIN_TIMEOUT_MS: '2000',
      ...(spec.captureMode ? { AMESH_CAPTURE_MODE: spec.captureMode } : {}),
      ...spec.extraEnv,
    };
    cleanup.push(`remove pinned BPF maps ${pinRoot}`, () => rm(pinRoot, { recursive: true, force: true }));
    cleanup.push(`uninstall capture on ${node}`, async () => {
      await topology.exec(node, ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, AMESH_CLI, 'node-agent', '--local-config', config, '--uninstall'], { timeoutMs: 30_000 });
    });
    const log = join(dir, `agent-${node}.log`);
    const agent = topology.spawn(node, [agentRuntime().path, ...agentNodeFlags(), AMESH_CLI, 'node-agent', '--local-config', config], {
      env: { ...env, NODE_OPTIONS: [process.env.NODE_OPTIONS, '--expose-gc'].filter(Boolean).join(' ') },
      stdoutFile: log,
      stderrFile: log,
    });
    agents.push(agent);
    cleanup.push(`stop the node agent on ${node}`, () => agent.stop(5_000));
  }
  const started: Array<{ node: string; process: SpawnedProcess; captureMode: string }> = [];
  for (const [i, node] of spec.nodes.entries()) {
    const agent = agents[i]!;
    const ready = await until(
      spec.ErrorClass,
      `the node agent on ${node} to be ready (GET :15021/healthz/ready)`,
      30_000,
      async () => {
        const { stdout } = await topology.exec(node, ['curl', '-s', '--max-time', '1', 'http://127.0.0.1:15021/healthz/ready'], { timeoutMs: 3000, allowFailure: true });
        const body = JSON.parse(stdout) as { ready?: boolean; captureMode?: string };
        return body.ready === true ? body : undefined;
      },
      () => exited(agent),
    ).catch(async (err: unknown) => {
      throw new spec.ErrorClass(`${err instanceof Error ? err.message : String(err)}\nlast lines of ${node}'s agent log:\n${await tail(join(dir, `agent-${node}.log`))}`);
    });
    spec.log(`${node}: ready, capture mode ${ready.captureMode ?? 'unknown'}`);
    started.push({ node, process: agent, captureMode: ready.captureMode ?? 'unknown' });
  }
  return started;
}
