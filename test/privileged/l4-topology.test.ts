/**
 * The sandbox topology on its own, with no amesh agent (plain TCP only, inside namespaces the
 * test created): if this fails, the datapath tests would fail for reasons that have nothing to
 * do with the node agent. Also checks that building and destroying it leaves the host's own
 * network namespace exactly as it was.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopology, type Topology } from '../../src/sandbox/network/topology.js';
import { TWO_NODES } from '../helpers/agent-testbed.js';
import { runPodClient, startCapture, startPodServer, type PodServer } from '../helpers/agents.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('l4 topology', { tools: ['ip', 'nsenter', 'sysctl', 'tcpdump'] });

/** The host's own links and routes, to prove the topology never touches them. */
function rootNetworkState(): string {
  const run = (args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  const links = run(['-o', 'link', 'show'])
    .split('\n')
    .map((l) => l.replace(/^\d+: /, '').split(':')[0])
    .join(' ');
  return `${links}\n${run(['-4', 'route', 'show', 'table', 'all'])}\n${run(['-4', 'addr', 'show'])}`;
}

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
describe.skipIf(!guard.run)('sandbox topology (no agent)', () => {
  const prefix = `am-${randomBytes(2).toString('hex')}`;
  const progress: string[] = [];
  let topology: Topology;
  let dir: string;
  let rootBefore: string;
  let sink: PodServer;
  let echo: PodServer;
  let whoami: PodServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
    rootBefore = rootNetworkState();
    topology = await createTopology({
      prefix,
      nodes: [...TWO_NODES],
      pods: [
        { name: 'a', node: 'node1', ip: '10.244.1.2' },
        { name: 'c', node: 'node1', ip: '10.244.1.3' },
        { name: 'b', node: 'node2', ip: '10.244.2.2' },
      ],
      log: (m) => progress.push(m),
    });
    sink = await startPodServer(topology, 'b', 'sink-server', [9000], dir);
    whoami = await startPodServer(topology, 'b', 'whoami-server', [8080], dir);
    echo = await startPodServer(topology, 'c', 'echo-server', [7070], dir);
  });

  afterAll(async () => {
    await topology?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('wires nodes and pods as specified', async () => {
    expect(topology.hostVeth('a')).toBe('vp-a');
    const route = await topology.exec('node1', ['ip', '-4', 'route', 'show']);
    expect(route.stdout).toContain('10.244.2.0/24 via 10.250.0.2 dev up0');
    expect(route.stdout).toContain('10.244.1.2 dev vp-a');
    const podRoute = await topology.exec('a', ['ip', '-4', 'route', 'show']);
    expect(podRoute.stdout).toContain('default via 169.254.1.1 dev eth0 onlink');
    const forward = await topology.exec('node2', ['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.up0.rp_filter', 'net.ipv4.conf.vp-b.proxy_arp']);
    expect(forward.stdout.split('\n').filter(Boolean)).toEqual(['1', '0', '0', '1']);
  });

  it('carries 4 MiB intact from a pod to a pod on another node', async () => {
    const result = await runPodClient(topology, 'a', 'client', ['--host', '10.244.2.2', '--port', '9000', '--send-bytes', String(4 << 20), '--seed', 'topology']);
    expect(result, JSON.stringify(result)).toMatchObject({ ok: true, sentBytes: 4 << 20 });
    expect(sink.connections().at(-1)?.remote).toBe(result.local);
  });

  it('preserves addresses end to end (no NAT)', async () => {
    const result = await runPodClient(topology, 'a', 'client', ['--host', '10.244.2.2', '--port', '8080', '--expect-whoami']);
    expect(result.ok, JSON.stringify(result)).toBe(true);
    expect(result.reply).toEqual({ local: '10.244.2.2:8080', remote: result.local });
    expect(whoami.connections()).toHaveLength(1);
  });

  it('connects pods on the same node, many times', async () => {
    const result = await runPodClient(topology, 'a', 'many-clients', ['--host', '10.244.1.3', '--port', '7070', '--count', '30']);
    expect(result, JSON.stringify(result)).toMatchObject({ ok: true, successes: 30 });
    expect(echo.connections()).toHaveLength(30);
  });

  it('sees plaintext inter-node traffic on the uplink with tcpdump', async () => {
    const capture = await startCapture(topology, 'node1', 'up0', join(dir, 'up0.pcap'), ['tcp']);
    const marker = `TOPOLOGY-MARKER-${randomBytes(4).toString('hex')}`;
    const result = await runPodClient(topology, 'a', 'client', ['--host', '10.244.2.2', '--port', '9000', '--send', marker, '--repeat', '50']);
    expect(result.ok, JSON.stringify(result)).toBe(true);
    const pcap = await capture.stop();
    expect(pcap.raw.includes(marker)).toBe(true);
    expect(pcap.tcp.some((p) => p.src === '10.244.1.2' && p.dport === 9000 && (p.flags & 0x02) !== 0)).toBe(true);
  });

  it('reports a refused connection as a failed result', async () => {
    const result = await runPodClient(topology, 'a', 'client', ['--host', '10.244.2.2', '--port', '9', '--timeout-ms', '3000']);
    expect(result).toMatchObject({ ok: false, error: 'ECONNREFUSED' });
  });

  it('is removed completely by destroy() and never touched the host namespace', async () => {
    const extra = await createTopology({
      prefix: `am-${randomBytes(2).toString('hex')}`,
      nodes: [
        { name: 'n1', uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' },
        { name: 'n2', uplinkIp: '10.250.0.2', podCidr: '10.244.2.0/24' },
        { name: 'n3', uplinkIp: '10.250.0.3', podCidr: '10.244.3.0/24' },
      ],
      pods: [
        { name: 'p1', node: 'n1', ip: '10.244.1.9' },
        { name: 'p3', node: 'n3', ip: '10.244.3.9' },
      ],
    });
    const names = ['n1', 'n2', 'n3', 'p1', 'p3', 'sw'].map((n) => extra.netnsName(n));
    try {
      // three nodes share a switch namespace; traffic crosses it
      const server = await startPodServer(extra, 'p3', 'echo-server', [7070], dir);
      const result = await runPodClient(extra, 'p1', 'client', ['--host', '10.244.3.9', '--port', '7070']);
      expect(result.ok, JSON.stringify(result)).toBe(true);
      expect(names.every((n) => existsSync(`/run/netns/${n}`))).toBe(true);
      await extra.destroy();
      await extra.destroy(); // idempotent
      expect(server.process.exitStatus()).toBeDefined();
      expect(names.filter((n) => existsSync(`/run/netns/${n}`))).toEqual([]);
    } finally {
      await extra.destroy();
    }
    expect(rootNetworkState()).toBe(rootBefore);
  });

  it('rejects specs it cannot build before creating anything', async () => {
    await expect(createTopology({ prefix: 'am-toolongprefix', nodes: [{ name: 'node1', uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' }], pods: [] })).rejects.toThrow(/longer than 15/);
    await expect(
      createTopology({ prefix, nodes: [{ name: 'x1', uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' }], pods: [{ name: 'p', node: 'x1', ip: '10.244.9.1' }] }),
    ).rejects.toThrow(/outside node x1's pod CIDR/);
    expect(existsSync(`/run/netns/${prefix}-x1`)).toBe(false);
  });
});
