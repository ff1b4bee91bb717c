/**
 * SPIFFE identities as Istio uses them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`
 * (DESIGN §5). Parsing is strict — an identity that does not parse is no identity at all, so
 * callers treat `null` as "unauthenticated", never as a wildcard.
 *
 * Spec: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md
 */
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as x509 from '@peculiar/x509';

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** Any SPIFFE ID, split into trust domain and path (path starts with `/`, may be empty). */
export interface SpiffeId {
  trustDomain: string;
  path: string;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

const SPIFFE_SCHEME = 'spiffe://';
/** SPIFFE-ID §2.1: lowercase letters, digits, dots, dashes and underscores. */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
/** SPIFFE-ID §2.2: each path segment is letters, digits, dots, dashes and underscores; not `.`/`..`. */
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

export function isValidTrustDomain(trustDomain: string): boolean {
  return trustDomain.length > 0 && trustDomain.length <= 255 && TRUST_DOMAIN.test(trustDomain);
}

function isValidSegment(segment: string): boolean {
  return PATH_SEGMENT.test(segment) && segment !== '.' && segment !== '..';
}

/** Parses any SPIFFE ID (not only Istio's ns/sa form). Returns null when it is not one. */
export function parseSpiffeId(uri: string): SpiffeId | null {
  if (typeof uri !== 'string' || uri.length > 2048 || !uri.startsWith(SPIFFE_SCHEME)) return null;
  const rest = uri.slice(SPIFFE_SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (!isValidTrustDomain(trustDomain)) return null;
  if (path !== '') {
    const segments = path.slice(1).split('/');
    if (!segments.every(isValidSegment)) return null;
  }
  return { trustDomain, path };
}

/** Istio's workload identity form; null for anything else (including other SPIFFE IDs). */
export function parseSpiffeUri(uri: string): WorkloadIdentity | null {
  const id = parseSpiffeId(uri);
  if (!id) return null;
  const segments = id.path.split('/');
  // ['', 'ns', <namespace>, 'sa', <service account>]
  if (segments.length !== 5 || segments[1] !== 'ns' || segments[3] !== 'sa') return null;
  const namespace = segments[2] as string;
  const serviceAccount = segments[4] as string;
  return { trustDomain: id.trustDomain, namespace, serviceAccount };
}

export function toSpiffeUri(id: WorkloadIdentity): string {
  return `${SPIFFE_SCHEME}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** True when `toSpiffeUri(id)` is a valid SPIFFE ID in Istio's form. */
export function isValidWorkloadIdentity(id: WorkloadIdentity): boolean {
  return parseSpiffeUri(toSpiffeUri(id)) !== null;
}

export function sameIdentity(a: WorkloadIdentity, b: WorkloadIdentity): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}

/**
 * The URI SANs of a peer's leaf certificate, in order (SPIFFE IDs for mesh peers; callers
 * parse and check them). Read from the DER rather than Node's `subjectaltname` string, whose
 * quoting rules changed between Node versions. Empty when there is no certificate.
 */
export function identityFromPeerCertificate(cert: PeerCertificate | NodeX509Certificate | null | undefined): string[] {
  const der = cert instanceof NodeX509Certificate ? cert.raw : cert?.raw;
  if (!der || der.length === 0) return [];
  try {
    const san = new x509.X509Certificate(der).getExtension(x509.SubjectAlternativeNameExtension);
    return san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [];
  } catch {
    return [];
  }
}
