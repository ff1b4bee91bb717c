/**
 * The mesh side of an L7 proxy process (the waypoint and the ingress gateway): its certificate
 * (from the mesh CA, with the trust bundle followed), the HBONE pool for upstream tunnels, the
 * dialer that turns a cluster endpoint into a byte stream, and the keep-alive pools over it.
 *
 * Dialling (MeshDialer) — how an Endpoint is reached:
 * - `hbone` with `waypoint`: HBONE to `<waypoint>:<upstream HBONE port>` with `:authority`
 *   `address:port` (the service VIP as dialled) and the waypoint's identity expected — an
 *   ingress gateway going through the destination's waypoint (istio.io/ingress-use-waypoint).
 * - `hbone`: HBONE to `<address>:<upstream HBONE port>` (the destination's node agent) with
 *   `:authority address:port`, the workload's identity expected.
 * - otherwise plain TCP to `address:port` (out-of-mesh endpoints).
 * Every TCP connect has the proxy's connect deadline.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import { formatAuthority } from '../hbone/headers.js';
import { HbonePool } from '../hbone/pool.js';
import { IstioCaProvider } from '../identity/ca-client.js';
import { CertificateManager } from '../identity/certificate-manager.js';
import type { CertificateProvider } from '../identity/certificate-provider.js';
import type { WorkloadIdentity } from '../identity/spiffe.js';
import { TrustBundle } from '../identity/trust-bundle.js';
import type { Logger } from '../telemetry/logger.js';
import type { AuthzDeps } from './authz/engine.js';
import { DEFAULT_JWKS_FETCH, fetchJwks } from './authz/jwks-fetch.js';
import type { Endpoint } from './config.js';
import type { ProxySettings } from './proxy-settings.js';
import { UpstreamPools, type UpstreamDialer } from './upstream.js';

/** TCP connect with a deadline. */
export function tcpConnect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `timed out connecting to ${formatAuthority(host, port)} after ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(new AmeshError('AMESH_UPSTREAM_CONNECT_FAILED', `cannot connect to ${formatAuthority(host, port)}: ${err.message}`, { cause: err }));
    };
    socket.once('error', onError);
  });
}

export interface MeshDialerOptions {
  hbone: Pick<HbonePool, 'connect'>;
  sourceIdentity: WorkloadIdentity;
  upstreamHbonePort: number;
  connectTimeoutMs: number;
}

/** The dialer of the module comment: HBONE (direct or via the endpoint's waypoint) or TCP. */
export function meshDialer(o: MeshDialerOptions): UpstreamDialer {
  return {
    connect: (endpoint: Endpoint): Promise<Duplex> =>
      endpoint.hbone
        ? o.hbone.connect({
            sourceIdentity: o.sourceIdentity,
            expectedIdentities: [endpoint.identity],
            nextHop: { host: endpoint.waypoint ?? endpoint.address, port: o.upstreamHbonePort },
            authority: formatAuthority(endpoint.address, endpoint.port),
            headers: {},
          })
        : tcpConnect(endpoint.address, endpoint.port, o.connectTimeoutMs),
  };
}

export interface CertificateSource {
  provider: CertificateProvider;
  trustBundle?: TrustBundle;
  close(): void;
}

/** The proxy's certificate source: the injected provider (tests) or the mesh CA with the trust bundle. */
export async function openCertificateSource(s: Readonly<ProxySettings>, logger: Logger, role: string, injected?: CertificateProvider): Promise<CertificateSource> {
  if (injected) return { provider: injected, close: () => undefined };
  if (!s.caAddress) throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_CA_ADDRESS is not set', { hint: `the ${role}’s certificate comes from the mesh CA` });
  const trustBundle = await TrustBundle.open({ file: s.caRootCertFile, pollMs: s.trustBundlePollMs, logger: logger.child({ component: 'trust-bundle' }) });
  try {
    // The proxy asks for its own identity with its own token. IstioCaProvider always sends
    // ImpersonatedIdentity (= the requested identity); the amesh CA treats "impersonating
    // yourself" as no impersonation. (istiod would refuse it: see the report on issue #6.)
    const provider = new IstioCaProvider({
      address: s.caAddress,
      rootCertFile: s.caRootCertFile,
      tokenFile: s.caTokenFile,
      clusterId: s.clusterId,
      ttlSeconds: s.certTtlSeconds,
      serverName: s.caServerName,
      trustBundle: () => trustBundle.roots(),
      logger: logger.child({ component: 'ca-client' }),
      // Its own identity, with its own token: no impersonation (istiod allows that to node agents only).
      impersonate: false,
    });
    return {
      provider,
      trustBundle,
      close: () => {
        trustBundle.close();
        provider.close();
      },
    };
  } catch (err) {
    trustBundle.close();
    throw err;
  }
}

/** The process-wide JWKS fetching of RequestAuthentication rules (its cache outlives every config). */
export function authzDepsFor(s: Readonly<ProxySettings>, logger: Logger, fetch?: (uri: string) => Promise<string>): AuthzDeps {
  const jwksLog = logger.child({ component: 'jwks' });
  return {
    fetchJwks: fetch ?? ((uri) => fetchJwks(uri, { ...DEFAULT_JWKS_FETCH, timeoutMs: s.jwksFetchTimeoutMs })),
    jwksRefreshMs: s.jwksRefreshMs,
    onJwksError: (uri, err) => jwksLog.warn({ uri, err: describeError(err) }, 'cannot fetch a JWKS; tokens of its issuer are refused until it can be fetched'),
  };
}

/** Certificates, HBONE pool, dialer and upstream pools of one proxy, owned together. */
export class MeshUpstream {
  readonly certificates: CertificateManager;
  readonly hbonePool: HbonePool;
  readonly dialer: UpstreamDialer;
  readonly pools: UpstreamPools;

  constructor(s: Readonly<ProxySettings>, source: CertificateSource, identity: WorkloadIdentity, logger: Logger) {
    this.certificates = new CertificateManager({ provider: source.provider, logger: logger.child({ component: 'certificates' }) });
    const trustBundle = source.trustBundle;
    if (trustBundle) {
      if (trustBundle.roots().length > 0) this.certificates.updateTrustBundle(trustBundle.roots());
      trustBundle.onChange((roots) => this.certificates.updateTrustBundle(roots));
    }
    this.hbonePool = new HbonePool({
      certificates: this.certificates,
      connectSocket: (host, port) => tcpConnect(host, port, s.connectTimeoutMs),
      logger: logger.child({ component: 'hbone-pool' }),
    });
    this.dialer = meshDialer({ hbone: this.hbonePool, sourceIdentity: identity, upstreamHbonePort: s.upstreamHbonePort, connectTimeoutMs: s.connectTimeoutMs });
    this.pools = new UpstreamPools({ dialer: this.dialer, logger: logger.child({ component: 'upstream' }), idleTimeoutMs: s.upstreamIdleTimeoutMs });
  }

  /** Idle keep-alive tunnels go now (they would hold the HBONE pool open); busy ones get `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    this.pools.retain([]);
    await this.hbonePool.drain(timeoutMs);
  }

  close(): void {
    this.pools.close();
    this.hbonePool.close();
    this.certificates.close();
  }
}
