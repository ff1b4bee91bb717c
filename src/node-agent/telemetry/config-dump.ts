/**
 * The node agent's `/config_dump` in ztunnel's JSON shape (DESIGN §8), so `istioctl
 * ztunnel-config`-style tooling and `amesh ztunnel-config` read it as they read ztunnel's:
 *
 *   workloads[]    sorted by uid: workloadIps, waypoint {destination "network/ip" | "ns/hostname",
 *                  hboneMtlsPort}, protocol "HBONE" | "TCP", networkMode, uid, name, namespace,
 *                  trustDomain, serviceAccount, network?, workloadName?, workloadType (lower
 *                  case), canonicalName?, canonicalRevision?, hostname?, node?,
 *                  authorizationPolicies?, status "Healthy" | "Unhealthy", clusterId, services
 *                  ["ns/hostname"]?, capacity. Empty optional fields are left out, as ztunnel does.
 *   services[]     sorted by hostname then namespace: name, namespace, hostname, vips
 *                  ["network/ip"], ports {"80": 8080}, endpoints {uid: {workloadUid, service,
 *                  port {"80": 8080}, status}}, subjectAltNames, waypoint?
 *   policies[]     sorted by namespace/name: name, namespace, scope "Global" | "Namespace" |
 *                  "WorkloadSelector", action "Allow" | "Deny", rules [rule][clause][match] with
 *                  StringMatch as {"Exact": "x"} / {"Prefix"} / {"Suffix"} / {"Presence": []} and
 *                  IP matches as "cidr" strings, dryRun
 *   certificates[] sorted by identity: identity, state "Available" | "Initializing" |
 *                  "Unavailable: <error>", certChain (leaf + intermediates) and rootCerts, each
 *                  {pem: base64 of the PEM text, serialNumber: decimal, validFrom, expirationTime:
 *                  RFC 3339 to the second}. amesh extras on each: serial (hex), notBefore,
 *                  notAfter, nextAttempt, failures, lastError.
 *
 * Then amesh's own keys (node, version, stateSource, xds, ca, capture, connections, telemetry…),
 * passed in as `extras` and never allowed to shadow the four ztunnel keys. Pure: the same input
 * gives the same output (certificates are parsed, not fetched).
 */
import { X509Certificate } from 'node:crypto';
import type { CertificateSnapshot } from '../../identity/certificate-manager.js';
import type { AddressMatch, Authorization, GatewayAddress, Match, MeshSnapshot, Port, Service, StringMatch, Workload } from '../state/types.js';

export interface ZtunnelGatewayAddress {
  destination: string;
  hboneMtlsPort: number;
}

export interface ZtunnelWorkload {
  workloadIps: string[];
  waypoint?: ZtunnelGatewayAddress;
  protocol: 'HBONE' | 'TCP';
  networkMode: 'Standard';
  uid: string;
  name: string;
  namespace: string;
  trustDomain: string;
  serviceAccount: string;
  network?: string;
  workloadName?: string;
  workloadType: string;
  canonicalName?: string;
  canonicalRevision?: string;
  hostname?: string;
  node?: string;
  authorizationPolicies?: string[];
  status: 'Healthy' | 'Unhealthy';
  clusterId: string;
  services?: string[];
  capacity: number;
}

export interface ZtunnelEndpoint {
  workloadUid: string;
  service: string;
  port: Record<string, number>;
  status: 'Healthy' | 'Unhealthy';
}

export interface ZtunnelService {
  name: string;
  namespace: string;
  hostname: string;
  vips: string[];
  ports: Record<string, number>;
  endpoints: Record<string, ZtunnelEndpoint>;
  subjectAltNames: string[];
  waypoint?: ZtunnelGatewayAddress;
}

export type ZtunnelStringMatch = { Exact: string } | { Prefix: string } | { Suffix: string } | { Presence: [] };

export interface ZtunnelMatch {
  namespaces?: ZtunnelStringMatch[];
  notNamespaces?: ZtunnelStringMatch[];
  principals?: ZtunnelStringMatch[];
  notPrincipals?: ZtunnelStringMatch[];
  sourceIps?: string[];
  notSourceIps?: string[];
  destinationIps?: string[];
  notDestinationIps?: string[];
  destinationPorts?: number[];
  notDestinationPorts?: number[];
}

export interface ZtunnelPolicy {
  name: string;
  namespace: string;
  scope: 'Global' | 'Namespace' | 'WorkloadSelector';
  action: 'Allow' | 'Deny';
  rules: ZtunnelMatch[][][];
  dryRun: boolean;
}

export interface ZtunnelCert {
  pem: string;
  serialNumber: string;
  validFrom: string;
  expirationTime: string;
}

export interface ZtunnelCertificate {
  identity: string;
  state: string;
  certChain: ZtunnelCert[];
  rootCerts: ZtunnelCert[];
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  nextAttempt?: string;
  failures: number;
  lastError?: string;
}

export interface ConfigDump {
  workloads: ZtunnelWorkload[];
  services: ZtunnelService[];
  policies: ZtunnelPolicy[];
  certificates: ZtunnelCertificate[];
  [extra: string]: unknown;
}

export interface ConfigDumpInput {
  snapshot: MeshSnapshot;
  certificates: readonly CertificateSnapshot[];
  /** amesh's own keys, appended after the ztunnel ones. */
  extras?: Record<string, unknown>;
}

const ZTUNNEL_KEYS = new Set(['workloads', 'services', 'policies', 'certificates']);

function byKey<T>(key: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}

/** ztunnel's NetworkAddress text: `network/ip` (an empty network gives `/ip`). */
function networkAddress(network: string | undefined, ip: string): string {
  return `${network ?? ''}/${ip}`;
}

function gatewayAddress(g: GatewayAddress): ZtunnelGatewayAddress {
  const destination = g.hostname ? `${g.hostname.namespace}/${g.hostname.hostname}` : networkAddress(g.address?.network, g.address?.address ?? '');
  return { destination, hboneMtlsPort: g.hboneMtlsPort };
}

function portMap(ports: readonly Port[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of [...ports].sort((a, b) => a.servicePort - b.servicePort)) out[String(p.servicePort)] = p.targetPort;
  return out;
}

function health(status: Workload['status']): 'Healthy' | 'Unhealthy' {
  return status === 'UNHEALTHY' ? 'Unhealthy' : 'Healthy';
}

export function dumpWorkload(w: Workload, meshTrustDomain: string): ZtunnelWorkload {
  const services = Object.keys(w.services).sort();
  return {
    workloadIps: [...w.addresses],
    ...(w.waypoint ? { waypoint: gatewayAddress(w.waypoint) } : {}),
    protocol: w.tunnelProtocol === 'HBONE' ? 'HBONE' : 'TCP',
    networkMode: 'Standard',
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    trustDomain: w.trustDomain || meshTrustDomain,
    serviceAccount: w.serviceAccount || 'default',
    ...(w.network ? { network: w.network } : {}),
    ...(w.workloadName ? { workloadName: w.workloadName } : {}),
    workloadType: (w.workloadType ?? 'DEPLOYMENT').toLowerCase(),
    ...(w.canonicalName ? { canonicalName: w.canonicalName } : {}),
    ...(w.canonicalRevision ? { canonicalRevision: w.canonicalRevision } : {}),
    ...(w.hostname ? { hostname: w.hostname } : {}),
    ...(w.node ? { node: w.node } : {}),
    ...(w.authorizationPolicies?.length ? { authorizationPolicies: [...w.authorizationPolicies] } : {}),
    status: health(w.status),
    clusterId: w.clusterId || 'Kubernetes',
    ...(services.length ? { services } : {}),
    capacity: w.capacity ?? 1,
  };
}

export function dumpService(s: Service, workloads: readonly Workload[]): ZtunnelService {
  const key = `${s.namespace}/${s.hostname}`;
  const endpoints: Record<string, ZtunnelEndpoint> = {};
  for (const w of [...workloads].sort(byKey((x) => x.uid))) {
    const list = w.services[key];
    if (!list) continue;
    // A workload's empty port list means "the service's own ports" (Istio's workload API).
    endpoints[w.uid] = { workloadUid: w.uid, service: key, port: portMap(list.ports.length ? list.ports : s.ports), status: health(w.status) };
  }
  return {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: s.addresses.map((ip) => networkAddress(undefined, ip)),
    ports: portMap(s.ports),
    endpoints,
    subjectAltNames: [...(s.subjectAltNames ?? [])],
    ...(s.waypoint ? { waypoint: gatewayAddress(s.waypoint) } : {}),
  };
}

function stringMatch(m: StringMatch): ZtunnelStringMatch {
  if ('exact' in m) return { Exact: m.exact };
  if ('prefix' in m) return { Prefix: m.prefix };
  if ('suffix' in m) return { Suffix: m.suffix };
  return { Presence: [] };
}

function cidr(a: AddressMatch): string {
  return `${a.address}/${a.length}`;
}

function dumpMatch(m: Match): ZtunnelMatch {
  const out: ZtunnelMatch = {};
  const strings = (k: 'namespaces' | 'notNamespaces' | 'principals' | 'notPrincipals'): void => {
    const v = m[k];
    if (v?.length) out[k] = v.map(stringMatch);
  };
  const ips = (k: 'sourceIps' | 'notSourceIps' | 'destinationIps' | 'notDestinationIps'): void => {
    const v = m[k];
    if (v?.length) out[k] = v.map(cidr);
  };
  const ports = (k: 'destinationPorts' | 'notDestinationPorts'): void => {
    const v = m[k];
    if (v?.length) out[k] = [...v];
  };
  strings('namespaces');
  strings('notNamespaces');
  strings('principals');
  strings('notPrincipals');
  ips('sourceIps');
  ips('notSourceIps');
  ips('destinationIps');
  ips('notDestinationIps');
  ports('destinationPorts');
  ports('notDestinationPorts');
  return out;
}

const SCOPES = { GLOBAL: 'Global', NAMESPACE: 'Namespace', WORKLOAD_SELECTOR: 'WorkloadSelector' } as const;

export function dumpPolicy(p: Authorization): ZtunnelPolicy {
  return {
    name: p.name,
    namespace: p.namespace,
    scope: SCOPES[p.scope],
    action: p.action === 'DENY' ? 'Deny' : 'Allow',
    rules: p.rules.map((r) => r.clauses.map((c) => c.matches.map(dumpMatch))),
    dryRun: p.dryRun ?? false,
  };
}

/** RFC 3339 to the second, as ztunnel prints certificate times. */
function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function normalizePem(pem: string): string {
  return pem.replace(/\r/g, '').trim();
}

export function dumpCert(pem: string): ZtunnelCert {
  const text = `${normalizePem(pem)}\n`;
  const base = { pem: Buffer.from(text, 'utf8').toString('base64') };
  try {
    const x = new X509Certificate(text);
    return {
      ...base,
      serialNumber: BigInt(`0x${x.serialNumber}`).toString(10),
      validFrom: rfc3339(new Date(x.validFrom)),
      expirationTime: rfc3339(new Date(x.validTo)),
    };
  } catch {
    // Never fail the whole dump over one unreadable certificate.
    return { ...base, serialNumber: '', validFrom: '', expirationTime: '' };
  }
}

export function dumpCertificate(c: CertificateSnapshot): ZtunnelCertificate {
  const roots = new Set(c.roots.map(normalizePem));
  return {
    identity: c.identity,
    state: c.state === 'Unavailable' ? `Unavailable: ${c.lastError ?? 'no certificate'}` : c.state,
    certChain: c.chain.filter((pem) => !roots.has(normalizePem(pem))).map(dumpCert),
    rootCerts: c.roots.map(dumpCert),
    ...(c.serial !== undefined ? { serial: c.serial } : {}),
    ...(c.notBefore !== undefined ? { notBefore: c.notBefore } : {}),
    ...(c.notAfter !== undefined ? { notAfter: c.notAfter } : {}),
    ...(c.nextAttempt !== undefined ? { nextAttempt: c.nextAttempt } : {}),
    failures: c.failures,
    ...(c.lastError !== undefined ? { lastError: c.lastError } : {}),
  };
}

export function buildConfigDump(input: ConfigDumpInput): ConfigDump {
  const { snapshot: s } = input;
  const dump: ConfigDump = {
    workloads: [...s.workloads].sort(byKey((w) => w.uid)).map((w) => dumpWorkload(w, s.trustDomain)),
    services: [...s.services].sort(byKey((x) => `${x.hostname}\u0000${x.namespace}`)).map((x) => dumpService(x, s.workloads)),
    policies: [...s.policies].sort(byKey((p) => `${p.namespace}/${p.name}`)).map(dumpPolicy),
    certificates: [...input.certificates].sort(byKey((c) => c.identity)).map(dumpCertificate),
  };
  for (const [key, value] of Object.entries(input.extras ?? {})) {
    if (!ZTUNNEL_KEYS.has(key) && value !== undefined) dump[key] = value;
  }
  return dump;
}
