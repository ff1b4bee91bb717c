/**
 * Issue #12, process faults: in a private two-node sandbox (demo namespace ambient, with a
 * waypoint), under steady traffic — a new HTTP request every ~150 ms from demo/client on the first
 * node to a backend on the second, through the waypoint, and long echo streams through it too —
 * each of these is killed with SIGKILL at a seeded-random moment:
 *   1. the node agent of the client's node (the sandbox kubelet restarts it),
 *   2. the controller (restarted by the kubelet),
 *   3. the waypoint's proxy process (restarted by the kubelet),
 *   4. the sandbox daemon holding the API server (restarted by its supervisor,
 *      src/sandbox/daemon-supervisor.ts; its kubelets then start every pod again).
 * After each:
 *   (a) no plaintext leak: tcpdump on both nodes' uplinks sees no packet on the app ports (80,
 *       8080, 9000) during the whole fault window — captured traffic crosses only as HBONE;
 *   (b) in-flight streams complete or fail cleanly: each one delivers every byte or is closed /
 *       reset, never a wrong byte, and all have ended within a bound (mesh-streams.mjs: a
 *       server FIN before the client's own end is counted as a close, EARLY_FIN, not as whole);
 *       where the client's agent or the waypoint died, every broken stream ended with a reset;
 *   (c) service resumes without manual action: requests succeed again within a bound (the
 *       recovery time is printed);
 *   (d) the state converges: each node agent's resources (name → version, `/config_dump`
 *       `xdsVersions`) equal what the controller serves (`/debug/xds` `resources`) within a bound.
 * The kill moments come from a seeded PRNG: AMESH_FAULT_SEED=<n> replays a run (the seed is printed).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { podNames } from '../../src/sandbox/network/cluster-network.js';
import { readRecordedPids } from '../../src/sandbox/kubelet/pid-record.js';
import { readState } from '../../src/sandbox/state.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../src/xds/codec.js';
import { POD_PROGRAMS } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';
import { runMeshStreams, waitStreamsFlowing, type MeshStreamsRun } from '../helpers/sandbox-mesh-streams.js';
import { probeLoop, type Probe } from '../helpers/sandbox-probes.js';
import { nodeUplink, startUplinkCaptures } from '../helpers/sandbox-uplinks.js';
import { seededRandom } from '../helpers/seeded-random.js';

const guard = requireRoot('sandbox process faults (kill -9)', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'tcpdump', 'unshare'] });
const SEED = Number(process.env.AMESH_FAULT_SEED ?? Date.now() % 2 ** 31);
const ECHO_PORT = 9000;
const BACKEND_PORT = 8080;
/** The app ports that must never cross an uplink in plaintext (the Service port and both targets). */
const APP_PORTS = [80, BACKEND_PORT, ECHO_PORT];
const STREAMS = 4;
/** How a reset connection reports itself: on the next read, or on a write that met the RST first. */
const RESET_CODES = ['ECONNRESET', 'EPIPE'];
const STREAM_MS = 14_000;
/** fault-streams gives up (and reports the streams still open as hung) after this. */
const STREAMS_TIMEOUT_MS = 75_000;
const CONVERGE_MS = 60_000;
/** Address resource names the controller must serve besides the demo pods' uids: the demo Services. */
const EXPECTED_SERVICES = ['demo/backend.demo.svc.cluster.local', 'demo/echo.demo.svc.cluster.local'];

interface StreamsResult {
  event: 'result';
  ok: boolean;
  atMs: number;
  streams: { count: number; complete: number; failed: number; errors: Array<{ stream: number; code: string; message: string; sent: number; received: number; atMs: number }> };
  bytes: { sent: number; received: number };
}

interface FaultFigures {
  fault: string;
  recoveryMs: number;
  failed: number;
  requests: number;
  packets: Record<string, number>;
  streams: string;
  convergeMs: number;
}

describe.skipIf(!guard.run)('process faults: kill -9 under traffic (privileged sandbox)', () => {
  const name = `fk${Math.random().toString(16).slice(2, 5)}`;
  const nodes = [`${name}-worker`, `${name}-worker2`];
  let dir = '';
  const cli = sandboxCli(() => dir);
  const random = seededRandom(SEED);
  const uplinks = new Map<string, string>();
  let backendVip = '';
  let echoVip = '';
  let clientNetns = '';
  /** The demo pods' uids: their workload resource names. */
  let demoUids: string[] = [];
  const figures: FaultFigures[] = [];

  /** GET on a node-netns address (agents on 127.0.0.1, pods by IP): '' when it fails. */
  const nodeGet = (node: string, url: string): string => {
    try {
      return execFileSync('nsenter', [`--net=/run/netns/${node}`, 'curl', '-s', '--max-time', '2', url], { encoding: 'utf8', timeout: 5_000, maxBuffer: 64 << 20 });
    } catch {
      return '';
    }
  };
  /** One request from the client pod's network namespace, without the API server (it may be the one killed). */
  const clientOk = (): boolean => {
    try {
      return execFileSync('ip', ['netns', 'exec', clientNetns, 'curl', '-s', '--max-time', '2', `http://${backendVip}/`], { encoding: 'utf8', timeout: 5_000 }).includes('Hello, world!');
    } catch {
      return false;
    }
  };
  const podIp = (ns: string, selector: string): string => cli.kubectlOk('get', 'pods', '-n', ns, '-l', selector, '-o', 'jsonpath={.items[0].status.podIP}').trim();
  /** The pid the kubelets recorded for a container (the program itself: every wrapper execs); `pod` matches `<ns>/<name>`. */
  const containerPid = async (pod: RegExp, container: string, node?: string): Promise<number> => {
    const found = (await readRecordedPids(join(dir, 'kubelet'))).filter((r) => pod.test(r.pod) && r.container === container && (node === undefined || r.node === node));
    expect(found, `a recorded ${container} process of a pod matching ${pod}${node ? ` on ${node}` : ''}`).toHaveLength(1);
    return found[0]?.pid ?? 0;
  };
  /** The sandbox daemon (API server, controllers, kubelets): the child of the supervisor recorded as daemonPid. */
  const daemonChildPid = async (): Promise<number> => {
    const supervisor = (await readState(dir))?.daemonPid ?? 0;
    const children = (await readFile(`/proc/${supervisor}/task/${supervisor}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number);
    expect(children, `the daemon supervisor (pid ${supervisor}) has one child`).toHaveLength(1);
    return children[0] ?? 0;
  };

  /** Each agent's name → version per type against the controller's; the differences ([] when equal). */
  const convergence = (): { diffs: string[]; counts: string } => {
    const controllerIp = podIp('amesh-system', 'app=amesh-controller');
    const served = (JSON.parse(nodeGet(nodes[0] ?? '', `http://${controllerIp}:15021/debug/xds`) || '{}') as { resources?: Record<string, Record<string, string>> }).resources;
    if (!served) return { diffs: ['the controller’s /debug/xds did not answer with resources'], counts: '' };
    // Both sides empty (a controller not synced yet, agents just started) is no convergence: the demo must be in it.
    const names = new Set(Object.keys(served[ADDRESS_TYPE_URL] ?? {}));
    const diffs = [...demoUids, ...EXPECTED_SERVICES].filter((n) => !names.has(n)).map((n) => `the controller serves no ${n}`);
    for (const node of nodes) {
      const held = (JSON.parse(nodeGet(node, 'http://127.0.0.1:15000/config_dump') || '{}') as { xdsVersions?: Record<string, Record<string, string>> }).xdsVersions;
      if (!held) {
        diffs.push(`${node}: no /config_dump xdsVersions`);
        continue;
      }
      for (const typeUrl of [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]) {
        const want = served[typeUrl] ?? {};
        const got = held[typeUrl] ?? {};
        for (const n of new Set([...Object.keys(want), ...Object.keys(got)])) {
          if (want[n] !== got[n]) diffs.push(`${node} ${typeUrl.split('.').at(-1)} ${n}: agent ${got[n] ?? 'missing'}, controller ${want[n] ?? 'missing'}`);
        }
      }
    }
    return { diffs, counts: Object.entries(served).map(([t, r]) => `${t.split('.').at(-1)} ${Object.keys(r).length}`).join(', ') };
  };

  /** tcpdump on both uplinks for the app ports: packets counted per node when stopped. */
  const startCaptures = (tag: string) => {
    const filter = ['tcp', 'and', '(', ...APP_PORTS.flatMap((p, i) => [...(i ? ['or'] : []), 'port', String(p)]), ')'];
    return startUplinkCaptures(dir, tag, [...uplinks].map(([node, iface]) => ({ key: node, node, iface, filter })), 10_000);
  };

  /** mesh-streams in demo/client to the echo Service (through the waypoint). */
  const runStreams = (stopFile: string): MeshStreamsRun<StreamsResult> =>
    runMeshStreams<StreamsResult>(
      dir,
      'demo/client',
      ['--host', echoVip, '--port', String(ECHO_PORT), '--count', String(STREAMS), '--duration-ms', String(STREAM_MS), '--probe-interval-ms', '1000', '--stop-file', stopFile, '--timeout-ms', String(STREAMS_TIMEOUT_MS)],
      STREAMS_TIMEOUT_MS + 30_000,
    );

  /**
   * One fault: traffic and captures start, `kill` runs at a seeded-random moment, then the
   * service must come back within `recoveryBoundMs` (3 requests in a row) and the agents converge.
   */
  const fault = async (
    tag: string,
    o: {
      kill: () => Promise<string>;
      recoveryBoundMs: number;
      streamsMustComplete: boolean;
      /** Every stream the fault broke must end with a reset: a FIN would pass a cut-short stream off as whole. */
      brokenStreamsReset?: boolean;
      back?: () => Promise<void> | void;
    },
  ): Promise<void> => {
    const stopFile = join(dir, `${tag}.stop`);
    await rm(stopFile, { force: true });
    const captures = await startCaptures(tag);
    let streams: ReturnType<typeof runStreams> | undefined;
    try {
      const loop = probeLoop(dir, cli.env(), 'demo/client', `http://${backendVip}/`, { seconds: 150, stopFile, gapS: 0.15 });
      streams = runStreams(stopFile);
      await loop.started;
      await waitStreamsFlowing(streams.progress, STREAMS, 30_000);
      const waitMs = Math.round(1_000 + random() * 4_000);
      await new Promise((r) => setTimeout(r, waitMs));
      const killAt = Date.now();
      const what = await o.kill();
      // The killed component back (by itself), then the service: three requests in a row succeed.
      await o.back?.();
      let streak = 0;
      let resumedAt = 0;
      await eventually(
        () => {
          streak = clientOk() ? streak + 1 : 0;
          expect(streak, 'consecutive successful requests').toBeGreaterThanOrEqual(3);
          resumedAt = Date.now();
        },
        { timeoutMs: o.recoveryBoundMs, intervalMs: 200, description: `${tag}: requests succeed again after the kill` },
      );
      await new Promise((r) => setTimeout(r, 3_000));
      await writeFile(stopFile, '');
      const { probes, stderr } = await loop.done;
      const run = await streams.done;
      const packets = await captures.stop();
      // Convergence: every agent holds exactly what the controller serves.
      let convergedAt = 0;
      let last = { diffs: [] as string[], counts: '' };
      await eventually(
        () => {
          last = convergence();
          expect(last.diffs.slice(0, 10), `${tag}: agents differ from the controller`).toEqual([]);
          convergedAt = Date.now();
        },
        { timeoutMs: CONVERGE_MS, intervalMs: 500, description: `${tag}: agents equal the controller's view` },
      );

      const after = probes.filter((p: Probe) => p.at >= killAt);
      const failedAfter = after.filter((p) => p.code !== '200' || p.version === '-');
      const lastFailed = failedAfter.at(-1);
      const recoveryMs = lastFailed ? Math.max(0, (after.find((p) => p.at > lastFailed.at && p.code === '200')?.at ?? resumedAt) - killAt) : 0;
      const r = run.result;
      const streamText = r
        ? `${r.streams.complete}/${r.streams.count} streams whole, ${r.streams.failed} closed/reset (${r.streams.errors.map((e) => `${e.code} after ${e.received}/${e.sent} B`).join('; ') || 'none'})`
        : 'no result';
      figures.push({ fault: tag, recoveryMs, failed: failedAfter.length, requests: after.length, packets, streams: streamText, convergeMs: convergedAt - killAt });
      console.log(
        `[${tag}] seed ${SEED}: killed ${what} ${waitMs} ms into the traffic; service back (3 in a row) ${resumedAt - killAt} ms after the kill, last failed request started ${lastFailed ? lastFailed.at - killAt : '-'} ms after it → recovery ${recoveryMs} ms; ` +
          `${failedAfter.length}/${after.length} requests from the kill on failed (${probes.length} in all); ${streamText}; plaintext app-port packets on the uplinks ${JSON.stringify(packets)}; ` +
          `agents equal the controller (${last.counts}) ${convergedAt - killAt} ms after the kill`,
      );
      expect(stderr).toBe('');
      // (a) fail closed: nothing on the app ports crossed an uplink.
      for (const node of nodes) expect(packets[node], `${tag}: plaintext app-port packets on ${node}'s uplink`).toBe(0);
      // (b) streams: every one ended (no hang), none carried a wrong byte; a reset or close is clean.
      expect(r, `${tag}: fault-streams result\n${run.out.slice(-600)}\n${run.err.slice(-600)}`).toBeDefined();
      const result = r as StreamsResult;
      expect(result.streams.complete + result.streams.failed, `${tag}: streams that neither completed nor ended (hung)`).toBe(STREAMS);
      expect(result.streams.errors.filter((e) => e.code === 'MISMATCH'), `${tag}: streams that delivered wrong bytes`).toEqual([]);
      expect(result.bytes.received).toBeLessThanOrEqual(result.bytes.sent);
      if (o.streamsMustComplete) expect(result.streams.errors, `${tag}: streams broken`).toEqual([]);
      if (o.brokenStreamsReset) expect(result.streams.errors.filter((e) => !RESET_CODES.includes(e.code)), `${tag}: broken streams that did not end with a reset`).toEqual([]);
      // (c) recovered within the bound without anyone's help, and stayed up: the last requests were served.
      expect(recoveryMs).toBeLessThanOrEqual(o.recoveryBoundMs);
      expect(
        probes.slice(-3).map((p) => p.code),
        `${tag}: the last requests`,
      ).toEqual(['200', '200', '200']);
    } finally {
      await writeFile(stopFile, '').catch(() => undefined);
      await captures.stop();
    }
  };

  beforeAll(async () => {
    console.log(`process-fault seed ${SEED} (replay with AMESH_FAULT_SEED=${SEED})`);
    dir = await mkdtemp(join(tmpdir(), 'amesh-faults-kill-test-'));
    await sandboxUp({ dir, name, nodes: 2 });
    cli.apply(
      [
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: demo, labels: {istio.io/dataplane-mode: ambient}}',
        `apiVersion: v1\nkind: Pod\nmetadata: {name: backend, namespace: demo, labels: {app: backend}}\nspec: {nodeName: ${nodes[1]}, containers: [{name: b, image: "gcr.io/google-samples/hello-app:1.0", ports: [{containerPort: ${BACKEND_PORT}}]}]}`,
        `apiVersion: v1\nkind: Service\nmetadata: {name: backend, namespace: demo}\nspec: {selector: {app: backend}, ports: [{name: http, port: 80, targetPort: ${BACKEND_PORT}}]}`,
        `apiVersion: v1\nkind: Pod\nmetadata: {name: echo, namespace: demo, labels: {app: echo}}\nspec: {nodeName: ${nodes[1]}, containers: [{name: e, image: alpine, command: [node, ${POD_PROGRAMS}, echo-server, --port, "${ECHO_PORT}"]}]}`,
        `apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: demo}\nspec: {selector: {app: echo}, ports: [{name: tcp-echo, port: ${ECHO_PORT}}]}`,
        `apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: demo}\nspec: {nodeName: ${nodes[0]}, containers: [{name: c, image: alpine, command: [sleep, "3600"]}]}`,
      ].join('\n---\n'),
    );
    await eventually(
      () => {
        const r = cli.kubectlOk('get', 'pods', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}');
        expect(r.trim().split(' ').sort()).toEqual(['backend=Running', 'client=Running', 'echo=Running']);
      },
      { timeoutMs: 60_000, intervalMs: 500, description: 'demo pods running' },
    );
    const waypoint = cli.amesh('waypoint', 'apply', '-n', 'demo', '--enroll-namespace', '--wait', '--timeout', '120s');
    expect(waypoint.status, `${waypoint.stdout}\n${waypoint.stderr}`).toBe(0);
    backendVip = cli.kubectlOk('get', 'svc', '-n', 'demo', 'backend', '-o', 'jsonpath={.spec.clusterIP}').trim();
    echoVip = cli.kubectlOk('get', 'svc', '-n', 'demo', 'echo', '-o', 'jsonpath={.spec.clusterIP}').trim();
    demoUids = ['client', 'backend', 'echo'].map((pod) => cli.kubectlOk('get', 'pod', '-n', 'demo', pod, '-o', 'jsonpath={.metadata.uid}').trim());
    clientNetns = podNames(name, demoUids[0] ?? '').netns;
    for (const node of nodes) {
      uplinks.set(node, nodeUplink(cli, node).iface);
    }
    const waypointNode = cli.kubectlOk('get', 'pods', '-n', 'demo', '-l', 'gateway.networking.k8s.io/gateway-name=waypoint', '-o', 'jsonpath={.items[0].spec.nodeName}').trim();
    console.log(`client on ${nodes[0]}, backend and echo on ${nodes[1]}, waypoint on ${waypointNode}; backend ${backendVip}:80, echo ${echoVip}:${ECHO_PORT}`);
    await eventually(() => expect(clientOk()).toBe(true), { timeoutMs: 30_000, intervalMs: 500, description: 'the backend answers through the mesh' });
    // Both Services are bound to the waypoint in the client agent's state: requests and streams go through it.
    await eventually(
      () => {
        const dump = JSON.parse(nodeGet(nodes[0] ?? '', 'http://127.0.0.1:15000/config_dump') || '{}') as { services?: Array<{ hostname: string; waypoint?: unknown }> };
        for (const svc of ['backend', 'echo']) expect(dump.services?.find((x) => x.hostname === `${svc}.demo.svc.cluster.local`)?.waypoint, `${svc}'s waypoint in the client agent's config`).toBeDefined();
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'backend and echo bound to the waypoint' },
    );
    await eventually(() => expect(convergence().diffs.slice(0, 10)).toEqual([]), { timeoutMs: CONVERGE_MS, intervalMs: 500, description: 'agents equal the controller before any fault' });
  }, 300_000);

  afterAll(async () => {
    if (figures.length) {
      console.log(
        `process faults (seed ${SEED}):\n${figures
          .map((f) => `  ${f.fault}: recovery ${f.recoveryMs} ms, ${f.failed}/${f.requests} requests failed, ${f.streams}, plaintext packets ${JSON.stringify(f.packets)}, converged ${f.convergeMs} ms`)
          .join('\n')}`,
      );
    }
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('kill -9 of the client node’s agent: restarted by the kubelet, fail closed, service back, agents converge', async () => {
    let killed = 0;
    await fault('node-agent', {
      kill: async () => {
        killed = await containerPid(/^amesh-system\/amesh-node-/, 'amesh-node', nodes[0]);
        process.kill(killed, 'SIGKILL');
        return `the node agent on ${nodes[0]} (pid ${killed})`;
      },
      recoveryBoundMs: 45_000,
      streamsMustComplete: false,
      // The dead agent's sockets to the client are armed with SO_LINGER 0 (reset-on-crash.ts).
      brokenStreamsReset: true,
      back: () =>
        eventually(
          async () => {
            const now = (await readRecordedPids(join(dir, 'kubelet'))).filter((r) => r.node === nodes[0] && r.container === 'amesh-node');
            expect(now.map((r) => r.pid)).not.toContain(killed);
            expect(now).toHaveLength(1);
          },
          { timeoutMs: 30_000, intervalMs: 200, description: 'a new agent process on the client node' },
        ),
    });
  }, 200_000);

  it('kill -9 of the controller: the data plane does not notice, the restarted controller and the agents converge', async () => {
    await fault('controller', {
      kill: async () => {
        const pid = await containerPid(/^amesh-system\/amesh-controller-/, 'amesh-controller');
        process.kill(pid, 'SIGKILL');
        return `the controller (pid ${pid})`;
      },
      recoveryBoundMs: 10_000,
      streamsMustComplete: true,
      back: () => eventually(() => expect(cli.kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-controller', '-o', 'jsonpath={.items[0].status.containerStatuses[0].ready}')).toBe('true'), { timeoutMs: 60_000, intervalMs: 500, description: 'the controller Ready again' }),
    });
  }, 200_000);

  it('kill -9 of the waypoint: restarted by the kubelet, fail closed, service back, agents converge', async () => {
    await fault('waypoint', {
      kill: async () => {
        const pods = (await readRecordedPids(join(dir, 'kubelet'))).filter((r) => /^demo\/waypoint-/.test(r.pod));
        expect(pods, 'one recorded waypoint process').toHaveLength(1);
        const uid = cli.kubectlOk('get', 'pod', '-n', 'demo', (pods[0]?.pod ?? '').split('/')[1] ?? '', '-o', 'jsonpath={.metadata.uid}').trim();
        const ss = spawnSync('ip', ['netns', 'exec', podNames(name, uid).netns, 'ss', '-tnp', 'state', 'established'], { encoding: 'utf8' }).stdout;
        console.log(`[waypoint] established TCP in the waypoint pod before the kill:\n${ss.split('\n').slice(0, 30).join('\n')}`);
        const pid = pods[0]?.pid ?? 0;
        process.kill(pid, 'SIGKILL');
        return `the waypoint ${pods[0]?.pod} (pid ${pid})`;
      },
      recoveryBoundMs: 45_000,
      streamsMustComplete: false,
      // The client's agent sees the tunnel die without END_STREAM and resets the client (relay.ts).
      brokenStreamsReset: true,
    });
  }, 200_000);

  it('kill -9 of the sandbox API server (daemon): its supervisor restarts it, pods come back, fail closed, agents converge', async () => {
    let containers = new Set<number>();
    await fault('api-server', {
      kill: async () => {
        containers = new Set((await readRecordedPids(join(dir, 'kubelet'))).map((r) => r.pid));
        const pid = await daemonChildPid();
        process.kill(pid, 'SIGKILL');
        return `the sandbox daemon / API server (pid ${pid}; ${containers.size} containers running)`;
      },
      recoveryBoundMs: 150_000,
      streamsMustComplete: false,
      // The restarted daemon's kubelets kill the containers the dead one left and start every pod again.
      back: () =>
        eventually(
          async () => {
            expect(cli.kubectl('get', 'ns', 'demo').status, 'kubectl against the restarted API server').toBe(0);
            const now = await readRecordedPids(join(dir, 'kubelet'));
            expect(
              now.filter((r) => containers.has(r.pid)).map((r) => r.pod),
              'containers of the killed daemon still recorded',
            ).toEqual([]);
            expect(now.length, 'containers started again').toBeGreaterThanOrEqual(containers.size);
          },
          { timeoutMs: 120_000, intervalMs: 500, description: 'the API server answering and every container started again' },
        ),
    });
  }, 300_000);
});
