/**
 * X.509 for the mesh: ECDSA P-256 keys, a self-signed root for local mode, Istio-shaped CSRs
 * (empty subject, exactly one URI SAN) and leaf signing (DESIGN §5).
 *
 * Library: @peculiar/x509 on Node's WebCrypto. node-forge was considered and rejected: it
 * cannot do ECDSA. Node's own crypto verifies and parses certificates but cannot build them.
 *
 * Leaf profile (as istiod issues): empty subject, issuer = CA subject, URI SAN only (critical,
 * because the subject is empty — RFC 5280 §4.2.1.6), KeyUsage digitalSignature|keyEncipherment
 * (critical), EKU serverAuth+clientAuth, BasicConstraints CA:FALSE (critical), AKI = CA's key,
 * not-before backdated one minute for clock skew, 128-bit random positive serial, not-after
 * clamped to the CA's.
 */
import { X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AmeshError } from '../errors/amesh-error.js';
import { isValidTrustDomain, parseSpiffeId } from './spiffe.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
type Key = KeyPair['privateKey'];

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const SAN_OID = '2.5.29.17';
/** Allowed clock skew between issuer and peers. */
export const NOT_BEFORE_BACKDATE_MS = 60_000;

/** PEM-encoded CA certificate (may be a bundle: CA first, its issuers after) and its PKCS#8 key. */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

/** A CA ready to sign: parsed once, reused for every CSR. */
export interface SigningCa {
  certPem: string;
  /** The CA certificate followed by its issuers, PEM each. */
  chainPem: string[];
  certificate: x509.X509Certificate;
  key: Key;
}

export function generateKeyPair(): Promise<CryptoKeyPairLike> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']) as Promise<CryptoKeyPairLike>;
}

/** webcrypto's CryptoKeyPair, named without the DOM lib. */
export interface CryptoKeyPairLike {
  privateKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
}

function toPem(der: ArrayBuffer | Buffer, label: string): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

export async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Accepts PKCS#8 or SEC1 ("EC PRIVATE KEY") PEM; the key must be ECDSA P-256. */
export async function importPrivateKeyPem(pem: string): Promise<webcrypto.CryptoKey> {
  let der: Buffer;
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error(`expected an ECDSA P-256 key, got ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim());
    }
    der = key.export({ type: 'pkcs8', format: 'der' });
  } catch (err) {
    throw new AmeshError('AMESH_CERT_FAILED', `cannot read private key: ${(err as Error).message}`, { cause: err });
  }
  return webcrypto.subtle.importKey('pkcs8', der, EC_KEY, true, ['sign']);
}

/** Splits a PEM bundle into one PEM per certificate (normalised, trailing newline). */
export function splitPemBundle(bundle: string): string[] {
  const out: string[] = [];
  const re = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
  for (const m of bundle.matchAll(re)) out.push(`${m[0]}\n`);
  return out;
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01; // positive, no leading zero byte, never 0
  return bytes.toString('hex');
}

export interface GenerateCaOptions {
  trustDomain: string;
  validityDays: number;
  /** Optional CN next to O=<trust domain> (Istio's self-signed root has only the O). */
  commonName?: string;
  now?: Date;
}

/** A self-signed root: O=<trust domain>, CA:TRUE (critical), keyCertSign|cRLSign (critical). */
export async function generateCa(opts: GenerateCaOptions): Promise<CaMaterial> {
  if (!isValidTrustDomain(opts.trustDomain)) throw new AmeshError('AMESH_CONFIG_INVALID', `trust domain ${JSON.stringify(opts.trustDomain)} is not a valid SPIFFE trust domain`);
  if (!Number.isFinite(opts.validityDays) || opts.validityDays <= 0) throw new AmeshError('AMESH_CONFIG_INVALID', `CA validity ${opts.validityDays} days: expected a positive number`);
  const keys = await generateKeyPair();
  const now = opts.now ?? new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: opts.commonName ? [{ O: [opts.trustDomain] }, { CN: [opts.commonName] }] : [{ O: [opts.trustDomain] }],
    notBefore: new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS),
    notAfter: new Date(now.getTime() + opts.validityDays * 86_400_000),
    keys,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** Parses and checks CA material once: the certificate is a CA and the key matches it. */
export async function loadCa(material: CaMaterial): Promise<SigningCa> {
  const chainPem = splitPemBundle(material.certPem);
  const first = chainPem[0];
  if (!first) throw new AmeshError('AMESH_CERT_FAILED', 'CA certificate PEM holds no certificate');
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(first);
  } catch (err) {
    throw new AmeshError('AMESH_CERT_FAILED', `cannot parse CA certificate: ${(err as Error).message}`, { cause: err });
  }
  const bc = certificate.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) throw new AmeshError('AMESH_CERT_FAILED', 'the CA certificate is not a CA (BasicConstraints CA:TRUE missing)');
  const key = await importPrivateKeyPem(material.keyPem);
  // The key must belong to the certificate: sign and verify a probe.
  const probe = randomBytes(32);
  const sig = await webcrypto.subtle.sign(EC_SIGN, key, probe);
  const pub = await certificate.publicKey.export();
  if (!(await webcrypto.subtle.verify(EC_SIGN, pub as webcrypto.CryptoKey, sig, probe))) {
    throw new AmeshError('AMESH_CERT_FAILED', 'the CA private key does not match the CA certificate');
  }
  return { certPem: first, chainPem, certificate, key };
}

export interface CreateCsrOptions {
  key: CryptoKeyPairLike;
  spiffeUri: string;
}

/** PKCS#10 with an empty subject and exactly one URI SAN, as Istio's agents send. */
export async function createCsr(opts: CreateCsrOptions): Promise<string> {
  if (!parseSpiffeId(opts.spiffeUri)) throw new AmeshError('AMESH_IDENTITY_INVALID', `${opts.spiffeUri} is not a SPIFFE ID`);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: opts.key,
    signingAlgorithm: EC_SIGN,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.spiffeUri }], true)],
  });
  return csr.toString('pem') + '\n';
}

function uriSans(ext: x509.SubjectAlternativeNameExtension | null): string[] {
  if (!ext) return [];
  return ext.names.items.filter((n) => n.type === 'url').map((n) => n.value);
}

export interface SignCsrOptions {
  ca: CaMaterial | SigningCa;
  csrPem: string;
  ttlSeconds: number;
  now?: Date;
  /** When set, the CSR's URI SAN must equal this identity (the caller's authorised identity). */
  expectedSpiffeUri?: string;
}

function isSigningCa(ca: CaMaterial | SigningCa): ca is SigningCa {
  return 'certificate' in ca;
}

/** Keys we sign for: ECDSA P-256/P-384 (ztunnel, amesh) and RSA ≥ 2048 (Istio's sidecar agent default). */
function acceptableCsrKey(algorithm: object): boolean {
  const a = algorithm as { name?: string; namedCurve?: string; modulusLength?: number };
  if (a.name === 'ECDSA') return a.namedCurve === 'P-256' || a.namedCurve === 'P-384';
  if (a.name === 'RSASSA-PKCS1-v1_5' || a.name === 'RSA-PSS') return (a.modulusLength ?? 0) >= 2048;
  return false;
}

/** Verifies the CSR and issues a leaf carrying only its URI SAN. Returns the leaf PEM. */
export async function signCsr(opts: SignCsrOptions): Promise<string> {
  const ca = isSigningCa(opts.ca) ? opts.ca : await loadCa(opts.ca);
  if (!Number.isFinite(opts.ttlSeconds) || opts.ttlSeconds <= 0) throw new AmeshError('AMESH_CSR_INVALID', `certificate lifetime ${opts.ttlSeconds} s: expected a positive number`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(opts.csrPem);
  } catch (err) {
    throw new AmeshError('AMESH_CSR_INVALID', `cannot parse the CSR: ${(err as Error).message}`, { cause: err });
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch (err) {
    throw new AmeshError('AMESH_CSR_INVALID', `cannot verify the CSR signature: ${(err as Error).message}`, { cause: err });
  }
  if (!valid) throw new AmeshError('AMESH_CSR_INVALID', 'the CSR signature does not verify');
  if (!acceptableCsrKey(csr.publicKey.algorithm)) {
    throw new AmeshError('AMESH_CSR_INVALID', `the CSR key (${csr.publicKey.algorithm.name}) must be ECDSA P-256/P-384 or RSA of at least 2048 bits`);
  }
  const sanRaw = csr.getExtension(SAN_OID);
  const uris = uriSans(sanRaw ? new x509.SubjectAlternativeNameExtension(sanRaw.rawData) : null);
  if (uris.length !== 1) throw new AmeshError('AMESH_CSR_INVALID', `the CSR must carry exactly one URI SAN, found ${uris.length}`);
  const uri = uris[0] as string;
  if (!parseSpiffeId(uri)) throw new AmeshError('AMESH_CSR_INVALID', `the CSR's URI SAN ${uri} is not a SPIFFE ID`);
  if (opts.expectedSpiffeUri !== undefined && uri !== opts.expectedSpiffeUri) {
    throw new AmeshError('AMESH_CSR_INVALID', `the CSR asks for ${uri} but the caller may only get ${opts.expectedSpiffeUri}`);
  }
  const now = opts.now ?? new Date();
  const caNotAfter = ca.certificate.notAfter.getTime();
  const notAfter = new Date(Math.min(now.getTime() + opts.ttlSeconds * 1000, caNotAfter));
  // Backdated for clock skew, but never before the CA itself is valid.
  const notBefore = new Date(Math.max(now.getTime() - NOT_BEFORE_BACKDATE_MS, ca.certificate.notBefore.getTime()));
  if (notAfter.getTime() <= now.getTime()) throw new AmeshError('AMESH_CERT_FAILED', 'the CA certificate has expired', { hint: 'rotate the mesh root CA' });
  const caSki = ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: '',
    issuer: ca.certificate.subjectName,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.BasicConstraintsExtension(false, undefined, true),
      caSki ? new x509.AuthorityKeyIdentifierExtension(caSki.keyId) : await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], true),
    ],
  });
  return cert.toString('pem') + '\n';
}

export interface CertificateInfo {
  pem: string;
  /** Node's view, for `verify()`, `checkIssued()` and fingerprints. */
  x509: NodeX509Certificate;
  subject: string;
  issuer: string;
  /** Hex, lower case. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** URI SANs in order (SPIFFE IDs for mesh certificates). */
  uriSans: string[];
  isCa: boolean;
}

export function parseCertificate(pem: string): CertificateInfo {
  let cert: x509.X509Certificate;
  let node: NodeX509Certificate;
  try {
    cert = new x509.X509Certificate(pem);
    node = new NodeX509Certificate(pem);
  } catch (err) {
    throw new AmeshError('AMESH_CERT_FAILED', `cannot parse certificate: ${(err as Error).message}`, { cause: err });
  }
  return {
    pem,
    x509: node,
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber.toLowerCase(),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    uriSans: uriSans(cert.getExtension(x509.SubjectAlternativeNameExtension)),
    isCa: cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
  };
}

/** URI SANs of a DER certificate (what a TLS peer presented); empty on parse failure. */
export function uriSansFromDer(der: Buffer | Uint8Array): string[] {
  try {
    return uriSans(new x509.X509Certificate(der).getExtension(x509.SubjectAlternativeNameExtension));
  } catch {
    return [];
  }
}
