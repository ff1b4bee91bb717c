/**
 * The ingress gateway proxy process (`amesh gateway-proxy`), the north-south twin of the
 * waypoint (src/waypoint/app.ts): build → run → drain → close.
 *
 * build: settings are given; the certificate source is the mesh CA (identity
 *        `spiffe://<td>/ns/<ns>/sa/<gateway>`, its own token, trust bundle followed), the HBONE
 *        pool and dialer into the mesh (src/l7/mesh-upstream.ts: endpoints over HBONE, through
 *        their waypoint when the endpoint names one, plain TCP outside the mesh), the L7 engine,
 *        the xDS config source subscribed to `<ns>/<gateway>`.
 * run:   readiness (15021), admin on localhost (15000), metrics (15020), one listener per
 *        configured port (listener-set.ts), then the xDS stream. Ready once the first config is
 *        applied; stays ready while the controller is away (the last good config is served).
 * config: only `kind: 'gateway'` configs named `<ns>/<gateway>` are accepted (anything else is
 *        NACKed: a waypoint's config would open no port and route nothing). Routes and clusters
 *        compile into the same WaypointState the waypoint uses, the listeners into a
 *        ListenerPlan (TLS contexts prebuilt); both swap atomically, then the bound ports are
 *        reconciled (new ones opened, removed ones closed, failures reported in /config_dump).
 *        A connection uses the config current when it was accepted.
 * telemetry: Istio metrics (`reporter="source"`, the gateway as the source) on the metrics port,
 *        the access log gated by the config's Telemetry, tracing configured from it on every
 *        applied config (one tracer per process, flushed on close).
 * drain: readiness off, listeners closed, GOAWAY to HTTP/2 clients, idle HTTP/1.1 connections
 *        closed; connections in flight get up to the drain timeout.
 */
import type net from 'node:net';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import type { CertificateProvider } from '../identity/certificate-provider.js';
import type { WorkloadIdentity } from '../identity/spiffe.js';
import type { AuthzDeps } from '../l7/authz/engine.js';
import type { WaypointConfig } from '../l7/config.js';
import { HttpProxy } from '../l7/http-proxy.js';
import { authzDepsFor, MeshUpstream, type CertificateSource } from '../l7/mesh-upstream.js';
import { selfPeer, type L7Metrics } from '../l7/l7-metrics.js';
import { buildWithCertificates, proxyAdminServers, proxyTelemetry, routeCount, telemetryDump, type ProxyTracer } from '../l7/proxy-process.js';
import { dumpClusters } from '../l7/state-dump.js';
import { buildWaypointState, poolTargets, type WaypointState } from '../l7/waypoint-state.js';
import type { AdminServers } from '../node-agent/admin.js';
import type { XdsCredentials } from '../node-agent/xds/xds-state-source.js';
import type { Logger } from '../telemetry/logger.js';
import { ProxyTracing } from '../telemetry/tracing.js';
import { openProxyConfigSource, type WaypointConfigSource } from '../waypoint/config-source.js';
import { GatewayDownstream } from './downstream.js';
import { buildListenerPlan, SecureContextCache, type ListenerPlan } from './listener-plan.js';
import { GatewayListenerSet } from './listener-set.js';
import { gatewayIdentity, gatewayIdentityUri, gatewayResourceName, type GatewaySettings } from './settings.js';

export interface GatewayOptions {
  settings: Readonly<GatewaySettings>;
  logger: Logger;
  /** Tests: certificates from this provider instead of the mesh CA; no trust bundle file is read. */
  certificateProvider?: CertificateProvider;
  /** Tests: `false` = no xDS client; configs arrive through `applyConfig`. Default true. */
  xds?: boolean;
  /** xDS credentials instead of mesh TLS + token — tests only (e.g. `{ kind: 'insecure' }`). */
  xdsCredentials?: XdsCredentials;
  /** The port to bind for a config port (tests and benches: `() => 0`, ephemeral). Default: the same. */
  listenPort?: (configPort: number) => number;
  /** Where access-log lines go; default `logger` (component access). The CLI passes a buffered one. */
  accessLog?: Logger;
  /** Weighted choices; default Math.random. */
  random?: () => number;
  /** Tests: how RequestAuthentication `jwksUri` documents are fetched (default: HTTP(S) GET). */
  fetchJwks?: (uri: string) => Promise<string>;
  /** The tracer (configured from each config's Telemetry); default a ProxyTracing (OTLP/HTTP). */
  tracing?: ProxyTracer;
}

export interface GatewayPorts {
  readiness: number;
  admin: number;
  metrics: number;
}

/** What the config dump shows of a config: everything but private keys. */
function redacted(config: WaypointConfig): WaypointConfig {
  if (!config.listeners?.some((l) => l.certificates?.length)) return config;
  return { ...config, listeners: config.listeners.map((l) => (l.certificates ? { ...l, certificates: l.certificates.map((c) => ({ ...c, privateKey: '[redacted]' })) } : l)) };
}

export class GatewayProxy {
  private state: WaypointState | undefined;
  private plan: ListenerPlan | undefined;
  private version = 0;
  private lastConfigError: string | undefined;
  private readonly identity: WorkloadIdentity;
  private readonly identityUri: string;
  private readonly upstream: MeshUpstream;
  private readonly proxy: HttpProxy;
  private readonly downstream: GatewayDownstream;
  private readonly listeners: GatewayListenerSet;
  private readonly contexts = new SecureContextCache();
  private readonly admin: AdminServers;
  private readonly metrics: L7Metrics;
  private readonly tracing: ProxyTracer;
  private readonly source: WaypointConfigSource | undefined;
  private readonly authzDeps: AuthzDeps;
  private readonly live = new Set<net.Socket>();
  private onIdle: (() => void) | undefined;
  private draining = false;
  private running = false;
  private quitRequested: (() => void) | undefined;
  ports: GatewayPorts | undefined;

  private constructor(
    private readonly opts: GatewayOptions,
    private readonly certificateSource: CertificateSource,
  ) {
    const { settings: s, logger } = opts;
    this.identity = gatewayIdentity(s);
    this.identityUri = gatewayIdentityUri(s);
    this.authzDeps = authzDepsFor(s, logger, opts.fetchJwks);
    this.upstream = new MeshUpstream(s, certificateSource, this.identity, logger);
    const accessLog = opts.accessLog ?? logger.child({ component: 'access' });
    const random = opts.random ?? Math.random;
    this.admin = proxyAdminServers({
      role: 'gateway',
      name: `${s.podNamespace}/${s.gatewayName}`,
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
    this.tracing = opts.tracing ?? new ProxyTracing({ serviceName: `${s.gatewayName}.${s.podNamespace}`, serviceNamespace: s.podNamespace, logger: logger.child({ component: 'tracing' }) });
    const { telemetry, metrics } = proxyTelemetry({ role: 'gateway', admin: this.admin, accessLog, logger: logger.child({ component: 'telemetry' }), clusterId: s.clusterId, tracing: this.tracing });
    this.metrics = metrics;
    const peer = selfPeer({ principal: this.identityUri, workload: s.gatewayName, namespace: s.podNamespace, cluster: s.clusterId });
    this.proxy = new HttpProxy({ state: () => this.state, pools: this.upstream.pools, logger: logger.child({ component: 'http' }), accessLog, random, telemetry, maxRequestHeaderBytes: s.maxRequestHeaderBytes });
    this.downstream = new GatewayDownstream({ proxy: this.proxy, dialer: this.upstream.dialer, logger: logger.child({ component: 'downstream' }), accessLog, random, handshakeTimeoutMs: s.handshakeTimeoutMs, telemetry, peer });
    this.listeners = new GatewayListenerSet({
      listenAddress4: s.listenAddress4,
      listenAddress6: s.listenAddress6,
      ...(opts.listenPort ? { listenPort: opts.listenPort } : {}),
      onConnection: (socket, port) => this.onConnection(socket, port),
      logger: logger.child({ component: 'listeners' }),
    });
    if (opts.xds !== false) {
      this.source = openProxyConfigSource({
        settings: s,
        role: 'gateway',
        resourceName: gatewayResourceName(s),
        certificateSource,
        ...(opts.xdsCredentials ? { credentials: opts.xdsCredentials } : {}),
        apply: (config, version) => this.applyConfig(config, version),
        logger,
      });
    }
  }

  static build(opts: GatewayOptions): Promise<GatewayProxy> {
    return buildWithCertificates(opts.settings, opts.logger, 'gateway', opts.certificateProvider, (certificates) => new GatewayProxy(opts, certificates));
  }

  /** Ready once a config is applied, until draining. */
  isReady(): boolean {
    return this.running && this.state !== undefined && !this.draining;
  }

  /** Resolves when someone asked the gateway to quit (POST /quitquitquit). */
  quitSignal(): Promise<void> {
    return new Promise((resolve) => (this.quitRequested = resolve));
  }

  /**
   * Compiles and swaps in a config (xDS, or tests directly). Throws AMESH_XDS_INVALID_RESOURCE
   * without touching the current config when it is not this gateway's or cannot be executed.
   * Listener ports are reconciled afterwards, asynchronously (`whenListening()`).
   */
  applyConfig(config: WaypointConfig, version?: string): void {
    const { settings: s, logger } = this.opts;
    try {
      if (config.kind !== 'gateway') throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `kind: the config is a ${config.kind ?? 'waypoint'}'s, this is an ingress gateway (kind: gateway)`);
      if (config.namespace !== s.podNamespace || config.name !== s.gatewayName) {
        throw new AmeshError('AMESH_XDS_INVALID_RESOURCE', `namespace/name: the config is for ${config.namespace}/${config.name}, this gateway is ${s.podNamespace}/${s.gatewayName}`);
      }
      const state = buildWaypointState(config, this.version + 1, this.state, { authz: this.authzDeps, ...(this.opts.random ? { random: this.opts.random } : {}) });
      const plan = buildListenerPlan(config.listeners ?? [], this.contexts);
      this.version = state.version;
      this.state = state;
      this.plan = plan;
      this.lastConfigError = undefined;
      this.contexts.retain(plan);
      this.downstream.prepare(plan);
      this.upstream.pools.retain(poolTargets(state));
      for (const l of plan.byPort.values()) {
        if (l.tls && l.tls.errors.length > 0) logger.warn({ listener: l.listener.name, port: l.listener.port, errors: l.tls.errors }, 'gateway: certificates left out of an HTTPS listener');
      }
    } catch (err) {
      this.lastConfigError = describeError(err).split('\n')[0];
      throw err;
    }
    this.tracing.configure(config.telemetry?.tracing);
    if (config.identity && config.identity !== this.identityUri) logger.warn({ configIdentity: config.identity, identity: this.identityUri }, 'the config names another identity than this gateway’s certificate');
    logger.info(
      { version: this.version, xdsVersion: version, listeners: (config.listeners ?? []).map((l) => `${l.protocol}/${l.port}`), clusters: config.clusters.length, routes: routeCount(config) },
      'gateway config applied',
    );
    if (this.running && !this.draining) void this.listeners.reconcile(this.plan.byPort.keys());
  }

  async run(): Promise<GatewayPorts> {
    const { settings: s, logger } = this.opts;
    this.upstream.certificates.prefetch(this.identity);
    const admin = await this.admin.start({ readiness: s.readinessPort, admin: s.adminPort, metrics: s.metricsPort });
    this.ports = admin;
    this.running = true;
    if (this.plan) await this.listeners.reconcile(this.plan.byPort.keys());
    this.source?.start();
    logger.info({ gateway: `${s.podNamespace}/${s.gatewayName}`, identity: this.identityUri, ports: this.ports, listeners: this.listeners.status(), xds: s.xdsAddress || undefined }, this.state ? 'gateway ready' : 'gateway running; ready after the first config');
    return this.ports;
  }

  /** The port bound for a config port (tests bind ephemeral ports), undefined when not listening. */
  listenerPort(configPort: number): number | undefined {
    return this.listeners.listenerPort(configPort);
  }

  /** Resolves once the listeners match the last applied config (binds done or failed). */
  whenListening(): Promise<void> {
    return this.listeners.settled();
  }

  private onConnection(socket: net.Socket, configPort: number): void {
    const listener = this.plan?.byPort.get(configPort);
    const state = this.state;
    if (this.draining || !listener || !state) return void socket.destroy();
    this.live.add(socket);
    socket.once('close', () => {
      this.live.delete(socket);
      if (this.live.size === 0) this.onIdle?.();
    });
    this.downstream.accept(socket, listener, state);
  }

  configDump(): unknown {
    const s = this.opts.settings;
    const state = this.state;
    return {
      gateway: { namespace: s.podNamespace, name: s.gatewayName, identity: this.identityUri },
      version: this.version,
      ...(this.lastConfigError ? { lastConfigError: this.lastConfigError } : {}),
      ...(this.source ? { xds: this.source.status() } : {}),
      listeners: this.listenerDump(),
      config: state ? redacted(state.config) : null,
      clusters: dumpClusters(state),
      pools: { upstream: this.upstream.pools.stats(), hbone: this.upstream.hbonePool.stats() },
      stats: { downstream: this.downstream.stats(), http: this.proxy.stats(), liveConnections: this.live.size, tlsContexts: this.contexts.size },
      telemetry: telemetryDump(state?.config, this.metrics, this.tracing),
      certificates: this.upstream.certificates.snapshot(),
    };
  }

  private listenerDump(): unknown[] {
    const bound = new Map(this.listeners.status().map((st) => [st.port, st]));
    return [...(this.plan?.byPort.values() ?? [])].map(({ listener, tls, l4Routes }) => ({
      ...(bound.get(listener.port) ?? { state: this.running ? 'pending' : 'not started' }),
      name: listener.name,
      port: listener.port,
      protocol: listener.protocol,
      ...(tls ? { certificates: tls.certificates.map((c) => ({ name: c.certificate.name, hostnames: c.certificate.hostnames })), ...(tls.errors.length > 0 ? { certificateErrors: tls.errors } : {}) } : {}),
      ...(l4Routes.length > 0 ? { l4Routes: l4Routes.map((r) => ({ name: r.route.name, hostnames: r.route.hostnames ?? [] })) } : {}),
    }));
  }

  /** Resolves when no downstream connection is left, or after `timeoutMs`. */
  private connectionsDone(timeoutMs: number): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.onIdle = undefined;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.onIdle = done;
    });
  }

  async drain(): Promise<void> {
    if (this.draining) return;
    const { settings: s, logger } = this.opts;
    this.draining = true;
    logger.info({ timeoutMs: s.drainTimeoutMs, connections: this.live.size }, 'draining');
    this.listeners.close();
    this.proxy.drain();
    await Promise.all([this.source?.close(), this.connectionsDone(s.drainTimeoutMs), this.upstream.drain(s.drainTimeoutMs)]);
  }

  async close(): Promise<void> {
    await this.drain();
    this.proxy.close();
    for (const socket of this.live) socket.destroy();
    this.upstream.close();
    this.certificateSource.close();
    await Promise.all([this.admin.close(), this.tracing.close()]);
  }
}
