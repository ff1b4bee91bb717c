/**
 * What the CA accepts as a certificate signing request (DESIGN §5): a PEM PKCS#10 (RFC 2986)
 * whose signature verifies, whose key is ECDSA P-256, and whose only SAN is one URI equal to the
 * identity the caller was authorised for. Stricter than `signCsr` in pki.ts (which also takes
 * P-384 and RSA for local mode): the in-cluster CA only serves amesh and ztunnel agents, which
 * send P-256. Pure and synchronous; never throws — a refusal is a value with a reason the server
 * passes to the client as INVALID_ARGUMENT.
 *
 * Why a DER walk instead of @peculiar/x509's Pkcs10CertificateRequest (which pki.ts and the tests
 * use): its parse plus extension decoding cost ~0.6 ms per CSR, more than half the CA's CPU per
 * signature. The walk reads exactly the fields the decision needs, bounds-checks every length,
 * refuses indefinite lengths and trailing bytes, and treats anything unexpected as garbage. The
 * signature is checked by Node's crypto over the CertificationRequestInfo bytes as sent.
 */
import { createPublicKey, verify } from 'node:crypto';

/** A P-256 CSR is well under 1 KiB; anything far larger is not one (the gRPC limit is 64 KiB). */
const MAX_CSR_PEM_CHARS = 16 * 1024;
const PEM = /^\s*-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END (?:NEW )?CERTIFICATE REQUEST-----\s*$/;

/** The one DER form of a P-256 SubjectPublicKeyInfo header (id-ecPublicKey, prime256v1, uncompressed point). */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const P256_SPKI_LENGTH = P256_SPKI_PREFIX.length + 65;
/** ecdsa-with-SHA256/384/512 OID contents → digest. */
const ECDSA_DIGESTS = new Map([
  ['2a8648ce3d040302', 'sha256'],
  ['2a8648ce3d040303', 'sha384'],
  ['2a8648ce3d040304', 'sha512'],
]);
const EXTENSION_REQUEST_OID = '2a864886f70d01090e'; // 1.2.840.113549.1.9.14
const SAN_OID = '551d11'; // 2.5.29.17
/** GeneralName tags (context-specific, RFC 5280 §4.2.1.6) by how we report them. */
const GENERAL_NAME_TYPES: Record<number, string> = { 0x81: 'email', 0x82: 'dns', 0x86: 'url', 0x87: 'ip', 0x88: 'registeredID', 0xa0: 'otherName', 0xa4: 'dirName' };

/** A CSR the CA will sign: the identity it is for and the key to certify. */
export interface AcceptedCsr {
  spiffeUri: string;
  /** The requester's SubjectPublicKeyInfo, DER (ECDSA P-256). */
  publicKeySpki: Buffer;
}

export type CsrCheck = { ok: true; accepted: AcceptedCsr } | { ok: false; reason: string };

function refuse(reason: string): CsrCheck {
  return { ok: false, reason };
}

class MalformedDer extends Error {}

/** One DER element: `tag`, its content `[start, end)`, and where its header begins. */
interface Element {
  tag: number;
  at: number;
  start: number;
  end: number;
}

function element(der: Buffer, at: number, limit: number): Element {
  if (at + 2 > limit) throw new MalformedDer('truncated element');
  const tag = der[at] as number;
  if ((tag & 0x1f) === 0x1f) throw new MalformedDer('multi-byte tags are not used in a CSR');
  let length = der[at + 1] as number;
  let start = at + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 3) throw new MalformedDer('unsupported length encoding');
    if (start + octets > limit) throw new MalformedDer('truncated length');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (der[start + i] as number);
    start += octets;
  }
  if (start + length > limit) throw new MalformedDer('element longer than its container');
  return { tag, at, start, end: start + length };
}

function children(der: Buffer, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const child = element(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

function expectTag(e: Element | undefined, tag: number, what: string): Element {
  if (!e || e.tag !== tag) throw new MalformedDer(`expected ${what}`);
  return e;
}

const hex = (der: Buffer, e: Element): string => der.toString('hex', e.start, e.end);

/** Names the key type of a SubjectPublicKeyInfo for a refusal message. */
const KEY_ALGORITHMS: Record<string, string> = { '2a864886f70d010101': 'RSA', '2a8648ce3d0201': 'EC', '2b6570': 'Ed25519', '2b6571': 'Ed448' };
const CURVES: Record<string, string> = { '2a8648ce3d030107': 'P-256', '2b81040022': 'P-384', '2b81040023': 'P-521' };
function describeKey(der: Buffer, spki: Element): string {
  try {
    const [algorithm] = children(der, spki);
    const [oid, parameters] = children(der, expectTag(algorithm, 0x30, 'a key algorithm'));
    const name = KEY_ALGORITHMS[hex(der, expectTag(oid, 0x06, 'a key algorithm id'))] ?? 'an unknown algorithm';
    const curve = parameters?.tag === 0x06 ? (CURVES[hex(der, parameters)] ?? 'an unknown curve') : undefined;
    return curve ? `${name} ${curve}` : name;
  } catch {
    return 'unreadable';
  }
}

function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  return bytes.toString('hex').replace(/(.{4})(?!$)/g, '$1:');
}

/** `type:value` of every SAN the CSR requests, across all extensionRequest attributes. */
function requestedSans(der: Buffer, attributes: Element): string[] {
  const names: string[] = [];
  for (const attribute of children(der, attributes)) {
    const [type, values] = children(der, expectTag(attribute, 0x30, 'an attribute'));
    if (hex(der, expectTag(type, 0x06, 'an attribute type')) !== EXTENSION_REQUEST_OID) continue;
    for (const extensions of children(der, expectTag(values, 0x31, 'attribute values'))) {
      for (const extension of children(der, expectTag(extensions, 0x30, 'extensions'))) {
        const parts = children(der, expectTag(extension, 0x30, 'an extension'));
        if (hex(der, expectTag(parts[0], 0x06, 'an extension id')) !== SAN_OID) continue;
        const value = expectTag(parts[parts.length - 1], 0x04, 'an extension value');
        const generalNames = element(der, value.start, value.end);
        if (generalNames.end !== value.end) throw new MalformedDer('trailing bytes in the SAN extension');
        for (const name of children(der, expectTag(generalNames, 0x30, 'GeneralNames'))) {
          const kind = GENERAL_NAME_TYPES[name.tag] ?? `tag ${name.tag}`;
          const text = name.tag === 0x87 ? ipText(der.subarray(name.start, name.end)) : der.toString('latin1', name.start, name.end);
          names.push(`${kind}:${text}`);
        }
      }
    }
  }
  return names;
}

/** Checks `csrPem` for `expectedSpiffeUri`; on success returns what the issuer signs. */
export function checkCsr(csrPem: string, expectedSpiffeUri: string): CsrCheck {
  if (typeof csrPem !== 'string' || csrPem.trim() === '') return refuse('the request carries no CSR');
  if (csrPem.length > MAX_CSR_PEM_CHARS) return refuse(`the CSR is ${csrPem.length} characters; a P-256 CSR is under ${MAX_CSR_PEM_CHARS}`);
  const pem = PEM.exec(csrPem);
  if (!pem) return refuse('cannot parse the CSR: expected one PEM "CERTIFICATE REQUEST" block');
  const der = Buffer.from((pem[1] as string).replace(/\s+/g, ''), 'base64');

  let info: Element;
  let publicKeySpki: Buffer;
  let keyType: string;
  let digest: string | undefined;
  let signature: Buffer;
  let sans: string[];
  try {
    const request = expectTag(element(der, 0, der.length), 0x30, 'a CertificationRequest');
    if (request.end !== der.length) throw new MalformedDer('trailing bytes after the CSR');
    const [requestInfo, algorithm, signatureBits, ...extra] = children(der, request);
    if (extra.length > 0) throw new MalformedDer('extra fields in the CertificationRequest');
    info = expectTag(requestInfo, 0x30, 'a CertificationRequestInfo');
    const [version, subject, spki, attributes] = children(der, info);
    if (hex(der, expectTag(version, 0x02, 'a version')) !== '00') throw new MalformedDer('unsupported CSR version');
    expectTag(subject, 0x30, 'a subject name');
    const key = expectTag(spki, 0x30, 'a SubjectPublicKeyInfo');
    publicKeySpki = Buffer.from(der.subarray(key.at, key.end));
    keyType = describeKey(der, key);
    const algorithmId = children(der, expectTag(algorithm, 0x30, 'a signature algorithm'));
    digest = ECDSA_DIGESTS.get(hex(der, expectTag(algorithmId[0], 0x06, 'a signature algorithm id')));
    const bits = expectTag(signatureBits, 0x03, 'a signature');
    if (bits.end - bits.start < 2 || der[bits.start] !== 0) throw new MalformedDer('malformed signature bits');
    signature = der.subarray(bits.start + 1, bits.end);
    sans = attributes ? requestedSans(der, expectTag(attributes, 0xa0, 'attributes')) : [];
  } catch (err) {
    if (err instanceof MalformedDer) return refuse(`cannot parse the CSR: ${err.message}`);
    throw err;
  }

  if (publicKeySpki.length !== P256_SPKI_LENGTH || !publicKeySpki.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX)) {
    return refuse(`the CSR key is ${keyType}; the CA signs ECDSA P-256 keys only`);
  }
  if (!digest) return refuse('the CSR is not signed with ECDSA (SHA-256/384/512)');
  try {
    // Built from the point as JWK: cheaper than OpenSSL's SPKI decoder, and it checks the point is on the curve.
    const point = publicKeySpki.subarray(P256_SPKI_PREFIX.length);
    if (point[0] !== 0x04) return refuse('the CSR key is not an uncompressed P-256 point');
    const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, format: 'jwk' });
    if (!verify(digest, der.subarray(info.at, info.end), key, signature)) return refuse('the CSR signature does not verify');
  } catch (err) {
    return refuse(`cannot verify the CSR signature: ${(err as Error).message}`);
  }

  const expected = `url:${expectedSpiffeUri}`;
  if (sans.length !== 1 || sans[0] !== expected) {
    const found = sans.length === 0 ? 'none' : sans.join(', ');
    return refuse(`the CSR must carry exactly one SAN, the URI ${expectedSpiffeUri}; found ${found}`);
  }
  return { ok: true, accepted: { spiffeUri: expectedSpiffeUri, publicKeySpki } };
}
