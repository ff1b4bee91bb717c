/**
 * LoadBalancer Services in the sandbox (issue #8's edge path), with real kubectl and the amesh
 * CLI on a bare sandbox (no mesh installed):
 * - a LoadBalancer Service in front of an http-echo Deployment gets an EXTERNAL-IP from the
 *   sandbox pool, and is reachable from the outside client namespace (`amesh sandbox exec
 *   --outside`), from the host through the loopback port recorded in `sandbox.amesh.io/host-ports`,
 *   and from a pod; the outside namespace reaches nothing else of the cluster;
 * - the address and host port survive a daemon restart (`down --keep` + `up`);
 * - pod sysctls: net.ipv4.ip_unprivileged_port_start is set in the pod's namespace (uid 1337 can
 *   bind port 81 there), a non-network sysctl makes the pod SysctlForbidden;
 * - `sandbox down` removes the outside namespace and closes the host port.
 */
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';

const guard = requireRoot('sandbox ingress', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'unshare', 'sysctl'] });

const MANIFEST = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      securityContext:
        runAsUser: 1337
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
      containers:
      - name: echo
        image: hashicorp/http-echo
        args: ["-text=hello from the edge", "-listen=:80"]
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 80}]
`;

/** GET through the host loopback port; the body or the error. */
function hostGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('timed out')));
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.write('GET / HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n');
  });
}

describe.skipIf(!guard.run)('LoadBalancer Services (privileged sandbox)', () => {
  const name = `ai${Math.random().toString(16).slice(2, 5)}`;
  let dir = '';
  const { kubectl, kubectlOk, apply, amesh, exec } = sandboxCli(() => dir);
  const outside = (...cmd: string[]): ReturnType<typeof amesh> => amesh('sandbox', 'exec', '--dir', dir, '--outside', '--', ...cmd);
  const externalIp = (): string => kubectlOk('get', 'svc', 'edge', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}');
  const hostPort = (): number => {
    const annotation = kubectlOk('get', 'svc', 'edge', '-o', 'jsonpath={.metadata.annotations.sandbox\\.amesh\\.io/host-ports}');
    const match = /^80=(\d+)$/.exec(annotation);
    expect(match, `host-ports annotation ${JSON.stringify(annotation)}`).not.toBeNull();
    return Number(match?.[1]);
  };
  const echoPod = (): string => kubectlOk('get', 'pods', '-l', 'app=echo', '-o', 'jsonpath={.items[0].metadata.name}');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-ingress-test-'));
    await sandboxUp({ dir, name, nodes: 2, install: false });
    apply(MANIFEST);
    await eventually(() => expect(kubectlOk('get', 'deploy', 'echo', '-o', 'jsonpath={.status.availableReplicas}')).toBe('2'), {
      timeoutMs: 60_000,
      intervalMs: 500,
      description: 'echo deployment available',
    });
  }, 120_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('gives the Service an EXTERNAL-IP from the sandbox pool, shown by kubectl', async () => {
    await eventually(() => expect(externalIp()).toMatch(/^10\.252\.0\.\d+$/), { timeoutMs: 10_000, intervalMs: 200, description: 'LoadBalancer address' });
    const table = kubectlOk('get', 'svc', 'edge');
    expect(table).toMatch(/EXTERNAL-IP/);
    expect(table).toContain(externalIp());
  });

  it('is reachable from the outside namespace, which reaches nothing else of the cluster', async () => {
    const ip = externalIp();
    await eventually(
      () => {
        const r = outside('curl', '-s', '-S', '--max-time', '5', `http://${ip}/`);
        expect(r.stdout, r.stderr).toContain('hello from the edge');
      },
      { timeoutMs: 15_000, intervalMs: 300, description: 'LoadBalancer reachable from outside' },
    );
    // Unknown port on the address: refused at once, not a timeout.
    const refused = outside('curl', '-s', '-S', '--max-time', '5', `http://${ip}:81/`);
    expect(refused.status).toBe(7);
    const podIp = kubectlOk('get', 'pods', '-l', 'app=echo', '-o', 'jsonpath={.items[0].status.podIP}');
    expect(outside('curl', '-s', '--max-time', '3', `http://${podIp}/`).status, 'a pod address must not be reachable from outside').not.toBe(0);
    expect(outside('curl', '-s', '--max-time', '3', 'http://10.96.0.1:443/').status, 'a ClusterIP must not be reachable from outside').not.toBe(0);
  });

  it('is reachable on the host loopback port recorded in sandbox.amesh.io/host-ports, and shown by `amesh sandbox status`', async () => {
    let port = 0;
    await eventually(() => (port = hostPort()), { timeoutMs: 10_000, intervalMs: 200, description: 'host-ports annotation' });
    expect(await hostGet(port)).toContain('hello from the edge');
    const status = amesh('sandbox', 'status', '--dir', dir);
    expect(status.stdout).toContain(`default/edge: ${externalIp()} 80/TCP → 127.0.0.1:${port}`);
  });

  it('is reachable from a pod', () => {
    const r = exec(`default/${echoPod()}`, 'curl', '-s', '-S', '--max-time', '5', `http://${externalIp()}/`);
    expect(r.stdout, r.stderr).toContain('hello from the edge');
  });

  it('applies the pod sysctl in the pod namespace and rejects a non-network sysctl', async () => {
    const r = exec(`default/${echoPod()}`, 'sysctl', '-n', 'net.ipv4.ip_unprivileged_port_start');
    expect(r.stdout.trim(), r.stderr).toBe('0');
    // What the sysctl is for: uid 1337 (the gateway's) may bind a port below 1024 in the pod,
    // not in a namespace without it (the sandbox runs containers as root, so it is shown with setpriv).
    const bind81 = ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, '-e', "require('net').createServer().on('error', (e) => { console.log(e.code); process.exit(1); }).listen(81, () => { console.log('bound'); process.exit(0); })"];
    const inPod = exec(`default/${echoPod()}`, ...bind81);
    expect(inPod.stdout.trim(), inPod.stderr).toBe('bound');
    expect(outside(...bind81).stdout.trim()).toBe('EACCES');
    apply('apiVersion: v1\nkind: Pod\nmetadata: {name: forbidden, namespace: default}\nspec: {securityContext: {sysctls: [{name: kernel.msgmax, value: "65536"}]}, containers: [{name: c, image: hashicorp/http-echo}]}');
    await eventually(() => expect(kubectlOk('get', 'pod', 'forbidden', '-o', 'jsonpath={.status.phase} {.status.reason}')).toBe('Failed SysctlForbidden'), {
      timeoutMs: 10_000,
      intervalMs: 200,
      description: 'pod rejected',
    });
    expect(kubectlOk('get', 'pod', 'forbidden', '-o', 'jsonpath={.status.message}')).toMatch(/kernel\.msgmax/);
    kubectl('delete', 'pod', 'forbidden', '--wait=false');
  });

  it('keeps the address and the host port across a daemon restart', async () => {
    const ip = externalIp();
    const port = hostPort();
    await sandboxDown({ dir, keep: true });
    await expect(hostGet(port)).rejects.toThrow(/ECONNREFUSED/);
    await sandboxUp({ dir, install: false });
    await eventually(
      async () => {
        expect(externalIp()).toBe(ip);
        expect(hostPort()).toBe(port);
        expect(await hostGet(port)).toContain('hello from the edge');
      },
      { timeoutMs: 60_000, intervalMs: 500, description: 'LoadBalancer back after the restart' },
    );
  }, 120_000);

  it('`sandbox down` removes the outside namespace and closes the host port', async () => {
    const port = hostPort();
    await sandboxDown({ dir });
    const d = dir;
    dir = '';
    expect(existsSync(`/run/netns/${name}-outside`)).toBe(false);
    expect(existsSync(d)).toBe(false);
    await expect(hostGet(port)).rejects.toThrow(/ECONNREFUSED/);
  }, 120_000);
});
