/**
 * Issue #5 close-out: the "Done when" figures sandbox-ambient.test.ts does not measure, taken
 * from traffic rather than from the agents' configuration.
 * - Traffic between demo pods (a new connection every ~100 ms from demo/client to backend.demo)
 *   shows up as HBONE in an agent's access log within 2 s of `kubectl label ns demo
 *   istio.io/dataplane-mode=ambient` starting, and the last HBONE connection is seen within 2 s of
 *   the label's removal; no request fails across either change, and no pod restarts.
 * - The controller SIGKILLed and restarted by the kubelet: how long the agents were without it,
 *   that a connection opened before the kill and new connections during the outage work, and how
 *   long after the agents reconnect a DENY applied during the outage reaches them and is enforced.
 * Measured figures are printed with console.log (they go into the issue's closing note).
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';
import { failedProbes, probeLoop } from '../helpers/sandbox-probes.js';
import { expectWholeStream, openStream, STREAM_SCRIPT } from '../helpers/sandbox-stream.js';

const guard = requireRoot('sandbox issue #5 close-out', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'busybox', 'unshare'] });
const REPO = join(import.meta.dirname, '..', '..');
const DEADLINE_MS = 2_000;
const CLIENT_IDENTITY = 'spiffe://cluster.local/ns/demo/sa/default';

interface LogRecord {
  /** The agent pod whose log it is. */
  pod: string;
  time?: number;
  msg?: string;
  direction?: string;
  'src.identity'?: string;
  'dst.addr'?: string;
  policy?: string;
}

describe.skipIf(!guard.run)('issue #5 close-out figures (privileged sandbox)', () => {
  const name = `am${Math.random().toString(16).slice(2, 5)}`;
  const nodes = [`${name}-worker`, `${name}-worker2`];
  let dir = '';
  const { env, kubectlOk, apply, amesh, exec } = sandboxCli(() => dir);

  const agentPods = (): string[] =>
    kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-node', '-o', 'jsonpath={.items[*].metadata.name}')
      .split(' ')
      .filter(Boolean);
  /** Every JSON record in both agents' logs. */
  const agentRecords = (): LogRecord[] =>
    agentPods().flatMap((pod) =>
      amesh('sandbox', 'logs', '--dir', dir, `amesh-system/${pod}`)
        .stdout.split('\n')
        .flatMap((line) => {
          const start = line.indexOf('{');
          if (start < 0) return [];
          try {
            return [{ ...(JSON.parse(line.slice(start)) as Omit<LogRecord, 'pod'>), pod }];
          } catch {
            return [];
          }
        }),
    );
  /** Inbound HBONE connections from demo/client's identity, by time (epoch ms, logged when each ended). */
  const hboneFromClient = (): number[] =>
    agentRecords()
      .filter((r) => r.direction === 'inbound' && r['src.identity'] === CLIENT_IDENTITY && typeof r.time === 'number')
      .map((r) => r.time ?? 0)
      .sort((a, b) => a - b);
  const podFingerprint = (): string => kubectlOk('get', 'pods', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.uid}:{.status.containerStatuses[0].restartCount} {end}');
  /** GET `path` on an agent's port inside its node's network namespace (no process start: fast enough to poll). */
  const agentGet = (node: string, port: number, path: string): string => {
    try {
      return execFileSync('nsenter', [`--net=/run/netns/${node}`, 'curl', '-s', '--max-time', '1', `http://127.0.0.1:${port}${path}`], { encoding: 'utf8' });
    } catch {
      return '';
    }
  };
  const curlOk = (ref: string, url = 'http://backend.demo'): boolean => exec(ref, 'curl', '-s', '-S', '--max-time', '3', url).stdout.includes('Hello, world!');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-closeout5-test-'));
    await sandboxUp({ dir, name, nodes: 2 });
    kubectlOk('apply', '-f', join(REPO, 'samples', 'demo', 'demo.yaml'));
    const script = join(dir, 'stream.sh');
    await writeFile(script, STREAM_SCRIPT);
    await chmod(script, 0o755);
    apply(
      [
        `apiVersion: v1\nkind: Pod\nmetadata: {name: stream, namespace: demo, labels: {app: stream}}\nspec: {nodeName: ${nodes[1]}, containers: [{name: s, image: busybox, command: [busybox, nc, -ll, -p, "9000", -e, ${script}], ports: [{containerPort: 9000}]}]}`,
        'apiVersion: v1\nkind: Service\nmetadata: {name: stream, namespace: demo}\nspec: {selector: {app: stream}, ports: [{port: 9000}]}',
        `apiVersion: v1\nkind: Pod\nmetadata: {name: nc-client, namespace: demo}\nspec: {nodeName: ${nodes[0]}, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}`,
      ].join('\n---\n'),
    );
    await eventually(
      () => {
        const r = kubectlOk('get', 'deploy', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas} {end}');
        expect(r.trim().split(' ').sort()).toEqual(['backend-v1=1', 'backend-v2=1', 'client=1', 'frontend=1']);
        expect(kubectlOk('get', 'pods', '-n', 'demo', 'stream', 'nc-client', '-o', 'jsonpath={.items[*].status.phase}')).toBe('Running Running');
        expect(curlOk('demo/client')).toBe(true);
      },
      { timeoutMs: 90_000, intervalMs: 1000, description: 'demo running and answering in plaintext' },
    );
  }, 240_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('HBONE traffic within 2 s of labelling demo ambient, plaintext again within 2 s of removing the label; no request fails, no pod restarts', async () => {
    const before = podFingerprint();
    const stop = join(dir, 'stop-enrolment');
    const loop = probeLoop(dir, env(), 'demo/client', 'http://backend.demo/', { seconds: 60, stopFile: stop, gapS: 0.1 });
    await loop.started;
    await new Promise((r) => setTimeout(r, 2000)); // the loop is running, in plaintext
    const labelStart = Date.now();
    kubectlOk('label', 'ns', 'demo', 'istio.io/dataplane-mode=ambient');
    const labelDone = Date.now();
    await new Promise((r) => setTimeout(r, 6000));
    const unlabelStart = Date.now();
    kubectlOk('label', 'ns', 'demo', 'istio.io/dataplane-mode-');
    const unlabelDone = Date.now();
    await new Promise((r) => setTimeout(r, 5000));
    await writeFile(stop, '');
    const { probes, stderr } = await loop.done;
    const hbone = await eventually(
      () => {
        const times = hboneFromClient();
        expect(times.length, 'inbound HBONE connections from demo/client in the agents’ access logs').toBeGreaterThan(0);
        return times;
      },
      { timeoutMs: 15_000, intervalMs: 1000, description: 'HBONE access-log lines' },
    );
    // When each agent applied the first mesh state after each change (its "mesh state applied" line).
    const applied = agentRecords().filter((r) => r.msg === 'mesh state applied' && typeof r.time === 'number');
    const firstApplied = (from: number): string =>
      [...new Set(applied.map((r) => r.pod))].map((pod) => `${pod} ${(applied.find((r) => r.pod === pod && (r.time ?? 0) >= from)?.time ?? NaN) - from} ms`).join(', ');
    const failed = failedProbes(probes, labelStart);
    const first = hbone.find((t) => t >= labelStart);
    const last = hbone.at(-1) ?? 0;
    // Every request is a new connection and each HBONE one is logged (when it ends) by the backend's agent:
    // the requests that started 2 s or more after the label and ended before the unlabel must all be HBONE.
    const window = probes.filter((p) => p.at >= labelStart + DEADLINE_MS && p.at + p.ms < unlabelStart);
    const hboneInWindow = hbone.filter((t) => t >= labelStart + DEADLINE_MS && t < unlabelStart).length;
    const plaintextAfter = probes.filter((p) => p.at >= unlabelStart + DEADLINE_MS);
    const hboneAfter = hbone.filter((t) => t >= unlabelStart + DEADLINE_MS).length;
    console.log(
      `enrolment by traffic: ${probes.length} requests (a new connection each, ~${Math.round(((probes.at(-1)?.at ?? 0) - (probes[0]?.at ?? 0)) / Math.max(probes.length - 1, 1))} ms apart), ${failed.length} failed; ` +
        `agents applied the next mesh state ${firstApplied(labelStart)} after \`kubectl label\` started (${labelDone - labelStart} ms for kubectl itself); ` +
        `first HBONE connection from demo/client logged ${first === undefined ? 'never' : first - labelStart} ms after it; ` +
        `from 2 s after the label until the unlabel: ${window.length} requests, ${hboneInWindow} HBONE connections logged; ` +
        `unlabel: agents applied ${firstApplied(unlabelStart)} after it started (${unlabelDone - unlabelStart} ms for kubectl), last HBONE connection logged ${last - unlabelStart} ms after it; ` +
        `from 2 s after the unlabel: ${plaintextAfter.length} requests, ${hboneAfter} HBONE`,
    );
    expect(stderr).toBe('');
    if (failed.length) {
      const around = agentRecords().filter((r) => probes.some((p) => (p.code !== '200' || p.version === '-') && (r.time ?? 0) >= p.at - 1000 && (r.time ?? 0) <= p.at + p.ms + 1000));
      console.log(`agent log records around the failed requests (label at 0 ms, unlabel at ${unlabelStart - labelStart} ms):\n${around.map((r) => JSON.stringify(r)).join('\n')}`);
    }
    // Neither enrolment nor unenrolment may break a request (issue #5: connections opened before enrolment keep
    // working). Around the unenrolment a request the capture still hands an agent after its state counts the pod out
    // of the mesh used to be reset (1 of ~55 in 4 of 6 runs on 2026-12-05); since 77caa69 and the leaving-source route
    // it is delivered, and 6 runs in a row had no failed request, so it is asserted.
    const failedEnrolling = failedProbes(
      probes.filter((p) => p.at < unlabelStart),
      labelStart,
    );
    console.log(`failed requests: while enrolling ${failedEnrolling.length}, around the unenrolment ${failed.length - failedEnrolling.length} (${failed.join('; ') || 'none'})`);
    expect(failedEnrolling, 'requests that failed around the enrolment (ms after the label)').toEqual([]);
    expect(failed, 'requests that failed around the enrolment or the unenrolment (ms after the label)').toEqual([]);
    expect(hbone.filter((t) => t < labelStart), 'no HBONE before the label').toEqual([]);
    expect(window.length, 'requests between 2 s after the label and the unlabel').toBeGreaterThanOrEqual(10);
    expect(hboneInWindow, 'every request from 2 s after the label on went through HBONE').toBeGreaterThanOrEqual(window.length);
    expect(first, 'an HBONE connection after the label').toBeDefined();
    expect(plaintextAfter.length, 'requests from 2 s after the unlabel').toBeGreaterThanOrEqual(5);
    expect(hboneAfter, 'no HBONE from 2 s after the label’s removal').toBe(0);
    expect(podFingerprint()).toBe(before);
  }, 90_000);

  it('the controller SIGKILLed: a connection opened before and new ones during the outage work; a DENY made meanwhile is enforced soon after the agents reconnect', async () => {
    kubectlOk('label', 'ns', 'demo', 'istio.io/dataplane-mode=ambient');
    await eventually(() => expect(hboneFromClient().length).toBeGreaterThan(0), { timeoutMs: 10_000, intervalMs: 500, description: 'demo enrolled again' });
    await eventually(() => expect(curlOk('demo/client')).toBe(true), { timeoutMs: 10_000, intervalMs: 300, description: 'client served over HBONE' });
    const records = await Promise.all(
      (await readdir(join(dir, 'kubelet'))).filter((f) => /^pids-.*\.json$/.test(f)).map(async (f) => readFile(join(dir, 'kubelet', f), 'utf8')),
    );
    const controllerPid = records
      .flatMap((text) => [...text.matchAll(/\{[^{}]*"container":\s*"amesh-controller"[^{}]*\}/g)].map((m) => (JSON.parse(m[0]) as { pid: number }).pid))
      .at(-1);
    expect(controllerPid, 'the controller container process in the kubelet records').toBeDefined();
    const connected = (node: string): boolean => (JSON.parse(agentGet(node, 15021, '/healthz/ready') || '{}') as { xds?: { connected?: boolean } }).xds?.connected === true;
    const hasPolicy = (node: string): boolean => agentGet(node, 15000, '/config_dump').includes('deny-client');
    for (const node of nodes) expect(connected(node), `agent on ${node} connected to the controller`).toBe(true);

    const lines = 250;
    const streamIp = kubectlOk('get', 'svc', '-n', 'demo', 'stream', '-o', 'jsonpath={.spec.clusterIP}').trim();
    const stream = openStream(dir, 'demo/nc-client', streamIp, 9000, lines);
    // New connections from the client throughout: served during the outage, refused once the DENY is in force.
    const stop = join(dir, 'stop-outage');
    const loop = probeLoop(dir, env(), 'demo/client', 'http://backend.demo/', { seconds: 120, stopFile: stop, gapS: 0.2 });
    await loop.started;
    await new Promise((r) => setTimeout(r, 1000));
    const killed = Date.now();
    process.kill(controllerPid ?? 0, 'SIGKILL');
    // Both agents notice (their xDS stream breaks) …
    let disconnectedAt = 0;
    await eventually(
      () => {
        for (const node of nodes) expect(connected(node), node).toBe(false);
        disconnectedAt = Date.now();
      },
      { timeoutMs: 15_000, intervalMs: 100, description: 'both agents see the controller gone' },
    );
    // … and while it is down a DENY for the client is written; new connections keep working meanwhile.
    apply(
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-client, namespace: demo}\nspec: {action: DENY, selector: {matchLabels: {app: backend}}, rules: [{from: [{source: {principals: [cluster.local/ns/demo/sa/default]}}]}]}',
    );
    const appliedAt = Date.now();
    let reconnectedAt = 0;
    await eventually(
      () => {
        for (const node of nodes) expect(connected(node), node).toBe(true);
        reconnectedAt = Date.now();
      },
      { timeoutMs: 90_000, intervalMs: 100, description: 'both agents reconnected to the restarted controller' },
    );
    let policyAt = 0;
    await eventually(
      () => {
        for (const node of nodes) expect(hasPolicy(node), node).toBe(true);
        policyAt = Date.now();
      },
      { timeoutMs: 30_000, intervalMs: 100, description: 'the DENY in both agents’ config' },
    );
    // Until the client's requests are refused (or 20 s), then a little more.
    await eventually(
      () => {
        if (Date.now() - policyAt < 20_000) expect(curlOk('demo/client')).toBe(false);
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'the DENY enforced' },
    );
    await new Promise((r) => setTimeout(r, 1500));
    await writeFile(stop, '');
    const { probes } = await loop.done;
    // The first mesh state each agent applied after the kill came from the restarted controller: the outage ends at
    // the earlier one (the readiness endpoint's xds.connected turns true later).
    const appliedAfterKill = agentRecords().filter((r) => r.msg === 'mesh state applied' && (r.time ?? 0) > killed);
    const backPerAgent = agentPods().map((pod) => appliedAfterKill.find((r) => r.pod === pod)?.time ?? Infinity);
    const backAt = Math.min(...backPerAgent);
    const outage = probes.filter((p) => p.at > killed && p.at + p.ms < Math.min(backAt, reconnectedAt));
    const refusedOutage = failedProbes(outage, killed);
    const firstRefused = probes.find((p) => p.at + p.ms >= Math.min(backAt, reconnectedAt) && p.code !== '200');
    const servedAfterPolicy = probes.filter((p) => p.at >= policyAt && p.code === '200');
    const lastServed = probes.filter((p) => p.code === '200').at(-1);
    const { out } = await stream;
    const restarts = kubectlOk('get', 'pods', '-n', 'amesh-system', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} {end}');
    console.log(
      `controller SIGKILL: agents saw it gone after ${disconnectedAt - killed} ms; first mesh state from the restarted controller applied ${backPerAgent.map((t) => t - killed).join(' / ')} ms after the kill (per agent), both agents' readiness xds.connected again at ${reconnectedAt - killed} ms; ` +
        `the DENY applied during the outage (${appliedAt - killed} ms after the kill) was in both agents' config ${policyAt - reconnectedAt} ms after they reconnected; ` +
        `first refused request ended ${firstRefused ? firstRefused.at + firstRefused.ms - backAt : 'never'} ms after that first state (the last served request ended ${lastServed ? lastServed.at + lastServed.ms - Math.max(...backPerAgent) : '?'} ms after the second agent's state; ${servedAfterPolicy.length} requests started after the policy was in both agents' config were served); ` +
        `during the outage ${outage.length} new connections, ${refusedOutage.length} failed${refusedOutage.length ? ` (${refusedOutage.join('; ')})` : ''}; ${out.trim().split('\n').length}/${lines} stream lines; restart counts: ${restarts.trim()}`,
    );
    if (refusedOutage.length) {
      // What the agents applied and logged meanwhile (times in ms after the kill).
      const records = agentRecords().filter((r) => (r.time ?? 0) >= killed && (r.time ?? 0) <= reconnectedAt + 3000 && r.msg !== undefined && r.direction === undefined);
      console.log(
        `agent log records from the kill until 3 s after the reconnect:\n${records
          .map((r) => `${(r.time ?? 0) - killed} ms ${r.pod}: ${JSON.stringify({ ...r, pod: undefined, time: undefined }).slice(0, 400)}`)
          .join('\n')}`,
      );
    }
    expect(outage.length, 'requests while the controller was down').toBeGreaterThanOrEqual(5);
    expect(refusedOutage, 'new connections during the outage (agents keep their last state)').toEqual([]);
    expect(firstRefused, 'the DENY made during the outage is enforced after the restart').toBeDefined();
    expect(servedAfterPolicy.map((p) => p.at - policyAt), 'served after the DENY was in both agents').toEqual([]);
    expectWholeStream(out, lines);
    expect(restarts).toMatch(/amesh-controller[^=]*=[1-9]/);
    kubectlOk('delete', 'authorizationpolicy', '-n', 'demo', 'deny-client');
    await eventually(() => expect(curlOk('demo/client')).toBe(true), { timeoutMs: 10_000, intervalMs: 300, description: 'allowed again' });
  }, 150_000);
});
