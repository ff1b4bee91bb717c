/**
 * Issue #10 "Done when": a private two-node sandbox with amesh installed; 50 long-lived mesh
 * connections stream data from a client pod on one node to an echo server on the other (ambient
 * namespace, so every byte goes node agent → HBONE → node agent) while
 * 1. `kubectl rollout restart daemonset/amesh-node` upgrades the agents (RollingUpdate maxSurge 1,
 *    maxUnavailable 0: the new agent pod starts BESIDE the old one on the same node, takes over
 *    its listening sockets over @amesh-node-handoff, and the old one drains), and
 * 2. `kubectl delete pod` restarts the client node's agent (the old agent serves on after its
 *    SIGTERM until the DaemonSet's replacement takes its listeners over: also a hand-off).
 * Each time: every byte of every stream comes back (tests/helpers/mesh-streams.mjs compares each
 * byte with what was sent at that offset), no stream is reset or cut short, a new connection
 * every 250 ms succeeds throughout, and on both nodes' uplinks no packet carries the plaintext
 * port (captured traffic crosses only as HBONE on 15008: fail closed never turns into plaintext).
 *
 * Streams last 15 s, shorter than the agent's drain (AMESH_DRAIN_TIMEOUT_MS, 20 s): established
 * connections stay on the old process until they end or the drain deadline.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { POD_PROGRAMS } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';
import { MESH_STREAMS, runMeshStreams, waitStreamsFlowing, type MeshStreamsRun } from '../helpers/sandbox-mesh-streams.js';
import { nodeUplink, startUplinkCaptures } from '../helpers/sandbox-uplinks.js';

const guard = requireRoot('sandbox agent upgrade and restart', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'tcpdump', 'unshare'] });
const REPO = join(import.meta.dirname, '..', '..');
const AMESH = join(REPO, 'bin', 'amesh.js');
const PORT = 9000;
const STREAMS = 50;
const STREAM_MS = 15_000;

interface StreamsResult {
  event: 'result';
  ok: boolean;
  atMs: number;
  streams: { count: number; complete: number; failed: number; errors: unknown[] };
  bytes: { sent: number; received: number };
  probes: { ok: number; failed: number; errors: unknown[]; maxMs: number };
}

interface AgentPod {
  name: string;
  node: string;
  ready: boolean;
  deleting: boolean;
  created: string;
}

describe.skipIf(!guard.run)('node agent upgrade and restart keep 50 mesh streams whole (privileged sandbox)', () => {
  const name = `up${Math.random().toString(16).slice(2, 5)}`;
  const nodes = [`${name}-worker`, `${name}-worker2`];
  let dir = '';
  const cli = sandboxCli(() => dir);
  let serverIp = '';
  const uplinks = new Map<string, string>();

  const agentPods = (): AgentPod[] => {
    const out = cli.kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-node', '-o', 'json');
    const items = (JSON.parse(out) as { items: Array<{ metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string }; spec: { nodeName: string }; status?: { conditions?: Array<{ type: string; status: string }> } }> }).items;
    return items.map((p) => ({
      name: p.metadata.name,
      node: p.spec.nodeName,
      created: p.metadata.creationTimestamp,
      deleting: Boolean(p.metadata.deletionTimestamp),
      ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    }));
  };

  /** Runs mesh-streams in the client pod; resolves with its result line and output. */
  const runStreams = (stopFile: string): MeshStreamsRun<StreamsResult> =>
    runMeshStreams<StreamsResult>(dir, 'upg/client', ['--host', serverIp, '--port', String(PORT), '--count', String(STREAMS), '--duration-ms', String(STREAM_MS), '--stop-file', stopFile, '--timeout-ms', '150000'], 170_000);

  /** tcpdump on every node's uplink for the plaintext port and for HBONE (counts only, per `<node>/<plain|hbone>`). */
  const startCaptures = (tag: string) =>
    startUplinkCaptures(
      dir,
      tag,
      [...uplinks].flatMap(([node, iface]) => [
        { key: `${node}/plain`, node, iface, filter: ['tcp', 'port', String(PORT)] },
        { key: `${node}/hbone`, node, iface, filter: ['tcp', 'port', '15008'] },
      ]),
      10_000,
    );

  /** Warnings, errors and hand-off/drain lines of every agent pod still known, for the failure message. */
  const agentLogSummary = (pods: string[]): string =>
    pods
      .flatMap((pod) => {
        const text = cli.amesh('sandbox', 'logs', '--dir', dir, `amesh-system/${pod}`).stdout ?? '';
        return text
          .split('\n')
          .filter((l) => /"level":(4|5)\d|hand-off|handoff|drain|capture: repaired|certificate/i.test(l))
          .slice(-15)
          .map((l) => `${pod}: ${l.slice(0, 400)}`);
      })
      .join('\n');

  /** The agent pod's log line matching `pattern` (parsed), if any. */
  const agentLog = (pod: string, pattern: RegExp): Record<string, unknown> | undefined => {
    const text = cli.amesh('sandbox', 'logs', '--dir', dir, `amesh-system/${pod}`).stdout ?? '';
    const line = text.split('\n').find((l) => l.startsWith('{') && pattern.test(l));
    return line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
  };

  /** The new agent took the old one's listeners over @amesh-node-handoff (not a fresh bind). */
  const expectHandOff = (pod: string, what: string): void => {
    const took = agentLog(pod, /hand-off: took over \d+ listeners from pid/);
    console.log(`${what}: ${pod}: ${String(took?.msg ?? 'NO HAND-OFF')} (${String(took?.waitedMs ?? '?')} ms after it connected)`);
    expect(took, `${what}: ${pod} took over the old agent's listeners\n${agentLogSummary([pod])}`).toBeDefined();
    expect(agentLog(pod, /hand-off: no running agent answered|already shutting down; binding fresh/), `${what}: ${pod} bound fresh`).toBeUndefined();
  };

  const expectWhole = (run: { result?: StreamsResult; out: string; err: string }, what: string): StreamsResult => {
    const tail = `${run.out.split('\n').slice(-4).join('\n')}\n${run.err.slice(-1500)}`;
    expect(run.result, `${what}: no result line\n${tail}`).toBeDefined();
    const r = run.result as StreamsResult;
    console.log(`${what}: ${r.streams.complete}/${r.streams.count} streams whole, ${r.bytes.received} of ${r.bytes.sent} bytes back, probes ${r.probes.ok} ok / ${r.probes.failed} failed (slowest ${r.probes.maxMs} ms), ${r.atMs} ms`);
    expect(r.streams.errors, what).toEqual([]);
    expect(r.probes.errors, what).toEqual([]);
    expect(r.streams.complete).toBe(STREAMS);
    expect(r.bytes.received).toBe(r.bytes.sent);
    expect(r.ok, tail).toBe(true);
    return r;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-upgrade-test-'));
    await sandboxUp({ dir, name, nodes: 2 });
    // The manifest (H3) sets maxSurge 1 / maxUnavailable 0; patch it in when the installed one has no surge.
    const strategy = cli.kubectlOk('get', 'ds', '-n', 'amesh-system', 'amesh-node', '-o', 'jsonpath={.spec.updateStrategy.rollingUpdate.maxSurge}').trim();
    if (strategy !== '1') {
      console.log(`installed DaemonSet has maxSurge ${JSON.stringify(strategy)}; patching maxSurge 1 / maxUnavailable 0`);
      cli.kubectlOk('patch', 'ds', '-n', 'amesh-system', 'amesh-node', '--type', 'merge', '-p', '{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}');
    }
    cli.apply(
      [
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: upg, labels: {istio.io/dataplane-mode: ambient}}',
        `apiVersion: v1\nkind: Pod\nmetadata: {name: server, namespace: upg}\nspec: {nodeName: ${nodes[1]}, containers: [{name: s, image: alpine, command: [node, ${POD_PROGRAMS}, echo-server, --port, "${PORT}"]}]}`,
        `apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: upg}\nspec: {nodeName: ${nodes[0]}, containers: [{name: c, image: alpine, command: [sleep, "3600"]}]}`,
      ].join('\n---\n'),
    );
    await eventually(
      () => {
        const r = cli.kubectlOk('get', 'pods', '-n', 'upg', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase}/{.status.podIP} {end}');
        expect(r).toMatch(/client=Running\/\S+/);
        expect(r).toMatch(/server=Running\/\S+/);
        serverIp = /server=Running\/(\S+)/.exec(r)?.[1] ?? '';
      },
      { timeoutMs: 60_000, intervalMs: 500, description: 'client and server pods running' },
    );
    // The uplink of each node: the interface holding its InternalIP, in the node's netns.
    for (const node of nodes) {
      uplinks.set(node, nodeUplink(cli, node).iface);
    }
    // Enrolled and answering through the mesh before the clock starts.
    const stop = join(dir, 'warmup.stop');
    await writeFile(stop, '');
    await eventually(
      () => {
        const r = spawnSync(process.execPath, [AMESH, 'sandbox', 'exec', '--dir', dir, 'upg/client', '--', 'node', MESH_STREAMS, '--host', serverIp, '--port', String(PORT), '--count', '1', '--duration-ms', '300', '--stop-file', stop, '--timeout-ms', '10000'], { encoding: 'utf8', timeout: 30_000 });
        expect(r.status, `${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`).toBe(0);
      },
      { timeoutMs: 60_000, intervalMs: 1_000, description: 'a stream through the mesh works' },
    );
  }, 300_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('upgrade (rollout restart, surge pod beside the old one): every byte arrives, no reset, new connections work, only HBONE on the wire', async () => {
    const before = agentPods();
    expect(before.map((p) => p.node).sort()).toEqual([...nodes].sort());
    const captures = await startCaptures('upgrade');
    const stopFile = join(dir, 'upgrade.stop');
    const streams = runStreams(stopFile);
    await waitStreamsFlowing(streams.progress, STREAMS, 20_000);

    // Watch every agent pod event: a node "surges" when an old pod, Ready and not being deleted,
    // and a new pod of the same node exist at the same time.
    const watch = spawn('kubectl', ['get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-node', '-w', '-o', 'jsonpath={.metadata.name}|{.spec.nodeName}|{.metadata.deletionTimestamp}|{.status.conditions[?(@.type=="Ready")].status}{"\\n"}'], { env: cli.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    const latest = new Map<string, { node: string; deleting: boolean; ready: boolean }>();
    const sideBySide = new Set<string>();
    let watched = '';
    watch.stdout.on('data', (c: Buffer) => {
      watched += c.toString();
      const lines = watched.split('\n');
      watched = lines.pop() ?? '';
      for (const line of lines) {
        const [pod = '', node = '', deletion = '', ready = ''] = line.split('|');
        if (!pod) continue;
        latest.set(pod, { node, deleting: deletion !== '', ready: ready === 'True' });
        for (const n of nodes) {
          const here = [...latest].filter(([, p]) => p.node === n);
          const oldServing = here.some(([name, p]) => before.some((b) => b.name === name) && !p.deleting && p.ready);
          const fresh = here.some(([name]) => !before.some((b) => b.name === name));
          if (oldServing && fresh) sideBySide.add(n);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1_000)); // the watch lists the current pods first

    const t0 = Date.now();
    cli.kubectlOk('rollout', 'restart', 'daemonset/amesh-node', '-n', 'amesh-system');
    const rollout = spawn('kubectl', ['rollout', 'status', 'daemonset/amesh-node', '-n', 'amesh-system', '--timeout=120s'], { env: cli.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let rolloutOut = '';
    rollout.stdout.on('data', (c: Buffer) => (rolloutOut += c.toString()));
    rollout.stderr.on('data', (c: Buffer) => (rolloutOut += c.toString()));
    const code = await new Promise<number | null>((r) => rollout.on('exit', r));
    const rolloutMs = Date.now() - t0;
    watch.kill('SIGTERM');
    const after = agentPods();
    console.log(`rollout restart finished in ${rolloutMs} ms (kubectl rollout status exit ${code}); surge pod seen beside the old, Ready one on: ${[...sideBySide].join(', ') || 'none'}`);

    await writeFile(stopFile, '');
    const run = await streams.done;
    const counts = await captures.stop();
    console.log(`upgrade uplink packets: ${JSON.stringify(counts)}`);
    if (!run.result?.ok) console.log(`agent logs (upgrade):\n${agentLogSummary([...new Set([...before.map((p) => p.name), ...after.map((p) => p.name)])])}`);
    expectWhole(run, 'upgrade');
    for (const node of nodes) {
      expect(counts[`${node}/plain`], `plaintext port ${PORT} on ${node}'s uplink`).toBe(0);
      expect(counts[`${node}/hbone`]).toBeGreaterThan(0);
    }
    expect(code, rolloutOut).toBe(0);
    for (const pod of after.filter((p) => !p.deleting)) expectHandOff(pod.name, `upgrade on ${pod.node}`);
    expect([...sideBySide].sort()).toEqual([...nodes].sort());
    expect(after.filter((p) => !p.deleting)).toHaveLength(2);
    expect(after.some((p) => before.some((b) => b.name === p.name) && !p.deleting)).toBe(false);
  }, 200_000);

  it('restart (kubectl delete pod of the client node agent): every byte arrives, no reset, new connections work, only HBONE on the wire', async () => {
    const before = agentPods().filter((p) => !p.deleting);
    const victim = before.find((p) => p.node === nodes[0]);
    expect(victim).toBeDefined();
    const captures = await startCaptures('restart');
    const stopFile = join(dir, 'restart.stop');
    const streams = runStreams(stopFile);
    await waitStreamsFlowing(streams.progress, STREAMS, 20_000);

    const t0 = Date.now();
    cli.kubectlOk('delete', 'pod', '-n', 'amesh-system', victim?.name ?? '', '--wait=false');
    let replacedMs = 0;
    await eventually(
      () => {
        const fresh = agentPods().filter((p) => p.node === nodes[0] && p.name !== victim?.name && !p.deleting);
        expect(fresh.some((p) => p.ready)).toBe(true);
        replacedMs = Date.now() - t0;
      },
      { timeoutMs: 90_000, intervalMs: 300, description: `a new Ready agent on ${nodes[0]}` },
    );
    console.log(`replacement agent Ready ${replacedMs} ms after kubectl delete pod`);
    await writeFile(stopFile, '');
    const run = await streams.done;
    const counts = await captures.stop();
    console.log(`restart uplink packets: ${JSON.stringify(counts)}`);
    if (!run.result?.ok) console.log(`agent logs (restart):\n${agentLogSummary(agentPods().map((p) => p.name).concat(victim?.name ?? []))}`);
    expectWhole(run, 'restart');
    // kubectl delete pod: the old agent served on after its SIGTERM until the replacement took over.
    const replacement = agentPods().find((p) => p.node === nodes[0] && p.name !== victim?.name && !p.deleting);
    expectHandOff(replacement?.name ?? '', 'restart');
    for (const node of nodes) {
      expect(counts[`${node}/plain`], `plaintext port ${PORT} on ${node}'s uplink`).toBe(0);
      expect(counts[`${node}/hbone`]).toBeGreaterThan(0);
    }
  }, 200_000);
});
