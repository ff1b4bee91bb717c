/**
 * The sandbox cluster network: a dynamic, long-lived version of topology.ts. Nodes exist for
 * the sandbox's lifetime; pods come and go as the kubelet asks.
 *
 *                      fabric netns <prefix>-net (the sandbox daemon runs here)
 *                      br0 10.250.0.254/24, routes 10.244.<i>.0/24 via 10.250.0.<i>
 *                 u1 ──┘            └── u2
 *   node netns <prefix>-node1: up0 10.250.0.1/24        node netns <prefix>-node2: up0 10.250.0.2/24
 *   10.244.2.0/24 via 10.250.0.2, 10.96.0.0/16 via fabric    ...
 *   ap<hex> ── pod netns <prefix>-p<hex>: eth0 10.244.1.2/32, default via 169.254.1.1 onlink
 *
 *   outside netns <prefix>-outside (a client outside the cluster): eth0 10.250.0.253/32 on the
 *   fabric bridge (port `ox`), routes only 10.250.0.254 (on-link) and the LoadBalancer pool
 *   10.252.0.0/24 via the fabric — it reaches LoadBalancer addresses and nothing else of the cluster
 *
 * - Pods are wired exactly like topology.ts (Calico-style routed /32 veth, proxy ARP on the host
 *   side, a permanent neighbour for 169.254.1.1), except that the host-side veth gets Calico's
 *   fixed MAC ee:ee:ee:ee:ee:ee so no round trip is needed to learn it.
 * - Nodes and the fabric route the service CIDR towards the fabric so that a locally generated
 *   connect() to a ClusterIP finds a route; kube-proxy's output-chain DNAT then rewrites it. The
 *   LoadBalancer pool is routed the same way; kube-proxy DNATs it in the fabric (traffic from
 *   the outside namespace) and in the nodes (pods dialling a LoadBalancer address).
 * - The fabric sends no ICMP redirects: DNATed outside traffic leaves the bridge it came in on,
 *   and a redirect would teach the outside client a path around the fabric's conntrack.
 *
 * Safety invariants: nothing is ever added to the caller's namespace. Every command runs against
 * an explicit namespace path (`ip -n <name>`, `nsenter --net=/run/netns/<name>`), because the
 * sandbox daemon itself runs inside the fabric namespace, not the host's. Everything this module
 * creates carries the `<prefix>-` name, so `removeClusterNetwork(prefix)` can clean up after a
 * crash without any state file.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { AmeshError } from '../../errors/amesh-error.js';
import { PodIpam, cidrContains, parseIpv4Cidr } from './ipam.js';
import { LOAD_BALANCER_CIDR } from './load-balancer-ipam.js';
import { run } from './run.js';

/** Linux limits interface names to 15 characters (IFNAMSIZ - 1); we hold netns names to it too. */
const MAX_NAME = 15;
const NETNS_DIR = '/run/netns';
/** `ip netns exec` bind-mounts every file in /etc/netns/<name>/ over /etc/<file>. */
const ETC_NETNS_DIR = '/etc/netns';
const POD_GATEWAY = '169.254.1.1';
/** Calico's host-side veth MAC; identical on every veth is fine since each is its own L2 link. */
const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';
const UPLINK = 'up0';
const BRIDGE = 'br0';
const FABRIC_PREFIX_LENGTH = 24;
const DEFAULT_FABRIC_IP = '10.250.0.254';
/** The outside client's address on the fabric segment; node uplinks are .1 up to .252. */
const OUTSIDE_IP = '10.250.0.253';
/** The outside namespace's port on the fabric bridge. */
const OUTSIDE_PORT = 'ox';
const MAX_NODES = 252;
const SERVICE_CIDR = '10.96.0.0/16';
const CLUSTER_DNS_IP = '10.96.0.10';
const API_SERVICE_IP = '10.96.0.1';
/** Hex characters of the uid hash in pod netns/veth names (fewer when the prefix is long). */
const POD_HASH_HEX = 10;
const MIN_POD_HASH_HEX = 6;
const COMMAND_TIMEOUT_MS = 15_000;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface SandboxNodeNetwork {
  name: string;
  netns: string;
  netnsPath: string;
  /** Uplink address on the fabric bridge, 10.250.0.<i>. */
  ip: string;
  /** 10.244.<i>.0/24 */
  podCidr: string;
}

export interface PodNetwork {
  uid: string;
  node: string;
  netns: string;
  netnsPath: string;
  ip: string;
  /** The pod's veth end inside its node's namespace. */
  hostVeth: string;
}

export interface ClusterNetworkLayout {
  /** Prefix of every namespace name, e.g. 'ams'; at most 7 characters so pod names fit. */
  prefix: string;
  /** Node names; node i (0-based) gets uplink 10.250.0.<i+1> and pod CIDR 10.244.<i+1>.0/24. */
  nodes: string[];
  /** The fabric bridge's address (default 10.250.0.254), where the daemon's servers listen. */
  fabricIp?: string;
}

export interface ClusterNetworkPlan {
  prefix: string;
  fabricNetns: string;
  fabricNetnsPath: string;
  fabricIp: string;
  nodes: SandboxNodeNetwork[];
  /** The client namespace outside the cluster (`<prefix>-outside`), which reaches LoadBalancer addresses. */
  outsideNetns: string;
  outsideNetnsPath: string;
  outsideIp: string;
  loadBalancerCidr: string;
  serviceCidr: typeof SERVICE_CIDR;
  clusterDnsIp: typeof CLUSTER_DNS_IP;
  apiServiceIp: typeof API_SERVICE_IP;
}

export interface ClusterNetworkOptions {
  /** Progress and cleanup messages. */
  log?: (message: string) => void;
}

export interface PodDnsConfig {
  nameserver: string;
  searches: string[];
  ndots: number;
  hostname: string;
}

function invalid(message: string, hint?: string): never {
  throw new AmeshError('AMESH_CONFIG_INVALID', `sandbox network: ${message}`, hint ? { hint } : {});
}

function netnsPathOf(netns: string): string {
  return `${NETNS_DIR}/${netns}`;
}

/**
 * The node's netns name: the node name itself when it already starts with `<prefix>-`
 * (`amesh-worker2`, as topology.ts does), else `<prefix>-<node>` when it fits in 15 characters,
 * else with a leading `sandbox-` dropped (`ams-node1` for `sandbox-node1`), else `<prefix>-n<i>`.
 */
function nodeNetnsName(prefix: string, node: string, index: number): string {
  const candidates = [`${prefix}-${node.replace(/^sandbox-/, '')}`, `${prefix}-n${index + 1}`];
  if (node.startsWith(`${prefix}-`)) candidates.unshift(node);
  else candidates.unshift(`${prefix}-${node}`);
  return candidates.find((c) => c.length <= MAX_NAME) ?? invalid(`node netns name ${prefix}-n${index + 1} is longer than ${MAX_NAME} characters; shorten the prefix`);
}

function podHashLength(prefix: string): number {
  return Math.min(POD_HASH_HEX, MAX_NAME - prefix.length - 2);
}

function podHash(prefix: string, uid: string): string {
  return createHash('sha256').update(uid).digest('hex').slice(0, podHashLength(prefix));
}

/** Pure: the names and addresses of the whole cluster network. Throws AMESH_CONFIG_INVALID. */
export function planClusterNetwork(layout: ClusterNetworkLayout): ClusterNetworkPlan {
  const { prefix } = layout;
  if (!NAME_PATTERN.test(prefix)) invalid(`prefix ${JSON.stringify(prefix)} must be letters, digits, '-', '_' or '.'`);
  if (podHashLength(prefix) < MIN_POD_HASH_HEX) {
    invalid(`prefix ${JSON.stringify(prefix)} is too long: pod namespaces are <prefix>-p<hash> within ${MAX_NAME} characters`, 'use a prefix of at most 7 characters');
  }
  if (layout.nodes.length === 0) invalid('at least one node is needed');
  if (layout.nodes.length > MAX_NODES) invalid(`${layout.nodes.length} nodes do not fit the 10.250.0.0/24 fabric (at most ${MAX_NODES})`);
  const fabricIp = layout.fabricIp ?? DEFAULT_FABRIC_IP;
  const fabric = parseIpv4Cidr(`10.250.0.0/${FABRIC_PREFIX_LENGTH}`);
  if (!cidrContains(fabric, fabricIp)) invalid(`fabricIp ${JSON.stringify(fabricIp)} must be an address in 10.250.0.0/24`);
  if (fabricIp === OUTSIDE_IP) invalid(`fabricIp ${fabricIp} is the outside client's address`);
  const fabricNetns = `${prefix}-net`;
  const outsideNetns = `${prefix}-outside`;
  if (outsideNetns.length > MAX_NAME) invalid(`outside netns name ${outsideNetns} is longer than ${MAX_NAME} characters; shorten the prefix`);
  const seenNames = new Set<string>();
  const seenNetns = new Set<string>([fabricNetns, outsideNetns]);
  const nodes = layout.nodes.map((name, index): SandboxNodeNetwork => {
    if (!NAME_PATTERN.test(name)) invalid(`node name ${JSON.stringify(name)} must be letters, digits, '-', '_' or '.'`);
    if (seenNames.has(name)) invalid(`node name ${name} is used twice`);
    seenNames.add(name);
    let netns = nodeNetnsName(prefix, name, index);
    // A short form may collide with another node's or the fabric's name; the indexed form cannot.
    if (seenNetns.has(netns) || /^p[0-9a-f]+$/.test(netns.slice(prefix.length + 1))) netns = `${prefix}-n${index + 1}`;
    if (netns.length > MAX_NAME) invalid(`node netns name ${netns} is longer than ${MAX_NAME} characters; shorten the prefix`);
    seenNetns.add(netns);
    const ip = `10.250.0.${index + 1}`;
    if (ip === fabricIp) invalid(`fabricIp ${fabricIp} collides with node ${name}'s uplink address`);
    return { name, netns, netnsPath: netnsPathOf(netns), ip, podCidr: `10.244.${index + 1}.0/24` };
  });
  return {
    prefix,
    fabricNetns,
    fabricNetnsPath: netnsPathOf(fabricNetns),
    fabricIp,
    nodes,
    outsideNetns,
    outsideNetnsPath: netnsPathOf(outsideNetns),
    outsideIp: OUTSIDE_IP,
    loadBalancerCidr: LOAD_BALANCER_CIDR,
    serviceCidr: SERVICE_CIDR,
    clusterDnsIp: CLUSTER_DNS_IP,
    apiServiceIp: API_SERVICE_IP,
  };
}

/** Pure: the netns and host-side veth names of a pod. */
export function podNames(prefix: string, uid: string): { netns: string; hostVeth: string } {
  const hash = podHash(prefix, uid);
  return { netns: `${prefix}-p${hash}`, hostVeth: `ap${hash}` };
}

/** Run `ip` batch lines inside a namespace (one process for many changes). */
async function ipBatch(netns: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await run(['ip', '-n', netns, '-batch', '-'], { input: `${lines.join('\n')}\n`, where: `netns ${netns}`, timeoutMs: COMMAND_TIMEOUT_MS });
}

async function sysctl(netns: string, settings: Record<string, string | number>): Promise<void> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  await run(['nsenter', `--net=${netnsPathOf(netns)}`, '--', 'sysctl', '-q', '-w', ...args], { where: `netns ${netns}`, timeoutMs: COMMAND_TIMEOUT_MS });
}

/** IPv4 addresses (without prefix length) on `dev` inside `netns`; [] when the device is missing. */
async function addressesOf(netns: string, dev: string): Promise<string[]> {
  const { stdout, code } = await run(['ip', '-n', netns, '-j', '-4', 'addr', 'show', 'dev', dev], {
    where: `netns ${netns}`,
    allowFailure: true,
    timeoutMs: COMMAND_TIMEOUT_MS,
  });
  if (code !== 0) return [];
  const parsed = JSON.parse(stdout || '[]') as Array<{ addr_info?: Array<{ local?: string; family?: string }> }>;
  return parsed.flatMap((link) => (link.addr_info ?? []).filter((a) => a.family === 'inet' && a.local).map((a) => a.local as string));
}

function netnsExists(netns: string): boolean {
  return existsSync(netnsPathOf(netns));
}

async function listNetns(): Promise<string[]> {
  try {
    return await readdir(NETNS_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function addNetns(netns: string): Promise<void> {
  await run(['ip', 'netns', 'add', netns], { where: 'sandbox network', timeoutMs: COMMAND_TIMEOUT_MS });
}

/** Delete a namespace and its /etc/netns dir; returns an error message instead of throwing. */
async function deleteNetns(netns: string, log: (m: string) => void): Promise<boolean> {
  let ok = true;
  if (netnsExists(netns)) {
    const pids = await run(['ip', 'netns', 'pids', netns], { where: 'sandbox network', allowFailure: true, timeoutMs: COMMAND_TIMEOUT_MS }).catch(() => undefined);
    const leftover = pids?.stdout.split('\n').filter(Boolean) ?? [];
    if (leftover.length) log(`warning: pids ${leftover.join(', ')} still run in ${netns}; the namespace lives until they exit`);
    const result = await run(['ip', 'netns', 'delete', netns], { where: 'sandbox network', allowFailure: true, timeoutMs: COMMAND_TIMEOUT_MS }).catch((err: Error) => ({
      code: 1,
      stderr: err.message,
    }));
    if (result.code === 0) log(`deleted netns ${netns}`);
    else {
      ok = false;
      log(`could not delete netns ${netns}: ${result.stderr.trim()}`);
    }
  }
  await rm(`${ETC_NETNS_DIR}/${netns}`, { recursive: true, force: true }).catch((err: Error) => {
    ok = false;
    log(`could not remove ${ETC_NETNS_DIR}/${netns}: ${err.message}`);
  });
  return ok;
}

interface DiscoveredPod {
  netns: string;
  node: string;
  ip: string;
}

export class ClusterNetwork {
  readonly plan: ClusterNetworkPlan;
  private readonly log: (message: string) => void;
  private readonly ipams = new Map<string, PodIpam>();
  private readonly pods = new Map<string, PodNetwork>();
  /** In-flight addPod/removePod per uid, so concurrent calls for one pod serialise. */
  private readonly pending = new Map<string, Promise<unknown>>();
  /** Pod namespaces found at attach/create time whose uid no addPod has claimed yet, by netns. */
  private readonly unclaimed = new Map<string, DiscoveredPod>();
  private destroyed = false;

  private constructor(plan: ClusterNetworkPlan, options: ClusterNetworkOptions) {
    this.plan = plan;
    this.log = options.log ?? (() => {});
    for (const node of plan.nodes) this.ipams.set(node.name, new PodIpam(node.podCidr));
  }

  /**
   * Build the fabric and node namespaces, adopting any that already exist with the expected
   * addresses (so `create` is idempotent). A same-named namespace with other addresses is an
   * error: it belongs to something else or to a sandbox with another layout.
   */
  static async create(layout: ClusterNetworkLayout, options: ClusterNetworkOptions = {}): Promise<ClusterNetwork> {
    const network = new ClusterNetwork(planClusterNetwork(layout), options);
    const created: string[] = [];
    try {
      await network.build(created);
      await network.discoverPods();
    } catch (err) {
      for (const netns of created.reverse()) await deleteNetns(netns, network.log);
      throw err;
    }
    return network;
  }

  /** Adopt a network built earlier (by `create`, possibly in another process). */
  static async attach(layout: ClusterNetworkLayout, options: ClusterNetworkOptions = {}): Promise<ClusterNetwork> {
    const network = new ClusterNetwork(planClusterNetwork(layout), options);
    const { plan } = network;
    await network.expectAddress(plan.fabricNetns, BRIDGE, plan.fabricIp, true);
    for (const node of plan.nodes) await network.expectAddress(node.netns, UPLINK, node.ip, true);
    // A sandbox made before LoadBalancer support gets its outside namespace and routes now.
    await network.loadBalancerPaths([]);
    await network.discoverPods();
    return network;
  }

  node(name: string): SandboxNodeNetwork {
    const node = this.plan.nodes.find((n) => n.name === name);
    if (!node) {
      throw new AmeshError('AMESH_SANDBOX_FAILED', `sandbox network ${this.plan.prefix}: no node named ${JSON.stringify(name)} (nodes: ${this.plan.nodes.map((n) => n.name).join(', ')})`);
    }
    return node;
  }

  pod(uid: string): PodNetwork | undefined {
    const pod = this.pods.get(uid);
    return pod ? { ...pod } : undefined;
  }

  /** Every pod wired through this object (adopted or created). */
  listPods(): PodNetwork[] {
    return [...this.pods.values()].map((p) => ({ ...p }));
  }

  /** Pod namespaces found on attach that no `addPod` has claimed (yet). */
  unclaimedPodNetns(): string[] {
    return [...this.unclaimed.keys()];
  }

  addPod(request: { uid: string; node: string; ip?: string }): Promise<PodNetwork> {
    return this.serialise(request.uid, () => this.doAddPod(request));
  }

  removePod(uid: string): Promise<void> {
    return this.serialise(uid, () => this.doRemovePod(uid));
  }

  /**
   * Delete pod namespaces discovered at attach time that no `addPod` claimed: pods deleted
   * while the daemon was down. Call after the kubelets have re-added every live pod, or pass
   * `keep` to spare the namespaces of pods that still exist but were not re-added yet.
   */
  async pruneUnclaimedPods(keep: (netns: string) => boolean = () => false): Promise<string[]> {
    const removed: string[] = [];
    for (const [netns, found] of [...this.unclaimed]) {
      if (keep(netns)) continue;
      this.unclaimed.delete(netns);
      this.ipams.get(found.node)?.release(found.ip);
      if (await deleteNetns(netns, this.log)) removed.push(netns);
    }
    return removed;
  }

  async setPodDns(uid: string, config: PodDnsConfig): Promise<void> {
    const pod = this.pods.get(uid);
    if (!pod) throw new AmeshError('AMESH_SANDBOX_FAILED', `sandbox network: cannot set DNS for pod ${uid}: it has no network (call addPod first)`);
    const dir = `${ETC_NETNS_DIR}/${pod.netns}`;
    await mkdir(dir, { recursive: true });
    await writeFile(`${dir}/resolv.conf`, renderResolvConf(config));
    await writeFile(`${dir}/hosts`, renderHosts(pod.ip, config.hostname));
    // The host may resolve through systemd-resolved (nss "resolve"), which would bypass the
    // pod's resolv.conf; the pod gets the host's nsswitch.conf with hosts: files dns.
    const hostNsswitch = await readFile('/etc/nsswitch.conf', 'utf8').catch(() => '');
    await writeFile(`${dir}/nsswitch.conf`, renderNsswitch(hostNsswitch));
  }

  /** Sets sysctls inside the pod's network namespace (the kubelet decided they are per-namespace). */
  async setPodSysctls(uid: string, sysctls: ReadonlyArray<{ name: string; value: string }>): Promise<void> {
    const pod = this.pods.get(uid);
    if (!pod) throw new AmeshError('AMESH_SANDBOX_FAILED', `sandbox network: cannot set sysctls for pod ${uid}: it has no network (call addPod first)`);
    if (sysctls.length) await sysctl(pod.netns, Object.fromEntries(sysctls.map((s) => [s.name, s.value])));
  }

  /** Delete every pod, node, outside and fabric namespace of this sandbox. Never throws. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    await Promise.allSettled([...this.pending.values()]);
    const podNetns = new Set([...[...this.pods.values()].map((p) => p.netns), ...this.unclaimed.keys()]);
    for (const netns of await listNetns().catch(() => [])) {
      if (netns.startsWith(`${this.plan.prefix}-p`) && /^[0-9a-f]+$/.test(netns.slice(this.plan.prefix.length + 2))) podNetns.add(netns);
    }
    for (const netns of podNetns) await deleteNetns(netns, this.log);
    for (const node of this.plan.nodes) await deleteNetns(node.netns, this.log);
    await deleteNetns(this.plan.outsideNetns, this.log);
    await deleteNetns(this.plan.fabricNetns, this.log);
    this.pods.clear();
    this.unclaimed.clear();
  }

  private serialise<T>(uid: string, work: () => Promise<T>): Promise<T> {
    const before = this.pending.get(uid) ?? Promise.resolve();
    const next = before.catch(() => undefined).then(work);
    this.pending.set(uid, next);
    void next
      .catch(() => undefined)
      .then(() => {
        if (this.pending.get(uid) === next) this.pending.delete(uid);
      });
    return next;
  }

  private async doAddPod(request: { uid: string; node: string; ip?: string }): Promise<PodNetwork> {
    if (this.destroyed) throw new AmeshError('AMESH_SANDBOX_FAILED', `sandbox network ${this.plan.prefix} is being destroyed; cannot add pod ${request.uid}`);
    const existing = this.pods.get(request.uid);
    if (existing) {
      if (existing.node !== request.node) {
        throw new AmeshError('AMESH_SANDBOX_FAILED', `pod ${request.uid} already has a network on node ${existing.node}; remove it before adding it on ${request.node}`);
      }
      return { ...existing };
    }
    const node = this.node(request.node);
    const ipam = this.ipams.get(node.name) as PodIpam;
    const { netns, hostVeth } = podNames(this.plan.prefix, request.uid);
    const adopted = this.unclaimed.get(netns);
    if (adopted) {
      this.unclaimed.delete(netns);
      if (adopted.node === node.name) {
        const pod: PodNetwork = { uid: request.uid, node: node.name, netns, netnsPath: netnsPathOf(netns), ip: adopted.ip, hostVeth };
        this.pods.set(request.uid, pod);
        this.log(`adopted pod network ${netns} (${adopted.ip}) on ${node.name}`);
        return { ...pod };
      }
      // Same pod, other node (the store changed while we were down): rebuild from scratch.
      this.ipams.get(adopted.node)?.release(adopted.ip);
      await deleteNetns(netns, this.log);
    } else if (netnsExists(netns)) {
      // Left over from a failed attempt or a crash before discovery: rebuild it.
      await deleteNetns(netns, this.log);
    }
    const ip = ipam.allocate(request.ip);
    try {
      this.log(`wiring pod ${request.uid} as ${netns} (${ip}) to ${node.netns}/${hostVeth}`);
      await addNetns(netns);
      await ipBatch(node.netns, [
        `link add ${hostVeth} address ${HOST_VETH_MAC} type veth peer name eth0 netns ${netns}`,
        `link set ${hostVeth} up`,
        `route replace ${ip}/32 dev ${hostVeth}`,
      ]);
      await sysctl(node.netns, { [`net.ipv4.conf.${hostVeth}.proxy_arp`]: 1, [`net.ipv4.conf.${hostVeth}.rp_filter`]: 0 });
      await ipBatch(netns, [
        'link set lo up',
        `addr add ${ip}/32 dev eth0`,
        'link set eth0 up',
        `route add default via ${POD_GATEWAY} dev eth0 onlink`,
        `neigh replace ${POD_GATEWAY} lladdr ${HOST_VETH_MAC} dev eth0 nud permanent`,
      ]);
    } catch (err) {
      ipam.release(ip);
      await deleteNetns(netns, this.log);
      throw new AmeshError('AMESH_SANDBOX_FAILED', `sandbox network: could not wire pod ${request.uid} on node ${node.name}`, { cause: err });
    }
    const pod: PodNetwork = { uid: request.uid, node: node.name, netns, netnsPath: netnsPathOf(netns), ip, hostVeth };
    this.pods.set(request.uid, pod);
    return { ...pod };
  }

  private async doRemovePod(uid: string): Promise<void> {
    const pod = this.pods.get(uid);
    const { netns } = pod ?? podNames(this.plan.prefix, uid);
    const unclaimed = this.unclaimed.get(netns);
    const ok = await deleteNetns(netns, this.log);
    if (!ok) throw new AmeshError('AMESH_SANDBOX_FAILED', `sandbox network: could not remove the network of pod ${uid} (${netns}); see the log`);
    if (pod) this.ipams.get(pod.node)?.release(pod.ip);
    if (unclaimed) this.ipams.get(unclaimed.node)?.release(unclaimed.ip);
    this.pods.delete(uid);
    this.unclaimed.delete(netns);
  }

  /** Check `dev` in `netns` has `ip`; `mustExist` makes a missing namespace an error too. */
  private async expectAddress(netns: string, dev: string, ip: string, mustExist: boolean): Promise<boolean> {
    if (!netnsExists(netns)) {
      if (!mustExist) return false;
      throw new AmeshError('AMESH_SANDBOX_NOT_RUNNING', `sandbox network ${this.plan.prefix}: namespace ${netns} does not exist`, { hint: 'run `amesh sandbox up` first' });
    }
    const addresses = await addressesOf(netns, dev);
    if (!addresses.includes(ip)) {
      throw new AmeshError(
        'AMESH_SANDBOX_FAILED',
        `sandbox network ${this.plan.prefix}: namespace ${netns} exists but ${dev} has ${addresses.join(', ') || 'no address'} instead of ${ip}`,
        { hint: `it belongs to another sandbox layout or program; run \`amesh sandbox down\` or \`ip netns delete ${netns}\`` },
      );
    }
    return true;
  }

  private async build(created: string[]): Promise<void> {
    const { plan } = this;
    const fresh = async (netns: string, dev: string, ip: string): Promise<boolean> => {
      if (await this.expectAddress(netns, dev, ip, false)) {
        this.log(`adopting existing netns ${netns}`);
        return false;
      }
      this.log(`creating netns ${netns}`);
      await addNetns(netns);
      created.push(netns);
      // `default` first so every interface created later inherits rp_filter=0: traffic the
      // mesh captures arrives with addresses the kernel would otherwise consider martian.
      await sysctl(netns, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0, 'net.ipv4.conf.lo.rp_filter': 0 });
      return true;
    };
    if (await fresh(plan.fabricNetns, BRIDGE, plan.fabricIp)) {
      await ipBatch(plan.fabricNetns, [
        'link set lo up',
        `link add ${BRIDGE} type bridge`,
        `link set ${BRIDGE} up`,
        `addr add ${plan.fabricIp}/${FABRIC_PREFIX_LENGTH} dev ${BRIDGE}`,
      ]);
    }
    for (const [index, node] of plan.nodes.entries()) {
      const port = `u${index + 1}`;
      if (await fresh(node.netns, UPLINK, node.ip)) {
        // A port left behind in the fabric by a half-built node would block the name.
        await run(['ip', '-n', plan.fabricNetns, 'link', 'delete', port], { where: `netns ${plan.fabricNetns}`, allowFailure: true, timeoutMs: COMMAND_TIMEOUT_MS });
        await ipBatch(plan.fabricNetns, [`link add ${port} type veth peer name ${UPLINK} netns ${node.netns}`, `link set ${port} master ${BRIDGE} up`]);
        await ipBatch(node.netns, ['link set lo up', `addr add ${node.ip}/${FABRIC_PREFIX_LENGTH} dev ${UPLINK}`, `link set ${UPLINK} up`]);
      }
      const routes = plan.nodes.filter((other) => other !== node).map((other) => `route replace ${other.podCidr} via ${other.ip} dev ${UPLINK}`);
      await ipBatch(node.netns, [...routes, `route replace ${plan.serviceCidr} via ${plan.fabricIp} dev ${UPLINK}`]);
    }
    await ipBatch(plan.fabricNetns, [
      ...plan.nodes.map((node) => `route replace ${node.podCidr} via ${node.ip} dev ${BRIDGE}`),
      `route replace ${plan.serviceCidr} dev ${BRIDGE}`,
    ]);
    await this.loadBalancerPaths(created);
    this.log(`sandbox network ${plan.prefix} ready: fabric ${plan.fabricNetns} (${plan.fabricIp}), nodes ${plan.nodes.map((n) => `${n.netns} (${n.ip})`).join(', ')}`);
  }

  /**
   * The LoadBalancer pool's routes in the fabric and the nodes, no ICMP redirects from the
   * fabric, and the outside client namespace. Idempotent (build and attach both call it);
   * namespaces it creates are pushed to `created`.
   */
  private async loadBalancerPaths(created: string[]): Promise<void> {
    const { plan } = this;
    await sysctl(plan.fabricNetns, { 'net.ipv4.conf.all.send_redirects': 0, 'net.ipv4.conf.default.send_redirects': 0, [`net.ipv4.conf.${BRIDGE}.send_redirects`]: 0 });
    await ipBatch(plan.fabricNetns, [`route replace ${plan.loadBalancerCidr} dev ${BRIDGE}`]);
    for (const node of plan.nodes) await ipBatch(node.netns, [`route replace ${plan.loadBalancerCidr} via ${plan.fabricIp} dev ${UPLINK}`]);
    if (netnsExists(plan.outsideNetns)) {
      if ((await addressesOf(plan.outsideNetns, 'eth0')).includes(plan.outsideIp)) return;
      // Half-built by a crashed run: it is ours by name, start it over.
      await deleteNetns(plan.outsideNetns, this.log);
    }
    this.log(`creating netns ${plan.outsideNetns} (the client outside the cluster)`);
    await addNetns(plan.outsideNetns);
    created.push(plan.outsideNetns);
    await run(['ip', '-n', plan.fabricNetns, 'link', 'delete', OUTSIDE_PORT], { where: `netns ${plan.fabricNetns}`, allowFailure: true, timeoutMs: COMMAND_TIMEOUT_MS });
    await ipBatch(plan.fabricNetns, [`link add ${OUTSIDE_PORT} type veth peer name eth0 netns ${plan.outsideNetns}`, `link set ${OUTSIDE_PORT} master ${BRIDGE} up`]);
    await ipBatch(plan.outsideNetns, [
      'link set lo up',
      `addr add ${plan.outsideIp}/32 dev eth0`,
      'link set eth0 up',
      `route add ${plan.fabricIp}/32 dev eth0 scope link`,
      `route add ${plan.loadBalancerCidr} via ${plan.fabricIp} dev eth0`,
    ]);
  }

  /** Find pod namespaces of this prefix (from an earlier daemon) and reserve their addresses. */
  private async discoverPods(): Promise<void> {
    const { prefix } = this.plan;
    for (const netns of await listNetns()) {
      if (!netns.startsWith(`${prefix}-p`) || !/^[0-9a-f]+$/.test(netns.slice(prefix.length + 2))) continue;
      if ([...this.pods.values()].some((p) => p.netns === netns)) continue;
      const [ip] = await addressesOf(netns, 'eth0');
      const node = ip ? this.plan.nodes.find((n) => cidrContains(parseIpv4Cidr(n.podCidr), ip)) : undefined;
      if (!ip || !node || this.ipams.get(node.name)?.isUsed(ip)) {
        this.log(`removing broken pod namespace ${netns} (address ${ip ?? 'none'})`);
        await deleteNetns(netns, this.log);
        continue;
      }
      this.ipams.get(node.name)?.markUsed(ip);
      this.unclaimed.set(netns, { netns, node: node.name, ip });
      this.log(`found pod namespace ${netns} (${ip}) on ${node.name}`);
    }
  }
}

/** Pure: /etc/resolv.conf for a pod (the kubelet's ClusterFirst policy decides the values). */
export function renderResolvConf(config: Pick<PodDnsConfig, 'nameserver' | 'searches' | 'ndots'>): string {
  const lines = [`nameserver ${config.nameserver}`];
  if (config.searches.length) lines.push(`search ${config.searches.join(' ')}`);
  lines.push(`options ndots:${config.ndots}`);
  return `${lines.join('\n')}\n`;
}

/** Pure: /etc/hosts for a pod, as the kubelet writes it. */
export function renderHosts(podIp: string, hostname: string): string {
  return ['# Kubernetes-managed hosts file (amesh sandbox).', '127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `${podIp}\t${hostname}`, ''].join('\n');
}

/** Pure: the host's nsswitch.conf with `hosts: files dns`, so lookups use the pod's resolv.conf. */
export function renderNsswitch(hostNsswitch: string): string {
  const lines = hostNsswitch.split('\n').filter((line) => !/^\s*hosts\s*:/.test(line));
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (!lines.some((line) => /^\s*passwd\s*:/.test(line))) lines.push('passwd: files', 'group: files');
  lines.push('hosts: files dns');
  return `${lines.join('\n')}\n`;
}

/**
 * For `sandbox down` after a crash: delete every namespace named `<prefix>-*` and every
 * `/etc/netns/<prefix>-*` directory. Kills nothing (the caller stops processes first); returns
 * the namespaces and directories removed. Never throws for a single failure; logs it.
 */
export async function removeClusterNetwork(prefix: string, log: (message: string) => void = () => {}): Promise<string[]> {
  if (!NAME_PATTERN.test(prefix)) invalid(`prefix ${JSON.stringify(prefix)} must be letters, digits, '-', '_' or '.'`);
  const mine = (name: string): boolean => name.startsWith(`${prefix}-`);
  const removed: string[] = [];
  const all = (await listNetns()).filter(mine);
  const isPod = (n: string): boolean => n.startsWith(`${prefix}-p`) && /^[0-9a-f]+$/.test(n.slice(prefix.length + 2));
  // Pods first, the fabric last: the order a live sandbox would be torn down in.
  const ordered = [...all.filter(isPod), ...all.filter((n) => !isPod(n) && n !== `${prefix}-net`), ...all.filter((n) => n === `${prefix}-net`)];
  for (const netns of ordered) {
    if (await deleteNetns(netns, log)) removed.push(netns);
  }
  const etc = await readdir(ETC_NETNS_DIR).catch(() => [] as string[]);
  for (const dir of etc.filter(mine)) {
    try {
      await rm(`${ETC_NETNS_DIR}/${dir}`, { recursive: true, force: true });
      removed.push(`${ETC_NETNS_DIR}/${dir}`);
    } catch (err) {
      log(`could not remove ${ETC_NETNS_DIR}/${dir}: ${(err as Error).message}`);
    }
  }
  return removed;
}
