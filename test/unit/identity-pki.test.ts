import { X509Certificate, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { DEFAULT_WORKLOAD_CERT_TTL_SECONDS, LocalCaProvider } from '../../src/identity/certificate-provider.js';
import {
  createCsr,
  generateCa,
  generateKeyPair,
  importPrivateKeyPem,
  loadCa,
  NOT_BEFORE_BACKDATE_MS,
  parseCertificate,
  signCsr,
  splitPemBundle,
  type CaMaterial,
} from '../../src/identity/pki.js';

const URI = 'spiffe://cluster.local/ns/default/sa/reviews';
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
let ca: CaMaterial;

beforeAll(async () => {
  ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 30 });
});

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAmeshError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
}

describe('generateCa', () => {
  it('is a self-signed ECDSA P-256 root: O=<trust domain>, CA:TRUE, keyCertSign|cRLSign, all critical', async () => {
    const cert = new x509.X509Certificate(ca.certPem);
    expect(cert.subject).toBe('O=cluster.local');
    expect(cert.issuer).toBe(cert.subject);
    expect(await cert.isSelfSigned()).toBe(true);
    expect(cert.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    expect(bc?.ca).toBe(true);
    expect(bc?.critical).toBe(true);
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    expect(ku?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(ku?.critical).toBe(true);
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)).not.toBeNull();
    const node = new X509Certificate(ca.certPem);
    expect(node.ca).toBe(true);
    expect(node.checkIssued(node)).toBe(true);
    expect(node.verify(node.publicKey)).toBe(true);
    // The key belongs to the certificate.
    expect(createPublicKey(createPrivateKey(ca.keyPem)).export({ format: 'jwk' })).toEqual(node.publicKey.export({ format: 'jwk' }));
  });

  it('adds a CN when asked and honours validity', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const named = await generateCa({ trustDomain: 'example.org', validityDays: 2, commonName: 'amesh root', now });
    const info = parseCertificate(named.certPem);
    expect(info.subject).toBe('O=example.org, CN=amesh root');
    expect(info.notBefore.getTime()).toBe(now.getTime() - NOT_BEFORE_BACKDATE_MS);
    expect(info.notAfter.getTime()).toBe(now.getTime() + 2 * 86_400_000);
    expect(info.isCa).toBe(true);
  });

  it('rejects a bad trust domain or validity', async () => {
    await expectCode(generateCa({ trustDomain: 'Bad Domain', validityDays: 1 }), 'AMESH_CONFIG_INVALID');
    await expectCode(generateCa({ trustDomain: 'cluster.local', validityDays: 0 }), 'AMESH_CONFIG_INVALID');
  });
});

describe('createCsr', () => {
  it('has an EMPTY subject and exactly one (critical) URI SAN, signed by the key', async () => {
    const keys = await generateKeyPair();
    const pem = await createCsr({ key: keys, spiffeUri: URI });
    const csr = new x509.Pkcs10CertificateRequest(pem);
    expect(csr.subject).toBe('');
    expect(csr.subjectName.toJSON()).toEqual([]);
    const raw = csr.getExtension('2.5.29.17');
    const san = raw ? new x509.SubjectAlternativeNameExtension(raw.rawData) : null;
    expect(san?.critical).toBe(true);
    expect(san?.names.toJSON()).toEqual([{ type: 'url', value: URI }]);
    expect(csr.extensions.filter((e) => e.type === '2.5.29.17')).toHaveLength(1);
    expect(await csr.verify()).toBe(true);
    expect(csr.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
  });

  it('refuses something that is not a SPIFFE id', async () => {
    const keys = await generateKeyPair();
    await expectCode(createCsr({ key: keys, spiffeUri: 'https://example.com/' }), 'AMESH_IDENTITY_INVALID');
  });
});

describe('signCsr', () => {
  it('issues a leaf that chains to the CA, with only the URI SAN and Istio’s profile', async () => {
    const keys = await generateKeyPair();
    const now = new Date('2030-01-01T00:00:00Z');
    // A CA valid at `now`, so the leaf is not clamped to it.
    const caAtNow = await generateCa({ trustDomain: 'cluster.local', validityDays: 60, now: new Date('2029-12-01T00:00:00Z') });
    const leafPem = await signCsr({ ca: caAtNow, csrPem: await createCsr({ key: keys, spiffeUri: URI }), ttlSeconds: 3600, now });
    const leaf = new X509Certificate(leafPem);
    const root = new X509Certificate(caAtNow.certPem);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.subject ?? '').toBe(''); // Node reports an empty subject as undefined
    expect(leaf.subjectAltName).toBe(`URI:${URI}`);
    expect(leaf.ca).toBe(false);
    expect(new Date(leaf.validFrom).toISOString()).toBe('2029-12-31T23:59:00.000Z');
    expect(new Date(leaf.validTo).toISOString()).toBe('2030-01-01T01:00:00.000Z');

    const cert = new x509.X509Certificate(leafPem);
    expect(cert.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    expect(cert.getExtension(x509.KeyUsagesExtension)?.critical).toBe(true);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    expect(cert.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: false, critical: true });
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)?.critical).toBe(true);
    const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
    const caSki = new x509.X509Certificate(caAtNow.certPem).getExtension(x509.SubjectKeyIdentifierExtension);
    expect(aki?.keyId).toBe(caSki?.keyId);
    // The public key is the CSR's.
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)).toString('hex');
    expect(Buffer.from(cert.publicKey.rawData).toString('hex')).toBe(spki);

    const info = parseCertificate(leafPem);
    expect(info.uriSans).toEqual([URI]);
    expect(info.serial).toMatch(/^[0-9a-f]{32}$/);
    expect(info.isCa).toBe(false);
    expect(info.notBefore.getTime()).toBe(now.getTime() - NOT_BEFORE_BACKDATE_MS);
    expect(info.notAfter.getTime()).toBe(now.getTime() + 3_600_000);
  });

  it('gives every leaf a different positive serial', async () => {
    const keys = await generateKeyPair();
    const csrPem = await createCsr({ key: keys, spiffeUri: URI });
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add(parseCertificate(await signCsr({ ca, csrPem, ttlSeconds: 60 })).serial);
    expect(serials.size).toBe(5);
    for (const s of serials) expect(parseInt(s.slice(0, 2), 16) & 0x80).toBe(0);
  });

  it('never lets a leaf outlive its CA, nor start before it', async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const shortCa = await generateCa({ trustDomain: 'cluster.local', validityDays: 1, now });
    const keys = await generateKeyPair();
    // Signed "30 s before the CA was made" (clock skew): backdating would precede the CA.
    const leaf = parseCertificate(await signCsr({ ca: shortCa, csrPem: await createCsr({ key: keys, spiffeUri: URI }), ttlSeconds: 30 * 86_400, now: new Date(now.getTime() - 30_000) }));
    const caInfo = parseCertificate(shortCa.certPem);
    expect(leaf.notAfter.getTime()).toBe(caInfo.notAfter.getTime());
    expect(leaf.notBefore.getTime()).toBe(caInfo.notBefore.getTime());
  });

  it('refuses to sign with an expired CA', async () => {
    const old = await generateCa({ trustDomain: 'cluster.local', validityDays: 1, now: new Date('2020-01-01T00:00:00Z') });
    const keys = await generateKeyPair();
    await expectCode(signCsr({ ca: old, csrPem: await createCsr({ key: keys, spiffeUri: URI }), ttlSeconds: 60 }), 'AMESH_CERT_FAILED');
  });

  it('rejects a CSR whose signature does not match its key', async () => {
    const keys = await generateKeyPair();
    const pem = await createCsr({ key: keys, spiffeUri: URI });
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(pem).rawData);
    der[der.length - 5] = (der[der.length - 5] as number) ^ 0xff; // inside the signature
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expectCode(signCsr({ ca, csrPem: tampered, ttlSeconds: 60 }), 'AMESH_CSR_INVALID');
  });

  it('rejects a CSR signed by another key than the one it carries', async () => {
    const a = await generateKeyPair();
    const b = await generateKeyPair();
    const forged = await x509.Pkcs10CertificateRequestGenerator.create({
      keys: { publicKey: a.publicKey, privateKey: b.privateKey } as never,
      signingAlgorithm: SIGN,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: URI }], true)],
    });
    await expectCode(signCsr({ ca, csrPem: forged.toString('pem'), ttlSeconds: 60 }), 'AMESH_CSR_INVALID');
  });

  it.each([
    ['no SAN', [] as Array<{ type: 'url' | 'dns'; value: string }>],
    ['only a DNS SAN', [{ type: 'dns' as const, value: 'x' }]],
    ['two URI SANs', [{ type: 'url' as const, value: URI }, { type: 'url' as const, value: 'spiffe://cluster.local/ns/default/sa/other' }]],
    ['a non-SPIFFE URI', [{ type: 'url' as const, value: 'https://example.com/' }]],
  ])('rejects a CSR with %s', async (_name, names) => {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      keys: keys as never,
      signingAlgorithm: SIGN,
      extensions: names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [],
    });
    await expectCode(signCsr({ ca, csrPem: csr.toString('pem'), ttlSeconds: 60 }), 'AMESH_CSR_INVALID');
  });

  it('copies only the URI SAN: subject, DNS names and CA:TRUE asked for are dropped', async () => {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=admin, O=evil',
      keys: keys as never,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: URI }, { type: 'dns', value: 'kubernetes.default' }]),
        new x509.BasicConstraintsExtension(true),
      ],
    });
    const leaf = new X509Certificate(await signCsr({ ca, csrPem: csr.toString('pem'), ttlSeconds: 60 }));
    expect(leaf.subject ?? '').toBe('');
    expect(leaf.subjectAltName).toBe(`URI:${URI}`);
    expect(leaf.ca).toBe(false);
  });

  it('enforces the identity the caller is authorised for', async () => {
    const keys = await generateKeyPair();
    const csrPem = await createCsr({ key: keys, spiffeUri: URI });
    await expectCode(signCsr({ ca, csrPem, ttlSeconds: 60, expectedSpiffeUri: 'spiffe://cluster.local/ns/default/sa/other' }), 'AMESH_CSR_INVALID');
    await expect(signCsr({ ca, csrPem, ttlSeconds: 60, expectedSpiffeUri: URI })).resolves.toContain('BEGIN CERTIFICATE');
  });

  it('rejects a weak RSA key', async () => {
    const keys = (await webcrypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      keys: keys as never,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as never,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: URI }], true)],
    });
    await expectCode(signCsr({ ca, csrPem: csr.toString('pem'), ttlSeconds: 60 }), 'AMESH_CSR_INVALID');
  });

  it('rejects garbage, a zero lifetime, and a key that does not belong to the CA', async () => {
    await expectCode(signCsr({ ca, csrPem: 'not a csr', ttlSeconds: 60 }), 'AMESH_CSR_INVALID');
    const keys = await generateKeyPair();
    const csrPem = await createCsr({ key: keys, spiffeUri: URI });
    await expectCode(signCsr({ ca, csrPem, ttlSeconds: 0 }), 'AMESH_CSR_INVALID');
    const other = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    await expectCode(signCsr({ ca: { certPem: ca.certPem, keyPem: other.keyPem }, csrPem, ttlSeconds: 60 }), 'AMESH_CERT_FAILED');
  });
});

describe('loadCa and key import', () => {
  it('reads SEC1 keys too', async () => {
    const sec1 = createPrivateKey(ca.keyPem).export({ type: 'sec1', format: 'pem' }) as string;
    const loaded = await loadCa({ certPem: ca.certPem, keyPem: sec1 });
    expect(loaded.chainPem).toHaveLength(1);
    await expectCode(importPrivateKeyPem('nope'), 'AMESH_CERT_FAILED');
  });

  it('rejects a key that does not belong to the certificate', async () => {
    const other = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    await expect(loadCa({ certPem: ca.certPem, keyPem: other.keyPem })).rejects.toThrow(/does not match/);
  });

  it('rejects a non-CA certificate', async () => {
    const issued = await new LocalCaProvider({ ca, ttlSeconds: 60 }).fetch({ trustDomain: 'cluster.local', namespace: 'a', serviceAccount: 'b' });
    await expect(loadCa({ certPem: issued.chainPem[0] as string, keyPem: issued.keyPem })).rejects.toThrow(/not a CA/);
  });

  it('splits PEM bundles', () => {
    expect(splitPemBundle(`${ca.certPem}\n\n${ca.certPem}`)).toEqual([ca.certPem, ca.certPem]);
    expect(splitPemBundle('nothing')).toEqual([]);
  });
});

describe('LocalCaProvider', () => {
  it('returns leaf-first chains, the root, the key and the validity', async () => {
    const issued = await new LocalCaProvider({ ca, ttlSeconds: 120 }).fetch({ trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'reviews' });
    expect(issued.identity).toBe(URI);
    expect(issued.chainPem).toHaveLength(2);
    expect(issued.chainPem[1]).toBe(splitPemBundle(ca.certPem)[0]);
    expect(issued.rootsPem).toEqual([issued.chainPem[1]]);
    const leaf = new X509Certificate(issued.chainPem[0] as string);
    expect(leaf.checkPrivateKey(createPrivateKey(issued.keyPem))).toBe(true);
    expect(leaf.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBe(180_000);
  });

  it('defaults to 24 h certificates and validates its ttl and identities', async () => {
    expect(DEFAULT_WORKLOAD_CERT_TTL_SECONDS).toBe(86_400);
    const issued = await new LocalCaProvider({ ca }).fetch({ trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'reviews' });
    expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBe(86_400_000 + NOT_BEFORE_BACKDATE_MS);
    expect(() => new LocalCaProvider({ ca, ttlSeconds: 0 })).toThrow(/TTL/);
    await expectCode(new LocalCaProvider({ ca }).fetch({ trustDomain: 'cluster.local', namespace: 'a/b', serviceAccount: 'c' }), 'AMESH_IDENTITY_INVALID');
  });
});
