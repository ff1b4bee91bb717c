/**
 * The sandbox cluster network for real: two nodes and three pods as namespaces, pod↔pod across
 * nodes, pod→fabric, a Service ClusterIP through kube-proxy's nftables DNAT (balanced, hairpin,
 * no-endpoint reject), cluster DNS through 10.96.0.10 from inside a pod with getent, adoption
 * by attach(), and a teardown that leaves nothing named after the prefix.
 *
 * The DNS server must listen on the fabric address inside the fabric namespace, which this
 * process (in the host namespace) cannot do; it runs in a child (vite-node, so it can import the
 * TypeScript sources) started with nsenter, like the sandbox daemon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterStore, KubeList, KubeObject, WatchEvent } from '../../src/sandbox/apiserver/types.js';
import { ClusterNetwork, removeClusterNetwork, type PodNetwork } from '../../src/sandbox/network/cluster-network.js';
import { KubeProxy } from '../../src/sandbox/network/kube-proxy.js';
import { run } from '../../src/sandbox/network/run.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('sandbox network', { tools: ['ip', 'nsenter', 'nft', 'getent', 'sysctl'] });

const ROOT = resolve(import.meta.dirname, '../..');
const PREFIX = `z${randomBytes(2).toString('hex').slice(0, 3)}`;
const NODES = ['sandbox-node1', 'sandbox-node2'];
const BACKEND_VIP = '10.96.0.60';
const EMPTY_VIP = '10.96.0.61';

/** Services and slices the kube-proxy and DNS child see. */
function objects(b: PodNetwork, c: PodNetwork): KubeObject[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'backend', namespace: 'demo' }, spec: { clusterIP: BACKEND_VIP, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'backend-1', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'backend' } },
      addressType: 'IPv4',
      endpoints: [b, c].map((p) => ({ addresses: [p.ip], conditions: { ready: true } })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty', namespace: 'demo' }, spec: { clusterIP: EMPTY_VIP, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
  ];
}

function staticStore(items: KubeObject[]): ClusterStore {
  return {
    list<T extends KubeObject>(apiVersion: string, kind: string): KubeList<T> {
      return { apiVersion, kind: `${kind}List`, metadata: { resourceVersion: '1' }, items: items.filter((o) => o.kind === kind) as T[] };
    },
    watch: (_v: string, _k: string, _o: unknown, _fn: (e: WatchEvent) => void) => () => {},
  } as unknown as ClusterStore;
}

/** A TCP server answering every connection with `reply` and closing. */
const SERVER = `
const net = require('node:net');
const [host, port, reply] = process.argv.slice(1);
net.createServer((s) => { s.end(reply + ' from ' + s.remoteAddress + '\\n'); }).listen(Number(port), host, () => console.log('listening'));
`;
/** A TCP client printing what the server says (or the error code). */
const CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect(Number(port), host);
let out = '';
s.setTimeout(2000, () => { console.log('TIMEOUT'); process.exit(0); });
s.on('data', (d) => { out += d; });
s.on('end', () => { process.stdout.write(out); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });
`;

describe.skipIf(!guard.run)('sandbox cluster network (root, network namespaces)', () => {
  const children: ChildProcess[] = [];
  const logLines: string[] = [];
  let network: ClusterNetwork;
  let a: PodNetwork;
  let b: PodNetwork;
  let c: PodNetwork;
  let proxy: KubeProxy;
  let scratch: string;

  /** Start a long-running program in a namespace; resolves once it prints `ready`. */
  async function startIn(netnsPath: string, argv: string[], ready: string): Promise<ChildProcess> {
    const child = spawn('nsenter', [`--net=${netnsPath}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    children.push(child);
    let output = '';
    await new Promise<void>((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`\`${argv.join(' ')}\` in ${netnsPath} did not print "${ready}" within 30 s: ${output}`)), 30_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes(ready)) {
          clearTimeout(timer);
          resolvePromise();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`\`${argv.join(' ')}\` in ${netnsPath} exited with ${code}: ${output}`));
      });
    });
    return child;
  }

  async function tcpGet(netnsPath: string, host: string, port: number): Promise<string> {
    const { stdout } = await run(['nsenter', `--net=${netnsPath}`, '--', process.execPath, '-e', CLIENT, host, String(port)], { where: netnsPath, timeoutMs: 10_000 });
    return stdout.trim();
  }

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'amesh-sandbox-net-'));
    network = await ClusterNetwork.create({ prefix: PREFIX, nodes: NODES }, { log: (m) => logLines.push(m) });
    [a, b, c] = await Promise.all([
      network.addPod({ uid: 'pod-a', node: 'sandbox-node1' }),
      network.addPod({ uid: 'pod-b', node: 'sandbox-node2' }),
      network.addPod({ uid: 'pod-c', node: 'sandbox-node2', ip: '10.244.2.50' }),
    ]);
    await Promise.all([
      startIn(b.netnsPath, [process.execPath, '-e', SERVER, '0.0.0.0', '8080', 'backend-b'], 'listening'),
      startIn(c.netnsPath, [process.execPath, '-e', SERVER, '0.0.0.0', '8080', 'backend-c'], 'listening'),
      startIn(network.plan.fabricNetnsPath, [process.execPath, '-e', SERVER, network.plan.fabricIp, '9000', 'fabric'], 'listening'),
    ]);
    const items = objects(b, c);
    proxy = new KubeProxy({ store: staticStore(items), network, log: silentLogger });
    await proxy.start();

    const script = join(scratch, 'dns.ts');
    await writeFile(
      script,
      `import { startClusterDns } from ${JSON.stringify(join(ROOT, 'src/sandbox/dns/cluster-dns-server.ts'))};
const items = JSON.parse(process.env.OBJECTS ?? '[]');
const store = { list: (v, kind) => ({ items: items.filter((o) => o.kind === kind) }), watch: () => () => {} };
const log = { info() {}, warn() {}, error() {}, debug() {} };
const dns = await startClusterDns({ store, address: process.env.ADDRESS, port: 53, log });
console.log('dns ready ' + dns.port);
process.on('SIGTERM', () => { void dns.close().then(() => process.exit(0)); });
setInterval(() => {}, 1 << 30);
`,
    );
    const dnsChild = spawn('nsenter', [`--net=${network.plan.fabricNetnsPath}`, '--', join(ROOT, 'node_modules/.bin/vite-node'), script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: ROOT,
      env: { ...process.env, OBJECTS: JSON.stringify(items), ADDRESS: network.plan.fabricIp },
    });
    children.push(dnsChild);
    await new Promise<void>((resolvePromise, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`DNS child did not start: ${output}`)), 60_000);
      dnsChild.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('dns ready')) {
          clearTimeout(timer);
          resolvePromise();
        }
      });
      dnsChild.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      dnsChild.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`DNS child exited with ${code}: ${output}`));
      });
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(child.pid, 'SIGKILL');
        await exited;
      }
    }
    await network?.destroy();
    await removeClusterNetwork(PREFIX);
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('gives pods addresses from their node CIDR, honouring a requested one', () => {
    expect(a).toMatchObject({ node: 'sandbox-node1', ip: '10.244.1.2', netns: expect.stringMatching(new RegExp(`^${PREFIX}-p[0-9a-f]+$`)) });
    expect(b.ip).toBe('10.244.2.2');
    expect(c.ip).toBe('10.244.2.50');
    expect(network.node('sandbox-node2').netns).toBe(`${PREFIX}-node2`);
  });

  it('connects pods across nodes and on one node, and pods to the fabric', async () => {
    expect(await tcpGet(a.netnsPath, b.ip, 8080)).toBe(`backend-b from ${a.ip}`);
    expect(await tcpGet(b.netnsPath, c.ip, 8080)).toBe(`backend-c from ${b.ip}`);
    expect(await tcpGet(a.netnsPath, network.plan.fabricIp, 9000)).toBe(`fabric from ${a.ip}`);
  });

  it('balances a ClusterIP across both endpoints from a pod on another node', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add(await tcpGet(a.netnsPath, BACKEND_VIP, 80));
    expect([...seen].sort()).toEqual([`backend-b from ${a.ip}`, `backend-c from ${a.ip}`]);
  });

  it('lets a pod reach itself through its Service (hairpin, masqueraded)', async () => {
    let own: string | undefined;
    for (let i = 0; i < 20 && !own; i++) {
      const reply = await tcpGet(b.netnsPath, BACKEND_VIP, 80);
      if (reply.startsWith('backend-b')) own = reply;
    }
    // The source is rewritten to the node's address, so the reply returns through the node.
    expect(own).toBe(`backend-b from ${network.node('sandbox-node2').ip}`);
  });

  it('resets connections to a ClusterIP without endpoints, and reaches the API VIP default from the node', async () => {
    expect(await tcpGet(a.netnsPath, EMPTY_VIP, 80)).toBe('ECONNREFUSED');
    // 10.96.0.1:443 → fabric:6443, nothing listens there: a reset from the fabric, not a timeout.
    expect(await tcpGet(network.node('sandbox-node1').netnsPath, '10.96.0.1', 443)).toBe('ECONNREFUSED');
  });

  it('resolves cluster names through 10.96.0.10 from inside a pod', async () => {
    await network.setPodDns(a.uid, {
      nameserver: network.plan.clusterDnsIp,
      searches: ['demo.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
      ndots: 5,
      hostname: 'pod-a',
    });
    const getent = async (name: string): Promise<string> =>
      (await run(['ip', 'netns', 'exec', a.netns, 'getent', 'hosts', name], { where: a.netns, allowFailure: true, timeoutMs: 15_000 })).stdout.trim();
    await eventually(async () => expect(await getent('backend.demo.svc.cluster.local')).toMatch(new RegExp(`^${BACKEND_VIP.replace(/\./g, '\\.')}\\s+backend\\.demo\\.svc\\.cluster\\.local$`)), {
      timeoutMs: 15_000,
      description: 'getent hosts backend.demo.svc.cluster.local in pod a',
    });
    expect(await getent('backend')).toMatch(/^10\.96\.0\.60\s/);
    expect(await getent('kubernetes.default')).toMatch(/^10\.96\.0\.1\s/);
    expect(await getent('pod-a')).toMatch(/^10\.244\.1\.2\s+pod-a$/);
    expect(await getent('missing.demo.svc.cluster.local')).toBe('');
    expect(existsSync(`/etc/netns/${a.netns}/resolv.conf`)).toBe(true);
  });

  it('is adopted by attach() and by a second create(), keeping pod addresses', async () => {
    const again = await ClusterNetwork.create({ prefix: PREFIX, nodes: NODES });
    expect(again.unclaimedPodNetns().sort()).toEqual([a.netns, b.netns, c.netns].sort());
    const attached = await ClusterNetwork.attach({ prefix: PREFIX, nodes: NODES });
    const adopted = await attached.addPod({ uid: 'pod-c', node: 'sandbox-node2' });
    expect(adopted).toEqual(c);
    // A new pod never gets an address an unclaimed namespace still holds.
    const fresh = await attached.addPod({ uid: 'pod-d', node: 'sandbox-node2', ip: b.ip });
    expect(fresh.ip).toBe('10.244.2.3');
    await attached.removePod('pod-d');
    expect(existsSync(fresh.netnsPath)).toBe(false);
    await expect(ClusterNetwork.attach({ prefix: PREFIX, nodes: [...NODES, 'sandbox-node3'] })).rejects.toMatchObject({ code: 'AMESH_SANDBOX_NOT_RUNNING' });
    // Pods that no kubelet re-added (deleted while the daemon was down) are pruned, with their DNS files.
    expect((await attached.pruneUnclaimedPods()).sort()).toEqual([a.netns, b.netns].sort());
    expect(existsSync(a.netnsPath) || existsSync(`/etc/netns/${a.netns}`)).toBe(false);
    expect(existsSync(c.netnsPath)).toBe(true);
  });

  it('destroy() removes every namespace and /etc/netns directory of the prefix', async () => {
    await proxy.stop();
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(child.pid, 'SIGKILL');
        await exited;
      }
    }
    await network.destroy();
    const mine = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(`${PREFIX}-`)) : []);
    expect(mine('/run/netns')).toEqual([]);
    expect(mine('/etc/netns')).toEqual([]);
    expect(await removeClusterNetwork(PREFIX)).toEqual([]);
  });
});
