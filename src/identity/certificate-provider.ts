/**
 * Where workload certificates come from. The certificate manager only knows this interface;
 * `LocalCaProvider` signs in-process with a root from disk (local mode, `amesh ca issue`); a
 * provider speaking Istio's CA API (IstioCertificateService/CreateCertificate) plugs in the
 * same way.
 */
import { AmeshError } from '../errors/amesh-error.js';
import { createCsr, exportPrivateKeyPem, generateKeyPair, loadCa, parseCertificate, signCsr, type CaMaterial, type SigningCa } from './pki.js';
import { toSpiffeUri, isValidWorkloadIdentity, type WorkloadIdentity } from './spiffe.js';

export interface IssuedCertificate {
  /** The SPIFFE URI the leaf carries. */
  identity: string;
  /** Leaf first, root last (Istio's cert_chain order). */
  chainPem: string[];
  /** PKCS#8 PEM of the leaf's private key. */
  keyPem: string;
  /** Trust anchors peers must chain to. */
  rootsPem: string[];
  notBefore: Date;
  notAfter: Date;
}

export interface CertificateProvider {
  /** Issues a fresh key and certificate for `id`. Rejects with a coded error on failure. */
  fetch(id: WorkloadIdentity): Promise<IssuedCertificate>;
}

/** Istio's default workload certificate lifetime. */
export const DEFAULT_WORKLOAD_CERT_TTL_SECONDS = 24 * 3600;

export interface LocalCaProviderOptions {
  ca: CaMaterial;
  /** Workload certificate lifetime. Default 24 h (Istio's default). */
  ttlSeconds?: number;
  /** Injected for tests; default `Date.now`. */
  now?: () => number;
}

export class LocalCaProvider implements CertificateProvider {
  private signing: Promise<SigningCa> | undefined;
  private readonly now: () => number;
  private readonly ttlSeconds: number;

  constructor(private readonly opts: LocalCaProviderOptions) {
    this.ttlSeconds = opts.ttlSeconds ?? DEFAULT_WORKLOAD_CERT_TTL_SECONDS;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds <= 0) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `certificate TTL ${opts.ttlSeconds}: expected a positive whole number of seconds`);
    }
    this.now = opts.now ?? Date.now;
  }

  private ca(): Promise<SigningCa> {
    // Parsed lazily and once; a failure is not cached so a fixed file can be picked up.
    this.signing ??= loadCa(this.opts.ca).catch((err: unknown) => {
      this.signing = undefined;
      throw err;
    });
    return this.signing;
  }

  async fetch(id: WorkloadIdentity): Promise<IssuedCertificate> {
    if (!isValidWorkloadIdentity(id)) throw new AmeshError('AMESH_IDENTITY_INVALID', `invalid workload identity ${toSpiffeUri(id)}`);
    const identity = toSpiffeUri(id);
    const ca = await this.ca();
    const keys = await generateKeyPair();
    const csrPem = await createCsr({ key: keys, spiffeUri: identity });
    const leafPem = await signCsr({ ca, csrPem, ttlSeconds: this.ttlSeconds, now: new Date(this.now()), expectedSpiffeUri: identity });
    const leaf = parseCertificate(leafPem);
    const root = ca.chainPem[ca.chainPem.length - 1] as string;
    return {
      identity,
      chainPem: [leafPem, ...ca.chainPem],
      keyPem: await exportPrivateKeyPem(keys.privateKey),
      rootsPem: [root],
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    };
  }
}
