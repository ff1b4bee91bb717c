// The capture program on a real datapath: a "pod" namespace joined by a veth to a "node"
// namespace, the program on tc ingress of the node-side veth, policy routing for the capture
// mark (DESIGN §2), and transparent, marked listeners in the node namespace. Unlike
// BPF_PROG_TEST_RUN this proves bpf_sk_assign: a pod's connection to a foreign address lands
// on the agent's listener with the original destination as the accepted socket's local address.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BPF_MAP_NAMES,
  DEFAULT_CAPTURE_MARK,
  DEFAULT_LISTENER_MARK,
  POD_FLAG_ENROLLED,
  REASON,
  bpfObjectPath,
  encodeAddressKey,
  encodeLpmKey,
  encodeRodata,
} from '../../src/node-agent/capture/bpf-contract.js';
import { requireRoot } from '../helpers/privileged.js';
import { BpfTestEnv, sh, u32Hex, type NetnsRunner } from '../helpers/bpf-netns.js';

const guard = requireRoot('bpf datapath (veth + tc + sk_assign)', { tools: ['ip', 'nsenter', 'sysctl'] });

const NODE4 = '10.77.0.1';
const POD4 = '10.77.0.2';
const NODE6 = 'fd77::1';
const POD6 = 'fd77::2';
const REMOTE4 = '10.99.0.9';
const REMOTE6 = 'fd99::9';
const HANDLE = 0xa3e5;
const PRIORITY = 0x3a3;
const TABLE = '133';

interface Accepted {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

interface ClientResult {
  connected: boolean;
  echoed?: string;
  error?: string;
}

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
describe.skipIf(!guard.run)('capture on a veth with real traffic', () => {
  const env = new BpfTestEnv();
  let node: NetnsRunner;
  let pod: NetnsRunner;

  const key = (ip: string) => encodeAddressKey(ip).toString('hex');
  const enroll = (ip: string) => node.call('mapUpdate', { object: 'o', map: BPF_MAP_NAMES.pods, key: key(ip), value: u32Hex(POD_FLAG_ENROLLED) });
  const unenroll = (ip: string) => node.call('mapDelete', { object: 'o', map: BPF_MAP_NAMES.pods, key: key(ip) });
  const counters = () => node.call<Record<string, number>>('counters', { object: 'o', map: BPF_MAP_NAMES.reasons });
  const connect = (host: string, port: number, timeoutMs = 3000) =>
    pod.call<ClientResult>('clientConnect', { host, port, payload: `hello ${host}:${port}`, timeoutMs });
  const accepted = (name: string) => node.call<Accepted[]>('accepted', { name });

  async function moved(body: () => Promise<void>): Promise<Partial<Record<keyof typeof REASON, number>>> {
    const before = await counters();
    await body();
    const after = await counters();
    const out: Partial<Record<keyof typeof REASON, number>> = {};
    for (const [name, code] of Object.entries(REASON)) {
      const d = (after[code] ?? 0) - (before[code] ?? 0);
      if (d) out[name as keyof typeof REASON] = d;
    }
    return out;
  }

  beforeAll(async () => {
    const nodeNs = env.netns();
    const podNs = env.netns();
    const inNode = (...argv: string[]) => sh(['ip', '-n', nodeNs, ...argv]);
    const inPod = (...argv: string[]) => sh(['ip', '-n', podNs, ...argv]);
    inNode('link', 'add', 'vn', 'type', 'veth', 'peer', 'name', 'vp', 'netns', podNs);
    inNode('addr', 'add', `${NODE4}/24`, 'dev', 'vn');
    inNode('-6', 'addr', 'add', `${NODE6}/64`, 'dev', 'vn', 'nodad');
    inPod('addr', 'add', `${POD4}/24`, 'dev', 'vp');
    inPod('-6', 'addr', 'add', `${POD6}/64`, 'dev', 'vp', 'nodad');
    inNode('link', 'set', 'vn', 'up');
    inPod('link', 'set', 'vp', 'up');
    inPod('route', 'add', 'default', 'via', NODE4);
    inPod('-6', 'route', 'add', 'default', 'via', NODE6);
    // Policy routing for the capture mark (what src/node-agent/capture/routing.ts installs).
    const mark = `0x${DEFAULT_CAPTURE_MARK.toString(16)}/0xfff`;
    inNode('rule', 'add', 'fwmark', mark, 'lookup', TABLE);
    inNode('route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', TABLE);
    inNode('-6', 'rule', 'add', 'fwmark', mark, 'lookup', TABLE);
    inNode('-6', 'route', 'add', 'local', '::/0', 'dev', 'lo', 'table', TABLE);
    for (const k of ['all', 'default', 'vn']) sh(['nsenter', `--net=/run/netns/${nodeNs}`, 'sysctl', '-qw', `net.ipv4.conf.${k}.rp_filter=0`]);

    node = await env.runner(nodeNs);
    pod = await env.runner(podNs);
    const rodata = encodeRodata({ captureMark: DEFAULT_CAPTURE_MARK, listenerMark: DEFAULT_LISTENER_MARK, outboundPort: 15001, inboundPlaintextPort: 15006, hbonePort: 15008, failOpen: false });
    await node.call('load', { name: 'o', path: bpfObjectPath(), pinRoot: env.pinRoot(), rodata: Object.fromEntries(Object.entries(rodata).map(([k, v]) => [k, v.toString('hex')])) });
    const ifindex = await node.call<number>('ifindex', { name: 'vn' });
    expect(await node.call('tcAttach', { object: 'o', ifindex, handle: HANDLE, priority: PRIORITY })).toBe(true);

    for (const [name, family, address, port] of [
      ['out4', 4, '127.0.0.1', 15001],
      ['out6', 6, '::1', 15001],
      ['plain4', 4, '127.0.0.1', 15006],
      ['hbone4', 4, '127.0.0.1', 15008],
      ['hbone6', 6, '::1', 15008],
    ] as const) {
      const r = await node.call<{ mark: number }>('listen', { name, family, address, port, mark: DEFAULT_LISTENER_MARK, serve: true });
      expect(r.mark).toBe(DEFAULT_LISTENER_MARK);
    }
    // An ordinary service of the node itself, reachable without capture.
    await node.call('listen', { name: 'nodesvc', family: 4, address: NODE4, port: 9000, mark: 0, serve: true });
  });

  afterAll(async () => {
    await env.cleanup();
  });

  it('an enrolled pod’s IPv4 connection to a foreign address lands on the outbound listener', async () => {
    await enroll(POD4);
    const counted = await moved(async () => {
      const r = await connect(REMOTE4, 80);
      expect(r).toMatchObject({ connected: true, echoed: `hello ${REMOTE4}:80` });
    });
    const conns = await accepted('out4');
    expect(conns).toHaveLength(1);
    // The accepted socket's local address is the original destination; the peer is the pod.
    expect(conns[0]).toMatchObject({ localAddress: REMOTE4, localPort: 80, remoteAddress: POD4 });
    expect(counted.REDIRECT_OUTBOUND).toBe(1);
    // Every later segment of the flow takes the established fast path.
    expect(counted.ASSIGN_ESTABLISHED).toBeGreaterThanOrEqual(2);
    expect(counted.DROP_NO_LISTENER ?? 0).toBe(0);
  });

  it('the same over IPv6', async () => {
    await enroll(POD6);
    const counted = await moved(async () => {
      expect(await connect(REMOTE6, 443)).toMatchObject({ connected: true, echoed: `hello ${REMOTE6}:443` });
    });
    expect(await accepted('out6')).toEqual([expect.objectContaining({ localAddress: REMOTE6, localPort: 443, remoteAddress: POD6 })]);
    expect(counted.REDIRECT_OUTBOUND).toBe(1);
  });

  it('an exempt destination (the node’s own address) is not captured', async () => {
    await node.call('mapUpdate', { object: 'o', map: BPF_MAP_NAMES.exempt, key: encodeLpmKey(`${NODE4}/32`).toString('hex'), value: u32Hex(1) });
    const counted = await moved(async () => {
      expect(await connect(NODE4, 9000)).toMatchObject({ connected: true });
    });
    expect(await accepted('nodesvc')).toEqual([expect.objectContaining({ localAddress: NODE4, localPort: 9000, remoteAddress: POD4 })]);
    expect(counted.PASS_EXEMPT).toBe(1);
    expect(counted.REDIRECT_OUTBOUND ?? 0).toBe(0);
    await node.call('mapDelete', { object: 'o', map: BPF_MAP_NAMES.exempt, key: encodeLpmKey(`${NODE4}/32`).toString('hex') });
  });

  it('connections to an enrolled destination go to HBONE (15008) or inbound plaintext (15006)', async () => {
    await unenroll(POD4);
    await enroll(REMOTE4);
    const counted = await moved(async () => {
      expect(await connect(REMOTE4, 15008)).toMatchObject({ connected: true });
      expect(await connect(REMOTE4, 8080)).toMatchObject({ connected: true });
    });
    expect(await accepted('hbone4')).toEqual([expect.objectContaining({ localAddress: REMOTE4, localPort: 15008, remoteAddress: POD4 })]);
    expect(await accepted('plain4')).toEqual([expect.objectContaining({ localAddress: REMOTE4, localPort: 8080, remoteAddress: POD4 })]);
    expect(counted).toMatchObject({ REDIRECT_INBOUND_HBONE: 1, REDIRECT_INBOUND_PLAINTEXT: 1 });
    await unenroll(REMOTE4);
  });

  it('an unenrolled pod is not captured', async () => {
    const counted = await moved(async () => {
      expect(await connect(NODE4, 9000)).toMatchObject({ connected: true });
    });
    expect(counted.PASS_NOT_ENROLLED).toBe(1);
    expect(await accepted('nodesvc')).toHaveLength(2);
  });

  it('fails closed: without the listener an enrolled pod’s SYN is dropped', async () => {
    await enroll(POD4);
    await node.call('unlisten', { name: 'out4' });
    const counted = await moved(async () => {
      expect(await connect(REMOTE4, 80, 1500)).toEqual({ connected: false, error: 'ETIMEDOUT' });
    });
    expect(counted.DROP_NO_LISTENER).toBeGreaterThanOrEqual(1);
    expect(counted.REDIRECT_OUTBOUND ?? 0).toBe(0);
  });

  it('fails closed: an impostor listener without the agent’s SO_MARK gets nothing', async () => {
    await node.call('listen', { name: 'impostor', family: 4, address: '127.0.0.1', port: 15001, mark: 0, serve: true });
    const counted = await moved(async () => {
      expect(await connect(REMOTE4, 80, 1500)).toEqual({ connected: false, error: 'ETIMEDOUT' });
    });
    expect(await accepted('impostor')).toEqual([]);
    expect(counted.DROP_LISTENER_MARK).toBeGreaterThanOrEqual(1);
  });
});
