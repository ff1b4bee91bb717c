// tc attach / replace / query / detach on a veth in a throw-away namespace, pinned maps that
// outlive the object, and loadObject's error reporting — all through the real addon.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BPF_MAP_NAMES, BPF_PROGRAM_NAME, LISTENERS_MAX_ENTRIES, POD_FLAG_ENROLLED, SK_LOOKUP_PROGRAM_NAME, UNPINNED_MAP_NAMES, bpfObjectPath, encodeAddressKey, encodeRodata, EXEMPT_MAX_ENTRIES, LPM_KEY_SIZE, PODS_MAX_ENTRIES, REASON } from '../../src/node-agent/capture/bpf-contract.js';
import { requireRoot } from '../helpers/privileged.js';
import { BpfTestEnv, RunnerCallError, sh, u32Hex, type NetnsRunner } from '../helpers/bpf-netns.js';

const guard = requireRoot('bpf tc + pinning', { tools: ['ip', 'nsenter', 'tc'] });

const HANDLE = 0xa3e5;
const PRIORITY = 0x3a3;

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
describe.skipIf(!guard.run)('tc filters, pinned maps and loading through the addon', () => {
  const env = new BpfTestEnv();
  let ns: string;
  let runner: NetnsRunner;
  let ifindex: number;

  /** Our filters as tc itself lists them (the addon must agree with iproute2). */
  const tcFilters = () =>
    sh(['tc', '-n', ns, 'filter', 'show', 'dev', 'va', 'ingress'])
      .split('\n')
      .filter((l) => l.includes('bpf') && l.includes(`handle 0x${HANDLE.toString(16)}`));
  const hasClsact = () => sh(['tc', '-n', ns, 'qdisc', 'show', 'dev', 'va']).includes('clsact');

  async function expectError(promise: Promise<unknown>): Promise<RunnerCallError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RunnerCallError);
    return err as RunnerCallError;
  }

  beforeAll(async () => {
    ns = env.netns();
    sh(['ip', '-n', ns, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb']);
    sh(['ip', '-n', ns, 'link', 'set', 'va', 'up']);
    runner = await env.runner(ns);
    ifindex = await runner.call<number>('ifindex', { name: 'va' });
  });

  afterAll(async () => {
    await env.cleanup();
  });

  it('loads the object with the contract’s program and maps', async () => {
    const pinRoot = env.pinRoot();
    const loaded = await runner.call<{ programs: string[]; maps: Array<{ name: string; keySize: number; valueSize: number; maxEntries: number }> }>('load', {
      name: 'a',
      path: bpfObjectPath(),
      pinRoot,
    });
    expect(loaded.programs).toEqual([BPF_PROGRAM_NAME, SK_LOOKUP_PROGRAM_NAME]);
    expect(loaded.maps).toEqual(
      expect.arrayContaining([
        { name: BPF_MAP_NAMES.pods, keySize: 16, valueSize: 4, maxEntries: PODS_MAX_ENTRIES },
        { name: BPF_MAP_NAMES.exempt, keySize: LPM_KEY_SIZE, valueSize: 4, maxEntries: EXEMPT_MAX_ENTRIES },
        { name: BPF_MAP_NAMES.reasons, keySize: 4, valueSize: 8, maxEntries: REASON.MAX },
        { name: BPF_MAP_NAMES.listeners, keySize: 4, valueSize: 8, maxEntries: LISTENERS_MAX_ENTRIES },
      ]),
    );
    // Pinned by name under the pin root (created by the addon, mkdir -p); the sockmap of
    // listeners is not (the agent fills it after every load).
    for (const name of Object.values(BPF_MAP_NAMES)) expect(existsSync(path.join(pinRoot, name))).toBe(!UNPINNED_MAP_NAMES.has(name));
  });

  it('query says 0 on an interface without clsact, and attach creates the qdisc', async () => {
    expect(hasClsact()).toBe(false);
    expect(await runner.call('tcQuery', { ifindex, handle: HANDLE, priority: PRIORITY })).toBe(0);
    expect(await runner.call('tcAttach', { object: 'a', ifindex, handle: HANDLE, priority: PRIORITY })).toBe(true);
    expect(hasClsact()).toBe(true);
    const progId = await runner.call<number>('progId', { object: 'a' });
    expect(progId).toBeGreaterThan(0);
    expect(await runner.call('tcQuery', { ifindex, handle: HANDLE, priority: PRIORITY })).toBe(progId);
    expect(tcFilters()).toHaveLength(1);
    // Another slot is still empty.
    expect(await runner.call('tcQuery', { ifindex, handle: HANDLE + 1, priority: PRIORITY })).toBe(0);
  });

  it('attaching again replaces in place (qdisc existed → false) and never duplicates', async () => {
    const pinRoot = env.pinRoot();
    await runner.call('load', { name: 'b', path: bpfObjectPath(), pinRoot });
    const idA = await runner.call<number>('progId', { object: 'a' });
    const idB = await runner.call<number>('progId', { object: 'b' });
    expect(idB).not.toBe(idA);
    expect(await runner.call('tcAttach', { object: 'a', ifindex, handle: HANDLE, priority: PRIORITY })).toBe(false);
    expect(await runner.call('tcAttach', { object: 'b', ifindex, handle: HANDLE, priority: PRIORITY })).toBe(false);
    expect(await runner.call('tcQuery', { ifindex, handle: HANDLE, priority: PRIORITY })).toBe(idB);
    expect(tcFilters()).toHaveLength(1);
    await runner.call('close', { name: 'b' });
    // The filter holds its own reference: closing the object does not detach (fail closed).
    expect(await runner.call('tcQuery', { ifindex, handle: HANDLE, priority: PRIORITY })).toBe(idB);
  });

  it('detach removes only our filter and keeps the clsact qdisc', async () => {
    expect(await runner.call('tcDetach', { ifindex, handle: HANDLE, priority: PRIORITY })).toBe(true);
    expect(await runner.call('tcQuery', { ifindex, handle: HANDLE, priority: PRIORITY })).toBe(0);
    expect(tcFilters()).toHaveLength(0);
    expect(hasClsact()).toBe(true);
    // Second detach: nothing there.
    expect(await runner.call('tcDetach', { ifindex, handle: HANDLE, priority: PRIORITY })).toBe(false);
  });

  it('tc errors carry errno, code and syscall', async () => {
    const err = await expectError(runner.call('tcAttach', { object: 'a', ifindex: 999_999, handle: HANDLE, priority: PRIORITY }));
    expect(err.detail.errno).toBeGreaterThan(0);
    expect(err.detail.code).toMatch(/^E[A-Z]+$/);
    expect(err.detail.syscall).toMatch(/^bpf_tc_/);
    expect(err.detail.error).toMatch(/^bpf_tc_\w+\(ifindex 999999/);
  });

  it('pinned maps survive closeObject and are reused by a reload with the same pin root', async () => {
    const pinRoot = env.pinRoot();
    const podKey = encodeAddressKey('10.1.2.3').toString('hex');
    await runner.call('load', { name: 'p1', path: bpfObjectPath(), pinRoot });
    await runner.call('mapUpdate', { object: 'p1', map: BPF_MAP_NAMES.pods, key: podKey, value: u32Hex(POD_FLAG_ENROLLED) });
    await runner.call('close', { name: 'p1' });
    expect(existsSync(path.join(pinRoot, BPF_MAP_NAMES.pods))).toBe(true);

    await runner.call('load', { name: 'p2', path: bpfObjectPath(), pinRoot });
    expect(await runner.call('mapLookup', { object: 'p2', map: BPF_MAP_NAMES.pods, key: podKey })).toBe(u32Hex(POD_FLAG_ENROLLED));
    expect(await runner.call('mapKeys', { object: 'p2', map: BPF_MAP_NAMES.pods })).toEqual([podKey]);

    // A different pin root is a different set of maps.
    await runner.call('load', { name: 'p3', path: bpfObjectPath(), pinRoot: env.pinRoot() });
    expect(await runner.call('mapLookup', { object: 'p3', map: BPF_MAP_NAMES.pods, key: podKey })).toBeNull();
    expect(await runner.call('mapKeys', { object: 'p3', map: BPF_MAP_NAMES.pods })).toEqual([]);

    expect(await runner.call('mapDelete', { object: 'p2', map: BPF_MAP_NAMES.pods, key: podKey })).toBe(true);
    expect(await runner.call('mapDelete', { object: 'p2', map: BPF_MAP_NAMES.pods, key: podKey })).toBe(false);
    await runner.call('close', { name: 'p2' });
    await runner.call('close', { name: 'p3' });
  });

  it('rejects unknown knobs and knobs of the wrong size before loading', async () => {
    const good = encodeRodata({ captureMark: 1, listenerMark: 2, outboundPort: 3, inboundPlaintextPort: 4, hbonePort: 5, failOpen: false });
    const unknown = await expectError(runner.call('load', { name: 'x', path: bpfObjectPath(), pinRoot: env.pinRoot(), rodata: { no_such_knob: '01000000' } }));
    expect(unknown.detail.error).toMatch(/no_such_knob/);
    expect(unknown.detail.errno).toBeGreaterThan(0);
    const wrongSize = await expectError(
      runner.call('load', { name: 'x', path: bpfObjectPath(), pinRoot: env.pinRoot(), rodata: { capture_mark: good.outbound_port!.toString('hex') } }),
    );
    expect(wrongSize.detail.error).toMatch(/capture_mark.*4 bytes/);
  });

  it('a missing object file fails with ENOENT from bpf_object__open_file', async () => {
    const err = await expectError(runner.call('load', { name: 'x', path: '/nonexistent/capture.bpf.o', pinRoot: env.pinRoot() }));
    expect(err.detail).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'bpf_object__open_file' });
  });
});
