/**
 * Cluster DNS answers, decided purely from Services and EndpointSlices, following the
 * Kubernetes DNS specification (https://github.com/kubernetes/dns/blob/master/docs/specification.md)
 * the way CoreDNS's `kubernetes` plugin implements it:
 *
 *   <svc>.<ns>.svc.<domain>                      A: the ClusterIP; headless: every ready endpoint
 *   <hostname>.<svc>.<ns>.svc.<domain>           A: the endpoint with that hostname (or a-b-c-d form)
 *   _<port>._<proto>.<svc>.<ns>.svc.<domain>     SRV: per named port (headless: per endpoint)
 *   <a-b-c-d>.<ns>.pod.<domain>                  A: a.b.c.d (CoreDNS `pods insecure`, kubeadm's default)
 *   ExternalName services                        CNAME to spec.externalName
 *
 * Names are case-insensitive; a known name asked for another type (AAAA: the sandbox has no
 * IPv6) is NOERROR with no answers; an unknown name inside the domain is NXDOMAIN. The sandbox
 * has no upstream resolver (its namespaces have no route off the machine), so names outside the
 * domain get a fast NXDOMAIN instead of a timeout or REFUSED, which would make resolvers retry.
 */
import { isIPv4 } from 'node:net';
import type { Answer, RecordType, SoaAnswer } from 'dns-packet';
import type { KubeObject } from '../apiserver/types.js';

export const CLUSTER_DOMAIN = 'cluster.local';
export const DNS_TTL_SECONDS = 5;
/** Used when the store has no `default/kubernetes` Service yet (the daemon bootstraps one). */
const DEFAULT_API_SERVICE_IP = '10.96.0.1';

export type DnsRcode = 'NOERROR' | 'NXDOMAIN';

export interface DnsResult {
  rcode: DnsRcode;
  answers: Answer[];
  /** SOA of the domain for negative answers (lets resolvers cache NXDOMAIN/NODATA briefly). */
  authorities: Answer[];
  /** A records of SRV targets (headless services). */
  additionals: Answer[];
}

export interface ServicePortView {
  name: string;
  port: number;
  protocol: 'tcp' | 'udp' | 'sctp';
}

export interface EndpointView {
  ip: string;
  hostname?: string;
}

export interface ServiceView {
  name: string;
  namespace: string;
  /** undefined for headless services. */
  clusterIp?: string;
  externalName?: string;
  ports: ServicePortView[];
  /** Ready endpoints (used for headless services), sorted by IP. */
  endpoints: EndpointView[];
}

export interface DnsView {
  domain: string;
  /** Key: `<name>.<namespace>`, lower case. */
  services: Map<string, ServiceView>;
  namespaces: Set<string>;
}

interface RawServiceSpec {
  clusterIP?: string;
  type?: string;
  externalName?: string;
  ports?: Array<{ name?: string; port?: number; protocol?: string }>;
}

interface RawSliceEndpoint {
  addresses?: string[];
  hostname?: string;
  conditions?: { ready?: boolean | null };
}

function ipKey(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** Pure: the lookup structure for `resolveName`, rebuilt whenever Services or slices change. */
export function buildDnsView(services: readonly KubeObject[], endpointSlices: readonly KubeObject[], domain = CLUSTER_DOMAIN): DnsView {
  const endpointsByService = new Map<string, Map<string, EndpointView>>();
  for (const slice of endpointSlices) {
    const service = slice.metadata.labels?.['kubernetes.io/service-name'];
    if (!service || (slice.addressType !== undefined && slice.addressType !== 'IPv4')) continue;
    const key = `${service}.${slice.metadata.namespace ?? 'default'}`.toLowerCase();
    const byIp = endpointsByService.get(key) ?? new Map<string, EndpointView>();
    for (const endpoint of (slice.endpoints ?? []) as RawSliceEndpoint[]) {
      const ip = endpoint.addresses?.[0];
      if (!ip || !isIPv4(ip) || endpoint.conditions?.ready === false) continue;
      byIp.set(ip, endpoint.hostname ? { ip, hostname: endpoint.hostname.toLowerCase() } : { ip });
    }
    endpointsByService.set(key, byIp);
  }
  const view: DnsView = { domain: domain.toLowerCase(), services: new Map(), namespaces: new Set(['default']) };
  for (const service of services) {
    const spec = (service.spec ?? {}) as RawServiceSpec;
    const namespace = (service.metadata.namespace ?? 'default').toLowerCase();
    const name = (service.metadata.name ?? '').toLowerCase();
    const key = `${name}.${namespace}`;
    view.namespaces.add(namespace);
    const entry: ServiceView = {
      name,
      namespace,
      ports: (spec.ports ?? [])
        .filter((p) => typeof p.port === 'number')
        .map((p) => ({ name: (p.name ?? '').toLowerCase(), port: p.port as number, protocol: (p.protocol ?? 'TCP').toLowerCase() as ServicePortView['protocol'] })),
      endpoints: [...(endpointsByService.get(key)?.values() ?? [])].sort((a, b) => ipKey(a.ip) - ipKey(b.ip)),
    };
    if (spec.type === 'ExternalName' && spec.externalName) entry.externalName = spec.externalName.replace(/\.$/, '').toLowerCase();
    else if (spec.clusterIP && isIPv4(spec.clusterIP)) entry.clusterIp = spec.clusterIP;
    view.services.set(key, entry);
  }
  if (!view.services.has('kubernetes.default')) {
    view.services.set('kubernetes.default', {
      name: 'kubernetes',
      namespace: 'default',
      clusterIp: DEFAULT_API_SERVICE_IP,
      ports: [{ name: 'https', port: 443, protocol: 'tcp' }],
      endpoints: [],
    });
  }
  return view;
}

function soa(domain: string): SoaAnswer {
  return {
    name: domain,
    type: 'SOA',
    ttl: DNS_TTL_SECONDS,
    class: 'IN',
    data: { mname: `ns.dns.${domain}`, rname: `hostmaster.${domain}`, serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: DNS_TTL_SECONDS },
  };
}

function a(name: string, ip: string): Answer {
  return { name, type: 'A', ttl: DNS_TTL_SECONDS, class: 'IN', data: ip };
}

/** The endpoint's DNS label: its hostname, else its IP with dashes (as CoreDNS names them). */
function endpointLabel(endpoint: EndpointView): string {
  return endpoint.hostname ?? endpoint.ip.replace(/\./g, '-');
}

/** What a name inside the domain denotes, before looking at the query type. */
type Target =
  | { kind: 'service'; service: ServiceView }
  | { kind: 'endpoint'; service: ServiceView; endpoint: EndpointView }
  | { kind: 'srv'; service: ServiceView; port: ServicePortView }
  | { kind: 'pod'; ip: string }
  | { kind: 'zone' };

function findTarget(labels: string[], view: DnsView): Target | undefined {
  // labels are the name's labels before the domain, e.g. ['web', 'demo', 'svc'].
  const zone = labels[labels.length - 1];
  if (labels.length === 0) return { kind: 'zone' };
  if (zone === 'svc' || zone === 'pod') {
    if (labels.length === 1) return { kind: 'zone' };
    const namespace = labels[labels.length - 2] as string;
    if (labels.length === 2) return view.namespaces.has(namespace) ? { kind: 'zone' } : undefined;
    if (zone === 'pod') {
      if (labels.length !== 3) return undefined;
      const ip = (labels[0] as string).replace(/-/g, '.');
      return isIPv4(ip) ? { kind: 'pod', ip } : undefined;
    }
    const service = view.services.get(`${labels[labels.length - 3]}.${namespace}`);
    if (!service) return undefined;
    if (labels.length === 3) return { kind: 'service', service };
    if (labels.length === 4) {
      const endpoint = service.endpoints.find((e) => endpointLabel(e) === labels[0]);
      return endpoint && service.clusterIp === undefined ? { kind: 'endpoint', service, endpoint } : undefined;
    }
    if (labels.length === 5 && labels[0]?.startsWith('_') && labels[1]?.startsWith('_')) {
      const portName = labels[0].slice(1);
      const protocol = labels[1].slice(1);
      const port = service.ports.find((p) => p.name === portName && p.protocol === protocol);
      return port && portName !== '' ? { kind: 'srv', service, port } : undefined;
    }
  }
  return undefined;
}

function srvRecords(name: string, service: ServiceView, port: ServicePortView, domain: string, additionals: Answer[]): Answer[] {
  const serviceName = `${service.name}.${service.namespace}.svc.${domain}`;
  if (service.clusterIp !== undefined) {
    return [{ name, type: 'SRV', ttl: DNS_TTL_SECONDS, class: 'IN', data: { priority: 0, weight: 100, port: port.port, target: serviceName } }];
  }
  // Headless: one SRV per endpoint; the port is the service port (slices may differ per pod, but
  // in the sandbox targetPort is the port most images listen on).
  const weight = Math.max(1, Math.floor(100 / Math.max(1, service.endpoints.length)));
  return service.endpoints.map((endpoint) => {
    const target = `${endpointLabel(endpoint)}.${serviceName}`;
    additionals.push(a(target, endpoint.ip));
    return { name, type: 'SRV', ttl: DNS_TTL_SECONDS, class: 'IN', data: { priority: 0, weight, port: port.port, target } } satisfies Answer;
  });
}

function addressRecords(name: string, service: ServiceView): Answer[] {
  if (service.externalName) return [{ name, type: 'CNAME', ttl: DNS_TTL_SECONDS, class: 'IN', data: service.externalName }];
  if (service.clusterIp !== undefined) return [a(name, service.clusterIp)];
  return service.endpoints.map((endpoint) => a(name, endpoint.ip));
}

/**
 * Pure: the answer to one question. `name` may carry a trailing dot and any case; answers use
 * the name as asked (lower-cased), as resolvers compare names case-insensitively anyway.
 */
export function resolveName(name: string, qtype: RecordType | string, view: DnsView): DnsResult {
  const fqdn = name.replace(/\.$/, '').toLowerCase();
  const domain = view.domain;
  const result = (rcode: DnsRcode, answers: Answer[] = [], additionals: Answer[] = []): DnsResult => ({
    rcode,
    answers,
    authorities: answers.length === 0 ? [soa(domain)] : [],
    additionals,
  });
  if (fqdn !== domain && !fqdn.endsWith(`.${domain}`)) return { rcode: 'NXDOMAIN', answers: [], authorities: [], additionals: [] };
  const labels = fqdn === domain ? [] : fqdn.slice(0, -(domain.length + 1)).split('.');
  const target = findTarget(labels, view);
  if (!target) return result('NXDOMAIN');
  const wantsAddress = qtype === 'A' || qtype === 'ANY';
  switch (target.kind) {
    case 'zone':
      return result('NOERROR');
    case 'pod':
      return result('NOERROR', wantsAddress ? [a(fqdn, target.ip)] : []);
    case 'endpoint':
      return result('NOERROR', wantsAddress ? [a(fqdn, target.endpoint.ip)] : []);
    case 'service': {
      if (qtype === 'SRV') {
        const additionals: Answer[] = [];
        const answers = target.service.ports.filter((p) => p.name !== '').flatMap((p) => srvRecords(fqdn, target.service, p, domain, additionals));
        return result('NOERROR', answers, additionals);
      }
      // A CNAME answers every type, as a real server would follow it (here: to nowhere).
      if (target.service.externalName) return result('NOERROR', addressRecords(fqdn, target.service));
      return result('NOERROR', wantsAddress ? addressRecords(fqdn, target.service) : []);
    }
    case 'srv': {
      if (qtype !== 'SRV' && qtype !== 'ANY') return result('NOERROR');
      const additionals: Answer[] = [];
      return result('NOERROR', srvRecords(fqdn, target.service, target.port, domain, additionals), additionals);
    }
  }
}
