/**
 * Finds the interfaces capture attaches to, from the node's routing table: a pod's host-side
 * veth is the device of the pod IP's route (DESIGN §2), uplinks are the other non-loopback
 * interfaces unless configured.
 */
import type { CommandRunner } from '../../os/command.js';

export interface LinkInfo {
  name: string;
  ifindex: number;
  kind?: string;
}

export async function listLinks(cmd: CommandRunner): Promise<LinkInfo[]> {
  const { stdout } = await cmd.run('ip', ['-j', '-d', 'link', 'show']);
  const links = JSON.parse(stdout) as Array<{ ifname: string; ifindex: number; linkinfo?: { info_kind?: string } }>;
  return links.map((l) => ({ name: l.ifname, ifindex: l.ifindex, ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}) }));
}

/** The device the node routes `ip` through, or null when there is no route. */
export async function routeDevice(cmd: CommandRunner, ip: string): Promise<string | null> {
  const { stdout, code } = await cmd.run('ip', ['-j', 'route', 'get', ip], { allowFailure: true });
  if (code !== 0 || !stdout.trim()) return null;
  const routes = JSON.parse(stdout) as Array<{ dev?: string; type?: string }>;
  const r = routes[0];
  return r?.dev && r.type !== 'local' ? r.dev : null;
}

/**
 * The devices of many pod IPs at once: one `ip -j route show` per family finds the CNI's host
 * routes (`<podIP> dev <veth>`, /32 or /128, main table); only IPs without such a route cost an
 * `ip route get` each. Missing from the result: no route (as `routeDevice` returning null).
 */
export async function routeDevices(cmd: CommandRunner, ips: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const hostRoutes = new Map<string, string>();
  for (const family of ['-4', '-6'] as const) {
    if (!ips.some((ip) => (family === '-6') === ip.includes(':'))) continue;
    const { stdout, code } = await cmd.run('ip', ['-j', family, 'route', 'show'], { allowFailure: true });
    if (code !== 0 || !stdout.trim()) continue;
    for (const r of JSON.parse(stdout) as Array<{ dst?: string; dev?: string; type?: string }>) {
      if (!r.dst || !r.dev || (r.type && r.type !== 'unicast')) continue;
      const host = r.dst.replace(/\/(32|128)$/, '');
      if (!host.includes('/')) hostRoutes.set(host, r.dev);
    }
  }
  for (const ip of ips) {
    const dev = hostRoutes.get(ip) ?? (await routeDevice(cmd, ip));
    if (dev) out.set(ip, dev);
  }
  return out;
}

/** Every address configured on the node (its own IPs: never captured as destinations). */
export async function nodeAddresses(cmd: CommandRunner): Promise<string[]> {
  const { stdout } = await cmd.run('ip', ['-j', 'addr', 'show']);
  const links = JSON.parse(stdout) as Array<{ addr_info?: Array<{ local: string; scope?: string }> }>;
  return links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope !== 'host').map((a) => a.local));
}

export async function ipv6Available(cmd: CommandRunner): Promise<boolean> {
  const { stdout } = await cmd.run('ip', ['-j', '-6', 'addr', 'show', 'dev', 'lo'], { allowFailure: true });
  try {
    const l = JSON.parse(stdout) as Array<{ addr_info?: unknown[] }>;
    return (l[0]?.addr_info?.length ?? 0) > 0;
  } catch {
    return false;
  }
}
