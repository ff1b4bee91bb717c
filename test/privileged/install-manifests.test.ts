/**
 * The install manifests against real tools (issue #10):
 *
 * 1. Real `kubectl apply -k daemonset/` into a private sandbox created WITHOUT amesh exits 0 with
 *    every object created — RBAC and the PodDisruptionBudget included (the sandbox's API server
 *    serves rbac.authorization.k8s.io/v1 and policy/v1 as stored built-in resources) — the node
 *    agent and the controller come up Ready, and a second apply leaves everything unchanged.
 * 2. The node agent's capability list is enough, and needed: a real `amesh node-agent` (eBPF
 *    capture, local state) runs with its bounding set cut to exactly the DaemonSet's
 *    `capabilities.add` (and no_new_privs, as allowPrivilegeEscalation: false sets), becomes
 *    Ready, captures a pod's connection and carries it over HBONE; with either capability
 *    removed it cannot start. (The sandbox's kubelet runs containers as full root, so this part
 *    runs the agent directly in a network namespace topology.)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMONSET_DIR } from '../../src/install/paths.js';
import { renderInstall } from '../../src/install/render.js';
import { ensureBpffs } from '../../src/os/bpffs.js';
import { systemCommands } from '../../src/os/command.js';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import type { SpawnedProcess, Topology } from '../../src/sandbox/network/topology.js';
import { AgentTestbed, PAIR_IP as IP, PAIR_PODS, PAIR_WORKLOADS } from '../helpers/agent-testbed.js';
import { AMESH_BIN, runPodClient, startPodServer, tailLines } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('install manifests', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'unshare', 'setpriv', 'tc'] });

/** What kubectl prints for an object: `deployment.apps/amesh-controller`. */
function kubectlName(o: KubernetesObject): string {
  const group = (o.apiVersion ?? '').includes('/') ? (o.apiVersion ?? '').split('/')[0] : '';
  return `${(o.kind ?? '').toLowerCase()}${group ? `.${group}` : ''}/${o.metadata?.name}`;
}

// Skipped only when not root AND AMESH_ALLOW_UNPRIVILEGED_SKIP=1 (the reason is printed); otherwise
// requireRoot fails the file (test/helpers/privileged.ts), so CI as root always runs it.
describe.skipIf(!guard.run)('kubectl apply -k daemonset/ into a sandbox without amesh (privileged)', () => {
  const name = `im${randomBytes(2).toString('hex')}`;
  let dir = '';
  const kubectl = (...args: string[]) => spawnSync('kubectl', args, { encoding: 'utf8', env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig') }, timeout: 60_000 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-install-manifests-'));
    await sandboxUp({ dir, name, nodes: 1, install: false });
  }, 120_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir }).catch(() => undefined);
  }, 60_000);

  it('creates every object (RBAC and the PDB included) and runs the agent and the controller', async () => {
    const objects = await renderInstall();
    const expected = objects.map(kubectlName);
    expect(expected).toEqual(expect.arrayContaining(['clusterrole.rbac.authorization.k8s.io/amesh-controller', 'poddisruptionbudget.policy/amesh-controller']));

    const started = Date.now();
    const apply = kubectl('apply', '-k', DAEMONSET_DIR);
    expect(apply.status, apply.stderr).toBe(0);
    expect(apply.stderr).toBe('');
    const created = apply.stdout.split('\n').filter((l) => l.endsWith(' created')).map((l) => l.replace(/ created$/, ''));
    expect(created.sort()).toEqual([...expected].sort());

    // Stored as written (not enforced): what kubectl reads back is what the manifests say.
    const kinds = kubectl('api-resources', '--api-group=rbac.authorization.k8s.io', '-o', 'name');
    expect(kinds.stdout.trim().split('\n').sort()).toEqual(['clusterrolebindings.rbac.authorization.k8s.io', 'clusterroles.rbac.authorization.k8s.io', 'rolebindings.rbac.authorization.k8s.io', 'roles.rbac.authorization.k8s.io']);
    const binding = kubectl('get', 'clusterrolebinding', 'amesh-controller', '-o', 'jsonpath={.roleRef.kind}/{.roleRef.name} {.subjects[0].namespace}/{.subjects[0].name}');
    expect(binding.stdout, binding.stderr).toBe('ClusterRole/amesh-controller amesh-system/amesh-controller');
    const pdb = kubectl('get', 'pdb', 'amesh-controller', '-n', 'amesh-system', '-o', 'jsonpath={.spec.maxUnavailable} {.spec.selector.matchLabels.app}');
    expect(pdb.stdout, pdb.stderr).toBe('1 amesh-controller');

    const crds = kubectl('get', 'crd', '-l', 'app.kubernetes.io/part-of=amesh', '-o', 'name');
    expect(crds.stdout.trim().split('\n')).toHaveLength(objects.filter((o) => o.kind === 'CustomResourceDefinition').length);

    await eventually(
      () => {
        const ds = kubectl('get', 'daemonset', 'amesh-node', '-n', 'amesh-system', '-o', 'jsonpath={.status.numberReady}/{.status.desiredNumberScheduled}');
        const deploy = kubectl('get', 'deployment', 'amesh-controller', '-n', 'amesh-system', '-o', 'jsonpath={.status.availableReplicas}');
        expect(`${ds.stdout} ${deploy.stdout}`).toBe('1/1 1');
      },
      { timeoutMs: 60_000, intervalMs: 500, description: 'agent and controller Ready' },
    );
    console.log(`kubectl apply -k daemonset/ → agent and controller Ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The agent took the manifest's settings: eBPF capture, fed by the controller over xDS.
    const pod = kubectl('get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-node', '-o', 'jsonpath={.items[0].metadata.name}').stdout;
    const logs = spawnSync(process.execPath, [AMESH_BIN, 'sandbox', 'logs', '--dir', dir, `amesh-system/${pod}`], { encoding: 'utf8', timeout: 30_000 });
    expect(logs.stdout, logs.stderr).toMatch(/"msg":"capture mode: ebpf"/);
  }, 100_000);

  it('applies again as unchanged', () => {
    const pdbVersion = () => kubectl('get', 'pdb', 'amesh-controller', '-n', 'amesh-system', '-o', 'jsonpath={.metadata.resourceVersion}').stdout;
    const before = pdbVersion();
    const again = kubectl('apply', '-k', DAEMONSET_DIR);
    expect(again.status, again.stderr).toBe(0);
    const lines = again.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(20);
    // kubectl reports a PodDisruptionBudget "configured" on every client-side apply, against any
    // API server: its selector's patch strategy is "replace", so the computed patch is never
    // empty. The server stores nothing new (same resourceVersion).
    expect(lines.filter((l) => !l.endsWith(' unchanged'))).toEqual(['poddisruptionbudget.policy/amesh-controller configured']);
    expect(pdbVersion()).toBe(before);
  });
});

describe.skipIf(!guard.run)('the node agent with exactly the DaemonSet’s capabilities (privileged)', () => {
  const bed = new AgentTestbed('imc');
  const pinRoot = bed.pinRoot('node1');
  let capabilities: string[] = [];
  let configFile = '';
  let starts = 0;

  const topo = (): Topology => bed.topology;

  beforeAll(async () => {
    const ds = (await renderInstall()).find((o) => o.kind === 'DaemonSet' && o.metadata?.name === 'amesh-node') as
      | (KubernetesObject & { spec: { template: { spec: { containers: Array<{ securityContext?: { capabilities?: { add?: string[]; drop?: string[] } } }> } } } })
      | undefined;
    const caps = ds?.spec.template.spec.containers[0]?.securityContext?.capabilities;
    expect(caps?.drop).toEqual(['ALL']);
    capabilities = caps?.add ?? [];
    expect(capabilities.length).toBeGreaterThan(0);

    // node2 only gives node1 an uplink peer.
    await bed.setUp(PAIR_PODS);
    await startPodServer(topo(), 'b', 'echo-server', [9001], bed.dir);
    configFile = await bed.writeConfig('node1', { workloads: PAIR_WORKLOADS });
    // The node provides the bpffs (the DaemonSet mounts the host's); mounting one would need SYS_ADMIN.
    await ensureBpffs(systemCommands);
  }, 120_000);

  afterAll(() => bed.tearDown());

  /** `amesh node-agent` in node1 with the bounding set cut to `caps` (root keeps only those). */
  const startAgent = (caps: string[]): { process: SpawnedProcess; log: () => string } => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AMESH_')) env[k] = v;
    Object.assign(env, { AMESH_BPF_PIN_ROOT: pinRoot, AMESH_CAPTURE_MODE: 'ebpf', AMESH_DRAIN_TIMEOUT_MS: '1000' });
    const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
    const base = join(bed.dir, `agent-${++starts}`);
    const agentProcess = topo().spawn('node1', ['setpriv', `--bounding-set=${bounding}`, '--inh-caps=-all', '--no-new-privs', 'node', AMESH_BIN, 'node-agent', '--local-config', configFile], {
      env,
      replaceEnv: true,
      stdoutFile: `${base}.out`,
      stderrFile: `${base}.err`,
    });
    const log = (): string => tailLines(`${existsSync(`${base}.err`) ? readFileSync(`${base}.err`, 'utf8') : ''}`, 15);
    return { process: agentProcess, log };
  };

  const readiness = async (): Promise<string> => (await topo().exec('node1', ['curl', '-s', '--max-time', '2', 'http://127.0.0.1:15021/healthz/ready'], { allowFailure: true, timeoutMs: 5_000 })).stdout;

  it('is Ready with eBPF capture and carries a captured connection', async () => {
    const agent = startAgent(capabilities);
    try {
      await eventually(
        async () => {
          if (agent.process.exitStatus()) throw new Error(`agent exited ${JSON.stringify(agent.process.exitStatus())}\n${agent.log()}`);
          expect(JSON.parse((await readiness()) || '{}')).toMatchObject({ ready: true, captureMode: 'ebpf' });
        },
        { timeoutMs: 30_000, intervalMs: 300, description: `agent Ready with ${capabilities.join('+')}` },
      );
      const metric = async (): Promise<number> => {
        const text = (await topo().exec('node1', ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:15020/metrics'], { timeoutMs: 10_000 })).stdout;
        return Number(/^amesh_bpf_redirects_total\{reason="REDIRECT_OUTBOUND"\} (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
      };
      const before = await metric();
      await eventually(
        async () => {
          const result = await runPodClient(topo(), 'a', 'client', ['--host', IP.b, '--port', '9001', '--send-bytes', '4096', '--expect', 'echo', '--timeout-ms', '5000'], 15_000);
          expect(result, agent.log()).toMatchObject({ ok: true, receivedBytes: 4096 });
          expect(await metric()).toBeGreaterThan(before);
        },
        { timeoutMs: 20_000, intervalMs: 500, description: 'a → b captured and echoed' },
      );
    } finally {
      await agent.process.stop(10_000);
    }
  }, 60_000);

  it.each(['BPF', 'NET_ADMIN'])('cannot start without %s', async (missing) => {
    expect(capabilities).toContain(missing);
    const agent = startAgent(capabilities.filter((c) => c !== missing));
    try {
      const exit = await Promise.race([agent.process.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000).unref())]);
      expect(exit, `the agent kept running without ${missing}\n${agent.log()}`).toBeDefined();
      expect(exit?.code).not.toBe(0);
      expect(agent.log()).toMatch(/Operation not permitted|EPERM/);
    } finally {
      await agent.process.stop(10_000);
    }
  }, 45_000);
});
