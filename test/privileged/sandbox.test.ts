/**
 * `amesh sandbox` end to end, as a user drives it: `up` through the CLI's own functions, then
 * real kubectl (apply, get, label) and `amesh sandbox exec`, then `down` — after which nothing
 * the sandbox made may remain: namespaces, /etc/netns entries, processes, pinned BPF objects,
 * host routes or nft rules.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { readState, type SandboxState } from '../../src/sandbox/state.js';
import { requireRoot } from '../helpers/privileged.js';
import { eventually } from '../helpers/eventually.js';

const guard = requireRoot('sandbox', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'unshare'] });
const REPO = join(import.meta.dirname, '..', '..');
const AMESH = join(REPO, 'bin', 'amesh.js');

function hostSnapshot(): string {
  const routes = execFileSync('ip', ['route', 'show', 'table', 'all'], { encoding: 'utf8' });
  const rules = execFileSync('ip', ['rule', 'show'], { encoding: 'utf8' });
  const nft = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout;
  // Interface names only (veths the sandbox might leave in the host namespace); flags and state may change.
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter(Boolean)
    .sort()
    .join(' ');
  return `${routes}\n${rules}\n${nft}\n${links}`;
}

describe.skipIf(!guard.run)('amesh sandbox (privileged: network namespaces, eBPF, real kubectl)', () => {
  const name = `at${Math.random().toString(16).slice(2, 5)}`;
  let dir = '';
  let state: SandboxState | undefined;
  let hostBefore = '';
  const kubectl = (...args: string[]) =>
    spawnSync('kubectl', args, { encoding: 'utf8', env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig') }, timeout: 60_000 });
  const amesh = (...args: string[]) => spawnSync(process.execPath, [AMESH, ...args], { encoding: 'utf8', timeout: 60_000 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-sandbox-test-'));
    hostBefore = hostSnapshot();
  });

  afterAll(async () => {
    if (dir) await sandboxDown({ dir }).catch(() => undefined);
  });

  it('comes up with two nodes and the node agents installed through the DaemonSet manifest', async () => {
    const started = Date.now();
    const result = await sandboxUp({ dir, name, nodes: 2 });
    state = result.state;
    expect(result.alreadyRunning).toBe(false);
    console.log(`sandbox up (2 nodes, amesh installed) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const pods = kubectl('get', 'pods', '-A', '-o', 'wide');
    expect(pods.status, pods.stderr).toBe(0);
    const agentLines = pods.stdout.split('\n').filter((l) => l.includes('amesh-node-'));
    expect(agentLines).toHaveLength(2);
    for (const line of agentLines) expect(line).toMatch(/Running/);
    // The NODE column, matched as a whole word: `<name>-worker` is a prefix of `<name>-worker2`.
    expect(new Set(agentLines.map((l) => state?.nodes.find((n) => l.split(/\s+/).includes(n))))).toEqual(new Set(state.nodes));
  });

  it('is idempotent: a second `up` only checks the running sandbox', async () => {
    const again = await sandboxUp({ dir });
    expect(again.alreadyRunning).toBe(true);
    expect(again.state.daemonPid).toBe(state?.daemonPid);
  });

  it('runs the demo manifests applied with plain kubectl and answers curl through cluster DNS and the Service', async () => {
    const apply = kubectl('apply', '-f', join(REPO, 'samples', 'demo', 'demo.yaml'));
    expect(apply.status, apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/deployment.apps\/backend-v1 created/);
    await eventually(
      () => {
        const r = kubectl('get', 'deploy', '-n', 'demo', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas} {end}');
        expect(r.stdout.trim().split(' ').sort()).toEqual(['backend-v1=1', 'backend-v2=1', 'client=1', 'frontend=1']);
      },
      { timeoutMs: 60_000, intervalMs: 500, description: 'demo deployments available' },
    );
    await eventually(
      () => {
        const r = amesh('sandbox', 'exec', '--dir', dir, 'demo/client', '--', 'curl', '-s', '--max-time', '5', 'http://backend.demo');
        expect(r.stdout, r.stderr).toContain('Hello, world!');
        expect(r.stdout).toMatch(/Version: [12]\.0\.0/);
        expect(r.stdout).toMatch(/Hostname: backend-v[12]-/);
      },
      { timeoutMs: 20_000, intervalMs: 500, description: 'client → http://backend.demo' },
    );
  });

  it('enrols the namespace with kubectl label, without restarting pods, and traffic then crosses HBONE', async () => {
    const uidsBefore = kubectl('get', 'pods', '-n', 'demo', '-o', 'jsonpath={.items[*].metadata.uid}').stdout;
    const label = kubectl('label', 'ns', 'demo', 'istio.io/dataplane-mode=ambient');
    expect(label.status, label.stderr).toBe(0);
    const node = state?.nodes[0] ?? '';
    await eventually(
      () => {
        const dump = JSON.parse(execFileSync('nsenter', [`--net=/run/netns/${node}`, 'curl', '-s', '--max-time', '2', 'http://127.0.0.1:15000/config_dump'], { encoding: 'utf8' })) as {
          workloads: Array<{ namespace: string; protocol: string }>;
        };
        const demo = dump.workloads.filter((w) => w.namespace === 'demo');
        expect(demo.length).toBeGreaterThan(0);
        expect(demo.filter((w) => w.protocol !== 'HBONE')).toEqual([]);
      },
      { timeoutMs: 5_000, description: 'the node agent (over xDS) serves the demo pods as HBONE' },
    );
    await eventually(
      () => {
        const r = amesh('sandbox', 'exec', '--dir', dir, 'demo/client', '--', 'curl', '-s', '--max-time', '5', 'http://backend.demo');
        expect(r.stdout, r.stderr).toContain('Hello, world!');
        const logs = kubectl('get', 'pods', '-n', 'amesh-system', '-o', 'jsonpath={.items[*].metadata.name}')
          .stdout.split(' ')
          .filter(Boolean)
          .map((pod) => amesh('sandbox', 'logs', '--dir', dir, `amesh-system/${pod}`).stdout)
          .join('\n');
        expect(logs).toMatch(/"src\.identity":"spiffe:\/\/cluster\.local\/ns\/demo\/sa\/default"/);
      },
      { timeoutMs: 20_000, intervalMs: 500, description: 'an inbound HBONE connection from the client identity in an agent access log' },
    );
    expect(kubectl('get', 'pods', '-n', 'demo', '-o', 'jsonpath={.items[*].metadata.uid}').stdout).toBe(uidsBefore);
  });

  it('down --keep then up resumes the API state', async () => {
    await sandboxDown({ dir, keep: true });
    expect((await readState(dir))?.daemonPid).toBeUndefined();
    const up = await sandboxUp({ dir });
    expect(up.alreadyRunning).toBe(false);
    const ns = kubectl('get', 'ns', 'demo', '--show-labels');
    expect(ns.stdout).toContain('istio.io/dataplane-mode=ambient');
    await eventually(
      () => {
        const r = amesh('sandbox', 'exec', '--dir', dir, 'demo/client', '--', 'curl', '-s', '--max-time', '5', 'http://backend.demo');
        expect(r.stdout, r.stderr).toContain('Hello, world!');
      },
      { timeoutMs: 60_000, intervalMs: 1000, description: 'the demo answers again after resume' },
    );
  });

  it('a killed daemon comes back with `up`: same pods, one namespace each, the demo answers', async () => {
    // Restart through the CLI, as a user would: the daemon's parent then exits and the daemon is
    // reparented, so after a SIGKILL it can linger as a zombie until init reaps it.
    const restart = [amesh('sandbox', 'down', '--keep', '--dir', dir), amesh('sandbox', 'up', '--dir', dir)];
    for (const r of restart) expect(r.status, r.stderr).toBe(0);
    const before = await readState(dir);
    const podsBefore = kubectl('get', 'pods', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.uid} {end}').stdout.trim().split(' ').sort();
    expect(before?.daemonPid).toBeGreaterThan(1);
    process.kill(before?.daemonPid ?? 0, 'SIGKILL'); // the daemon this suite started
    // At once: `up` must not take the dead (maybe unreaped) daemon for alive.
    const up = amesh('sandbox', 'up', '--dir', dir);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/is up in/);
    expect((await readState(dir))?.daemonPid).not.toBe(before?.daemonPid);
    expect(kubectl('get', 'pods', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.uid} {end}').stdout.trim().split(' ').sort()).toEqual(podsBefore);
    await eventually(
      () => {
        const r = amesh('sandbox', 'exec', '--dir', dir, 'demo/client', '--', 'curl', '-s', '--max-time', '5', 'http://backend.demo');
        expect(r.stdout, r.stderr).toContain('Hello, world!');
      },
      { timeoutMs: 60_000, intervalMs: 1000, description: 'the demo answers after the daemon was killed and brought back' },
    );
    // Each pod (not host-network) has exactly one namespace and one set of processes: the old
    // containers were killed, not duplicated.
    const podNetns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(`${name}-p`));
    // Every pod with its own network (not hostNetwork: the node agents), in every namespace (the controller too).
    const podCount = kubectl('get', 'pods', '-A', '-o', 'jsonpath={range .items[*]}{.spec.hostNetwork}{"\\n"}{end}')
      .stdout.split('\n')
      .slice(0, -1)
      .filter((hostNetwork) => hostNetwork !== 'true').length;
    expect(podNetns).toHaveLength(podCount);
    for (const netns of podNetns) expect(execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).trim().split('\n')).toHaveLength(1);
  });

  it('down leaves nothing behind', async () => {
    const nodes = state?.nodes ?? [];
    const kubeletDir = join(dir, 'kubelet');
    const pidFiles = existsSync(kubeletDir) ? readdirSync(kubeletDir).filter((f) => /^pids-.*\.json$/.test(f)) : [];
    expect(pidFiles.length).toBeGreaterThan(0);
    const pidsFile = (await Promise.all(pidFiles.map((f) => readFile(join(kubeletDir, f), 'utf8')))).join('\n');
    await sandboxDown({ dir });
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(netns.split('\n').filter((l) => l.startsWith(`${name}-`))).toEqual([]);
    expect(existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((n) => n.startsWith(`${name}-`)) : []).toEqual([]);
    for (const node of nodes) {
      expect(existsSync(`/sys/fs/bpf/amesh/v1/${node}`)).toBe(false);
    }
    for (const match of pidsFile.matchAll(/"pid":\s*(\d+)/g)) expect(existsSync(`/proc/${match[1]}`) && readFileCmd(Number(match[1]))).toBeFalsy();
    expect(existsSync(dir)).toBe(false);
    expect(hostSnapshot()).toBe(hostBefore);
    dir = '';
  });
});

/** A recorded pid may have been reused by an unrelated process: only flag it if it still runs amesh/pod programs. */
function readFileCmd(pid: number): boolean {
  try {
    const cmd = execFileSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8' });
    return /amesh|hello-app|http-echo|sleep|nginx/.test(cmd);
  } catch {
    return false;
  }
}
