/**
 * What a proxy tells the upstream about the original request (Envoy's defaults as Istio uses
 * them): `x-forwarded-for` gets the client address appended, `x-forwarded-proto` is set when
 * absent, RFC 7239 `forwarded` gets an element `for=…;proto=…` appended, and `x-request-id` is
 * generated when absent so the request can be followed through logs. The client address is the
 * original client's (the HBONE `forwarded` header) or else the HBONE peer's. Pure apart from the
 * injected id generator.
 */
import { randomUUID } from 'node:crypto';
import type { MutableHeaders } from './header-mutation.js';

export interface ForwardingInput {
  clientAddress: string;
  /** http (cleartext inside the tunnel) unless the request says otherwise. */
  proto: 'http' | 'https';
  newRequestId?: () => string;
}

function append(current: MutableHeaders[string], value: string): string {
  if (current === undefined || current === '') return value;
  return `${Array.isArray(current) ? current.join(', ') : String(current)}, ${value}`;
}

function forwardedNode(address: string): string {
  // Addresses here are socket addresses (IPv4 dotted or IPv6): a colon means IPv6. (net.isIPv6
  // runs a large regex on every request.)
  return address.includes(':') ? `"[${address}]"` : address;
}

export function addForwardingHeaders(headers: MutableHeaders, input: ForwardingInput): string {
  if (input.clientAddress) {
    headers['x-forwarded-for'] = append(headers['x-forwarded-for'], input.clientAddress);
    headers.forwarded = append(headers.forwarded, `for=${forwardedNode(input.clientAddress)};proto=${input.proto}`);
  }
  if (headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = input.proto;
  let id = headers['x-request-id'];
  if (id === undefined || id === '') {
    id = (input.newRequestId ?? randomUUID)();
    headers['x-request-id'] = id;
  }
  return Array.isArray(id) ? (id[0] ?? '') : String(id);
}
