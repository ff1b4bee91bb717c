// The TIME_WAIT hand-over program (amesh_tw_syn, BPF_PROG_TYPE_SK_LOOKUP) run in the kernel with
// BPF_PROG_TEST_RUN inside a fresh network namespace: for a tuple the capture program remembered
// in amesh_flows, it must select the listener of that flow's kind and family from the sockmap
// amesh_listeners, and leave every other lookup alone. The kernel reports the selected socket
// as its SO_COOKIE in the context it hands back (0: none), so each case compares cookies.
//
// test/privileged/capture-time-wait-reuse.test.ts shows the program's effect end to end (no SYN
// retransmissions when a client reuses a port the agent holds in TIME_WAIT).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BPF_MAP_NAMES,
  DEFAULT_CAPTURE_MARK,
  DEFAULT_LISTENER_MARK,
  LISTENER_KINDS,
  REASON,
  SK_LOOKUP_PROGRAM_NAME,
  bpfObjectPath,
  encodeFlowKey,
  encodeRodata,
  listenerKey,
} from '../../src/node-agent/capture/bpf-contract.js';
import { requireRoot } from '../helpers/privileged.js';
import { BpfTestEnv, skLookupContext, u32Hex, type NetnsRunner, type SkLookupSpec } from '../helpers/bpf-netns.js';

const guard = requireRoot('bpf sk_lookup program (BPF_PROG_TEST_RUN)', { tools: ['ip', 'nsenter'] });

const SK_PASS = 1;
const IPPROTO_UDP = 17;
const PORTS = { outbound: 15001, 'inbound-plaintext': 15006, hbone: 15008 } as const;
type Kind = keyof typeof LISTENER_KINDS;
const KINDS = Object.keys(LISTENER_KINDS) as Kind[];

/** The flow reason the capture program records when it hands a SYN to a listener of this kind. */
const REASON_OF: Record<Kind, number> = {
  outbound: REASON.REDIRECT_OUTBOUND,
  'inbound-plaintext': REASON.REDIRECT_INBOUND_PLAINTEXT,
  hbone: REASON.REDIRECT_INBOUND_HBONE,
};

const CLIENT = { 4: '10.0.0.5', 6: 'fd00::5' } as const;
const SERVER = { 4: '10.0.1.9', 6: 'fd00:1::9' } as const;

function u64Hex(n: number): string {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b.toString('hex');
}

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
describe.skipIf(!guard.run)('TIME_WAIT hand-over program (sk_lookup, BPF_PROG_TEST_RUN in a fresh netns)', () => {
  const env = new BpfTestEnv();
  let runner: NetnsRunner;
  /** Listener cookie by sockmap key (2 × kind + v6). */
  const cookies = new Map<number, string>();
  const fds = new Map<number, number>();
  let nextPort = 41000;

  const sockmapKey = (key: number): string => u32Hex(key);

  async function lookup(spec: SkLookupSpec): Promise<{ retval: number; cookie: string }> {
    return runner.call('skLookup', { object: 'closed', program: SK_LOOKUP_PROGRAM_NAME, ctx: skLookupContext(spec).toString('hex') });
  }

  /** A tuple whose previous flow went to `reason` (as the capture program records it), and its lookup. */
  async function remembered(family: 4 | 6, localPort: number, reason: number): Promise<SkLookupSpec> {
    const spec: SkLookupSpec = { family, remote: CLIENT[family], remotePort: nextPort++, local: SERVER[family], localPort };
    const key = encodeFlowKey({ ip: spec.remote, port: spec.remotePort }, { ip: spec.local, port: spec.localPort }).toString('hex');
    await runner.call('mapUpdate', { object: 'closed', map: BPF_MAP_NAMES.flows, key, value: u32Hex(reason) });
    return spec;
  }

  beforeAll(async () => {
    runner = await env.runner(env.netns());
    const rodata = encodeRodata({ captureMark: DEFAULT_CAPTURE_MARK, listenerMark: DEFAULT_LISTENER_MARK, outboundPort: PORTS.outbound, inboundPlaintextPort: PORTS['inbound-plaintext'], hbonePort: PORTS.hbone, failOpen: false });
    await runner.call('load', { name: 'closed', path: bpfObjectPath(), pinRoot: env.pinRoot(), rodata: Object.fromEntries(Object.entries(rodata).map(([k, v]) => [k, v.toString('hex')])) });
    // The six listeners the agent puts in the sockmap after a load (ebpf-capture.ts useListeners).
    for (const kind of KINDS) {
      for (const family of [4, 6] as const) {
        const name = `${kind}-v${family}`;
        const { fd } = await runner.call<{ fd: number }>('listen', { name, family, address: family === 6 ? '::1' : '127.0.0.1', port: PORTS[kind], mark: DEFAULT_LISTENER_MARK });
        const key = listenerKey(kind, family);
        await runner.call('mapUpdate', { object: 'closed', map: BPF_MAP_NAMES.listeners, key: sockmapKey(key), value: u64Hex(fd) });
        cookies.set(key, await runner.call<string>('cookie', { name }));
        fds.set(key, fd);
      }
    }
    expect(new Set(cookies.values()).size, 'six distinct listener sockets').toBe(6);
  });

  afterAll(async () => {
    await env.cleanup();
  });

  it.each(KINDS.flatMap((kind) => ([4, 6] as const).map((family) => [kind, family] as const)))(
    'a tuple whose previous flow went to the %s listener (IPv%d) gets that listener',
    async (kind, family) => {
      // The HBONE listener takes pod-addressed SYNs on 15008; the others any original port.
      const spec = await remembered(family, kind === 'hbone' ? PORTS.hbone : 8080, REASON_OF[kind]);
      const r = await lookup(spec);
      expect(r).toEqual({ retval: SK_PASS, cookie: cookies.get(listenerKey(kind, family)) });
    },
  );

  it('a tuple with no remembered flow is left to the normal lookup', async () => {
    const spec: SkLookupSpec = { family: 4, remote: CLIENT[4], remotePort: nextPort++, local: SERVER[4], localPort: 8080 };
    expect(await lookup(spec)).toEqual({ retval: SK_PASS, cookie: '0' });
  });

  it('only the exact tuple matches: another client port, local port or direction selects nothing', async () => {
    const spec = await remembered(4, 8080, REASON.REDIRECT_OUTBOUND);
    expect((await lookup(spec)).cookie, 'the remembered tuple itself').toBe(cookies.get(listenerKey('outbound', 4)));
    expect((await lookup({ ...spec, remotePort: spec.remotePort + 1 })).cookie).toBe('0');
    expect((await lookup({ ...spec, localPort: 8081 })).cookie).toBe('0');
    expect((await lookup({ ...spec, remote: spec.local, local: spec.remote, remotePort: spec.localPort, localPort: spec.remotePort })).cookie).toBe('0');
  });

  it('a flow with a reason that is not a redirect (an established flow, a drop) selects nothing', async () => {
    for (const reason of [REASON.ASSIGN_ESTABLISHED, REASON.DROP_NO_LISTENER, REASON.PASS_NOT_ENROLLED]) {
      const spec = await remembered(4, 8080, reason);
      expect(await lookup(spec), `reason ${reason}`).toEqual({ retval: SK_PASS, cookie: '0' });
    }
  });

  it('UDP lookups are left alone even for a remembered tuple', async () => {
    const spec = await remembered(4, 8080, REASON.REDIRECT_OUTBOUND);
    expect(await lookup({ ...spec, protocol: IPPROTO_UDP })).toEqual({ retval: SK_PASS, cookie: '0' });
  });

  it('an empty listener slot (the agent has not filled it, or the socket closed) selects nothing', async () => {
    const key = listenerKey('inbound-plaintext', 6);
    const spec = await remembered(6, 8080, REASON.REDIRECT_INBOUND_PLAINTEXT);
    expect((await lookup(spec)).cookie).toBe(cookies.get(key));
    expect(await runner.call('mapDelete', { object: 'closed', map: BPF_MAP_NAMES.listeners, key: sockmapKey(key) })).toBe(true);
    try {
      expect(await lookup(spec)).toEqual({ retval: SK_PASS, cookie: '0' });
    } finally {
      await runner.call('mapUpdate', { object: 'closed', map: BPF_MAP_NAMES.listeners, key: sockmapKey(key), value: u64Hex(fds.get(key) ?? -1) });
    }
  });
});
