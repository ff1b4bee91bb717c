/**
 * kube-proxy's decisions, as pure functions: which ClusterIP:port goes to which endpoints
 * (`buildServiceRoutes`), and the nftables ruleset that implements it (`renderKubeProxyRules`).
 * kube-proxy.ts only feeds store objects in and pipes the text to `nft -f -`.
 *
 * Semantics follow kube-proxy's nftables mode:
 * - A Service port maps to EndpointSlice ports by port name and protocol; an endpoint counts
 *   when `conditions.ready` is not false (unset means ready, per the EndpointSlice API), and
 *   only its first address is used (as kube-proxy does).
 * - A ClusterIP:port without ready endpoints is rejected (TCP reset / ICMP port unreachable) so
 *   clients fail fast instead of timing out. `reject` is only valid in filter chains, so those
 *   rules live in forward/output filter chains, while DNAT lives in the nat chains.
 * - Packets carrying amesh's capture mark are left alone: the node agent's eBPF capture resolves
 *   service VIPs of enrolled pods itself and must see the original destination.
 * - Hairpin (a pod reaching itself through its Service) would arrive with its own address as
 *   source and be dropped as martian; like kube-proxy, such packets get bit 0x4000 in the
 *   packet mark and are masqueraded on the way out.
 * - The API server (10.96.0.1:443) and cluster DNS (10.96.0.10:53) always work, even before their
 *   EndpointSlices exist: fixed entries point them at the sandbox daemon on the fabric.
 * - LoadBalancer Services: each `status.loadBalancer.ingress[].ip` is DNATed to the same
 *   endpoints as the ClusterIP (no NodePort hop; externalTrafficPolicy Cluster). Traffic from
 *   outside the pod network is masqueraded (kube-proxy's masquerade for external traffic): the
 *   outside client sits on the fabric segment, so without SNAT the endpoint's node would answer
 *   it directly, bypassing the conntrack entry that undoes the DNAT. Pods keep their source
 *   address. Anything else sent to the LoadBalancer pool (an unassigned address, a port the
 *   Service does not have) is rejected instead of left to time out.
 *
 * Out of scope: NodePort/externalIPs, session affinity, traffic policies (Local),
 * topology-aware routing, IPv6 and SCTP.
 */
import { isIPv4 } from 'node:net';
import type { KubeObject } from '../apiserver/types.js';

export const KUBE_PROXY_TABLE = 'amesh-kube-proxy';
/** kube-proxy's masquerade bit (`--iptables-masquerade-bit=14`). */
export const MASQUERADE_MARK = 0x4000;
/** amesh's capture mark and the bits it occupies (src/config/agent-config.ts captureMark). */
export const DEFAULT_CAPTURE_MARK = 0x111;
export const CAPTURE_MARK_MASK = 0xfff;

export type L4Protocol = 'tcp' | 'udp';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface ServiceRoute {
  /** `<namespace>/<service>:<port name or number>/<protocol>`, for comments and logs. */
  name: string;
  vip: string;
  port: number;
  protocol: L4Protocol;
  /** Ready endpoints, sorted; empty means the port rejects. */
  endpoints: Endpoint[];
  /** A LoadBalancer address (reached from outside the cluster): non-pod sources are masqueraded. */
  external?: boolean;
}

export interface FixedRoute {
  vip: string;
  port: number;
  protocol: L4Protocol;
  endpoint: Endpoint;
  name: string;
}

/** The API server and DNS entries every sandbox has, pointing at the daemon on the fabric. */
export function defaultFixedRoutes(fabricIp: string): FixedRoute[] {
  return [
    { name: 'default/kubernetes:https/tcp', vip: '10.96.0.1', port: 443, protocol: 'tcp', endpoint: { ip: fabricIp, port: 6443 } },
    { name: 'kube-system/kube-dns:dns/udp', vip: '10.96.0.10', port: 53, protocol: 'udp', endpoint: { ip: fabricIp, port: 53 } },
    { name: 'kube-system/kube-dns:dns-tcp/tcp', vip: '10.96.0.10', port: 53, protocol: 'tcp', endpoint: { ip: fabricIp, port: 53 } },
  ];
}

interface ServicePort {
  name?: string;
  port?: number;
  targetPort?: number | string;
  protocol?: string;
}

interface SlicePort {
  name?: string | null;
  port?: number | null;
  protocol?: string;
}

interface SliceEndpoint {
  addresses?: string[];
  conditions?: { ready?: boolean | null };
}

function protocolOf(value: string | undefined): L4Protocol | undefined {
  const upper = (value ?? 'TCP').toUpperCase();
  if (upper === 'TCP') return 'tcp';
  if (upper === 'UDP') return 'udp';
  return undefined;
}

function validPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

function routeKey(r: { vip: string; port: number; protocol: string }): string {
  return `${r.vip}:${r.port}/${r.protocol}`;
}

/** Pure: every ClusterIP:port/protocol with its ready endpoints, plus the fixed entries. */
export function buildServiceRoutes(services: readonly KubeObject[], endpointSlices: readonly KubeObject[], fixed: readonly FixedRoute[] = []): ServiceRoute[] {
  const slicesByService = new Map<string, KubeObject[]>();
  for (const slice of endpointSlices) {
    const service = slice.metadata.labels?.['kubernetes.io/service-name'];
    if (!service || (slice.addressType !== undefined && slice.addressType !== 'IPv4')) continue;
    const key = `${slice.metadata.namespace ?? 'default'}/${service}`;
    slicesByService.set(key, [...(slicesByService.get(key) ?? []), slice]);
  }

  const routes = new Map<string, ServiceRoute>();
  for (const service of services) {
    const spec = (service.spec ?? {}) as { clusterIP?: string; type?: string; ports?: ServicePort[] };
    const vip = spec.clusterIP;
    if (!vip || !isIPv4(vip) || spec.type === 'ExternalName') continue;
    const external = spec.type === 'LoadBalancer' ? loadBalancerIps(service).filter((ip) => ip !== vip) : [];
    const serviceKey = `${service.metadata.namespace ?? 'default'}/${service.metadata.name ?? ''}`;
    const slices = slicesByService.get(serviceKey) ?? [];
    for (const servicePort of spec.ports ?? []) {
      const protocol = protocolOf(servicePort.protocol);
      if (!protocol || !validPort(servicePort.port)) continue;
      const portName = servicePort.name ?? '';
      const endpoints = new Map<string, Endpoint>();
      for (const slice of slices) {
        const slicePorts = (slice.ports ?? []) as SlicePort[];
        const match = slicePorts.find((p) => (p.name ?? '') === portName && protocolOf(p.protocol) === protocol);
        // A slice without ports still carries addresses; a numeric targetPort says where to go.
        const port = match ? match.port : slicePorts.length === 0 && typeof servicePort.targetPort === 'number' ? servicePort.targetPort : undefined;
        if (!validPort(port)) continue;
        for (const endpoint of (slice.endpoints ?? []) as SliceEndpoint[]) {
          const ip = endpoint.addresses?.[0];
          if (!ip || !isIPv4(ip) || endpoint.conditions?.ready === false) continue;
          endpoints.set(`${ip}:${port}`, { ip, port });
        }
      }
      const name = `${serviceKey}:${servicePort.name || servicePort.port}/${protocol}`;
      const sorted = [...endpoints.values()].sort(compareEndpoints);
      const route: ServiceRoute = { name, vip, port: servicePort.port, protocol, endpoints: sorted };
      // Two Services claiming one ClusterIP cannot happen through admission; keep the first.
      if (!routes.has(routeKey(route))) routes.set(routeKey(route), route);
      for (const ip of external) {
        const lb: ServiceRoute = { name: `${name} loadbalancer`, vip: ip, port: servicePort.port, protocol, endpoints: sorted, external: true };
        if (!routes.has(routeKey(lb))) routes.set(routeKey(lb), lb);
      }
    }
  }
  for (const entry of fixed) {
    const existing = routes.get(routeKey(entry));
    if (existing && existing.endpoints.length > 0) continue;
    routes.set(routeKey(entry), { name: existing?.name ?? entry.name, vip: entry.vip, port: entry.port, protocol: entry.protocol, endpoints: [entry.endpoint] });
  }
  return [...routes.values()].sort(compareRoutes);
}

/** IPv4 addresses in `status.loadBalancer.ingress[].ip`. */
function loadBalancerIps(service: KubeObject): string[] {
  const status = (service.status ?? {}) as { loadBalancer?: { ingress?: Array<{ ip?: unknown }> } };
  const ingress = Array.isArray(status.loadBalancer?.ingress) ? status.loadBalancer.ingress : [];
  return ingress.map((entry) => entry.ip).filter((ip): ip is string => typeof ip === 'string' && isIPv4(ip));
}

function ipSortKey(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  return ipSortKey(a.ip) - ipSortKey(b.ip) || a.port - b.port;
}

function compareRoutes(a: ServiceRoute, b: ServiceRoute): number {
  return ipSortKey(a.vip) - ipSortKey(b.vip) || a.port - b.port || a.protocol.localeCompare(b.protocol);
}

export interface RenderOptions {
  captureMark?: number;
  /** Sources inside it are pods and keep their address on LoadBalancer routes (default 10.244.0.0/16). */
  clusterCidr?: string;
  /** Traffic to this pool that no LoadBalancer route takes is rejected (omitted: not rejected). */
  loadBalancerCidr?: string;
}

/** The pod network of every sandbox node (10.244.<i>.0/24). */
export const DEFAULT_CLUSTER_CIDR = '10.244.0.0/16';

/** nft string literal for a comment: printable ASCII without quotes, at most 128 bytes. */
function comment(text: string): string {
  return `comment "${text.replace(/[^\x20-\x7e]|"/g, '_').slice(0, 120)}"`;
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

/**
 * Pure: one `nft -f` transaction that replaces the whole table atomically. The table is first
 * declared (a no-op when it exists) so `delete table` never fails, then rebuilt from scratch:
 * stale per-service chains disappear with it, and packets see either the old or the new rules.
 */
export function renderKubeProxyRules(routes: readonly ServiceRoute[], options: RenderOptions = {}): string {
  const captureMark = options.captureMark ?? DEFAULT_CAPTURE_MARK;
  const t = KUBE_PROXY_TABLE;
  const skipCaptured = `meta mark & ${hex(CAPTURE_MARK_MASK)} == ${hex(captureMark & CAPTURE_MARK_MASK)} return`;
  const dispatch: string[] = [];
  const reject: string[] = [];
  const chains: string[] = [];
  const clusterCidr = options.clusterCidr ?? DEFAULT_CLUSTER_CIDR;
  routes.forEach((route, index) => {
    const match = `ip daddr ${route.vip} ${route.protocol} dport ${route.port}`;
    if (route.endpoints.length === 0) {
      reject.push(`${match} ${route.protocol === 'tcp' ? 'reject with tcp reset' : 'reject'} ${comment(`${route.name} has no endpoints`)}`);
      return;
    }
    const service = `svc${index}`;
    if (route.external) dispatch.push(`${match} ip saddr != ${clusterCidr} meta mark set meta mark | ${hex(MASQUERADE_MARK)} ${comment(`${route.name}: masquerade external clients`)}`);
    dispatch.push(`${match} goto ${service} ${comment(route.name)}`);
    const endpointChains = route.endpoints.map((endpoint, i) => {
      const chain = `${service}-ep${i}`;
      chains.push(
        `\tchain ${chain} {\n` +
          `\t\tip saddr ${endpoint.ip} meta mark set meta mark | ${hex(MASQUERADE_MARK)}\n` +
          `\t\tmeta l4proto ${route.protocol} dnat to ${endpoint.ip}:${endpoint.port}\n` +
          `\t}`,
      );
      return chain;
    });
    const pick =
      endpointChains.length === 1
        ? `goto ${endpointChains[0]}`
        : `numgen random mod ${endpointChains.length} vmap { ${endpointChains.map((chain, i) => `${i} : goto ${chain}`).join(', ')} }`;
    chains.push(`\tchain ${service} {\n\t\t${pick}\n\t}`);
  });
  const lines = [
    `table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    `\tchain services {`,
    ...dispatch.map((rule) => `\t\t${rule}`),
    `\t}`,
    `\tchain no-endpoints {`,
    ...reject.map((rule) => `\t\t${rule}`),
    ...(options.loadBalancerCidr
      ? [
          `\t\tip daddr ${options.loadBalancerCidr} meta l4proto tcp reject with tcp reset ${comment('no LoadBalancer Service on this address and port')}`,
          `\t\tip daddr ${options.loadBalancerCidr} reject ${comment('no LoadBalancer Service on this address and port')}`,
        ]
      : []),
    `\t}`,
    ...chains,
    `\tchain nat-prerouting {`,
    `\t\ttype nat hook prerouting priority dstnat; policy accept;`,
    `\t\t${skipCaptured}`,
    `\t\tjump services`,
    `\t}`,
    `\tchain nat-output {`,
    // `dstnat` names a priority only for prerouting; -100 is the same value for output.
    `\t\ttype nat hook output priority -100; policy accept;`,
    `\t\t${skipCaptured}`,
    `\t\tjump services`,
    `\t}`,
    `\tchain nat-postrouting {`,
    `\t\ttype nat hook postrouting priority srcnat; policy accept;`,
    // Local hairpin (a process dialing a Service backed by its own address) stays on lo and
    // needs no masquerade; rewriting it to 127.0.0.1 would break the reply.
    `\t\tmeta mark & ${hex(MASQUERADE_MARK)} == ${hex(MASQUERADE_MARK)} oifname != "lo" masquerade`,
    `\t}`,
    `\tchain filter-forward {`,
    `\t\ttype filter hook forward priority filter; policy accept;`,
    `\t\t${skipCaptured}`,
    `\t\tjump no-endpoints`,
    `\t}`,
    `\tchain filter-output {`,
    `\t\ttype filter hook output priority filter; policy accept;`,
    `\t\t${skipCaptured}`,
    `\t\tjump no-endpoints`,
    `\t}`,
    `}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Pure: the transaction that removes the table (declared first so a missing table is fine). */
export function renderKubeProxyRemoval(): string {
  return `table ip ${KUBE_PROXY_TABLE}\ndelete table ip ${KUBE_PROXY_TABLE}\n`;
}
