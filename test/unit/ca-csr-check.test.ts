import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkCsr } from '../../src/controller/ca/csr-check.js';
import { createCsr, generateKeyPair, type CryptoKeyPairLike } from '../../src/identity/pki.js';

const ID = 'spiffe://cluster.local/ns/default/sa/reviews';
const P256_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
let keys: CryptoKeyPairLike;

beforeAll(async () => {
  keys = await generateKeyPair();
});

/** A CSR with arbitrary SANs (pki.createCsr only makes the well-formed kind). */
async function csrWith(names: x509.JsonGeneralNames, signingKeys: CryptoKeyPairLike = keys, signingAlgorithm: object = P256_SIGN): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: signingKeys,
    signingAlgorithm: signingAlgorithm as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['signingAlgorithm'],
    extensions: names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, true)] : [],
  });
  return csr.toString('pem');
}

async function keysOf(algorithm: object): Promise<CryptoKeyPairLike> {
  return (await webcrypto.subtle.generateKey(algorithm as webcrypto.EcKeyGenParams, true, ['sign', 'verify'])) as CryptoKeyPairLike;
}

describe('checkCsr', () => {
  it('accepts a P-256 CSR whose only SAN is the expected URI, and returns its key', async () => {
    const result = checkCsr(await createCsr({ key: keys, spiffeUri: ID }), ID);
    expect(result.ok).toBe(true);
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    if (result.ok) expect(result.accepted).toEqual({ spiffeUri: ID, publicKeySpki: spki });
  });

  const refusals: [string, () => Promise<string>, RegExp][] = [
    ['an empty CSR', async () => '', /no CSR/],
    ['garbage', async () => '-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n', /cannot parse/],
    ['plain text', async () => 'hello', /cannot parse/],
    ['a huge CSR', async () => 'A'.repeat(20_000), /characters/],
    ['another identity', async () => createCsr({ key: keys, spiffeUri: 'spiffe://cluster.local/ns/default/sa/ratings' }), /exactly one SAN.*found url:spiffe:\/\/cluster.local\/ns\/default\/sa\/ratings/],
    ['no SAN', async () => csrWith([]), /found none/],
    ['an extra DNS SAN', async () => csrWith([{ type: 'url', value: ID }, { type: 'dns', value: 'reviews.default.svc' }]), /found url:.*, dns:reviews/],
    ['an extra IP SAN', async () => csrWith([{ type: 'url', value: ID }, { type: 'ip', value: '10.0.0.1' }]), /ip:10.0.0.1/],
    ['an email SAN', async () => csrWith([{ type: 'email', value: 'a@example.com' }]), /email:a@example.com/],
    ['two URIs', async () => csrWith([{ type: 'url', value: ID }, { type: 'url', value: 'spiffe://cluster.local/ns/default/sa/other' }]), /exactly one SAN/],
    ['a P-384 key', async () => csrWith([{ type: 'url', value: ID }], await keysOf({ name: 'ECDSA', namedCurve: 'P-384' }), { name: 'ECDSA', hash: 'SHA-384' }), /EC P-384; the CA signs ECDSA P-256 keys only/],
    [
      'an RSA key',
      async () =>
        csrWith(
          [{ type: 'url', value: ID }],
          await keysOf({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }),
          { name: 'RSASSA-PKCS1-v1_5' },
        ),
      /RSA; the CA signs ECDSA P-256 keys only/,
    ],
  ];
  it.each(refusals)('refuses %s', async (_name, make, reason) => {
    const result = checkCsr(await make(), ID);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  it('refuses a CSR whose signature does not verify (key swapped after signing)', async () => {
    const good = new x509.Pkcs10CertificateRequest(await createCsr({ key: keys, spiffeUri: ID }));
    const other = await generateKeyPair();
    const otherSpki = Buffer.from(await webcrypto.subtle.exportKey('spki', other.publicKey));
    const der = Buffer.from(good.rawData);
    const mineSpki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    const at = der.indexOf(mineSpki);
    expect(at).toBeGreaterThan(0);
    otherSpki.copy(der, at);
    const tampered = new x509.Pkcs10CertificateRequest(der).toString('pem');
    const result = checkCsr(tampered, ID);
    expect(result).toEqual({ ok: false, reason: 'the CSR signature does not verify' });
  });

  describe('malformed DER', () => {
    let der: Buffer;
    beforeAll(async () => {
      der = Buffer.from(new x509.Pkcs10CertificateRequest(await createCsr({ key: keys, spiffeUri: ID })).rawData);
    });
    const pem = (bytes: Buffer, label = 'CERTIFICATE REQUEST'): string => `-----BEGIN ${label}-----\n${bytes.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;

    it('accepts the round trip and the legacy NEW CERTIFICATE REQUEST label', () => {
      expect(checkCsr(pem(der), ID).ok).toBe(true);
      expect(checkCsr(pem(der, 'NEW CERTIFICATE REQUEST'), ID).ok).toBe(true);
    });

    it.each([
      ['truncated', (d: Buffer) => d.subarray(0, d.length - 10), /cannot parse the CSR/],
      ['trailing bytes', (d: Buffer) => Buffer.concat([d, Buffer.from([0, 0])]), /trailing bytes/],
      ['a length past the end', (d: Buffer) => Buffer.concat([Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), d.subarray(4)]), /cannot parse the CSR/],
      ['a flipped signature byte', (d: Buffer) => Buffer.concat([d.subarray(0, d.length - 1), Buffer.from([(d[d.length - 1] as number) ^ 0x01])]), /signature/],
      ['a flipped SAN byte', (d: Buffer) => Buffer.from(d.toString('latin1').replace('reviews', 'reviewz'), 'latin1'), /signature does not verify/],
      ['empty', () => Buffer.alloc(0), /cannot parse/],
    ])('refuses %s', (_name, mangle, reason) => {
      const result = checkCsr(pem(mangle(der)), ID);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.reason).toMatch(reason);
    });

    it('refuses another PEM label and two CSRs in one string', () => {
      expect(checkCsr(pem(der, 'CERTIFICATE'), ID).ok).toBe(false);
      expect(checkCsr(pem(der) + pem(der), ID).ok).toBe(false);
    });

    it('agrees with @peculiar/x509 on what the CSR asks for', async () => {
      const names: x509.JsonGeneralNames = [
        { type: 'url', value: ID },
        { type: 'dns', value: 'a.example' },
        { type: 'ip', value: '192.0.2.7' },
        { type: 'email', value: 'x@example.com' },
      ];
      const result = checkCsr(await csrWith(names), ID);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.reason).toContain('url:spiffe://cluster.local/ns/default/sa/reviews, dns:a.example, ip:192.0.2.7, email:x@example.com');
    });
  });
});
