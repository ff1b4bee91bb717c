/**
 * Issue #10: `amesh uninstall` leaves every node exactly as it was before `amesh install`.
 *
 * A private bare sandbox (no amesh; its own state dir and name) with one pod pinned to each node
 * in namespace `app`. Each node's network namespace is snapshotted — routes and rules (IPv4 and
 * IPv6, every table), every interface's tc qdiscs and ingress/egress filters, `nft list ruleset`
 * — plus the node's pin directory on the BPF filesystem. Then, through the CLI against the
 * sandbox kubeconfig: `amesh install -y`, `amesh namespace enroll app` (waits until the pods are
 * captured: the capture is really installed, which the test checks in the kernel: our tc filters
 * on each pod's veth, the `inet amesh` nft table, the pins), `amesh uninstall -y`; and the
 * snapshot must be identical. Any leftover — a tc filter, a routing rule, a pin, the nft table —
 * fails the comparison.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';

const guard = requireRoot('install/uninstall', { tools: ['ip', 'nsenter', 'nft', 'tc', 'kubectl', 'unshare'] });
const AMESH = join(import.meta.dirname, '..', '..', 'bin', 'amesh.js');
const PIN_ROOT = '/sys/fs/bpf/amesh/v1';

interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside a node's network namespace; its stdout. */
function inNode(node: string, ...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', node, ...argv], { encoding: 'utf8', timeout: 10_000 });
}

/** `ls -R` of a directory as sorted relative paths; `(absent)` when it does not exist. */
function listTree(dir: string): string {
  if (!existsSync(dir)) return '(absent)';
  return execFileSync('find', [dir, '-mindepth', '1', '-printf', '%P %y\n'], { encoding: 'utf8' }).split('\n').filter(Boolean).sort().join('\n');
}

/**
 * Normalises only what changes on its own, not what amesh installs:
 * - `expires 123sec` on IPv6 routes (router advertisements count down);
 * - nft counters (`counter packets N bytes M`): the sandbox's own service rules count traffic,
 *   including the traffic of the install itself;
 * - nft set/map elements are sorted: the kernel lists them in hash order, which can differ after
 *   elements were added and removed again (a Service of amesh's came and went).
 */
function normaliseRoutes(text: string): string {
  return text.replace(/ expires \d+sec/g, ' expires <n>sec').split('\n').map((l) => l.trimEnd()).filter(Boolean).sort().join('\n');
}

function normaliseNft(text: string): string {
  const counters = text.replace(/counter packets \d+ bytes \d+/g, 'counter packets <n> bytes <n>');
  return counters.replace(/elements = \{([^}]*)\}/g, (_, body: string) => `elements = { ${body.split(',').map((e) => e.trim()).filter(Boolean).sort().join(', ')} }`);
}

interface NodeSnapshot {
  links: string;
  routes4: string;
  routes6: string;
  rules4: string;
  rules6: string;
  /** Per interface: qdiscs and ingress/egress filters. */
  tc: Record<string, string>;
  nft: string;
  pins: string;
}

/**
 * Waits until the node's network has settled: no IPv6 address still tentative (duplicate address
 * detection takes a second or two after a veth appears; until it ends, the address and its local
 * route are missing — seen as a diff on a pod veth's fe80:: route when the snapshot came early).
 */
async function settled(node: string): Promise<void> {
  await eventually(() => expect(inNode(node, 'ip', '-6', 'addr', 'show', 'tentative').trim(), `${node}: tentative IPv6 addresses`).toBe(''), {
    timeoutMs: 15_000,
    intervalMs: 250,
    description: `${node}: IPv6 duplicate address detection finished`,
  });
}

async function snapshotSettled(node: string): Promise<NodeSnapshot> {
  await settled(node);
  return snapshot(node);
}

function snapshot(node: string): NodeSnapshot {
  // Interface names only: ifindex and per-packet statistics are not state anyone installed.
  const links = inNode(node, 'ip', '-o', 'link', 'show')
    .split('\n')
    .filter(Boolean)
    .map((l) => (/^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? l).trim())
    .sort();
  const tc: Record<string, string> = {};
  for (const dev of links) {
    tc[dev] = [
      `qdisc: ${inNode(node, 'tc', 'qdisc', 'show', 'dev', dev).trim()}`,
      `ingress: ${inNode(node, 'tc', 'filter', 'show', 'dev', dev, 'ingress').trim()}`,
      `egress: ${inNode(node, 'tc', 'filter', 'show', 'dev', dev, 'egress').trim()}`,
    ].join('\n');
  }
  return {
    links: links.join(' '),
    routes4: normaliseRoutes(inNode(node, 'ip', '-4', 'route', 'show', 'table', 'all')),
    routes6: normaliseRoutes(inNode(node, 'ip', '-6', 'route', 'show', 'table', 'all')),
    rules4: inNode(node, 'ip', '-4', 'rule', 'show').trim(),
    rules6: inNode(node, 'ip', '-6', 'rule', 'show').trim(),
    tc,
    nft: normaliseNft(inNode(node, 'nft', 'list', 'ruleset')),
    pins: listTree(join(PIN_ROOT, node)),
  };
}

describe.skipIf(!guard.run)('amesh install → enrol → amesh uninstall leaves the nodes exactly as before (privileged sandbox)', () => {
  const name = `iu${Math.random().toString(16).slice(2, 5)}`;
  let dir = '';
  let nodes: string[] = [];
  const { env, kubectlOk, apply } = sandboxCli(() => dir);
  /** The amesh CLI without blocking the event loop (vitest's worker RPC), bounded in time. */
  const amesh = (...args: string[]): Promise<CliResult> =>
    new Promise((resolve) => {
      execFile(process.execPath, [AMESH, ...args], { env: env(), timeout: 150_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ status: code, stdout, stderr: err && code !== 0 && !stderr ? err.message : stderr });
      });
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-install-uninstall-test-'));
    const up = await sandboxUp({ dir, name, nodes: 2, install: false });
    nodes = up.state.nodes;
    // One pod on each node, pinned there: enrolment then puts capture on every node's pod veth.
    apply(
      [
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: app}',
        ...nodes.map((node, i) => `apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper-${i}, namespace: app, labels: {app: sleeper}}\nspec: {nodeName: ${node}, terminationGracePeriodSeconds: 1, containers: [{name: sleep, image: busybox, command: [sleep, "3600"]}]}`),
      ].join('\n---\n'),
    );
    await eventually(
      () => {
        const phases = kubectlOk('get', 'pods', '-n', 'app', '-o', 'jsonpath={.items[*].status.phase}');
        expect(phases.split(' ')).toEqual(nodes.map(() => 'Running'));
      },
      { timeoutMs: 60_000, intervalMs: 500, description: 'the app pods running' },
    );
  }, 120_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 90_000);

  it('install, enrol (capture really installed), uninstall: routes, rules, tc, nft and bpffs are as before', async () => {
    const before = Object.fromEntries(await Promise.all(nodes.map(async (n) => [n, await snapshotSettled(n)] as const)));
    for (const n of nodes) {
      expect(before[n]?.pins, `${n} has no amesh pins before install`).toBe('(absent)');
      expect(before[n]?.nft, `${n} has no amesh nft table before install`).not.toMatch(/table inet amesh/);
    }

    const t0 = Date.now();
    const install = await amesh('install', '-y', '--timeout', '2m');
    expect(install.status, `amesh install:\n${install.stdout}\n${install.stderr}`).toBe(0);
    expect(install.stdout).toMatch(/node agents: 2\/2 updated, 2\/2 ready/);
    expect(install.stdout).toMatch(/amesh namespace enroll/);
    const installS = (Date.now() - t0) / 1000;

    const enroll = await amesh('namespace', 'enroll', 'app', '--timeout', '90s');
    expect(enroll.status, `amesh namespace enroll:\n${enroll.stdout}\n${enroll.stderr}`).toBe(0);
    expect(enroll.stdout).toMatch(/pods captured \(redirection enabled\): 2\/2/);

    // The capture is in the kernel: each node's pod veth carries a BPF filter, the pins and the
    // nft table exist — so the comparison below compares against real leftovers, not nothing.
    const during = Object.fromEntries(nodes.map((n) => [n, snapshot(n)]));
    for (const n of nodes) {
      const s = during[n];
      expect(s?.pins, `${n}: pinned maps while captured`).not.toBe('(absent)');
      expect(s?.nft, `${n}: nft table while captured`).toMatch(/table inet amesh/);
      const filtered = Object.entries(s?.tc ?? {}).filter(([, text]) => / bpf /.test(text)).map(([dev]) => dev);
      expect(filtered.length, `${n}: interfaces with amesh's tc filter`).toBeGreaterThan(0);
      expect(s?.rules4, `${n}: amesh's policy routing rule`).not.toBe(before[n]?.rules4);
    }

    const t1 = Date.now();
    const uninstall = await amesh('uninstall', '-y', '--timeout', '2m');
    expect(uninstall.status, `amesh uninstall:\n${uninstall.stdout}\n${uninstall.stderr}`).toBe(0);
    expect(uninstall.stdout).toMatch(/node cleanup: 2\/2 nodes done/);
    expect(uninstall.stdout).toMatch(/nothing of amesh remains in the API/);
    const uninstallS = (Date.now() - t1) / 1000;

    // The API: no amesh namespace or workloads; the app pods lost amesh's annotations.
    expect(kubectlOk('get', 'ns', '-o', 'jsonpath={.items[*].metadata.name}').split(' ')).not.toContain('amesh-system');
    expect(kubectlOk('get', 'pods', '-n', 'app', '-o', 'jsonpath={.items[*].metadata.annotations}')).not.toMatch(/ambient\.istio\.io\/redirection/);

    console.log(`install + rollout ${installS.toFixed(1)} s, uninstall (agents drained, ${nodes.length} nodes cleaned, API verified) ${uninstallS.toFixed(1)} s`);
    // The kernel: exactly as before, node by node (toEqual prints the difference).
    for (const n of nodes) expect({ node: n, ...(await snapshotSettled(n)) }).toEqual({ node: n, ...before[n] });
  }, 330_000);
});
