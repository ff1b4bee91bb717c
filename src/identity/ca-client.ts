/**
 * Workload certificates from the mesh CA over Istio's CA API (DESIGN §5):
 * `istio.v1.auth.IstioCertificateService/CreateCertificate` on gRPC over TLS, as ztunnel asks.
 *
 * Per fetch: a fresh ECDSA P-256 key and a CSR with one URI SAN; call metadata
 * `authorization: Bearer <token>` (re-read from `tokenFile` every time, because the kubelet
 * rotates projected tokens) and `clusterid`; request metadata `ImpersonatedIdentity = <spiffe>`
 * (always, as ztunnel does: the node agent asks on behalf of a pod on its node).
 *
 * The answer is checked before it is used: a non-empty chain that parses, a leaf (not a CA)
 * whose only URI SAN is the identity we asked for, whose public key is ours and which has not
 * expired. Peers are verified against the mesh trust bundle (`trustBundle()`), not against
 * whatever root the CA sent.
 *
 * One gRPC channel is reused; it is rebuilt when the CA root file (which verifies the CA's
 * serving certificate) changes. gRPC failures become coded AmeshErrors carrying the server's
 * message; retry and backoff belong to the CertificateManager.
 */
import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import { silentLogger, type Logger } from '../telemetry/logger.js';
import { caServiceDefinition, CREATE_CERTIFICATE_PATH, IMPERSONATED_IDENTITY, stringStruct, type IstioCertificateRequest, type IstioCertificateResponse } from './ca-proto.js';
import type { CertificateProvider, IssuedCertificate } from './certificate-provider.js';
import { createCsr, exportPrivateKeyPem, generateKeyPair, parseCertificate, splitPemBundle, type CertificateInfo } from './pki.js';
import { isValidWorkloadIdentity, toSpiffeUri, type WorkloadIdentity } from './spiffe.js';

export const DEFAULT_CA_TIMEOUT_MS = 10_000;
export const DEFAULT_RECONNECT_BACKOFF_MS: Readonly<{ initial: number; max: number }> = Object.freeze({ initial: 1000, max: 2_000 });

export interface IstioCaProviderOptions {
  /** `host:port` (IPv6 as `[addr]:port`), e.g. `istiod.istio-system.svc:15012`. */
  address: string;
  /** PEM bundle that verifies the CA's serving certificate; re-read before every call. */
  rootCertFile: string;
  /** Service-account token with audience `istio-ca`; re-read before every call. */
  tokenFile: string;
  /** Sent as `clusterid` call metadata when set. */
  clusterId?: string;
  /** Requested lifetime; absent or 0 = the CA's default. */
  ttlSeconds?: number;
  /** TLS name the CA's certificate must carry. Default: the host part of `address`. */
  serverName?: string;
  /** Deadline of one CreateCertificate call. Default 10 s. */
  timeoutMs?: number;
  /** The mesh roots peers must chain to (IssuedCertificate.rootsPem). */
  trustBundle: () => string[];
  logger?: Logger;
  /**
   * gRPC's own reconnect backoff after a failed connect (calls fail fast meanwhile). Default
   * 1 s up to 2 s: the CertificateManager already backs off, so this only adds to the time a
   * renewal takes once the CA is back (gRPC's default cap of 120 s would keep failing retries
   * for minutes; a 10 s cap left ~11 s in the certificate-expiry fault test). A reconnect attempt
   * every 2 s during an outage is one TCP SYN per agent.
   */
  reconnectBackoffMs?: { initial: number; max: number };
  /**
   * Ask on behalf of the identity (`ImpersonatedIdentity`, what a node agent does for its pods;
   * default) or for the caller's own identity (a waypoint: istiod refuses impersonation by
   * anything but a node agent).
   */
  impersonate?: boolean;
  /** Injected for tests; default `Date.now`. */
  now?: () => number;
  /** Injected for tests; default fs/promises readFile (utf8). */
  readFile?: (path: string) => Promise<string>;
}

/** Splits `host:port` / `[v6]:port`; undefined when malformed. */
export function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

/** gRPC status → our code: transient (retry soon), refused (the CA said no), or a CA fault. */
function classify(code: grpc.status): 'AMESH_CA_UNAVAILABLE' | 'AMESH_CA_REFUSED' | 'AMESH_CA_FAILED' {
  switch (code) {
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.RESOURCE_EXHAUSTED:
    case grpc.status.ABORTED:
    case grpc.status.CANCELLED:
      return 'AMESH_CA_UNAVAILABLE';
    case grpc.status.PERMISSION_DENIED:
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.FAILED_PRECONDITION:
    case grpc.status.NOT_FOUND:
    case grpc.status.OUT_OF_RANGE:
      return 'AMESH_CA_REFUSED';
    default:
      return 'AMESH_CA_FAILED';
  }
}

interface Channel {
  client: grpc.Client;
  /** The CA root file content the channel was built with. */
  rootsText: string;
}

export class IstioCaProvider implements CertificateProvider {
  private channel: Channel | undefined;
  private readonly host: string;
  private readonly serverName: string;
  private readonly timeoutMs: number;
  private readonly ttlSeconds: number;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly read: (path: string) => Promise<string>;
  private closed = false;

  constructor(private readonly opts: IstioCaProviderOptions) {
    const hostPort = splitHostPort(opts.address);
    if (!hostPort) throw new AmeshError('AMESH_CONFIG_INVALID', `CA address ${JSON.stringify(opts.address)}: expected host:port`);
    this.host = hostPort.host;
    this.serverName = opts.serverName || hostPort.host;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_CA_TIMEOUT_MS;
    this.ttlSeconds = opts.ttlSeconds ?? 0;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 0) throw new AmeshError('AMESH_CONFIG_INVALID', `certificate TTL ${opts.ttlSeconds}: expected a whole number of seconds`);
    if (!(this.timeoutMs > 0)) throw new AmeshError('AMESH_CONFIG_INVALID', `CA timeout ${opts.timeoutMs} ms: expected a positive number`);
    this.logger = opts.logger ?? silentLogger;
    this.now = opts.now ?? Date.now;
    this.read = opts.readFile ?? ((path) => readFile(path, 'utf8'));
  }

  get address(): string {
    return this.opts.address;
  }

  async fetch(id: WorkloadIdentity): Promise<IssuedCertificate> {
    if (this.closed) throw new AmeshError('AMESH_SHUTTING_DOWN', 'CA client is closed');
    if (!isValidWorkloadIdentity(id)) throw new AmeshError('AMESH_IDENTITY_INVALID', `invalid workload identity ${toSpiffeUri(id)}`);
    const identity = toSpiffeUri(id);
    const [client, token] = await Promise.all([this.client(), this.token()]);
    const keys = await generateKeyPair();
    const csr = await createCsr({ key: keys, spiffeUri: identity });
    const keyPem = await exportPrivateKeyPem(keys.privateKey);
    const request: IstioCertificateRequest = { csr, validityDuration: this.ttlSeconds, metadata: stringStruct(this.opts.impersonate === false ? {} : { [IMPERSONATED_IDENTITY]: identity }) };
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    if (this.opts.clusterId) metadata.set('clusterid', this.opts.clusterId);
    const response = await this.call(client, request, metadata, identity);
    return this.validate(identity, keyPem, response);
  }

  /** Closes the channel; later fetches fail with AMESH_SHUTTING_DOWN. */
  close(): void {
    this.closed = true;
    this.channel?.client.close();
    this.channel = undefined;
  }

  private async token(): Promise<string> {
    let text: string;
    try {
      text = await this.read(this.opts.tokenFile);
    } catch (err) {
      throw new AmeshError('AMESH_CA_CREDENTIALS_UNREADABLE', `cannot read the CA token ${this.opts.tokenFile}: ${describeError(err).split('\n')[0]}`, {
        cause: err,
        hint: 'mount a projected service-account token with audience istio-ca there (AMESH_CA_TOKEN_FILE)',
      });
    }
    const token = text.trim();
    if (!token) throw new AmeshError('AMESH_CA_CREDENTIALS_UNREADABLE', `the CA token ${this.opts.tokenFile} is empty`, { hint: 'the kubelet writes it; is the projected token volume mounted?' });
    return token;
  }

  /** The shared channel, rebuilt when the CA root file changed. */
  private async client(): Promise<grpc.Client> {
    let rootsText: string | undefined;
    let problem: string | undefined;
    try {
      rootsText = await this.read(this.opts.rootCertFile);
      if (splitPemBundle(rootsText).length === 0) problem = `${this.opts.rootCertFile} holds no PEM certificate`;
    } catch (err) {
      problem = `cannot read ${this.opts.rootCertFile}: ${describeError(err).split('\n')[0]}`;
    }
    const current = this.channel;
    if (problem !== undefined || rootsText === undefined) {
      // A ConfigMap update in progress must not cut us off from the CA: keep the last channel.
      if (current) {
        this.logger.warn({ problem }, 'CA root file unusable; keeping the current CA channel');
        return current.client;
      }
      throw new AmeshError('AMESH_CA_CREDENTIALS_UNREADABLE', `cannot verify the CA ${this.opts.address}: ${problem ?? 'no roots'}`, {
        hint: 'mount the istio-ca-root-cert ConfigMap (key root-cert.pem) there (AMESH_CA_ROOT_CERT_FILE)',
      });
    }
    if (current && current.rootsText === rootsText) return current.client;
    if (this.closed) throw new AmeshError('AMESH_SHUTTING_DOWN', 'CA client is closed');
    current?.client.close();
    const credentials = grpc.credentials.createSsl(Buffer.from(rootsText));
    const backoff = this.opts.reconnectBackoffMs ?? DEFAULT_RECONNECT_BACKOFF_MS;
    const options: grpc.ChannelOptions = { 'grpc.initial_reconnect_backoff_ms': backoff.initial, 'grpc.max_reconnect_backoff_ms': backoff.max };
    // Only override when it differs: an IP as TLS server name would be sent as SNI, which TLS forbids.
    if (this.serverName !== this.host) {
      options['grpc.ssl_target_name_override'] = this.serverName;
      options['grpc.default_authority'] = this.serverName;
    }
    const client = new grpc.Client(this.opts.address, credentials, options);
    this.channel = { client, rootsText };
    this.logger.info({ address: this.opts.address, serverName: this.serverName, rebuilt: current !== undefined }, 'CA channel created');
    return client;
  }

  private call(client: grpc.Client, request: IstioCertificateRequest, metadata: grpc.Metadata, identity: string): Promise<IstioCertificateResponse> {
    const method = caServiceDefinition().CreateCertificate as grpc.MethodDefinition<IstioCertificateRequest, IstioCertificateResponse>;
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        CREATE_CERTIFICATE_PATH,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + this.timeoutMs },
        (err, response) => {
          if (err) reject(this.toError(err, identity));
          else if (!response) reject(new AmeshError('AMESH_CA_RESPONSE_INVALID', `the CA ${this.opts.address} sent an empty answer for ${identity}`));
          else resolve(response);
        },
      );
    });
  }

  private toError(err: grpc.ServiceError, identity: string): AmeshError {
    const code = classify(err.code);
    const status = grpc.status[err.code] ?? String(err.code);
    const details = err.details || err.message;
    const hint =
      code === 'AMESH_CA_UNAVAILABLE'
        ? `is the CA reachable at ${this.opts.address} and its certificate valid for ${this.serverName} under ${this.opts.rootCertFile}? (a NetworkPolicy blocking it?)`
        : code === 'AMESH_CA_REFUSED'
          ? 'the CA must trust this node agent’s service account and see a pod with that service account on this node'
          : undefined;
    return new AmeshError(code, `CA ${this.opts.address} ${code === 'AMESH_CA_REFUSED' ? 'refused' : 'failed'} the certificate for ${identity}: ${status}: ${details}`, {
      cause: err,
      ...(hint ? { hint } : {}),
    });
  }

  private validate(identity: string, keyPem: string, response: IstioCertificateResponse): IssuedCertificate {
    const bad = (why: string, cause?: unknown): AmeshError =>
      new AmeshError('AMESH_CA_RESPONSE_INVALID', `the CA ${this.opts.address} answered for ${identity} with ${why}`, cause === undefined ? {} : { cause });
    // Each entry should be one PEM, but some CAs send bundles: normalise to one per certificate.
    const chainPem = (response.certChain ?? []).flatMap((entry) => splitPemBundle(entry));
    if (chainPem.length === 0) throw bad('an empty certificate chain');
    let chain: CertificateInfo[];
    try {
      chain = chainPem.map((pem) => parseCertificate(pem));
    } catch (err) {
      throw bad('a certificate that does not parse', err);
    }
    const leaf = chain[0] as CertificateInfo;
    if (leaf.isCa) throw bad('a CA certificate first instead of the workload leaf');
    if (leaf.uriSans.length !== 1 || leaf.uriSans[0] !== identity) throw bad(`a certificate for ${leaf.uriSans.join(', ') || 'no URI SAN'}`);
    if (!leaf.x509.checkPrivateKey(createPrivateKey(keyPem))) throw bad('a certificate for another key');
    const now = this.now();
    if (leaf.notAfter.getTime() <= now) throw bad(`a certificate that expired at ${leaf.notAfter.toISOString()}`);
    let roots = this.opts.trustBundle();
    if (roots.length === 0) {
      // No trust bundle yet (the ConfigMap is not mounted or not written): trust the CA's root.
      roots = [chainPem[chainPem.length - 1] as string];
      this.logger.warn({ identity }, 'no mesh trust bundle; trusting the root the CA sent');
    } else if (!reachesBundle(chain, roots)) {
      this.logger.warn({ identity, issuer: leaf.issuer }, 'the issued chain does not reach a root of the trust bundle; peers may reject it until the bundle catches up');
    }
    return { identity, chainPem, keyPem, rootsPem: [...roots], notBefore: leaf.notBefore, notAfter: leaf.notAfter };
  }
}

/** Does some certificate of the chain equal, or name as issuer, a root of the bundle? (A hint for the log only.) */
function reachesBundle(chain: CertificateInfo[], roots: string[]): boolean {
  try {
    const parsed = roots.map((r) => parseCertificate(r).x509);
    return chain.some((c) => parsed.some((root) => root.fingerprint256 === c.x509.fingerprint256 || c.x509.checkIssued(root)));
  } catch {
    return false;
  }
}
