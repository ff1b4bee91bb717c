/**
 * Who is on the other end of an HBONE TLS connection: the SPIFFE URI SANs of the peer's
 * (already chain-verified) leaf certificate. Parsed from DER with @peculiar/x509 rather than
 * from Node's `subjectaltname` string, whose quoting rules vary between Node versions.
 */
import type tls from 'node:tls';
import { uriSansFromDer } from '../identity/pki.js';
import { parseSpiffeId } from '../identity/spiffe.js';

/** All SPIFFE IDs in a DER certificate's URI SANs. */
export function spiffeIdsOf(der: Buffer | undefined): string[] {
  if (!der || der.length === 0) return [];
  return uriSansFromDer(der).filter((uri) => parseSpiffeId(uri) !== null);
}

/** The first SPIFFE ID in the peer's leaf whose trust domain is allowed, else null. */
export function peerIdentityIn(socket: tls.TLSSocket, trustDomains: readonly string[]): string | null {
  const cert = socket.getPeerCertificate();
  for (const id of spiffeIdsOf(cert?.raw)) {
    const parsed = parseSpiffeId(id);
    if (parsed && trustDomains.includes(parsed.trustDomain)) return id;
  }
  return null;
}
