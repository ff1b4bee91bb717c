/**
 * Mesh state (src/node-agent/state/types.ts: proto3-JSON shaped, IPs as strings) ↔ the protobuf
 * bytes of Istio's xDS resources (`istio.workload.Address`, `istio.security.Authorization`;
 * DESIGN §6). The controller encodes what it serves; the node agent decodes what it receives.
 *
 * Contract:
 * - Encoding is deterministic (fields in number order, the `services` map sorted by key), so equal
 *   resources give equal bytes and the server's byte hash is a stable version.
 * - Decoding applies proto3 defaults: a missing enum is its first value (tunnelProtocol NONE,
 *   status HEALTHY, workloadType DEPLOYMENT, scope GLOBAL, action ALLOW); an empty string or list
 *   of an optional field is left out; Port.appProtocol UNKNOWN is left out (absent means unknown).
 * - Decoding refuses what the node agent cannot serve safely, with AMESH_XDS_INVALID_RESOURCE and
 *   the offending field's path ("workload.addresses[0]: 5 bytes is not an IPv4/IPv6 address"),
 *   which the xDS client sends back as the NACK reason. An unknown value of a security-relevant
 *   enum (tunnel protocol, health, scope, action) is refused; an unknown app protocol or workload
 *   type (hints only) decodes as absent, so a newer istiod does not get whole workloads NACKed.
 */
import type protobuf from 'protobufjs';
import { AmeshError } from '../errors/amesh-error.js';
import type { AddressMatch, AppProtocol, Authorization, Clause, GatewayAddress, Match, PolicyAction, PolicyScope, Port, PortList, Rule, Service, StringMatch, TunnelProtocol, Workload } from '../node-agent/state/types.js';
import { bytesToIp, ipToBytes } from './ip-bytes.js';
import { xdsProto } from './proto.js';

export const ADDRESS_TYPE_URL = 'type.googleapis.com/istio.workload.Address';
export const AUTHORIZATION_TYPE_URL = 'type.googleapis.com/istio.security.Authorization';

export type DecodedAddress = { kind: 'workload'; workload: Workload } | { kind: 'service'; service: Service };

const TUNNEL_PROTOCOLS: readonly TunnelProtocol[] = ['NONE', 'HBONE'];
const APP_PROTOCOLS: readonly AppProtocol[] = ['UNKNOWN', 'HTTP11', 'HTTP2', 'GRPC', 'TCP', 'TLS'];
const WORKLOAD_TYPES: ReadonlyArray<NonNullable<Workload['workloadType']>> = ['DEPLOYMENT', 'CRONJOB', 'POD', 'JOB'];
const WORKLOAD_STATUSES: ReadonlyArray<NonNullable<Workload['status']>> = ['HEALTHY', 'UNHEALTHY'];
const SCOPES: readonly PolicyScope[] = ['GLOBAL', 'NAMESPACE', 'WORKLOAD_SELECTOR'];
const ACTIONS: readonly PolicyAction[] = ['ALLOW', 'DENY'];
const MAX_PORT = 65535;

export function workloadResourceName(w: Workload): string {
  return w.uid;
}

export function serviceResourceName(s: Service): string {
  return `${s.namespace}/${s.hostname}`;
}

export function authorizationResourceName(a: Authorization): string {
  return `${a.namespace}/${a.name}`;
}

function invalid(path: string, reason: string): AmeshError {
  return new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${path}: ${reason}`);
}

// ---- encode ----

function addressBytes(ip: string, path: string): Uint8Array {
  const bytes = ipToBytes(ip);
  if (!bytes) throw invalid(path, `${JSON.stringify(ip)} is not an IPv4/IPv6 address`);
  return bytes;
}

function portObject(p: Port): Record<string, unknown> {
  return { servicePort: p.servicePort, targetPort: p.targetPort, appProtocol: p.appProtocol };
}

/** istio.workload.GatewayAddress: exactly one of hostname / address, and the HBONE port. */
function gatewayAddressObject(g: GatewayAddress, path: string): Record<string, unknown> {
  if ((g.hostname === undefined) === (g.address === undefined)) throw invalid(path, 'exactly one of hostname and address must be set');
  const destination = g.hostname
    ? { hostname: { namespace: g.hostname.namespace, hostname: g.hostname.hostname } }
    : { address: { network: g.address?.network, address: addressBytes(g.address?.address ?? '', `${path}.address.address`) } };
  return { ...destination, hboneMtlsPort: g.hboneMtlsPort };
}

function encodeMessage(type: protobuf.Type, object: Record<string, unknown>): Uint8Array {
  return type.encode(type.fromObject(object)).finish();
}

export function encodeWorkloadAddress(w: Workload): Uint8Array {
  const services = Object.fromEntries(
    Object.keys(w.services)
      .sort()
      .map((key) => [key, { ports: (w.services[key] as PortList).ports.map(portObject) }]),
  );
  const workload = {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    addresses: w.addresses.map((ip, i) => addressBytes(ip, `workload.addresses[${i}]`)),
    hostname: w.hostname,
    network: w.network,
    tunnelProtocol: w.tunnelProtocol,
    trustDomain: w.trustDomain,
    serviceAccount: w.serviceAccount,
    waypoint: w.waypoint === undefined ? undefined : gatewayAddressObject(w.waypoint, 'workload.waypoint'),
    node: w.node,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    workloadType: w.workloadType,
    workloadName: w.workloadName,
    services,
    authorizationPolicies: w.authorizationPolicies,
    status: w.status,
    clusterId: w.clusterId,
    locality: w.locality === undefined ? undefined : { region: w.locality.region, zone: w.locality.zone, subzone: w.locality.subzone },
    capacity: w.capacity === undefined ? undefined : { value: w.capacity },
  };
  return encodeMessage(xdsProto().address, { workload });
}

export function encodeServiceAddress(s: Service): Uint8Array {
  const service = {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    addresses: s.addresses.map((ip, i) => ({ address: addressBytes(ip, `service.addresses[${i}]`) })),
    ports: s.ports.map(portObject),
    subjectAltNames: s.subjectAltNames,
    waypoint: s.waypoint === undefined ? undefined : gatewayAddressObject(s.waypoint, 'service.waypoint'),
  };
  return encodeMessage(xdsProto().address, { service });
}

const STRING_MATCH_FIELDS = ['namespaces', 'notNamespaces', 'principals', 'notPrincipals'] as const;
const ADDRESS_MATCH_FIELDS = ['sourceIps', 'notSourceIps', 'destinationIps', 'notDestinationIps'] as const;
const PORT_MATCH_FIELDS = ['destinationPorts', 'notDestinationPorts'] as const;

function matchObject(m: Match, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of STRING_MATCH_FIELDS) if (m[field]) out[field] = m[field];
  for (const field of ADDRESS_MATCH_FIELDS) {
    const list = m[field];
    if (list) out[field] = list.map((a, i) => ({ address: addressBytes(a.address, `${path}.${field}[${i}]`), length: a.length }));
  }
  for (const field of PORT_MATCH_FIELDS) if (m[field]) out[field] = m[field];
  return out;
}

export function encodeAuthorization(a: Authorization): Uint8Array {
  return encodeMessage(xdsProto().authorization, {
    name: a.name,
    namespace: a.namespace,
    scope: a.scope,
    action: a.action,
    rules: a.rules.map((rule, r) => ({
      clauses: rule.clauses.map((clause, c) => ({ matches: clause.matches.map((m, i) => matchObject(m, `authorization.rules[${r}].clauses[${c}].matches[${i}]`)) })),
    })),
    dryRun: a.dryRun,
  });
}

// ---- decode ----

/** A decoded message as protobufjs' toObject gives it (defaults on, enums by name, bytes raw). */
type Raw = Record<string, unknown>;

const TO_OBJECT: protobuf.IConversionOptions = { enums: String, longs: Number, defaults: true, arrays: true, objects: true, oneofs: true };

function decodeRaw(type: protobuf.Type, bytes: Uint8Array, what: string): Raw {
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch (err) {
    throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `${what}: not a valid ${type.fullName.replace(/^\./, '')}: ${(err as Error).message}`, { cause: err });
  }
  return type.toObject(message, TO_OBJECT) as Raw;
}

const str = (raw: Raw, key: string): string => (typeof raw[key] === 'string' ? (raw[key] as string) : '');
const list = (raw: Raw, key: string): unknown[] => (Array.isArray(raw[key]) ? (raw[key] as unknown[]) : []);
const sub = (raw: Raw, key: string): Raw | undefined => (raw[key] && typeof raw[key] === 'object' ? (raw[key] as Raw) : undefined);

function required(raw: Raw, key: string, path: string): string {
  const value = str(raw, key);
  if (!value) throw invalid(`${path}.${key}`, 'must not be empty');
  return value;
}

/** Adds `key: value` to `target` only for a non-empty string or list (proto3: empty = absent). */
function optional<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | '' | undefined): void {
  if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) return;
  target[key] = value as T[K];
}

function strictEnum<T extends string>(raw: Raw, key: string, values: readonly T[], path: string): T {
  const value = raw[key];
  if (typeof value === 'string' && (values as readonly string[]).includes(value)) return value as T;
  throw invalid(`${path}.${key}`, `unknown value ${String(value)}`);
}

function lenientEnum<T extends string>(raw: Raw, key: string, values: readonly T[]): T | undefined {
  const value = raw[key];
  return typeof value === 'string' && (values as readonly string[]).includes(value) ? (value as T) : undefined;
}

function ipFromBytes(value: unknown, path: string): string {
  const bytes = value instanceof Uint8Array ? value : new Uint8Array();
  const ip = bytesToIp(bytes);
  if (ip === undefined) throw invalid(path, `${bytes.length} bytes is not an IPv4/IPv6 address`);
  return ip;
}

function portNumber(value: unknown, path: string, allowZero: boolean): number {
  const n = typeof value === 'number' ? value : 0;
  if (n > MAX_PORT || (!allowZero && n === 0)) throw invalid(path, `${n} is not a port (1-${MAX_PORT})`);
  return n;
}

function decodePort(raw: Raw, path: string): Port {
  // target_port 0 is legal: Istio sends it for a named port the workload does not declare.
  const port: Port = { servicePort: portNumber(raw.servicePort, `${path}.servicePort`, false), targetPort: portNumber(raw.targetPort, `${path}.targetPort`, true) };
  const appProtocol = lenientEnum(raw, 'appProtocol', APP_PROTOCOLS);
  if (appProtocol && appProtocol !== 'UNKNOWN') port.appProtocol = appProtocol;
  return port;
}

/**
 * A GatewayAddress, or undefined when the message is absent. One destination is required (a
 * waypoint nobody can reach would black-hole traffic); the port must be a port (istiod always
 * sends 15008).
 */
function decodeGatewayAddress(raw: Raw | undefined, path: string): GatewayAddress | undefined {
  if (!raw) return undefined;
  const hboneMtlsPort = portNumber(raw.hboneMtlsPort, `${path}.hboneMtlsPort`, false);
  const hostname = sub(raw, 'hostname');
  const address = sub(raw, 'address');
  if (raw.destination === 'hostname' && hostname) {
    return { hostname: { namespace: str(hostname, 'namespace'), hostname: required(hostname, 'hostname', `${path}.hostname`) }, hboneMtlsPort };
  }
  if (raw.destination === 'address' && address) {
    const out: GatewayAddress = { address: { address: ipFromBytes(address.address, `${path}.address.address`) }, hboneMtlsPort };
    const network = str(address, 'network');
    if (network && out.address) out.address.network = network;
    return out;
  }
  throw invalid(path, 'neither hostname nor address is set');
}

function decodeWorkload(raw: Raw): Workload {
  const path = 'workload';
  const services: Record<string, PortList> = {};
  for (const [key, value] of Object.entries(sub(raw, 'services') ?? {})) {
    const slash = key.indexOf('/');
    if (slash <= 0 || slash === key.length - 1) throw invalid(`${path}.services[${JSON.stringify(key)}]`, 'key must be "<namespace>/<hostname>"');
    services[key] = { ports: list(value as Raw, 'ports').map((p, i) => decodePort(p as Raw, `${path}.services[${JSON.stringify(key)}].ports[${i}]`)) };
  }
  const w: Workload = {
    uid: required(raw, 'uid', path),
    name: required(raw, 'name', path),
    namespace: required(raw, 'namespace', path),
    addresses: list(raw, 'addresses').map((a, i) => ipFromBytes(a, `${path}.addresses[${i}]`)),
    tunnelProtocol: strictEnum(raw, 'tunnelProtocol', TUNNEL_PROTOCOLS, path),
    serviceAccount: str(raw, 'serviceAccount'),
    services,
  };
  optional(w, 'hostname', str(raw, 'hostname'));
  optional(w, 'network', str(raw, 'network'));
  optional(w, 'trustDomain', str(raw, 'trustDomain'));
  optional(w, 'waypoint', decodeGatewayAddress(sub(raw, 'waypoint'), `${path}.waypoint`));
  optional(w, 'node', str(raw, 'node'));
  optional(w, 'canonicalName', str(raw, 'canonicalName'));
  optional(w, 'canonicalRevision', str(raw, 'canonicalRevision'));
  optional(w, 'workloadType', lenientEnum(raw, 'workloadType', WORKLOAD_TYPES));
  optional(w, 'workloadName', str(raw, 'workloadName'));
  optional(w, 'authorizationPolicies', list(raw, 'authorizationPolicies').map(String));
  w.status = strictEnum(raw, 'status', WORKLOAD_STATUSES, path);
  optional(w, 'clusterId', str(raw, 'clusterId'));
  const locality = sub(raw, 'locality');
  if (locality) {
    const l: NonNullable<Workload['locality']> = {};
    optional(l, 'region', str(locality, 'region'));
    optional(l, 'zone', str(locality, 'zone'));
    optional(l, 'subzone', str(locality, 'subzone'));
    if (Object.keys(l).length) w.locality = l;
  }
  const capacity = sub(raw, 'capacity');
  if (capacity) w.capacity = typeof capacity.value === 'number' ? capacity.value : 0;
  return w;
}

function decodeService(raw: Raw): Service {
  const path = 'service';
  const s: Service = {
    name: required(raw, 'name', path),
    namespace: required(raw, 'namespace', path),
    hostname: required(raw, 'hostname', path),
    addresses: list(raw, 'addresses').map((a, i) => ipFromBytes((a as Raw).address, `${path}.addresses[${i}].address`)),
    ports: list(raw, 'ports').map((p, i) => decodePort(p as Raw, `${path}.ports[${i}]`)),
  };
  optional(s, 'subjectAltNames', list(raw, 'subjectAltNames').map(String));
  optional(s, 'waypoint', decodeGatewayAddress(sub(raw, 'waypoint'), `${path}.waypoint`));
  return s;
}

export function decodeAddress(bytes: Uint8Array): DecodedAddress {
  const raw = decodeRaw(xdsProto().address, bytes, 'address');
  const workload = sub(raw, 'workload');
  const service = sub(raw, 'service');
  if (raw.type === 'workload' && workload) return { kind: 'workload', workload: decodeWorkload(workload) };
  if (raw.type === 'service' && service) return { kind: 'service', service: decodeService(service) };
  throw invalid('address', 'neither workload nor service is set');
}

function decodeStringMatch(raw: Raw, path: string): StringMatch {
  switch (raw.matchType) {
    case 'exact':
      return { exact: str(raw, 'exact') };
    case 'prefix':
      return { prefix: str(raw, 'prefix') };
    case 'suffix':
      return { suffix: str(raw, 'suffix') };
    case 'presence':
      return { presence: {} };
    default:
      throw invalid(path, 'none of exact, prefix, suffix, presence is set');
  }
}

function decodeAddressMatch(raw: Raw, path: string): AddressMatch {
  const address = ipFromBytes(raw.address, `${path}.address`);
  const length = typeof raw.length === 'number' ? raw.length : 0;
  const bits = address.includes(':') ? 128 : 32;
  if (length > bits) throw invalid(`${path}.length`, `${length} is longer than the ${bits} bits of ${address}`);
  return { address, length };
}

function decodeMatch(raw: Raw, path: string): Match {
  const m: Match = {};
  for (const field of STRING_MATCH_FIELDS) optional(m, field, list(raw, field).map((s, i) => decodeStringMatch(s as Raw, `${path}.${field}[${i}]`)));
  for (const field of ADDRESS_MATCH_FIELDS) optional(m, field, list(raw, field).map((a, i) => decodeAddressMatch(a as Raw, `${path}.${field}[${i}]`)));
  for (const field of PORT_MATCH_FIELDS) optional(m, field, list(raw, field).map((p, i) => portNumber(p, `${path}.${field}[${i}]`, false)));
  return m;
}

export function decodeAuthorization(bytes: Uint8Array): Authorization {
  const raw = decodeRaw(xdsProto().authorization, bytes, 'authorization');
  const path = 'authorization';
  const rules: Rule[] = list(raw, 'rules').map(
    (rule, r): Rule => ({
      clauses: list(rule as Raw, 'clauses').map(
        (clause, c): Clause => ({ matches: list(clause as Raw, 'matches').map((m, i) => decodeMatch(m as Raw, `${path}.rules[${r}].clauses[${c}].matches[${i}]`)) }),
      ),
    }),
  );
  const a: Authorization = {
    name: required(raw, 'name', path),
    namespace: required(raw, 'namespace', path),
    scope: strictEnum(raw, 'scope', SCOPES, path),
    action: strictEnum(raw, 'action', ACTIONS, path),
    rules,
  };
  if (raw.dryRun === true) a.dryRun = true;
  return a;
}
