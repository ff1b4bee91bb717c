/**
 * The waypoint proxy process: build → run → drain → close (as the node agent).
 *
 * build: settings are given; the certificate source is the mesh CA (its own identity
 *        `spiffe://<td>/ns/<ns>/sa/<gateway>`, its own token) with the trust bundle followed, the
 *        HBONE pool for upstream tunnels, the L7 engine (src/l7/), the xDS config source.
 * run:   HBONE listener on 15008 (IPv4, and IPv6 when the pod has it) presenting the waypoint's
 *        certificate whatever address was dialled (a waypoint is an ordinary pod, not a
 *        transparent proxy), readiness (15021), admin on localhost (15000), metrics (15020),
 *        then the xDS stream. Ready once the first config is applied; it stays ready while the
 *        controller is away (the last good config keeps being served).
 * config: every config is compiled (routes, balancers) before it is swapped in atomically; a
 *        config that cannot be compiled is refused (NACK) and the previous one stays.
 * drain: readiness off, listeners closed, GOAWAY on HBONE and HTTP/2, in-flight requests get up
 *        to the drain timeout.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import { formatAuthority } from '../hbone/headers.js';
import { HbonePool } from '../hbone/pool.js';
import { HboneServer } from '../hbone/server.js';
import { IstioCaProvider } from '../identity/ca-client.js';
import { CertificateManager } from '../identity/certificate-manager.js';
import type { CertificateProvider } from '../identity/certificate-provider.js';
import { TrustBundle } from '../identity/trust-bundle.js';
import type { WorkloadIdentity } from '../identity/spiffe.js';
import type { AuthzDeps } from '../l7/authz/engine.js';
import { DEFAULT_JWKS_FETCH, fetchJwks } from '../l7/authz/jwks-fetch.js';
import type { WaypointConfig } from '../l7/config.js';
import { HttpProxy } from '../l7/http-proxy.js';
import { WaypointInbound } from '../l7/inbound.js';
import { UpstreamPools, type UpstreamDialer } from '../l7/upstream.js';
import { buildWaypointState, poolTargets, type WaypointState } from '../l7/waypoint-state.js';
import { AdminServers } from '../node-agent/admin.js';
import type { XdsCredentials } from '../node-agent/xds/xds-state-source.js';
import type { Logger } from '../telemetry/logger.js';
import { decodeWaypointConfig } from '../xds/waypoint-codec.js';
import { WaypointConfigSource } from './config-source.js';
import { waypointIdentity, waypointIdentityUri, waypointResourceName, type WaypointSettings } from './settings.js';

export interface WaypointOptions {
  settings: Readonly<WaypointSettings>;
  logger: Logger;
  /** Tests: certificates from this provider instead of the mesh CA; no trust bundle file is read. */
  certificateProvider?: CertificateProvider;
  /** Tests: `false` = no xDS client; configs arrive through `applyConfig`. Default true. */
  xds?: boolean;
  /** xDS credentials instead of mesh TLS + token — tests only (e.g. `{ kind: 'insecure' }`). */
  xdsCredentials?: XdsCredentials;
  /** Injected for tests (weighted choices); default Math.random. */
  random?: () => number;
  /** Where access-log lines go; default `logger` (component access). The CLI passes a buffered one. */
  accessLog?: Logger;
  /** Tests: how RequestAuthentication `jwksUri` documents are fetched (default: HTTP(S) GET). */
  fetchJwks?: (uri: string) => Promise<string>;
}

export interface WaypointPorts {
  hbone: number;
  readiness: number;
  admin: number;
  metrics: number;
}

interface CertificateSource {
  provider: CertificateProvider;
  trustBundle?: TrustBundle;
  close(): void;
}

async function openCertificateSource(opts: WaypointOptions): Promise<CertificateSource> {
  if (opts.certificateProvider) return { provider: opts.certificateProvider, close: () => undefined };
  const s = opts.settings;
  if (!s.caAddress) throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_CA_ADDRESS is not set', { hint: 'the waypoint’s certificate comes from the mesh CA' });
  const trustBundle = await TrustBundle.open({ file: s.caRootCertFile, pollMs: s.trustBundlePollMs, logger: opts.logger.child({ component: 'trust-bundle' }) });
  try {
    // The waypoint asks for its own identity with its own token. IstioCaProvider always sends
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
      logger: opts.logger.child({ component: 'ca-client' }),
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

/** TCP connect with a deadline. */
function tcpConnect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
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

export class WaypointProxy {
  private state: WaypointState | undefined;
  private version = 0;
  private lastConfigError: string | undefined;
  private readonly identity: WorkloadIdentity;
  private readonly identityUri: string;
  private readonly certificates: CertificateManager;
  private readonly hbonePool: HbonePool;
  private readonly pools: UpstreamPools;
  private readonly proxy: HttpProxy;
  private readonly inbound: WaypointInbound;
  private readonly hbone: HboneServer;
  private readonly admin: AdminServers;
  private readonly source: WaypointConfigSource | undefined;
  private readonly servers: net.Server[] = [];
  /** One for the process: the JWKS cache hangs off it and outlives every config. */
  private readonly authzDeps: AuthzDeps;
  private draining = false;
  private running = false;
  private quitRequested: (() => void) | undefined;
  ports: WaypointPorts | undefined;

  private constructor(
    private readonly opts: WaypointOptions,
    private readonly certificateSource: CertificateSource,
  ) {
    const { settings: s, logger } = opts;
    this.identity = waypointIdentity(s);
    this.identityUri = waypointIdentityUri(s);
    const jwksLog = logger.child({ component: 'jwks' });
    this.authzDeps = {
      fetchJwks: opts.fetchJwks ?? ((uri) => fetchJwks(uri, { ...DEFAULT_JWKS_FETCH, timeoutMs: s.jwksFetchTimeoutMs })),
      jwksRefreshMs: s.jwksRefreshMs,
      onJwksError: (uri, err) => jwksLog.warn({ uri, err: describeError(err) }, 'cannot fetch a JWKS; tokens of its issuer are refused until it can be fetched'),
    };
    this.certificates = new CertificateManager({ provider: certificateSource.provider, logger: logger.child({ component: 'certificates' }) });
    const trustBundle = certificateSource.trustBundle;
    if (trustBundle) {
      if (trustBundle.roots().length > 0) this.certificates.updateTrustBundle(trustBundle.roots());
      trustBundle.onChange((roots) => this.certificates.updateTrustBundle(roots));
    }
    this.hbonePool = new HbonePool({
      certificates: this.certificates,
      connectSocket: (host, port) => tcpConnect(host, port, s.connectTimeoutMs),
      logger: logger.child({ component: 'hbone-pool' }),
    });
    const dialer: UpstreamDialer = {
      connect: (endpoint): Promise<Duplex> =>
        endpoint.hbone
          ? this.hbonePool.connect({
              sourceIdentity: this.identity,
              expectedIdentities: [endpoint.identity],
              nextHop: { host: endpoint.address, port: s.upstreamHbonePort },
              authority: formatAuthority(endpoint.address, endpoint.port),
              headers: {},
            })
          : tcpConnect(endpoint.address, endpoint.port, s.connectTimeoutMs),
    };
    this.pools = new UpstreamPools({ dialer, logger: logger.child({ component: 'upstream' }), idleTimeoutMs: s.upstreamIdleTimeoutMs });
    const accessLog = opts.accessLog ?? logger.child({ component: 'access' });
    this.proxy = new HttpProxy({ state: () => this.state, pools: this.pools, logger: logger.child({ component: 'http' }), accessLog, ...(opts.random ? { random: opts.random } : {}) });
    this.inbound = new WaypointInbound({ state: () => this.state, proxy: this.proxy, dialer, logger: logger.child({ component: 'inbound' }), accessLog, sniffTimeoutMs: s.sniffTimeoutMs });
    this.hbone = new HboneServer({
      trustDomains: () => [s.trustDomain],
      // Whatever address was dialled: the waypoint serves as itself.
      secureContextFor: () => this.certificates.secureContext(this.identity),
      onConnect: (req) => this.inbound.onConnect(req),
      logger: logger.child({ component: 'hbone' }),
    });
    this.admin = new AdminServers({
      ready: () => ({
        ready: this.isReady(),
        waypoint: `${s.podNamespace}/${s.waypointName}`,
        identity: this.identityUri,
        configVersion: this.version,
        ...(this.source ? { xds: { connected: this.source.status().connected } } : {}),
        ...(this.draining ? { draining: true } : {}),
      }),
      configDump: () => this.configDump(),
      quit: () => this.quitRequested?.(),
      logger,
    });
    if (opts.xds !== false) {
      let credentials = opts.xdsCredentials;
      if (!credentials) {
        if (!certificateSource.trustBundle) throw new AmeshError('AMESH_CONFIG_INVALID', 'xDS needs the mesh roots to verify the server: set AMESH_CA_ADDRESS and AMESH_CA_ROOT_CERT_FILE');
        credentials = { kind: 'mesh-tls', roots: certificateSource.trustBundle, serverName: s.xdsServerName, tokenFile: s.caTokenFile };
      }
      if (!s.xdsAddress) throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_XDS_ADDRESS is not set', { hint: 'the waypoint’s routes come from the controller over xDS' });
      this.source = new WaypointConfigSource({
        address: s.xdsAddress,
        credentials,
        resourceName: waypointResourceName(s),
        node: { podName: s.podName, podNamespace: s.podNamespace, podIp: s.podIp, nodeName: s.nodeName, clusterId: s.clusterId },
        decode: decodeWaypointConfig,
        apply: (config, version) => this.applyConfig(config, version),
        logger: logger.child({ component: 'xds' }),
      });
    }
  }

  static async build(opts: WaypointOptions): Promise<WaypointProxy> {
    const certificates = await openCertificateSource(opts);
    try {
      return new WaypointProxy(opts, certificates);
    } catch (err) {
      certificates.close();
      throw err;
    }
  }

  /** Ready once a config is applied, until draining. */
  isReady(): boolean {
    return this.running && this.state !== undefined && !this.draining;
  }

  /** Resolves when someone asked the waypoint to quit (POST /quitquitquit). */
  quitSignal(): Promise<void> {
    return new Promise((resolve) => (this.quitRequested = resolve));
  }

  /**
   * Compiles and swaps in a config (xDS, or tests directly). Throws AMESH_XDS_INVALID_RESOURCE
   * (field path + problem) without touching the current config when it cannot be executed.
   */
  applyConfig(config: WaypointConfig, version?: string): void {
    const { settings: s, logger } = this.opts;
    try {
      if (config.namespace !== s.podNamespace || config.name !== s.waypointName) {
        throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `namespace/name: the config is for ${config.namespace}/${config.name}, this waypoint is ${s.podNamespace}/${s.waypointName}`);
      }
      const state = buildWaypointState(config, this.version + 1, this.state, { authz: this.authzDeps, ...(this.opts.random ? { random: this.opts.random } : {}) });
      this.version = state.version;
      this.state = state;
      this.lastConfigError = undefined;
      this.pools.retain(poolTargets(state));
    } catch (err) {
      this.lastConfigError = describeError(err).split('\n')[0];
      throw err;
    }
    if (config.identity && config.identity !== this.identityUri) logger.warn({ configIdentity: config.identity, identity: this.identityUri }, 'the config names another identity than this waypoint’s certificate');
    logger.info(
      { version: this.version, xdsVersion: version, services: config.services.length, clusters: config.clusters.length, routes: config.services.reduce((n, sv) => n + sv.ports.reduce((m, p) => m + p.routes.length, 0), 0) },
      'waypoint config applied',
    );
  }

  async run(): Promise<WaypointPorts> {
    const { settings: s, logger } = this.opts;
    this.certificates.prefetch(this.identity);
    const hbone = await this.listenHbone();
    const admin = await this.admin.start({ readiness: s.readinessPort, admin: s.adminPort, metrics: s.metricsPort });
    this.ports = { hbone, ...admin };
    this.running = true;
    this.source?.start();
    logger.info({ waypoint: `${s.podNamespace}/${s.waypointName}`, identity: this.identityUri, ports: this.ports, xds: s.xdsAddress || undefined }, this.state ? 'waypoint ready' : 'waypoint running; ready after the first config');
    return this.ports;
  }

  private async listenHbone(): Promise<number> {
    const { settings: s, logger } = this.opts;
    let port = s.hbonePort;
    const addresses: Array<{ host: string; family: 4 | 6 }> = [{ host: s.listenAddress4, family: 4 }];
    if (s.listenAddress6) addresses.push({ host: s.listenAddress6, family: 6 });
    for (const { host, family } of addresses) {
      if (!host) continue;
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
        if (this.draining) return void socket.destroy();
        this.hbone.handleConnection(socket);
      });
      server.on('error', (err) => logger.error({ err: describeError(err) }, 'hbone listener error'));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host, port, ...(family === 6 ? { ipv6Only: true } : {}) }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        if (family === 6) {
          logger.warn({ err: describeError(err), host }, 'IPv6 HBONE listener unavailable; serving IPv4 only');
          continue;
        }
        throw new AmeshError('AMESH_PORT_IN_USE', `cannot listen for HBONE on ${formatAuthority(host, port)}`, { cause: err, hint: 'is another waypoint running in this network namespace?' });
      }
      this.servers.push(server);
      port = (server.address() as net.AddressInfo).port;
    }
    return port;
  }

  configDump(): unknown {
    const s = this.opts.settings;
    const state = this.state;
    return {
      waypoint: { namespace: s.podNamespace, name: s.waypointName, identity: this.identityUri },
      version: this.version,
      ...(this.lastConfigError ? { lastConfigError: this.lastConfigError } : {}),
      ...(this.source ? { xds: this.source.status() } : {}),
      config: state?.config ?? null,
      clusters: state
        ? [...state.clusters.values()].map(({ cluster, balancer, breaker }) => ({
            name: cluster.name,
            lb: cluster.hash ? { consistentHash: cluster.hash } : cluster.lb,
            ...(cluster.connectionPool ? { connectionPool: cluster.connectionPool, breaker: breaker.stats() } : {}),
            ...(cluster.outlierDetection ? { outlierDetection: cluster.outlierDetection } : {}),
            endpoints: balancer.snapshot().map((e) => {
              const endpoint = balancer.endpoints.find((x) => x.key === e.key)?.endpoint;
              return { address: e.key, hbone: endpoint?.hbone, identity: endpoint?.identity, health: e.ejected ? 'EJECTED' : 'HEALTHY', ...e };
            }),
          }))
        : [],
      pools: { upstream: this.pools.stats(), hbone: this.hbonePool.stats() },
      listeners: { hbone: this.hbone.stats(), inbound: this.inbound.stats(), http: this.proxy.stats() },
      certificates: this.certificates.snapshot(),
    };
  }

  async drain(): Promise<void> {
    if (this.draining) return;
    const { settings: s, logger } = this.opts;
    this.draining = true;
    logger.info({ timeoutMs: s.drainTimeoutMs }, 'draining');
    for (const server of this.servers) server.close();
    this.proxy.drain();
    // Idle upstream keep-alive tunnels would hold the HBONE pool open until the drain timeout.
    this.pools.retain([]);
    await Promise.all([this.source?.close(), this.hbone.drain(s.drainTimeoutMs), this.hbonePool.drain(s.drainTimeoutMs)]);
  }

  async close(): Promise<void> {
    await this.drain();
    this.proxy.close();
    this.hbone.close();
    this.pools.close();
    this.hbonePool.close();
    this.certificates.close();
    this.certificateSource.close();
    await this.admin.close();
  }
}
