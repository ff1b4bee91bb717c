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
 * telemetry: Istio metrics (`reporter="waypoint"`) on the metrics port, the access log gated by
 *        the config's Telemetry, tracing configured from it on every applied config (one tracer
 *        per process, flushed on close).
 * drain: readiness off, listeners closed, GOAWAY on HBONE and HTTP/2, in-flight requests get up
 *        to the drain timeout.
 */
import net from 'node:net';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import type { HbonePool } from '../hbone/pool.js';
import { HboneServer } from '../hbone/server.js';
import type { CertificateManager } from '../identity/certificate-manager.js';
import type { CertificateProvider } from '../identity/certificate-provider.js';
import type { WorkloadIdentity } from '../identity/spiffe.js';
import type { AuthzDeps } from '../l7/authz/engine.js';
import type { WaypointConfig } from '../l7/config.js';
import { HttpProxy } from '../l7/http-proxy.js';
import { WaypointInbound } from '../l7/inbound.js';
import { listenOnAddresses } from '../l7/listen.js';
import { authzDepsFor, MeshUpstream, type CertificateSource } from '../l7/mesh-upstream.js';
import type { L7Metrics } from '../l7/l7-metrics.js';
import { buildWithCertificates, proxyAdminServers, proxyTelemetry, routeCount, telemetryDump, type ProxyTracer } from '../l7/proxy-process.js';
import type { UpstreamPools } from '../l7/upstream.js';
import { dumpClusters } from '../l7/state-dump.js';
import { buildWaypointState, poolTargets, type WaypointState } from '../l7/waypoint-state.js';
import type { AdminServers } from '../node-agent/admin.js';
import type { XdsCredentials } from '../node-agent/xds/xds-state-source.js';
import type { Logger } from '../telemetry/logger.js';
import { ProxyTracing } from '../telemetry/tracing.js';
import { drainNotice } from '../l7/drain-notice.js';
import { openProxyConfigSource, type WaypointConfigSource } from './config-source.js';
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
  /** The tracer (configured from each config's Telemetry); default a ProxyTracing (OTLP/HTTP). */
  tracing?: ProxyTracer;
}

export interface WaypointPorts {
  hbone: number;
  readiness: number;
  admin: number;
  metrics: number;
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
  private readonly upstream: MeshUpstream;
  private readonly proxy: HttpProxy;
  private readonly inbound: WaypointInbound;
  private readonly hbone: HboneServer;
  private readonly admin: AdminServers;
  private readonly metrics: L7Metrics;
  private readonly tracing: ProxyTracer;
  private readonly source: WaypointConfigSource | undefined;
  private readonly servers: net.Server[] = [];
  /** One for the process: the JWKS cache hangs off it and outlives every config. */
  private readonly authzDeps: AuthzDeps;
  private draining = false;
  /** Listeners refuse new connections (after the drain notice). */
  private closingListeners = false;
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
    this.authzDeps = authzDepsFor(s, logger, opts.fetchJwks);
    this.upstream = new MeshUpstream(s, certificateSource, this.identity, logger);
    this.certificates = this.upstream.certificates;
    this.hbonePool = this.upstream.hbonePool;
    this.pools = this.upstream.pools;
    const dialer = this.upstream.dialer;
    const accessLog = opts.accessLog ?? logger.child({ component: 'access' });
    this.admin = proxyAdminServers({
      role: 'waypoint',
      name: `${s.podNamespace}/${s.waypointName}`,
      identityUri: this.identityUri,
      ready: () => this.isReady(),
      version: () => this.version,
      draining: () => this.draining,
      xdsConnected: opts.xds === false ? undefined : () => this.source?.status().connected ?? false,
      configDump: () => this.configDump(),
      quit: () => this.quitRequested?.(),
      logger,
    });
    // One tracer per process, off until a config's Telemetry turns it on (Istio's service.name for a proxy: <name>.<namespace>).
    this.tracing = opts.tracing ?? new ProxyTracing({ serviceName: `${s.waypointName}.${s.podNamespace}`, serviceNamespace: s.podNamespace, logger: logger.child({ component: 'tracing' }) });
    const { telemetry, metrics } = proxyTelemetry({ role: 'waypoint', admin: this.admin, accessLog, logger: logger.child({ component: 'telemetry' }), clusterId: s.clusterId, tracing: this.tracing });
    this.metrics = metrics;
    this.proxy = new HttpProxy({ state: () => this.state, pools: this.pools, logger: logger.child({ component: 'http' }), accessLog, telemetry, maxRequestHeaderBytes: s.maxRequestHeaderBytes, ...(opts.random ? { random: opts.random } : {}) });
    this.inbound = new WaypointInbound({ state: () => this.state, proxy: this.proxy, dialer, logger: logger.child({ component: 'inbound' }), accessLog, telemetry, sniffTimeoutMs: s.sniffTimeoutMs });
    this.hbone = new HboneServer({
      trustDomains: () => [s.trustDomain],
      // Whatever address was dialled: the waypoint serves as itself.
      secureContextFor: () => this.certificates.secureContext(this.identity),
      onConnect: (req) => this.inbound.onConnect(req),
      logger: logger.child({ component: 'hbone' }),
    });
    if (opts.xds !== false) {
      this.source = openProxyConfigSource({
        settings: s,
        role: 'waypoint',
        resourceName: waypointResourceName(s),
        certificateSource,
        ...(opts.xdsCredentials ? { credentials: opts.xdsCredentials } : {}),
        apply: (config, version) => this.applyConfig(config, version),
        logger,
      });
    }
  }

  static build(opts: WaypointOptions): Promise<WaypointProxy> {
    return buildWithCertificates(opts.settings, opts.logger, 'waypoint', opts.certificateProvider, (certificates) => new WaypointProxy(opts, certificates));
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
    this.tracing.configure(config.telemetry?.tracing);
    if (config.identity && config.identity !== this.identityUri) logger.warn({ configIdentity: config.identity, identity: this.identityUri }, 'the config names another identity than this waypoint’s certificate');
    logger.info(
      { version: this.version, xdsVersion: version, services: config.services.length, clusters: config.clusters.length, routes: routeCount(config) },
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
    const { servers, port } = await listenOnAddresses({
      listenAddress4: s.listenAddress4,
      listenAddress6: s.listenAddress6,
      port: s.hbonePort,
      create: () =>
        net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
          if (this.closingListeners) return void socket.destroy();
          this.hbone.handleConnection(socket);
        }),
      what: 'HBONE',
      hint: 'is another waypoint running in this network namespace?',
      logger,
    });
    this.servers.push(...servers);
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
      clusters: dumpClusters(state),
      pools: { upstream: this.pools.stats(), hbone: this.hbonePool.stats() },
      listeners: { hbone: this.hbone.stats(), inbound: this.inbound.stats(), http: this.proxy.stats() },
      telemetry: telemetryDump(state?.config, this.metrics, this.tracing),
      certificates: this.certificates.snapshot(),
    };
  }

  /**
   * `notice` (SIGTERM): first keep serving new connections while node agents still send them
   * (drain-notice.ts), so deleting or rolling a waypoint resets nothing; then close listeners.
   */
  async drain(opts: { notice?: boolean } = {}): Promise<void> {
    if (this.draining) return;
    const { settings: s, logger } = this.opts;
    this.draining = true;
    if (opts.notice && s.drainNoticeMs > 0) {
      logger.info({ maxMs: s.drainNoticeMs }, 'draining: readiness off, still accepting while node agents move away');
      const notice = await drainNotice({ accepted: () => this.hbone.stats().acceptedStreams, minMs: Math.min(2000, s.drainNoticeMs), quietMs: 1000, maxMs: s.drainNoticeMs });
      logger.info(notice, 'draining: drain notice over');
    }
    this.closingListeners = true;
    logger.info({ timeoutMs: s.drainTimeoutMs }, 'draining');
    for (const server of this.servers) server.close();
    this.proxy.drain();
    await Promise.all([this.source?.close(), this.hbone.drain(s.drainTimeoutMs), this.upstream.drain(s.drainTimeoutMs)]);
  }

  async close(opts: { notice?: boolean } = {}): Promise<void> {
    await this.drain(opts);
    this.proxy.close();
    this.hbone.close();
    this.upstream.close();
    this.certificateSource.close();
    await Promise.all([this.admin.close(), this.tracing.close()]);
  }
}
