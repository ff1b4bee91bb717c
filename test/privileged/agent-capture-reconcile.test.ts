/**
 * Issue #10 items 4 (reconcile on start) and 5 (veth churn) with a real `amesh node-agent`
 * (eBPF capture) in a private sandbox topology: node1 with pods a (client) and b (echo server),
 * both enrolled from a local config file; node2 only for the uplink.
 *
 * 1. While the agent is stopped, its state is damaged: the tc filter on b's veth, b's entry in the
 *    pinned pod map, the nft table and the IPv4 fwmark rule are deleted. The next start puts each
 *    back and its log names each repair (`capture: repaired <object>: …`).
 * 2. With the agent running, pod a's veth is deleted and recreated (new ifindex, as when a pod's
 *    sandbox is recreated): the program is on the new veth within 1 s of the pod's route
 *    appearing, and a's next connection is captured (the agent's access log has it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POD_GATEWAY, type Topology } from '../../src/sandbox/network/topology.js';
import { TC_HANDLE, TC_PRIORITY } from '../../src/node-agent/capture/ebpf-capture.js';
import { AgentTestbed, PAIR_IP as IP, PAIR_PODS, PAIR_WORKLOADS } from '../helpers/agent-testbed.js';
import { AgentProcess, runPodClient, startPodServer, type AgentOptions } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('agent capture reconcile and veth re-attach', { tools: ['ip', 'nsenter', 'tc', 'nft', 'bpftool'] });

const ECHO_PORT = 9001;
const REATTACH_BUDGET_MS = 1_000;

describe.skipIf(!guard.run)('agent capture: reconcile on start and re-attach after veth churn (privileged)', () => {
  const bed = new AgentTestbed('amr');
  const pinRoot = bed.pinRoot('node1');
  let options: AgentOptions | undefined;

  const topo = (): Topology => bed.topology;
  const node1 = (argv: string[]) => topo().exec('node1', argv, { timeoutMs: 10_000, allowFailure: true });
  /** Program id of our filter on `dev` (0: none). */
  const filterOn = async (dev: string): Promise<number> => {
    const r = await node1(['tc', '-j', 'filter', 'show', 'dev', dev, 'ingress']);
    if (r.code !== 0 || !r.stdout.trim()) return 0;
    const filters = JSON.parse(r.stdout) as Array<{ pref?: number; options?: { handle?: string; prog?: { id?: number } } }>;
    const ours = filters.find((f) => f.pref === TC_PRIORITY && f.options?.handle === `0x${TC_HANDLE.toString(16)}` && f.options.prog?.id);
    return ours?.options?.prog?.id ?? 0;
  };
  const podKey = (ip: string): string[] => ['0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '255', '255', ...ip.split('.')];
  const podMapHas = async (ip: string): Promise<boolean> => {
    const r = await node1(['bpftool', 'map', 'lookup', 'pinned', `${pinRoot}/amesh_pods`, 'key', ...podKey(ip)]);
    return r.code === 0;
  };
  const hasRule = async (): Promise<boolean> => (await node1(['ip', '-4', 'rule', 'show'])).stdout.includes('fwmark 0x111');
  const hasNftTable = async (): Promise<boolean> => (await node1(['nft', 'list', 'table', 'inet', 'amesh'])).code === 0;

  beforeAll(async () => {
    await bed.setUp(PAIR_PODS);
    await startPodServer(topo(), 'b', 'echo-server', [ECHO_PORT], bed.dir);
    const configFile = await bed.writeConfig('node1', { workloads: PAIR_WORKLOADS });
    options = { node: 'node1', configFile, pinRoot, logDir: bed.dir, captureMode: 'ebpf', drainTimeoutMs: 1_000 };
  }, 120_000);

  // The node netns takes the agent's rules, filters and nft table with it; the pinned maps outlive it.
  afterAll(() => bed.tearDown());

  const startAgent = async (): Promise<AgentProcess> => {
    if (!options) throw new Error('no agent options (see beforeAll)');
    const agent = AgentProcess.start(topo(), options);
    await agent.waitReady(30_000);
    await eventually(async () => expect((await agent.configDump()).capture).toMatchObject({ mode: 'ebpf', enrolled: 2 }), { timeoutMs: 15_000, description: 'both pods enrolled' });
    return agent;
  };
  const echo = () => runPodClient(topo(), 'a', 'client', ['--host', IP.b, '--port', String(ECHO_PORT), '--send-bytes', '2048', '--expect', 'echo', '--timeout-ms', '8000'], 15_000);

  it('repairs a deleted tc filter, pinned map entry, nft table and routing rule on start, naming each', async () => {
    const first = await startAgent();
    const vethB = topo().hostVeth('b');
    expect(await filterOn(vethB)).toBeGreaterThan(0);
    expect(await podMapHas(IP.b)).toBe(true);
    expect(await hasNftTable()).toBe(true);
    expect(await hasRule()).toBe(true);
    await first.stop(15_000);

    // Damage while no agent runs.
    for (const argv of [
      ['tc', 'filter', 'del', 'dev', vethB, 'ingress', 'pref', String(TC_PRIORITY), 'handle', `0x${TC_HANDLE.toString(16)}`, 'bpf'],
      ['bpftool', 'map', 'delete', 'pinned', `${pinRoot}/amesh_pods`, 'key', ...podKey(IP.b)],
      ['nft', 'delete', 'table', 'inet', 'amesh'],
      ['ip', '-4', 'rule', 'del', 'fwmark', '0x111/0xfff'],
    ]) {
      const r = await node1(argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    }
    expect(await filterOn(vethB)).toBe(0);
    expect(await podMapHas(IP.b)).toBe(false);
    expect(await hasNftTable()).toBe(false);
    expect(await hasRule()).toBe(false);

    const second = await startAgent();
    try {
      expect(await filterOn(vethB)).toBeGreaterThan(0);
      expect(await podMapHas(IP.b)).toBe(true);
      expect(await hasNftTable()).toBe(true);
      expect(await hasRule()).toBe(true);
      const repairs = second.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('capture: repaired'));
      const named = repairs.map((l) => `${String(l.kind)} ${String(l.object)} ${String(l.problem)} → ${String(l.action)}`);
      console.log(`start-up repairs:\n  ${named.join('\n  ')}`);
      expect(named).toEqual(
        expect.arrayContaining([
          expect.stringMatching(new RegExp(`^tc-filter .* on ${vethB} .* missing → attached$`)),
          expect.stringMatching(new RegExp(`^map-entry ${pinRoot}/amesh_pods entry ${IP.b.replace(/\./g, '\\.')} missing → added$`)),
          expect.stringMatching(/^nft-table nftables table inet amesh missing → created/),
          expect.stringMatching(/^routing-rule ip -4 rule fwmark 0x111\/0x[0-9a-f]+ lookup \d+ priority \d+ missing → added$/),
        ]),
      );
      expect(repairs).toHaveLength(4);
      const done = second.logs().find((l) => typeof l.msg === 'string' && l.msg.startsWith('capture: start-up reconcile done'));
      expect(done, second.logTail()).toMatchObject({ repairs: 4 });
      expect(await echo(), second.logTail()).toMatchObject({ ok: true });
    } finally {
      await second.stop(15_000);
    }
  }, 120_000);

  it('re-attaches the program within 1 s when a pod veth is deleted and recreated (new ifindex)', async () => {
    const agent = await startAgent();
    try {
      const veth = topo().hostVeth('a');
      const podNs = topo().netnsName('a');
      const index = async (): Promise<number> => (JSON.parse((await node1(['ip', '-j', 'link', 'show', veth])).stdout || '[{}]') as Array<{ ifindex?: number }>)[0]?.ifindex ?? 0;
      const before = await index();
      expect(await filterOn(veth)).toBeGreaterThan(0);
      const mac = async (): Promise<string> => (JSON.parse((await node1(['ip', '-j', 'link', 'show', veth])).stdout || '[{}]') as Array<{ address?: string }>)[0]?.address ?? '';
      const figures: string[] = [];
      for (let round = 1; round <= 3; round++) {
        expect((await node1(['ip', 'link', 'del', veth])).code).toBe(0);
        await new Promise((r) => setTimeout(r, 300));
        const linkAt = Date.now();
        let r = await node1(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs]);
        expect(r.code, r.stderr).toBe(0);
        for (const argv of [
          ['sysctl', '-q', '-w', `net.ipv4.conf.${veth}.proxy_arp=1`, `net.ipv4.conf.${veth}.rp_filter=0`],
          ['ip', 'link', 'set', veth, 'up'],
          ['ip', 'route', 'add', `${IP.a}/32`, 'dev', veth],
        ]) {
          r = await node1(argv);
          expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
        }
        const routeAt = Date.now();
        // Poll the kernel (tc via nsenter takes ~10-30 ms per look on this machine).
        let attachedAt = 0;
        for (const deadline = routeAt + 5_000; Date.now() < deadline; ) {
          if ((await filterOn(veth)) > 0) {
            attachedAt = Date.now();
            break;
          }
        }
        const after = await index();
        expect(after).not.toBe(before);
        expect(attachedAt, `no filter on the recreated ${veth} within 5 s\n${agent.logTail()}`).toBeGreaterThan(0);
        figures.push(`round ${round}: attached ${attachedAt - routeAt} ms after the route, ${attachedAt - linkAt} ms after the link (ifindex ${after})`);
        expect(attachedAt - routeAt).toBeLessThan(REATTACH_BUDGET_MS);
        // The pod side, as the topology wires it.
        for (const argv of [
          ['ip', 'addr', 'add', `${IP.a}/32`, 'dev', 'eth0'],
          ['ip', 'link', 'set', 'eth0', 'up'],
          ['ip', 'route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0', 'onlink'],
          ['ip', 'neigh', 'replace', POD_GATEWAY, 'lladdr', await mac(), 'dev', 'eth0', 'nud', 'permanent'],
        ]) {
          r = await topo().exec('a', argv, { timeoutMs: 10_000, allowFailure: true });
          expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
        }
      }
      const logged = agent.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('capture: after a link change') && String(l.object).includes(`on ${veth} `));
      console.log(`veth re-attach:\n  ${figures.join('\n  ')}\n  agent: ${logged.map((l) => `${String(l.sinceEventMs)} ms after the first event`).join(', ')}`);
      expect(logged.length).toBeGreaterThanOrEqual(3);
      // a's new connection is captured: the agent proxies it (access log), and the echo works.
      const accessBefore = agent.accessLogs().length;
      expect(await echo(), agent.logTail()).toMatchObject({ ok: true });
      await eventually(() => expect(agent.accessLogs().length).toBeGreaterThan(accessBefore), { timeoutMs: 5_000, description: 'the access log has the connection' });
    } finally {
      await agent.stop(15_000);
    }
  }, 120_000);
});
