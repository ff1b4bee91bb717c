/**
 * TLS material for the sandbox API server: a per-sandbox cluster CA and a serving certificate
 * it signs. kubectl (Go crypto/tls) and Node `tls` both verify the server against the CA that
 * the sandbox writes into the kubeconfig, so the profile follows what kubeadm issues:
 * CA — self-signed, BasicConstraints CA:TRUE (critical), keyCertSign|cRLSign, SKI;
 * leaf — CN=kube-apiserver, SANs for every address and name clients dial, EKU serverAuth,
 * KeyUsage digitalSignature (ECDSA keys do not encipher), CA:FALSE, AKI = the CA's SKI.
 *
 * Go refuses a certificate whose SAN extension is missing when the subject has no SAN-worthy
 * CN (it ignores the CN since Go 1.15), so every dialled name must be a SAN.
 *
 * Key helpers come from `src/identity/pki.ts` (ECDSA P-256 on WebCrypto via @peculiar/x509).
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { AmeshError } from '../../errors/amesh-error.js';
import { NOT_BEFORE_BACKDATE_MS, exportPrivateKeyPem, generateKeyPair } from '../../identity/pki.js';

const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** A sandbox lives days, not years; a year keeps long-running demo machines working. */
const DEFAULT_DAYS = 365;

export interface ServingCertificates {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

export interface ServingCertificateOptions {
  ipAddresses: string[];
  dnsNames: string[];
  days?: number;
  now?: Date;
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01; // positive, no leading zero byte
  return bytes.toString('hex');
}

export async function createServingCertificates(o: ServingCertificateOptions): Promise<ServingCertificates> {
  const days = o.days ?? DEFAULT_DAYS;
  if (!Number.isFinite(days) || days <= 0) throw new AmeshError('AMESH_CERT_FAILED', `serving certificate validity ${days} days: expected a positive number`);
  for (const ip of o.ipAddresses) {
    if (isIP(ip) === 0) throw new AmeshError('AMESH_CERT_FAILED', `serving certificate IP SAN ${JSON.stringify(ip)} is not an IP address`);
  }
  if (o.ipAddresses.length + o.dnsNames.length === 0) throw new AmeshError('AMESH_CERT_FAILED', 'serving certificate needs at least one IP address or DNS name');

  const now = o.now ?? new Date();
  const notBefore = new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS);
  const notAfter = new Date(now.getTime() + days * DAY_MS);

  const caKeys = await generateKeyPair();
  const caName = 'CN=amesh-sandbox-ca';
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: caName,
    notBefore,
    // The CA outlives the leaf by a day so the leaf's validity is always nested in it.
    notAfter: new Date(notAfter.getTime() + DAY_MS),
    keys: caKeys,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const leafKeys = await generateKeyPair();
  const names: x509.JsonGeneralName[] = [...o.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...o.ipAddresses.map((value) => ({ type: 'ip' as const, value }))];
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: 'CN=kube-apiserver',
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
      await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
    ],
  });

  return {
    caCertPem: ca.toString('pem') + '\n',
    certPem: leaf.toString('pem') + '\n',
    keyPem: await exportPrivateKeyPem(leafKeys.privateKey),
  };
}
