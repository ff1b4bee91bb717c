import { afterEach, describe, expect, it, vi } from 'vitest';
import { containerCommandLine } from '../../src/sandbox/kubelet/container-runtime.js';
import { leaseObject, nodeObject, nodeStatus } from '../../src/sandbox/kubelet/node-object.js';
import { expandVariables, resolveContainerEnv, type EnvSources } from '../../src/sandbox/kubelet/pod-env.js';
import { computePodStatus, podPhase } from '../../src/sandbox/kubelet/pod-status.js';
import type { ContainerStatus, Pod } from '../../src/sandbox/kubelet/pod-types.js';
import { applyProbeResult, probePlan, type ProbePlan } from '../../src/sandbox/kubelet/probe-plan.js';
import { probeArgv } from '../../src/sandbox/kubelet/probe-runner.js';
import { Prober } from '../../src/sandbox/kubelet/prober.js';
import { INITIAL_BACKOFF, restartBackoff, shouldRestart, type BackoffState } from '../../src/sandbox/kubelet/restart-backoff.js';
import { systemClock } from '../../src/sandbox/kubelet/clock.js';
import { containerMounts, SERVICE_ACCOUNT_MOUNT, withServiceAccountVolume } from '../../src/sandbox/kubelet/volumes.js';

const pod: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-1', namespace: 'shop', uid: 'u-1', labels: { app: 'web' }, annotations: { 'a.io/x': 'y' } },
  spec: { nodeName: 'sandbox-node1', serviceAccountName: 'web-sa', containers: [{ name: 'app', image: 'nginx', ports: [{ name: 'http', containerPort: 8080 }] }] },
};

const sources: EnvSources = {
  configMap: (ns, name) => (ns === 'shop' && name === 'cfg' ? { MODE: 'fast', LEVEL: '3' } : undefined),
  secret: (ns, name) => (ns === 'shop' && name === 'sec' ? { PASSWORD: Buffer.from('s3cret').toString('base64') } : undefined),
};

describe('container environment', () => {
  it('resolves values, field refs, config maps, secrets and envFrom, with $(VAR) expansion', () => {
    const result = resolveContainerEnv(
      pod,
      {
        name: 'app',
        envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }],
        env: [
          { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
          { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: 'ANN', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['a.io/x']" } } },
          { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
          { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'MODE' } } },
          { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'sec', key: 'PASSWORD' } } },
          { name: 'URL', value: 'http://$(IP):8080/$(NS)/$$(NS)/$(UNDEFINED)' },
          { name: 'OPT', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'NOPE', optional: true } } },
        ],
      },
      sources,
      { podIP: '10.244.1.5', hostIP: '10.250.0.1' },
    );
    expect(result).toEqual({
      env: expect.objectContaining({
        CFG_MODE: 'fast',
        CFG_LEVEL: '3',
        POD: 'web-1',
        NS: 'shop',
        NODE: 'sandbox-node1',
        SA: 'web-sa',
        APP: 'web',
        ANN: 'y',
        IP: '10.244.1.5',
        HOST_IP: '10.250.0.1',
        MODE: 'fast',
        PASSWORD: 's3cret',
        URL: 'http://10.244.1.5:8080/shop/$(NS)/$(UNDEFINED)',
        HOSTNAME: 'web-1',
        KUBERNETES_SERVICE_HOST: '10.96.0.1',
        KUBERNETES_SERVICE_PORT: '443',
        PATH: expect.stringContaining('/usr/bin'),
      }),
    });
    expect(result).not.toHaveProperty('env.OPT');
  });

  it.each([
    [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'missing', key: 'k' } } }, 'configmap "missing" not found'],
    [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } }, "couldn't find key k in ConfigMap shop/cfg"],
    [{ name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }, 'secret "nope" not found'],
    [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'spec.bogus' } } }, 'unsupported fieldPath'],
  ])('explains a reference that cannot be resolved (%j)', (variable, message) => {
    expect(resolveContainerEnv(pod, { name: 'app', env: [variable] }, sources, {})).toEqual({ error: expect.stringContaining(message) });
  });

  it('expands only known variables', () => {
    expect(expandVariables('$(A)-$(B)-$$(A)-$A', { A: '1' })).toBe('1-$(B)-$(A)-$A');
  });
});

describe('restart back-off', () => {
  it('restarts at once, then waits 10 s doubling to a 5 min cap, and resets after 10 min of running', () => {
    let state: BackoffState = INITIAL_BACKOFF;
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = restartBackoff(state, 1_000);
      delays.push(r.delayMs / 1000);
      state = r.state;
    }
    expect(delays).toEqual([0, 10, 20, 40, 80, 160, 300, 300]);
    const afterLongRun = restartBackoff(state, 600_000);
    expect(afterLongRun.delayMs).toBe(0);
    expect(afterLongRun.state.nextDelayMs).toBe(10_000);
  });

  it.each([
    ['Always', 0, true],
    ['Always', 1, true],
    ['OnFailure', 0, false],
    ['OnFailure', 2, true],
    ['Never', 1, false],
  ] as const)('policy %s, exit %i → restart %s', (policy, code, expected) => expect(shouldRestart(policy, code)).toBe(expected));
});

function cs(name: string, state: ContainerStatus['state'], extra: Partial<ContainerStatus> = {}): ContainerStatus {
  return { name, image: 'i', imageID: '', started: 'running' in state, ready: false, restartCount: 0, state, lastState: {}, ...extra };
}
const running = { running: { startedAt: '2025-01-01T00:00:00Z' } };
const waiting = { waiting: { reason: 'ContainerCreating' } };
const exited = (exitCode: number) => ({ terminated: { exitCode, reason: exitCode ? 'Error' : 'Completed', finishedAt: '2025-01-01T00:01:00Z' } });

describe('pod phase', () => {
  it.each([
    ['Always', [cs('a', waiting)], 'Pending'],
    ['Always', [cs('a', running), cs('b', waiting)], 'Pending'],
    ['Always', [cs('a', running), cs('b', running)], 'Running'],
    ['Always', [cs('a', { waiting: { reason: 'CrashLoopBackOff' } }, { restartCount: 3 })], 'Running'],
    ['Always', [cs('a', exited(0))], 'Running'],
    ['Never', [cs('a', exited(0)), cs('b', exited(0))], 'Succeeded'],
    ['Never', [cs('a', exited(0)), cs('b', exited(1))], 'Failed'],
    ['Never', [cs('a', exited(0)), cs('b', running)], 'Running'],
    ['OnFailure', [cs('a', exited(0))], 'Succeeded'],
    ['OnFailure', [cs('a', exited(1))], 'Running'],
    ['Always', [cs('a', { waiting: { reason: 'ErrImagePull' } })], 'Pending'],
  ] as const)('%s %#', (policy, containers, phase) => expect(podPhase(policy, [...containers])).toBe(phase));
});

describe('pod status', () => {
  it('is Ready only when every container is ready, keeping transition times that did not change', () => {
    const first = computePodStatus({ restartPolicy: 'Always', containers: [cs('a', running, { ready: true }), cs('b', running)], podIP: '10.244.1.2', hostIP: '10.250.0.1', startTime: 't0', now: 'T1' });
    expect(first).toMatchObject({ phase: 'Running', podIP: '10.244.1.2', podIPs: [{ ip: '10.244.1.2' }], hostIP: '10.250.0.1', startTime: 't0' });
    const ready = (s: typeof first) => s.conditions?.find((c) => c.type === 'Ready');
    expect(ready(first)).toMatchObject({ status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [b]', lastTransitionTime: 'T1' });
    const second = computePodStatus({ restartPolicy: 'Always', containers: [cs('a', running, { ready: true }), cs('b', running)], now: 'T2', previous: first });
    expect(ready(second)?.lastTransitionTime).toBe('T1');
    const third = computePodStatus({ restartPolicy: 'Always', containers: [cs('a', running, { ready: true }), cs('b', running, { ready: true })], now: 'T3', previous: second });
    expect(ready(third)).toMatchObject({ status: 'True', lastTransitionTime: 'T3' });
    expect(third.conditions?.find((c) => c.type === 'PodScheduled')?.lastTransitionTime).toBe('T1');
    expect(third.conditions?.map((c) => c.type)).toEqual(expect.arrayContaining(['PodScheduled', 'Initialized', 'ContainersReady', 'Ready']));
  });
});

describe('probes', () => {
  it('plans httpGet with a named port, the pod IP as default host and Kubernetes defaults', () => {
    expect(probePlan('readiness', { httpGet: { path: 'healthz', port: 'http' } }, pod.spec.containers[0]!, '10.244.1.2')).toEqual({
      kind: 'readiness',
      action: { kind: 'http', scheme: 'http', host: '10.244.1.2', port: 8080, path: '/healthz', headers: [] },
      timing: { initialDelayMs: 0, periodMs: 10_000, timeoutMs: 1_000, successThreshold: 1, failureThreshold: 3 },
    });
    expect(probePlan('liveness', { tcpSocket: { port: 'nope' } }, pod.spec.containers[0]!, 'x')).toEqual({ error: expect.stringContaining('"nope"') });
    expect(probePlan('liveness', { exec: { command: ['cat', '/tmp/ok'] }, successThreshold: 3 }, pod.spec.containers[0]!, 'x')).toMatchObject({ timing: { successThreshold: 1 } });
  });

  it('flips only after the thresholds', () => {
    const timing = { initialDelayMs: 0, periodMs: 1, timeoutMs: 1, successThreshold: 2, failureThreshold: 3 };
    let c = { healthy: false, successes: 0, failures: 0 };
    const seen: boolean[] = [];
    for (const ok of [true, false, true, true, false, false, false]) {
      const r = applyProbeResult(c, ok, timing);
      c = r.counters;
      if (r.changed) seen.push(c.healthy);
    }
    expect(seen).toEqual([true, false]);
  });

  it('enters the container namespaces by pid', () => {
    expect(probeArgv({ kind: 'http', scheme: 'http', host: '127.0.0.1', port: 15021, path: '/healthz/ready', headers: [] }, { pid: 42, timeoutMs: 1000 })).toEqual([
      'nsenter', '--target=42', '--net', '--mount', 'curl', '-s', '-g', '-k', '--noproxy', '*', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', 'http://127.0.0.1:15021/healthz/ready',
    ]);
    expect(probeArgv({ kind: 'exec', command: ['cat', '/tmp/ok'] }, { pid: 7, timeoutMs: 2500 })).toEqual(['nsenter', '--target=7', '--net', '--mount', 'timeout', '3', 'cat', '/tmp/ok']);
  });

  describe('scheduling', () => {
    afterEach(() => vi.useRealTimers());

    it('waits initialDelay, probes every period and reports verdict changes', async () => {
      vi.useFakeTimers();
      const plan: ProbePlan = { kind: 'readiness', action: { kind: 'exec', command: ['x'] }, timing: { initialDelayMs: 5_000, periodMs: 2_000, timeoutMs: 1_000, successThreshold: 1, failureThreshold: 2 } };
      const results = [true, true, false, false, true];
      const attempts: number[] = [];
      const changes: boolean[] = [];
      const prober = new Prober({
        plan,
        clock: systemClock,
        attempt: async () => {
          attempts.push(Date.now());
          return results.shift() ?? true;
        },
        onChange: (h) => changes.push(h),
      });
      const t0 = Date.now();
      prober.start();
      await vi.advanceTimersByTimeAsync(4_999);
      expect(attempts).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(changes).toEqual([true]);
      await vi.advanceTimersByTimeAsync(8_000);
      expect(attempts.map((t) => t - t0)).toEqual([5_000, 7_000, 9_000, 11_000, 13_000]);
      expect(changes).toEqual([true, false, true]);
      prober.stop();
      await vi.advanceTimersByTimeAsync(10_000);
      expect(attempts).toHaveLength(5);
    });
  });
});

describe('container command line', () => {
  it('enters the pod netns with ip netns exec, and a host-network pod with nsenter', () => {
    expect(containerCommandLine({ argv: ['sleep', 'infinity'], network: { kind: 'pod', netns: 'ams-p1' }, mounts: [] })).toEqual(['ip', 'netns', 'exec', 'ams-p1', 'sleep', 'infinity']);
    expect(containerCommandLine({ argv: ['node', 'x'], network: { kind: 'host', netnsPath: '/run/netns/ams-node1' }, mounts: [] })).toEqual(['nsenter', '--net=/run/netns/ams-node1', 'node', 'x']);
  });

  it('bind-mounts volumes in a private mount namespace, then execs the program', () => {
    const argv = containerCommandLine({ argv: ['cat', "/it's"], network: { kind: 'pod', netns: 'n' }, mounts: [{ source: '/pods/u/volumes/cfg', target: '/etc/app', readOnly: true }] });
    expect(argv.slice(0, 10)).toEqual(['ip', 'netns', 'exec', 'n', 'unshare', '--mount', '--propagation', 'private', 'sh', '-c']);
    expect(argv[10]).toBe("set -e; mount --bind '/pods/u/volumes/cfg' '/etc/app' && mount -o remount,bind,ro '/etc/app'; exec \"$@\"");
    expect(argv.slice(11)).toEqual(['sh', 'cat', "/it's"]);
  });
});

describe('volumes', () => {
  it('adds the service-account volume unless the pod opts out or mounts it already', () => {
    const withSa = withServiceAccountVolume(pod);
    expect(withSa.spec.volumes?.[0]?.projected?.sources?.map((s) => Object.keys(s)[0])).toEqual(['serviceAccountToken', 'configMap', 'downwardAPI']);
    expect(withSa.spec.containers[0]?.volumeMounts).toEqual([{ name: 'kube-api-access-sandbox', mountPath: SERVICE_ACCOUNT_MOUNT, readOnly: true }]);
    expect(withServiceAccountVolume(withSa)).toBe(withSa);
    const optOut = { ...pod, spec: { ...pod.spec, automountServiceAccountToken: false } };
    expect(withServiceAccountVolume(optOut)).toBe(optOut);
  });

  it('maps volume mounts onto bind mounts, skipping hostPaths mounted at their own path', () => {
    const volumes = new Map([
      ['cfg', { path: '/pods/u/volumes/cfg', readOnly: true }],
      ['mesh', { path: '/var/lib/amesh/mesh', readOnly: false }],
    ]);
    const mounts = containerMounts(
      {
        name: 'c',
        volumeMounts: [
          { name: 'cfg', mountPath: '/etc/app/app.conf', subPath: 'app.conf' },
          { name: 'mesh', mountPath: '/var/lib/amesh/mesh' },
          { name: 'mesh', mountPath: '/data', readOnly: true },
        ],
      },
      volumes,
    );
    expect(mounts).toEqual([
      { source: '/pods/u/volumes/cfg/app.conf', target: '/etc/app/app.conf', readOnly: true },
      { source: '/var/lib/amesh/mesh', target: '/data', readOnly: true },
    ]);
    expect(() => containerMounts({ name: 'c', volumeMounts: [{ name: 'x', mountPath: '/x' }] }, volumes)).toThrow(/volume "x"/);
  });
});

describe('node registration', () => {
  it('describes a Ready node with its pod CIDR and addresses, and a lease', () => {
    const node = nodeObject({ name: 'sandbox-node1', ip: '10.250.0.1', podCidr: '10.244.1.0/24', now: 'T' });
    expect(node).toMatchObject({
      metadata: { name: 'sandbox-node1', labels: { 'kubernetes.io/hostname': 'sandbox-node1', 'kubernetes.io/os': 'linux' } },
      spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
      status: {
        addresses: [{ type: 'InternalIP', address: '10.250.0.1' }, { type: 'Hostname', address: 'sandbox-node1' }],
        capacity: { pods: '110' },
        nodeInfo: { kubeletVersion: 'v1.32.0-amesh' },
      },
    });
    const status = nodeStatus({ name: 'n', ip: 'i', podCidr: 'c', now: 'T2' }, node.status as never) as { conditions: Array<{ type: string; status: string; reason: string; lastTransitionTime: string }> };
    expect(status.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'KubeletReady', lastTransitionTime: 'T' });
    expect(leaseObject({ name: 'sandbox-node1', uid: 'n-1' }, 'now')).toMatchObject({ metadata: { namespace: 'kube-node-lease', name: 'sandbox-node1' }, spec: { holderIdentity: 'sandbox-node1', renewTime: 'now' } });
  });
});
