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

/**
 * When this TLS connection stops being trustworthy: the earlier notAfter (ms since epoch) of
 * the peer's leaf and of our own certificate presented on it; undefined when neither is known.
 * The handshake checked validity once — an established connection outlives its certificates
 * unless pool and server compare this with the clock before each new stream (issue #12).
 */
export function connectionNotAfterMs(socket: tls.TLSSocket): number | undefined {
  const notAfter = (cert: { valid_to?: string } | null | undefined): number => {
    const ms = cert?.valid_to ? Date.parse(cert.valid_to) : NaN;
    return Number.isFinite(ms) ? ms : Infinity;
  };
  const earliest = Math.min(notAfter(socket.getPeerCertificate()), notAfter(socket.getCertificate() as { valid_to?: string } | null));
  return Number.isFinite(earliest) ? earliest : undefined;
}
