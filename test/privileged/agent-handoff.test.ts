/**
 * Zero-drop node agent upgrade and restart (issue #10 item 4, docs/upgrade.md), with real
 * `amesh node-agent` processes and eBPF capture on the two-node sandbox topology:
 *
 *   node1: a (enrolled, client)      node2: b (enrolled, echo server on 9001)
 *   PeerAuthentication STRICT for namespace demo: b only accepts mTLS (HBONE) from the mesh.
 *
 * Pod a holds 50 long-lived connections to b, each streaming 10 KiB/s of deterministic bytes
 * that b echoes, and opens a NEW connection every 50 ms (a short echo) for the whole test:
 *   1. upgrade: a second agent process starts beside the old one on node2, then on node1; it
 *      takes over the listening sockets over @amesh-node-handoff and the old one drains;
 *   2. restart by hand-off again: a third process on each node takes over from the second;
 *   3. the load stops: every byte of every long-lived connection came back intact (counts and
 *      per-connection sha256), none was reset, every new connection succeeded; nothing crossed
 *      the uplink in clear (tcpdump: no TCP between the pods except HBONE on 15008); the old
 *      agents drained to 0 connections and exited;
 *   4. plain SIGTERM restart (no overlap: the old agent is gone before the new one starts):
 *      capture stays, so new connections stall (SYNs dropped, retried) — never plaintext; the
 *      test measures the stall and asserts the new connections made during it still succeed.
 * Figures are printed (and quoted in docs/upgrade.md).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopology, type SpawnedProcess, type Topology } from '../../src/sandbox/network/topology.js';
import { TWO_NODES, createAgentWorkDir, destroyAgentTestbed, meshWorkload, pinRootFor, writeLocalConfig } from '../helpers/agent-testbed.js';
import { AgentProcess, parseJsonLines, startCapture, startPodServer, type AgentOptions, type Capture } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('agent hand-off', { tools: ['ip', 'nsenter', 'sysctl', 'tc', 'tcpdump'] });

const LOAD = fileURLToPath(new URL('../helpers/handoff-load.mjs', import.meta.url));
const IP = { a: '10.244.1.2', b: '10.244.2.2' } as const;
const ECHO_PORT = 9001;
const NODES = ['node1', 'node2'] as const;
type NodeName = (typeof NODES)[number];
const STRICT = { name: 'strict', namespace: 'demo', scope: 'NAMESPACE', action: 'DENY', rules: [{ clauses: [{ matches: [{ notPrincipals: [{ presence: {} }] }] }] }] };

interface LoadResult {
  long: { connections: number; sentBytes: number; receivedBytes: number; intact: number; problems: unknown[] };
  probes: { attempts: number; ok: number; failures: Array<{ n: number; at: number; why: string; ms: number }>; p50Ms: number; p99Ms: number; maxMs: number; slowest: Array<{ at: number; ms: number }>; latencies: Array<{ at: number; ms: number }> };
}

describe.skipIf(!guard.run)('node agent hand-off: upgrade and restart without dropping connections', () => {
  const prefix = `am-${randomBytes(2).toString('hex')}`;
  let dir: string;
  let topology: Topology | undefined;
  let failed = false;
  const options = new Map<NodeName, AgentOptions>();
  /** Every agent generation per node, oldest first. */
  const generations = new Map<NodeName, AgentProcess[]>(NODES.map((n) => [n, []]));
  let load: SpawnedProcess | undefined;
  let uplink: Capture | undefined;
  const figures: Record<string, unknown> = {};

  const topo = (): Topology => {
    if (!topology) throw new Error('topology was not created (see beforeAll)');
    return topology;
  };
  const current = (node: NodeName): AgentProcess => {
    const g = generations.get(node)?.at(-1);
    if (!g) throw new Error(`no agent on ${node}`);
    return g;
  };
  const logTails = (): string => [...generations.values()].flat().map((a) => a.logTail(15)).join('\n');
  const loadLines = (): Array<Record<string, unknown>> => parseJsonLines(load ? readOut(join(dir, 'load.out')) : '');

  /** Starts a new agent process on `node` (beside the running one, if any). */
  const startGeneration = (node: NodeName): AgentProcess => {
    const a = AgentProcess.start(topo(), options.get(node) as AgentOptions);
    generations.get(node)?.push(a);
    return a;
  };
  const logged = (a: AgentProcess, pattern: RegExp): Record<string, unknown> | undefined => a.logs().find((l) => pattern.test(String(l.msg)));

  /** A new agent takes over from the current one; returns how long it took. */
  const handOff = async (node: NodeName): Promise<Record<string, unknown>> => {
    const old = current(node);
    const started = Date.now();
    const next = startGeneration(node);
    await eventually(
      () => {
        if (next.process.exitStatus()) return;
        if (!logged(next, /^hand-off: took over/)) throw new Error('no "took over" yet');
      },
      { timeoutMs: 30_000, intervalMs: 100, description: `the new agent on ${node} to take over` },
    );
    if (next.process.exitStatus()) throw new Error(`the new agent on ${node} exited\n${next.logTail()}`);
    const took = logged(next, /^hand-off: took over/) as Record<string, unknown>;
    expect(took.oldPid, `${node}: the new agent took over from the running one`).toBe(old.process.pid);
    expect(took.listeners, `${node}: listeners taken over (outbound, inbound-plaintext, hbone for IPv4 [+IPv6], readiness, admin, metrics)`).toBeGreaterThanOrEqual(6);
    await eventually(() => expect(logged(old, /^hand-off: pid \d+ took over our listeners/)).toBeDefined(), { timeoutMs: 5_000, intervalMs: 100, description: `the old agent on ${node} to start draining` });
    const body = await next.waitReady(10_000);
    expect(body.pid, `${node}: readiness is answered by the new agent`).toBe(next.process.pid);
    // Process start → take-over, and the agent's own part of it (first log line → take-over;
    // the rest is Node loading the CLI on a busy machine).
    const firstLine = next.logs()[0]?.time as number;
    return { node, totalMs: Date.now() - started, agentMs: (took.time as number) - firstLine, oldLiveConnections: took.oldLiveConnections, listeners: took.listeners };
  };

  beforeAll(async () => {
    try {
      dir = await createAgentWorkDir(prefix, 'handoff');
      topology = await createTopology({
        prefix,
        nodes: [...TWO_NODES],
        pods: [
          { name: 'a', node: 'node1', ip: IP.a },
          { name: 'b', node: 'node2', ip: IP.b },
        ],
      });
      await startPodServer(topo(), 'b', 'echo-server', [ECHO_PORT], dir);
      for (const node of NODES) {
        const configFile = await writeLocalConfig(dir, topo(), node, { workloads: [meshWorkload('a', 'node1', IP.a), meshWorkload('b', 'node2', IP.b)], services: [], policies: [STRICT] });
        // The drain deadline outlasts the long-lived connections: the old agents keep them
        // until the load ends them (a shorter deadline would cut them — docs/upgrade.md).
        options.set(node, { node, configFile, pinRoot: pinRootFor(prefix, node), logDir: dir, captureMode: 'ebpf', drainTimeoutMs: 100_000 });
      }
      await Promise.all(NODES.map((node) => startGeneration(node).waitReady(30_000)));
      uplink = await startCapture(topo(), 'node1', topo().uplinkName, join(dir, 'uplink.pcap'), ['tcp', 'and', 'not', 'port', '15008']);
    } catch (err) {
      failed = true;
      console.log(`set-up failed\n${logTails()}`);
      throw err;
    }
  });

  afterAll(async () => {
    if (failed && dir) console.log(`agent hand-off failed:\n${logTails()}`);
    await destroyAgentTestbed({ topology, pinRoots: [...options.values()].map((o) => o.pinRoot), dir, keepDir: failed, label: 'agent hand-off' });
  });

  const check = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  };

  it(
    'upgrade: a second agent beside the old one takes over on the server node, then on the client node',
    check(async () => {
      load = topo().spawn('a', ['node', LOAD, '--host', IP.b, '--port', String(ECHO_PORT), '--connections', '50', '--chunk', '1024', '--interval-ms', '100', '--probe-interval-ms', '50', '--stop-file', join(dir, 'stop'), '--max-seconds', '100'], {
        stdoutFile: join(dir, 'load.out'),
        stderrFile: join(dir, 'load.err'),
      });
      const established = await eventually(
        () => {
          const e = loadLines().find((l) => l.event === 'established');
          if (!e) throw new Error('load not established yet');
          return e;
        },
        { timeoutMs: 20_000, intervalMs: 100, description: '50 long-lived connections established' },
      );
      expect(established, JSON.stringify(established)).toMatchObject({ connections: 50, errors: [] });
      await new Promise((r) => setTimeout(r, 1_000));
      figures.upgrade = [await handOff('node2')];
      await new Promise((r) => setTimeout(r, 1_000));
      (figures.upgrade as unknown[]).push(await handOff('node1'));
      await new Promise((r) => setTimeout(r, 1_000));
    }),
  );

  it(
    'restart by hand-off: a third agent takes over from the second, on both nodes at once',
    check(async () => {
      figures.restart = await Promise.all(NODES.map((node) => handOff(node)));
      await new Promise((r) => setTimeout(r, 2_000));
    }),
  );

  it(
    'every byte arrived intact, no reset, every new connection succeeded over HBONE; the old agents drained and exited',
    check(async () => {
      // At least 14 s of streaming, however fast the hand-offs went (≥ 10 s of full rate below).
      await eventually(
        () => {
          const t = loadLines().filter((l) => l.event === 'progress').at(-1)?.t as number | undefined;
          if (!t || t < 14_000) throw new Error(`streamed for ${t ?? 0} ms`);
        },
        { timeoutMs: 20_000, intervalMs: 200, description: '14 s of streaming' },
      );
      await writeFile(join(dir, 'stop'), '');
      const result = (await eventually(
        () => {
          const r = loadLines().find((l) => l.event === 'result');
          if (!r) throw new Error('no result yet');
          return r;
        },
        { timeoutMs: 40_000, intervalMs: 200, description: 'the load result' },
      )) as unknown as LoadResult;
      figures.load = { long: { ...result.long, problems: result.long.problems.length }, probes: { ...result.probes, failures: result.probes.failures.length, latencies: undefined } };
      expect(result.long.problems, JSON.stringify(result.long.problems.slice(0, 5))).toEqual([]);
      expect(result.long.intact).toBe(50);
      expect(result.long.receivedBytes).toBe(result.long.sentBytes);
      expect(result.long.sentBytes).toBeGreaterThan(50 * 1024 * 100); // ≥ 10 s of streaming each
      expect(result.probes.failures, JSON.stringify(result.probes.failures.slice(0, 10))).toEqual([]);
      expect(result.probes.attempts).toBeGreaterThan(200);
      expect(result.probes.ok).toBe(result.probes.attempts);

      // The old agents (two per node) drain to zero now that the long-lived connections ended, and exit 0.
      const drains: unknown[] = [];
      figures.drains = drains;
      for (const node of NODES) {
        for (const old of (generations.get(node) ?? []).slice(0, -1)) {
          const exit = await Promise.race([old.process.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000).unref())]);
          expect(exit, `old agent ${node} pid ${old.process.pid} exit\n${old.logTail()}`).toEqual({ code: 0, signal: null });
          const drained = logged(old, /^drained in \d+ ms with 0 connections left$/);
          expect(drained, `old agent ${node} pid ${old.process.pid} drained to 0\n${old.logTail()}`).toBeDefined();
          drains.push({ node, pid: old.process.pid, ms: drained?.drainMs });
        }
        expect(current(node).process.exitStatus(), `the newest agent on ${node} still runs`).toBeUndefined();
      }
      // Only HBONE crossed the uplink: no TCP segment between the pods on any other port.
      const pcap = await (uplink as Capture).stop();
      uplink = undefined;
      const clear = pcap.tcp.filter((p) => (p.src === IP.a && p.dst === IP.b) || (p.src === IP.b && p.dst === IP.a));
      expect(clear.length, `plaintext segments between the pods: ${JSON.stringify(clear.slice(0, 3).map((p) => ({ ...p, payload: p.payload.length })))}`).toBe(0);
      // …and they really went through the agents: node2's agents logged every probe (inbound HBONE, STRICT).
      const inbound = (generations.get('node2') ?? []).flatMap((a) => a.accessLogs()).filter((l) => JSON.stringify(l).includes(`${IP.b}:${ECHO_PORT}`));
      expect(inbound.length, 'access lines for b:9001 on node2').toBeGreaterThanOrEqual(result.probes.ok);
      console.log(`agent hand-off figures: ${JSON.stringify(figures)}`);
    }),
  );

  it(
    'plain SIGTERM restart (no overlap): capture stays (fail closed), never plaintext; the gap is measured',
    check(async () => {
      uplink = await startCapture(topo(), 'node1', topo().uplinkName, join(dir, 'uplink-sigterm.pcap'), ['tcp', 'and', 'not', 'port', '15008']);
      const out = join(dir, 'load-sigterm.out');
      const probeLoad = topo().spawn('a', ['node', LOAD, '--host', IP.b, '--port', String(ECHO_PORT), '--connections', '0', '--probe-interval-ms', '50', '--probe-timeout-ms', '35000', '--stop-file', join(dir, 'stop-sigterm'), '--max-seconds', '90'], {
        stdoutFile: out,
        stderrFile: `${out}.err`,
      });
      const startedEpochMs = (await eventually(
        () => {
          const e = parseJsonLines(readOut(out)).find((l) => l.event === 'established');
          if (!e) throw new Error('not started yet');
          return e.startedEpochMs;
        },
        { timeoutMs: 10_000, intervalMs: 50, description: 'the SIGTERM probe loop' },
      )) as number;
      await new Promise((r) => setTimeout(r, 1_000));
      /** Per node: when (ms on the probe loop's clock) no agent listened: SIGTERM → the new agent's listeners. */
      const gaps: Record<string, { from: number; to: number; stopMs: number; startMs: number; successorWaitMs: number }> = {};
      for (const node of ['node2', 'node1'] as const) {
        const old = current(node);
        const t0 = Date.now();
        const exit = await old.stop(30_000);
        expect(exit, `${node} SIGTERM exit\n${old.logTail()}`).toEqual({ code: 0, signal: null });
        const stopped = Date.now();
        // On SIGTERM the agent serves on for AMESH_SUCCESSOR_WAIT_MS (a new agent could take
        // over); nobody came, so it drained alone from then on: the gap starts there.
        const alone = logged(old, /^terminating: no new agent took over within \d+ ms; draining alone/);
        expect(alone, `${node}: the old agent waited for a successor, then drained alone\n${old.logTail()}`).toBeDefined();
        const aloneAt = (alone?.time as number) ?? t0;
        const next = startGeneration(node);
        await next.waitReady(40_000);
        expect(logged(next, /^hand-off: no running agent answered/), `${node}: nobody to take over from`).toBeDefined();
        // The agent binds its listeners at the start of run(), logged just before capture starts.
        const bound = (logged(next, /^hand-off: no running agent answered/)?.time as number) ?? Date.now();
        gaps[node] = { from: aloneAt - startedEpochMs, to: bound - startedEpochMs, stopMs: stopped - aloneAt, startMs: bound - stopped, successorWaitMs: aloneAt - t0 };
        await new Promise((r) => setTimeout(r, 2_000));
      }
      await writeFile(join(dir, 'stop-sigterm'), '');
      const result = (await eventually(
        () => {
          const r = parseJsonLines(readOut(out)).find((l) => l.event === 'result');
          if (!r) throw new Error('no result yet');
          return r;
        },
        { timeoutMs: 60_000, intervalMs: 200, description: 'the SIGTERM probe result' },
      )) as unknown as LoadResult;
      await probeLoad.stop(2_000);
      const pcap = await (uplink as Capture).stop();
      uplink = undefined;
      const clear = pcap.tcp.filter((p) => (p.src === IP.a && p.dst === IP.b) || (p.src === IP.b && p.dst === IP.a));
      const n2 = gaps.node2 as (typeof gaps)['node2'];
      const n1 = gaps.node1 as (typeof gaps)['node1'];
      // A connection begun up to AMESH_CONNECT_TIMEOUT_MS (5 s) after the new agent listened may
      // still wait on an HBONE dial begun in the gap, whose retransmitted SYN came too late.
      const during = (g: typeof n1, at: number): boolean => at >= g.from - 100 && at <= g.to + 5_000;
      const failuresIn = (g: typeof n1) => result.probes.failures.filter((f) => during(g, f.at));
      const stallsIn = (g: typeof n1) => result.probes.latencies.filter((l) => during(g, l.at));
      figures.sigterm = {
        gaps,
        probes: { attempts: result.probes.attempts, ok: result.probes.ok, failed: result.probes.failures.length, p50Ms: result.probes.p50Ms, maxMs: result.probes.maxMs },
        serverNodeGap: { failures: failuresIn(n2).length, errors: [...new Set(failuresIn(n2).map((f) => f.why))], failedAfterMs: failuresIn(n2).map((f) => f.ms + f.at).reduce((a, b) => Math.max(a, b), 0) - n2.from },
        clientNodeGap: { failures: failuresIn(n1).length, longestStallMs: Math.max(0, ...stallsIn(n1).map((l) => l.ms)) },
        serverNodeGapLongestStallMs: Math.max(0, ...stallsIn(n2).map((l) => l.ms)),
      };
      console.log(`agent SIGTERM restart figures: ${JSON.stringify(figures.sigterm)}`);
      // Never plaintext, whichever agent was away.
      expect(clear.length, 'plaintext segments between the pods during the SIGTERM restarts').toBe(0);
      // Outside the two gaps every new connection succeeded.
      const outside = result.probes.failures.filter((f) => !during(n2, f.at) && !during(n1, f.at));
      expect(outside, `failures outside the gaps ${JSON.stringify(gaps)}`).toEqual([]);
      // Client node without agent: the pod's SYNs are dropped by capture and retried by its
      // kernel (1, 3, 7, 15 s …) until the new agent listens — the connections stall, then succeed.
      expect(failuresIn(n1), `failures while node1 had no agent ${JSON.stringify(n1)}`).toEqual([]);
      // Server node without agent: node1's agent dials HBONE, the SYN is dropped on node2, and
      // after AMESH_CONNECT_TIMEOUT_MS (5 s) it gives up and resets the pod's connection — an
      // error, never a plaintext fallback. Only connections begun in that gap fail, only so.
      for (const f of failuresIn(n2)) expect(f.why, JSON.stringify(f)).toBe('ECONNRESET');
      expect(result.probes.ok).toBeGreaterThan(result.probes.attempts / 2);
    }),
  );
});

function readOut(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
