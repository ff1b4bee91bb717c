/**
 * The controller process (`amesh controller`): build → start → close.
 *
 * build: reads nothing from the network — wires the root store (CA Secrets), the trust bundle
 * publisher (ConfigMap istio-ca-root-cert everywhere), the pod locator (pods informer), the token
 * reviewer (TokenReview API), workload discovery (MeshIndex → MeshPublisher → ResourceStore), the
 * delta ADS server, the waypoint and ingress gateway deployers (sharing one set of managed-object
 * caches), the status writers, and the gRPC server they share (15012, as istiod).
 * Waypoint and ingress gateway configs are translated together (WaypointPublisher); each
 * publication drives route/Istio-Gateway status and the ingress deployer, and computes telemetry
 * (TelemetryPublisher: Telemetry objects + mesh config → node agents' TELEMETRY_TYPE_URL resources,
 * each config's `telemetry`, Telemetry status).
 * start: readiness endpoint first (so probes see 503, not a refused connection), then root →
 * pods → bundle → mesh synced and published → CA + xDS listening. A root that cannot be loaded
 * fails start with the reason. xDS only listens once the first full mesh is in the store: a
 * restarted controller must never answer a reconnecting agent with an empty or partial mesh (the
 * agent would drop what it serves).
 * Ready (`GET /healthz/ready` on 15021) = root loaded ∧ pod cache synced ∧ mesh synced ∧ CA/xDS
 * listening. The monitoring server (15014: /metrics, /debug/syncz, /ready) starts with the
 * readiness endpoint; a port it cannot get is logged, not fatal.
 * Pod annotations (`ambient.istio.io/redirection`) follow the agents' ACKs: `enabled` once the
 * agent on the pod's node has ACKed (= applied, capture included) the pod's current HBONE entry.
 * A root change (rotation, plug-in CA edited) re-publishes the bundle and re-issues the CA's
 * serving certificate; the serving certificate is also renewed at half its lifetime.
 * close: the reverse order; every listener and timer is owned here.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ControllerConfig } from '../config/controller-config.js';
import { AmeshError, describeError } from '../errors/amesh-error.js';
import type { Logger } from '../telemetry/logger.js';
import { createCaServer, type CaServer } from './ca/ca-server.js';
import { RootStore, SERVING_CERT_VALIDITY_SECONDS, controllerDnsNames, fingerprint } from './ca/root-store.js';
import { TrustBundlePublisher } from './ca/trust-bundle-publisher.js';
import { KubePodLocator } from './kube/pod-locator.js';
import { KubeTokenReviewer } from './kube/token-reviewer.js';
import { MeshIndex } from './mesh/mesh-index.js';
import { WaypointStatusWriter } from './status/waypoint-status.js';
import { WaypointDeployer } from './waypoint/deployer.js';
import { ManagedObjects } from './waypoint/managed-objects.js';
import { IngressDeployer } from './gateway/ingress-deployer.js';
import { GatewayClasses } from './gateway/gateway-classes.js';
import { computeIngress } from './translate/ingress-config.js';
import { PolicyStatusWriter } from './status/policy-status.js';
import { PodRedirectionWriter } from './status/redirection.js';
import { tokenAuthenticator, type AdsAuthenticator } from './xds/ads-auth.js';
import { AdsServer } from './xds/ads-server.js';
import { MeshPublisher } from './xds/mesh-publisher.js';
import { ResourceStore } from './xds/resource-store.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../xds/codec.js';
import { WAYPOINT_CONFIG_TYPE_URL } from '../l7/config.js';
import { RouteStatusWriter } from './status/route-status.js';
import { isWaypointGateway, type GatewayObject } from './translate/waypoint-binding.js';
import { WaypointPublisher } from './xds/waypoint-publisher.js';
import { TelemetryPublisher } from './xds/telemetry-publisher.js';
import { TelemetryStatusWriter } from './status/telemetry-status.js';
import { TELEMETRY_TYPE_URL } from '../telemetry/telemetry-config.js';
import { ControllerMetrics } from './monitoring/controller-metrics.js';
import { MonitoringServer } from './monitoring/monitoring-server.js';
import { syncStatus } from './xds/sync-status.js';
import { CA_PORT } from '../identity/ca-proto.js';

/** Agents' requests (initial_resource_versions of a large mesh) outgrow a CSR. */
const XDS_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** ACK bursts (every agent answering one push) become one annotation pass. */
const REDIRECTION_RECONCILE_MS = 50;

/** `--kubeconfig` wins; in a pod the ServiceAccount; else $KUBECONFIG / ~/.kube/config. */
export function loadKubeConfig(path?: string, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new AmeshError('AMESH_CONFIG_INVALID', `cannot load the kubeconfig${path ? ` ${path}` : ''}: ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'no Kubernetes cluster configured', { hint: 'pass --kubeconfig <file>, set KUBECONFIG, or run in a pod' });
  }
  return kc;
}

export interface ControllerAppOptions {
  config: Readonly<ControllerConfig>;
  kubeConfig: KubeConfig;
  log: Logger;
  /** Where the CA and readiness listen; 0.0.0.0 in a pod, 127.0.0.1 in tests. */
  listenHost?: string;
  /** Test hooks: a faster trust-bundle retry. */
  bundleRetryMs?: number;
  /** Test hook: who may open an xDS stream (default: a trusted node agent's reviewed token). */
  adsAuthenticator?: AdsAuthenticator;
}

export interface ControllerReadiness {
  ready: boolean;
  rootLoaded: boolean;
  podsSynced: boolean;
  meshSynced: boolean;
  caListening: boolean;
  trustBundlePublished: boolean;
}

export class ControllerApp {
  readonly roots: RootStore;
  readonly publisher: TrustBundlePublisher;
  readonly pods: KubePodLocator;
  readonly mesh: MeshIndex;
  readonly store = new ResourceStore();
  readonly ads: AdsServer;
  readonly #publisher: MeshPublisher;
  readonly #redirection: PodRedirectionWriter;
  readonly #policyStatus: PolicyStatusWriter;
  readonly #managed: ManagedObjects;
  readonly #waypoints: WaypointDeployer;
  readonly #ingress: IngressDeployer;
  readonly #gatewayClasses: GatewayClasses;
  readonly #waypointStatus: WaypointStatusWriter;
  readonly #routeStatus: RouteStatusWriter;
  readonly #waypointConfigs: WaypointPublisher;
  readonly #telemetry: TelemetryPublisher;
  readonly #telemetryStatus: TelemetryStatusWriter;
  readonly metrics: ControllerMetrics;
  #monitoring: MonitoringServer | undefined;
  #monitoringPort: number | undefined;
  #redirectionTimer: NodeJS.Timeout | undefined;
  /** Nodes whose agent has ACKed since this controller started. */
  readonly #answeredNodes = new Set<string>();
  #ca: CaServer | undefined;
  #readiness: http.Server | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #caPort: number | undefined;
  #readinessPort: number | undefined;
  #closed = false;
  readonly #opts: ControllerAppOptions;
  readonly #log: Logger;
  readonly #reviewer: KubeTokenReviewer;
  readonly #dnsNames: string[];

  private constructor(opts: ControllerAppOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    const { config, kubeConfig } = opts;
    this.roots = new RootStore({ core: kubeConfig.makeApiClient(CoreV1Api), namespace: config.namespace, trustDomain: config.trustDomain, log: opts.log, pollIntervalMs: config.rootPollMs });
    this.publisher = new TrustBundlePublisher({ kubeConfig, bundle: () => this.roots.current().trustBundlePem, log: opts.log, ...(opts.bundleRetryMs !== undefined ? { retryMs: opts.bundleRetryMs } : {}) });
    this.pods = new KubePodLocator({ kubeConfig, log: opts.log });
    this.#reviewer = KubeTokenReviewer.fromKubeConfig(kubeConfig);
    this.#dnsNames = controllerDnsNames(config.namespace);
    this.mesh = new MeshIndex({
      kubeConfig,
      log: opts.log,
      trustDomain: config.trustDomain,
      clusterDomain: config.clusterDomain,
      rootNamespace: config.rootNamespace,
      informer: { stallWindowMs: config.watchStallMs },
    });
    this.ads = new AdsServer({
      store: this.store,
      authenticate:
        opts.adsAuthenticator ??
        tokenAuthenticator({ reviewer: this.#reviewer, trustedNodeAgents: [...config.trustedNodeAgents], waypointResource: (caller) => this.#waypointResource(caller), log: opts.log }),
      typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, WAYPOINT_CONFIG_TYPE_URL, TELEMETRY_TYPE_URL],
      log: opts.log.child({ component: 'xds' }),
      debounceMs: config.xdsDebounceMs,
      maxDelayMs: config.xdsMaxDelayMs,
    });
    this.metrics = new ControllerMetrics(this.ads);
    this.#redirection = new PodRedirectionWriter({ kubeConfig, log: opts.log, capturedByAgent: (uid) => this.#capturedByAgent(uid) });
    this.#policyStatus = new PolicyStatusWriter({ kubeConfig, log: opts.log, rootNamespace: config.rootNamespace, clusterDomain: config.clusterDomain });
    this.#managed = new ManagedObjects({ kubeConfig, log: opts.log, informer: { stallWindowMs: config.watchStallMs } });
    const caAddress = `amesh-controller.${config.namespace}.svc:${CA_PORT}`;
    this.#waypoints = new WaypointDeployer({ kubeConfig, log: opts.log, trustDomain: config.trustDomain, clusterDomain: config.clusterDomain, caAddress, image: config.waypointImage, objects: this.#managed });
    this.#ingress = new IngressDeployer({ kubeConfig, log: opts.log, trustDomain: config.trustDomain, caAddress, image: config.gatewayImage, objects: this.#managed });
    this.#gatewayClasses = new GatewayClasses({ kubeConfig, log: opts.log, informer: { stallWindowMs: config.watchStallMs } });
    this.#waypointStatus = new WaypointStatusWriter({ kubeConfig, log: opts.log });
    this.#routeStatus = new RouteStatusWriter({ kubeConfig, log: opts.log, clusterDomain: config.clusterDomain });
    this.#telemetryStatus = new TelemetryStatusWriter({ kubeConfig, log: opts.log });
    this.#telemetry = new TelemetryPublisher({
      store: this.store,
      log: opts.log.child({ component: 'telemetry-publisher' }),
      rootNamespace: config.rootNamespace,
      onPublished: (telemetries, status) => this.#telemetryStatus.reconcile(telemetries, status),
    });
    this.#waypointConfigs = new WaypointPublisher({
      mesh: this.mesh,
      store: this.store,
      log: opts.log.child({ component: 'waypoint-publisher' }),
      trustDomain: config.trustDomain,
      clusterDomain: config.clusterDomain,
      rootNamespace: config.rootNamespace,
      ingress: { translate: computeIngress, controllerNamespace: config.namespace },
      telemetry: (view, proxies) => this.#telemetry.publish(view, proxies),
      onPublished: (_stats, status, ingress) => {
        const view = this.mesh.view();
        this.#routeStatus.reconcile(view, status, ingress?.status);
        if (ingress) this.#ingress.reconcile(view, ingress);
      },
    });
    this.#publisher = new MeshPublisher({
      mesh: this.mesh,
      store: this.store,
      log: opts.log.child({ component: 'mesh-publisher' }),
      onPublished: () => {
        this.#reconcileRedirection();
        const view = this.mesh.view();
        this.#policyStatus.reconcile(view, this.mesh.resources());
        this.#waypoints.reconcile(view);
        this.#waypointStatus.reconcile(view, this.mesh.resources());
      },
    });
    this.ads.on('ack', (nodeName: string | undefined) => {
      if (nodeName) this.#answeredNodes.add(nodeName);
      this.#scheduleRedirection();
    });
  }

  /**
   * A waypoint runs as the ServiceAccount named like its Gateway (`<ns>/<sa>` → `<ns>/<gateway>`),
   * an ingress gateway as the one named like its deployment (`<ns>/<deployment>`, its xDS resource).
   */
  #waypointResource(caller: string): { name: string; role: 'waypoint' | 'gateway' } | undefined {
    const [namespace, name] = caller.split('/');
    const gateway = (this.mesh.view().gateways ?? []).find((g) => g.metadata.namespace === namespace && g.metadata.name === name);
    if (gateway && isWaypointGateway(gateway as GatewayObject)) return { name: caller, role: 'waypoint' };
    return this.#waypointConfigs.ingress()?.deployments.has(caller) ? { name: caller, role: 'gateway' } : undefined;
  }

  /**
   * Has the agent on the pod's node ACKed the pod's current Address resource? Undefined while
   * that agent has not ACKed anything since this controller started (restart: unknown, not no).
   */
  #capturedByAgent(uid: string): boolean | undefined {
    const workload = this.mesh.resources().workloads.get(uid);
    const current = this.store.get(ADDRESS_TYPE_URL, uid)?.version;
    if (!workload?.node || !current) return false;
    if (!this.#answeredNodes.has(workload.node)) return undefined;
    return this.ads.ackedVersion(workload.node, ADDRESS_TYPE_URL, uid) === current;
  }

  #reconcileRedirection(): void {
    this.#redirection.reconcile(this.mesh.view().pods, (name) => this.mesh.namespace(name));
  }

  #scheduleRedirection(): void {
    if (this.#redirectionTimer || this.#closed) return;
    this.#redirectionTimer = setTimeout(() => {
      this.#redirectionTimer = undefined;
      this.#reconcileRedirection();
    }, REDIRECTION_RECONCILE_MS);
    this.#redirectionTimer.unref();
  }

  static build(opts: ControllerAppOptions): ControllerApp {
    const cluster = opts.kubeConfig.getCurrentCluster();
    opts.log.info({ apiServer: cluster?.server, namespace: opts.config.namespace, trustDomain: opts.config.trustDomain }, 'controller built');
    return new ControllerApp(opts);
  }

  /** Starts everything; resolves when the CA is listening (pods may still be syncing). */
  async start(): Promise<{ caPort: number; readinessPort: number; monitoringPort?: number }> {
    const { config } = this.#opts;
    const host = this.#opts.listenHost ?? '0.0.0.0';
    this.#readinessPort = await this.#listenReadiness(host, config.readinessPort);
    this.#log.info({ port: this.#readinessPort }, 'readiness endpoint listening');
    this.#monitoring = new MonitoringServer({
      host,
      port: config.monitoringPort,
      registry: this.metrics.registry,
      syncz: () => syncStatus(this.ads.connections()),
      readiness: () => this.readiness(),
      log: this.#log,
    });
    this.#monitoringPort = await this.#monitoring.listen();
    if (this.#monitoringPort !== undefined) this.#log.info({ port: this.#monitoringPort }, 'monitoring endpoint listening (/metrics, /debug/syncz, /ready)');

    this.#log.info({ namespace: config.namespace }, 'loading the CA root');
    await this.roots.start();
    this.#log.info({ ...this.roots.origin(), signing: fingerprint(this.roots.current().certPem) }, 'CA root ready');

    this.#log.info('starting the pod cache');
    await this.pods.start();
    this.#log.info('publishing the trust bundle');
    await this.publisher.start();
    this.#log.info('starting workload discovery');
    await this.mesh.start();
    await this.#waypoints.start();
    await this.#ingress.start();
    await this.#managed.start();
    await this.#gatewayClasses.start();
    await this.mesh.whenSynced();
    const published = this.#publisher.start();
    this.#log.info(published, 'mesh synced and published');
    this.#waypointConfigs.start();

    const serving = await this.roots.servingCertificate(this.#dnsNames);
    this.#ca = createCaServer({
      material: this.roots.source,
      reviewer: this.#reviewer,
      pods: this.pods,
      trustDomain: config.trustDomain,
      trustedNodeAgents: [...config.trustedNodeAgents],
      defaultTtlSeconds: config.certDefaultTtlSeconds,
      maxTtlSeconds: config.certMaxTtlSeconds,
      serving,
      log: this.#log,
      extraServices: [{ definition: this.ads.definition, implementation: this.ads.implementation, maxReceiveMessageBytes: XDS_MAX_REQUEST_BYTES }],
    });
    this.#caPort = await this.#ca.listen(config.caPort, host);
    this.#scheduleServingRenewal();
    this.#unsubscribe = this.roots.onChange(() => {
      this.#log.info('CA root changed: re-publishing the trust bundle and re-issuing the serving certificate');
      this.publisher.bundleChanged();
      void this.#renewServingCertificate();
    });
    this.#log.info({ caPort: this.#caPort, readinessPort: this.#readinessPort, monitoringPort: this.#monitoringPort }, 'controller started');
    return { caPort: this.#caPort, readinessPort: this.#readinessPort, ...(this.#monitoringPort !== undefined ? { monitoringPort: this.#monitoringPort } : {}) };
  }

  readiness(): ControllerReadiness {
    const r = {
      rootLoaded: this.roots.loaded(),
      podsSynced: this.pods.synced(),
      meshSynced: this.mesh.synced(),
      caListening: this.#caPort !== undefined && !this.#closed,
      trustBundlePublished: this.publisher.synced(),
    };
    return { ready: r.rootLoaded && r.podsSynced && r.meshSynced && r.caListening, ...r };
  }

  /** Stops in reverse order; safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#log.info('controller stopping');
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#redirectionTimer);
    this.#unsubscribe?.();
    this.#publisher.stop();
    this.#waypointConfigs.stop();
    // ADS streams never end by themselves: close them first, or the CA's shutdown waits its grace.
    this.ads.close();
    await this.#ca?.close();
    this.#log.info('CA closed');
    await this.publisher.stop();
    this.#redirection.stop();
    this.#policyStatus.stop();
    await this.#waypoints.stop();
    await this.#ingress.stop();
    await this.#managed.stop();
    await this.#gatewayClasses.stop();
    this.#waypointStatus.stop();
    this.#routeStatus.stop();
    this.#telemetryStatus.stop();
    await this.mesh.stop();
    await this.pods.stop();
    await this.roots.stop();
    await this.#monitoring?.close();
    if (this.#readiness) {
      const closed = once(this.#readiness, 'close');
      this.#readiness.close();
      this.#readiness.closeAllConnections();
      await closed;
    }
    this.#log.info('controller stopped');
  }

  /** typeUrl → name → version of what node agents are served (their `/config_dump` `xdsVersions` must come to equal it). */
  #resourceVersions(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const typeUrl of [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]) {
      out[typeUrl] = Object.fromEntries([...this.store.resources(typeUrl)].map(([name, r]) => [name, r.version] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return out;
  }

  async #listenReadiness(host: string, port: number): Promise<number> {
    const server = http.createServer((req, res) => {
      const readiness = req.url?.startsWith('/healthz/ready') ? this.readiness() : undefined;
      // Which agents are connected, what they ACKed or NACKed, and the last publication.
      const xds = req.url?.startsWith('/debug/xds')
        ? { published: this.#publisher.last(), waypoints: this.#waypointConfigs.last(), telemetry: this.#telemetry.last(), connections: this.ads.connections(), resources: this.#resourceVersions() }
        : undefined;
      const text = JSON.stringify(readiness ?? xds ?? { error: `no such path ${req.url ?? ''}; try /healthz/ready or /debug/xds` });
      res.writeHead(readiness ? (readiness.ready ? 200 : 503) : xds ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    server.listen({ host, port });
    try {
      await once(server, 'listening');
    } catch (err) {
      throw new AmeshError('AMESH_PORT_IN_USE', `cannot listen on ${host}:${port} for readiness`, { cause: err, hint: 'is another controller running here? (AMESH_READINESS_PORT)' });
    }
    this.#readiness = server;
    return (server.address() as AddressInfo).port;
  }

  async #renewServingCertificate(): Promise<void> {
    if (this.#closed || !this.#ca) return;
    try {
      const serving = await this.roots.servingCertificate(this.#dnsNames);
      await this.#ca.setServingCertificate(serving);
      this.#log.info({ notAfter: serving.notAfter.toISOString() }, 'CA serving certificate renewed');
    } catch (err) {
      this.#log.error({ err: describeError(err) }, 'cannot renew the CA serving certificate; keeping the current one');
    }
    this.#scheduleServingRenewal();
  }

  /** At half the lifetime, as workloads rotate theirs. */
  #scheduleServingRenewal(): void {
    clearTimeout(this.#renewTimer);
    if (this.#closed) return;
    this.#renewTimer = setTimeout(() => void this.#renewServingCertificate(), (SERVING_CERT_VALIDITY_SECONDS * 1000) / 2);
    this.#renewTimer.unref();
  }
}
