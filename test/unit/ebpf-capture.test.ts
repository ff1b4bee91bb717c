import { describe, expect, it } from 'vitest';
import { BPF_LOAD_ATTEMPTS, EbpfCapture, loadRetryingEagain, TC_HANDLE, TC_PRIORITY } from '../../src/node-agent/capture/ebpf-capture.js';
import { BPF_MAP_NAMES, decodeAddressKey, listenerKey } from '../../src/node-agent/capture/bpf-contract.js';
import { createFakeNativeBinding, type FakeNativeBinding } from '../../src/native/fake.js';
import type { CommandRunner } from '../../src/os/command.js';
import type { CaptureTargets } from '../../src/node-agent/capture/capture-backend.js';
import { silentLogger } from '../../src/telemetry/logger.js';

/** What uninstall did with clsact qdiscs, and filters of other tools it must leave alone. */
interface TcLog {
  /** Interface → filter lines another tool has on it (what `tc filter show` prints). */
  foreignFilters: Map<string, string>;
  qdiscsDeleted: string[];
}

/** `ip -j -d link show` answered from the fake's interface table; `tc` from `tc`. */
function fakeIp(native: FakeNativeBinding, tc: TcLog = { foreignFilters: new Map(), qdiscsDeleted: [] }): CommandRunner {
  return {
    async run(command, args) {
      if (command === 'ip' && args.join(' ') === '-j -d link show') {
        const links = [...native.state.interfaces].map(([ifname, ifindex]) => ({ ifname, ifindex }));
        return { stdout: JSON.stringify(links), stderr: '', code: 0 };
      }
      if (command === 'tc' && args[0] === 'filter' && args[1] === 'show' && args[2] === 'dev' && args[3]) {
        return { stdout: args[4] === 'ingress' ? (tc.foreignFilters.get(args[3]) ?? '') : '', stderr: '', code: 0 };
      }
      if (command === 'tc' && args.join(' ') === `qdisc del dev ${args[3]} clsact`) {
        tc.qdiscsDeleted.push(args[3]!);
        return { stdout: '', stderr: '', code: 0 };
      }
      throw new Error(`unexpected command ${command} ${args.join(' ')}`);
    },
  };
}

/** Records what the post-DNAT backend was asked to do, and when (relative to the pod map). */
interface ServiceDnatLog {
  applied: Array<{ targets: CaptureTargets; podsAtThatTime: string[] }>;
  uninstalled: number;
  fail?: Error;
}

function load(native: FakeNativeBinding, pinRoot = '/sys/fs/bpf/amesh/v1/node1', log: ServiceDnatLog = { applied: [], uninstalled: 0 }, tc?: TcLog): EbpfCapture {
  return EbpfCapture.load({
    serviceDnat: {
      async apply(targets) {
        if (log.fail) throw log.fail;
        log.applied.push({ targets, podsAtThatTime: pinRoot === '/sys/fs/bpf/amesh/v1/node1' ? enrolled(native) : [] });
      },
      async uninstall() {
        log.uninstalled++;
      },
    },
    native,
    commands: fakeIp(native, tc),
    logger: silentLogger,
    objectPath: '/x/capture.bpf.o',
    pinRoot,
    captureMark: 0x111,
    listenerMark: 0x539,
    failOpen: false,
    ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 },
  });
}

const enrolled = (native: FakeNativeBinding): string[] =>
  [...(native.pinnedMap('/sys/fs/bpf/amesh/v1/node1', BPF_MAP_NAMES.pods)?.entries.keys() ?? [])].map((k) => decodeAddressKey(Buffer.from(k, 'hex'))).sort();
const filtered = (native: FakeNativeBinding): number[] => [...native.state.filters.values()].map((f) => f.ifindex).sort();

describe('EbpfCapture.apply', () => {
  it('attaches to every wanted interface with the fixed handle and fills the maps', async () => {
    const native = createFakeNativeBinding();
    const up = native.addInterface('up0');
    const veth = native.addInterface('vp-a');
    const capture = load(native);
    await capture.apply({ enrolledIps: ['10.244.1.2', 'fd00::2'], interfaces: ['up0', 'vp-a'], exemptCidrs: ['10.250.0.1/32'] });
    expect(filtered(native)).toEqual([up, veth].sort());
    expect([...native.state.filters.values()].every((f) => f.handle === TC_HANDLE && f.priority === TC_PRIORITY)).toBe(true);
    expect(enrolled(native)).toEqual(['10.244.1.2', 'fd00::2']);
    expect(native.pinnedMap('/sys/fs/bpf/amesh/v1/node1', BPF_MAP_NAMES.exempt)?.entries.size).toBe(1);
    expect(capture.status()).toMatchObject({ mode: 'ebpf', interfaces: ['up0', 'vp-a'], enrolled: 2 });
  });

  it('captures the same pods behind a Service DNAT: the post-DNAT rules get the same targets, after the pod map', async () => {
    const native = createFakeNativeBinding();
    native.addInterface('up0');
    const log: ServiceDnatLog = { applied: [], uninstalled: 0 };
    const capture = load(native, undefined, log);
    const targets = { enrolledIps: ['10.244.1.2'], interfaces: ['up0'], exemptCidrs: [] };
    await capture.apply(targets);
    expect(log.applied).toEqual([{ targets, podsAtThatTime: ['10.244.1.2'] }]);
    log.fail = new Error('nft: No such file or directory');
    await expect(capture.apply(targets)).rejects.toMatchObject({ code: 'AMESH_CAPTURE_FAILED', message: expect.stringMatching(/Service \(DNAT\)/) });
    // the direct path stays captured even when the nftables half cannot be installed
    expect(enrolled(native)).toEqual(['10.244.1.2']);
  });

  it('reconciles after a restart: stale pods and interfaces of the previous run are removed', async () => {
    const native = createFakeNativeBinding();
    native.addInterface('up0');
    const gone = native.addInterface('vp-gone');
    const first = load(native);
    await first.apply({ enrolledIps: ['10.244.1.2', '10.244.1.3'], interfaces: ['up0', 'vp-gone'], exemptCidrs: [] });
    await first.close();
    // the pinned map survives close: enrolment outlives the agent process
    expect(enrolled(native)).toEqual(['10.244.1.2', '10.244.1.3']);

    const second = load(native);
    await second.apply({ enrolledIps: ['10.244.1.3'], interfaces: ['up0'], exemptCidrs: [] });
    expect(enrolled(native)).toEqual(['10.244.1.3']);
    expect(filtered(native)).not.toContain(gone);
  });

  it('skips an interface that vanished; uninstall detaches every filter', async () => {
    const native = createFakeNativeBinding();
    native.addInterface('up0');
    const veth = native.addInterface('vp-a');
    const log: ServiceDnatLog = { applied: [], uninstalled: 0 };
    const capture = load(native, '/tmp/amesh-unit-test-no-such-pin-root', log);
    await capture.apply({ enrolledIps: ['10.244.1.2'], interfaces: ['up0', 'vp-a', 'vp-missing'], exemptCidrs: [] });
    expect(capture.status().interfaces).toEqual(['up0', 'vp-a']);
    expect(filtered(native)).toContain(veth);
    await capture.uninstall();
    expect(native.state.filters.size).toBe(0);
    expect(log.uninstalled).toBe(1);
    expect(native.state.objects.size).toBe(0);
  });

  it('uninstall removes the clsact qdisc it attached to, unless another tool still has filters there', async () => {
    const native = createFakeNativeBinding();
    native.addInterface('up0');
    native.addInterface('vp-a');
    native.addInterface('lo-untouched');
    const tc: TcLog = { foreignFilters: new Map([['vp-a', 'filter protocol all pref 1 bpf chip 1 handle 0x1 cilium_from_container']]), qdiscsDeleted: [] };
    const capture = load(native, '/tmp/amesh-unit-test-no-such-pin-root', undefined, tc);
    await capture.apply({ enrolledIps: ['10.244.1.2'], interfaces: ['up0', 'vp-a'], exemptCidrs: [] });
    await capture.uninstall();
    expect(native.state.filters.size).toBe(0);
    // up0: only our filter was there → clsact goes; vp-a: a foreign filter remains → kept; an interface we never attached to is not looked at.
    expect(tc.qdiscsDeleted).toEqual(['up0']);
  });
});

describe('EbpfCapture.useListeners (TIME_WAIT hand-over)', () => {
  const listenersMap = (native: FakeNativeBinding) => {
    const entry = [...native.state.fds.values()].find((e) => e.kind === 'map' && e.map.name === BPF_MAP_NAMES.listeners);
    if (entry?.kind !== 'map') throw new Error('no listeners map open');
    return entry.map;
  };
  const links = (native: FakeNativeBinding): number => [...native.state.fds.values()].filter((e) => e.kind === 'link').length;

  it('keys each listener by kind and family, attaches the sk_lookup program once, and detaches it on close', async () => {
    const native = createFakeNativeBinding();
    const capture = load(native);
    capture.useListeners([
      { kind: 'outbound', family: 4, fd: 31 },
      { kind: 'inbound-plaintext', family: 4, fd: 32 },
      { kind: 'hbone', family: 6, fd: 33 },
    ]);
    const entries = [...listenersMap(native).entries].map(([k, v]) => [Buffer.from(k, 'hex').readUInt32LE(0), Number(v.readBigUInt64LE(0))]);
    expect(entries.sort((a, b) => a[0]! - b[0]!)).toEqual([
      [listenerKey('outbound', 4), 31],
      [listenerKey('inbound-plaintext', 4), 32],
      [listenerKey('hbone', 6), 33],
    ]);
    expect(links(native)).toBe(1);
    capture.useListeners([{ kind: 'outbound', family: 4, fd: 41 }]);
    expect(links(native)).toBe(1);
    expect(listenersMap(native).entries.get(Buffer.from([0, 0, 0, 0]).toString('hex'))?.readBigUInt64LE(0)).toBe(41n);
    await capture.close();
    expect(links(native)).toBe(0);
  });

  it('keeps capturing when the kernel refuses the attach (the hand-over is an optimisation)', async () => {
    const native = createFakeNativeBinding();
    const capture = load(native);
    native.failNext('netnsAttachSkLookup', 'EINVAL');
    expect(() => capture.useListeners([{ kind: 'outbound', family: 4, fd: 31 }])).not.toThrow();
    expect(links(native)).toBe(0);
    await capture.apply({ interfaces: ['up0'], enrolledIps: ['10.244.1.2'], exemptCidrs: [] });
    expect(enrolled(native)).toEqual(['10.244.1.2']);
    capture.useListeners([{ kind: 'outbound', family: 4, fd: 31 }]);
    expect(links(native)).toBe(1);
  });
});

describe('loadRetryingEagain', () => {
  const coded = (code: string): Error => Object.assign(new Error(`bpf_object__load: ${code}`), { code });

  it('retries a load the verifier gave up on with EAGAIN (a signal during verification)', () => {
    let calls = 0;
    const value = loadRetryingEagain(() => {
      calls++;
      if (calls < 3) throw coded('EAGAIN');
      return 'loaded';
    });
    expect(value).toBe('loaded');
    expect(calls).toBe(3);
  });

  it('gives up after BPF_LOAD_ATTEMPTS EAGAINs with the last error', () => {
    let calls = 0;
    expect(() =>
      loadRetryingEagain(() => {
        calls++;
        throw coded('EAGAIN');
      }),
    ).toThrow(/EAGAIN/);
    expect(calls).toBe(BPF_LOAD_ATTEMPTS);
  });

  it('does not retry any other failure', () => {
    let calls = 0;
    expect(() =>
      loadRetryingEagain(() => {
        calls++;
        throw coded('EPERM');
      }),
    ).toThrow(/EPERM/);
    expect(calls).toBe(1);
  });
});
