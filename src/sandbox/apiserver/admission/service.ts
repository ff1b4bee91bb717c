/**
 * Services: defaults, validation and ClusterIP allocation (pkg/apis/core/validation
 * ValidateService, pkg/registry/core/service). A ClusterIP is allocated only after the rest
 * of the Service validated, so a rejected create never holds an address.
 *
 * Left out: NodePort allocation (the sandbox has no node ports), dual stack (IPv4 only).
 */
import { isIP } from 'node:net';
import type { KubeObject } from '../types.js';
import { SERVICE_CIDR, isInServiceCidr } from '../cluster-ip-allocator.js';
import { isPlainObject, type JsonObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';
import { validateLabels } from './metadata.js';
import { PORT_RANGE_MESSAGE, dns1123Label, dns1123Subdomain, isPortNumber, portName } from './names.js';
import { PROTOCOLS } from './pod-spec.js';

const TYPES = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'] as const;
const AFFINITIES = ['ClientIP', 'None'] as const;
const TRAFFIC_POLICIES = ['Cluster', 'Local'] as const;
export const HEADLESS = 'None';

export interface ClusterIpPool {
  allocateClusterIp(): string;
  isClusterIpInUse(ip: string): boolean;
}

function specOf(service: KubeObject): JsonObject {
  if (!isPlainObject(service['spec'])) service['spec'] = {};
  return service['spec'] as JsonObject;
}

function defaultService(spec: JsonObject): void {
  spec['type'] ??= 'ClusterIP';
  spec['sessionAffinity'] ??= 'None';
  for (const port of Array.isArray(spec['ports']) ? spec['ports'] : []) {
    if (!isPlainObject(port)) continue;
    port['protocol'] ??= 'TCP';
    port['targetPort'] ??= port['port'];
  }
  if (spec['type'] === 'ExternalName') return;
  spec['internalTrafficPolicy'] ??= 'Cluster';
  if (spec['type'] === 'NodePort' || spec['type'] === 'LoadBalancer') spec['externalTrafficPolicy'] ??= 'Cluster';
  if (spec['clusterIP'] === undefined && Array.isArray(spec['clusterIPs']) && typeof spec['clusterIPs'][0] === 'string') spec['clusterIP'] = spec['clusterIPs'][0];
}

function validateServiceSpec(spec: JsonObject, errors: FieldErrors): void {
  const type = spec['type'];
  if (!(TYPES as readonly unknown[]).includes(type)) errors.notSupported('spec.type', type, TYPES);
  if (!(AFFINITIES as readonly unknown[]).includes(spec['sessionAffinity'])) errors.notSupported('spec.sessionAffinity', spec['sessionAffinity'], AFFINITIES);
  for (const key of ['internalTrafficPolicy', 'externalTrafficPolicy']) {
    if (spec[key] !== undefined && !(TRAFFIC_POLICIES as readonly unknown[]).includes(spec[key])) errors.notSupported(`spec.${key}`, spec[key], TRAFFIC_POLICIES);
  }
  if (type === 'ExternalName') {
    const externalName = spec['externalName'];
    if (typeof externalName !== 'string' || externalName === '') errors.required('spec.externalName');
    else for (const message of dns1123Subdomain(externalName.replace(/\.$/, ''))) errors.invalid('spec.externalName', externalName, message);
  }
  const headless = spec['clusterIP'] === HEADLESS;
  const ports = Array.isArray(spec['ports']) ? spec['ports'] : [];
  if (spec['ports'] !== undefined && !Array.isArray(spec['ports'])) errors.typeInvalid('spec.ports', spec['ports'], 'must be a list');
  if (ports.length === 0 && !headless && type !== 'ExternalName') errors.required('spec.ports');
  const names = new Set<string>();
  const keys = new Set<string>();
  ports.forEach((port: unknown, i) => {
    const at = `spec.ports[${i}]`;
    if (!isPlainObject(port)) return errors.typeInvalid(at, port, 'must be an object');
    const name = port['name'];
    if (ports.length > 1 && (typeof name !== 'string' || name === '')) errors.required(`${at}.name`);
    if (typeof name === 'string' && name !== '') {
      for (const message of dns1123Label(name)) errors.invalid(`${at}.name`, name, message);
      if (names.has(name)) errors.duplicate(`${at}.name`, name);
      names.add(name);
    }
    if (port['port'] === undefined) errors.required(`${at}.port`);
    else if (!isPortNumber(port['port'])) errors.invalid(`${at}.port`, port['port'], PORT_RANGE_MESSAGE);
    if (!(PROTOCOLS as readonly unknown[]).includes(port['protocol'])) errors.notSupported(`${at}.protocol`, port['protocol'], PROTOCOLS);
    const target = port['targetPort'];
    if (typeof target === 'number' ? !isPortNumber(target) : typeof target !== 'string' || portName(target).length > 0) errors.invalid(`${at}.targetPort`, target, typeof target === 'number' ? PORT_RANGE_MESSAGE : 'must be a port number or an IANA service name');
    const key = `${String(port['port'])}/${String(port['protocol'])}`;
    if (keys.has(key)) errors.duplicate(at, { port: port['port'], protocol: port['protocol'] });
    keys.add(key);
  });
  validateLabels(spec['selector'], 'spec.selector', errors);
}

/** Checks a requested ClusterIP; returns whether it is usable. */
function checkRequestedIp(ip: string, pool: ClusterIpPool, errors: FieldErrors): boolean {
  if (isIP(ip) !== 4) {
    errors.invalid('spec.clusterIPs[0]', ip, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)');
    return false;
  }
  if (!isInServiceCidr(ip)) {
    errors.invalid('spec.clusterIPs', [ip], `failed to allocate IP ${ip}: the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${SERVICE_CIDR}`);
    return false;
  }
  if (pool.isClusterIpInUse(ip)) {
    errors.invalid('spec.clusterIPs', [ip], `failed to allocate IP ${ip}: provided IP is already allocated`);
    return false;
  }
  return true;
}

function setClusterIp(spec: JsonObject, ip: string | undefined): void {
  if (ip === undefined) {
    delete spec['clusterIP'];
    delete spec['clusterIPs'];
    delete spec['ipFamilies'];
    delete spec['ipFamilyPolicy'];
    return;
  }
  spec['clusterIP'] = ip;
  spec['clusterIPs'] = [ip];
  spec['ipFamilies'] ??= ['IPv4'];
  spec['ipFamilyPolicy'] ??= 'SingleStack';
}

export function admitServiceCreate(service: KubeObject, pool: ClusterIpPool, errors: FieldErrors): void {
  const spec = specOf(service);
  defaultService(spec);
  validateServiceSpec(spec, errors);
  const requested = spec['clusterIP'];
  if (spec['type'] === 'ExternalName') {
    if (requested !== undefined && requested !== '') errors.forbidden('spec.clusterIP', 'may not be set for ExternalName services');
    return;
  }
  if (requested !== undefined && typeof requested !== 'string') errors.typeInvalid('spec.clusterIP', requested, 'must be a string');
  const wanted = typeof requested === 'string' && requested !== '' && requested !== HEADLESS ? requested : undefined;
  const usable = wanted === undefined || checkRequestedIp(wanted, pool, errors);
  if (!errors.empty || !usable) return;
  setClusterIp(spec, requested === HEADLESS ? HEADLESS : (wanted ?? pool.allocateClusterIp()));
  if (!isPlainObject(service['status'])) service['status'] = { loadBalancer: {} };
}

/**
 * On update an omitted ClusterIP keeps the allocated one (as kube-apiserver's
 * patchAllocatedValues does); changing it is refused. Switching to ExternalName frees it via
 * `release`.
 */
export function admitServiceUpdate(service: KubeObject, old: KubeObject, pool: ClusterIpPool & { releaseClusterIp(ip: string): void }, errors: FieldErrors): void {
  const spec = specOf(service);
  const oldSpec = isPlainObject(old['spec']) ? old['spec'] : {};
  const oldIp = typeof oldSpec['clusterIP'] === 'string' ? oldSpec['clusterIP'] : undefined;
  defaultService(spec);
  validateServiceSpec(spec, errors);
  if (!errors.empty) return;
  if (spec['type'] === 'ExternalName') {
    if (spec['clusterIP'] !== undefined && spec['clusterIP'] !== '' && spec['clusterIP'] !== oldIp) errors.forbidden('spec.clusterIP', 'may not be set for ExternalName services');
    if (oldIp && oldIp !== HEADLESS) pool.releaseClusterIp(oldIp);
    setClusterIp(spec, undefined);
    return;
  }
  const requested = spec['clusterIP'];
  if (requested === undefined || requested === '') {
    if (oldIp) setClusterIp(spec, oldIp);
    else setClusterIp(spec, pool.allocateClusterIp()); // ExternalName → ClusterIP
    return;
  }
  if (oldIp && requested !== oldIp) {
    errors.invalid('spec.clusterIP', requested, 'field is immutable');
    return;
  }
  if (!oldIp && requested !== HEADLESS && !checkRequestedIp(String(requested), pool, errors)) return;
  setClusterIp(spec, String(requested));
}
