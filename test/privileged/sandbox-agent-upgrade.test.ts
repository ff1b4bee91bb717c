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
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { parsePcap, POD_PROGRAMS } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';

const guard = requireRoot('sandbox agent upgrade and restart', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'tcpdump', 'unshare'] });
const REPO = join(import.meta.dirname, '..', '..');
const AMESH = join(REPO, 'bin', 'amesh.js');
const MESH_STREAMS = join(import.meta.dirname, '..', 'helpers', 'mesh-streams.mjs');
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
  const runStreams = (stopFile: string): { progress: () => string; done: Promise<{ result?: StreamsResult; out: string; err: string }> } => {
    const child = spawn(process.execPath, [AMESH, 'sandbox', 'exec', '--dir', dir, 'upg/client', '--', 'node', MESH_STREAMS, '--host', serverIp, '--port', String(PORT), '--count', String(STREAMS), '--duration-ms', String(STREAM_MS), '--stop-file', stopFile, '--timeout-ms', '150000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    const done = new Promise<{ result?: StreamsResult; out: string; err: string }>((resolve) =>
      child.on('exit', () => {
        clearTimeout(killer);
        const lines = out.trim().split('\n').filter((l) => l.startsWith('{'));
        const last = lines.length ? (JSON.parse(lines[lines.length - 1] ?? '{}') as StreamsResult) : undefined;
        resolve({ ...(last?.event === 'result' ? { result: last } : {}), out, err });
      }),
    );
    return { progress: () => out, done };
  };

  /** tcpdump on every node's uplink for the plaintext port and for HBONE (counts only). */
  const startCaptures = async (tag: string) => {
    const captures = [...uplinks].flatMap(([node, iface]) =>
      (['plain', 'hbone'] as const).map((kind) => {
        const file = join(dir, `${tag}-${node}-${kind}.pcap`);
        const filter = kind === 'plain' ? ['tcp', 'port', String(PORT)] : ['tcp', 'port', '15008'];
        const child = spawn('nsenter', [`--net=/run/netns/${node}`, 'tcpdump', '-i', iface, '-w', file, '-U', '--immediate-mode', '-n', '-s', '96', '-Z', 'root', ...filter], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        return { node, kind, file, child, stderr: () => stderr };
      }),
    );
    await eventually(() => expect(captures.every((c) => c.stderr().includes('listening on'))).toBe(true), { timeoutMs: 10_000, intervalMs: 100, description: 'tcpdump listening on the uplinks' });
    return {
      stop: async (): Promise<Record<string, number>> => {
        const counts: Record<string, number> = {};
        for (const c of captures) {
          c.child.kill('SIGINT');
          await new Promise((r) => c.child.once('exit', r));
          counts[`${c.node}/${c.kind}`] = existsSync(c.file) ? parsePcap(readFileSync(c.file)).tcp.length : -1;
        }
        return counts;
      },
    };
  };

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

  const waitStreamsFlowing = async (progress: () => string): Promise<void> => {
    await eventually(
      () => {
        const last = progress()
          .trim()
          .split('\n')
          .filter((l) => l.includes('"progress"'))
          .at(-1);
        const p = last ? (JSON.parse(last) as { open: number; received: number }) : undefined;
        expect(p?.open, progress().slice(-500)).toBe(STREAMS);
        expect(p?.received).toBeGreaterThan(0);
      },
      { timeoutMs: 20_000, intervalMs: 250, description: `${STREAMS} streams flowing` },
    );
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
      const ip = cli.kubectlOk('get', 'node', node, '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}').trim();
      const links = JSON.parse(spawnSync('nsenter', [`--net=/run/netns/${node}`, 'ip', '-j', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout) as Array<{ ifname: string; addr_info?: Array<{ local: string }> }>;
      const iface = links.find((l) => l.addr_info?.some((a) => a.local === ip))?.ifname;
      expect(iface, `uplink of ${node} (${ip})`).toBeDefined();
      uplinks.set(node, iface ?? '');
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
    await waitStreamsFlowing(streams.progress);

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
    await waitStreamsFlowing(streams.progress);

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
