/**
 * Signs accepted CSRs with whatever SigningMaterial the root store holds right now, and returns
 * the chain the response carries: leaf, signing certificate, its issuers up to the root.
 *
 * Leaf profile — the same as pki.ts's `signCsr` (as istiod issues; ca-issuer.test.ts compares the
 * two extension by extension): empty subject, issuer = the CA's subject, SAN = the SPIFFE URI only
 * (critical, because the subject is empty), KeyUsage digitalSignature|keyEncipherment (critical),
 * EKU serverAuth+clientAuth, BasicConstraints CA:FALSE (critical), AKI = the CA's key id,
 * not-before backdated NOT_BEFORE_BACKDATE_MS (at most a quarter of the lifetime: see
 * leafBackdateMs), 128-bit random positive serial, not-after within the CA's.
 *
 * Why not `signCsr` itself: building a certificate through @peculiar/x509's object model costs
 * about 5 ms of CPU per leaf (it serialises and re-parses every extension), which caps the CA
 * near 150 signatures/s on two cores. Here everything that does not vary — issuer name, AKI and
 * the three fixed extensions, encoded by @peculiar/x509 — is prepared once per signing material;
 * per leaf only serial, validity, key and SAN are DER-encoded (a dozen TLVs) and the TBS is
 * signed with Node's synchronous `crypto.sign`. That also lets a plugged-in RSA or P-384 CA sign.
 */
import { X509Certificate as NodeX509Certificate, createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AmeshError } from '../../errors/amesh-error.js';
import { NOT_BEFORE_BACKDATE_MS, splitPemBundle } from '../../identity/pki.js';
import type { AcceptedCsr } from './csr-check.js';
import type { SigningMaterial, SigningMaterialSource } from './types.js';

/** Istio's DEFAULT_WORKLOAD_CERT_TTL. */
export const DEFAULT_CERT_TTL_SECONDS = 24 * 3600;
/** Istio's MAX_WORKLOAD_CERT_TTL. */
export const DEFAULT_MAX_CERT_TTL_SECONDS = 90 * 24 * 3600;
/** Shorter leaves would expire before an agent could rotate them. */
export const MIN_CERT_TTL_SECONDS = 60;
/** Prepared materials kept: the current one and the one before it (a rotation in flight). */
const MATERIAL_CACHE_SIZE = 2;

export interface LifetimePolicy {
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
}

/** The lifetime a request gets: 0 = the default; otherwise clamped to [60 s, max]. */
export function leafLifetimeSeconds(requestedSeconds: number, policy: LifetimePolicy): number {
  const max = Math.max(policy.maxTtlSeconds, MIN_CERT_TTL_SECONDS);
  const wanted = requestedSeconds > 0 && Number.isFinite(requestedSeconds) ? Math.floor(requestedSeconds) : policy.defaultTtlSeconds;
  return Math.min(Math.max(wanted, MIN_CERT_TTL_SECONDS), max);
}

export interface IssuedChain {
  /** PEM: leaf, signing certificate, …, root. */
  certChain: string[];
  /** Lower-case hex. */
  serial: string;
  notAfter: Date;
}

export interface IssuerOptions {
  material: SigningMaterialSource;
  defaultTtlSeconds?: number;
  maxTtlSeconds?: number;
  /** Injected for tests. */
  now?: () => Date;
}

export interface Issuer {
  /**
   * Signs an accepted CSR for the requested number of seconds (0 = default). Rejects with
   * AMESH_CERT_FAILED when the material is unusable or expired.
   */
  issue(csr: AcceptedCsr, requestedSeconds: number): Promise<IssuedChain>;
  readonly policy: LifetimePolicy;
}

// ---- DER encoding (X.690), just what a leaf needs ----

function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  const length = content.reduce((n, c) => n + c.length, 0);
  let header: number[];
  if (length < 0x80) header = [tag, length];
  else if (length < 0x100) header = [tag, 0x81, length];
  else if (length < 0x10000) header = [tag, 0x82, length >> 8, length & 0xff];
  else header = [tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff];
  return Buffer.concat([Buffer.from(header), ...content]);
}

const sequence = (...content: Uint8Array[]): Buffer => tlv(0x30, ...content);
const VERSION_3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
const EMPTY_NAME = Buffer.from([0x30, 0x00]);
/** 2.5.29.17 subjectAltName, critical TRUE. */
const SAN_HEADER = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x11, 0x01, 0x01, 0xff]);

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always seconds and Z. */
function time(date: Date): Buffer {
  const iso = date.toISOString(); // 2030-06-01T12:00:00.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  return year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}

/** 128 random bits, positive, no leading zero byte, never 0 (RFC 5280 §4.1.2.2). */
function randomSerial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01;
  return bytes;
}

// ---- signing material, prepared once ----

interface PreparedCa {
  certPem: string;
  chainPem: string[];
  key: KeyObject;
  /** Digest for `crypto.sign` and the matching AlgorithmIdentifier DER. */
  digest: string;
  algorithm: Buffer;
  issuerName: Buffer;
  /** KeyUsage, EKU, BasicConstraints and AKI, DER-encoded, in pki.ts's order. */
  fixedExtensions: Buffer[];
  notBefore: number;
  notAfter: number;
}

/** AlgorithmIdentifier DER per key: ecdsa-with-SHA256/384 (no parameters), sha256WithRSAEncryption (NULL). */
function signatureAlgorithm(key: KeyObject): { digest: string; algorithm: Buffer } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { digest: 'sha256', algorithm: Buffer.from('300a06082a8648ce3d040302', 'hex') };
    if (curve === 'secp384r1') return { digest: 'sha384', algorithm: Buffer.from('300a06082a8648ce3d040303', 'hex') };
    throw new AmeshError('AMESH_CERT_FAILED', `the CA key is on curve ${curve ?? 'unknown'}; expected P-256 or P-384`);
  }
  if (key.asymmetricKeyType === 'rsa') return { digest: 'sha256', algorithm: Buffer.from('300d06092a864886f70d01010b0500', 'hex') };
  throw new AmeshError('AMESH_CERT_FAILED', `the CA key is ${key.asymmetricKeyType ?? 'unknown'}; expected ECDSA or RSA`);
}

async function prepare(material: SigningMaterial): Promise<PreparedCa> {
  const certPem = splitPemBundle(material.certPem)[0];
  if (!certPem) throw new AmeshError('AMESH_CERT_FAILED', 'the CA certificate PEM holds no certificate');
  let node: NodeX509Certificate;
  let cert: x509.X509Certificate;
  let key: KeyObject;
  try {
    node = new NodeX509Certificate(certPem);
    cert = new x509.X509Certificate(certPem);
    key = createPrivateKey(material.keyPem);
  } catch (err) {
    throw new AmeshError('AMESH_CERT_FAILED', `cannot read the CA certificate or key: ${(err as Error).message}`, { cause: err });
  }
  if (!node.ca) throw new AmeshError('AMESH_CERT_FAILED', 'the CA certificate is not a CA (BasicConstraints CA:TRUE missing)');
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(key)).equals(spki(node.publicKey))) throw new AmeshError('AMESH_CERT_FAILED', 'the CA private key does not match the CA certificate');
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const aki = ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : await x509.AuthorityKeyIdentifierExtension.create(cert.publicKey);
  const fixed = [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    new x509.BasicConstraintsExtension(false, undefined, true),
    aki,
  ];
  return {
    certPem,
    chainPem: splitPemBundle(material.chainPem.join('\n')),
    key,
    ...signatureAlgorithm(key),
    issuerName: Buffer.from(cert.subjectName.toArrayBuffer()),
    fixedExtensions: fixed.map((e) => Buffer.from(e.rawData)),
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
  };
}

/**
 * How far a leaf's not-before lies before its signing: NOT_BEFORE_BACKDATE_MS for clock skew, but
 * at most a quarter of the lifetime. Agents renew at half of notAfter − notBefore; a full minute's
 * backdate on a 60 s certificate put that point at the moment of issue, and the agents renewed in
 * a loop (835 certificates in 20 s for one identity in the sandbox).
 */
export function leafBackdateMs(ttlSeconds: number): number {
  return Math.min(NOT_BEFORE_BACKDATE_MS, (ttlSeconds * 1000) / 4);
}

function signLeaf(ca: PreparedCa, csr: AcceptedCsr, ttlSeconds: number, now: number): IssuedChain {
  const notAfter = Math.min(now + ttlSeconds * 1000, ca.notAfter);
  // Backdated for clock skew, but never before the CA itself is valid.
  const notBefore = Math.max(now - leafBackdateMs(ttlSeconds), ca.notBefore);
  if (notAfter <= now) throw new AmeshError('AMESH_CERT_FAILED', 'the CA certificate has expired', { hint: 'rotate the mesh root CA' });
  const serial = randomSerial();
  const san = sequence(SAN_HEADER, tlv(0x04, sequence(tlv(0x86, Buffer.from(csr.spiffeUri, 'utf8')))));
  const tbs = sequence(
    VERSION_3,
    tlv(0x02, serial),
    ca.algorithm,
    ca.issuerName,
    // Whole seconds, as X.509 times carry no fractions.
    sequence(time(new Date(Math.floor(notBefore / 1000) * 1000)), time(new Date(Math.floor(notAfter / 1000) * 1000))),
    EMPTY_NAME,
    csr.publicKeySpki,
    tlv(0xa3, sequence(...ca.fixedExtensions, san)),
  );
  const signature = sign(ca.digest, tbs, ca.key);
  const der = sequence(tbs, ca.algorithm, tlv(0x03, Buffer.from([0]), signature));
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return {
    certChain: [`-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`, ca.certPem, ...ca.chainPem],
    serial: serial.toString('hex'),
    notAfter: new Date(Math.floor(notAfter / 1000) * 1000),
  };
}

export function createIssuer(opts: IssuerOptions): Issuer {
  const policy: LifetimePolicy = Object.freeze({
    defaultTtlSeconds: opts.defaultTtlSeconds ?? DEFAULT_CERT_TTL_SECONDS,
    maxTtlSeconds: opts.maxTtlSeconds ?? DEFAULT_MAX_CERT_TTL_SECONDS,
  });
  for (const [name, value] of Object.entries(policy)) {
    if (!Number.isInteger(value) || value < MIN_CERT_TTL_SECONDS) throw new AmeshError('AMESH_CONFIG_INVALID', `CA ${name} ${value}: expected whole seconds, at least ${MIN_CERT_TTL_SECONDS}`);
  }
  const now = opts.now ?? (() => new Date());
  const prepared = new Map<string, Promise<PreparedCa>>();

  function preparedCa(material: SigningMaterial): Promise<PreparedCa> {
    const key = `${material.certPem}\0${material.keyPem}\0${material.chainPem.join('')}`;
    let ca = prepared.get(key);
    if (!ca) {
      // A failure is not cached, so fixed material is picked up on the next request.
      ca = prepare(material).catch((err: unknown) => {
        prepared.delete(key);
        throw err;
      });
      prepared.set(key, ca);
      for (const old of prepared.keys()) if (prepared.size > MATERIAL_CACHE_SIZE) prepared.delete(old);
    }
    return ca;
  }

  return {
    policy,
    async issue(csr, requestedSeconds) {
      const ca = await preparedCa(opts.material());
      return signLeaf(ca, csr, leafLifetimeSeconds(requestedSeconds, policy), now().getTime());
    },
  };
}
