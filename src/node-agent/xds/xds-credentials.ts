/**
 * How the node agent authenticates to the xDS server, as ztunnel does to istiod:
 * - TLS verified against the mesh roots (the istio-ca-root-cert ConfigMap, AMESH_CA_ROOT_CERT_FILE),
 *   followed while they rotate: a grpc-js certificate provider fed by our TrustBundle, so every
 *   new connection uses the newest roots without rebuilding the client;
 * - the server's certificate checked for the xDS server name (default the CA's: istiod serves
 *   CA and xDS on one port), whatever address was dialled — set by the state source as
 *   `grpc.ssl_target_name_override`, as the CA client does;
 * - `authorization: Bearer <token>` per stream, the token re-read each time because the kubelet
 *   rotates projected tokens (the CA's token and error code: it is the same credential).
 *
 * grpc-js' `createCertificateProviderChannelCredentials` is marked experimental; it is the one
 * public way to change roots under a live channel (createSsl fixes them at construction).
 */
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { AmeshError, describeError } from '../../errors/amesh-error.js';

type CaListener = grpc.experimental.CaCertificateUpdateListener;

/** The roots to follow: the current ones and a change subscription (TrustBundle fits). */
export interface RootSource {
  roots(): string[];
  onChange(listener: (roots: string[]) => void): () => void;
}

/** A grpc-js CA certificate provider over a RootSource; no identity certificate (no client TLS auth). */
export class RootSourceCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly listeners = new Set<CaListener>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly source: RootSource) {}

  addCaCertificateListener(listener: CaListener): void {
    this.listeners.add(listener);
    this.unsubscribe ??= this.source.onChange((roots) => this.publish(roots));
    const roots = this.source.roots();
    // No roots yet (ConfigMap not mounted): grpc-js waits for the first update before connecting.
    if (roots.length > 0) listener({ caCertificate: Buffer.from(roots.join('\n')) });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.listeners.delete(listener);
    if (this.listeners.size === 0) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
    }
  }

  addIdentityCertificateListener(): void {}
  removeIdentityCertificateListener(): void {}

  private publish(roots: string[]): void {
    if (roots.length === 0) return;
    const update = { caCertificate: Buffer.from(roots.join('\n')) };
    for (const listener of this.listeners) listener(update);
  }
}

/** TLS verified against the followed roots; the expected server name is a channel option (`grpc.ssl_target_name_override`). */
export function meshTlsCredentials(roots: RootSource): grpc.ChannelCredentials {
  return grpc.experimental.createCertificateProviderChannelCredentials(new RootSourceCertificateProvider(roots), null);
}

/** Call metadata with the bearer token read from `tokenFile` now. */
export async function bearerTokenMetadata(tokenFile: string, read: (path: string) => Promise<string> = (p) => readFile(p, 'utf8')): Promise<grpc.Metadata> {
  let token: string;
  try {
    token = (await read(tokenFile)).trim();
  } catch (err) {
    throw new AmeshError('AMESH_CA_CREDENTIALS_UNREADABLE', `cannot read the xDS token ${tokenFile}: ${describeError(err).split('\n')[0]}`, {
      cause: err,
      hint: 'mount a projected service-account token with audience istio-ca there (AMESH_CA_TOKEN_FILE)',
    });
  }
  if (!token) throw new AmeshError('AMESH_CA_CREDENTIALS_UNREADABLE', `the xDS token ${tokenFile} is empty`, { hint: 'the kubelet writes it; is the projected token volume mounted?' });
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}
