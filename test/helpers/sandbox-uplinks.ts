/**
 * The uplinks of a test sandbox's nodes and tcpdump on them, for "nothing crossed between the
 * nodes in plaintext" checks: a node's uplink is the interface holding its InternalIP in the
 * node's network namespace (/run/netns/<node>).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parsePcap } from './agents.js';
import { eventually } from './eventually.js';
import type { SandboxCli } from './sandbox-cli.js';

/** The uplink interface of `node` and its address (the node's InternalIP). */
export function nodeUplink(cli: SandboxCli, node: string): { iface: string; ip: string } {
  const ip = cli.kubectlOk('get', 'node', node, '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}').trim();
  const links = JSON.parse(spawnSync('nsenter', [`--net=/run/netns/${node}`, 'ip', '-j', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout) as Array<{ ifname: string; addr_info?: Array<{ local: string }> }>;
  const iface = links.find((l) => l.addr_info?.some((a) => a.local === ip))?.ifname;
  expect(iface, `uplink of ${node} (${ip})`).toBeDefined();
  return { iface: iface ?? '', ip };
}

export interface UplinkCapture {
  /** The name its packet count goes under, e.g. the node, or `<node>/plain`. */
  key: string;
  node: string;
  iface: string;
  /** tcpdump filter words, e.g. ['tcp', 'port', '9000']. */
  filter: string[];
}

/**
 * Starts tcpdump (headers only) for each capture into `<dir>/<tag>-<key>.pcap` and waits until
 * every one is listening; `stop()` (idempotent) interrupts them and counts the TCP packets per key.
 */
export async function startUplinkCaptures(dir: string, tag: string, specs: UplinkCapture[], listenTimeoutMs: number): Promise<{ stop: () => Promise<Record<string, number>> }> {
  const captures = specs.map(({ key, node, iface, filter }) => {
    const file = join(dir, `${tag}-${key.replaceAll('/', '-')}.pcap`);
    const child = spawn('nsenter', [`--net=/run/netns/${node}`, 'tcpdump', '-i', iface, '-w', file, '-U', '--immediate-mode', '-n', '-s', '96', '-Z', 'root', ...filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    return { key, file, child, stderr: () => stderr };
  });
  let stopped = false;
  const stop = async (): Promise<Record<string, number>> => {
    const counts: Record<string, number> = {};
    if (stopped) return counts;
    stopped = true;
    for (const c of captures) {
      if (c.child.exitCode === null && c.child.signalCode === null) {
        c.child.kill('SIGINT');
        await new Promise((r) => c.child.once('exit', r));
      }
      counts[c.key] = existsSync(c.file) ? parsePcap(readFileSync(c.file)).tcp.length : -1;
    }
    return counts;
  };
  try {
    await eventually(() => expect(captures.every((c) => c.stderr().includes('listening on'))).toBe(true), { timeoutMs: listenTimeoutMs, intervalMs: 100, description: 'tcpdump listening on the uplinks' });
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
