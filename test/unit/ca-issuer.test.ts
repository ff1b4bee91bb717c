import { X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkCsr, type AcceptedCsr } from '../../src/controller/ca/csr-check.js';
import { createIssuer, DEFAULT_CERT_TTL_SECONDS, leafBackdateMs, leafLifetimeSeconds, MIN_CERT_TTL_SECONDS } from '../../src/controller/ca/issuer.js';
import type { SigningMaterial } from '../../src/controller/ca/types.js';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { createCsr, exportPrivateKeyPem, generateCa, generateKeyPair, importPrivateKeyPem, NOT_BEFORE_BACKDATE_MS, signCsr, type CaMaterial } from '../../src/identity/pki.js';

const ID = 'spiffe://cluster.local/ns/default/sa/reviews';
const NOW = new Date('2030-06-01T12:00:00Z');
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
let root: CaMaterial;
let csrPem: string;
let csr: AcceptedCsr;

beforeAll(async () => {
  root = await generateCa({ trustDomain: 'cluster.local', validityDays: 3650, now: new Date('2030-01-01T00:00:00Z') });
  csrPem = await createCsr({ key: await generateKeyPair(), spiffeUri: ID });
  const checked = checkCsr(csrPem, ID);
  if (!checked.ok) throw new Error(checked.reason);
  csr = checked.accepted;
});

const selfSigned = (): SigningMaterial => ({ certPem: root.certPem, keyPem: root.keyPem, chainPem: [], trustBundlePem: [root.certPem] });

/** An intermediate CA signed by `root`, as a user's plugged-in CA would hand over. */
async function intermediate(): Promise<SigningMaterial> {
  const keys = await generateKeyPair();
  const rootCert = new x509.X509Certificate(root.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'O=cluster.local, CN=intermediate',
    issuer: rootCert.subject,
    notBefore: new Date('2030-01-01T00:00:00Z'),
    notAfter: new Date('2031-01-01T00:00:00Z'),
    publicKey: keys.publicKey,
    signingKey: await importPrivateKeyPem(root.keyPem),
    signingAlgorithm: SIGN,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPrivateKeyPem(keys.privateKey), chainPem: [root.certPem], trustBundlePem: [root.certPem] };
}

describe('leafLifetimeSeconds', () => {
  const policy = { defaultTtlSeconds: DEFAULT_CERT_TTL_SECONDS, maxTtlSeconds: 48 * 3600 };
  it.each([
    [0, DEFAULT_CERT_TTL_SECONDS],
    [-5, DEFAULT_CERT_TTL_SECONDS],
    [1, MIN_CERT_TTL_SECONDS],
    [59, MIN_CERT_TTL_SECONDS],
    [3600, 3600],
    [3600.7, 3600],
    [48 * 3600, 48 * 3600],
    [365 * 86400, 48 * 3600],
    [Number.POSITIVE_INFINITY, DEFAULT_CERT_TTL_SECONDS],
  ])('%s s requested → %s s', (requested, expected) => {
    expect(leafLifetimeSeconds(requested, policy)).toBe(expected);
  });

  it('never grants a default longer than the maximum', () => {
    expect(leafLifetimeSeconds(0, { defaultTtlSeconds: 86400, maxTtlSeconds: 3600 })).toBe(3600);
  });
});

describe('createIssuer', () => {
  it('issues the leaf profile with a self-signed root: chain [leaf, root]', async () => {
    const issuer = createIssuer({ material: selfSigned, now: () => NOW });
    const issued = await issuer.issue(csr, 0);
    expect(issued.certChain).toHaveLength(2);
    expect(issued.certChain[1]).toBe(root.certPem);
    const leaf = new x509.X509Certificate(issued.certChain[0] as string);
    expect(leaf.subject).toBe('');
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([{ type: 'url', value: ID }]);
    expect(leaf.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    expect(leaf.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    expect(leaf.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(leaf.notBefore.getTime()).toBe(Math.floor((NOW.getTime() - NOT_BEFORE_BACKDATE_MS) / 1000) * 1000);
    expect(leaf.notAfter.getTime()).toBe(NOW.getTime() + DEFAULT_CERT_TTL_SECONDS * 1000);
    expect(issued.notAfter.getTime()).toBe(leaf.notAfter.getTime());
    expect(issued.serial).toBe(leaf.serialNumber.toLowerCase());
    expect(new X509Certificate(issued.certChain[0] as string).verify(new X509Certificate(root.certPem).publicKey)).toBe(true);
  });

  it('caps the lifetime at maxTtlSeconds and gives random serials', async () => {
    const issuer = createIssuer({ material: selfSigned, maxTtlSeconds: 7200, now: () => NOW });
    const a = await issuer.issue(csr, 30 * 86400);
    const b = await issuer.issue(csr, 30 * 86400);
    expect(a.notAfter.getTime()).toBe(NOW.getTime() + 7200 * 1000);
    expect(a.serial).not.toBe(b.serial);
    expect(a.serial).toMatch(/^[0-9a-f]{32}$/);
  });

  it('backdates a short leaf by a quarter of its lifetime at most, so half its lifetime still lies ahead', async () => {
    const issuer = createIssuer({ material: selfSigned, now: () => NOW });
    const leaf = new x509.X509Certificate((await issuer.issue(csr, MIN_CERT_TTL_SECONDS)).certChain[0] as string);
    expect(leaf.notBefore.getTime()).toBe(NOW.getTime() - (MIN_CERT_TTL_SECONDS * 1000) / 4);
    // Agents renew at half of notAfter − notBefore: 22.5 s after issue, not at once.
    expect(leaf.notBefore.getTime() + (leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 2).toBeGreaterThan(NOW.getTime());
    expect(leafBackdateMs(3600)).toBe(NOT_BEFORE_BACKDATE_MS);
  });

  it('signs with an intermediate: chain [leaf, intermediate, root], each issued by the next', async () => {
    const material = await intermediate();
    const issued = await createIssuer({ material: () => material, now: () => NOW }).issue(csr, 3600);
    expect(issued.certChain).toHaveLength(3);
    const [leaf, mid, top] = issued.certChain.map((pem) => new X509Certificate(pem)) as [X509Certificate, X509Certificate, X509Certificate];
    expect(leaf.checkIssued(mid)).toBe(true);
    expect(leaf.verify(mid.publicKey)).toBe(true);
    expect(mid.checkIssued(top)).toBe(true);
    expect(top.checkIssued(top)).toBe(true);
  });

  it('picks up rotated material on the next request', async () => {
    let current = selfSigned();
    const issuer = createIssuer({ material: () => current, now: () => NOW });
    const first = await issuer.issue(csr, 3600);
    const next = await generateCa({ trustDomain: 'cluster.local', validityDays: 3650, now: new Date('2030-01-01T00:00:00Z') });
    current = { certPem: next.certPem, keyPem: next.keyPem, chainPem: [], trustBundlePem: [next.certPem, root.certPem] };
    const second = await issuer.issue(csr, 3600);
    expect(first.certChain[1]).toBe(root.certPem);
    expect(second.certChain[1]).toBe(next.certPem);
    expect(new X509Certificate(second.certChain[0] as string).verify(new X509Certificate(next.certPem).publicKey)).toBe(true);
  });

  it('refuses to sign with an expired CA, and with a key that is not the certificate’s', async () => {
    const late = createIssuer({ material: selfSigned, now: () => new Date('2045-01-01T00:00:00Z') });
    await expect(late.issue(csr, 3600)).rejects.toSatisfy((err: unknown) => isAmeshError(err, 'AMESH_CERT_FAILED'));
    const other = await exportPrivateKeyPem((await generateKeyPair()).privateKey);
    const mismatched = createIssuer({ material: () => ({ ...selfSigned(), keyPem: other }), now: () => NOW });
    await expect(mismatched.issue(csr, 3600)).rejects.toSatisfy((err: unknown) => isAmeshError(err, 'AMESH_CERT_FAILED'));
  });

  it('issues exactly the leaf pki.ts signCsr issues (same extensions, names, algorithm)', async () => {
    const ours = new x509.X509Certificate((await createIssuer({ material: selfSigned, now: () => NOW }).issue(csr, 3600)).certChain[0] as string);
    const reference = new x509.X509Certificate(await signCsr({ ca: root, csrPem, ttlSeconds: 3600, now: NOW }));
    const shape = (c: x509.X509Certificate): unknown => ({
      subject: c.subject,
      issuer: c.issuer,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      signatureAlgorithm: c.signatureAlgorithm,
      publicKey: Buffer.from(c.publicKey.rawData).toString('hex'),
      extensions: c.extensions.map((e) => ({ type: e.type, critical: e.critical, der: Buffer.from(e.rawData).toString('hex') })),
    });
    expect(shape(ours)).toEqual(shape(reference));
    expect(await ours.verify({ publicKey: new x509.X509Certificate(root.certPem).publicKey, signatureOnly: true })).toBe(true);
  });

  it('signs with a plugged-in RSA CA (sha256WithRSAEncryption)', async () => {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey };
    const rsaRoot = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'O=cluster.local',
      notBefore: new Date('2030-01-01T00:00:00Z'),
      notAfter: new Date('2031-01-01T00:00:00Z'),
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const keyDer = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    const material: SigningMaterial = {
      certPem: rsaRoot.toString('pem') + '\n',
      keyPem: `-----BEGIN PRIVATE KEY-----\n${keyDer.replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`,
      chainPem: [],
      trustBundlePem: [],
    };
    const issued = await createIssuer({ material: () => material, now: () => NOW }).issue(csr, 3600);
    const leaf = new X509Certificate(issued.certChain[0] as string);
    expect(leaf.verify(new X509Certificate(material.certPem).publicKey)).toBe(true);
    expect(new x509.X509Certificate(issued.certChain[0] as string).signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } });
  });

  it('encodes dates from 2050 on as GeneralizedTime', async () => {
    const late = await generateCa({ trustDomain: 'cluster.local', validityDays: 3650, now: new Date('2049-12-01T00:00:00Z') });
    const issuer = createIssuer({ material: () => ({ certPem: late.certPem, keyPem: late.keyPem, chainPem: [], trustBundlePem: [] }), now: () => new Date('2049-12-31T23:00:00Z') });
    const leaf = new X509Certificate((await issuer.issue(csr, 7200)).certChain[0] as string);
    expect(new Date(leaf.validTo).toISOString()).toBe('2050-01-01T01:00:00.000Z');
    expect(new Date(leaf.validFrom).toISOString()).toBe('2049-12-31T22:59:00.000Z');
  });

  it('refuses a lifetime policy that is not whole seconds of at least a minute', () => {
    expect(() => createIssuer({ material: selfSigned, maxTtlSeconds: 30 })).toThrow(/maxTtlSeconds 30/);
    expect(() => createIssuer({ material: selfSigned, defaultTtlSeconds: 1.5 })).toThrow(/defaultTtlSeconds/);
  });
});
