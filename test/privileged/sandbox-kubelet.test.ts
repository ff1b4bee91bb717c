/**
 * A real kubelet on a one-node ClusterNetwork: pods become processes in their own network
 * namespaces, answer each other, restart when killed, and disappear completely when deleted.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { Kubelet } from '../../src/sandbox/kubelet/kubelet.js';
import type { Pod } from '../../src/sandbox/kubelet/pod-types.js';
import { ClusterNetwork } from '../../src/sandbox/network/cluster-network.js';
import { createLogger, silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('sandbox kubelet', { tools: ['ip', 'nsenter', 'unshare', 'curl'] });
const NODE = 'sandbox-node1';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!guard.run)('sandbox kubelet (privileged)', () => {
  const prefix = `k${randomBytes(3).toString('hex')}`;
  let network: ClusterNetwork;
  let store: MemoryStore;
  let kubelet: Kubelet;
  let dir: string;
  // A host that is itself a Kubernetes pod has its own token there; only check when it does not.
  const hostHasToken = existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token');

  const pod = (name: string): Pod | undefined => store.get<Pod>('v1', 'Pod', 'default', name);
  const pidOf = (name: string): number => Number(pod(name)?.status?.containerStatuses?.[0]?.containerID?.replace('amesh://', ''));
  const netnsOf = (name: string): string => network.pod(pod(name)?.metadata.uid ?? '')?.netns ?? '';
  const curlFrom = (client: string, url: string): string =>
    execFileSync('ip', ['netns', 'exec', netnsOf(client), 'curl', '-s', '--max-time', '3', url], { encoding: 'utf8', timeout: 10_000 });
  const create = (name: string, container: Record<string, unknown>): Pod =>
    store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: name } }, spec: { nodeName: NODE, terminationGracePeriodSeconds: 2, containers: [{ name: 'main', ...container }] } }) as Pod;
  const runningAndReady = (name: string): void => {
    const s = pod(name)?.status;
    expect(s?.phase).toBe('Running');
    expect(s?.containerStatuses?.[0]?.ready).toBe(true);
    expect(s?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-kubelet-priv-'));
    network = await ClusterNetwork.create({ prefix, nodes: [NODE] });
    store = createMemoryStore();
    kubelet = new Kubelet({
      store,
      nodeName: NODE,
      network,
      stateDir: dir,
      // AMESH_TEST_LOG=debug shows the kubelet's log when a run needs explaining.
      log: process.env.AMESH_TEST_LOG ? createLogger(process.env.AMESH_TEST_LOG) : silentLogger,
      issueToken: async (p: KubeObject) => `token-for-${p.metadata.name}`,
      clusterCaPem: '-----BEGIN CERTIFICATE-----\nsandbox\n-----END CERTIFICATE-----\n',
    });
    await kubelet.start();
  });

  afterAll(async () => {
    await kubelet?.stop();
    store?.close();
    await network?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs hello-app, http-echo and a curl client that reach each other by pod IP', async () => {
    create('hello', { image: 'gcr.io/google-samples/hello-app:1.0', ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 } });
    create('echo', { image: 'hashicorp/http-echo:1.0', args: ['-text=echo-ok'], readinessProbe: { tcpSocket: { port: 5678 }, periodSeconds: 1 } });
    create('client', { image: 'curlimages/curl:8.10.1', command: ['sleep', 'infinity'] });
    await eventually(
      () => {
        for (const name of ['hello', 'echo', 'client']) runningAndReady(name);
      },
      { timeoutMs: 30_000, intervalMs: 200, description: 'three pods Running and Ready' },
    );
    const helloIp = pod('hello')?.status?.podIP ?? '';
    expect(helloIp).toMatch(/^10\.244\.1\.\d+$/);
    expect(helloIp).toBe(network.pod(pod('hello')?.metadata.uid ?? '')?.ip);
    expect(pod('hello')?.status?.hostIP).toBe(network.node(NODE).ip);
    expect(curlFrom('client', `http://${helloIp}:8080/`)).toBe('Hello, world!\nVersion: 1.0.0\nHostname: hello\n');
    expect(curlFrom('client', `http://${pod('echo')?.status?.podIP}:5678/`)).toBe('echo-ok\n');
  });

  it('mounts the service-account token only inside the container', () => {
    const token = execFileSync('nsenter', [`--target=${pidOf('client')}`, '--mount', 'cat', '/var/run/secrets/kubernetes.io/serviceaccount/token'], { encoding: 'utf8' });
    expect(token).toBe('token-for-client');
    if (!hostHasToken) expect(existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')).toBe(false);
  });

  it('restarts a killed container (restartCount 1) and it answers again', async () => {
    const before = pidOf('hello');
    process.kill(before, 'SIGKILL');
    await eventually(
      () => {
        const c = pod('hello')?.status?.containerStatuses?.[0];
        expect(c?.restartCount).toBe(1);
        expect(c?.lastState).toMatchObject({ terminated: { exitCode: 137 } });
        runningAndReady('hello');
      },
      { timeoutMs: 30_000, intervalMs: 200, description: 'hello restarted' },
    );
    expect(pidOf('hello')).not.toBe(before);
    expect(curlFrom('client', `http://${pod('hello')?.status?.podIP}:8080/`)).toContain('Hello, world!');
  });

  it('reports an unknown image as ErrImagePull with the catalog message', async () => {
    create('bad', { image: 'example.com/not-here:1' });
    await eventually(
      () => {
        expect(pod('bad')?.status?.phase).toBe('Pending');
        expect(pod('bad')?.status?.containerStatuses?.[0]?.state).toMatchObject({ waiting: { reason: 'ErrImagePull', message: expect.stringContaining('is not available in the amesh sandbox') } });
      },
      { timeoutMs: 10_000, description: 'ErrImagePull' },
    );
  });

  it("runs a hostNetwork pod in the node's namespace with the node IP as pod IP", async () => {
    store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'hostnet', namespace: 'default' },
      spec: { nodeName: NODE, hostNetwork: true, terminationGracePeriodSeconds: 2, containers: [{ name: 'main', image: 'hashicorp/http-echo', args: ['-text=on-the-node', '-listen=:5679'], readinessProbe: { httpGet: { path: '/health', port: 5679, host: '127.0.0.1' }, periodSeconds: 1 } }] },
    });
    await eventually(() => runningAndReady('hostnet'), { timeoutMs: 30_000, intervalMs: 200, description: 'hostnet Running and Ready' });
    const nodeIp = network.node(NODE).ip;
    expect(pod('hostnet')?.status?.podIP).toBe(nodeIp);
    expect(curlFrom('client', `http://${nodeIp}:5679/`)).toBe('on-the-node\n');
  });

  it('stops every process and removes the netns when pods are deleted', async () => {
    const hostnetPid = pidOf('hostnet');
    store.delete('v1', 'Pod', 'default', 'hostnet');
    await eventually(() => expect(alive(hostnetPid)).toBe(false), { timeoutMs: 20_000, description: 'hostnet process gone' });
    expect(existsSync(network.node(NODE).netnsPath)).toBe(true);
    const names = ['hello', 'echo', 'client', 'bad'];
    const pids = names.filter((n) => n !== 'bad').map(pidOf);
    const netns = names.map(netnsOf);
    expect(pids.every(alive)).toBe(true);
    for (const name of names) store.delete('v1', 'Pod', 'default', name);
    await eventually(
      () => {
        expect(pids.filter(alive)).toEqual([]);
        expect(netns.filter((n) => existsSync(`/run/netns/${n}`))).toEqual([]);
      },
      { timeoutMs: 20_000, intervalMs: 200, description: 'pod processes and namespaces gone' },
    );
  });
});
