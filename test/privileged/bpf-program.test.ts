// The capture program's decisions, run in the kernel with BPF_PROG_TEST_RUN inside a fresh
// network namespace (so its socket lookups see only the listeners this test makes).
//
// What BPF_PROG_TEST_RUN cannot show: a successful bpf_sk_assign. Test-run skbs are not at tc
// ingress, so the kernel refuses the assignment and a would-be redirect is counted as
// DROP_ASSIGN_FAILED — which still proves the program chose the right listener (found, in
// LISTEN, with our SO_MARK). test/privileged/bpf-datapath.test.ts proves the assignment with
// real traffic through a veth.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BPF_MAP_NAMES,
  DEFAULT_CAPTURE_MARK,
  DEFAULT_LISTENER_MARK,
  POD_FLAG_ENROLLED,
  REASON,
  bpfObjectPath,
  encodeAddressKey,
  encodeFlowKey,
  encodeLpmKey,
  encodeRodata,
} from '../../src/node-agent/capture/bpf-contract.js';
import { requireRoot } from '../helpers/privileged.js';
import { BpfTestEnv, TCP_FLAGS, arpFrame, frame, u32Hex, type NetnsRunner, type SegmentSpec } from '../helpers/bpf-netns.js';

const guard = requireRoot('bpf program (BPF_PROG_TEST_RUN)', { tools: ['ip', 'nsenter'] });

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const PORTS = { outboundPort: 15001, inboundPlaintextPort: 15006, hbonePort: 15008 };

const SRC_POD4 = '10.0.0.5';
const DST_POD4 = '10.0.1.9';
const OTHER4 = '10.0.2.7';
const EXEMPT4 = '10.0.9.1';
const SRC_POD6 = 'fd00::5';
const DST_POD6 = 'fd00:1::9';
const OTHER6 = 'fd00:2::7';
const EXEMPT6 = 'fd00:9::1';

type Reasons = Partial<Record<keyof typeof REASON, number>>;

interface Decision {
  retval: number;
  mark: number;
  /** Counters that moved during this one run, by reason name. */
  counted: Reasons;
}

function rodataHex(failOpen: boolean): Record<string, string> {
  const r = encodeRodata({ captureMark: DEFAULT_CAPTURE_MARK, listenerMark: DEFAULT_LISTENER_MARK, ...PORTS, failOpen });
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.toString('hex')]));
}

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
describe.skipIf(!guard.run)('capture program decisions (BPF_PROG_TEST_RUN in a fresh netns)', () => {
  const env = new BpfTestEnv();
  let runner: NetnsRunner;

  async function counters(object: string): Promise<Record<string, number>> {
    return runner.call('counters', { object, map: BPF_MAP_NAMES.reasons });
  }

  async function decide(spec: SegmentSpec | Buffer, object = 'closed'): Promise<Decision> {
    const packet = Buffer.isBuffer(spec) ? spec : frame(spec);
    const before = await counters(object);
    const r = await runner.call<{ retval: number; mark: number }>('run', { object, packet: packet.toString('hex') });
    const after = await counters(object);
    const counted: Reasons = {};
    for (const [name, code] of Object.entries(REASON)) {
      const delta = (after[code] ?? 0) - (before[code] ?? 0);
      if (delta) counted[name as keyof typeof REASON] = delta;
    }
    return { retval: r.retval, mark: r.mark, counted };
  }

  async function withListeners<T>(specs: Array<{ family: 4 | 6; port: number; mark: number }>, body: () => Promise<T>): Promise<T> {
    const names: string[] = [];
    try {
      for (const s of specs) {
        const name = `l${s.family}-${s.port}-${names.length}`;
        await runner.call('listen', { name, family: s.family, address: s.family === 6 ? '::1' : '127.0.0.1', port: s.port, mark: s.mark });
        names.push(name);
      }
      return await body();
    } finally {
      for (const name of names) await runner.call('unlisten', { name });
    }
  }

  beforeAll(async () => {
    const ns = env.netns();
    runner = await env.runner(ns);
    for (const [name, failOpen] of [['closed', false], ['open', true]] as const) {
      await runner.call('load', { name, path: bpfObjectPath(), pinRoot: env.pinRoot(), rodata: rodataHex(failOpen) });
      for (const ip of [SRC_POD4, DST_POD4, SRC_POD6, DST_POD6]) {
        await runner.call('mapUpdate', { object: name, map: BPF_MAP_NAMES.pods, key: encodeAddressKey(ip).toString('hex'), value: u32Hex(POD_FLAG_ENROLLED) });
      }
      // Present but not enrolled (flags 0): must not capture.
      await runner.call('mapUpdate', { object: name, map: BPF_MAP_NAMES.pods, key: encodeAddressKey(OTHER4).toString('hex'), value: u32Hex(0) });
      for (const cidr of ['10.0.9.0/24', 'fd00:9::/64']) {
        await runner.call('mapUpdate', { object: name, map: BPF_MAP_NAMES.exempt, key: encodeLpmKey(cidr).toString('hex'), value: u32Hex(1) });
      }
    }
  });

  afterAll(async () => {
    await env.cleanup();
  });

  describe('packets that are not captured pass untouched', () => {
    it('ARP → PASS_NOT_IP', async () => {
      expect(await decide(arpFrame(SRC_POD4, DST_POD4))).toEqual({ retval: TC_ACT_OK, mark: 0, counted: { PASS_NOT_IP: 1 } });
    });

    it.each([
      ['IPv4', SRC_POD4, DST_POD4],
      ['IPv6', SRC_POD6, DST_POD6],
    ])('%s UDP from an enrolled pod → PASS_NOT_TCP', async (_f, src, dst) => {
      expect(await decide({ src, dst, dport: 53, protocol: 'udp' })).toEqual({ retval: TC_ACT_OK, mark: 0, counted: { PASS_NOT_TCP: 1 } });
    });

    it.each([
      ['IPv4', SRC_POD4, DST_POD4],
      ['IPv6', SRC_POD6, DST_POD6],
    ])('%s non-SYN segments of an unknown flow → PASS_NOT_SYN', async (_f, src, dst) => {
      for (const flags of [TCP_FLAGS.ACK, TCP_FLAGS.ACK | TCP_FLAGS.PSH, TCP_FLAGS.SYN | TCP_FLAGS.ACK, TCP_FLAGS.RST]) {
        expect(await decide({ src, dst, dport: 80, flags })).toEqual({ retval: TC_ACT_OK, mark: 0, counted: { PASS_NOT_SYN: 1 } });
      }
    });

    it.each([
      ['IPv4', OTHER4, '10.0.3.3'],
      ['IPv4 (in the map, not enrolled)', OTHER4, OTHER4],
      ['IPv6', OTHER6, 'fd00:3::3'],
    ])('%s SYN between unenrolled addresses → PASS_NOT_ENROLLED', async (_f, src, dst) => {
      expect(await decide({ src, dst, dport: 80 })).toEqual({ retval: TC_ACT_OK, mark: 0, counted: { PASS_NOT_ENROLLED: 1 } });
    });

    it.each([
      ['IPv4', SRC_POD4, EXEMPT4],
      ['IPv6', SRC_POD6, EXEMPT6],
    ])('%s SYN from an enrolled pod to an exempt destination → PASS_EXEMPT', async (_f, src, dst) => {
      // Even with a listener ready: exemption wins.
      await withListeners([{ family: src.includes(':') ? 6 : 4, port: PORTS.outboundPort, mark: DEFAULT_LISTENER_MARK }], async () => {
        expect(await decide({ src, dst, dport: 443 })).toEqual({ retval: TC_ACT_OK, mark: 0, counted: { PASS_EXEMPT: 1 } });
      });
    });

    it('a truncated TCP header → PASS_MALFORMED', async () => {
      const packet = frame({ src: SRC_POD4, dst: DST_POD4, dport: 80 }).subarray(0, 14 + 20 + 8);
      expect(await decide(packet)).toEqual({ retval: TC_ACT_OK, mark: 0, counted: { PASS_MALFORMED: 1 } });
    });
  });

  describe('fail closed without a trustworthy listener', () => {
    it.each([
      ['IPv4', SRC_POD4, OTHER4],
      ['IPv6', SRC_POD6, OTHER6],
    ])('%s enrolled source SYN with no listener → TC_ACT_SHOT, DROP_NO_LISTENER', async (_f, src, dst) => {
      expect(await decide({ src, dst, dport: 80 })).toEqual({ retval: TC_ACT_SHOT, mark: 0, counted: { DROP_NO_LISTENER: 1 } });
    });

    it('a listener on the right port without our SO_MARK → TC_ACT_SHOT, DROP_LISTENER_MARK', async () => {
      await withListeners([{ family: 4, port: PORTS.outboundPort, mark: 0x1 }], async () => {
        expect(await decide({ src: SRC_POD4, dst: OTHER4, dport: 80 })).toEqual({ retval: TC_ACT_SHOT, mark: 0, counted: { DROP_LISTENER_MARK: 1 } });
      });
      await withListeners([{ family: 6, port: PORTS.outboundPort, mark: 0 }], async () => {
        expect(await decide({ src: SRC_POD6, dst: OTHER6, dport: 80 })).toEqual({ retval: TC_ACT_SHOT, mark: 0, counted: { DROP_LISTENER_MARK: 1 } });
      });
    });

    it('an inbound SYN to an enrolled pod with no listener is dropped too', async () => {
      expect(await decide({ src: OTHER4, dst: DST_POD4, dport: 8080 })).toEqual({ retval: TC_ACT_SHOT, mark: 0, counted: { DROP_NO_LISTENER: 1 } });
      expect(await decide({ src: OTHER6, dst: DST_POD6, dport: 15008 })).toEqual({ retval: TC_ACT_SHOT, mark: 0, counted: { DROP_NO_LISTENER: 1 } });
    });

    it('with fail_open loaded, the same drops pass and count PASS_FAIL_OPEN as well', async () => {
      expect(await decide({ src: SRC_POD4, dst: OTHER4, dport: 80 }, 'open')).toEqual({
        retval: TC_ACT_OK,
        mark: 0,
        counted: { DROP_NO_LISTENER: 1, PASS_FAIL_OPEN: 1 },
      });
      await withListeners([{ family: 4, port: PORTS.outboundPort, mark: 0x2 }], async () => {
        expect(await decide({ src: SRC_POD4, dst: OTHER4, dport: 80 }, 'open')).toEqual({
          retval: TC_ACT_OK,
          mark: 0,
          counted: { DROP_LISTENER_MARK: 1, PASS_FAIL_OPEN: 1 },
        });
      });
    });
  });

  describe('listener selection (assignment itself is refused under test-run; see the file comment)', () => {
    // Only the expected port has a marked listener, so choosing any other port would count
    // DROP_NO_LISTENER instead of reaching the assignment.
    it.each([
      ['IPv4 enrolled source → outbound 15001', 4, { src: SRC_POD4, dst: OTHER4, dport: 80 }, PORTS.outboundPort],
      ['IPv6 enrolled source → outbound 15001', 6, { src: SRC_POD6, dst: OTHER6, dport: 80 }, PORTS.outboundPort],
      ['IPv4 enrolled source to an enrolled pod → outbound wins', 4, { src: SRC_POD4, dst: DST_POD4, dport: 15008 }, PORTS.outboundPort],
      ['IPv4 enrolled destination, dport 15008 → HBONE 15008', 4, { src: OTHER4, dst: DST_POD4, dport: 15008 }, PORTS.hbonePort],
      ['IPv6 enrolled destination, dport 15008 → HBONE 15008', 6, { src: OTHER6, dst: DST_POD6, dport: 15008 }, PORTS.hbonePort],
      ['IPv4 enrolled destination, dport 8080 → plaintext 15006', 4, { src: OTHER4, dst: DST_POD4, dport: 8080 }, PORTS.inboundPlaintextPort],
      ['IPv6 enrolled destination, dport 80 → plaintext 15006', 6, { src: OTHER6, dst: DST_POD6, dport: 80 }, PORTS.inboundPlaintextPort],
    ] as const)('%s', async (_name, family, spec, port) => {
      await withListeners([{ family, port, mark: DEFAULT_LISTENER_MARK }], async () => {
        expect(await decide(spec)).toEqual({ retval: TC_ACT_SHOT, mark: 0, counted: { DROP_ASSIGN_FAILED: 1 } });
      });
      // And without that listener the same SYN finds none: the selection above was not luck.
      expect((await decide(spec)).counted).toEqual({ DROP_NO_LISTENER: 1 });
    });
  });

  describe('established flows', () => {
    it.each([4, 6] as const)('IPv%d segment of a flow with a local socket → ASSIGN_ESTABLISHED and the capture mark', async (family) => {
      const { clientPort, serverPort } = await runner.call<{ clientPort: number; serverPort: number }>('tcpPair', { family });
      const lo = family === 6 ? '::1' : '127.0.0.1';
      const decision = await decide({ src: lo, dst: lo, sport: clientPort, dport: serverPort, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH });
      expect(decision).toEqual({ retval: TC_ACT_OK, mark: DEFAULT_CAPTURE_MARK, counted: { ASSIGN_ESTABLISHED: 1 } });
      // The reverse direction's tuple is the client's socket: also established.
      expect((await decide({ src: lo, dst: lo, sport: serverPort, dport: clientPort, flags: TCP_FLAGS.ACK })).counted).toEqual({ ASSIGN_ESTABLISHED: 1 });
    });

    it('a SYN to a plain local listener is not "established" (LISTEN is skipped)', async () => {
      await withListeners([{ family: 4, port: 18080, mark: 0 }], async () => {
        expect(await decide({ src: OTHER4, dst: '127.0.0.1', dport: 18080 })).toEqual({ retval: TC_ACT_OK, mark: 0, counted: { PASS_NOT_ENROLLED: 1 } });
      });
    });
  });

  describe('flows set up through a socket here (amesh_flows)', () => {
    const flowKey = (src: string, sport: number, dst: string, dport: number): string => encodeFlowKey({ ip: src, port: sport }, { ip: dst, port: dport }).toString('hex');
    const remembered = (key: string): Promise<string | null> => runner.call<string | null>('mapLookup', { object: 'closed', map: BPF_MAP_NAMES.flows, key });
    const remember = (key: string): Promise<unknown> => runner.call('mapUpdate', { object: 'closed', map: BPF_MAP_NAMES.flows, key, value: u32Hex(REASON.REDIRECT_OUTBOUND) });

    it.each([
      ['IPv4', SRC_POD4, DST_POD4],
      ['IPv6', SRC_POD6, DST_POD6],
    ])('%s: a later segment of a remembered flow whose socket is gone is marked for the local stack, never forwarded', async (_f, src, dst) => {
      const key = flowKey(src, 41000, dst, 80);
      await remember(key);
      for (const flags of [TCP_FLAGS.ACK | TCP_FLAGS.PSH, TCP_FLAGS.ACK, TCP_FLAGS.FIN | TCP_FLAGS.ACK, TCP_FLAGS.RST]) {
        expect(await decide({ src, dst, sport: 41000, dport: 80, flags })).toEqual({ retval: TC_ACT_OK, mark: DEFAULT_CAPTURE_MARK, counted: { ASSIGN_ESTABLISHED: 1 } });
      }
      // The other direction and another client port are other flows: they pass.
      expect((await decide({ src: dst, dst: src, sport: 80, dport: 41000, flags: TCP_FLAGS.ACK })).counted).toEqual({ PASS_NOT_SYN: 1 });
      expect((await decide({ src, dst, sport: 41001, dport: 80, flags: TCP_FLAGS.ACK })).counted).toEqual({ PASS_NOT_SYN: 1 });
      expect(await remembered(key)).not.toBeNull();
    });

    it('a SYN that starts a flow which is not ours forgets the tuple (uncaptured, dropped, or a SYN-ACK nothing here owns)', async () => {
      const cases: Array<[string, SegmentSpec, keyof typeof REASON]> = [
        ['SYN between unenrolled addresses', { src: OTHER4, dst: '10.0.3.3', sport: 41002, dport: 80 }, 'PASS_NOT_ENROLLED'],
        ['SYN to an exempt destination', { src: SRC_POD4, dst: EXEMPT4, sport: 41003, dport: 80 }, 'PASS_EXEMPT'],
        ['captured SYN without a listener', { src: SRC_POD4, dst: DST_POD4, sport: 41004, dport: 80 }, 'DROP_NO_LISTENER'],
        ['SYN-ACK without a socket', { src: DST_POD4, dst: SRC_POD4, sport: 80, dport: 41005, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK }, 'PASS_NOT_SYN'],
      ];
      for (const [what, spec, reason] of cases) {
        const key = flowKey(spec.src, spec.sport ?? 40000, spec.dst, spec.dport);
        await remember(key);
        expect((await decide(spec)).counted, what).toEqual({ [reason]: 1 });
        expect(await remembered(key), `${what}: forgotten`).toBeNull();
        // A late segment on that tuple now belongs to the new flow: it passes.
        expect((await decide({ ...spec, flags: TCP_FLAGS.ACK })).counted, `${what}: then an ACK`).toEqual({ PASS_NOT_SYN: 1 });
      }
    });

    it.each([4, 6] as const)('IPv%d SYN-ACK, data and FIN to a local socket are remembered', async (family) => {
      const { clientPort, serverPort } = await runner.call<{ clientPort: number; serverPort: number }>('tcpPair', { family });
      const lo = family === 6 ? '::1' : '127.0.0.1';
      const key = flowKey(lo, serverPort, lo, clientPort);
      expect(await remembered(key)).toBeNull();
      expect((await decide({ src: lo, dst: lo, sport: serverPort, dport: clientPort, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK })).counted).toEqual({ ASSIGN_ESTABLISHED: 1 });
      expect(await remembered(key), 'the SYN-ACK direction of the flow').toBe(u32Hex(REASON.ASSIGN_ESTABLISHED));
      // A bare ACK to an owned socket records nothing; data (PSH) or a FIN does, and keeps it.
      const other = flowKey(lo, clientPort, lo, serverPort);
      expect((await decide({ src: lo, dst: lo, sport: clientPort, dport: serverPort, flags: TCP_FLAGS.ACK })).counted).toEqual({ ASSIGN_ESTABLISHED: 1 });
      expect(await remembered(other)).toBeNull();
      expect((await decide({ src: lo, dst: lo, sport: clientPort, dport: serverPort, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH })).counted).toEqual({ ASSIGN_ESTABLISHED: 1 });
      expect(await remembered(other), 'a flow sending data').toBe(u32Hex(REASON.ASSIGN_ESTABLISHED));
      await runner.call('mapDelete', { object: 'closed', map: BPF_MAP_NAMES.flows, key: other });
      expect((await decide({ src: lo, dst: lo, sport: clientPort, dport: serverPort, flags: TCP_FLAGS.ACK | TCP_FLAGS.FIN })).counted).toEqual({ ASSIGN_ESTABLISHED: 1 });
      expect(await remembered(other), 'a flow closing').toBe(u32Hex(REASON.ASSIGN_ESTABLISHED));
    });
  });

  it('repeat runs count every run', async () => {
    const before = await counters('closed');
    await runner.call('run', { object: 'closed', packet: frame({ src: OTHER4, dst: '10.0.3.3', dport: 80 }).toString('hex'), repeat: 5 });
    const after = await counters('closed');
    expect((after[REASON.PASS_NOT_ENROLLED] ?? 0) - (before[REASON.PASS_NOT_ENROLLED] ?? 0)).toBe(5);
  });
});
