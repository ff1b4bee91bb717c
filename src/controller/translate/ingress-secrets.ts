/**
 * TLS certificates of ingress listeners from Secrets, pure. A usable Secret holds a PEM
 * certificate chain and its private key: `tls.crt` / `tls.key` (type kubernetes.io/tls, what
 * Gateway API certificateRefs and Istio credentialName name), or Istio's generic `cert` / `key`.
 * Both are parsed here (node:crypto, no I/O) so a broken Secret makes one listener unprogrammed
 * with a condition naming it, instead of a config the gateway would refuse as a whole.
 *
 * Key material never appears in a message: problems name the Secret and the key, not the data.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { GatewayCertificate } from '../../l7/config.js';
import type { KubeObjectLike } from '../mesh/compute-mesh-resources.js';

interface SecretObject extends KubeObjectLike {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export type SecretLookup = (namespace: string, name: string) => KubeObjectLike | undefined;

export function secretLookup(secrets: readonly KubeObjectLike[]): SecretLookup {
  const byKey = new Map(secrets.map((s) => [`${s.metadata.namespace ?? 'default'}/${s.metadata.name ?? ''}`, s]));
  return (namespace, name) => byKey.get(`${namespace}/${name}`);
}

export type CertificateResult = { certificate: GatewayCertificate } | { problem: string };

function value(secret: SecretObject, key: string): string | undefined {
  const encoded = secret.data?.[key];
  if (typeof encoded === 'string' && encoded !== '') return Buffer.from(encoded, 'base64').toString('utf8');
  const plain = secret.stringData?.[key];
  return typeof plain === 'string' && plain !== '' ? plain : undefined;
}

/** The certificate of Secret `namespace/name` for `hostnames`, or why there is none. */
export function certificateFrom(lookup: SecretLookup, namespace: string, name: string, hostnames: string[]): CertificateResult {
  const ref = `${namespace}/${name}`;
  const secret = lookup(namespace, name) as SecretObject | undefined;
  if (!secret) return { problem: `Secret ${ref} not found` };
  const generic = value(secret, 'tls.crt') === undefined && value(secret, 'tls.key') === undefined && (value(secret, 'cert') !== undefined || value(secret, 'key') !== undefined);
  const pair = generic ? ['cert', 'key'] : ['tls.crt', 'tls.key'];
  const [certKey = 'tls.crt', keyKey = 'tls.key'] = pair;
  const certChain = value(secret, certKey);
  const privateKey = value(secret, keyKey);
  if (certChain === undefined || privateKey === undefined) {
    const missing = [certChain === undefined ? certKey : undefined, privateKey === undefined ? keyKey : undefined].filter(Boolean).join(' and ');
    return { problem: `Secret ${ref} has no ${missing} (a kubernetes.io/tls Secret needs tls.crt and tls.key)` };
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certChain);
  } catch {
    return { problem: `Secret ${ref}: ${certKey} is not a PEM certificate` };
  }
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(privateKey))) return { problem: `Secret ${ref}: ${keyKey} is not the private key of the certificate in ${certKey}` };
  } catch {
    return { problem: `Secret ${ref}: ${keyKey} is not a PEM private key` };
  }
  return { certificate: { name: ref, hostnames, certChain, privateKey } };
}
