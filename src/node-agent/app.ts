/**
 * The node agent ("ztunnel"): build → run → drain → close.
 *
 * build: read settings, pick the state source (xDS when AMESH_XDS_ADDRESS is set, else the
 *        local config file) and the certificate source (the mesh CA when AMESH_CA_ADDRESS is
 *        set, else the local config's CA), create certificates, pool, servers.
 * run:   listeners first, then capture (routing, program, enrolment), then the state source.
 *        Ready once the source delivered a complete state (the file at once; xDS after the
 *        first response of both types).
 * state: every new state is swapped in atomically, live inbound connections are re-checked
 *        against it (and closed if now denied), then capture and certificates follow.
 * drain: readiness off, stop accepting, GOAWAY tunnels, wait for live connections up to the
 *        drain timeout. Capture stays installed so enrolled pods fail closed while we are away.
 * hand-off (docs/upgrade.md): a starting agent first asks a running one (handoff/handoff.ts)
 *        for its listening sockets, gets ready, serves them and tells the old one to drain —
 *        no port is ever unserved, no queued connection dropped.
 */
import net from 'node:net';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { AgentConfig } from '../config/agent-config.js';
import type { LocalConfig } from '../config/local-config.js';
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
import { decisionLogFields } from '../policy/l4-authorization.js';
import { logLevels, type Logger } from '../telemetry/logger.js';
import { AdminServers } from './admin.js';
import { DEFAULT_HANDOFF_SOCKET, HANDOFF_LISTENER, HandoffServer, handleFd, requestHandoff, type HandedListener, type InheritedListeners } from './handoff/handoff.js';
import { RedirectionManager } from './capture/redirection-manager.js';
import type { CaptureListener } from './capture/capture-backend.js';
import { ipv6Available } from './capture/interfaces.js';
import { recheckInbound } from './proxy/connection-recheck.js';
import { ConnectionTracker } from './proxy/connection-tracker.js';
import { InboundHbone } from './proxy/inbound.js';
import { handleInboundPlaintext } from './proxy/inbound-plaintext.js';
import { handleOutbound } from './proxy/outbound.js';
import { overloadOf, type ProxyContext } from './proxy/proxy-context.js';
import { plainSocketFactory, transparentSocketFactory, type SocketFactory } from './proxy/socket-factory.js';
import { LocalFileStateSource } from './state/local-file-state-source.js';
import { MeshState } from './state/mesh-state.js';
import type { StateSource } from './state/state-source.js';
import type { MeshSnapshot } from './state/types.js';
import { buildConfigDump } from './telemetry/config-dump.js';
import { L4Telemetry } from './telemetry/l4-telemetry.js';
import { registerInternals } from './telemetry/internals.js';
import { XdsStateSource, type XdsCredentials } from './xds/xds-state-source.js';
import { installLeanAsyncResourceBind } from '../runtime/lean-async-resource-bind.js';

export interface NodeAgentOptions {
  config: Readonly<AgentConfig>;
  /** The local config file; required unless AMESH_XDS_ADDRESS is set (then it is not read). */
  localConfigPath?: string;
  logger: Logger;
  /** Where access-log lines go; default `logger` (component access). The CLI passes a buffered one. */
  accessLog?: Logger;
  commands?: CommandRunner;
  native?: () => NativeBinding;
  /** xDS credentials instead of mesh TLS + token — tests only (e.g. `{ kind: 'insecure' }`). */
  xdsCredentials?: XdsCredentials;
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

async function openCertificateSource(config: Readonly<AgentConfig>, localConfig: LocalConfig | undefined, logger: Logger): Promise<CertificateSource> {
  if (config.caAddress) {
    if (localConfig?.ca) logger.warn({ caAddress: config.caAddress }, 'AMESH_CA_ADDRESS is set: the local config’s ca is ignored');
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
  if (!localConfig?.ca) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'no certificate authority configured: neither AMESH_CA_ADDRESS nor a ca in the local config is set', {
      hint: 'set AMESH_CA_ADDRESS to the mesh CA (e.g. istiod.istio-system.svc:15012), or add ca: {certFile, keyFile} to the local config for local mode',
    });
  }
  const [certPem, keyPem] = await Promise.all([readFile(localConfig.ca.certFile, 'utf8'), readFile(localConfig.ca.keyFile, 'utf8')]);
  return { mode: 'local', provider: new LocalCaProvider({ ca: { certPem, keyPem }, ttlSeconds: config.certTtlSeconds }), close: () => undefined };
}

/** The local config file, unless the state comes over xDS. */
async function openLocalFile(opts: NodeAgentOptions): Promise<LocalFileStateSource | undefined> {
  const { config, logger } = opts;
  if (config.xdsAddress) {
    if (opts.localConfigPath) logger.warn({ localConfig: opts.localConfigPath, xdsAddress: config.xdsAddress }, 'AMESH_XDS_ADDRESS is set: the state comes over xDS and the local config is not read');
    return undefined;
  }
  if (!opts.localConfigPath) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'no source of mesh state: give --local-config FILE or set AMESH_XDS_ADDRESS', {
      hint: 'AMESH_XDS_ADDRESS=<controller or istiod>:15012 with NODE_NAME for a cluster; --local-config for a self-contained node',
    });
  }
  return LocalFileStateSource.open(opts.localConfigPath, config.configPollMs, logger);
}

/** xDS over TLS against the mesh roots the certificate source follows, with the CA token. */
function openXdsSource(opts: NodeAgentOptions, certificates: CertificateSource): XdsStateSource {
  const { config, logger } = opts;
  let credentials = opts.xdsCredentials;
  if (!credentials) {
    if (!certificates.trustBundle) {
      throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_XDS_ADDRESS needs AMESH_CA_ADDRESS: the xDS server is verified with the mesh roots', { hint: 'set AMESH_CA_ADDRESS and AMESH_CA_ROOT_CERT_FILE' });
    }
    credentials = { kind: 'mesh-tls', roots: certificates.trustBundle, serverName: config.xdsServerName, tokenFile: config.caTokenFile };
  }
  return new XdsStateSource({
    address: config.xdsAddress,
    credentials,
    node: { nodeName: config.nodeName, podName: config.podName, podNamespace: config.podNamespace, podIp: config.podIp, clusterId: config.clusterId },
    trustDomain: config.trustDomain,
    uplinks: config.uplinks,
    logger: logger.child({ component: 'xds' }),
    telemetry: true,
  });
}

/** How long unmarked listeners keep accepting what was queued before they close (drain). */
const UNMARKED_ACCEPT_MS = 200;
/** How long a connection accepted before the first complete state waits for it. */
const STATE_WAIT_MS = 15_000;

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
  private stateVersion = 0;
  /** The first state has reached capture (file: at start; xDS: at the first full state). */
  private stateApplied = false;
  private applyChain: Promise<void> = Promise.resolve();
  private quitRequested: ((why: string) => void) | undefined;
  /** The proxy listeners by hand-off name ('outbound/4', 'hbone/6', …) and port. */
  private readonly listenerInfo: Array<{ name: string; server: net.Server; port: number }> = [];
  private handoffServer: HandoffServer | undefined;
  private drainDone: Promise<void> | undefined;
  /** A newer agent took over our listeners (we drain for it). */
  private handedOver = false;
  /** SIGTERM (or /quitquitquit) arrived: serving on, readiness 503, waiting for a successor. */
  private terminating = false;
  private successorTookOver: (() => void) | undefined;
  ports: ListeningPorts | undefined;

  private constructor(
    private readonly opts: NodeAgentOptions,
    private readonly source: StateSource,
    private readonly certificateSource: CertificateSource,
  ) {
    const { config, logger } = opts;
    const commands = opts.commands ?? systemCommands;
    const native = opts.native ?? loadNativeBinding;
    const node = source.node;
    this.state = new MeshState(source.initial(), 0);
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
      maxStreamsPerConnection: config.hbonePoolMaxStreams,
      idleTimeoutMs: config.hbonePoolIdleTimeoutMs,
    });
    const ctx: ProxyContext = {
      node,
      config,
      state: () => this.state,
      sockets: this.sockets,
      certificates: this.certificates,
      pool: this.pool,
      logger: logger.child({ component: 'proxy' }),
      accessLog: opts.accessLog ?? logger.child({ component: 'access' }),
      connections: this.connections,
    };
    this.proxyContext = ctx;
    this.inbound = new InboundHbone(ctx);
    this.capture = new RedirectionManager({
      config,
      node,
      uplinks: source.uplinks,
      commands,
      logger: logger.child({ component: 'capture' }),
      native,
    });
    this.admin = new AdminServers({
      ready: () => ({
        // After a hand-off the node is served by the newer agent: a probe the old one accepted
        // just before says so rather than failing.
        // Not ready once terminating (waiting for a successor): the agent is hostNetwork, so the
        // kubelet's probe of the NEW agent pod reaches us, and must not find that pod Ready
        // before its own agent serves (docs/upgrade.md, "Readiness with hostNetwork").
        ready: this.ready && (!this.draining || this.handedOver) && (this.handedOver || !this.terminating) && this.source.isReady() && this.stateApplied,
        node,
        stateSource: this.source.kind,
        ...(this.source instanceof XdsStateSource ? { xds: { connected: this.source.status().connected, ready: this.source.isReady() } } : {}),
        captureMode: this.capture.mode,
        ca: this.caStatus(),
        certificates: this.certificateCounts(),
        pid: process.pid,
        ...(this.draining ? { draining: true } : {}),
        ...(this.terminating && !this.draining ? { waitingForSuccessor: true } : {}),
        ...(this.handoffServer?.offerPending && !this.handedOver ? { successorGettingReady: true } : {}),
      }),
      configDump: () => this.configDump(),
      quit: () => this.quitRequested?.('/quitquitquit'),
      logger,
      denials: () => ({ capacity: this.l4.denials.capacity, total: this.l4.denials.total, denials: this.l4.denials.list() }),
    });
    // L4 istio_tcp_* metrics on the admin registry, access-log gating by Telemetry, the denial ring.
    this.l4 = new L4Telemetry({ registry: this.admin.registry, clusterId: config.clusterId, logger: logger.child({ component: 'access' }), telemetry: () => (this.source instanceof XdsStateSource ? this.source.telemetry() : new Map()) });
    ctx.telemetry = this.l4;
    registerInternals(this.admin.registry, {
      bpfReasons: () => this.capture.reasonCounters(),
      pool: () => this.pool.stats(),
      hboneServer: () => this.inbound.server.stats(),
      connections: () => ({ live: this.connections.size, inbound: this.connections.inboundSize }),
      ...(source instanceof XdsStateSource ? { xds: () => source.status() } : {}),
      certificates: () => this.certificates.snapshot(),
      enrolledPods: () => this.state.enrolledOnNode(this.source.node).length,
      overload: () => overloadOf(this.proxyContext).log.totals(),
    });
  }

  private readonly proxyContext: ProxyContext;
  /** L4 metrics, access-log gating and the recent denials (`l4.denials`, served at /debug/denials). */
  readonly l4: L4Telemetry;

  static async build(opts: NodeAgentOptions): Promise<NodeAgent> {
    // Before any component logger exists, so /logging reaches all of them (createLogger does it too).
    logLevels(opts.logger);
    // Every HBONE CONNECT goes through http2 request(), which binds an AsyncResource (see there).
    installLeanAsyncResourceBind();
    const file = await openLocalFile(opts);
    const certificates = await openCertificateSource(opts.config, file?.localConfig, opts.logger);
    let source: StateSource | undefined;
    try {
      source = file ?? openXdsSource(opts, certificates);
      return new NodeAgent(opts, source, certificates);
    } catch (err) {
      await source?.close();
      certificates.close();
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

  /**
   * Resolves with the reason when the agent should quit: POST /quitquitquit, or a newer agent
   * took over its listeners (then it is already draining).
   */
  quitSignal(): Promise<string> {
    return new Promise((resolve) => (this.quitRequested = resolve));
  }

  /** The hand-off socket, or undefined when the hand-off is off (AMESH_HANDOFF_SOCKET). */
  private handoffSocketPath(): string | undefined {
    const { handoffSocket, captureMode } = this.opts.config;
    if (handoffSocket === 'off') return undefined;
    if (handoffSocket === 'auto') return captureMode === 'none' ? undefined : DEFAULT_HANDOFF_SOCKET;
    return handoffSocket;
  }

  async run(): Promise<ListeningPorts> {
    const { logger } = this.opts;
    const native = this.opts.native ?? loadNativeBinding;
    const handoffLog = logger.child({ component: 'handoff' });
    const socketPath = this.handoffSocketPath();
    // An old agent's listening sockets, if one runs in this network namespace.
    const inherited = socketPath ? await requestHandoff(native(), socketPath, handoffLog) : undefined;
    if (inherited) handoffLog.info({ oldPid: inherited.pid, listeners: inherited.count }, 'hand-off: received the listeners of the running agent; serving them once ready');
    try {
      return await this.runWith(inherited, socketPath);
    } catch (err) {
      inherited?.close();
      throw err;
    }
  }

  private async runWith(inherited: InheritedListeners | undefined, socketPath: string | undefined): Promise<ListeningPorts> {
    const { config, logger } = this.opts;
    const handoffLog = logger.child({ component: 'handoff' });
    const native = this.opts.native ?? loadNativeBinding;
    /** An inherited listener for `name`, if the old agent had it on the port we want. */
    const take = (name: string, port: number): HandedListener | undefined => {
      const handed = inherited?.take(name);
      if (handed && port !== 0 && handed.port !== port) {
        handoffLog.warn({ listener: name, oldPort: handed.port, port }, 'hand-off: the old agent listened on another port; binding fresh');
        native().closeFd(handed.fd);
        return undefined;
      }
      return handed;
    };
    const pendingListens: Array<() => Promise<void>> = [];
    const captureListeners: CaptureListener[] = [];
    const remember = (name: string, family: 4 | 6, fd: number | undefined): void => {
      if ((name === 'outbound' || name === 'inbound-plaintext' || name === 'hbone') && typeof fd === 'number' && fd >= 0) captureListeners.push({ kind: name, family, fd });
    };
    const families = config.captureMode === 'none' || !(await ipv6Available(this.opts.commands ?? systemCommands)) ? [4] : [4, 6];
    const listen = async (port: number, onSocket: (s: net.Socket) => void, name: string): Promise<number> => {
      let bound = port;
      for (const family of families) {
        // A connection accepted while draining is still served: the listener closes as drain
        // starts, and one already accepted would otherwise be lost.
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, onSocket);
        server.on('error', (err) => logger.error({ err: describeError(err), listener: name }, 'listener error'));
        const handed = take(`${name}/${family}`, bound);
        if (handed) {
          pendingListens.push(async () => {
            server.listen({ fd: handed.fd });
            await once(server, 'listening');
          });
          this.servers.push(server);
          this.listenerInfo.push({ name: `${name}/${family}`, server, port: handed.port });
          remember(name, family as 4 | 6, handed.fd);
          bound = handed.port;
          continue;
        }
        // A fresh bind serves before the first complete state: hold accepted connections
        // (paused) until it is there, so none is rejected for an unknown pod or sent out
        // unmeshed (pauseOnConnect keeps their data in the kernel meanwhile).
        server.removeAllListeners('connection');
        server.on('connection', (s: net.Socket) => this.whenStateComplete(s, onSocket));
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
        this.listenerInfo.push({ name: `${name}/${family}`, server, port: bound });
        remember(name, family as 4 | 6, (server as net.Server & { _handle?: { fd?: number } | null })._handle?.fd);
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
    const adminPorts = await this.admin.start({ readiness: config.readinessPort, admin: config.adminPort, metrics: config.metricsPort }, inherited ? (name) => take(name, { readiness: config.readinessPort, admin: config.adminPort, metrics: config.metricsPort }[name]) : undefined);

    await this.capture.start();
    this.capture.useListeners(captureListeners);
    // xDS starts empty: applying that to capture would unenrol every pod (which then leaks
    // plaintext) until the first response — so capture keeps what it had until a full state.
    if (this.source.initialIsComplete) {
      await this.applyState();
      this.stateApplied = true;
    }
    this.source.start((snapshot) => this.setState(snapshot));
    if (inherited) await this.takeOver(inherited, pendingListens);
    if (socketPath) {
      this.handoffServer = new HandoffServer({
        native: native(),
        socketPath,
        logger: handoffLog,
        listeners: () => this.handoffListeners(),
        onDrain: (peerPid) => this.handOver(peerPid),
      });
      await this.handoffServer.start(inherited?.take(HANDOFF_LISTENER)?.fd);
    }
    inherited?.close();
    // Ready once listeners, capture and a complete state are in place — certificates are
    // prefetched but not awaited, in both modes: a CA outage must not hold back a rollout or
    // restart loop, and a connection without a certificate fails fast with AMESH_CERT_FAILED
    // while retries continue. /healthz/ready reports the certificate counts so the gap is visible.
    this.ready = true;
    this.ports = { outbound, inboundPlaintext, hbone, ...adminPorts };
    // nodeFlags: node's own flags (src/config/runtime-flags.ts; the image's ENTRYPOINT sets them).
    const running = { node: this.source.node, stateSource: this.source.kind, ports: this.ports, captureMode: this.capture.mode, ca: this.caStatus(), nodeFlags: process.execArgv };
    logger.info(running, this.source.isReady() ? 'node agent ready' : 'node agent running; ready after the first full xDS state');
    return this.ports;
  }

  /**
   * The new agent's half of the hand-off: wait until this agent could serve (state applied,
   * xDS ready — the old one serves meanwhile, so there is no deadline), serve the inherited
   * sockets, then ask the old agent to drain.
   */
  private async takeOver(inherited: InheritedListeners, pendingListens: Array<() => Promise<void>>): Promise<void> {
    const log = this.opts.logger.child({ component: 'handoff' });
    const started = Date.now();
    let nextLog = started + 10_000;
    while (!(this.source.isReady() && this.stateApplied)) {
      if (Date.now() > nextLog) {
        log.info({ oldPid: inherited.pid, waitedMs: Date.now() - started }, 'hand-off: still waiting for a complete mesh state; the old agent keeps serving');
        nextLog += 10_000;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const [adminListeners] = await Promise.all([this.admin.serveInherited(), ...pendingListens.map((l) => l())]);
    const listeners = pendingListens.length + adminListeners;
    try {
      const answer = await inherited.askDrain(10_000);
      log.info({ oldPid: inherited.pid, listeners, oldLiveConnections: answer.live, waitedMs: Date.now() - started }, `hand-off: took over ${listeners} listeners from pid ${inherited.pid}; it drains ${answer.live} connections`);
    } catch (err) {
      // Both serve the same sockets until the old one exits (e.g. on its SIGTERM): no loss.
      log.error({ err: describeError(err), oldPid: inherited.pid }, 'hand-off: serving the listeners, but the old agent did not confirm its drain');
    }
  }

  /**
   * Runs `handle` once the agent has a complete state (at once when it has). Waits at most
   * STATE_WAIT_MS; after that the connection is handled with what there is (and, for a pod
   * the agent does not know yet, rejected — fail closed).
   */
  private whenStateComplete(socket: net.Socket, handle: (s: net.Socket) => void): void {
    if (this.source.isReady() && this.stateApplied) return handle(socket);
    const started = Date.now();
    const poll = (): void => {
      if ((this.source.isReady() && this.stateApplied) || Date.now() - started > STATE_WAIT_MS) {
        this.heldConnections--;
        handle(socket);
      } else setTimeout(poll, 20);
    };
    if (this.heldConnections++ === 0) this.opts.logger.info({ waitMs: STATE_WAIT_MS }, 'connections accepted before the first complete mesh state are held until it arrives');
    setTimeout(poll, 20);
  }

  private heldConnections = 0;

  /** Every listening socket, for a newer agent (the hand-off socket is added by HandoffServer). */
  private handoffListeners(): HandedListener[] {
    return [...this.listenerInfo.filter((l) => l.server.listening).map((l) => ({ name: l.name, port: l.port, fd: handleFd(l.server) })), ...this.admin.listeners()];
  }

  /** The old agent's half: a newer agent serves our sockets now; stop accepting, drain, exit. */
  private handOver(peerPid: number): number {
    this.handedOver = true;
    const live = this.connections.size;
    this.opts.logger.info({ newPid: peerPid, live, timeoutMs: this.opts.config.drainTimeoutMs }, `hand-off: pid ${peerPid} took over our listeners; draining ${live} connections`);
    this.stopAccepting();
    if (this.successorTookOver) this.successorTookOver();
    else if (this.waitsAfterHandoff()) {
      // In a pod the kubelet would restart us on exit, and the restarted agent would take the
      // listeners back: drain, then wait for the SIGTERM of the pod's deletion.
      void this.drain().then(() => this.opts.logger.info({ newPid: peerPid }, 'hand-off: drained; waiting for SIGTERM (the pod is replaced by the new agent’s pod)'));
    } else this.quitRequested?.(`hand-off to pid ${peerPid}`);
    return live;
  }

  private waitsAfterHandoff(): boolean {
    const { afterHandoff, podName } = this.opts.config;
    return afterHandoff === 'wait' || (afterHandoff === 'auto' && podName !== '');
  }

  /**
   * SIGTERM: keep serving — listeners and the hand-off socket open, readiness 503 — until a
   * newer agent takes over (then drain for it, as in a hand-off) or the successor wait ends
   * (then drain alone). The wait is the first part of the drain deadline: at most half of it,
   * so the pod's grace period (≥ drain timeout + 5 s) still covers everything. Returns how long
   * it waited.
   */
  private async awaitSuccessor(): Promise<number> {
    const { config, logger } = this.opts;
    const server = this.handoffServer;
    const waitMs = Math.min(config.successorWaitMs, Math.floor(config.drainTimeoutMs / 2));
    if (this.handedOver || this.draining || !server || waitMs <= 0) return 0;
    const started = Date.now();
    logger.info({ waitMs, live: this.connections.size }, `terminating: serving on for up to ${waitMs} ms so a new agent can take over our listeners`);
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.successorTookOver = resolve;
      timer = setTimeout(resolve, waitMs);
    });
    clearTimeout(timer);
    this.successorTookOver = undefined;
    const waited = Date.now() - started;
    if (this.handedOver) logger.info({ waitedMs: waited }, `terminating: a new agent took over after ${waited} ms; draining for it`);
    else logger.warn({ waitedMs: waited, successorGettingReady: server.offerPending }, `terminating: no new agent took over within ${waited} ms; draining alone (new connections stall until an agent listens again)`);
    return waited;
  }

  private internalError(where: string, err: unknown): void {
    this.opts.logger.error({ err: describeError(err), where }, 'unexpected proxy error');
  }

  /** Capture + certificate prefetch for the current state. Serialized. */
  private applyState(): Promise<void> {
    const run = async (): Promise<void> => {
      await this.capture.apply(this.state);
      const wanted = new Map<string, WorkloadIdentity>();
      for (const w of this.state.enrolledOnNode(this.source.node)) {
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

  /**
   * A new state from the source: swap it in, close the live inbound connections it no longer
   * allows, then bring capture and certificates along. Resolves once all that is in place
   * (the xDS source ACKs only then).
   */
  private async setState(snapshot: MeshSnapshot): Promise<void> {
    const { logger } = this.opts;
    const state = new MeshState(snapshot, ++this.stateVersion);
    this.state = state;
    this.recheckConnections(state);
    await this.applyState();
    this.stateApplied = true;
    logger.info({ version: state.version, source: this.source.kind, workloads: snapshot.workloads.length, services: snapshot.services.length, policies: snapshot.policies.length }, 'mesh state applied');
  }

  /** Issue #5: live connections are re-checked when policy changes and closed if now denied. */
  private recheckConnections(state: MeshState): void {
    const closed = this.connections.recheck((a) => recheckInbound(state, a));
    for (const { attributes: a, verdict } of closed) {
      const c = a.connection;
      this.opts.logger.info(
        {
          src: c.sourceIp,
          identity: c.sourceIdentity,
          dst: `${c.destinationIp}:${c.destinationPort}`,
          workload: a.workloadUid,
          ...(verdict.decision ? decisionLogFields(verdict.decision) : { policy: '(none)', rule: '(none)' }),
          reason: verdict.reason,
          version: state.version,
        },
        'policy: connection closed by policy change',
      );
      const fields = verdict.decision ? decisionLogFields(verdict.decision) : { policy: '(none)', rule: '(none)' };
      this.l4.denials.record({ direction: 'inbound', src: c.sourceIp, dst: `${c.destinationIp}:${c.destinationPort}`, sourceIdentity: c.sourceIdentity, destinationWorkload: a.workloadUid, ...fields, reason: `closed by a policy change: ${verdict.reason}` });
    }
  }

  /** Re-read the local config (file mode); on error keep serving the last good state. */
  async reload(): Promise<boolean> {
    if (!(this.source instanceof LocalFileStateSource)) {
      this.opts.logger.warn({ stateSource: this.source.kind }, 'reload: the state comes over xDS; nothing to re-read');
      return false;
    }
    return this.source.reload();
  }

  /** ztunnel's shape (workloads, services, policies, certificates) plus amesh's own keys. */
  configDump(): unknown {
    const source = this.source;
    const lastConfigError = source instanceof LocalFileStateSource ? source.lastConfigError : undefined;
    return buildConfigDump({
      snapshot: this.state.snapshot,
      certificates: this.certificates.snapshot(),
      extras: {
        node: source.node,
        version: this.state.version,
        stateSource: source.kind,
        ...(lastConfigError ? { lastConfigError } : {}),
        ...(source instanceof XdsStateSource ? { xds: source.status(), xdsVersions: source.resourceVersions(), telemetry: Object.fromEntries(source.telemetry()) } : {}),
        ca: this.caStatus(),
        capture: this.capture.status(),
        connections: { live: this.connections.size, inbound: this.connections.inboundSize, liveConnections: this.connections.describe(), pool: this.pool.stats(), hbone: this.inbound.server.stats() },
      },
    });
  }

  /**
   * Readiness off and no new connections: closes this process's copies of the listening
   * sockets. A newer agent that took them over holds its own descriptors of the same sockets,
   * so their accept queues survive (close(2) of one descriptor never resets a socket another
   * process holds); without one, captured SYNs find no listener and are dropped — fail closed,
   * the clients' SYN retries reach the next agent.
   */
  private stopAccepting(): void {
    if (this.draining) return;
    this.draining = true;
    for (const s of this.servers) if (s.listening) s.close();
    this.admin.stopAccepting();
    this.handoffServer?.stop();
  }

  drain(): Promise<void> {
    this.drainDone ??= this.drainOnce();
    return this.drainDone;
  }

  /**
   * Before closing the listeners with nobody to take them over (SIGTERM, no overlap): closing a
   * listening socket resets the connections in its accept queue. So first unmark the
   * transparent listeners — the capture program then drops new SYNs for them (fail closed; the
   * clients retry and reach the next agent) — and accept what is already queued for a moment.
   * Not when a newer agent holds the same sockets (taken over or being offered): it keeps the
   * queue, and the mark is its too.
   */
  private async unmarkListeners(): Promise<void> {
    const { config, logger } = this.opts;
    if (this.draining || config.captureMode === 'none' || this.handoffServer?.offerPending) return;
    const native = (this.opts.native ?? loadNativeBinding)();
    let unmarked = 0;
    for (const l of this.listenerInfo) {
      if (!l.server.listening) continue;
      try {
        native.setSocketMark(handleFd(l.server), 0);
        unmarked++;
      } catch (err) {
        logger.warn({ err: describeError(err), listener: l.name }, 'cannot unmark a listener before closing it; connections queued on it may be reset');
      }
    }
    if (unmarked) await new Promise((resolve) => setTimeout(resolve, UNMARKED_ACCEPT_MS));
  }

  private async drainOnce(): Promise<void> {
    const { logger, config } = this.opts;
    const started = Date.now();
    const waited = this.terminating ? await this.awaitSuccessor() : 0;
    const timeoutMs = Math.max(0, config.drainTimeoutMs - waited);
    await this.unmarkListeners();
    this.stopAccepting();
    logger.info({ live: this.connections.size, timeoutMs }, 'draining');
    // The source stops too: the agent keeps serving the state it has until it exits.
    // The outbound pool is not drained (pool.drain refuses new streams): a connection accepted
    // just before the listeners closed still needs its stream. Its sessions end in close(),
    // after every tracked connection did.
    await Promise.all([this.source.close(), this.inbound.server.drain(timeoutMs), this.connections.idle(timeoutMs)]);
    const left = this.connections.size;
    if (left) logger.warn({ remaining: left, drainMs: Date.now() - started }, `drain timeout after ${Date.now() - started} ms: closing ${left} remaining connections`);
    else logger.info({ drainMs: Date.now() - started }, `drained in ${Date.now() - started} ms with 0 connections left`);
  }

  async close(): Promise<void> {
    this.terminating = true;
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
