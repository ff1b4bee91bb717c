/**
 * The node agent ("ztunnel"): build → run → drain → close.
 *
 * build: read settings and the local config, pick the certificate source (the mesh CA when
 *        AMESH_CA_ADDRESS is set, else the local config's CA), create certificates, pool, servers.
 * run:   listeners first, then capture (routing, program, enrolment), then readiness.
 * drain: readiness off, stop accepting, GOAWAY tunnels, wait for live connections up to the
 *        drain timeout. Capture stays installed so enrolled pods fail closed while we are away.
 */
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import type { AgentConfig } from '../config/agent-config.js';
import { loadLocalConfig, type LocalConfig } from '../config/local-config.js';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import { HbonePool } from '../hbone/pool.js';
import { CertificateManager } from '../identity/certificate-manager.js';
import { IstioCaProvider } from '../identity/ca-client.js';
import { LocalCaProvider, type CertificateProvider } from '../identity/certificate-provider.js';
import { TrustBundle } from '../identity/trust-bundle.js';
import type { WorkloadIdentity } from '../identity/spiffe.js';
import { loadNativeBinding } from '../native/index.js';
import type { NativeBinding } from '../native/types.js';
import { systemCommands, type CommandRunner } from '../os/command.js';
import type { Logger } from '../telemetry/logger.js';
import { AdminServers } from './admin.js';
import { RedirectionManager } from './capture/redirection-manager.js';
import { ipv6Available } from './capture/interfaces.js';
import { ConnectionTracker } from './proxy/connection-tracker.js';
import { InboundHbone } from './proxy/inbound.js';
import { handleInboundPlaintext } from './proxy/inbound-plaintext.js';
import { handleOutbound } from './proxy/outbound.js';
import type { ProxyContext } from './proxy/proxy-context.js';
import { plainSocketFactory, transparentSocketFactory, type SocketFactory } from './proxy/socket-factory.js';
import { MeshState } from './state/mesh-state.js';

export interface NodeAgentOptions {
  config: Readonly<AgentConfig>;
  localConfigPath: string;
  logger: Logger;
  commands?: CommandRunner;
  native?: () => NativeBinding;
}

/** Where workload certificates come from: signed in-process (local) or by the mesh CA. */
interface CertificateSource {
  mode: 'local' | 'istio-ca';
  provider: CertificateProvider;
  /** CA mode: the CA's address and the mesh roots it follows. */
  caAddress?: string;
  trustBundle?: TrustBundle;
  close(): void;
}

async function openCertificateSource(config: Readonly<AgentConfig>, localConfig: LocalConfig, logger: Logger): Promise<CertificateSource> {
  if (config.caAddress) {
    if (localConfig.ca) logger.warn({ caAddress: config.caAddress }, 'AMESH_CA_ADDRESS is set: the local config’s ca is ignored');
    const trustBundle = await TrustBundle.open({ file: config.caRootCertFile, pollMs: config.trustBundlePollMs, logger: logger.child({ component: 'trust-bundle' }) });
    try {
      const provider = new IstioCaProvider({
        address: config.caAddress,
        rootCertFile: config.caRootCertFile,
        tokenFile: config.caTokenFile,
        clusterId: config.clusterId,
        ttlSeconds: config.certTtlSeconds,
        serverName: config.caServerName,
        trustBundle: () => trustBundle.roots(),
        logger: logger.child({ component: 'ca-client' }),
      });
      return {
        mode: 'istio-ca',
        provider,
        caAddress: config.caAddress,
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
  if (!localConfig.ca) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'no certificate authority configured: neither AMESH_CA_ADDRESS nor a ca in the local config is set', {
      hint: 'set AMESH_CA_ADDRESS to the mesh CA (e.g. istiod.istio-system.svc:15012), or add ca: {certFile, keyFile} to the local config for local mode',
    });
  }
  const [certPem, keyPem] = await Promise.all([readFile(localConfig.ca.certFile, 'utf8'), readFile(localConfig.ca.keyFile, 'utf8')]);
  return { mode: 'local', provider: new LocalCaProvider({ ca: { certPem, keyPem }, ttlSeconds: config.certTtlSeconds }), close: () => undefined };
}

export interface ListeningPorts {
  outbound: number;
  inboundPlaintext: number;
  hbone: number;
  readiness: number;
  admin: number;
  metrics: number;
}

export class NodeAgent {
  private state: MeshState;
  private localConfig: LocalConfig;
  private readonly servers: net.Server[] = [];
  private readonly connections = new ConnectionTracker();
  private readonly certificates: CertificateManager;
  private readonly pool: HbonePool;
  private readonly inbound: InboundHbone;
  private readonly capture: RedirectionManager;
  private readonly admin: AdminServers;
  private readonly sockets: SocketFactory;
  private ready = false;
  private draining = false;
  private configVersion = 0;
  private lastConfigError: string | undefined;
  private applyChain: Promise<void> = Promise.resolve();
  private quitRequested: (() => void) | undefined;
  ports: ListeningPorts | undefined;

  private constructor(
    private readonly opts: NodeAgentOptions,
    localConfig: LocalConfig,
    private readonly certificateSource: CertificateSource,
  ) {
    const { config, logger } = opts;
    const commands = opts.commands ?? systemCommands;
    const native = opts.native ?? loadNativeBinding;
    this.localConfig = localConfig;
    this.state = new MeshState(localConfig, 0);
    this.sockets = config.captureMode === 'none' ? plainSocketFactory : transparentSocketFactory(native(), config.socketMark);
    this.certificates = new CertificateManager({
      provider: certificateSource.provider,
      logger: logger.child({ component: 'certificates' }),
    });
    const trustBundle = certificateSource.trustBundle;
    if (trustBundle) {
      // Follow root rotations: every identity's TLS context switches to the new bundle at once.
      if (trustBundle.roots().length > 0) this.certificates.updateTrustBundle(trustBundle.roots());
      trustBundle.onChange((roots) => this.certificates.updateTrustBundle(roots));
    }
    this.pool = new HbonePool({
      certificates: this.certificates,
      connectSocket: (host, port) => this.sockets.connect({ host, port }, config.connectTimeoutMs),
      logger: logger.child({ component: 'hbone-pool' }),
    });
    const ctx: ProxyContext = {
      node: localConfig.node,
      config,
      state: () => this.state,
      sockets: this.sockets,
      certificates: this.certificates,
      pool: this.pool,
      logger: logger.child({ component: 'proxy' }),
      accessLog: logger.child({ component: 'access' }),
      connections: this.connections,
    };
    this.proxyContext = ctx;
    this.inbound = new InboundHbone(ctx);
    this.capture = new RedirectionManager({
      config,
      node: localConfig.node,
      uplinks: localConfig.uplinks,
      commands,
      logger: logger.child({ component: 'capture' }),
      native,
    });
    this.admin = new AdminServers({
      ready: () => ({
        ready: this.ready && !this.draining,
        node: localConfig.node,
        captureMode: this.capture.mode,
        ca: this.caStatus(),
        certificates: this.certificateCounts(),
        ...(this.draining ? { draining: true } : {}),
      }),
      configDump: () => this.configDump(),
      quit: () => this.quitRequested?.(),
      logger,
    });
  }

  private readonly proxyContext: ProxyContext;

  static async build(opts: NodeAgentOptions): Promise<NodeAgent> {
    const localConfig = await loadLocalConfig(opts.localConfigPath);
    const source = await openCertificateSource(opts.config, localConfig, opts.logger);
    try {
      return new NodeAgent(opts, localConfig, source);
    } catch (err) {
      source.close();
      throw err;
    }
  }

  private caStatus(): { mode: CertificateSource['mode']; address?: string; trustBundle?: ReturnType<TrustBundle['status']> } {
    const source = this.certificateSource;
    return { mode: source.mode, ...(source.caAddress ? { address: source.caAddress } : {}), ...(source.trustBundle ? { trustBundle: source.trustBundle.status() } : {}) };
  }

  /** Informational only: readiness does not wait for certificates (see run()). */
  private certificateCounts(): { available: number; total: number } {
    const all = this.certificates.snapshot();
    return { available: all.filter((c) => c.state === 'Available').length, total: all.length };
  }

  /** Resolves when someone asked the agent to quit (POST /quitquitquit). */
  quitSignal(): Promise<void> {
    return new Promise((resolve) => (this.quitRequested = resolve));
  }

  async run(): Promise<ListeningPorts> {
    const { config, logger } = this.opts;
    const families = config.captureMode === 'none' || !(await ipv6Available(this.opts.commands ?? systemCommands)) ? [4] : [4, 6];
    const listen = async (port: number, onSocket: (s: net.Socket) => void, name: string): Promise<number> => {
      let bound = port;
      for (const family of families) {
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
          if (this.draining) {
            socket.resetAndDestroy();
            return;
          }
          onSocket(socket);
        });
        server.on('error', (err) => logger.error({ err: describeError(err), listener: name }, 'listener error'));
        const address = family === 4 ? config.listenAddress4 : config.listenAddress6;
        try {
          await this.sockets.listen(server, address, bound);
        } catch (err) {
          if (family === 6) {
            logger.warn({ err: describeError(err), listener: name }, 'IPv6 listener unavailable; IPv6 pods are not served');
            continue;
          }
          throw err;
        }
        this.servers.push(server);
        bound = (server.address() as net.AddressInfo).port;
      }
      return bound;
    };
    const ctx = this.proxyContext;
    const outbound = await listen(config.outboundPort, (s) => void handleOutbound(ctx, s).catch((e) => this.internalError('outbound', e)), 'outbound');
    const inboundPlaintext = await listen(config.inboundPlaintextPort, (s) => void handleInboundPlaintext(ctx, s).catch((e) => this.internalError('inbound-plaintext', e)), 'inbound-plaintext');
    const hbone = await listen(config.hbonePort, (s) => {
      this.connections.add(s);
      this.inbound.handleSocket(s);
    }, 'hbone');
    const adminPorts = await this.admin.start({ readiness: config.readinessPort, admin: config.adminPort, metrics: config.metricsPort });

    await this.capture.start();
    await this.applyState();
    this.watchConfig();
    // Ready once listeners, capture and state are in place — certificates are prefetched but not
    // awaited, in both modes: a CA outage must not hold back a rollout or restart loop, and a
    // connection without a certificate fails fast with AMESH_CERT_FAILED while retries continue.
    // /healthz/ready reports the certificate counts so the gap is visible.
    this.ready = true;
    this.ports = { outbound, inboundPlaintext, hbone, ...adminPorts };
    logger.info({ node: this.localConfig.node, ports: this.ports, captureMode: this.capture.mode, ca: this.caStatus() }, 'node agent ready');
    return this.ports;
  }

  private internalError(where: string, err: unknown): void {
    this.opts.logger.error({ err: describeError(err), where }, 'unexpected proxy error');
  }

  /** Capture + certificate prefetch for the current state. Serialized. */
  private applyState(): Promise<void> {
    const run = async (): Promise<void> => {
      await this.capture.apply(this.state);
      const wanted = new Map<string, WorkloadIdentity>();
      for (const w of this.state.enrolledOnNode(this.localConfig.node)) {
        const id = { trustDomain: w.trustDomain ?? this.state.trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount };
        wanted.set(this.state.identityOf(w), id);
      }
      for (const id of wanted.values()) this.certificates.prefetch(id);
      for (const cert of this.certificates.snapshot()) {
        if (!wanted.has(cert.identity)) this.certificates.forget(cert.identity);
      }
    };
    this.applyChain = this.applyChain.then(run, run);
    return this.applyChain;
  }

  private watchConfig(): void {
    const path = this.opts.localConfigPath;
    watchFile(path, { interval: this.opts.config.configPollMs, persistent: false }, () => void this.reload());
  }

  /** Re-read the local config; on error keep serving the last good state. */
  async reload(): Promise<boolean> {
    const { logger } = this.opts;
    try {
      const next = await loadLocalConfig(this.opts.localConfigPath);
      if (next.node !== this.localConfig.node) throw new Error(`node may not change at run time (was ${this.localConfig.node}, now ${next.node})`);
      this.localConfig = next;
      this.state = new MeshState(next, ++this.configVersion);
      this.lastConfigError = undefined;
      await this.applyState();
      logger.info({ version: this.configVersion, workloads: next.workloads.length, services: next.services.length, policies: next.policies.length }, 'local config reloaded');
      return true;
    } catch (err) {
      this.lastConfigError = describeError(err);
      logger.error({ err: this.lastConfigError }, 'local config rejected; keeping the last good configuration');
      return false;
    }
  }

  configDump(): unknown {
    const s = this.state.snapshot;
    return {
      node: this.localConfig.node,
      version: this.state.version,
      ...(this.lastConfigError ? { lastConfigError: this.lastConfigError } : {}),
      workloads: s.workloads,
      services: s.services,
      policies: s.policies,
      ca: this.caStatus(),
      certificates: this.certificates.snapshot(),
      capture: this.capture.status(),
      connections: { live: this.connections.size, liveConnections: this.connections.describe(), pool: this.pool.stats(), hbone: this.inbound.server.stats() },
    };
  }

  async drain(): Promise<void> {
    if (this.draining) return;
    const { logger, config } = this.opts;
    this.draining = true;
    logger.info({ live: this.connections.size, timeoutMs: config.drainTimeoutMs }, 'draining');
    unwatchFile(this.opts.localConfigPath);
    for (const s of this.servers) s.close();
    await Promise.all([this.inbound.server.drain(config.drainTimeoutMs), this.pool.drain(config.drainTimeoutMs), this.connections.idle(config.drainTimeoutMs)]);
    if (this.connections.size) logger.warn({ remaining: this.connections.size }, 'drain timeout: closing remaining connections');
  }

  async close(): Promise<void> {
    await this.drain();
    this.connections.destroyAll();
    this.inbound.server.close();
    this.pool.close();
    this.certificates.close();
    this.certificateSource.close();
    await this.capture.close();
    await this.admin.close();
  }
}
