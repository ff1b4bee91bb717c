/**
 * The kubelet over the real in-memory store, with a fake network and fake container processes:
 * status, restarts with back-off, probes, image and config errors, deletion — on a hand-driven
 * clock, no sleeps.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMemoryStore, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import type { Clock } from '../../src/sandbox/kubelet/clock.js';
import type { ContainerExit, ContainerLaunchSpec, ContainerRuntime } from '../../src/sandbox/kubelet/container-runtime.js';
import { Kubelet, readRecordedPids } from '../../src/sandbox/kubelet/kubelet.js';
import { podDirectory } from '../../src/sandbox/kubelet/pod-paths.js';
import type { PodNetworkProvider } from '../../src/sandbox/kubelet/pod-network.js';
import type { Pod } from '../../src/sandbox/kubelet/pod-types.js';
import type { ProbeAction } from '../../src/sandbox/kubelet/probe-plan.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';

class ManualClock implements Clock {
  private t = Date.parse('2025-06-01T00:00:00Z');
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): { cancel(): void } {
    const timer = { at: this.t + ms, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }
  /** Moves time forward, firing due timers in order (and letting their async work run). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => !x.cancelled && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      due.cancelled = true;
      due.fn();
      await new Promise((r) => setImmediate(r));
    }
    this.t = end;
  }
}

interface FakeProcess {
  pid: number;
  spec: ContainerLaunchSpec;
  exit(e: ContainerExit): void;
  stopped: boolean;
}

function fakeRuntime(): ContainerRuntime & { processes: FakeProcess[] } {
  let next = 1000;
  const processes: FakeProcess[] = [];
  return {
    processes,
    async start(spec) {
      let exit!: (e: ContainerExit) => void;
      const exited = new Promise<ContainerExit>((r) => (exit = r));
      const p: FakeProcess = { pid: next++, spec, exit, stopped: false };
      processes.push(p);
      return { pid: p.pid, startTicks: '1', exited };
    },
    async stop(p) {
      const fake = processes.find((x) => x.pid === p.pid);
      if (fake) {
        fake.stopped = true;
        fake.exit({ code: null, signal: 'SIGTERM' });
      }
      return p.exited;
    },
  };
}

function fakeNetwork(): PodNetworkProvider & { added: string[]; removed: string[]; dns: Array<{ uid: string; searches: string[] }> } {
  let n = 2;
  const pods = new Map<string, string>();
  const net = {
    added: [] as string[],
    removed: [] as string[],
    dns: [] as Array<{ uid: string; searches: string[] }>,
    plan: { clusterDnsIp: '10.96.0.10' },
    node: (name: string) => ({ name, netns: 'kt-node1', netnsPath: '/run/netns/kt-node1', ip: '10.250.0.1', podCidr: '10.244.1.0/24' }),
    async addPod(p: { uid: string; ip?: string }) {
      net.added.push(p.uid);
      if (!pods.has(p.uid)) pods.set(p.uid, p.ip ?? `10.244.1.${n++}`);
      return { netns: `kt-p${p.uid.slice(0, 6)}`, netnsPath: `/run/netns/kt-p${p.uid.slice(0, 6)}`, ip: pods.get(p.uid) ?? '' };
    },
    async removePod(uid: string) {
      net.removed.push(uid);
      pods.delete(uid);
    },
    async setPodDns(uid: string, o: { searches: string[] }) {
      net.dns.push({ uid, searches: o.searches });
    },
  };
  return net;
}

function podObject(name: string, container: Record<string, unknown>, spec: Record<string, unknown> = {}): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { nodeName: 'sandbox-node1', containers: [{ name: 'main', ...container }], ...spec } } as Pod;
}

describe('sandbox kubelet (fake processes and network)', () => {
  let store: MemoryStore;
  let dir: string;
  let clock: ManualClock;
  let runtime: ReturnType<typeof fakeRuntime>;
  let network: ReturnType<typeof fakeNetwork>;
  let probeResults: Map<string, boolean>;
  let kubelet: Kubelet;
  let tokensIssued = 0;
  /** When set, token requests wait for it (a volume rewrite held in flight). */
  let tokenGate: Promise<void> | undefined;

  const pod = (name: string): Pod => store.get<Pod>('v1', 'Pod', 'default', name) as Pod;
  const status = (name: string) => pod(name).status;
  const main = (name: string) => status(name)?.containerStatuses?.[0];
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-kubelet-'));
    store = createMemoryStore();
    clock = new ManualClock();
    runtime = fakeRuntime();
    network = fakeNetwork();
    probeResults = new Map();
    kubelet = new Kubelet({
      store,
      nodeName: 'sandbox-node1',
      network,
      stateDir: dir,
      log: silentLogger,
      clock,
      runtime,
      issueToken: async (p: KubeObject) => {
        await tokenGate;
        return `token-for-${p.metadata.name}-${++tokensIssued}`;
      },
      clusterCaPem: 'CA PEM',
      probeRunner: async (action: ProbeAction) => probeResults.get(action.kind) ?? true,
    });
    await kubelet.start();
  });

  afterEach(async () => {
    tokenGate = undefined;
    await kubelet.stop();
    store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('registers a Ready node and its lease', () => {
    const node = store.get('v1', 'Node', undefined, 'sandbox-node1') as KubeObject & { status: { conditions: Array<{ type: string; status: string }>; addresses: unknown[] }; spec: { podCIDR: string } };
    expect(node.spec.podCIDR).toBe('10.244.1.0/24');
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.status.addresses).toContainEqual({ type: 'InternalIP', address: '10.250.0.1' });
    expect(store.get('coordination.k8s.io/v1', 'Lease', 'kube-node-lease', 'sandbox-node1')).toMatchObject({ spec: { holderIdentity: 'sandbox-node1' } });
  });

  it('runs a pod: network, DNS, environment, service-account volume, Running and Ready status', async () => {
    store.create(podObject('web', { image: 'gcr.io/google-samples/hello-app:1.0', env: [{ name: 'ME', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }] }));
    await eventually(() => expect(status('web')?.phase).toBe('Running'), { timeoutMs: 5_000 });
    const s = status('web');
    expect(s).toMatchObject({ podIP: '10.244.1.2', hostIP: '10.250.0.1', startTime: expect.any(String) });
    expect(s?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(main('web')).toMatchObject({ ready: true, started: true, restartCount: 0, containerID: 'amesh://1000', state: { running: { startedAt: expect.any(String) } } });
    const proc = runtime.processes[0]!;
    expect(proc.spec.network).toEqual({ kind: 'pod', netns: expect.stringMatching(/^kt-p/) });
    expect(proc.spec.argv.slice(2)).toEqual(['image', 'hello-app', '--version-string', '1.0.0']);
    expect(proc.spec.env).toMatchObject({ HOSTNAME: 'web', ME: '10.244.1.2', KUBERNETES_SERVICE_HOST: '10.96.0.1' });
    expect(proc.spec.mounts).toEqual([{ source: expect.stringContaining('/volumes/kube-api-access-sandbox'), target: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }]);
    expect(network.dns[0]?.searches).toEqual(['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    expect(await readRecordedPids(dir)).toContainEqual(expect.objectContaining({ pid: 1000, node: 'sandbox-node1', pod: 'default/web', container: 'main' }));
  });

  it('writes the service-account token and ConfigMap volumes, and refreshes them every 10 min', async () => {
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'files', namespace: 'default' }, data: { 'app.conf': 'v1' } });
    store.create(
      podObject('vols', { image: 'busybox', command: ['sleep', 'infinity'], volumeMounts: [{ name: 'files', mountPath: '/etc/app' }] }, { volumes: [{ name: 'files', configMap: { name: 'files' } }] }),
    );
    await eventually(() => expect(main('vols')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    const mounts = runtime.processes[0]!.spec.mounts;
    const sa = mounts.find((m) => m.target === '/var/run/secrets/kubernetes.io/serviceaccount')!.source;
    const files = mounts.find((m) => m.target === '/etc/app')!.source;
    const read = (p: string): Promise<string> => readFile(p, 'utf8');
    const first = await read(join(sa, 'token'));
    expect(first).toMatch(/^token-for-vols-\d+$/);
    expect(await read(join(sa, 'ca.crt'))).toBe('CA PEM');
    expect(await read(join(sa, 'namespace'))).toBe('default');
    expect(await read(join(files, 'app.conf'))).toBe('v1');
    const cm = store.get('v1', 'ConfigMap', 'default', 'files')!;
    store.update({ ...cm, data: { 'app.conf': 'v2' } });
    await clock.advance(10 * 60_000);
    await eventually(async () => {
      expect(await read(join(files, 'app.conf'))).toBe('v2');
      expect(await read(join(sa, 'token'))).not.toBe(first);
    }, { timeoutMs: 5_000 });
  });

  it('waits for a volume rewrite in flight before it stops, so the pod directory can be removed', async () => {
    store.create(podObject('slow', { image: 'busybox', command: ['sleep', 'infinity'] }));
    await eventually(() => expect(main('slow')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    let release!: () => void;
    tokenGate = new Promise<void>((r) => {
      release = r;
    });
    await clock.advance(10 * 60_000); // the periodic rewrite starts and waits for its token
    let stopped = false;
    const stopping = kubelet.stop().then(() => {
      stopped = true;
    });
    await Promise.race([stopping, new Promise((r) => setTimeout(r, 300))]);
    expect(stopped).toBe(false);
    release();
    await stopping;
    // Nothing writes into the pod's directory any more: it goes at once, without ENOTEMPTY.
    await rm(dir, { recursive: true, force: true });
  });

  it('restarts a crashed container at once, then with CrashLoopBackOff after 10 s', async () => {
    store.create(podObject('crash', { image: 'busybox', command: ['false'] }));
    await eventually(() => expect(main('crash')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    runtime.processes[0]!.exit({ code: 1, signal: null });
    await eventually(() => expect(main('crash')).toMatchObject({ restartCount: 1, state: { running: {} }, lastState: { terminated: { exitCode: 1, reason: 'Error' } } }), { timeoutMs: 5_000 });
    runtime.processes[1]!.exit({ code: 2, signal: null });
    await eventually(() => expect(main('crash')?.state).toMatchObject({ waiting: { reason: 'CrashLoopBackOff', message: expect.stringContaining('back-off 10s') } }), { timeoutMs: 5_000 });
    expect(status('crash')?.phase).toBe('Running');
    await clock.advance(9_000);
    expect(runtime.processes).toHaveLength(2);
    await clock.advance(1_000);
    await eventually(() => expect(main('crash')).toMatchObject({ restartCount: 2, state: { running: {} } }), { timeoutMs: 5_000 });
  });

  it('ends a restartPolicy Never pod as Failed', async () => {
    store.create(podObject('job', { image: 'busybox', command: ['false'] }, { restartPolicy: 'Never' }));
    await eventually(() => expect(runtime.processes).toHaveLength(1), { timeoutMs: 5_000 });
    runtime.processes[0]!.exit({ code: 3, signal: null });
    await eventually(() => expect(status('job')?.phase).toBe('Failed'), { timeoutMs: 5_000 });
    expect(main('job')?.state).toMatchObject({ terminated: { exitCode: 3 } });
  });

  it('keeps a pod with an unknown image Pending with ErrImagePull, then ImagePullBackOff', async () => {
    store.create(podObject('bad', { image: 'example.com/nope:1' }));
    await eventually(() => expect(main('bad')?.state).toMatchObject({ waiting: { reason: 'ErrImagePull', message: expect.stringContaining('is not available in the amesh sandbox') } }), { timeoutMs: 5_000 });
    expect(status('bad')?.phase).toBe('Pending');
    await clock.advance(5_000);
    await eventually(() => expect(main('bad')?.state).toMatchObject({ waiting: { reason: 'ImagePullBackOff' } }), { timeoutMs: 5_000 });
    expect(runtime.processes).toHaveLength(0);
  });

  it('rewrites a ConfigMap volume as soon as the ConfigMap changes, without waiting for the periodic refresh', async () => {
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bundle', namespace: 'default' }, data: { 'root-cert.pem': 'root-1' } });
    store.create(
      podObject('watcher', { image: 'busybox', command: ['sleep', 'infinity'], volumeMounts: [{ name: 'b', mountPath: '/etc/bundle' }] }, { volumes: [{ name: 'b', projected: { sources: [{ configMap: { name: 'bundle' } }] } }] }),
    );
    await eventually(() => expect(main('watcher')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    const files = runtime.processes[0]!.spec.mounts.find((m) => m.target === '/etc/bundle')!.source;
    expect(await readFile(join(files, 'root-cert.pem'), 'utf8')).toBe('root-1');
    const cm = store.get('v1', 'ConfigMap', 'default', 'bundle')!;
    store.update({ ...cm, data: { 'root-cert.pem': 'root-1\nroot-2' } });
    // No clock advance: the kubelet follows the ConfigMap's watch event.
    await eventually(async () => expect(await readFile(join(files, 'root-cert.pem'), 'utf8')).toBe('root-1\nroot-2'), { timeoutMs: 5_000 });
  });

  it('waits for a missing ConfigMap with CreateContainerConfigError and starts once it exists', async () => {
    store.create(podObject('cfg', { image: 'busybox', command: ['sleep', 'infinity'], env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'settings', key: 'x' } } }] }));
    await eventually(() => expect(main('cfg')?.state).toMatchObject({ waiting: { reason: 'CreateContainerConfigError', message: 'configmap "settings" not found' } }), { timeoutMs: 5_000 });
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'default' }, data: { x: '42' } });
    await clock.advance(10_000);
    await eventually(() => expect(main('cfg')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    expect(runtime.processes[0]?.spec.env.X).toBe('42');
  });

  it('drives readiness from the readiness probe and restarts on liveness failure', async () => {
    probeResults.set('http', false);
    store.create(
      podObject('probed', {
        image: 'hashicorp/http-echo',
        args: ['-text=hi'],
        ports: [{ name: 'web', containerPort: 5678 }],
        readinessProbe: { httpGet: { path: '/health', port: 'web' }, periodSeconds: 1 },
        livenessProbe: { exec: { command: ['true'] }, periodSeconds: 1, failureThreshold: 2 },
      }),
    );
    await eventually(() => expect(main('probed')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    expect(main('probed')?.ready).toBe(false);
    await clock.advance(2_000);
    await settle();
    expect(main('probed')?.ready).toBe(false);
    expect(status('probed')?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    probeResults.set('http', true);
    await clock.advance(1_000);
    await eventually(() => expect(main('probed')?.ready).toBe(true), { timeoutMs: 5_000 });
    probeResults.set('exec', false);
    await clock.advance(2_000);
    await eventually(() => expect(main('probed')).toMatchObject({ restartCount: 1, state: { running: {} } }), { timeoutMs: 5_000 });
    expect(runtime.processes[0]?.stopped).toBe(true);
  });

  it('stops the containers and removes network and pod directory when the pod is deleted', async () => {
    const created = store.create(podObject('gone', { image: 'busybox', command: ['sleep', 'infinity'] }, { terminationGracePeriodSeconds: 1 }));
    const uid = created.metadata.uid ?? '';
    await eventually(() => expect(main('gone')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    expect(existsSync(podDirectory(dir, uid))).toBe(true);
    store.delete('v1', 'Pod', 'default', 'gone');
    await eventually(
      () => {
        expect(runtime.processes[0]?.stopped).toBe(true);
        expect(network.removed).toContain(uid);
        expect(existsSync(podDirectory(dir, uid))).toBe(false);
      },
      { timeoutMs: 5_000 },
    );
    await eventually(async () => expect(await readRecordedPids(dir)).toEqual([]), { timeoutMs: 5_000 });
  });

  it('stops every container on stop() and keeps the pod objects', async () => {
    store.create(podObject('stay', { image: 'busybox', command: ['sleep', 'infinity'] }));
    await eventually(() => expect(main('stay')?.state).toHaveProperty('running'), { timeoutMs: 5_000 });
    await kubelet.stop();
    expect(runtime.processes[0]?.stopped).toBe(true);
    expect(pod('stay')).toBeDefined();
  });
});
