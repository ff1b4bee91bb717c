/**
 * Kinds with little to check: Namespace (status.phase Active) and EndpointSlice (addressType,
 * endpoint addresses, port protocol default). ServiceAccount, Endpoints, Node, Lease and Event
 * get the generic metadata checks only.
 */
import { isIP } from 'node:net';
import type { KubeObject } from '../types.js';
import { isPlainObject } from '../patch/json-value.js';
import type { FieldErrors } from './field-errors.js';
import { PORT_RANGE_MESSAGE, dns1123Subdomain, isPortNumber } from './names.js';
import { PROTOCOLS } from './pod-spec.js';

const ADDRESS_TYPES = ['FQDN', 'IPv4', 'IPv6'] as const;

export function admitNamespace(namespace: KubeObject, operation: 'CREATE' | 'UPDATE'): void {
  const status = isPlainObject(namespace['status']) ? namespace['status'] : {};
  if (operation === 'CREATE' || status['phase'] === undefined) status['phase'] ??= 'Active';
  namespace['status'] = status;
}

export function admitEndpointSlice(slice: KubeObject, errors: FieldErrors): void {
  const addressType = slice['addressType'];
  if (addressType === undefined || addressType === '') errors.required('addressType');
  else if (!(ADDRESS_TYPES as readonly unknown[]).includes(addressType)) errors.notSupported('addressType', addressType, ADDRESS_TYPES);
  const endpoints = slice['endpoints'] ?? [];
  if (!Array.isArray(endpoints)) {
    errors.typeInvalid('endpoints', endpoints, 'must be a list');
  } else {
    endpoints.forEach((endpoint: unknown, i) => {
      const addresses = isPlainObject(endpoint) ? endpoint['addresses'] : undefined;
      if (!Array.isArray(addresses) || addresses.length === 0) return errors.required(`endpoints[${i}].addresses`, 'must contain at least 1 address');
      addresses.forEach((address: unknown, j) => {
        const at = `endpoints[${i}].addresses[${j}]`;
        if (typeof address !== 'string') return errors.typeInvalid(at, address, 'must be a string');
        if (addressType === 'IPv4' && isIP(address) !== 4) errors.invalid(at, address, 'must be a valid IPv4 address');
        if (addressType === 'IPv6' && isIP(address) !== 6) errors.invalid(at, address, 'must be a valid IPv6 address');
        if (addressType === 'FQDN') for (const message of dns1123Subdomain(address)) errors.invalid(at, address, message);
      });
    });
  }
  const ports = slice['ports'] ?? [];
  if (Array.isArray(ports)) {
    ports.forEach((port: unknown, i) => {
      if (!isPlainObject(port)) return;
      port['protocol'] ??= 'TCP';
      if (!(PROTOCOLS as readonly unknown[]).includes(port['protocol'])) errors.notSupported(`ports[${i}].protocol`, port['protocol'], PROTOCOLS);
      if (port['port'] !== undefined && port['port'] !== null && !isPortNumber(port['port'])) errors.invalid(`ports[${i}].port`, port['port'], PORT_RANGE_MESSAGE);
    });
  }
}
