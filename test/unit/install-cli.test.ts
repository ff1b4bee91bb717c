/**
 * amesh install / uninstall / namespace / version (issue #10 item 3): argument parsing, the
 * dry-run output, the install plan against a cluster's facts, rollout-progress formatting, the
 * node-cleanup DaemonSet and its progress, enrolment progress, version summaries. No cluster.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject, V1DaemonSet, V1Deployment, V1Namespace, V1Pod } from '@kubernetes/client-node';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { confirm, nextSteps, openCluster, parseTimeout, registerInstall } from '../../src/cli/install.js';
import { capturePods } from '../../src/cli/namespace.js';
import { registerUninstall } from '../../src/cli/uninstall.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { FIELD_MANAGER } from '../../src/install/apply.js';
import { planInstall, rolloutTargets, type ClusterFacts } from '../../src/install/install.js';
import { DEFAULT_VALUES, renderInstall } from '../../src/install/render.js';
import { daemonSetStatus, deploymentStatus, lookCommands, podNotReadyReason } from '../../src/install/rollout.js';
import { cleanupDaemonSet, cleanupProgress, CLEANUP_NAME } from '../../src/install/uninstall.js';
import { formatVersions, imageTag, summarise } from '../../src/install/version.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs one CLI command through commander as `amesh …`; what it wrote to stdout, or the error. */
async function runCli(register: (p: Command) => void, args: string[]): Promise<{ out: string; error?: unknown }> {
  const program = new Command().name('amesh').exitOverride();
  register(program);
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  });
  try {
    await program.parseAsync(['node', 'amesh', ...args]);
    return { out };
  } catch (error) {
    return { out, error };
  } finally {
    vi.restoreAllMocks();
  }
}

const images = (yaml: string): string[] =>
  parseAllDocuments(yaml).flatMap((d) => {
    const o = d.toJSON() as { spec?: { template?: { spec?: { containers?: Array<{ image?: string }> } } } } | null;
    return (o?.spec?.template?.spec?.containers ?? []).map((c) => c.image ?? '');
  });

describe('amesh install: arguments and --dry-run', () => {
  it('--dry-run prints every rendered object as YAML and talks to no cluster', async () => {
    // No kubeconfig anywhere: a dry run that tried to reach a cluster would fail.
    vi.stubEnv('KUBECONFIG', '/nonexistent/kubeconfig');
    const { out, error } = await runCli(registerInstall, ['install', '--dry-run']);
    vi.unstubAllEnvs();
    expect(error).toBeUndefined();
    const docs = parseAllDocuments(out).map((d) => d.toJSON() as KubernetesObject);
    const rendered = await renderInstall(DEFAULT_VALUES);
    expect(docs.map((d) => `${d.kind}/${d.metadata?.name}`)).toEqual(rendered.map((d) => `${d.kind}/${d.metadata?.name}`));
    expect(docs.some((d) => d.kind === 'DaemonSet' && d.metadata?.name === 'amesh-node')).toBe(true);
    expect(docs.some((d) => d.kind === 'Deployment' && d.metadata?.name === 'amesh-controller')).toBe(true);
  });

  it('--set values reach the dry-run output; several --set flags and comma lists combine', async () => {
    const { out, error } = await runCli(registerInstall, ['install', '--dry-run', '--set', 'image.tag=0.2.0', '--set', 'image.hub=registry.local/amesh,logLevel=debug']);
    expect(error).toBeUndefined();
    const all = images(out).filter((i) => i.includes('amesh'));
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const image of all) expect(image).toMatch(/^registry\.local\/amesh\/[a-z-]+:0\.2\.0$/);
    expect(out).toMatch(/AMESH_LOG_LEVEL\n\s+value: debug/);
  });

  it('an unknown --set key or a bad --timeout is a usage error naming the valid forms', async () => {
    const bad = await runCli(registerInstall, ['install', '--dry-run', '--set', 'image.flavour=x']);
    expect(isAmeshError(bad.error, 'AMESH_CONFIG_INVALID')).toBe(true);
    expect(String((bad.error as Error).message)).toMatch(/unknown key "image.flavour"/);
    const timeout = await runCli(registerInstall, ['install', '--dry-run', '--timeout', 'soon']);
    expect(isAmeshError(timeout.error, 'AMESH_CONFIG_INVALID')).toBe(true);
    expect(String((timeout.error as Error).message)).toMatch(/--timeout soon/);
  });

  it('parseTimeout takes kubectl-style durations', () => {
    expect(parseTimeout('90s')).toBe(90_000);
    expect(parseTimeout('5m')).toBe(300_000);
    expect(parseTimeout('1h30m')).toBe(5_400_000);
    expect(parseTimeout('120')).toBe(120_000);
    expect(() => parseTimeout('0s')).toThrow(/--timeout 0s/);
    expect(() => parseTimeout('-5m')).toThrow(/--timeout/);
  });

  it('--help lists the --set values with their defaults', async () => {
    const { out } = await runCli(registerInstall, ['install', '--help']);
    expect(out).toMatch(/values for --set/);
    expect(out).toMatch(/image\.tag\s+.*\(default: 0\.1\.0\)/);
    expect(out).toMatch(/--keep-crds|--dry-run/);
  });

  it('without -y and without a terminal the confirmation refuses and says to pass -y', async () => {
    const tty = process.stdin.isTTY;
    Object.defineProperty(process.stdin, 'isTTY', { value: false, configurable: true });
    try {
      await expect(confirm('remove amesh?', undefined)).rejects.toThrow(/no terminal to confirm on/);
      await expect(confirm('remove amesh?', true)).resolves.toBeUndefined();
    } finally {
      Object.defineProperty(process.stdin, 'isTTY', { value: tty, configurable: true });
    }
  });

  it('uninstall parses -y, --keep-crds and --timeout (and rejects a bad --timeout before touching a cluster)', async () => {
    const r = await runCli(registerUninstall, ['uninstall', '-y', '--keep-crds', '--timeout', 'never']);
    expect(isAmeshError(r.error, 'AMESH_CONFIG_INVALID')).toBe(true);
    expect(String((r.error as Error).message)).toMatch(/--timeout never/);
  });

  it('--context picks a context of the kubeconfig; an unknown one is an error listing the contexts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'amesh-install-cli-'));
    try {
      const file = join(dir, 'kubeconfig');
      const cluster = (name: string, port: number): string => `- name: ${name}\n  cluster: {server: 'https://10.0.0.1:${port}'}`;
      const context = (name: string): string => `- name: ${name}\n  context: {cluster: ${name}, user: u}`;
      writeFileSync(file, `apiVersion: v1\nkind: Config\nclusters:\n${cluster('a', 6443)}\n${cluster('b', 7443)}\ncontexts:\n${context('a')}\n${context('b')}\ncurrent-context: a\nusers:\n- name: u\n  user: {token: t}\n`);
      expect((await openCluster({ kubeconfig: file })).description).toBe('context a (https://10.0.0.1:6443)');
      const b = await openCluster({ kubeconfig: file, context: 'b' });
      expect(b.description).toBe('context b (https://10.0.0.1:7443)');
      expect(b.kubeConfig.getCurrentCluster()?.server).toBe('https://10.0.0.1:7443');
      expect(b.sandboxDir).toBeUndefined();
      await expect(openCluster({ kubeconfig: file, context: 'c' })).rejects.toThrow(/no context "c"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the next steps name enrolment, a waypoint and precheck (with --dir for a sandbox)', () => {
    const text = nextSteps('/tmp/sb').join('\n');
    expect(text).toMatch(/amesh namespace enroll <ns> --dir \/tmp\/sb/);
    expect(text).toMatch(/kubectl label namespace <ns> istio\.io\/dataplane-mode=ambient/);
    expect(text).toMatch(/amesh waypoint apply -n <ns>/);
    expect(text).toMatch(/amesh precheck/);
    expect(nextSteps(undefined).join('\n')).not.toMatch(/--dir/);
  });
});

// ---- the install plan ---------------------------------------------------------------------

const crd = (name: string, group: string, kind: string, versions: string[], labels?: Record<string, string>): KubernetesObject =>
  ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { group, names: { kind, plural: name.split('.')[0] }, scope: 'Namespaced', versions: versions.map((v, i) => ({ name: v, served: true, storage: i === 0 })) },
  }) as KubernetesObject;
const obj = (apiVersion: string, kind: string, name: string, namespace?: string): KubernetesObject => ({ apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}) } });

function facts(served: string[], crds: KubernetesObject[] = []): ClusterFacts {
  const set = new Set(served);
  return { served: (apiVersion, kind) => set.has(`${apiVersion} ${kind}`), crds: new Map(crds.map((c) => [c.metadata?.name ?? '', c])) };
}

describe('planInstall: what is applied and what is left alone', () => {
  const core = ['v1 Namespace', 'v1 ServiceAccount', 'apps/v1 DaemonSet', 'apps/v1 Deployment', 'apiextensions.k8s.io/v1 CustomResourceDefinition'];
  const widgets = crd('widgets.example.io', 'example.io', 'Widget', ['v1']);
  const gateways = crd('gateways.gateway.networking.k8s.io', 'gateway.networking.k8s.io', 'Gateway', ['v1', 'v1beta1'], { 'app.kubernetes.io/part-of': 'amesh' });

  it('a CRD someone else installed is reported and left; one amesh installed is applied (upgraded)', () => {
    const foreign = { ...widgets, metadata: { name: 'widgets.example.io', managedFields: [{ manager: 'helm' }] } } as KubernetesObject;
    const plan = planInstall([widgets, gateways], facts(core, [foreign, { ...gateways, metadata: { name: gateways.metadata?.name ?? '', managedFields: [{ manager: FIELD_MANAGER }] } } as KubernetesObject]));
    expect(plan.apply.map((o) => o.metadata?.name)).toEqual(['gateways.gateway.networking.k8s.io']);
    expect(plan.skipped).toEqual([{ object: widgets, reason: expect.stringMatching(/installed by someone else/) as string }]);
  });

  it('a CRD whose kind the API server serves built in (no CRD object) is left alone; a new CRD is applied with the objects it defines', () => {
    const plan = planInstall([gateways, widgets, obj('example.io/v1', 'Widget', 'w', 'x')], facts([...core, 'gateway.networking.k8s.io/v1 Gateway']));
    expect(plan.skipped.map((s) => [s.object.metadata?.name, s.reason])).toEqual([['gateways.gateway.networking.k8s.io', expect.stringMatching(/serves it \(built in\)/)]]);
    expect(plan.apply.map((o) => o.metadata?.name)).toEqual(['widgets.example.io', 'w']);
  });

  it('RBAC and PDB objects are skipped (with the reason) only where their group is not served; other unserved kinds fail before anything is applied', () => {
    const role = obj('rbac.authorization.k8s.io/v1', 'ClusterRole', 'amesh-controller');
    const pdb = obj('policy/v1', 'PodDisruptionBudget', 'amesh-controller', 'amesh-system');
    const bare = planInstall([obj('v1', 'Namespace', 'amesh-system'), role, pdb], facts(core));
    expect(bare.apply.map((o) => o.kind)).toEqual(['Namespace']);
    expect(bare.skipped.map((s) => s.reason)).toEqual([expect.stringMatching(/rbac\.authorization\.k8s\.io/), expect.stringMatching(/policy\/v1/)]);
    const real = planInstall([role, pdb], facts([...core, 'rbac.authorization.k8s.io/v1 ClusterRole', 'policy/v1 PodDisruptionBudget']));
    expect(real.apply).toHaveLength(2);
    expect(() => planInstall([obj('v1', 'Namespace', 'a'), obj('example.io/v1', 'Widget', 'w')], facts(core))).toThrow(/does not serve the API of Widget\/w/);
  });

  it('the rollout targets are the Deployments and DaemonSets, titled for people', async () => {
    const targets = rolloutTargets(await renderInstall(DEFAULT_VALUES));
    expect(targets.map((t) => `${t.kind} ${t.namespace}/${t.name}: ${t.title}`).sort()).toEqual(['DaemonSet amesh-system/amesh-node: node agents', 'Deployment amesh-system/amesh-controller: controller']);
  });
});

// ---- rollout progress ---------------------------------------------------------------------

const pod = (name: string, node: string | undefined, status: V1Pod['status'], extra: Partial<V1Pod['metadata']> = {}): V1Pod => ({ metadata: { name, ...extra }, spec: { containers: [{ name: 'c' }], ...(node ? { nodeName: node } : {}) }, status });
const ready = (name: string, node: string): V1Pod => pod(name, node, { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'c', ready: true, image: 'i', imageID: '', restartCount: 0, state: { running: {} } }] });
const waitingPod = (name: string, node: string, reason: string, message?: string, lastExit?: number): V1Pod =>
  pod(name, node, {
    phase: 'Pending',
    containerStatuses: [
      {
        name: 'c',
        ready: false,
        image: 'i',
        imageID: '',
        restartCount: lastExit === undefined ? 0 : 3,
        state: { waiting: { reason, ...(message ? { message } : {}) } },
        ...(lastExit !== undefined ? { lastState: { terminated: { exitCode: lastExit, reason: 'Error' } } } : {}),
      },
    ],
  });

describe('rollout progress lines', () => {
  it('names each unready pod with its node and reason', () => {
    expect(podNotReadyReason(ready('a', 'n1'))).toBeUndefined();
    expect(podNotReadyReason(waitingPod('a', 'n1', 'ErrImagePull', 'image "amesh/node-agent:9" not found'))).toBe('ErrImagePull: image "amesh/node-agent:9" not found');
    // The back-off message only repeats the pod; the last exit says why.
    expect(podNotReadyReason(waitingPod('a', 'n1', 'CrashLoopBackOff', 'back-off 10s restarting failed container=c pod=a_ns(uid)', 1))).toBe('CrashLoopBackOff (last exit 1 Error, 3 restarts)');
    expect(podNotReadyReason(pod('a', 'n1', { phase: 'Running', containerStatuses: [{ name: 'c', ready: false, image: 'i', imageID: '', restartCount: 0, state: { running: {} } }] }))).toBe('running, readiness probe not passing yet');
    expect(podNotReadyReason(pod('a', undefined, { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', message: '0/2 nodes are available' }] }))).toBe('not scheduled: 0/2 nodes are available');
    expect(podNotReadyReason({ ...ready('a', 'n1'), metadata: { name: 'a', deletionTimestamp: new Date() } })).toBe('terminating');
  });

  it('DaemonSet: updated/ready per desired, the unready pods sorted by node; done once every pod is updated and available', () => {
    const ds = (s: V1DaemonSet['status'], generation = 2): V1DaemonSet => ({ metadata: { name: 'amesh-node', generation }, spec: { selector: {}, template: {} }, status: s });
    const pods = [waitingPod('amesh-node-b', 'w2', 'ContainerCreating'), ready('amesh-node-a', 'w1')];
    const mid = daemonSetStatus('node agents', ds({ desiredNumberScheduled: 2, currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: 1, numberAvailable: 1, updatedNumberScheduled: 2, observedGeneration: 2 }), pods);
    expect(mid).toEqual({ done: false, line: 'node agents: 2/2 updated, 1/2 ready; not ready: amesh-node-b on w2: ContainerCreating', notReady: [{ pod: 'amesh-node-b', node: 'w2', reason: 'ContainerCreating' }] });
    const done = daemonSetStatus('node agents', ds({ desiredNumberScheduled: 2, currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: 2, numberAvailable: 2, updatedNumberScheduled: 2, observedGeneration: 2 }), [ready('a', 'w1'), ready('b', 'w2')]);
    expect(done).toMatchObject({ done: true, line: 'node agents: 2/2 updated, 2/2 ready' });
    // A status from before the change (observedGeneration behind) is not done, whatever it counts.
    expect(daemonSetStatus('x', ds({ desiredNumberScheduled: 2, currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: 2, numberAvailable: 2, updatedNumberScheduled: 2, observedGeneration: 1 }), []).done).toBe(false);
    // No status yet (the controller has not seen it): not done.
    expect(daemonSetStatus('x', ds(undefined), []).done).toBe(false);
  });

  it('Deployment: updated/available per replicas, old replicas counted; done when only updated, available replicas remain', () => {
    const d = (s: V1Deployment['status']): V1Deployment => ({ metadata: { name: 'amesh-controller', generation: 3 }, spec: { replicas: 1, selector: {}, template: {} }, status: s });
    expect(deploymentStatus('controller', d({ observedGeneration: 3, replicas: 2, updatedReplicas: 1, availableReplicas: 1 }), [ready('old', 'w1'), waitingPod('new', 'w2', 'ContainerCreating')])).toEqual({
      done: false,
      line: 'controller: 1/1 updated, 1/1 available, 1 old; not ready: new on w2: ContainerCreating',
      notReady: [{ pod: 'new', node: 'w2', reason: 'ContainerCreating' }],
    });
    expect(deploymentStatus('controller', d({ observedGeneration: 3, replicas: 1, updatedReplicas: 1, availableReplicas: 1 }), [ready('new', 'w2')])).toMatchObject({ done: true, line: 'controller: 1/1 updated, 1/1 available' });
  });

  it('the commands to look at a pod: kubectl, or amesh sandbox logs for a sandbox', () => {
    expect(lookCommands('amesh-system', 'p', undefined)).toBe('kubectl -n amesh-system describe pod p; kubectl -n amesh-system logs p');
    expect(lookCommands('amesh-system', 'p', '/tmp/sb')).toBe('kubectl -n amesh-system describe pod p; amesh sandbox logs --dir /tmp/sb amesh-system/p');
  });
});

// ---- uninstall: the node cleanup ----------------------------------------------------------

describe('uninstall: the node-cleanup DaemonSet', () => {
  it('runs node-agent --uninstall with the agent image, host network, privileges, hostPath mounts and settings; nothing that needs the control plane', async () => {
    const agent = (await renderInstall(DEFAULT_VALUES)).find((o) => o.kind === 'DaemonSet') as V1DaemonSet;
    const cleanup = cleanupDaemonSet(agent);
    const source = agent.spec?.template.spec?.containers[0];
    const spec = cleanup.spec?.template.spec;
    const c = spec?.containers[0];
    expect(cleanup.metadata).toMatchObject({ name: CLEANUP_NAME, namespace: 'amesh-system' });
    expect(c?.image).toBe(source?.image);
    expect(c?.args).toEqual(['node-agent', '--uninstall']);
    expect(c?.securityContext).toEqual(source?.securityContext);
    expect(c?.readinessProbe).toBeUndefined();
    expect(spec?.hostNetwork).toBe(true);
    expect(spec?.tolerations).toEqual(agent.spec?.template.spec?.tolerations);
    expect(spec?.volumes?.every((v) => v.hostPath !== undefined)).toBe(true);
    expect(spec?.volumes?.some((v) => v.hostPath?.path === '/sys/fs/bpf')).toBe(true);
    expect(c?.volumeMounts?.map((m) => m.name).sort()).toEqual((spec?.volumes ?? []).map((v) => v.name).sort());
    const env = new Map((c?.env ?? []).map((e) => [e.name, e]));
    expect(env.get('NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(env.has('AMESH_XDS_ADDRESS') && env.has('AMESH_CA_ADDRESS')).toBe(true);
    expect(cleanup.spec?.template.metadata?.labels?.['istio.io/dataplane-mode']).toBe('none');
  });

  it('drops env the cleanup cannot resolve (ConfigMap/Secret refs) and fills in what node-agent needs', () => {
    const agent: V1DaemonSet = {
      metadata: { name: 'amesh-node', namespace: 'mesh' },
      spec: {
        selector: {},
        template: { spec: { containers: [{ name: 'a', image: 'reg/amesh/node-agent:1', env: [{ name: 'AMESH_ROUTE_TABLE', value: '140' }, { name: 'X', valueFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } }] }] } },
      },
    };
    const c = cleanupDaemonSet(agent).spec?.template.spec?.containers[0];
    expect(c?.env?.map((e) => e.name)).toEqual(['AMESH_ROUTE_TABLE', 'AMESH_XDS_ADDRESS', 'AMESH_CA_ADDRESS', 'NODE_NAME']);
    expect(cleanupDaemonSet(agent).metadata?.namespace).toBe('mesh');
  });

  it('progress: a node is done when its cleanup container exited 0 (now or in its last run); failures are shown with the node', () => {
    const ds: V1DaemonSet = { metadata: { name: CLEANUP_NAME }, status: { desiredNumberScheduled: 2, currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: 0 } };
    const ran = (name: string, node: string, last: number | undefined, now: 'running' | 'backoff' | number): V1Pod =>
      pod(name, node, {
        phase: 'Running',
        containerStatuses: [
          {
            name: 'cleanup',
            ready: false,
            image: 'i',
            imageID: '',
            restartCount: last === undefined ? 0 : 1,
            state: now === 'running' ? { running: {} } : now === 'backoff' ? { waiting: { reason: 'CrashLoopBackOff' } } : { terminated: { exitCode: now, reason: now === 0 ? 'Completed' : 'Error' } },
            ...(last !== undefined ? { lastState: { terminated: { exitCode: last, reason: last === 0 ? 'Completed' : 'Error' } } } : {}),
          },
        ],
      });
    const mid = cleanupProgress(ds, [ran('c1', 'w1', 0, 'running'), ran('c2', 'w2', 1, 'backoff')]);
    expect(mid).toMatchObject({ done: false, cleaned: ['w1'], line: 'node cleanup: 1/2 nodes done (w1); waiting: c2 on w2: exited 1 Error, CrashLoopBackOff' });
    expect(cleanupProgress(ds, [ran('c1', 'w1', undefined, 0), ran('c2', 'w2', 1, 0)])).toMatchObject({ done: true, cleaned: ['w1', 'w2'], line: 'node cleanup: 2/2 nodes done (w1, w2)' });
    // Before the DaemonSet controller has counted the nodes nothing is done.
    expect(cleanupProgress({ metadata: { name: CLEANUP_NAME } }, []).done).toBe(false);
  });
});

// ---- namespace enroll / unenroll ----------------------------------------------------------

describe('namespace enroll|unenroll: waiting for the pods', () => {
  const ns = (label?: string): V1Namespace => ({ metadata: { name: 'app', ...(label ? { labels: { 'istio.io/dataplane-mode': label } } : {}) } });
  const p = (name: string, annotation?: string, labels?: Record<string, string>, extra: Partial<V1Pod['spec']> = {}): V1Pod => ({
    metadata: { name, ...(annotation ? { annotations: { 'ambient.istio.io/redirection': annotation } } : {}), ...(labels ? { labels } : {}) },
    spec: { containers: [], ...extra },
    status: { phase: 'Running' },
  });

  it('enroll waits for `enabled` on every pod the label enrols; opted-out and host-network pods are not waited for', () => {
    const pods = [p('a', 'enabled'), p('b', 'pending'), p('c'), p('opt', undefined, { 'istio.io/dataplane-mode': 'none' }), p('host', undefined, undefined, { hostNetwork: true })];
    expect(capturePods('enroll', ns('ambient'), pods)).toMatchObject({ done: false, line: 'pods captured (redirection enabled): 1/3; waiting: b (pending), c (disabled)' });
    expect(capturePods('enroll', ns('ambient'), [p('a', 'enabled'), p('opt', undefined, { 'istio.io/dataplane-mode': 'none' })])).toMatchObject({ done: true, line: 'pods captured (redirection enabled): 1/1' });
  });

  it('unenroll waits until no pod is enabled or pending (absent = disabled); a pod enrolled by its own label is reported, not waited for', () => {
    const pods = [p('a', 'enabled'), p('b', 'disabled'), p('c'), p('own', 'enabled', { 'istio.io/dataplane-mode': 'ambient' })];
    const state = capturePods('unenroll', ns(), pods);
    expect(state).toMatchObject({ done: false, line: 'pods released (redirection disabled): 2/3; waiting: a (enabled)', podLabelled: ['own'] });
    expect(capturePods('unenroll', ns(), [p('a', 'disabled'), p('c')]).done).toBe(true);
  });
});

// ---- version ------------------------------------------------------------------------------

describe('version', () => {
  it('image tags, digests and untagged images', () => {
    expect(imageTag('amesh/node-agent:0.2.0')).toBe('0.2.0');
    expect(imageTag('localhost:5000/amesh/node-agent')).toBe('latest');
    expect(imageTag('amesh/node-agent@sha256:abc')).toBe('sha256:abc');
  });

  it('the server versions from workload templates and running pods; a rollout in progress shows both', () => {
    const template = { spec: { containers: [{ name: 'a', image: 'amesh/node-agent:0.2.0' }] } };
    const running = (name: string, node: string, image: string): V1Pod => ({ metadata: { name }, spec: { nodeName: node, containers: [{ name: 'a', image }] }, status: { phase: 'Running' } });
    const agents = summarise('node-agent', 'amesh-system/amesh-node', template, [running('a', 'w1', 'amesh/node-agent:0.1.0'), running('b', 'w2', 'amesh/node-agent:0.2.0')]);
    const controller = summarise('controller', 'amesh-system/amesh-controller', { spec: { containers: [{ name: 'c', image: 'amesh/controller:0.2.0' }] } }, [running('c', 'w1', 'amesh/controller:0.2.0')]);
    const lines = formatVersions('0.2.0', [controller, agents], false);
    expect(lines[0]).toBe('client version: 0.2.0');
    expect(lines[1]).toBe('controller version: 0.2.0 (image amesh/controller:0.2.0; 1 pod(s) on amesh/controller:0.2.0)');
    expect(lines[2]).toMatch(/^node agent version: 0\.2\.0 \(image amesh\/node-agent:0\.2\.0; 1 pod\(s\) on amesh\/node-agent:0\.1\.0 \(w1\); 1 pod\(s\) on amesh\/node-agent:0\.2\.0 \(w2\)\) — several versions running/);
    expect(lines.at(-1)).toMatch(/no version endpoint yet/);
    expect(formatVersions('0.2.0', [controller, agents], true)).toEqual(['client version: 0.2.0', 'controller version: 0.2.0', 'node agent version: 0.1.0, 0.2.0']);
    expect(formatVersions('0.2.0', [summarise('controller', 'amesh-system/amesh-controller', undefined, [])], true)).toEqual(['client version: 0.2.0', 'controller version: not installed (amesh-system/amesh-controller not found)']);
  });
});
