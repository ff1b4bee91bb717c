/**
 * Who is on the other end of an HBONE TLS connection: the SPIFFE URI SANs of the peer's
 * (already chain-verified) leaf certificate. Parsed from DER with @peculiar/x509 rather than
 * from Node's `subjectaltname` string, whose quoting rules vary between Node versions.
 *
 * Invariant: what is read from a certificate (its SPIFFE IDs, its notAfter) is parsed once per
 * distinct certificate and then taken from a cache keyed by the certificate's SHA-256
 * fingerprint, which OpenSSL computes natively. Peers present the same certificate on every
 * connection until they rotate it (24 h by default), and parsing a certificate in JavaScript
 * costs about as much CPU as the rest of a TLS handshake (profiled with a handshake per
 * connection: asn1js and Node's getPeerCertificate() objects were 35–50 % of an agent's CPU).
 * The cache holds facts only; every handshake still verifies the chain in OpenSSL.
 *
 * Peer certificates are read with getPeerCertificate() (the leaf only; ~20 µs), never with
 * getPeerX509Certificate(): on a client socket Node 20 takes the leaf out of OpenSSL's peer
 * chain when it builds that object, so a second call answers undefined, or the next
 * certificate of the chain as if it were the peer's.
 */
import type { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { uriSansFromDer } from '../identity/pki.js';
import { parseSpiffeId } from '../identity/spiffe.js';

/** What the mesh reads from a leaf certificate. */
export interface LeafFacts {
  /** Every SPIFFE ID among the URI SANs. */
  readonly spiffeIds: readonly string[];
  /** notAfter in ms since the epoch; Infinity when unreadable. */
  readonly notAfterMs: number;
}

/** Distinct certificates remembered: peers' and our own, a few per identity and rotation. */
const FACTS_LIMIT = 1024;
const factsByFingerprint = new Map<string, LeafFacts>();

/** All SPIFFE IDs in a DER certificate's URI SANs. */
function spiffeIdsOf(der: Buffer | undefined): string[] {
  if (!der || der.length === 0) return [];
  return uriSansFromDer(der).filter((uri) => parseSpiffeId(uri) !== null);
}

function notAfterMsOf(validTo: string | undefined): number {
  const ms = validTo ? Date.parse(validTo) : NaN;
  return Number.isFinite(ms) ? ms : Infinity;
}

/**
 * The facts of the certificate with this SHA-256 fingerprint; `read` is called only the first
 * time (or after eviction) and hands over its DER and notAfter text.
 */
export function leafFacts(fingerprint256: string, read: () => { der: Buffer | undefined; validTo: string | undefined }): LeafFacts {
  const known = factsByFingerprint.get(fingerprint256);
  if (known) return known;
  const { der, validTo } = read();
  const facts: LeafFacts = Object.freeze({ spiffeIds: Object.freeze(spiffeIdsOf(der)), notAfterMs: notAfterMsOf(validTo) });
  // An empty fingerprint cannot tell certificates apart: never cache under it.
  if (fingerprint256) {
    if (factsByFingerprint.size >= FACTS_LIMIT) factsByFingerprint.delete(factsByFingerprint.keys().next().value as string);
    factsByFingerprint.set(fingerprint256, facts);
  }
  return facts;
}

/** Facts of a node:crypto certificate (our own, from TLSSocket#getX509Certificate). */
export function x509Facts(cert: X509Certificate): LeafFacts {
  return leafFacts(cert.fingerprint256, () => ({ der: cert.raw, validTo: cert.validTo }));
}

/** Facts of a getPeerCertificate() object (also what Node hands to `checkServerIdentity`); none for `{}`, no certificate. */
export function peerCertificateFacts(cert: tls.PeerCertificate | undefined): LeafFacts {
  if (!cert?.raw) return leafFacts('', () => ({ der: undefined, validTo: undefined }));
  return leafFacts(cert.fingerprint256 ?? '', () => ({ der: cert.raw, validTo: cert.valid_to }));
}

/** The first SPIFFE ID in the peer's leaf (a getPeerCertificate() object) whose trust domain is allowed, else null. */
export function peerIdentityIn(cert: tls.PeerCertificate | undefined, trustDomains: readonly string[]): string | null {
  for (const id of peerCertificateFacts(cert).spiffeIds) {
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
 * `secureContext` is the one the socket was made with: our certificate is read once per context
 * (getX509Certificate() costs ~0.17 ms a call here), as a context's certificate never changes — a
 * renewed certificate comes in a new context.
 */
export function connectionNotAfterMs(socket: tls.TLSSocket, secureContext: tls.SecureContext, peerCert: tls.PeerCertificate = socket.getPeerCertificate()): number | undefined {
  let ownNotAfterMs = ownNotAfterByContext.get(secureContext);
  if (ownNotAfterMs === undefined) {
    const own = socket.getX509Certificate();
    ownNotAfterMs = own ? x509Facts(own).notAfterMs : Infinity;
    ownNotAfterByContext.set(secureContext, ownNotAfterMs);
  }
  const earliest = Math.min(peerCertificateFacts(peerCert).notAfterMs, ownNotAfterMs);
  return Number.isFinite(earliest) ? earliest : undefined;
}

const ownNotAfterByContext = new WeakMap<tls.SecureContext, number>();

/** Forgets every cached certificate (tests). */
export function clearLeafFacts(): void {
  factsByFingerprint.clear();
}
