/**
 * Capture reconcile (issue #10): the start-up pass compares the kernel with the desired state and
 * logs each repair; a link change re-runs the pass with the last state, so a recreated veth (new
 * ifindex) gets the program again. A fake kernel: the fake native binding (maps, filters,
 * interfaces) plus a CommandRunner answering ip/nft from an in-memory rule/route/nft state.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { createFakeNativeBinding, type FakeNativeBinding } from '../../src/native/fake.js';
import { BPF_MAP_NAMES, encodeAddressKey } from '../../src/node-agent/capture/bpf-contract.js';
import { watchLinks, type LinkWatcher, type LinkWatcherOptions } from '../../src/node-agent/capture/link-watcher.js';
import { diffNftTable, renderNftRuleset, renderedChainRules, type NftRulesetOptions } from '../../src/node-agent/capture/nft-capture.js';
import { RedirectionManager } from '../../src/node-agent/capture/redirection-manager.js';
import { inspectRouting } from '../../src/node-agent/capture/routing.js';
import { routeDevices } from '../../src/node-agent/capture/interfaces.js';
import type { CommandRunner } from '../../src/os/command.js';
import { MeshState } from '../../src/node-agent/state/mesh-state.js';
import type { Workload } from '../../src/node-agent/state/types.js';
import type { Logger } from '../../src/telemetry/logger.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const PIN_ROOT = '/tmp/amesh-unit-capture-reconcile-no-such-dir';
const NODE = 'node1';

/** nft -j output for a rendered ruleset: chains with their rule counts, the enrolled sets' elements. */
function nftJson(ruleset: string): string {
  const items: unknown[] = [{ metainfo: { json_schema_version: 1 } }, { table: { family: 'inet', name: 'amesh' } }];
  for (const m of ruleset.matchAll(/set (enrolled[46]) \{ type \w+;(?: elements = \{ ([^}]*) \})? \}/g)) {
    const elem = m[2] ? m[2].split(',').map((e) => e.trim()) : undefined;
    items.push({ set: { family: 'inet', table: 'amesh', name: m[1], ...(elem ? { elem } : {}) } });
  }
  for (const [chain, rules] of renderedChainRules(ruleset)) {
    items.push({ chain: { family: 'inet', table: 'amesh', name: chain } });
    for (let i = 0; i < rules; i++) items.push({ rule: { family: 'inet', table: 'amesh', chain } });
  }
  return JSON.stringify({ nftables: items });
}

interface FakeKernel {
  native: FakeNativeBinding;
  commands: CommandRunner;
  rules: Set<string>;
  localRoutes: Set<string>;
  /** Pod /32 routes: ip → device. */
  podRoutes: Map<string, string>;
  nft: { ruleset?: string; dropRule?: string; applies: number };
  /** Commands run, as 'cmd args…'. */
  ran: string[];
}

function fakeKernel(): FakeKernel {
  const native = createFakeNativeBinding();
  const kernel: FakeKernel = { native, commands: undefined as unknown as CommandRunner, rules: new Set(), localRoutes: new Set(), podRoutes: new Map(), nft: { applies: 0 }, ran: [] };
  const ok = (stdout = '') => ({ stdout, stderr: '', code: 0 });
  kernel.commands = {
    async run(command, args, options) {
      const line = args.join(' ');
      kernel.ran.push(`${command} ${line}`);
      if (command === 'ip') {
        if (line === '-j -6 addr show dev lo') return ok('[]');
        if (line === '-j addr show') return ok(JSON.stringify([{ addr_info: [{ local: '10.250.0.1', scope: 'global' }] }]));
        if (line === '-j -d link show') return ok(JSON.stringify([...native.state.interfaces].map(([ifname, ifindex]) => ({ ifname, ifindex }))));
        let m = /^-j (-[46]) rule show priority (\d+)$/.exec(line);
        if (m) return ok(JSON.stringify(kernel.rules.has(m[1] ?? '') ? [{ priority: Number(m[2]), table: '133', fwmark: '0x111' }] : []));
        m = /^(-[46]) rule add /.exec(line);
        if (m) return (kernel.rules.add(m[1] ?? ''), ok());
        m = /^-j (-[46]) route show table \d+$/.exec(line);
        if (m) return ok(JSON.stringify(kernel.localRoutes.has(m[1] ?? '') ? [{ type: 'local', dst: 'default', dev: 'lo', scope: 'host' }] : []));
        m = /^(-[46]) route replace local /.exec(line);
        if (m) return (kernel.localRoutes.add(m[1] ?? ''), ok());
        if (line === '-j -4 route show') return ok(JSON.stringify([...kernel.podRoutes].map(([dst, dev]) => ({ dst, dev, scope: 'link' }))));
        m = /^-j route get (\S+)$/.exec(line);
        if (m) {
          const dev = kernel.podRoutes.get(m[1] ?? '');
          return dev ? ok(JSON.stringify([{ dst: m[1], dev }])) : { stdout: '', stderr: 'unreachable', code: 2 };
        }
      }
      if (command === 'nft') {
        if (line === 'list table inet amesh') return kernel.nft.ruleset ? ok(kernel.nft.ruleset) : { stdout: '', stderr: 'No such file or directory', code: 1 };
        if (line === '-j list table inet amesh') {
          if (!kernel.nft.ruleset) return { stdout: '', stderr: 'No such file or directory', code: 1 };
          const shown = kernel.nft.dropRule ? kernel.nft.ruleset.replace(kernel.nft.dropRule, '') : kernel.nft.ruleset;
          return ok(nftJson(shown));
        }
        if (line === '-f -') {
          kernel.nft.applies++;
          kernel.nft.ruleset = options?.input ?? '';
          kernel.nft.dropRule = undefined;
          return ok();
        }
      }
      throw new Error(`fake kernel: unexpected ${command} ${line}`);
    },
  };
  return kernel;
}

/** A logger that keeps (fields, message) pairs at info and above. */
function recordingLogger(): { logger: Logger; lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const at =
    (level: string) =>
    (fields: unknown, msg?: string): void => {
      if (typeof fields === 'string') lines.push({ level, msg: fields, fields: {} });
      else lines.push({ level, msg: msg ?? '', fields: fields as Record<string, unknown> });
    };
  const logger = { ...silentLogger, info: at('info'), warn: at('warn'), error: at('error'), child: () => logger } as unknown as Logger;
  return { logger, lines };
}

class FakeWatcher implements LinkWatcher {
  kind = 'monitor' as const;
  closed = false;
  constructor(readonly opts: LinkWatcherOptions) {}
  close(): void {
    this.closed = true;
  }
}

const workload = (name: string, ip: string, enrolled = true): Workload => ({
  uid: `demo/${name}`,
  name,
  namespace: 'demo',
  addresses: [ip],
  tunnelProtocol: enrolled ? 'HBONE' : 'NONE',
  serviceAccount: name,
  node: NODE,
  services: {},
});
const state = (...workloads: Workload[]): MeshState => new MeshState({ trustDomain: 'cluster.local', workloads, services: [], policies: [] });

function manager(kernel: FakeKernel, logger: Logger, watchers: FakeWatcher[] = []): RedirectionManager {
  const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'ebpf', AMESH_BPF_PIN_ROOT: PIN_ROOT, AMESH_BPF_OBJECT: '/x/capture.bpf.o' }, NODE);
  return new RedirectionManager({
    config,
    node: NODE,
    uplinks: ['up0'],
    commands: kernel.commands,
    logger,
    native: () => kernel.native,
    linkDebounceMs: 1,
    watchLinks: (opts) => {
      const w = new FakeWatcher(opts);
      watchers.push(w);
      return w;
    },
  });
}

const podKeys = (native: FakeNativeBinding): number => native.pinnedMap(PIN_ROOT, BPF_MAP_NAMES.pods)?.entries.size ?? 0;
const hasFilter = (native: FakeNativeBinding, name: string): boolean => [...native.state.filters.values()].some((f) => f.ifindex === native.state.interfaces.get(name));

describe('capture start-up reconcile', () => {
  it('on a fresh node installs without calling anything a repair', async () => {
    const kernel = fakeKernel();
    kernel.native.addInterface('up0');
    kernel.native.addInterface('vp-a');
    kernel.podRoutes.set('10.244.1.2', 'vp-a');
    const { logger, lines } = recordingLogger();
    const m = manager(kernel, logger);
    await m.start();
    await m.apply(state(workload('a', '10.244.1.2')));
    expect(lines.filter((l) => l.msg.startsWith('capture: repaired'))).toEqual([]);
    expect(lines.map((l) => l.msg)).toContain('capture: start-up reconcile done (fresh install)');
    expect(m.repairs().repairs).toEqual([]);
    expect(hasFilter(kernel.native, 'vp-a')).toBe(true);
    await m.close();
  });

  it('after a restart names and repairs each difference: a deleted rule, filter, map entry and nft chain rule', async () => {
    const kernel = fakeKernel();
    kernel.native.addInterface('up0');
    kernel.native.addInterface('vp-a');
    kernel.native.addInterface('vp-b');
    kernel.podRoutes.set('10.244.1.2', 'vp-a');
    kernel.podRoutes.set('10.244.1.3', 'vp-b');
    const mesh = state(workload('a', '10.244.1.2'), workload('b', '10.244.1.3'));
    const first = manager(kernel, silentLogger);
    await first.start();
    await first.apply(mesh);
    await first.close();

    // Damage while no agent runs.
    kernel.rules.delete('-4');
    const vpb = kernel.native.state.interfaces.get('vp-b');
    for (const [k, f] of kernel.native.state.filters) if (f.ifindex === vpb) kernel.native.state.filters.delete(k);
    kernel.native.pinnedMap(PIN_ROOT, BPF_MAP_NAMES.pods)?.entries.delete(encodeAddressKey('10.244.1.3').toString('hex'));
    kernel.nft.dropRule = '    ct direction reply return\n';

    const { logger, lines } = recordingLogger();
    const second = manager(kernel, logger);
    await second.start();
    await second.apply(mesh);
    const repaired = lines.filter((l) => l.msg.startsWith('capture: repaired')).map((l) => l.fields);
    expect(repaired).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'routing-rule', problem: 'missing', action: 'added', object: expect.stringContaining('fwmark 0x111') }),
        expect.objectContaining({ kind: 'tc-filter', problem: 'missing', action: 'attached', object: expect.stringContaining('on vp-b') }),
        expect.objectContaining({ kind: 'map-entry', problem: 'missing', action: 'added', object: `${PIN_ROOT}/amesh_pods entry 10.244.1.3` }),
        expect.objectContaining({ kind: 'nft-chain', problem: '4 rules instead of 5', object: 'nftables table inet amesh chain service-dnat' }),
      ]),
    );
    expect(repaired).toHaveLength(4);
    expect(lines.find((l) => l.msg.startsWith('capture: start-up reconcile done'))?.fields).toMatchObject({ repairs: 4 });
    expect(second.repairs().repairs.sort((a, b) => a.kind.localeCompare(b.kind))).toEqual([
      { trigger: 'start', kind: 'map-entry', count: 1 },
      { trigger: 'start', kind: 'nft-chain', count: 1 },
      { trigger: 'start', kind: 'routing-rule', count: 1 },
      { trigger: 'start', kind: 'tc-filter', count: 1 },
    ]);
    // ... and the kernel matches again
    expect(kernel.rules.has('-4')).toBe(true);
    expect(hasFilter(kernel.native, 'vp-b')).toBe(true);
    expect(podKeys(kernel.native)).toBe(2);
    await second.close();
  });

  it('names stale state of an earlier run: an entry and a filter no longer wanted', async () => {
    const kernel = fakeKernel();
    kernel.native.addInterface('up0');
    kernel.native.addInterface('vp-a');
    kernel.native.addInterface('vp-gone');
    kernel.podRoutes.set('10.244.1.2', 'vp-a');
    kernel.podRoutes.set('10.244.1.9', 'vp-gone');
    const first = manager(kernel, silentLogger);
    await first.start();
    await first.apply(state(workload('a', '10.244.1.2'), workload('gone', '10.244.1.9')));
    await first.close();
    kernel.podRoutes.delete('10.244.1.9');
    const { logger, lines } = recordingLogger();
    const second = manager(kernel, logger);
    await second.start();
    await second.apply(state(workload('a', '10.244.1.2')));
    const repaired = lines.filter((l) => l.msg.startsWith('capture: repaired')).map((l) => `${l.fields.kind} ${l.fields.action}`);
    // uplinks are configured (up0), so vp-gone is no longer captured at all
    expect(repaired.sort()).toEqual(['map-entry deleted', 'nft-set table replaced', 'tc-filter detached']);
    await second.close();
  });
});

describe('capture after a link change', () => {
  it('re-attaches the program to a recreated veth (new ifindex) from the watcher event, with the last state', async () => {
    const kernel = fakeKernel();
    kernel.native.addInterface('up0');
    kernel.native.addInterface('vp-a', 10);
    kernel.podRoutes.set('10.244.1.2', 'vp-a');
    const { logger, lines } = recordingLogger();
    const watchers: FakeWatcher[] = [];
    const m = manager(kernel, logger, watchers);
    await m.start();
    expect(watchers).toHaveLength(0); // no watcher before the first state reached capture
    await m.apply(state(workload('a', '10.244.1.2')));
    expect(watchers).toHaveLength(1);

    kernel.native.removeInterface('vp-a');
    kernel.native.addInterface('vp-a', 11);
    expect(hasFilter(kernel.native, 'vp-a')).toBe(false);
    const watcher = watchers[0] as FakeWatcher;
    const nftApplies = kernel.nft.applies;
    kernel.ran.length = 0;
    watcher.opts.onChange('11: vp-a@if2: <BROADCAST,MULTICAST,UP>');
    watcher.opts.onChange('10.244.1.2 dev vp-a scope link');
    await expect.poll(() => hasFilter(kernel.native, 'vp-a'), { timeout: 2_000, interval: 5 }).toBe(true);
    await expect.poll(() => m.repairs().linkPasses, { timeout: 2_000, interval: 5 }).toBe(1);
    expect(m.repairs().repairs).toEqual([{ trigger: 'link', kind: 'tc-filter', count: 1 }]);
    // /config_dump's capture section carries the same counts
    expect(m.status().reconcile).toMatchObject({ repairs: [{ trigger: 'link', kind: 'tc-filter', count: 1 }], linkPasses: 1, watcher: 'monitor' });
    // two events, one pass; it neither lists nor reloads the nft table (enrolment did not change)
    expect(kernel.nft.applies).toBe(nftApplies);
    expect(kernel.ran.filter((c) => c.startsWith('nft '))).toEqual([]);
    expect(kernel.ran.filter((c) => c.includes('route show'))).toHaveLength(1);
    const line = lines.find((l) => l.msg.startsWith('capture: after a link change'));
    expect(line?.fields).toMatchObject({ kind: 'tc-filter', action: 'attached', object: expect.stringContaining('vp-a (ifindex 11)') });
    await m.close();
    expect(watcher.closed).toBe(true);
  });

  it('serializes link passes with apply: the pass after an apply uses the newer state', async () => {
    const kernel = fakeKernel();
    kernel.native.addInterface('up0');
    kernel.native.addInterface('vp-a');
    kernel.podRoutes.set('10.244.1.2', 'vp-a');
    kernel.podRoutes.set('10.244.1.3', 'vp-a');
    const watchers: FakeWatcher[] = [];
    const m = manager(kernel, silentLogger, watchers);
    await m.start();
    await m.apply(state(workload('a', '10.244.1.2')));
    const applying = m.apply(state(workload('a', '10.244.1.2'), workload('b', '10.244.1.3')));
    watchers[0]?.opts.onChange('link');
    await applying;
    await expect.poll(() => m.repairs().linkPasses, { timeout: 2_000, interval: 5 }).toBe(1);
    expect(podKeys(kernel.native)).toBe(2);
    await m.close();
  });
});

describe('pure diffs', () => {
  const options: NftRulesetOptions = { captureMark: 0x111, captureMask: 0xfff, socketMark: 0x539, failOpen: false, ports: { outbound: 15001, inboundPlaintext: 15006, hbone: 15008 }, listenAddress4: '127.0.0.1', listenAddress6: '::1' };
  const targets = { enrolledIps: ['10.244.1.2', '10.244.1.3'], interfaces: ['vp-a'], exemptCidrs: ['10.250.0.1/32'] };

  it('diffNftTable: nothing when the listing matches; names a missing table, chain, rule and set element', () => {
    const ruleset = renderNftRuleset(targets, options, 'all');
    expect(diffNftTable(nftJson(ruleset), ruleset, targets.enrolledIps)).toEqual([]);
    expect(diffNftTable(undefined, ruleset, targets.enrolledIps)).toEqual([{ kind: 'nft-table', object: 'nftables table inet amesh', problem: 'missing', action: 'created (one nft -f transaction)' }]);
    const shrunk = nftJson(renderNftRuleset({ ...targets, enrolledIps: ['10.244.1.2', '10.244.1.99'] }, options, 'service-dnat'));
    expect(diffNftTable(shrunk, ruleset, targets.enrolledIps)).toEqual([
      { kind: 'nft-chain', object: 'nftables table inet amesh chain prerouting', problem: 'missing', action: 'table replaced' },
      { kind: 'nft-chain', object: 'nftables table inet amesh chain output', problem: 'missing', action: 'table replaced' },
      { kind: 'nft-set', object: 'nftables table inet amesh set enrolled4', problem: 'lacks 10.244.1.3; has stale 10.244.1.99', action: 'table replaced' },
    ]);
  });

  it('routeDevices: host routes from one listing, `ip route get` only for the rest', async () => {
    const kernel = fakeKernel();
    kernel.podRoutes.set('10.244.1.2', 'vp-a');
    const ran: string[] = [];
    const commands: CommandRunner = {
      run: (command, args, options) => {
        ran.push(args.join(' '));
        if (args.join(' ') === '-j route get 10.244.1.7') return Promise.resolve({ stdout: JSON.stringify([{ dst: '10.244.1.7', dev: 'vp-x' }]), stderr: '', code: 0 });
        return kernel.commands.run(command, args, options);
      },
    };
    const devices = await routeDevices(commands, ['10.244.1.2', '10.244.1.7', '10.244.1.8']);
    expect([...devices]).toEqual([
      ['10.244.1.2', 'vp-a'],
      ['10.244.1.7', 'vp-x'],
    ]);
    expect(ran).toEqual(['-j -4 route show', '-j route get 10.244.1.7', '-j route get 10.244.1.8']);
  });

  it('inspectRouting names the missing rule and local route per family', async () => {
    const kernel = fakeKernel();
    kernel.rules.add('-4');
    const spec = { mark: 0x111, mask: 0xfff, table: 133, priority: 32000 };
    expect(await inspectRouting(kernel.commands, spec, [4, 6])).toEqual([
      { kind: 'routing-route', object: 'ip -4 route local 0.0.0.0/0 dev lo table 133', problem: 'missing', action: 'added' },
      { kind: 'routing-rule', object: 'ip -6 rule fwmark 0x111/0xfff lookup 133 priority 32000', problem: 'missing', action: 'added' },
      { kind: 'routing-route', object: 'ip -6 route local ::/0 dev lo table 133', problem: 'missing', action: 'added' },
    ]);
  });
});

describe('watchLinks', () => {
  it('reports each monitor line, then polls links and routes (≤ 250 ms) once the monitor exits', async () => {
    let links = [{ ifindex: 1, ifname: 'lo' }];
    const commands: CommandRunner = {
      async run(command, args) {
        if (command === 'ip' && args.join(' ') === '-j link show') return { stdout: JSON.stringify(links), stderr: '', code: 0 };
        if (command === 'ip' && args.join(' ') === '-j route show') return { stdout: '[]', stderr: '', code: 0 };
        throw new Error(`unexpected ${command} ${args.join(' ')}`);
      },
    };
    const seen: string[] = [];
    const { logger, lines } = recordingLogger();
    const watcher = watchLinks({
      commands,
      logger,
      onChange: (what) => seen.push(what),
      pollMs: 20,
      spawnMonitor: () => spawn(process.execPath, ['-e', "console.log('12: vp-a@if2: <BROADCAST,UP>'); console.log('10.244.1.2 dev vp-a scope link'); setTimeout(() => {}, 150)"]),
    });
    try {
      expect(watcher.kind).toBe('monitor');
      await expect.poll(() => seen.length, { timeout: 5_000, interval: 5 }).toBe(2);
      expect(seen[0]).toBe('12: vp-a@if2: <BROADCAST,UP>');
      await expect.poll(() => watcher.kind, { timeout: 5_000, interval: 10 }).toBe('poll');
      expect(lines.find((l) => l.msg.includes('polling links and routes every 20 ms'))?.fields).toMatchObject({ reason: expect.stringContaining('ip monitor exited') });
      await new Promise((r) => setTimeout(r, 60));
      expect(seen).toHaveLength(2); // nothing changed yet
      links = [...links, { ifindex: 13, ifname: 'vp-a' }];
      await expect.poll(() => seen.length, { timeout: 2_000, interval: 5 }).toBe(3);
      expect(seen[2]).toBe('poll: links or routes changed');
    } finally {
      watcher.close();
    }
  });
});
