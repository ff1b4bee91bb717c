/**
 * The node agent's `/config_dump` read into plain rows for `amesh ztunnel-config` and
 * `amesh diagnose`. Pure; accepts both shapes the agent has served:
 * - ztunnel's field names (issue #9): workloads[].workloadIps / protocol, services[].vips
 *   (`network/ip` or `ip`) / endpoints, certificates[].certChain[{serialNumber, validFrom,
 *   expirationTime}];
 * - the earlier Istio-workload-API shape: workloads[].addresses / tunnelProtocol, services[].addresses
 *   (endpoints from the workloads' `services` keys), certificates[] {serial, notBefore, notAfter, chain}.
 * Unknown or missing fields become '' / [] rather than errors: an inspect command shows what it
 * can. Never throws on a well-formed JSON object.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

export interface WorkloadRow {
  uid: string;
  namespace: string;
  name: string;
  addresses: string[];
  node: string;
  /** `namespace/name` (or the hostname / address) of the waypoint, '' when none. */
  waypoint: string;
  protocol: string;
  serviceAccount: string;
  status: string;
  /** `namespace/hostname` of the services selecting it. */
  services: string[];
}

export interface ServiceRow {
  namespace: string;
  name: string;
  hostname: string;
  vips: string[];
  waypoint: string;
  endpointsHealthy: number;
  endpointsTotal: number;
}

export interface PolicyRow {
  namespace: string;
  name: string;
  action: string;
  scope: string;
  rules: number;
  dryRun: boolean;
}

export interface CertificateRow {
  identity: string;
  /** Leaf, Intermediate or Root; '' when no certificate was issued. */
  type: string;
  state: string;
  valid: boolean;
  serial: string;
  notAfter: string;
  notBefore: string;
  /** Why the last fetch failed, when the agent says. */
  error: string;
}

export interface ConnectionRow {
  workload: string;
  direction: string;
  local: string;
  remote: string;
  identity: string;
  state: string;
}

export interface CaView {
  mode: string;
  address: string;
  /** A problem the agent reports about its CA or trust bundle, '' when none. */
  problem: string;
}

export interface ConfigDumpView {
  node: string;
  workloads: WorkloadRow[];
  services: ServiceRow[];
  policies: PolicyRow[];
  certificates: CertificateRow[];
  connections: ConnectionRow[];
  ca: CaView;
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '');
const strs = (v: unknown): string[] => arr(v).map(str).filter((s) => s !== '');

/** ztunnel writes VIPs and workload IPs as `network/ip`; the network is '' on a flat network. */
export function stripNetwork(address: string): string {
  const slash = address.indexOf('/');
  // An IPv6 CIDR never appears here; `a/b` is network/address.
  return slash >= 0 ? address.slice(slash + 1) : address;
}

/** `waypoint` in any of the shapes: GatewayAddress {hostname{namespace,hostname}|address{address}}, {destination}, a string. */
export function waypointName(v: unknown): string {
  if (typeof v === 'string') return v;
  const w = obj(v);
  // ztunnel: "namespace/hostname" or "network/ip".
  if (typeof w.destination === 'string') {
    const slash = w.destination.indexOf('/');
    const ns = slash >= 0 ? w.destination.slice(0, slash) : '';
    const rest = w.destination.slice(slash + 1);
    if (isIP(rest)) return rest;
    return ns ? `${ns}/${rest.split('.')[0] ?? rest}` : rest;
  }
  const host = obj(w.hostname);
  if (typeof host.hostname === 'string') {
    const short = host.hostname.split('.')[0] ?? host.hostname;
    const ns = str(host.namespace);
    return ns ? `${ns}/${short}` : short;
  }
  const address = obj(w.address);
  if (typeof address.address === 'string') return stripNetwork(address.address);
  return '';
}

function workloadRow(v: unknown): WorkloadRow {
  const w = obj(v);
  const services = Array.isArray(w.services) ? strs(w.services) : Object.keys(obj(w.services));
  return {
    uid: str(w.uid),
    namespace: str(w.namespace),
    name: str(w.name),
    addresses: (w.workloadIps !== undefined ? strs(w.workloadIps) : strs(w.addresses)).map(stripNetwork),
    node: str(w.node),
    waypoint: waypointName(w.waypoint),
    // ztunnel says TCP for plaintext; the earlier shape said NONE.
    protocol: (str(w.protocol ?? w.tunnelProtocol) || 'TCP').replace(/^NONE$/, 'TCP'),
    serviceAccount: str(w.serviceAccount),
    status: str(w.status),
    services,
  };
}

/** ztunnel: endpoints is a map uid → endpoint (or, in some versions, a list); we count them. */
function endpointUids(v: unknown): string[] {
  if (Array.isArray(v)) return v.map((e) => str(obj(e).workloadUid) || str(e)).filter((s) => s !== '');
  return Object.entries(obj(v)).map(([k, e]) => str(obj(e).workloadUid) || k);
}

function serviceRow(v: unknown, workloads: readonly WorkloadRow[]): ServiceRow {
  const s = obj(v);
  const namespace = str(s.namespace);
  const hostname = str(s.hostname);
  const uids = s.endpoints !== undefined ? endpointUids(s.endpoints) : workloads.filter((w) => w.services.includes(`${namespace}/${hostname}`)).map((w) => w.uid);
  const byUid = new Map(workloads.map((w) => [w.uid, w]));
  const healthy = uids.filter((u) => {
    const status = byUid.get(u)?.status ?? '';
    return status === '' || /^healthy$/i.test(status);
  }).length;
  return {
    namespace,
    name: str(s.name),
    hostname,
    vips: (s.vips !== undefined ? strs(s.vips) : strs(s.addresses)).map(stripNetwork),
    waypoint: waypointName(s.waypoint),
    endpointsHealthy: healthy,
    endpointsTotal: uids.length,
  };
}

function policyRow(v: unknown): PolicyRow {
  const p = obj(v);
  return { namespace: str(p.namespace), name: str(p.name), action: str(p.action), scope: str(p.scope), rules: arr(p.rules).length, dryRun: p.dryRun === true };
}

function parsePem(pem: string): { serial: string; notBefore: string; notAfter: string } | undefined {
  try {
    const x = new X509Certificate(pem);
    return { serial: x.serialNumber.toLowerCase(), notBefore: new Date(x.validFrom).toISOString(), notAfter: new Date(x.validTo).toISOString() };
  } catch {
    return undefined;
  }
}

const chainType = (i: number, n: number): string => (i === 0 ? 'Leaf' : i === n - 1 ? 'Root' : 'Intermediate');

function isValid(state: string, notBefore: string, notAfter: string, now: number): boolean {
  if (!/^available$/i.test(state)) return false;
  const nb = Date.parse(notBefore);
  const na = Date.parse(notAfter);
  return (Number.isNaN(nb) || nb <= now) && (Number.isNaN(na) || now < na);
}

function certificateRows(v: unknown, now: number): CertificateRow[] {
  const c = obj(v);
  const identity = str(c.identity);
  // ztunnel writes "Unavailable: <error>" in state.
  const [state = '', ...stateDetail] = str(c.state).split(': ');
  const error = str(c.lastError ?? c.error) || stateDetail.join(': ');
  if (Array.isArray(c.certChain) && c.certChain.length > 0) {
    // ztunnel: certChain = leaf + intermediates, rootCerts apart; older: the chain ends with the root.
    const roots = arr(c.rootCerts);
    const members = [...c.certChain.map((e, i, all) => ({ e, type: roots.length ? (i === 0 ? 'Leaf' : 'Intermediate') : chainType(i, all.length) })), ...roots.map((e) => ({ e, type: 'Root' }))];
    return members.map(({ e, type }, i) => {
      const x = obj(e);
      const notBefore = str(x.validFrom);
      const notAfter = str(x.expirationTime);
      return { identity, type, state, valid: isValid(state, notBefore, notAfter, now), serial: str(x.serialNumber), notAfter, notBefore, error: i === 0 ? error : '' };
    });
  }
  // The earlier shape: the leaf's fields, and the chain as PEM (parsed here for its other members).
  const pems = strs(c.chain);
  if (pems.length > 0) {
    return pems.map((pem, i) => {
      const x = parsePem(pem);
      const notBefore = i === 0 && c.notBefore !== undefined ? str(c.notBefore) : (x?.notBefore ?? '');
      const notAfter = i === 0 && c.notAfter !== undefined ? str(c.notAfter) : (x?.notAfter ?? '');
      const serial = i === 0 && c.serial !== undefined ? str(c.serial) : (x?.serial ?? '');
      return { identity, type: chainType(i, pems.length), state, valid: isValid(state, notBefore, notAfter, now), serial, notAfter, notBefore, error: i === 0 ? error : '' };
    });
  }
  if (typeof c.serial === 'string' || typeof c.notAfter === 'string') {
    const notBefore = str(c.notBefore);
    const notAfter = str(c.notAfter);
    return [{ identity, type: 'Leaf', state, valid: isValid(state, notBefore, notAfter, now), serial: str(c.serial), notAfter, notBefore, error }];
  }
  return [{ identity, type: '', state, valid: false, serial: '', notAfter: '', notBefore: '', error }];
}

/** The agent's listeners (DESIGN §3): 15008 HBONE inbound, 15006 plaintext inbound, 15001 outbound; '' when unknown. */
function directionOf(local: string, workloadUid: string): string {
  const port = local.slice(local.lastIndexOf(':') + 1);
  if (port === '15008' || port === '15006' || workloadUid) return 'inbound';
  if (port === '15001') return 'outbound';
  return '';
}

function connectionRows(v: unknown, workloads: readonly WorkloadRow[]): ConnectionRow[] {
  const c = obj(v);
  const list = Array.isArray(v) ? v : arr(c.liveConnections ?? c.connections ?? c.list);
  const names = new Map(workloads.map((w) => [w.uid, `${w.namespace}/${w.name}`]));
  return list.map((e) => {
    const x = obj(e);
    const uid = str(x.workload ?? x.workloadUid);
    return {
      workload: names.get(uid) ?? uid,
      direction: str(x.direction) || directionOf(str(x.local ?? x.localAddress), uid),
      local: str(x.local ?? x.localAddress) || str(x.type),
      remote: str(x.remote ?? x.remoteAddress),
      identity: str(x.identity ?? x.sourceIdentity),
      state: str(x.state),
    };
  });
}

function caView(v: unknown): CaView {
  const ca = obj(v);
  const bundle = obj(ca.trustBundle);
  return { mode: str(ca.mode), address: str(ca.address), problem: str(ca.problem ?? ca.lastError ?? bundle.problem) };
}

export function readConfigDump(dump: unknown, now: number = Date.now()): ConfigDumpView {
  const d = obj(dump);
  const workloads = arr(d.workloads).map(workloadRow);
  return {
    node: str(d.node),
    workloads,
    services: arr(d.services).map((s) => serviceRow(s, workloads)),
    policies: arr(d.policies).map(policyRow),
    certificates: arr(d.certificates).flatMap((c) => certificateRows(c, now)),
    connections: connectionRows(d.connections, workloads),
    ca: caView(d.ca),
    raw: d,
  };
}

/** Raw entries of one section of several dumps, deduplicated by key (workloads by uid). */
export function mergeRawSection(dumps: readonly unknown[], section: 'workloads' | 'services' | 'policies'): unknown[] {
  const key = (e: unknown): string => {
    const x = obj(e);
    if (section === 'workloads') return str(x.uid) || JSON.stringify(x);
    if (section === 'services') return `${str(x.namespace)}/${str(x.hostname)}`;
    return `${str(x.namespace)}/${str(x.name)}`;
  };
  const seen = new Map<string, unknown>();
  for (const dump of dumps) for (const e of arr(obj(dump)[section])) if (!seen.has(key(e))) seen.set(key(e), e);
  return [...seen.values()];
}
